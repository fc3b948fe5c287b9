"""Behaviour of VAETransformer that users rely on."""

import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import skvae._training
from skvae import PosteriorCollapseWarning, TrainingInterruptedWarning, VAETransformer
from skvae._losses import kl_divergence
from skvae._vae import KL_ACTIVE_THRESHOLD, inference_module

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::skvae.PosteriorCollapseWarning",
)


def _vae(**params):
    params = {"hidden_layer_sizes": (16,), "max_iter": 5, "random_state": 0} | params
    return VAETransformer(**params)


# --------------------------------------------------------------- pipelines


def test_pipeline_with_classifier(digits01):
    X, y = digits01
    pipe = make_pipeline(
        MinMaxScaler(),
        VAETransformer(
            n_components=8, likelihood="bernoulli", max_iter=40, random_state=0
        ),
        LogisticRegression(max_iter=500),
    )
    pipe.fit(X[:400], y[:400])
    # Ten classes: chance is 0.1; the codes must carry the digit identity.
    assert pipe.score(X[400:], y[400:]) > 0.4


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_recon_weight(digits01, n_jobs):
    X, _ = digits01
    grid = GridSearchCV(
        _vae(likelihood="bernoulli", max_iter=15),
        {"recon_weight": [1, "auto"]},
        cv=2,
        n_jobs=n_jobs,
    ).fit(X)
    scores = grid.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)
    # The default score is the held-out ELBO; the textbook ELBO objective wins.
    assert grid.best_params_ == {"recon_weight": "auto"}


def test_clone_keeps_params_and_drops_state(gaussian_data):
    vae = _vae(recon_weight=3.0, beta=0.5).fit(gaussian_data)
    twin = clone(vae)
    assert twin.get_params() == vae.get_params()
    assert not hasattr(twin, "module_")


