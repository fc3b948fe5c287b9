"""A fit or partial_fit that raises leaves the estimator exactly as it was."""

import warnings

import numpy as np
import pytest
import torch
from _state import estimator_state as _state
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from skvae import VAETransformer


def _vae(**params):
    params.setdefault("max_iter", 5)
    params.setdefault("random_state", 0)
    return VAETransformer(**params)


def _fit_quietly(vae, X, method="fit"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(vae, method)(X)


def _assert_same_state(before, after):
    np.testing.assert_equal(after, before)


def _assert_unfitted(vae):
    with pytest.raises(NotFittedError):
        check_is_fitted(vae)
    assert not hasattr(vae, "module_")
    assert not any(key.endswith("_") for key in vae.__dict__)
    with pytest.raises(NotFittedError):
        vae.transform(np.zeros((2, 3)))


@pytest.fixture
def X():
    return np.random.RandomState(0).normal(size=(120, 6))


DIVERGING = [
    pytest.param({"learning_rate_init": 10.0, "max_iter": 20}, 1.0, id="lr=10"),
    pytest.param({}, 1e4, id="unscaled-std-1e4"),
]


@pytest.mark.parametrize("params, scale", DIVERGING)
def test_divergence_leaves_an_unfitted_model_unfitted(X, params, scale):
    vae = _vae(**params)
    with pytest.raises(ValueError, match="diverged.*still unfitted"):
        vae.fit(X * scale)
    _assert_unfitted(vae)


@pytest.mark.parametrize("params, scale", DIVERGING)
def test_partial_fit_that_diverges_undoes_only_its_own_call(X, params, scale):
    vae = _vae(**params)
    for call in range(30):
        before = _state(vae)
        try:
            _fit_quietly(vae, X * scale, "partial_fit")
        except ValueError as exc:
            assert "diverged" in str(exc)
            n_done = call
            break
    else:
        pytest.fail("partial_fit did not diverge")
    _assert_same_state(before, _state(vae))
    if n_done == 0:
        _assert_unfitted(vae)
    else:
        assert vae.n_iter_ == n_done
        assert np.all(np.isfinite(vae.transform(X)))


def test_single_huge_value_with_a_small_network():
    vae = _vae(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="diverged.*still unfitted"):
        vae.fit([[1764.0]])
    _assert_unfitted(vae)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_divergence_keeps_a_fitted_model_as_it_was(X, method):
    vae = _fit_quietly(_vae(warm_start=True), X)
    _fit_quietly(vae, X, "partial_fit")  # an optimiser state and a live stream
    before = _state(vae)
    Z = vae.transform(X)
    vae.set_params(learning_rate_init=1e3)
    with pytest.raises(ValueError, match="diverged.*previous weights"):
        for _ in range(30):
            getattr(vae, method)(X * 1e4)
    vae.set_params(learning_rate_init=1e-3)
    _assert_same_state(before, _state(vae))
    np.testing.assert_array_equal(vae.transform(X), Z)
    # ... and it goes on as if the failed call never happened.
    twin = _fit_quietly(_vae(warm_start=True), X)
    _fit_quietly(twin, X, "partial_fit")
    _fit_quietly(twin, X, "partial_fit")
    _fit_quietly(vae, X, "partial_fit")
    np.testing.assert_array_equal(vae.transform(X), twin.transform(X))


def test_error_after_the_network_is_built_leaves_it_unfitted(X):
    vae = _vae(early_stopping=True, validation_fraction=0.1)
    with pytest.raises(ValueError, match="early_stopping.*validation"):
        vae.fit(X[:3])
    _assert_unfitted(vae)


def test_error_after_the_network_is_built_keeps_a_fitted_model(X, monkeypatch):
    vae = _fit_quietly(_vae(warm_start=True, early_stopping=True), X)
    before = _state(vae)
    with pytest.raises(ValueError, match="early_stopping.*validation"):
        vae.fit(X[:3])
    _assert_same_state(before, _state(vae))


def test_keyboard_interrupt_outside_training_restores_the_state(X, monkeypatch):
    vae = _fit_quietly(_vae(warm_start=True), X)
    before = _state(vae)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # A KeyboardInterrupt raised (not signalled: a real Ctrl-C there is deferred,
    # see test_interrupt.py) during the diagnostics after training: no new
    # weights with old diagnostics; the call is undone.
    monkeypatch.setattr(VAETransformer, "_set_fitted_attributes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vae.fit(X)
    _assert_same_state(before, _state(vae))


def test_unsupported_device_leaves_it_unfitted(X):
    vae = _vae(device="mps")
    if torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    with pytest.raises(ValueError, match="mps.*not available"):
        vae.fit(X)
    _assert_unfitted(vae)


def test_successful_fit_after_a_failed_one_is_unaffected(X):
    vae = _vae(learning_rate_init=10.0, max_iter=20)
    with pytest.raises(ValueError, match="diverged"):
        vae.fit(X)
    vae.set_params(learning_rate_init=1e-3, max_iter=5)
    _fit_quietly(vae, X)
    reference = _fit_quietly(_vae(), X)
    np.testing.assert_array_equal(vae.transform(X), reference.transform(X))
    assert vae.loss_curve_ == reference.loss_curve_


def test_partial_fit_refuses_early_stopping(X):
    # As MLPRegressor refuses it; here partial_fit is not there at all (so
    # that hasattr and scikit-learn's checks see it), and the error chain says why.
    vae = _vae(early_stopping=True)
    assert not hasattr(vae, "partial_fit")
    with pytest.raises(AttributeError, match="no attribute 'partial_fit'") as info:
        vae.partial_fit(X)
    cause = str(info.value.__cause__)
    assert "partial_fit does not support early_stopping=True" in cause
    assert "Set early_stopping=False" in cause
    _assert_unfitted(vae)
    fitted = _fit_quietly(_vae(early_stopping=True), X)
    before = _state(fitted)
    with pytest.raises(AttributeError):
        fitted.partial_fit(X)
    _assert_same_state(before, _state(fitted))
    assert hasattr(fitted.set_params(early_stopping=False), "partial_fit")


def test_a_random_state_instance_is_rewound_by_a_failed_fit(X):
    stream = np.random.RandomState(3)
    expected = np.random.RandomState(3).get_state()[1]
    vae = _vae(random_state=stream, learning_rate_init=10.0, max_iter=20)
    with pytest.raises(ValueError, match="diverged"):
        vae.fit(X)
    np.testing.assert_array_equal(stream.get_state()[1], expected)


def test_failed_partial_fit_after_unpickling_keeps_the_optimiser_state(X):
    import pickle

    fitted = _fit_quietly(_vae(), X, "partial_fit")
    _fit_quietly(fitted, X, "partial_fit")
    vae = pickle.loads(pickle.dumps(fitted))
    before = _state(vae)
    vae.set_params(learning_rate_init=1e3)
    with pytest.raises(ValueError, match="diverged.*previous weights"):
        for _ in range(30):
            vae.partial_fit(X * 1e4)
    vae.set_params(learning_rate_init=1e-3)
    if "_optimizer_state" in before and before["_optimizer_state"] is not None:
        # Adam may adopt the unpickled state's tensors: they must be intact.
        np.testing.assert_equal(
            _state(vae)["_optimizer_state"], before["_optimizer_state"]
        )
    twin = pickle.loads(pickle.dumps(fitted))
    _fit_quietly(twin, X, "partial_fit")
    _fit_quietly(vae, X, "partial_fit")
    np.testing.assert_array_equal(vae.transform(X), twin.transform(X))
