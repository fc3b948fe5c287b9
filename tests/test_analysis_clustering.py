"""Tests of skvae.analysis._clustering: scores of the codes and the scorer."""

import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError
from sklearn.metrics import (
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skvae import VAETransformer
from skvae._vae import KL_ACTIVE_THRESHOLD, inference_module
from skvae.analysis import latent_clustering_scores, latent_silhouette_scorer


def _fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X)


def _vae(**params):
    params = {
        "n_components": 2,
        "likelihood": "bernoulli",
        "max_iter": 5,
        "random_state": 0,
        **params,
    }
    return VAETransformer(**params)


@pytest.fixture(scope="module")
def digits(digits01):
    X, y = digits01
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def fitted(digits):
    return _fit(_vae(), digits[0])


def _kl_per_dimension(vae, X):
    """The mean KL of each latent dimension on X, straight from the module."""
    with torch.no_grad():
        mean, logvar = inference_module(vae, np.float64).encode(torch.from_numpy(X))
    kl = 0.5 * (mean**2 + torch.exp(logvar) - 1 - logvar)
    return kl.mean(dim=0).numpy()


def test_scores_equal_direct_sklearn_metrics(digits, fitted):
    X, y = digits
    Z = fitted.transform(X)

    scores = latent_clustering_scores(fitted, X, y)

    assert scores["silhouette"] == silhouette_score(Z, y)
    assert scores["davies_bouldin"] == davies_bouldin_score(Z, y)
    assert scores["calinski_harabasz"] == calinski_harabasz_score(Z, y)
    assert_allclose(scores["latent_std"], Z.std(axis=0))
    kl = _kl_per_dimension(fitted, X)
    assert_allclose(scores["kl_per_dimension"], kl, rtol=1e-12)
    # On the training data it is the fitted attribute (computed in float32).
    assert_allclose(scores["kl_per_dimension"], fitted.kl_per_dimension_, rtol=1e-4)
    active = kl > KL_ACTIVE_THRESHOLD
    assert scores["active_units"] == active.sum()
    assert scores["collapsed"] == (active.sum() < 2)
    if active.any():
        assert scores["silhouette_active"] == silhouette_score(Z[:, active], y)
    else:
        assert scores["silhouette_active"] == -1.0


def test_scores_on_held_out_data_recompute_the_kl(digits, fitted):
    X, y = digits
    X_new = X[::-1][:100] * 0.5

    scores = latent_clustering_scores(fitted, X_new, y[::-1][:100])

    assert_allclose(
        scores["kl_per_dimension"], _kl_per_dimension(fitted, X_new), rtol=1e-12
    )
    assert not np.allclose(scores["kl_per_dimension"], fitted.kl_per_dimension_)


def _set_mean_weights(vae, dims, scale):
    """Scale the encoder's mean output for ``dims`` and make q(z|x) = N(mu, 1)
    there (log-variance 0): KL = mu**2 / 2, tiny for a tiny scale."""
    last = vae.module_.encoder[-1]
    k = vae.n_components
    with torch.no_grad():
        for d in dims:
            last.weight[d] *= scale
            last.bias[d] *= scale
            last.weight[k + d] = 0.0
            last.bias[k + d] = 0.0


def test_collapse_is_visible_although_the_plain_silhouette_is_not_fooled(digits):
    """Scaling a dimension's codes down leaves the silhouette unchanged (it is
    scale-invariant) but makes the dimension inactive: the diagnostics say so."""
    X, y = digits
    vae = _fit(_vae(recon_weight=64.0, max_iter=20), X)
    before = latent_clustering_scores(vae, X, y)
    assert before["active_units"] == 2

    _set_mean_weights(vae, [0, 1], 1e-3)
    after = latent_clustering_scores(vae, X, y)

    assert after["silhouette"] == pytest.approx(before["silhouette"], rel=1e-6)
    assert after["active_units"] == 0
    assert after["collapsed"] is True
    assert after["silhouette_active"] == -1.0
    assert np.all(after["latent_std"] < 1e-2)
    assert latent_silhouette_scorer(vae, X, y) == -1.0


def test_partial_collapse_scores_the_active_dimension_only(digits):
    X, y = digits
    vae = _fit(_vae(recon_weight=64.0, max_iter=20), X)
    _set_mean_weights(vae, [1], 1e-3)
    Z = vae.transform(X)

    scores = latent_clustering_scores(vae, X, y)

    assert scores["active_units"] == 1
    assert scores["collapsed"] is True
    assert scores["silhouette_active"] == silhouette_score(Z[:, [0]], y)
    assert latent_silhouette_scorer(vae, X, y) == scores["silhouette_active"]


