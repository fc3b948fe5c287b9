"""The analysis functions on a model of a mixed table (numbers, counts, levels).

A categorical column has one analysis feature per level: its probability on
the decoder side, its one-hot indicator on the encoder side, named
``<column>_<level>`` and placed where the column is in the table.
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

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

NAMES = ["a", "sp_x", "sp_y", "sp_z", "k", "c"]


def _fit(X, **params):
    params = {
        "n_components": 2,
        "likelihood": "auto",
        "activation": "tanh",
        "max_iter": 5,
        "random_state": 0,
        **params,
    }
    with warnings.catch_warnings():
        # A short fit does not converge and may collapse: not what is tested.
        warnings.simplefilter("ignore")
        return VAETransformer(**params).fit(X)


@pytest.fixture(scope="module")
def table():
    """Two float columns apart, a 3-level category and a count between them."""
    rng = np.random.RandomState(0)
    n = 150
    species = rng.choice(["x", "y", "z"], size=n)
    shift = pd.Series(species).map({"x": -1.0, "y": 0.0, "z": 1.0}).to_numpy()
    return pd.DataFrame(
        {
            "a": shift + 0.3 * rng.normal(size=n),
            "sp": pd.Categorical(species),
            "k": rng.poisson(np.exp(1.0 + 0.5 * shift)),
            "c": -shift + 0.3 * rng.normal(size=n),
        }
    )


@pytest.fixture(scope="module")
def vae(table):
    model = _fit(table)
    # The layout the tests rely on: the two float columns share one block,
    # so the likelihood's own order (a, c, levels, k) is not the table's.
    assert model.likelihoods_ == [
        ("calibrated_gaussian", ["a", "c"]),
        ("categorical", ["sp"]),
        ("negative_binomial", ["k"]),
    ]
    return model


def test_names_and_shapes_follow_the_table(vae, table):
    Z = vae.transform(table)

    assert encoder_jacobian(vae, table[:7]).shape == (7, 2, 6)
    assert decoder_jacobian(vae, Z[:7]).shape == (7, 6, 2)
    assert decoder_finite_differences(vae, Z[:7]).shape == (7, 6, 2)
    assert latent_traversal(vae, values=[-1.0, 0.0, 1.0]).shape == (3, 6)
    importance = latent_feature_importance(vae, table)
    assert sorted(importance["feature"].unique()) == sorted(NAMES)
    assert importance.shape == (2 * 6, 7)


def test_decoder_finite_differences_agree_with_decoder_jacobian(vae, table):
    Z = vae.transform(table[:20])

    J = decoder_jacobian(vae, Z)
    D = decoder_finite_differences(vae, Z, step=1e-5)

    assert_allclose(D, J, rtol=0, atol=1e-8 * max(1.0, np.abs(J).max()))
    assert np.abs(J).max() > 1e-4


def test_numeric_features_are_the_columns_of_inverse_transform(vae, table):
    # Central differences of what the model returns for 'a' and 'c': a
    # mislabelled or misplaced feature would not match.
    Z = vae.transform(table[:10])
    h = 1e-5
    J = decoder_jacobian(vae, Z)
    for i in range(2):
        up, down = Z.copy(), Z.copy()
        up[:, i] += h
        down[:, i] -= h
        for j, column in ((0, "a"), (5, "c")):
            reference = (
                vae.inverse_transform(up)[column].to_numpy()
                - vae.inverse_transform(down)[column].to_numpy()
            ) / (2 * h)
            assert_allclose(J[:, j, i], reference, atol=1e-7)


def test_level_probabilities_sum_to_one_and_their_derivatives_to_zero(vae, table):
    Z = vae.transform(table[:25])
    values = np.linspace(-3.0, 3.0, 9)

    traversal = latent_traversal(vae, dim=0, values=values)
    J = decoder_jacobian(vae, Z)
    D = decoder_finite_differences(vae, Z, step=1e-5)

    probabilities = traversal[:, 1:4]
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    # The most probable level is the one inverse_transform gives.
    codes = np.zeros((len(values), 2))
    codes[:, 0] = values
    levels = vae.inverse_transform(codes)["sp"].astype(str).to_numpy()
    assert list(levels) == [["x", "y", "z"][i] for i in probabilities.argmax(axis=1)]
    assert_allclose(J[:, 1:4].sum(axis=1), 0.0, atol=1e-12)
    assert_allclose(D[:, 1:4].sum(axis=1), 0.0, atol=1e-9)
    assert np.abs(J[:, 1:4]).max() > 1e-4


def test_count_traversal_is_the_mean_not_the_rounded_count(vae):
    traversal = latent_traversal(vae, dim=1, values=np.linspace(-2.0, 2.0, 5))

    counts = traversal[:, 4]
    assert np.all(counts > 0)
    assert not np.allclose(counts, np.round(counts))


def test_encoder_jacobian_numeric_part_matches_differences_of_transform(vae, table):
    rows = table[:15].astype({"k": "float64"})
    J = encoder_jacobian(vae, rows)
    h = 1e-6
    for j, column in ((0, "a"), (4, "k"), (5, "c")):
        up, down = rows.copy(), rows.copy()
        up[column] += h
        down[column] -= h
        reference = (vae.transform(up) - vae.transform(down)) / (2 * h)
        assert_allclose(J[:, :, j], reference, rtol=1e-5, atol=1e-9)
        assert np.abs(reference).max() > 1e-5


def test_encoder_jacobian_level_part_is_the_derivative_on_the_one_hot_input(
    vae, table
):
    rows = table[:15]
    J = encoder_jacobian(vae, rows)
    module = copy.deepcopy(vae.module_).double()
    x = torch.as_tensor(
        np.column_stack(
            [
                rows["a"],
                rows["sp"].cat.codes.to_numpy().astype(float),
                rows["k"].astype(float),
                rows["c"],
            ]
        )
    )
    with torch.no_grad():
        encoded = module.likelihood.encode(x)
        # The encoder's input: a, c (one block), the three indicators, k.
        assert_allclose(encoded[:, 2:5].sum(dim=1).numpy(), 1.0)
        h = 1e-6
        for level in range(3):
            up, down = encoded.clone(), encoded.clone()
            up[:, 2 + level] += h
            down[:, 2 + level] -= h
            reference = (module.encoder(up) - module.encoder(down))[:, :2] / (2 * h)
            assert_allclose(J[:, :, 1 + level], reference.numpy(), atol=1e-8)
        assert np.abs(J[:, :, 1:4]).max() > 1e-5


def test_encoder_jacobian_of_numeric_table_is_autograd_through_encode(table):
    numbers = table[["a", "k", "c"]].astype({"k": "int64"})
    vae = _fit(numbers)
    assert [family for family, _ in vae.likelihoods_] == [
        "calibrated_gaussian",
        "negative_binomial",
    ]
    J = encoder_jacobian(vae, numbers[:12])

    module = copy.deepcopy(vae.module_).double()
    x = torch.as_tensor(numbers[:12].to_numpy(dtype=np.float64), dtype=torch.float64)
    x.requires_grad_(True)
    mean = module.encode(x)[0]
    reference = np.stack(
        [
            torch.autograd.grad(mean[:, k].sum(), x, retain_graph=True)[0].numpy()
            for k in range(2)
        ],
        axis=1,
    )
    assert_allclose(J, reference, rtol=1e-12, atol=1e-15)


def test_pipeline_space_through_steps_is_refused_for_levels(vae, table):
    identity = FunctionTransformer(feature_names_out="one-to-one").fit(table)
    pipeline = make_pipeline(identity, vae)
    Z = vae.transform(table[:5])

    for call in (
        lambda: encoder_jacobian(pipeline, table[:5]),
        lambda: decoder_jacobian(pipeline, Z),
        lambda: decoder_finite_differences(pipeline, Z),
        lambda: latent_traversal(pipeline),
        lambda: latent_feature_importance(pipeline, table),
    ):
        with pytest.raises(ValueError, match=r"categorical columns \(sp\).*'vae'"):
            call()
    # In the VAE's own space the steps do not matter.
    assert_allclose(
        encoder_jacobian(pipeline, table[:5], input_space="vae"),
        encoder_jacobian(vae, table[:5]),
    )
    importance = latent_feature_importance(pipeline, table, input_space="vae")
    assert sorted(importance["feature"].unique()) == sorted(NAMES)
    assert_allclose(
        latent_traversal(pipeline, input_space="vae"), latent_traversal(vae)
    )


def test_latent_coupling_and_clustering_read_the_table(vae, table):
    C = latent_coupling(vae, vae.transform(table))
    assert C.shape == (2, 2)
    assert np.all(np.isfinite(C))
    scores = latent_clustering_scores(vae, table, table["sp"])
    assert np.isfinite(scores["silhouette"])
