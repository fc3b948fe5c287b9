"""Tests of skvae.analysis._common: pipelines in front of the VAE."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    RobustScaler,
    StandardScaler,
)

from skvae import VAETransformer
from skvae.analysis import (
    decoder_finite_differences,
    decoder_jacobian,
    encoder_jacobian,
    latent_coupling,
    latent_feature_importance,
)


def _vae(**params):
    params = {"n_components": 2, "max_iter": 5, "random_state": 0, **params}
    return VAETransformer(**params)


def _fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X)


def central_difference(function, X, step):
    """``(n, n_out, n_in)`` central differences of a row-wise ``function``."""
    columns = []
    for j in range(X.shape[1]):
        shift = np.zeros(X.shape[1])
        shift[j] = step[j]
        columns.append((function(X + shift) - function(X - shift)) / (2 * step[j]))
    return np.stack(columns, axis=2)


@pytest.fixture(scope="module")
def raw_data():
    """Features on very different scales and offsets, as scalers expect."""
    rng = np.random.RandomState(0)
    return rng.normal(size=(120, 5)) * [1.0, 30.0, 0.05, 4.0, 200.0] + [0, 5, -1, 2, 50]


@pytest.mark.parametrize(
    "steps",
    [
        [StandardScaler()],
        [MinMaxScaler()],
        [MaxAbsScaler()],
        [RobustScaler()],
        [StandardScaler(with_std=False), "passthrough", MaxAbsScaler()],
        [make_pipeline(MinMaxScaler(feature_range=(-1, 2))), StandardScaler()],
    ],
    ids=["standard", "minmax", "maxabs", "robust", "chain", "nested"],
)
def test_encoder_jacobian_chain_rule_matches_the_pipeline(raw_data, steps):
    pipe = _fit(make_pipeline(*steps, _vae(activation="tanh")), raw_data)
    points = raw_data[:15]

    J = encoder_jacobian(pipe, points)

    step = 1e-6 * raw_data.std(axis=0)
    reference = central_difference(pipe.transform, points, step)
    assert J.shape == (15, 2, 5)
    assert np.max(np.abs(J - reference)) / np.max(np.abs(J)) < 1e-6
    # The chain rule is not a no-op: the VAE alone differs.
    J_vae = encoder_jacobian(pipe[-1], pipe[:-1].transform(points))
    assert not np.allclose(J, J_vae)


def test_clipping_min_max_scaler_has_zero_derivative_outside_its_range(raw_data):
    pipe = _fit(make_pipeline(MinMaxScaler(clip=True), _vae()), raw_data)
    points = raw_data[:4].copy()
    points[0, 1] = raw_data[:, 1].max() + 10.0  # clipped feature 1
    points[1, 3] = raw_data[:, 3].min() - 10.0  # clipped feature 3

    J = encoder_jacobian(pipe, points)

    assert_array_equal(J[0, :, 1], 0.0)
    assert_array_equal(J[1, :, 3], 0.0)
    assert np.all(J[2:] != 0.0)
    step = 1e-6 * raw_data.std(axis=0)
    reference = central_difference(pipe.transform, points, step)
    assert_allclose(J, reference, rtol=1e-5, atol=1e-9)


def test_decoder_derivatives_map_back_through_the_pipeline(raw_data):
    pipe = _fit(make_pipeline(StandardScaler(), _vae(activation="tanh")), raw_data)
    Z = np.random.RandomState(1).normal(size=(6, 2))

    J = decoder_jacobian(pipe, Z)
    D = decoder_finite_differences(pipe, Z, step=1e-5)

    # The derivative of Pipeline.inverse_transform, in the raw features' units.
    reference = central_difference(pipe.inverse_transform, Z, np.full(2, 1e-6))
    assert J.shape == D.shape == (6, 5, 2)
    assert_allclose(J, reference, rtol=1e-6, atol=1e-8)
    assert_allclose(D, J, rtol=1e-6, atol=1e-8)


def test_latent_coupling_of_a_pipeline_is_that_of_its_vae(raw_data):
    pipe = _fit(make_pipeline(StandardScaler(), _vae()), raw_data)
    Z = np.random.RandomState(2).normal(size=(5, 2))

    assert_array_equal(latent_coupling(pipe, Z), latent_coupling(pipe[-1], Z))


def test_feature_names_come_from_the_pipeline(raw_data):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(raw_data, columns=["age", "dose", "ph", "temp", "mass"])
    pipe = _fit(make_pipeline(StandardScaler(), _vae()), X)

    table = latent_feature_importance(pipe, X)

    assert set(table["feature"]) == {"age", "dose", "ph", "temp", "mass"}


@pytest.mark.parametrize(
    "step",
    [PCA(n_components=5), FunctionTransformer(np.tanh)],
    ids=["pca", "function"],
)
def test_steps_without_a_known_derivative_are_refused_clearly(raw_data, step):
    pipe = _fit(make_pipeline(StandardScaler(), step, _vae()), raw_data)
    message = "Cannot differentiate through the pipeline step.*VAE's own input space"

    with pytest.raises(ValueError, match=message):
        encoder_jacobian(pipe, raw_data[:3])
    with pytest.raises(ValueError, match=message):
        decoder_jacobian(pipe, np.zeros((3, 2)))
    with pytest.raises(ValueError, match=message):
        decoder_finite_differences(pipe, np.zeros((3, 2)))
    # What the message suggests works.
    J = encoder_jacobian(pipe[-1], pipe[:-1].transform(raw_data[:3]))
    assert J.shape == (3, 2, 5)


def test_estimators_that_are_not_a_fitted_vae_are_refused(raw_data):
    with pytest.raises(TypeError, match="last step is a VAETransformer"):
        encoder_jacobian(_fit(make_pipeline(StandardScaler()), raw_data), raw_data)
    with pytest.raises(TypeError, match="Expected a fitted VAETransformer"):
        encoder_jacobian(PCA(), raw_data)
    with pytest.raises(NotFittedError):
        encoder_jacobian(make_pipeline(StandardScaler(), _vae()), raw_data)
    pipe = _fit(make_pipeline(StandardScaler(), _vae()), raw_data)
    with pytest.raises(ValueError, match="X has 4 features"):
        encoder_jacobian(pipe, raw_data[:, :4])
    unfitted_front = Pipeline([("scale", StandardScaler()), ("vae", pipe[-1])])
    with pytest.raises(NotFittedError):
        encoder_jacobian(unfitted_front, raw_data)


def test_pandas_output_of_the_steps_is_handled(raw_data):
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(raw_data, columns=["a", "b", "c", "d", "e"])
    pipe = _fit(make_pipeline(StandardScaler(), _vae()), X)
    J = encoder_jacobian(pipe, X)

    pipe.set_output(transform="pandas")

    assert isinstance(pipe.transform(X), pd.DataFrame)
    assert_array_equal(encoder_jacobian(pipe, X), J)