def test_pandas_in_and_out(gaussian_data):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(gaussian_data, columns=[f"f{i}" for i in range(6)])
    vae = _vae(n_components=3).set_output(transform="pandas").fit(df)
    np.testing.assert_array_equal(vae.feature_names_in_, df.columns)
    out = vae.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["z0", "z1", "z2"]
    assert list(vae.get_feature_names_out()) == list(out.columns)
    with pytest.warns(UserWarning, match="feature names"):
        vae.transform(gaussian_data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_dtype_follows_input(gaussian_data, dtype):
    X = gaussian_data.astype(dtype)
    vae = _vae().fit(X)
    Z = vae.transform(X)
    assert Z.dtype == dtype
    assert vae.inverse_transform(Z).dtype == dtype
    assert vae.score_samples(X).dtype == dtype
    # Both precisions run the same float32-trained weights.
    np.testing.assert_allclose(
        vae.transform(X.astype(np.float64)),
        vae.transform(X.astype(np.float32)),
        rtol=1e-4,
        atol=1e-5,
    )


# ------------------------------------------------------------ randomness


def test_same_seed_is_bitwise_reproducible(gaussian_data):
    a = _vae(random_state=3).fit_transform(gaussian_data)
    b = _vae(random_state=3).fit_transform(gaussian_data)
    c = _vae(random_state=4).fit_transform(gaussian_data)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_global_rngs_untouched(gaussian_data):
    np.random.seed(0)
    torch.manual_seed(0)
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    vae = _vae(early_stopping=True, random_state=0).fit(gaussian_data)
    vae.set_params(early_stopping=False).partial_fit(gaussian_data)
    vae.transform(gaussian_data)
    vae.score_samples(gaussian_data)
    vae.sample(5, random_state=1)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_random_state_none_leaves_torch_global_rng(gaussian_data):
    torch_state = torch.get_rng_state().clone()
    _vae(random_state=None).fit(gaussian_data)
    assert torch.equal(torch.get_rng_state(), torch_state)


# ------------------------------------------------------------ persistence


def test_pickle_and_joblib_round_trip(gaussian_data, tmp_path):
    vae = _vae().fit(gaussian_data)
    expected = vae.transform(gaussian_data)
    restored = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(restored.transform(gaussian_data), expected)
    joblib.dump(vae, tmp_path / "vae.joblib")
    restored = joblib.load(tmp_path / "vae.joblib")
    np.testing.assert_array_equal(restored.transform(gaussian_data), expected)
    np.testing.assert_array_equal(
        restored.score_samples(gaussian_data), vae.score_samples(gaussian_data)
    )
    # Pickling must not strip the original of its optimiser.
    assert vae._optimizer is not None


def test_partial_fit_resumes_after_unpickling(gaussian_data):
    vae = _vae()
    vae.partial_fit(gaussian_data)
    restored = pickle.loads(pickle.dumps(vae))
    restored.partial_fit(gaussian_data)
    vae.partial_fit(gaussian_data)
    # The Adam moments and the random stream travel with the pickle.
    np.testing.assert_array_equal(
        restored.transform(gaussian_data), vae.transform(gaussian_data)
    )
    assert restored.n_iter_ == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_model_pickles_to_cpu(gaussian_data):
    vae = _vae(device="cuda").fit(gaussian_data)
    state = vae.__getstate__()
    # The pickled state holds numpy copies of the weights, never device tensors.
    weights = state["module_"]["state_dict"]
    assert all(isinstance(value, np.ndarray) for value in weights.values())
    assert next(vae.module_.parameters()).device.type == "cuda"
    restored = pickle.loads(pickle.dumps(vae))
    np.testing.assert_allclose(
        restored.transform(gaussian_data), vae.transform(gaussian_data), rtol=1e-5
    )


def test_read_only_memmap_input(gaussian_data, tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, gaussian_data)
    X = np.load(path, mmap_mode="r")
    vae = _vae().fit(X)
    np.testing.assert_array_equal(vae.transform(X), vae.transform(gaussian_data))
    vae.score_samples(X)


# ------------------------------------------------------------ bad input


def test_input_is_not_mutated(gaussian_data):
    X = gaussian_data.copy()
    vae = _vae().fit(X)
    Z = vae.transform(X)
    Z_copy = Z.copy()
    vae.inverse_transform(Z)
    vae.score_samples(X)
    np.testing.assert_array_equal(X, gaussian_data)
    np.testing.assert_array_equal(Z, Z_copy)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.array([[0.0, np.inf], [1.0, 2.0]]), "infinity"),
        (np.empty((0, 3)), "0 sample"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), "could not convert"),
    ],
)
def test_invalid_data_at_fit(X, match):
    with pytest.raises(ValueError, match=match):
        _vae().fit(X)


def test_wrong_number_of_features(gaussian_data):
    vae = _vae().fit(gaussian_data)
    with pytest.raises(ValueError, match="X has 5 features, but VAETransformer"):
        vae.transform(gaussian_data[:, :5])
    with pytest.raises(ValueError, match="X has 5 features"):
        vae.partial_fit(gaussian_data[:, :5])
    with pytest.raises(ValueError, match="n_components=2"):
        vae.inverse_transform(np.zeros((3, 3)))


def test_bernoulli_refuses_data_outside_unit_interval(gaussian_data, digits01):
    with pytest.raises(ValueError, match=r"\[0, 1\].*MinMaxScaler.*'gaussian'"):
        _vae(likelihood="bernoulli").fit(gaussian_data)
    vae = _vae(likelihood="bernoulli").fit(digits01[0])
    with pytest.raises(ValueError, match="MinMaxScaler"):
        vae.score_samples(digits01[0] * 2)


