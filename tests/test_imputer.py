"""VAEImputer: importance-weighted imputation, tables, and scikit-learn's contract."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _linear_gaussian import LinearGaussianVAE
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from skvae import VAEImputer


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def quick(**params):
    defaults = dict(
        n_components=2,
        hidden_layer_sizes=(16,),
        max_iter=20,
        n_importance_samples=20,
        random_state=0,
    )
    return VAEImputer(**{**defaults, **params})


def data_with_holes(n_samples=120, n_features=5, rate=0.3, seed=0):
    rng = np.random.RandomState(seed)
    latent = rng.normal(size=(n_samples, 2))
    X = latent @ rng.normal(size=(2, n_features))
    X += 0.2 * rng.normal(size=X.shape)
    holes = rng.uniform(size=X.shape) < rate
    X_missing = X.copy()
    X_missing[holes] = np.nan
    return X, X_missing, holes


# -- scikit-learn's contract ----------------------------------------------------


@parametrize_with_checks(
    [
        quick(max_iter=5),
        quick(max_iter=5, sample_posterior=True),
        quick(max_iter=5, add_indicator=True, keep_empty_features=True),
        quick(max_iter=5, likelihood="calibrated_gaussian"),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_works_in_a_pipeline_and_a_grid_search():
    X, X_missing, _ = data_with_holes(n_samples=90)
    y = X[:, 0] + X[:, 1]
    pipe = make_pipeline(quick(max_iter=5), LinearRegression())
    search = GridSearchCV(pipe, {"vaeimputer__n_components": [1, 2]}, cv=3)
    search.fit(X_missing, y)
    assert search.best_params_["vaeimputer__n_components"] in (1, 2)
    assert np.isfinite(search.predict(X_missing)).all()


# -- the importance-weighted imputation ------------------------------------------


def _mlp_numpy(sequential, h):
    for layer in sequential:
        if isinstance(layer, nn.Linear):
            weight = layer.weight.detach().double().numpy()
            bias = layer.bias.detach().double().numpy()
            h = h @ weight.T + bias
        else:
            assert isinstance(layer, nn.ReLU)
            h = np.maximum(h, 0.0)
    return h


def _documented_draws(random_state, n_draws, n_components):
    # The docstring's contract: one torch generator per call, seeded from
    # check_random_state(random_state).
    seed = int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_draws, n_components, generator=generator).double().numpy()


def test_imputation_equals_brute_force_numpy():
    X, X_missing, holes = data_with_holes(n_samples=60, n_features=4)
    X_missing[7] = np.nan  # a row with nothing observed: the prior
    n_draws = 50
    imputer = quick(
        likelihood="gaussian",
        activation="relu",
        n_importance_samples=n_draws,
        random_state=3,
    ).fit(X_missing)
    filled = imputer.transform(X_missing)

    module = imputer.vae_.module_
    fill = module.likelihood.fill.double().numpy()
    eps = _documented_draws(3, n_draws, 2)
    expected = X_missing.copy()
    for i, row in enumerate(X_missing):
        missing = np.isnan(row)
        if not missing.any():
            continue
        encoder_input = np.concatenate([np.where(missing, fill, row), ~missing])
        mean, logvar = np.split(_mlp_numpy(module.encoder, encoder_input), 2)
        if missing.all():
            mean, logvar = np.zeros(2), np.zeros(2)
        logvar = np.clip(logvar, -30, 20)
        z = mean + np.exp(0.5 * logvar) * eps  # (K, d)
        decoded = _mlp_numpy(module.decoder, z)  # (K, p): unit-variance means
        log_lik = -0.5 * ((row - decoded) ** 2 + math.log(2 * math.pi))
        log_lik = np.where(missing, 0.0, log_lik).sum(axis=1)
        log_prior = -0.5 * (z**2).sum(axis=1)
        log_q = -0.5 * (eps**2 + logvar).sum(axis=1)
        log_w = log_lik + log_prior - log_q
        w = np.exp(log_w - log_w.max())
        w /= w.sum()
        expected[i, missing] = (w @ decoded)[missing]
    assert_allclose(filled, expected, rtol=1e-10, atol=1e-10)
    # The weights matter: the unweighted mean of the draws is another answer.
    assert np.abs(filled[holes] - X[holes]).max() > 0


def test_imputation_is_the_exact_conditional_mean_of_a_linear_gaussian_model():
    rng = np.random.RandomState(0)
    q, _ = np.linalg.qr(rng.normal(size=(4, 2)))
    weight = q * np.array([2.0, 1.0])
    bias = rng.normal(size=4)
    sigma = 0.5
    X = rng.normal(size=(40, 2)) @ weight.T + bias + sigma * rng.normal(size=(40, 4))
    X_missing = X.copy()
    X_missing[rng.uniform(size=X.shape) < 0.4] = np.nan
    X_missing[0] = np.nan
    X_missing[1, :3] = np.nan
    imputer = quick(likelihood="calibrated_gaussian", max_iter=1).fit(X_missing)
    imputer.vae_.module_ = LinearGaussianVAE(
        weight, bias, math.log(sigma), shift=0.3, widen=3.0
    )
    imputer.set_params(n_importance_samples=200_000)
    filled = imputer.transform(X_missing)

    covariance = weight @ weight.T + sigma**2 * np.eye(4)
    exact = X_missing.copy()
    proposal_mean = X_missing.copy()
    for i, row in enumerate(X_missing):
        m = np.isnan(row)
        o = ~m
        if not m.any():
            continue
        gain = covariance[np.ix_(m, o)] @ np.linalg.pinv(covariance[np.ix_(o, o)])
        exact[i, m] = bias[m] + gain @ (row[o] - bias[o])
        code = imputer.vae_.module_.encode(torch.from_numpy(row[None]))[0]
        proposal_mean[i, m] = (bias + weight @ code.detach().numpy()[0])[m]
    missing = np.isnan(X_missing)
    assert_allclose(filled[missing], exact[missing], atol=0.03)
    # Without the weights, the proposal's own mean is far from it.
    assert np.abs(proposal_mean[missing] - exact[missing]).max() > 0.2


def test_observed_cells_come_back_bitwise_unchanged():
    _, X_missing, holes = data_with_holes()
    for dtype in (np.float64, np.float32):
        X = X_missing.astype(dtype)
        before = X.copy()
        filled = quick().fit(X).transform(X)
        assert filled.dtype == dtype
        assert_array_equal(filled[~holes], X[~holes])
        assert np.isfinite(filled).all()
        assert_array_equal(X, before)  # the input is not modified


def test_complete_rows_and_row_order_do_not_change_the_answer():
    _, X_missing, _ = data_with_holes()
    imputer = quick().fit(X_missing)
    full = imputer.transform(X_missing)
    assert_array_equal(full, imputer.transform(X_missing))
    order = np.random.RandomState(1).permutation(len(X_missing))
    assert_allclose(imputer.transform(X_missing[order]), full[order], rtol=1e-12)
    assert_allclose(imputer.transform(X_missing[:7]), full[:7], rtol=1e-12)


def test_a_row_with_nothing_observed_gets_finite_values():
    _, X_missing, _ = data_with_holes()
    X_missing[3] = np.nan
    filled = quick().fit(X_missing).transform(X_missing)
    assert np.isfinite(filled[3]).all()


# -- multiple imputation ----------------------------------------------------------


def test_sample_posterior_is_reproducible_per_seed_and_differs_across_seeds():
    _, X_missing, holes = data_with_holes()
    imputer = quick(sample_posterior=True).fit(X_missing)
    first = imputer.transform(X_missing)
    assert_array_equal(first, imputer.transform(X_missing))
    assert_array_equal(first[~holes], X_missing[~holes])
    other = clone(imputer).set_params(random_state=1).fit(X_missing)
    second = other.transform(X_missing)
    assert np.all(first[holes] != second[holes])
    # Same model, other draws: the draws vary around the single imputation.
    imputer.set_params(random_state=5)
    third = imputer.transform(X_missing)
    assert np.all(first[holes] != third[holes])


def test_sample_posterior_draws_spread_around_the_mean_imputation():
    _, X_missing, holes = data_with_holes(n_samples=60)
    imputer = quick(max_iter=50).fit(X_missing)
    mean = imputer.transform(X_missing)
    imputer.set_params(sample_posterior=True)
    draws = np.stack(
        [imputer.set_params(random_state=s).transform(X_missing) for s in range(40)]
    )
    spread = draws[:, holes].std(axis=0)
    assert np.all(spread > 0)
    # The average of 40 draws is near the mean imputation (a few standard errors).
    error = np.abs(draws[:, holes].mean(axis=0) - mean[holes])
    assert np.median(error / (spread / np.sqrt(40))) < 3


# -- tables ------------------------------------------------------------------------


def penguins():
    from palmerpenguins import load_penguins

    table = load_penguins()
    table["sex"] = table["sex"].astype("category")
    rng = np.random.RandomState(0)
    counts = pd.array(rng.poisson(3.0, size=len(table)), dtype="Int64")
    counts[rng.uniform(size=len(table)) < 0.2] = pd.NA
    table["chicks"] = counts
    table.loc[rng.uniform(size=len(table)) < 0.15, "sex"] = np.nan
    table.index = table.index + 1000
    return table


def test_a_table_comes_back_with_its_dtypes_levels_and_observed_cells():
    table = penguins()
    before = table.copy()
    imputer = quick(max_iter=10).fit(table)
    assert dict(imputer.vae_.likelihoods_)["categorical"] == [
        "species",
        "island",
        "sex",
    ]
    filled = imputer.transform(table)
    pd.testing.assert_frame_equal(table, before)  # not modified
    assert list(filled.columns) == list(table.columns)
    assert filled.index.equals(table.index)
    assert list(filled.dtypes) == list(table.dtypes)
    assert not filled.isna().any().any()
    assert set(filled["sex"]) <= {"female", "male"}
    assert list(filled["sex"].cat.categories) == list(table["sex"].cat.categories)
    chicks = filled["chicks"].to_numpy(dtype=float)
    assert np.all(chicks >= 0) and np.all(chicks == np.round(chicks))
    observed = table.notna().to_numpy()
    for j, column in enumerate(table.columns):
        kept = observed[:, j]
        assert filled[column][kept].equals(table[column][kept]), column


def test_sampled_categories_and_counts_are_seen_levels_and_integers():
    table = penguins()
    imputer = quick(max_iter=10, sample_posterior=True).fit(table)
    filled = imputer.transform(table)
    assert set(filled["sex"]) <= {"female", "male"}
    chicks = filled["chicks"].to_numpy(dtype=float)
    assert np.all(chicks >= 0) and np.all(chicks == np.round(chicks))
    assert not filled.isna().any().any()


# -- scikit-learn's imputer parameters -----------------------------------------------


@pytest.mark.parametrize("keep", [False, True])
def test_keep_empty_features(keep):
    _, X_missing, holes = data_with_holes()
    X_missing[:, 2] = np.nan
    imputer = quick(keep_empty_features=keep).fit(X_missing)
    filled = imputer.transform(X_missing)
    names = ["x0", "x1", "x2", "x3", "x4"]
    if keep:
        assert filled.shape == X_missing.shape
        assert_array_equal(filled[:, 2], 0.0)
        assert list(imputer.get_feature_names_out()) == names
    else:
        assert filled.shape == (X_missing.shape[0], 4)
        assert_array_equal(filled[~holes[:, [0, 1, 3, 4]]],
                           X_missing[:, [0, 1, 3, 4]][~holes[:, [0, 1, 3, 4]]])
        assert list(imputer.get_feature_names_out()) == ["x0", "x1", "x3", "x4"]
    assert imputer.vae_.n_features_in_ == 4


def test_add_indicator_appends_the_mask_of_features_with_holes():
    _, X_missing, _ = data_with_holes()
    X_missing[:, 1] = np.arange(len(X_missing))  # no hole in x1
    imputer = quick(add_indicator=True).fit(X_missing)
    filled = imputer.transform(X_missing)
    assert filled.shape == (len(X_missing), 5 + 4)
    assert_array_equal(filled[:, 5:], np.isnan(X_missing[:, [0, 2, 3, 4]]))
    assert list(imputer.get_feature_names_out())[5:] == [
        "missingindicator_x0",
        "missingindicator_x2",
        "missingindicator_x3",
        "missingindicator_x4",
    ]
    frame = pd.DataFrame(X_missing, columns=list("abcde"))
    out = quick(add_indicator=True).set_output(transform="pandas").fit(frame)
    assert list(out.transform(frame).columns)[5:] == [
        "missingindicator_a",
        "missingindicator_c",
        "missingindicator_d",
        "missingindicator_e",
    ]


def test_a_marker_other_than_nan_is_replaced_like_nan():
    _, X_missing, holes = data_with_holes()
    marked = np.where(holes, -999.0, X_missing)
    by_nan = quick().fit(X_missing).transform(X_missing)
    by_marker = quick(missing_values=-999.0).fit(marked).transform(marked)
    assert_array_equal(by_marker, by_nan)
    with pytest.raises(ValueError, match="NaN"):
        quick(missing_values=-999.0).fit(X_missing)


def test_a_marker_in_an_integer_column_of_a_table():
    frame = pd.DataFrame(
        {
            "a": np.random.RandomState(0).normal(size=80),
            "n": np.random.RandomState(1).poisson(4, size=80),
        }
    )
    frame.loc[::5, "n"] = -1
    filled = quick(missing_values=-1).fit(frame).transform(frame)
    assert filled["n"].dtype == np.int64
    assert (filled["n"] >= 0).all()
    assert_array_equal(filled["n"][frame["n"] != -1], frame["n"][frame["n"] != -1])


def test_infinity_and_strings_are_refused_and_nothing_changes():
    X, X_missing, _ = data_with_holes()
    imputer = quick().fit(X_missing)
    vae = imputer.vae_
    bad = X_missing.copy()
    bad[4, 2] = np.inf
    before = bad.copy()
    with pytest.raises(ValueError, match="infinity"):
        imputer.fit(bad)
    with pytest.raises(ValueError, match="infinity"):
        imputer.transform(bad)
    assert_array_equal(bad, before)
    assert imputer.vae_ is vae
    text = X_missing.astype(object)
    text[3, 1] = "abc"
    with pytest.raises(ValueError, match="abc"):
        imputer.fit(text)
    assert imputer.vae_ is vae
    frame = pd.DataFrame(X_missing, columns=list("abcde"))
    frame["b"] = frame["b"].astype(object)
    frame.loc[3, "b"] = "abc"
    copy = frame.copy()
    with pytest.raises(ValueError, match="abc"):
        quick(likelihood=[("calibrated_gaussian", list("abcde"))]).fit(frame)
    pd.testing.assert_frame_equal(frame, copy)


def test_every_feature_missing_is_an_error():
    X = np.full((10, 3), np.nan)
    with pytest.raises(ValueError, match="nothing to learn"):
        quick().fit(X)
