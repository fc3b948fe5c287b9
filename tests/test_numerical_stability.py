"""Finite input never gives a silent NaN or infinity: a finite result or an error."""

import warnings

import numpy as np
import pytest
import torch

from skvae import VAETransformer
from skvae._losses import elbo
from skvae.analysis import latent_clustering_scores, latent_silhouette_scorer

SCALES = [1.0, 100.0, 500.0, 1e3, 4e3, 1e5, 1e30]


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 6))
    return X, (X[:, 0] > 0).astype(int)


@pytest.fixture(scope="module", params=["gaussian", "calibrated_gaussian"])
def fitted(request, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(
            likelihood=request.param, max_iter=30, random_state=0
        ).fit(data[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("method", ["score_samples", "transform"])
def test_finite_input_gives_finite_output_or_names_the_rows(
    fitted, data, dtype, scale, method
):
    X = (data[0][:20] * scale).astype(dtype)
    try:
        out = getattr(fitted, method)(X)
    except ValueError as exc:
        assert "row indices [" in str(exc)
        assert "far outside the training data" in str(exc)
        return
    assert out.dtype == dtype
    assert np.all(np.isfinite(out))


def test_float32_scores_far_out_match_float64(fitted, data):
    # 500x the training scale overflows float32 activations; the rows are then
    # scored in float64 and must agree with the float64 scores.
    X = data[0][:20] * 500
    scores32 = fitted.score_samples(X.astype(np.float32))
    scores64 = fitted.score_samples(X)
    assert np.all(np.isfinite(scores32))
    np.testing.assert_allclose(scores32, scores64, rtol=1e-2)


def test_scores_rank_an_outlier_last(fitted, data):
    X = data[0][:50].copy()
    X[7] *= 1e3
    scores = fitted.score_samples(X)
    assert np.argsort(scores)[0] == 7


def test_elbo_sums_in_float64():
    # Terms finite in float32 whose sum over features overflows float32.
    module = VAETransformer(n_components=1, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = module.fit(np.zeros((4, 64)) + np.arange(4)[:, None]).module_
    x = torch.full((1, 64), 1e19)
    value = elbo(module, x, torch.zeros(1, 1))
    assert value.dtype == torch.float64
    expected = -(64 * (0.5 * 1e19**2 + 0.5 * np.log(2 * np.pi)))
    assert np.isfinite(value.item())
    np.testing.assert_allclose(value.item(), expected, rtol=1e-2)


def test_inverse_transform_of_huge_codes_is_finite_or_an_error(fitted):
    for scale in (1.0, 1e10, 1e30, 1e300):
        Z = np.full((3, 2), scale)
        try:
            out = fitted.inverse_transform(Z)
        except ValueError as exc:
            assert "row indices [0, 1, 2]" in str(exc)
        else:
            assert np.all(np.isfinite(out))


def test_clustering_scores_refuse_an_overflowed_kl(fitted, data):
    X, y = data
    with pytest.raises(ValueError, match="(overflows|NaN or infinity).*row indices"):
        latent_clustering_scores(fitted, X * 1e30, y)
    scores = latent_clustering_scores(fitted, X, y)
    assert np.all(np.isfinite(scores["kl_per_dimension"]))


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(lambda y: np.where(y, np.nan, 1.0), id="nan"),
        pytest.param(lambda y: np.where(y, None, 1).astype(object), id="none"),
    ],
)
@pytest.mark.parametrize("score", [latent_clustering_scores, latent_silhouette_scorer])
def test_missing_labels_are_refused(fitted, data, labels, score):
    X, y = data
    with pytest.raises(ValueError, match="missing labels"):
        score(fitted, X, labels(y))


@pytest.mark.parametrize("score", [latent_clustering_scores, latent_silhouette_scorer])
def test_mixed_type_labels_are_refused(fitted, data, score):
    X, y = data
    mixed = np.array(["a" if label else 1 for label in y], dtype=object)
    with pytest.raises(TypeError, match="mixes label types \\(int, str\\)"):
        score(fitted, X, mixed)
