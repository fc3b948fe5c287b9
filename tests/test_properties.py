"""Property-based tests: every outcome is a correct result or a clear error.

For generated shapes, the 11 numeric dtypes, magnitudes from 1e-300 to 1e300,
NaN and infinity, memory layouts and pandas input, every public method and
analysis function either returns a result of the right shape and dtype, finite
when the input is finite, or raises a ValueError or TypeError with a message;
no input is ever mutated; a fit that raises leaves the estimator as it was.

The profiles are registered in ``conftest.py``: a fixed, derandomised "ci"
profile (about a minute on two cores; chosen when ``CI=true``) and a longer
"dev" profile (``HYPOTHESIS_PROFILE=dev``).
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import assume, event, given
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted
from test_failed_fit import _assert_same_state, _state

from skvae import VAETransformer
from skvae.analysis import (
    decoder_finite_differences,
    decoder_jacobian,
    encoder_jacobian,
    latent_clustering_scores,
    latent_coupling,
    latent_feature_importance,
    latent_traversal,
)

DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
]
N_FEATURES = 3
N_COMPONENTS = 2
LAYOUTS = ["C", "F", "strided", "reversed", "read-only", "pandas", "memmap"]
CLEAR_ERRORS = (ValueError, TypeError)


def _params(**params):
    return dict(
        n_components=N_COMPONENTS,
        hidden_layer_sizes=(4,),
        max_iter=2,
        batch_size=8,
        random_state=0,
        **params,
    )


_FITTED = {}


def _fitted(likelihood="gaussian"):
    """One fitted model per likelihood, shared (read-only) by the tests."""
    if likelihood not in _FITTED:
        X = np.random.RandomState(0).uniform(size=(40, N_FEATURES))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITTED[likelihood] = VAETransformer(**_params(likelihood=likelihood)).fit(
                X
            )
    return _FITTED[likelihood]


@st.composite
def arrays(draw, n_features=None, max_rows=12):
    """A 2-D array (or DataFrame) of any numeric dtype, magnitude and layout."""
    n_rows = draw(st.integers(1, max_rows))
    n_cols = draw(st.integers(1, 4)) if n_features is None else n_features
    dtype = draw(st.sampled_from(DTYPES))
    # Half near the unit scale (where results must be right), half anywhere.
    exponent = draw(st.one_of(st.integers(-3, 3), st.integers(-300, 300)))
    base = draw(
        st.lists(
            st.floats(-1.0, 1.0, allow_nan=False),
            min_size=n_rows * n_cols,
            max_size=n_rows * n_cols,
        )
    )
    values = np.asarray(base, dtype=np.float64).reshape(n_rows, n_cols)
    values = values * 10.0**exponent
    special = draw(st.sampled_from([None, np.nan, np.inf, -np.inf]))
    if special is not None:
        values[draw(st.integers(0, n_rows - 1)), draw(st.integers(0, n_cols - 1))] = (
            special
        )
    with np.errstate(all="ignore"):
        if np.issubdtype(dtype, np.integer) or dtype is np.bool_:
            # Integer data: scaled values, clipped to the type's range.
            if dtype is np.bool_:
                X = np.nan_to_num(values) > 0
            else:
                info = np.iinfo(dtype)
                X = np.clip(np.nan_to_num(values), info.min, info.max).astype(dtype)
        else:
            X = values.astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = np.repeat(X, 2, axis=0)[::2]
    elif layout == "reversed":
        X = X[::-1]
    elif layout == "read-only":
        X = X.copy()
        X.flags.writeable = False
    elif layout == "pandas":
        X = pd.DataFrame(X, columns=[f"f{i}" for i in range(n_cols)])
    elif layout == "memmap":
        X = _as_memmap(X, _memmap_directory(), f"layout{draw(st.integers(0, 3))}")
    return X


_MEMMAP_DIRECTORY = []


def _memmap_directory():
    if not _MEMMAP_DIRECTORY:
        import atexit
        import shutil
        import tempfile

        directory = tempfile.mkdtemp(prefix="skvae-properties-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _MEMMAP_DIRECTORY.append(directory)
    return _MEMMAP_DIRECTORY[0]


def _snapshot(X):
    return X.copy(deep=True) if isinstance(X, pd.DataFrame) else np.array(X, copy=True)


def _assert_not_mutated(X, before):
    if isinstance(X, pd.DataFrame):
        pd.testing.assert_frame_equal(X, before)
    else:
        np.testing.assert_array_equal(X, before, strict=True)


def _no_infinity(X):
    """Whether ``X`` is valid input: NaN marks a missing value, infinity none."""
    values = np.asarray(X, dtype=np.float64)
    return not bool(np.any(np.isinf(values)))


def _out_dtype(X):
    dtype = np.asarray(X).dtype
    return np.float32 if dtype == np.float32 else np.float64


def _assert_clear(exc):
    event(f"error: {type(exc).__name__}: {str(exc)[:40]}")
    message = str(exc)
    assert len(message) > 20, message


def _quiet():
    manager = warnings.catch_warnings()
    manager.__enter__()
    warnings.simplefilter("ignore")
    return manager


@given(X=arrays(), likelihood=st.sampled_from(["gaussian", "calibrated_gaussian"]))
def test_fit(X, likelihood):
    before = _snapshot(X)
    vae = VAETransformer(**_params(likelihood=likelihood))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            vae.fit(X)
        except CLEAR_ERRORS as exc:
            _assert_clear(exc)
            with pytest.raises(NotFittedError):
                check_is_fitted(vae)
            assert not hasattr(vae, "module_")
            _assert_not_mutated(X, before)
            return
    _assert_not_mutated(X, before)
    assert _no_infinity(X)
    assert all(np.isfinite(vae.loss_curve_))
    assert np.all(np.isfinite(vae.kl_per_dimension_))
    try:
        Z = vae.transform(X)
    except ValueError as exc:
        assert "row indices" in str(exc)
    else:
        assert Z.shape == (np.shape(X)[0], N_COMPONENTS)
        assert Z.dtype == _out_dtype(X)
        assert np.all(np.isfinite(Z))


@given(
    X=arrays(n_features=N_FEATURES),
    n_features=st.sampled_from([N_FEATURES, 2]),
    method=st.sampled_from(["partial_fit", "warm_start"]),
)
def test_partial_fit_and_warm_start(X, n_features, method):
    if n_features != N_FEATURES:
        X = np.asarray(X)[:, :n_features]
    vae = copy.deepcopy(_fitted())
    if method == "warm_start":
        vae.set_params(warm_start=True, max_iter=1)
    state = _state(vae)
    before = _snapshot(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            vae.partial_fit(X) if method == "partial_fit" else vae.fit(X)
        except CLEAR_ERRORS as exc:
            _assert_clear(exc)
            _assert_same_state(state, _state(vae))
            _assert_not_mutated(X, before)
            return
    _assert_not_mutated(X, before)
    assert _no_infinity(X) and n_features == N_FEATURES
    assert vae.n_iter_ == _fitted().n_iter_ + 1
    assert all(torch.isfinite(p).all() for p in vae.module_.parameters())


METHODS = ["transform", "score_samples", "inverse_transform"]


@given(
    X=arrays(n_features=N_FEATURES),
    method=st.sampled_from(METHODS),
    likelihood=st.sampled_from(["gaussian", "bernoulli", "calibrated_gaussian"]),
)
def test_inference(X, method, likelihood):
    vae = _fitted(likelihood)
    if method == "inverse_transform":
        X = np.asarray(X)[:, :N_COMPONENTS]
    before = _snapshot(X)
    state = _state(vae)
    # NaN is a missing value in data, but no latent code.
    valid = _no_infinity(X)
    if method == "inverse_transform":
        valid = bool(np.all(np.isfinite(np.asarray(X, dtype=np.float64))))
    try:
        out = getattr(vae, method)(X)
    except CLEAR_ERRORS as exc:
        _assert_clear(exc)
        if valid and "bernoulli" not in str(exc):
            assert "row indices" in str(exc), exc
    else:
        assert valid
        assert out.dtype == _out_dtype(X)
        assert out.shape[0] == np.shape(X)[0]
        assert np.all(np.isfinite(out))
    _assert_not_mutated(X, before)
    _assert_same_state(state, _state(vae))


ANALYSIS = {
    "encoder_jacobian": lambda vae, X: encoder_jacobian(vae, X),
    "latent_feature_importance": lambda vae, X: latent_feature_importance(vae, X),
    "latent_clustering_scores": lambda vae, X: latent_clustering_scores(
        vae, X, np.arange(np.shape(X)[0]) % 2
    ),
    "decoder_jacobian": lambda vae, Z: decoder_jacobian(vae, Z),
    "decoder_finite_differences": lambda vae, Z: decoder_finite_differences(vae, Z),
    "latent_coupling": lambda vae, Z: latent_coupling(vae, Z),
    "latent_traversal": lambda vae, Z: latent_traversal(
        vae, z0=np.asarray(Z)[0], values=np.asarray(Z)[:, 0]
    ),
}
ON_CODES = {"decoder_jacobian", "decoder_finite_differences", "latent_coupling"}


def _all_finite(result):
    if isinstance(result, dict):
        return all(_all_finite(value) for value in result.values())
    if isinstance(result, pd.DataFrame):
        return bool(np.all(np.isfinite(result.select_dtypes("number").to_numpy())))
    if isinstance(result, bool | int | float | np.ndarray | np.generic):
        return bool(np.all(np.isfinite(result)))
    return True


@given(
    X=arrays(n_features=N_FEATURES),
    name=st.sampled_from(sorted(ANALYSIS)),
    likelihood=st.sampled_from(["gaussian", "bernoulli"]),
)
def test_analysis(X, name, likelihood):
    vae = _fitted(likelihood)
    if name in ON_CODES or name == "latent_traversal":
        X = np.asarray(X)[:, :N_COMPONENTS]
    if name == "latent_clustering_scores":
        assume(np.shape(X)[0] >= 3)
    before = _snapshot(X)
    state = _state(vae)
    try:
        result = ANALYSIS[name](vae, X)
    except CLEAR_ERRORS as exc:
        _assert_clear(exc)
    else:
        used = X
        if name == "latent_traversal":  # z0 = X[0], values = X[:, 0]
            used = np.concatenate([np.asarray(X)[0], np.asarray(X)[:, 0]])
        assert _no_infinity(used)
        assert _all_finite(result), result
    _assert_not_mutated(X, before)
    _assert_same_state(state, _state(vae))


def test_profiles_are_registered():
    from hypothesis import settings as current

    assert "ci" in current._profiles and "dev" in current._profiles


def _as_memmap(X, directory, name):
    """``X`` (an ndarray) as a read-only np.memmap in ``directory``."""
    X = np.asarray(X)
    path = f"{directory}/{name}.dat"
    written = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    written[:] = X
    written.flush()
    del written
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


@given(
    X=arrays(n_features=N_FEATURES),
    method=st.sampled_from(["fit", "partial_fit", "warm_start"]),
    likelihood=st.sampled_from(["gaussian", "bernoulli"]),
    buffer_size=st.integers(1, 4),
)
def test_streamed_memmap(tmp_path_factory, X, method, likelihood, buffer_size):
    """Streamed (np.memmap longer than buffer_size) fits: a correct result or
    a clear error, nothing mutated, a failed call leaves the estimator as it
    was, and transform of the same rows agrees with the in-memory path."""
    assume(not isinstance(X, pd.DataFrame) and np.shape(X)[0] > buffer_size)
    source = _as_memmap(X, tmp_path_factory.getbasetemp(), "streamed")
    before = np.array(source, copy=True)
    if method == "fit":
        vae = VAETransformer(**_params(likelihood=likelihood))
    else:
        vae = copy.deepcopy(_fitted(likelihood))
        if method == "warm_start":
            vae.set_params(warm_start=True, max_iter=1)
    vae.set_params(buffer_size=buffer_size)
    state = _state(vae)
    call = vae.partial_fit if method == "partial_fit" else vae.fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call(source)
        except CLEAR_ERRORS as exc:
            _assert_clear(exc)
            if method == "fit":
                assert not hasattr(vae, "module_")
            _assert_same_state(state, _state(vae))
            np.testing.assert_array_equal(source, before, strict=True)
            return
    np.testing.assert_array_equal(source, before, strict=True)
    assert _no_infinity(X)
    assert all(torch.isfinite(p).all() for p in vae.module_.parameters())
    assert np.all(np.isfinite(vae.kl_per_dimension_))
    try:
        Z = vae.transform(source)
    except ValueError as exc:
        assert "row indices" in str(exc)
    else:
        assert Z.dtype == _out_dtype(X)
        np.testing.assert_array_equal(Z, vae.transform(np.array(X)))