def test_bernoulli_tolerates_rounding_but_not_more(digits01):
    X = digits01[0].copy()
    X[0, 0] = np.nextafter(1.0, 2.0)  # what MinMaxScaler's rounding can give
    _vae(likelihood="bernoulli", max_iter=1).fit(X)
    X[0, 0] = 1.001
    message = r"\[0, 1\] in column 'x0', but row 0 holds 1.001"
    with pytest.raises(ValueError, match=message):
        _vae(likelihood="bernoulli", max_iter=1).fit(X)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_warm_start_moves_optimizer_state_with_the_device(gaussian_data):
    vae = _vae(warm_start=True).fit(gaussian_data)
    vae.set_params(device="cuda").fit(gaussian_data)
    state = vae._optimizer.state_dict()["state"]
    assert all(
        v.device.type == "cuda"
        for s in state.values()
        for v in s.values()
        if torch.is_tensor(v) and v.dim() > 0
    )


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_components": 0}, "'n_components' parameter"),
        ({"recon_weight": -1.0}, "'recon_weight' parameter"),
        ({"recon_weight": "sum"}, "'recon_weight' parameter"),
        ({"likelihood": "poison"}, "Unknown likelihood 'poison'; expected one of"),
        ({"beta": -0.1}, "'beta' parameter"),
        ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes must be > 0"),
        ({"hidden_layer_sizes": ("a",)}, "hidden_layer_sizes must be a non-empty"),
        ({"device": "tpu"}, "not a torch device"),
    ],
)
def test_invalid_parameters(gaussian_data, params, match):
    with pytest.raises(ValueError, match=match):
        _vae(**params).fit(gaussian_data)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda(gaussian_data):
    with pytest.raises(ValueError, match="CUDA is not available"):
        _vae(device="cuda").fit(gaussian_data)
    vae = _vae(device="auto").fit(gaussian_data)
    assert next(vae.module_.parameters()).device.type == "cpu"


def test_unfitted_raises(gaussian_data):
    for method in ("transform", "score_samples", "inverse_transform"):
        with pytest.raises(NotFittedError):
            getattr(VAETransformer(), method)(gaussian_data)
    with pytest.raises(NotFittedError):
        VAETransformer().sample(3)


def test_divergence_is_an_error_not_nan():
    X = np.full((20, 3), 1e20)
    X[::2] *= -1
    vae = _vae(learning_rate_init=1.0)
    with pytest.raises(ValueError, match="diverged at epoch 1.*learning_rate_init"):
        vae.fit(X)


def test_keyboard_interrupt_leaves_a_usable_model(gaussian_data, monkeypatch):
    real_epoch = skvae._training.run_single_epoch
    calls = []

    def interrupted_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(skvae._training, "run_single_epoch", interrupted_epoch)
    with pytest.warns(TrainingInterruptedWarning, match="interrupted"):
        vae = _vae(max_iter=50).fit(gaussian_data)
    assert vae.n_iter_ == 2
    assert np.all(np.isfinite(vae.transform(gaussian_data)))


# ------------------------------------------------------------ training


def test_verbose_reports_reconstruction_and_kl(gaussian_data, capsys):
    _vae(max_iter=3, verbose=1).fit(gaussian_data)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4  # 3 epochs and the summary
    assert re.match(r"Epoch 1/3  loss .*  reconstruction .*  KL ", lines[0])
    assert lines[-1].startswith("Trained 3 epochs: stopped because ")
    _vae(max_iter=3, verbose=0).fit(gaussian_data)
    assert capsys.readouterr().out == ""


def test_curves_and_attributes(gaussian_data):
    vae = _vae(max_iter=30, n_iter_no_change=100).fit(gaussian_data)
    assert vae.n_iter_ == 30
    for curve in (vae.loss_curve_, vae.reconstruction_curve_, vae.kl_curve_):
        assert len(curve) == 30 and np.all(np.isfinite(curve))
    # recon_weight='auto' with beta=1: the objective is reconstruction + KL.
    np.testing.assert_allclose(
        vae.loss_curve_,
        np.add(vae.reconstruction_curve_, vae.kl_curve_),
        rtol=1e-5,
    )
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]
    assert vae.validation_scores_ is None
    assert vae.kl_per_dimension_.shape == (2,)
    assert vae.active_units_ == np.sum(vae.kl_per_dimension_ > KL_ACTIVE_THRESHOLD)


