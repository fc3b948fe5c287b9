"""Tests of skvae.analysis._jacobian: the encoder's Jacobian and its summary."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import NotFittedError

from skvae import VAETransformer
from skvae.analysis import encoder_jacobian, latent_feature_importance


def _fit(X, **params):
    params = {"n_components": 3, "max_iter": 5, "random_state": 0, **params}
    with warnings.catch_warnings():
        # A short fit does not converge and may collapse: not what is tested.
        warnings.simplefilter("ignore")
        return VAETransformer(**params).fit(X)


def central_difference_of_transform(transform, X, step):
    """``(n, n_components, n_features)`` central differences, one call in all."""
    n_samples, n_features = X.shape
    offsets = step * np.eye(n_features)
    # (n, 2 n_features, n_features): every row shifted up and down each feature.
    shifted = np.concatenate(
        [X[:, np.newaxis] + offsets, X[:, np.newaxis] - offsets], axis=1
    )
    Z = np.asarray(transform(shifted.reshape(-1, n_features)))
    Z = Z.reshape(n_samples, 2 * n_features, -1)
    return np.transpose((Z[:, :n_features] - Z[:, n_features:]) / (2 * step), (0, 2, 1))


@pytest.fixture(scope="module")
def training_data():
    rng = np.random.RandomState(0)
    return rng.uniform(size=(150, 7))


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_encoder_jacobian_matches_central_differences_of_transform(
    training_data, activation, likelihood
):
    vae = _fit(training_data, activation=activation, likelihood=likelihood)
    points = np.random.RandomState(1).uniform(-0.5, 1.5, size=(25, 7))

    J = encoder_jacobian(vae, points)

    assert J.shape == (25, 3, 7)
    assert J.dtype == np.float64
    reference = central_difference_of_transform(vae.transform, points, 1e-6)
    relative_error = np.max(np.abs(J - reference)) / np.max(np.abs(J))
    assert relative_error < 1e-6


def test_encoder_jacobian_of_hand_made_linear_encoder_is_exact(training_data):
    """With integer weights and active ReLUs, J = (W2 @ W1)[:n_components]."""
    vae = _fit(training_data[:, :4], n_components=2, hidden_layer_sizes=(3,))
    first, last = vae.module_.encoder[0], vae.module_.encoder[2]
    rng = np.random.RandomState(0)
    W1 = rng.randint(-3, 4, size=(3, 4)).astype(float)
    W2 = rng.randint(-3, 4, size=(4, 3)).astype(float)
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(W1))
        # A bias large enough that every ReLU is on for inputs in [0, 1].
        first.bias.fill_(100.0)
        last.weight.copy_(torch.from_numpy(W2))
    X = rng.uniform(size=(6, 4))

    J = encoder_jacobian(vae, X)

    assert_array_equal(J, np.broadcast_to((W2 @ W1)[:2], (6, 2, 4)))


def test_encoder_jacobian_dtype_follows_input(training_data):
    vae = _fit(training_data)
    X64 = training_data[:10]

    J32 = encoder_jacobian(vae, X64.astype(np.float32))
    J64 = encoder_jacobian(vae, X64)

    assert J32.dtype == np.float32
    assert J64.dtype == np.float64
    assert_allclose(J32, J64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_encoder_jacobian_does_not_depend_on_batch_size(training_data, batch_size):
    vae = _fit(training_data)
    X = training_data[:30]

    assert_allclose(
        encoder_jacobian(vae, X, batch_size=batch_size),
        encoder_jacobian(vae, X),
        rtol=1e-12,
        atol=1e-15,
    )


def test_caller_arrays_are_neither_mutated_nor_required_writable(training_data):
    vae = _fit(training_data)
    X = training_data[:12].copy()
    X.setflags(write=False)
    before = X.copy()

    with warnings.catch_warnings():
        # torch warns when it is handed a read-only array: it must not be.
        warnings.simplefilter("error")
        J = encoder_jacobian(vae, X)
        latent_feature_importance(vae, X)

    assert_array_equal(X, before)
    assert J.flags.writeable


def test_encoder_jacobian_rejects_bad_input(training_data):
    vae = _fit(training_data)
    with pytest.raises(ValueError, match="X has 5 features"):
        encoder_jacobian(vae, training_data[:, :5])
    with pytest.raises(NotFittedError):
        encoder_jacobian(VAETransformer(), training_data)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        encoder_jacobian(vae, training_data, batch_size=0)
    with pytest.raises(TypeError, match="Expected a fitted VAETransformer"):
        encoder_jacobian(object(), training_data)


def test_latent_feature_importance_summarises_the_jacobian():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.uniform(size=(80, 5)), columns=list("abcde"))
    vae = _fit(X, n_components=2)
    J = encoder_jacobian(vae, X)
    mean_gradient = J.mean(axis=0)

    table = latent_feature_importance(vae, X)

    assert list(table.columns) == [
        "component",
        "feature",
        "direction",
        "rank",
        "mean_gradient",
        "mean_abs_gradient",
        "sign_agreement",
    ]
    assert len(table) == 2 * 5
    assert list(table["component"].unique()) == ["z0", "z1"]
    for k, component in enumerate(["z0", "z1"]):
        rows = table[table["component"] == component]
        for _, row in rows.iterrows():
            j = "abcde".index(row["feature"])
            assert row["mean_gradient"] == pytest.approx(mean_gradient[k, j])
            assert row["mean_abs_gradient"] == pytest.approx(np.abs(J[:, k, j]).mean())
            sign = np.sign(mean_gradient[k, j])
            assert row["sign_agreement"] == pytest.approx(
                np.mean(np.sign(J[:, k, j]) == sign)
            )
            assert row["direction"] == {1: "raises", -1: "lowers"}[sign]
        # 'raises' first, each direction ranked 1, 2, ... by |mean_gradient|.
        directions = list(rows["direction"])
        assert directions == sorted(directions, key=["raises", "lowers"].index)
        for direction in ("raises", "lowers"):
            ranked = rows[rows["direction"] == direction]
            assert list(ranked["rank"]) == list(range(1, len(ranked) + 1))
            strength = np.abs(ranked["mean_gradient"].to_numpy())
            assert np.all(np.diff(strength) <= 0)


def test_latent_feature_importance_n_top_and_default_names(training_data):
    vae = _fit(training_data)

    table = latent_feature_importance(vae, training_data, n_top=2)

    assert set(table["feature"]) <= {f"x{j}" for j in range(7)}
    assert table["rank"].max() <= 2
    counts = table.groupby(["component", "direction"]).size()
    assert counts.max() == 2
    with pytest.raises(ValueError, match="n_top must be a positive integer"):
        latent_feature_importance(vae, training_data, n_top=0)
