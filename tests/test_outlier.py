"""VAEOutlierDetector: the importance-weighted score, thresholds and explanations."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _linear_gaussian import LinearGaussianVAE
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from skvae import VAEOutlierDetector
from skvae._losses import (
    MIN_LOG_SCALE,
    elbo,
    importance_weighted_bound,
    importance_weighted_terms,
)
from skvae._outlier import importance_noise

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def correlated_data(n_samples=200, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    latent = rng.normal(size=(n_samples, 2))
    mixing = rng.normal(size=(2, n_features))
    return latent @ mixing + 0.3 * rng.normal(size=(n_samples, n_features))


def fitted(likelihood="calibrated_gaussian", **params):
    X = correlated_data()
    if likelihood == "bernoulli":
        X = 1 / (1 + np.exp(-X))
    params = {"max_iter": 10, "random_state": 0, **params}
    detector = VAEOutlierDetector(
        n_components=2, hidden_layer_sizes=(7,), likelihood=likelihood, **params
    )
    return detector.fit(X), X


# ------------------------------------------------------ brute force, numpy


def numpy_mlp(sequential, h):
    for layer in sequential:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().double().numpy()
            bias = layer.bias.detach().double().numpy()
            h = h @ weight.T + bias
        elif isinstance(layer, nn.Tanh):
            h = np.tanh(h)
        else:
            assert isinstance(layer, nn.ReLU)
            h = np.maximum(h, 0)
    return h


def numpy_nll(likelihood, decoded, x, log_scale):
    if likelihood == "bernoulli":
        # -[x log s + (1 - x) log(1 - s)] with s = sigmoid(decoded), stably.
        return np.logaddexp(0, decoded) - x * decoded
    if likelihood == "calibrated_gaussian":
        log_scale = np.maximum(log_scale, MIN_LOG_SCALE)
        return 0.5 * ((x - decoded) / np.exp(log_scale)) ** 2 + log_scale + HALF_LOG_2PI
    return 0.5 * (x - decoded) ** 2 + HALF_LOG_2PI


def numpy_terms(detector, X):
    """Log weights (K, n) and per-feature NLL (K, n, F), float64, by hand."""
    module = detector.module_
    n_draws = detector.n_importance_samples
    eps = importance_noise(n_draws, detector.n_components).numpy()
    out = numpy_mlp(module.encoder, X)
    mean, logvar = np.split(out, 2, axis=1)
    z = mean[None] + np.exp(0.5 * logvar)[None] * eps[:, None]
    decoded = numpy_mlp(module.decoder, z)
    log_scale = None
    if module.log_scale is not None:
        log_scale = module.log_scale.detach().double().numpy()
    nll = numpy_nll(detector.likelihood, decoded, X[None], log_scale)
    log_prior = -0.5 * (z**2).sum(-1) - detector.n_components * HALF_LOG_2PI
    log_q = -0.5 * ((z - mean[None]) ** 2 / np.exp(logvar)[None]).sum(-1)
    log_q = log_q - 0.5 * logvar.sum(-1)[None] - detector.n_components * HALF_LOG_2PI
    return log_prior - log_q - nll.sum(-1), nll


def numpy_logmeanexp(a):
    top = a.max(axis=0)
    return top + np.log(np.mean(np.exp(a - top), axis=0))


@pytest.mark.parametrize("likelihood", ["gaussian", "calibrated_gaussian", "bernoulli"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_score_samples_matches_brute_force_numpy(likelihood, activation):
    detector, X = fitted(likelihood, n_importance_samples=16, activation=activation)
    log_weights, nll = numpy_terms(detector, X)
    assert_allclose(detector.score_samples(X), numpy_logmeanexp(log_weights), rtol=1e-9)
    contributions = detector.feature_contributions(X)
    assert_allclose(contributions, nll.mean(axis=0), rtol=1e-9, atol=1e-12)


def test_contributions_sum_to_the_reconstruction_term():
    detector, X = fitted(n_importance_samples=32)
    contributions = detector.feature_contributions(X)
    assert contributions.shape == X.shape and contributions.dtype == np.float64
    # The reconstruction term of the ELBO on the same draws, from torch: the
    # log weights are log p(x | z) + log p(z) - log q(z | x).
    x = torch.from_numpy(X)
    module = detector.module_.double()
    eps = importance_noise(32, 2)
    with torch.no_grad():
        log_weights, _ = importance_weighted_terms(module, x, eps)
        mean, logvar = module.encode(x)
        z = mean + torch.exp(0.5 * logvar) * eps[:, None]
        log_ratio = (
            0.5 * (eps**2).sum(-1)[:, None]
            + 0.5 * logvar.sum(-1)
            - 0.5 * (z**2).sum(-1)
        )
    reconstruction = -(log_weights - log_ratio).mean(dim=0).numpy()
    assert_allclose(contributions.sum(axis=1), reconstruction, rtol=1e-9)


def test_float32_input_gives_float64_scores_close_to_float64():
    detector, X = fitted()
    scores64 = detector.score_samples(X)
    scores32 = detector.score_samples(X.astype(np.float32))
    assert scores32.dtype == np.float64
    assert_allclose(scores32, scores64, rtol=1e-4, atol=1e-4)
    # The trained module stays float32.
    assert next(detector.module_.parameters()).dtype == torch.float32


# ------------------------------------------------ properties of the bound


def test_one_draw_equals_the_elbo_in_expectation():
    detector, X = fitted()
    x = torch.from_numpy(X[:20])
    module = detector.module_.double()
    generator = torch.Generator().manual_seed(0)
    eps = torch.randn(20_000, 2, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        log_weights, _ = importance_weighted_terms(module, x, eps)
        # The ELBO with its KL in closed form, on independent draws.
        other = torch.randn(20_000, 2, generator=generator, dtype=torch.float64)
        reference = elbo(module, x, other).numpy()
    # With one draw the bound is one log weight: its mean over draws is the ELBO.
    standard_error = log_weights.std(dim=0).numpy() / math.sqrt(20_000)
    difference = np.abs(log_weights.mean(dim=0).numpy() - reference)
    assert np.all(difference < 5 * math.sqrt(2) * standard_error)


def expected_bounds(module, likelihood, x, ks, n_draws=8192, seed=0):
    """Mean of the K-draw bound over n_draws / K independent sets of draws."""
    generator = torch.Generator().manual_seed(seed)
    eps = torch.randn(n_draws, module.n_components, generator=generator).double()
    with torch.no_grad():
        log_weights, _ = importance_weighted_terms(module, x, eps)
    means = []
    for k in ks:
        groups = log_weights.reshape(n_draws // k, k, -1)
        bounds = torch.stack([importance_weighted_bound(g) for g in groups])
        means.append(bounds.mean(dim=0).numpy())
    return means


def test_bound_increases_with_the_number_of_draws():
    detector, X = fitted()
    module = detector.module_.double()
    x = torch.from_numpy(X[:50])
    means = expected_bounds(module, detector.likelihood, x, (1, 8, 64))
    # Row by row, in expectation over the draws.
    assert np.all(means[1] > means[0]) and np.all(means[2] > means[1])
    assert np.mean(means[2] - means[0]) > 0.01


def linear_gaussian_detector(**module_params):
    rng = np.random.RandomState(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 2)))
    weight = q * np.array([2.0, 1.0])
    bias = rng.normal(size=4)
    log_sigma = math.log(0.5)
    X = rng.normal(size=(30, 2)) @ weight.T + bias + 0.5 * rng.normal(size=(30, 4))
    detector, _ = fitted(max_iter=1)
    detector.module_ = LinearGaussianVAE(weight, bias, log_sigma, **module_params)
    detector.n_features_in_ = 4
    detector.n_components = 2
    covariance = weight @ weight.T + 0.25 * np.eye(4)
    diff = X - bias
    _, logdet = np.linalg.slogdet(covariance)
    exact = -0.5 * (
        np.einsum("ij,jk,ik->i", diff, np.linalg.inv(covariance), diff)
        + logdet
        + 4 * math.log(2 * math.pi)
    )
    return detector, X, exact


def test_exact_posterior_gives_the_exact_marginal_likelihood():
    detector, X, exact = linear_gaussian_detector()
    for k in (1, 7):
        detector.set_params(n_importance_samples=k)
        assert_allclose(detector.score_samples(X), exact, rtol=1e-10)


def test_bound_approaches_the_exact_marginal_likelihood_from_below():
    detector, X, exact = linear_gaussian_detector(shift=0.4, widen=0.5)
    module = detector.module_
    x = torch.from_numpy(X)
    means = expected_bounds(
        module, "calibrated_gaussian", x, (1, 16, 1024), n_draws=2**16
    )
    gaps = [exact - m for m in means]
    # Below log p(x) in expectation, closer with more draws. (Posterior and
    # proposal differ by the same shift for every row: one gap for all rows.)
    assert np.all(gaps[0] > gaps[1]) and np.all(gaps[1] > gaps[2])
    assert np.all(np.abs(gaps[2]) < 0.01) and np.mean(gaps[0]) > 0.1
    # The detector's fixed 4096 draws: close to the exact value.
    scores = detector.set_params(n_importance_samples=4096).score_samples(X)
    assert np.max(np.abs(scores - exact)) < 0.05


def test_log_sum_exp_is_stable_for_very_negative_log_weights():
    log_weights = torch.tensor(
        [[-1e6, -5.0], [-1e6 - math.log(3.0), -7.0]], dtype=torch.float64
    )
    bound = importance_weighted_bound(log_weights)
    assert bound.dtype == torch.float64
    expected = -1e6 + math.log((1 + 1 / 3) / 2)
    assert_allclose(bound[0].item(), expected, rtol=1e-14)
    assert_allclose(bound[1].item(), np.log((np.exp(-5) + np.exp(-7)) / 2))


def test_scores_are_finite_and_ordered_for_extreme_finite_input():
    detector, X = fitted()
    X_far = X[:3] + np.array([[0.0], [1e3], [1e6]])
    scores = detector.score_samples(X_far)
    assert np.all(np.isfinite(scores))
    assert scores[0] > scores[1] > scores[2]
    assert_array_equal(detector.predict(X_far)[1:], [-1, -1])


def test_scores_are_deterministic_and_row_independent():
    detector, X = fitted()
    full = detector.score_samples(X)
    assert_array_equal(detector.score_samples(X), full)
    assert_allclose(detector.score_samples(X[::-1][:7]), full[::-1][:7], rtol=1e-12)
    assert_allclose(
        detector.feature_contributions(X[5:6]),
        detector.feature_contributions(X)[5:6],
        rtol=1e-12,
    )


def test_chunked_scoring_matches_one_chunk(monkeypatch):
    detector, X = fitted()
    full = detector.score_samples(X)
    monkeypatch.setattr("skvae._outlier._CHUNK_FLOATS", 1)
    assert_allclose(detector.score_samples(X), full, rtol=1e-12)


def test_input_is_not_modified():
    detector, X = fitted()
    X_copy = X.copy()
    detector.score_samples(X)
    detector.feature_contributions(X)
    assert_array_equal(X, X_copy)


# ------------------------------------------------------------ thresholds


@pytest.mark.parametrize("contamination", [0.05, 0.2, 0.5])
def test_contamination_sets_the_share_flagged_in_training(contamination):
    detector, X = fitted(contamination=contamination)
    assert np.mean(detector.predict(X) == -1) == pytest.approx(contamination, abs=0.006)
    assert_allclose(
        detector.decision_function(X), detector.score_samples(X) - detector.offset_
    )


def test_auto_contamination_is_tukeys_fence():
    detector, X = fitted()
    q1, q3 = np.percentile(detector.score_samples(X), [25, 75])
    assert detector.offset_ == pytest.approx(q1 - 1.5 * (q3 - q1))
    assert_array_equal(detector.fit_predict(X), detector.predict(X))


@pytest.mark.parametrize("contamination", [0.0, 0.6, "high"])
def test_invalid_contamination_raises_and_keeps_the_fitted_state(contamination):
    detector, X = fitted()
    offset, scores = detector.offset_, detector.score_samples(X)
    detector.set_params(contamination=contamination)
    with pytest.raises(ValueError, match="contamination"):
        detector.fit(X)
    assert detector.offset_ == offset
    assert_array_equal(detector.score_samples(X), scores)


def test_invalid_n_importance_samples_raises():
    X = correlated_data()
    with pytest.raises(ValueError, match="n_importance_samples"):
        VAEOutlierDetector(n_importance_samples=0).fit(X)


def test_partial_fit_sets_the_offset():
    X = correlated_data()
    detector = VAEOutlierDetector(contamination=0.1, random_state=0)
    detector.partial_fit(X).partial_fit(X)
    assert np.mean(detector.predict(X) == -1) == pytest.approx(0.1, abs=0.006)


def test_detects_shifted_rows():
    X = correlated_data(n_samples=400)
    X_out = correlated_data(n_samples=40, seed=1) + 4.0
    detector = VAEOutlierDetector(max_iter=50, random_state=0).fit(X[:300])
    normal, outliers = detector.predict(X[300:]), detector.predict(X_out)
    assert np.mean(outliers == -1) > 0.9 and np.mean(normal == 1) > 0.8


# ---------------------------------------------- contaminated training


def contaminated_data(n_samples=400, share=0.15, seed=0):
    """Correlated normal rows, the first ``share`` of them replaced by noise."""
    X = correlated_data(n_samples=n_samples, seed=seed)
    n_out = int(round(share * n_samples))
    rng = np.random.RandomState(seed + 1)
    X[:n_out] = rng.uniform(-5, 5, size=(n_out, X.shape[1]))
    is_outlier = np.zeros(n_samples, dtype=bool)
    is_outlier[:n_out] = True
    return X, is_outlier


def test_the_second_fit_leaves_out_the_contamination_share():
    X, is_outlier = contaminated_data()
    detector = VAEOutlierDetector(contamination=0.15, max_iter=60, random_state=0)
    detector.fit(X)
    assert detector.support_.shape == (len(X),)
    assert detector.support_.sum() == len(X) - 60
    # The screening fit finds the planted noise unlikely: it is left out.
    assert np.mean(~detector.support_[is_outlier]) > 0.9


def test_trimming_ranks_planted_anomalies_below_normal_rows():
    X, is_outlier = contaminated_data()
    params = {"contamination": 0.15, "max_iter": 60, "random_state": 0}
    trimmed = VAEOutlierDetector(**params).fit(X).score_samples(X)
    untrimmed = (
        VAEOutlierDetector(support_fraction=1.0, **params).fit(X).score_samples(X)
    )
    # Fitted to all rows, the model widens its noise levels to cover the
    # anomalies; fitted to the normal rows, it separates them twice as far.
    gap = {
        name: np.median(s[~is_outlier]) - np.median(s[is_outlier])
        for name, s in {"trimmed": trimmed, "untrimmed": untrimmed}.items()
    }
    assert gap["untrimmed"] > 0
    assert gap["trimmed"] > 1.5 * gap["untrimmed"]


@pytest.mark.parametrize("support_fraction", [0.5, 0.8])
def test_support_fraction_sets_the_rows_of_the_second_fit(support_fraction):
    X = correlated_data()
    detector = VAEOutlierDetector(
        support_fraction=support_fraction, max_iter=4, random_state=0
    ).fit(X)
    assert detector.support_.sum() == round(support_fraction * len(X))


def test_support_fraction_one_is_one_fit_on_all_rows():
    X = correlated_data()
    detector = VAEOutlierDetector(
        support_fraction=1.0, max_iter=6, n_iter_no_change=100, random_state=0
    ).fit(X)
    assert detector.support_.all()
    assert detector.n_iter_ == 6


def test_auto_contamination_leaves_out_the_least_likely_tenth():
    X, is_outlier = contaminated_data()
    detector = VAEOutlierDetector(max_iter=60, random_state=0).fit(X)
    assert (~detector.support_).sum() == len(X) // 10
    # All of the rows left out are planted noise (a sixth of the rows).
    assert np.all(is_outlier[~detector.support_])


def test_the_two_fits_share_max_iter():
    X = correlated_data()
    detector = VAEOutlierDetector(
        max_iter=7, tol=0.0, n_iter_no_change=100, random_state=0
    ).fit(X)
    assert detector.n_iter_ == 7
    assert len(detector.loss_curve_) == 7


def test_one_convergence_warning_for_a_trimmed_fit():
    X = correlated_data()
    detector = VAEOutlierDetector(max_iter=4, random_state=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector.fit(X)
    messages = [
        str(w.message) for w in caught if "Maximum iterations" in str(w.message)
    ]
    assert messages == [
        "Stochastic optimizer: Maximum iterations (4) reached and the optimization "
        "hasn't converged yet."
    ]


def test_trimmed_fit_keeps_dataframe_feature_names():
    X = pd.DataFrame(correlated_data(), columns=list("abcde"))
    detector = VAEOutlierDetector(max_iter=4, random_state=0).fit(X)
    assert list(detector.feature_names_in_) == list("abcde")
    assert detector.support_.shape == (len(X),)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        detector.score_samples(X)


@pytest.mark.parametrize(("n_samples", "batch_size"), [(200, 32), (3200, 100)])
def test_auto_batch_size_is_about_32_steps_per_epoch(n_samples, batch_size):
    X = correlated_data(n_samples=n_samples)
    params = {"support_fraction": 1.0, "max_iter": 2, "random_state": 0}
    auto = VAEOutlierDetector(batch_size="auto", **params).fit(X)
    explicit = VAEOutlierDetector(batch_size=batch_size, **params).fit(X)
    other = VAEOutlierDetector(batch_size=batch_size + 1, **params).fit(X)
    assert_array_equal(auto.score_samples(X), explicit.score_samples(X))
    assert not np.array_equal(auto.score_samples(X), other.score_samples(X))


def test_auto_max_iter_is_a_budget_of_1600_steps():
    # 200 rows in batches of 32: 7 steps per epoch, 229 epochs.
    X = correlated_data(n_samples=200)
    detector = VAEOutlierDetector(
        tol=0.0, n_iter_no_change=10_000, support_fraction=1.0, random_state=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector.fit(X)
    assert detector.n_iter_ == 229
    assert any("Maximum iterations (229)" in str(w.message) for w in caught)


@pytest.mark.parametrize("support_fraction", [0.0, 1.5, "half"])
def test_invalid_support_fraction_raises(support_fraction):
    with pytest.raises(ValueError, match="support_fraction"):
        VAEOutlierDetector(support_fraction=support_fraction).fit(correlated_data())


# ------------------------------------------------ pipelines and search


def test_grid_search_with_a_scorer_on_labelled_validation_data():
    X = correlated_data(n_samples=300)
    X_out = correlated_data(n_samples=30, seed=1) * 3.0
    X_all = np.vstack([X, X_out])
    # Labels as predict gives them: +1 normal, -1 outlier; roc_auc then uses
    # decision_function, higher for the normal class.
    y = np.r_[np.ones(300), -np.ones(30)]
    # Train on the first 200 normal rows, validate on the rest.
    fold = np.r_[-np.ones(200), np.zeros(130)]
    search = GridSearchCV(
        make_pipeline(
            StandardScaler(), VAEOutlierDetector(max_iter=20, random_state=0)
        ),
        {"vaeoutlierdetector__n_components": [1, 2]},
        scoring="roc_auc",
        cv=PredefinedSplit(fold),
    )
    search.fit(X_all, y)
    assert search.best_score_ > 0.8
    assert search.predict(X_out).mean() < 0


def test_pipeline_delegates_the_outlier_api():
    X = correlated_data()
    model = make_pipeline(
        StandardScaler(), VAEOutlierDetector(max_iter=5, random_state=0)
    )
    model.fit(X)
    assert model.score_samples(X).shape == (200,)
    assert set(np.unique(model.predict(X))) <= {-1, 1}
    assert_allclose(
        model.decision_function(X), model.score_samples(X) - model[-1].offset_
    )


# ------------------------------------------------------------ containers


def test_contributions_are_a_dataframe_for_a_dataframe():
    X = correlated_data()
    frame = pd.DataFrame(X, columns=list("abcde"), index=np.arange(200) + 1000)
    detector = VAEOutlierDetector(max_iter=5, random_state=0).fit(frame)
    contributions = detector.feature_contributions(frame.iloc[:3])
    assert isinstance(contributions, pd.DataFrame)
    assert list(contributions.columns) == list("abcde")
    assert list(contributions.index) == [1000, 1001, 1002]
    assert_allclose(contributions.to_numpy(), detector.feature_contributions(X[:3]))


def test_contributions_follow_set_output():
    detector, X = fitted()
    detector.set_output(transform="pandas")
    contributions = detector.feature_contributions(X[:2])
    assert isinstance(contributions, pd.DataFrame)
    assert list(contributions.columns) == [f"x{i}" for i in range(5)]
    # score_samples stays an array, as for every scikit-learn detector.
    assert isinstance(detector.score_samples(X[:2]), np.ndarray)
    detector.set_output(transform="default")
    assert isinstance(detector.feature_contributions(X[:2]), np.ndarray)


def test_pickle_round_trip_keeps_scores():
    import pickle

    detector, X = fitted()
    clone = pickle.loads(pickle.dumps(detector))
    assert_array_equal(clone.score_samples(X), detector.score_samples(X))
    assert clone.offset_ == detector.offset_


# ------------------------------------------------ recommended preprocessing


def test_signed_log1p_keeps_the_sign_and_leaves_the_input_alone():
    from skvae.datasets import signed_log1p

    X = np.array([[-100.0, -1.0, 0.0, 1.0, 1e6]])
    X_copy = X.copy()
    expected = np.array([[-np.log(101), -np.log(2), 0.0, np.log(2), np.log1p(1e6)]])
    assert_allclose(signed_log1p(X), expected)
    assert_array_equal(X, X_copy)


@pytest.mark.parametrize("clip_negative", [False, True])
def test_anomaly_preprocessor_logs_and_standardises(clip_negative):
    from skvae.datasets import anomaly_preprocessor

    rng = np.random.RandomState(0)
    counts = rng.lognormal(mean=3.0, sigma=2.0, size=(500, 3))
    counts[:, 2] -= 30.0  # some negative values
    X_out = anomaly_preprocessor(clip_negative=clip_negative).fit_transform(counts)
    assert_allclose(X_out.mean(axis=0), 0, atol=1e-10)
    assert_allclose(X_out.std(axis=0), 1, rtol=1e-10)
    logged = np.log1p(np.maximum(counts, 0)) if clip_negative else None
    if clip_negative:
        reference = (logged - logged.mean(axis=0)) / logged.std(axis=0)
    else:
        signed = np.sign(counts) * np.log1p(np.abs(counts))
        reference = (signed - signed.mean(axis=0)) / signed.std(axis=0)
    assert_allclose(X_out, reference, rtol=1e-10, atol=1e-12)
    # The tail is tamed: far less extreme than after standardising the counts.
    raw = StandardScaler().fit_transform(counts)
    assert np.abs(X_out).max() < 0.5 * np.abs(raw).max()


def test_anomaly_preprocessor_passes_feature_names():
    from skvae.datasets import anomaly_preprocessor

    frame = pd.DataFrame({"bytes": [1.0, 10.0, 1000.0], "skew": [-2.0, 0.0, 3.0]})
    preprocessor = anomaly_preprocessor().set_output(transform="pandas")
    out = preprocessor.fit_transform(frame)
    assert list(out.columns) == ["bytes", "skew"]
    assert list(preprocessor.get_feature_names_out()) == ["bytes", "skew"]


def test_make_anomaly_pipeline_beats_min_max_bernoulli_on_flows():
    from sklearn.metrics import roc_auc_score

    from skvae.datasets import flows_preprocessor, make_anomaly_pipeline, make_flows

    X, y = make_flows(n_samples=600, random_state=0)
    X_train, X_test = X[y == 0][:300], np.vstack([X[y == 0][300:], X[y == 1]])
    y_test = np.r_[np.zeros(np.sum(y == 0) - 300), np.ones(np.sum(y == 1))]
    model = make_anomaly_pipeline(max_iter=40, random_state=0).fit(X_train)
    assert model.named_steps["vaeoutlierdetector"].likelihood == "calibrated_gaussian"
    auc = roc_auc_score(y_test, -model.score_samples(X_test))
    bernoulli = make_pipeline(
        flows_preprocessor(),
        VAEOutlierDetector(likelihood="bernoulli", max_iter=40, random_state=0),
    ).fit(X_train)
    auc_bernoulli = roc_auc_score(y_test, -bernoulli.score_samples(X_test))
    # Measured 0.90 against 0.37 (bernoulli) on the calibrated flows at 40 epochs.
    assert auc > 0.85 and auc > auc_bernoulli + 0.3


def test_detector_saves_and_loads_without_pickle(tmp_path):
    import skvae

    X = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    detector = VAEOutlierDetector(max_iter=5, buffer_size=1000, random_state=0).fit(X)
    path = tmp_path / "detector.skvae"
    skvae.save(detector, path)
    loaded = skvae.load(path)
    assert type(loaded) is VAEOutlierDetector
    assert loaded.get_params() == detector.get_params()
    assert loaded.offset_ == detector.offset_
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), detector.predict(X))


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_a_threshold_that_fails_leaves_the_detector_as_it_was(method, monkeypatch):
    X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    detector = VAEOutlierDetector(max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector.fit(X)
    before_scores = detector.score_samples(X)
    before_weights = [p.detach().clone() for p in detector.module_.parameters()]
    before = (detector.offset_, detector.n_iter_, list(detector.loss_curve_))

    def broken(scores):
        raise RuntimeError("no threshold")

    monkeypatch.setattr(detector, "_offset", broken)
    with pytest.raises(RuntimeError, match="no threshold"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(detector.set_params(warm_start=True), method)(X)
    assert (detector.offset_, detector.n_iter_, list(detector.loss_curve_)) == before
    for p, q in zip(detector.module_.parameters(), before_weights, strict=True):
        assert torch.equal(p.detach(), q)
    assert_array_equal(detector.score_samples(X), before_scores)