def test_kl_per_dimension_is_the_mean_posterior_kl(gaussian_data):
    vae = _vae(max_iter=20).fit(gaussian_data)
    with torch.no_grad():
        mean, logvar = vae.module_.encode(
            torch.tensor(gaussian_data, dtype=torch.float32)
        )
        expected = kl_divergence(mean, logvar).mean(0).numpy()
    np.testing.assert_allclose(vae.kl_per_dimension_, expected, rtol=1e-5)


def test_convergence_warning_and_early_convergence(gaussian_data):
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        _vae(max_iter=2).fit(gaussian_data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae = _vae(max_iter=500, tol=1e3, n_iter_no_change=2).fit(gaussian_data)
    # As in MLPRegressor: the first epoch improves on inf, then stop once more
    # than n_iter_no_change epochs in a row did not improve.
    assert vae.n_iter_ == 4


def test_early_stopping_keeps_validation_scores(gaussian_data):
    vae = _vae(early_stopping=True, max_iter=200, n_iter_no_change=3, tol=0.5)
    vae.fit(gaussian_data)
    assert vae.n_iter_ < 200
    assert len(vae.validation_scores_) == vae.n_iter_
    assert vae.best_validation_score_ == max(vae.validation_scores_)


def test_early_stopping_restores_the_best_weights(gaussian_data, monkeypatch):
    # Make later epochs worse by a fake validation score and check that the
    # weights of the best epoch come back.
    scores = iter([-10.0, -5.0, -20.0, -30.0, -40.0, -50.0])
    snapshots = []
    real_epoch = skvae._training.run_single_epoch

    def recording_epoch(module, *args, **kwargs):
        out = real_epoch(module, *args, **kwargs)
        snapshots.append([p.detach().clone() for p in module.parameters()])
        return out

    monkeypatch.setattr(skvae._training, "run_single_epoch", recording_epoch)
    monkeypatch.setattr(
        skvae._training, "validation_score", lambda *a, **k: next(scores)
    )
    vae = _vae(early_stopping=True, max_iter=9, n_iter_no_change=3).fit(gaussian_data)
    # Best at epoch 2, then four epochs without improvement (> 3) stop it.
    assert vae.n_iter_ == 6
    for restored, best in zip(vae.module_.parameters(), snapshots[1], strict=True):
        assert torch.equal(restored, best)


def test_warm_start_and_partial_fit_continue(gaussian_data):
    vae = _vae(max_iter=4, warm_start=True).fit(gaussian_data)
    first_curve = list(vae.loss_curve_)
    vae.fit(gaussian_data)
    assert vae.n_iter_ == 8
    assert vae.loss_curve_[:4] == first_curve
    cold = _vae(max_iter=4).fit(gaussian_data)
    cold.fit(gaussian_data)
    assert cold.n_iter_ == 4

    vae = _vae()
    for i in range(3):
        vae.partial_fit(gaussian_data[i * 40 : (i + 1) * 40])
        assert vae.n_iter_ == i + 1
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]


def test_kl_warmup_ramps_the_kl_weight(gaussian_data):
    vae = _vae(max_iter=4, kl_warmup=4, n_iter_no_change=100).fit(gaussian_data)
    # Epoch e (0-based) weighs KL by (e + 1) / kl_warmup.
    expected = [
        r + k * (e + 1) / 4
        for e, (r, k) in enumerate(
            zip(vae.reconstruction_curve_, vae.kl_curve_, strict=True)
        )
    ]
    np.testing.assert_allclose(vae.loss_curve_, expected, rtol=1e-5)


def test_recon_weight_scales_the_reconstruction_term(gaussian_data):
    vae = _vae(recon_weight=2.0, beta=0.5, max_iter=3).fit(gaussian_data)
    n_features = gaussian_data.shape[1]
    expected = 2.0 * np.array(vae.reconstruction_curve_) / n_features + 0.5 * np.array(
        vae.kl_curve_
    )
    np.testing.assert_allclose(vae.loss_curve_, expected, rtol=1e-5)


