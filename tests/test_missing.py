"""NaN means missing: training, encoding and scoring on the observed cells."""

import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score

from skvae import VAEOutlierDetector, VAETransformer
from skvae._vae import score_noise


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _data(n=300, seed=0):
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, 2)) @ rng.normal(size=(2, 5)) + 0.3 * rng.normal(
        size=(n, 5)
    )


def _holes(X, share, seed=1):
    X = X.copy()
    X[np.random.RandomState(seed).uniform(size=X.shape) < share] = np.nan
    return X


def _direct_elbo(vae, X_train, x):
    """The ELBO of row ``x`` over its observed cells, computed from scratch.

    Encoder input: missing cells filled with the training column means (and,
    for a model trained with holes, the mask of observed cells); the
    Gaussian log-densities of the observed cells from scipy, in float64.
    """
    module = vae.module_.double()
    observed = ~np.isnan(x)
    filled = np.where(observed, x, np.nanmean(X_train, axis=0))
    inputs = filled
    if vae.module_.likelihood.mask_inputs:
        inputs = np.concatenate([filled, observed.astype(float)])
    eps = score_noise(vae.n_components, torch.float64, "cpu").numpy()
    with torch.no_grad():
        out = module.encoder(torch.from_numpy(inputs[None])).numpy()[0]
        mean, logvar = np.split(out, 2)
        z = mean + np.exp(0.5 * logvar) * eps
        decoded = module.decoder(torch.from_numpy(z)).numpy()
    vae.module_.float()
    loglik = stats.norm.logpdf(x[observed], loc=decoded[:, observed]).sum(axis=1)
    kl = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1 - logvar)
    return loglik.mean() - kl


@pytest.mark.parametrize("trained_with_holes", [False, True])
def test_score_and_code_of_a_row_with_holes_against_a_direct_computation(
    trained_with_holes,
):
    X = _data()
    X_train = _holes(X, 0.2) if trained_with_holes else X
    vae = VAETransformer(max_iter=20, random_state=0).fit(X_train)
    assert vae.module_.likelihood.mask_inputs == trained_with_holes
    rows = _holes(X[:6], 0.4, seed=3).astype(np.float64)
    rows[0, :] = X[0]  # one complete row
    scores = vae.score_samples(rows)
    for row, score in zip(rows, scores, strict=True):
        assert score == pytest.approx(_direct_elbo(vae, X_train, row), rel=1e-6)
    assert np.isfinite(vae.transform(rows)).all()


def test_a_row_with_every_cell_missing_is_the_prior():
    X = _data()
    vae = VAETransformer(max_iter=10, random_state=0).fit(_holes(X, 0.2))
    empty = np.full((2, 5), np.nan)
    np.testing.assert_array_equal(vae.transform(empty), 0.0)
    # Nothing observed: no likelihood term, and the posterior is the prior.
    np.testing.assert_array_equal(vae.score_samples(empty), 0.0)
    assert vae.inverse_transform(vae.transform(empty)).shape == (2, 5)


def test_infinity_is_still_an_error_and_nothing_is_mutated():
    X = _holes(_data(), 0.1)
    X[4, 2] = np.inf
    before = X.copy()
    with pytest.raises(ValueError, match="infinity"):
        VAETransformer(max_iter=2).fit(X)
    np.testing.assert_array_equal(X, before)


def test_the_loss_counts_observed_cells_only():
    X = _data()
    a = VAETransformer(max_iter=5, random_state=0).fit(_holes(X, 0.3))
    assert np.isfinite(a.loss_curve_).all()
    # With 30% of the cells missing the reconstruction term is about 70% of
    # the complete data's: the missing cells add nothing.
    complete = VAETransformer(max_iter=5, random_state=0).fit(X)
    ratio = a.reconstruction_curve_[0] / complete.reconstruction_curve_[0]
    assert 0.6 < ratio < 0.8


def test_partial_fit_and_streaming_carry_nan(tmp_path):
    X = _holes(_data(2000), 0.2).astype(np.float32)
    path = tmp_path / "x.dat"
    memmap = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    memmap[:] = X
    memmap.flush()
    streamed = VAETransformer(max_iter=2, buffer_size=400, random_state=0)
    streamed.fit(np.memmap(path, dtype=np.float32, mode="r", shape=X.shape))
    assert np.isfinite(streamed.loss_curve_).all()
    assert np.isfinite(streamed.transform(X)).all()
    incremental = VAETransformer(random_state=0)
    for chunk in np.array_split(X, 4):
        incremental.partial_fit(chunk)
    assert np.isfinite(incremental.score_samples(X)).all()


def test_dask_transform_with_nan_equals_in_memory():
    da = pytest.importorskip("dask.array")
    X = _holes(_data(), 0.2)
    vae = VAETransformer(max_iter=5, random_state=0).fit(X)
    lazy = vae.transform(da.from_array(X, chunks=(70, 5)))
    np.testing.assert_allclose(lazy.compute(), vae.transform(X), rtol=1e-6)


def test_detector_scores_are_comparable_across_missingness_patterns():
    # With unit-variance cells every observed cell costs nats: the raw
    # bound of a row with holes is higher, so holes alone would look normal.
    X = _data(1200)
    train, normal = X[:800], X[800:]
    detector = VAEOutlierDetector(
        likelihood="gaussian", max_iter=60, random_state=0
    ).fit(train)
    holed = _holes(normal, 0.4, seed=5)
    complete_scores = detector.score_samples(normal)
    holed_scores = detector.score_samples(holed)
    labels = np.r_[np.zeros(len(normal)), np.ones(len(normal))]
    auc = roc_auc_score(labels, np.r_[complete_scores, holed_scores])
    assert 0.35 < auc < 0.65, auc
    # The bound alone (the score plus what the missing cells are charged)
    # would put the rows with holes ahead of the complete ones.
    charged = np.isnan(holed) @ detector.column_nll_
    raw_auc = roc_auc_score(labels, np.r_[complete_scores, holed_scores + charged])
    assert raw_auc > 0.9, raw_auc
    # Rows far from the data still stand out with holes.
    outliers = _holes(normal[:50] + 6.0, 0.4, seed=6)
    auc_outliers = roc_auc_score(
        np.r_[np.ones(len(holed)), np.zeros(50)],
        np.r_[holed_scores, detector.score_samples(outliers)],
    )
    assert auc_outliers > 0.95
    contributions = detector.feature_contributions(holed[:5])
    np.testing.assert_array_equal(np.isnan(contributions), np.isnan(holed[:5]))
