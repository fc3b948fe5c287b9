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


# ------------------------------------------------ one rule for every function


@pytest.fixture(scope="module")
def flows_pipe():
    from skvae.datasets import flows_preprocessor, make_flows

    X, _ = make_flows(n_samples=150, random_state=0)
    pipe = _fit(make_pipeline(flows_preprocessor(), _vae(activation="tanh")), X)
    return pipe, X


def test_encoder_jacobian_through_flows_preprocessor(flows_pipe):
    pipe, X = flows_pipe
    points = X[:20]
    J = encoder_jacobian(pipe, points)
    step = 1e-6 * (np.abs(X).max(axis=0) + 1e-3)
    reference = central_difference(pipe.transform, points, step)
    # Away from the kinks (0 for the clip, the training range for the scaler),
    # where a central difference straddles two slopes, the chain rule holds.
    scaler = pipe[0][-1]
    scaled = np.maximum(points, 0) * scaler.scale_ + scaler.min_
    smooth = (np.abs(points) > 2 * step) & (scaled > 1e-6) & (scaled < 1 - 1e-6)
    assert smooth.sum() > 200
    error = np.abs(J - reference).transpose(0, 2, 1)[smooth]
    assert error.max() / np.abs(J).max() < 1e-5
    # Below zero the clip holds the value: no derivative. At zero (counts)
    # the slope from above.
    negative = points < -2 * step
    assert negative.any()
    assert np.all(J.transpose(0, 2, 1)[negative] == 0)
    zero = (points == 0) & (scaled > 1e-6)
    J_vae = encoder_jacobian(pipe[-1], pipe[:-1].transform(points))
    np.testing.assert_allclose(
        J.transpose(0, 2, 1)[zero],
        (J_vae * scaler.scale_).transpose(0, 2, 1)[zero],
        rtol=1e-12,
    )


def test_decoder_derivatives_through_flows_preprocessor(flows_pipe):
    pipe, X = flows_pipe
    Z = pipe.transform(X[:10])
    D = decoder_jacobian(pipe, Z)
    # The clip has no inverse function: Pipeline.inverse_transform passes the
    # values through it, so only the scaler's inverse scales the derivative.
    step = np.full(Z.shape[1], 1e-6)
    reference = central_difference(pipe.inverse_transform, Z, step)
    assert np.max(np.abs(D - reference)) / np.max(np.abs(D)) < 1e-5
    D_fd = decoder_finite_differences(pipe, Z, step=1e-5)
    np.testing.assert_allclose(D_fd, D, rtol=1e-3, atol=1e-6 * np.abs(D).max())


def test_displays_follow_the_same_rule_as_the_functions(flows_pipe):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skvae.plotting import JacobianDisplay

    pipe, X = flows_pipe
    disp = JacobianDisplay.from_estimator(pipe, X)
    assert disp.input_space == "pipeline"
    np.testing.assert_allclose(
        disp.jacobian, encoder_jacobian(pipe, X).mean(axis=0), rtol=1e-6
    )
    disp = JacobianDisplay.from_estimator(pipe, X, input_space="vae")
    assert disp.input_space == "vae"
    assert "the VAE's own input space" in disp.ax_.get_xlabel()
    np.testing.assert_allclose(
        disp.jacobian,
        encoder_jacobian(pipe[-1], pipe[:-1].transform(X)).mean(axis=0),
        rtol=1e-6,
    )
    plt.close("all")


@pytest.fixture(scope="module")
def log_pipe(raw_data):
    X = np.abs(raw_data)
    pipe = _fit(make_pipeline(FunctionTransformer(np.log1p), MinMaxScaler(), _vae()), X)
    return pipe, X


def test_a_step_without_a_known_derivative_is_refused_alike(log_pipe):
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skvae.plotting import JacobianDisplay

    pipe, X = log_pipe
    Z = pipe.transform(X[:5])
    message = (
        r"Cannot differentiate through the pipeline step "
        r"FunctionTransformer\(func=<ufunc 'log1p'>\).*input_space='vae'"
    )
    calls = [
        lambda **kw: encoder_jacobian(pipe, X, **kw),
        lambda **kw: latent_feature_importance(pipe, X, **kw),
        lambda **kw: decoder_jacobian(pipe, Z, **kw),
        lambda **kw: decoder_finite_differences(pipe, Z, **kw),
        lambda **kw: JacobianDisplay.from_estimator(pipe, X, **kw),
        lambda **kw: JacobianDisplay.from_estimator(pipe, X, side="decoder", **kw),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()
    # In the VAE's own space every one of them works, on the VAE's features.
    X_vae = pipe[:-1].transform(X)
    assert_allclose(
        encoder_jacobian(pipe, X, input_space="vae"),
        encoder_jacobian(pipe[-1], X_vae),
    )
    table = latent_feature_importance(pipe, X, input_space="vae")
    assert table.attrs["input_space"] == "vae"
    assert latent_feature_importance(pipe[-1], X_vae).attrs["input_space"] == (
        "pipeline"
    )
    assert_allclose(
        decoder_jacobian(pipe, Z, input_space="vae"), decoder_jacobian(pipe[-1], Z)
    )
    disp = JacobianDisplay.from_estimator(pipe, X, side="decoder", input_space="vae")
    assert disp.input_space == "vae"
    for call in calls:
        with pytest.raises(ValueError, match="input_space must be 'pipeline' or"):
            call(input_space="raw")
    plt.close("all")


def test_every_analysis_function_takes_its_chunk_size_from_the_data_module(
    raw_data, monkeypatch
):
    # batch_size=None is the package's one rule, skvae._data.chunk_rows: with
    # the rule patched to 7 rows, each function asks it with what one row of
    # its chunks holds, and its results stay those of a single chunk.
    from skvae import _data
    from skvae.analysis import latent_clustering_scores

    vae = _fit(_vae(n_components=3, hidden_layer_sizes=(16, 8)), raw_data)
    X = raw_data
    Z = vae.transform(X)
    y = np.arange(X.shape[0]) % 3
    calls = {
        "encoder_jacobian": (lambda: encoder_jacobian(vae, X), 3 * 16),
        "latent_feature_importance": (
            lambda: latent_feature_importance(vae, X)["mean_gradient"].to_numpy(),
            3 * 16,
        ),
        "decoder_jacobian": (lambda: decoder_jacobian(vae, Z), 3 * 16),
        "decoder_finite_differences": (
            lambda: decoder_finite_differences(vae, Z, method="forward"),
            4 * 16,
        ),
        "latent_coupling": (lambda: latent_coupling(vae, Z), 3 * 16),
        "kl_per_dimension": (
            lambda: latent_clustering_scores(vae, X, y)["kl_per_dimension"],
            16,
        ),
    }
    expected = {name: call() for name, (call, _) in calls.items()}
    asked = []

    def seven(values_per_row):
        asked.append(values_per_row)
        return 7

    monkeypatch.setattr(_data, "chunk_rows", seven)
    for name, (call, values_per_row) in calls.items():
        asked.clear()
        assert_allclose(call(), expected[name], rtol=1e-6, atol=1e-7, err_msg=name)
        assert asked == [values_per_row], name