def test_posterior_collapse_is_reported(digits01):
    X, _ = digits01
    with pytest.warns(PosteriorCollapseWarning, match="Raise recon_weight"):
        collapsed = VAETransformer(
            n_components=3,
            likelihood="bernoulli",
            recon_weight=1,
            max_iter=100,
            random_state=0,
        ).fit(X)
    assert collapsed.active_units_ == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorCollapseWarning)
        weighted = VAETransformer(
            n_components=3, likelihood="bernoulli", max_iter=100, random_state=0
        ).fit(X)
    assert weighted.active_units_ >= 2
    assert weighted.kl_curve_[-1] > 10 * collapsed.kl_curve_[-1]


def test_calibrated_gaussian_learns_its_scale(gaussian_data):
    vae = _vae(
        likelihood="calibrated_gaussian",
        max_iter=60,
        batch_size=16,
        learning_rate_init=1e-2,
        n_iter_no_change=100,
    ).fit(gaussian_data)
    scale = np.exp(vae.module_.log_scale.detach().numpy())
    # Started at 1; the data has a residual noise of 0.1 after a rank-2 signal.
    assert np.all(scale < 0.9)


# ------------------------------------------------------------ scoring


def test_score_samples_is_deterministic_and_row_independent(gaussian_data):
    vae = _vae().fit(gaussian_data)
    scores = vae.score_samples(gaussian_data)
    np.testing.assert_array_equal(scores, vae.score_samples(gaussian_data))
    order = np.random.RandomState(1).permutation(len(gaussian_data))
    np.testing.assert_allclose(vae.score_samples(gaussian_data[order]), scores[order])
    np.testing.assert_allclose(vae.score_samples(gaussian_data[:7]), scores[:7])
    assert vae.score(gaussian_data) == pytest.approx(scores.mean())


def test_score_samples_estimates_the_elbo(gaussian_data):
    vae = _vae(max_iter=30).fit(gaussian_data)
    X = gaussian_data[:10]
    # Independent Monte Carlo estimate with many fresh draws, in float64.
    module = inference_module(vae, np.float64)
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor(X)
    with torch.no_grad():
        mean, logvar = module.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mean + std * torch.randn(20_000, *mean.shape, generator=gen, dtype=x.dtype)
        loglik = torch.distributions.Normal(module.decode(z), 1.0).log_prob(x)
        expected = loglik.sum(-1).mean(0) - kl_divergence(mean, logvar).sum(-1)
    # 16 fixed antithetic draws against 20,000 fresh ones: close, not equal.
    np.testing.assert_allclose(vae.score_samples(X), expected.numpy(), rtol=0.03)
    assert np.mean(np.abs(vae.score_samples(X) - expected.numpy())) < 0.1


def test_score_ignores_training_weights_in_its_definition(gaussian_data):
    # Same weights, different recon_weight/beta: the score must not change.
    vae = _vae().fit(gaussian_data)
    other = pickle.loads(pickle.dumps(vae))
    other.set_params(recon_weight=1.0, beta=5.0)
    np.testing.assert_array_equal(
        other.score_samples(gaussian_data), vae.score_samples(gaussian_data)
    )


def test_sample(digits01):
    vae = _vae(likelihood="bernoulli").fit(digits01[0])
    draws = vae.sample(4, random_state=0)
    assert draws.shape == (4, 64)
    assert draws.min() >= 0 and draws.max() <= 1
    np.testing.assert_array_equal(draws, vae.sample(4, random_state=0))
    assert not np.array_equal(draws, vae.sample(4, random_state=1))
    with pytest.raises(ValueError, match="positive integer"):
        vae.sample(0)


def test_a_tensor_that_requires_grad_is_taken_as_its_values():
    X = np.random.RandomState(0).normal(size=(80, 4)).astype(np.float32)
    tensor = torch.from_numpy(X.copy()).requires_grad_(True)
    from_tensor = _vae(max_iter=3).fit(tensor)
    from_array = _vae(max_iter=3).fit(X)
    np.testing.assert_array_equal(
        from_tensor.transform(tensor), from_array.transform(X)
    )
    np.testing.assert_array_equal(
        from_tensor.score_samples(tensor), from_array.score_samples(X)
    )
    assert tensor.grad is None