def test_identical_codes_give_documented_values_not_nan(digits, fitted):
    X, y = digits
    vae = _fit(_vae(), X)
    with torch.no_grad():
        last = vae.module_.encoder[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.5, -0.5, 0.0, 0.0]))

    scores = latent_clustering_scores(vae, X, y)

    assert scores["silhouette"] == 0.0
    assert scores["davies_bouldin"] == 0.0
    assert scores["calinski_harabasz"] == 1.0
    # KL of N(+-0.5, 1) is 0.125 > threshold: active, yet constant.
    assert scores["active_units"] == 2
    assert scores["silhouette_active"] == 0.0
    assert_array_equal(scores["latent_std"], 0.0)


def test_degenerate_labels_raise_clearly(digits, fitted):
    X, y = digits
    for bad_y in (np.zeros(300), np.arange(300)):
        with pytest.raises(ValueError, match="need 2 to n_samples - 1 = 299 distinct"):
            latent_clustering_scores(fitted, X, bad_y)
        with pytest.raises(ValueError, match="distinct labels"):
            latent_silhouette_scorer(fitted, X, bad_y)
    with pytest.raises(ValueError, match="need class labels y"):
        latent_silhouette_scorer(fitted, X, None)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        latent_clustering_scores(fitted, X, y[:10])
    with pytest.raises(NotFittedError):
        latent_silhouette_scorer(_vae(), X, y)
    with pytest.raises(ValueError, match="X has 10 features"):
        latent_clustering_scores(fitted, X[:, :10], y)


def test_diverged_codes_raise_clearly(digits):
    X, y = digits
    vae = _fit(_vae(), X)
    with torch.no_grad():
        vae.module_.encoder[0].weight[0, 0] = float("nan")

    with pytest.raises(ValueError, match="NaN or infinity.*diverged"):
        latent_silhouette_scorer(vae, X, y)


def test_scorer_works_in_grid_search(digits):
    X, y = digits
    search = GridSearchCV(
        VAETransformer(likelihood="bernoulli", max_iter=3, random_state=0),
        {"recon_weight": [1, 8, "auto"]},
        scoring=latent_silhouette_scorer,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)

    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (3,)
    assert np.all(np.isfinite(scores))
    assert np.all((-1.0 <= scores) & (scores <= 1.0))
    assert search.best_params_["recon_weight"] in (1, 8, "auto")
    assert search.best_score_ == scores.max()
    assert search.score(X, y) == latent_silhouette_scorer(search.best_estimator_, X, y)


def test_scorer_works_in_cross_validate_with_a_pipeline(digits):
    X, y = digits
    X_raw = X * 16  # the pipeline scales it back into [0, 1]
    # clip: a held-out fold may leave the training range, and 'bernoulli'
    # scores only values in [0, 1].
    pipe = make_pipeline(MinMaxScaler(clip=True), _vae(recon_weight=64.0, max_iter=3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = cross_validate(
            pipe,
            X_raw,
            y,
            cv=KFold(3, shuffle=True, random_state=0),
            scoring={
                "silhouette": latent_silhouette_scorer,
                "elbo": lambda estimator, X, y: estimator.score(X),
            },
            return_estimator=True,
            return_indices=True,
        )

    for fold, estimator in enumerate(result["estimator"]):
        test = result["indices"]["test"][fold]
        scores = latent_clustering_scores(estimator, X_raw[test], y[test])
        assert result["test_silhouette"][fold] == scores["silhouette_active"]
        Z = estimator.transform(X_raw[test])
        assert scores["silhouette"] == silhouette_score(Z, y[test])
    assert np.all(np.isfinite(result["test_elbo"]))


def test_one_class_folds_fail_loudly_in_a_search(digits):
    """Unshuffled folds of sorted labels hold one class: the search says so."""
    X, y = digits
    order = np.argsort(y < 5, kind="stable")
    X_sorted, y_sorted = X[order], (y[order] < 5).astype(int)
    search = GridSearchCV(
        _vae(max_iter=2),
        {"recon_weight": [8]},
        scoring=latent_silhouette_scorer,
        cv=KFold(2),
        error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="fold with a single class"):
            search.fit(X_sorted, y_sorted)


def test_pandas_output_of_the_steps_gives_no_feature_name_warning(digits):
    """A VAE fitted on a DataFrame (from set_output) is scored without the
    'X does not have valid feature names' warning, and as its pipeline is."""
    pd = pytest.importorskip("pandas")
    X, y = digits
    X = pd.DataFrame(X, columns=[f"pixel{j}" for j in range(X.shape[1])])
    scaler = MinMaxScaler(clip=True).set_output(transform="pandas")
    pipe = _fit(make_pipeline(scaler, _vae()), X)
    assert hasattr(pipe[-1], "feature_names_in_")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = latent_clustering_scores(pipe, X, y)
        score = latent_silhouette_scorer(pipe, X, y)

    assert scores["silhouette"] == silhouette_score(pipe.transform(X), y)
    assert score == scores["silhouette_active"]
