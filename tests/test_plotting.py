"""The Display classes of skvae.plotting, drawn headless on the Agg backend."""

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from skvae import VAETransformer  # noqa: E402
from skvae.datasets import FLOW_FEATURE_NAMES, flows_preprocessor, make_flows  # noqa: E402
from skvae.plotting import (  # noqa: E402
    JacobianDisplay,
    LatentDistributionDisplay,
    LatentSpaceDisplay,
    LatentTraversalDisplay,
    LossCurveDisplay,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::skvae.PosteriorCollapseWarning",
)

N_SAMPLES = 200
N_FEATURES = len(FLOW_FEATURE_NAMES)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Tiny networks: a second intra-op thread only adds contention.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def flows():
    X, y = make_flows(n_samples=N_SAMPLES, random_state=0, as_frame=True)
    return X, y.to_numpy()


@pytest.fixture(scope="module")
def pipeline(flows):
    """Preprocessing + VAE fitted on the raw flows DataFrame."""
    X, _ = flows
    vae = VAETransformer(
        n_components=3, likelihood="bernoulli", max_iter=30, random_state=0
    )
    # pandas out of the preprocessing, so that the VAE learns the feature names.
    preprocessor = flows_preprocessor().set_output(transform="pandas")
    return make_pipeline(preprocessor, vae).fit(X)


@pytest.fixture(scope="module")
def scaled(flows, pipeline):
    """The flows as the VAE sees them (a DataFrame with the feature names)."""
    X, y = flows
    return pipeline[:-1].transform(X), y


@pytest.fixture(scope="module")
def vae(pipeline):
    return pipeline[-1]


def test_import_does_not_import_matplotlib():
    code = "import sys, skvae.plotting; print('matplotlib' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------ latent space


def test_latent_space_from_estimator(vae, scaled):
    X, y = scaled
    disp = LatentSpaceDisplay.from_estimator(vae, X, y, dims=(0, 2), name="m")
    assert disp.Z.shape == (N_SAMPLES, 3)
    assert disp.dims_ == (0, 2)
    assert isinstance(disp.figure_, matplotlib.figure.Figure)
    assert disp.ax_.get_xlabel() == f"z0 (KL {vae.kl_per_dimension_[0]:.2f} nats)"
    assert disp.ax_.get_ylabel().startswith("z2 (KL ")
    assert disp.ax_.get_title() == "Latent space: m"
    # One scatter per class, holding exactly that class's codes.
    assert len(disp.scatters_) == 2
    Z = vae.transform(X)
    np.testing.assert_allclose(disp.scatters_[1].get_offsets(), Z[y == 1][:, [0, 2]])
    legend = [text.get_text() for text in disp.ax_.get_legend().get_texts()]
    assert legend == ["0", "1"]


def test_latent_space_default_dims_follow_kl():
    Z = np.random.RandomState(0).normal(size=(30, 3))
    disp = LatentSpaceDisplay(Z=Z, kl_per_dimension=[0.1, 0.9, 0.5]).plot()
    assert disp.dims_ == (1, 2)
    assert disp.ax_.get_title() == "Latent space"
    assert disp.ax_.get_legend() is None  # no classes, no legend
    # Without KL, the first two.
    assert LatentSpaceDisplay(Z=Z).plot().dims_ == (0, 1)


def test_latent_space_draws_on_given_axes_and_in_3d():
    Z = np.random.RandomState(0).normal(size=(30, 3))
    y = np.repeat(["a", "b", "c"], 10)
    fig, ax = plt.subplots()
    disp = LatentSpaceDisplay(Z=Z, y=y).plot(ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    with pytest.raises(ValueError, match="Three dims need a 3-D Axes"):
        LatentSpaceDisplay(Z=Z, y=y).plot(ax=ax, dims=(0, 1, 2))
    disp3 = LatentSpaceDisplay(Z=Z, y=y).plot(dims=(0, 1, 2))
    assert disp3.ax_.name == "3d"
    assert disp3.ax_.get_zlabel() == "z2"
    assert len(disp3.scatters_) == 3


def test_latent_space_one_dimension_is_a_strip_per_class():
    Z = np.linspace(-1, 1, 20)[:, None]
    y = np.repeat(["benign", "attack"], 10)
    disp = LatentSpaceDisplay(Z=Z, y=y).plot()
    assert disp.dims_ == (0,)
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["attack", "benign"]
    # The strip's height is the class position (sorted: attack=0, benign=1).
    heights = disp.scatters_[1].get_offsets()[:, 1]
    assert np.all(np.abs(heights - 1) <= 0.2)


@pytest.mark.parametrize(
    "dims, message",
    [((0, 3), "out of range"), ((1, 1), "distinct"), ((0, 1, 2, 0), "1, 2 or 3")],
)
def test_latent_space_bad_dims(dims, message):
    Z = np.zeros((5, 3))
    with pytest.raises(ValueError, match=message):
        LatentSpaceDisplay(Z=Z).plot(dims=dims)


def test_latent_space_bad_y_and_kl():
    Z = np.zeros((5, 2))
    with pytest.raises(ValueError, match="y has shape"):
        LatentSpaceDisplay(Z=Z, y=[0, 1]).plot()
    with pytest.raises(ValueError, match="kl_per_dimension has shape"):
        LatentSpaceDisplay(Z=Z, kl_per_dimension=[1.0]).plot()


def test_displays_accept_a_pipeline(pipeline, flows):
    X, y = flows
    disp = LatentSpaceDisplay.from_estimator(pipeline, X, y)
    np.testing.assert_allclose(disp.Z, pipeline.transform(X))


def test_displays_accept_a_nested_pipeline(pipeline, flows):
    # As skvae.analysis does: the VAE may sit at the end of an inner Pipeline.
    X, y = flows
    nested = make_pipeline(pipeline[0], make_pipeline("passthrough", pipeline[-1]))
    disp = LatentSpaceDisplay.from_estimator(nested, X, y)
    np.testing.assert_allclose(disp.Z, pipeline.transform(X))
    disp = JacobianDisplay.from_estimator(nested, X, side="decoder")
    labels = [t.get_text() for t in disp.ax_.get_xticklabels()]
    assert labels == list(FLOW_FEATURE_NAMES)


def test_displays_refuse_other_estimators(flows):
    X, y = flows
    with pytest.raises(TypeError, match="needs a VAETransformer or a Pipeline"):
        LatentSpaceDisplay.from_estimator(LogisticRegression(), X, y)
    with pytest.raises(NotFittedError):
        LatentDistributionDisplay.from_estimator(VAETransformer(), X, y)
    not_a_vae = make_pipeline(flows_preprocessor(), LogisticRegression()).fit(X, y)
    with pytest.raises(TypeError, match="got Pipeline"):
        LossCurveDisplay.from_estimator(not_a_vae)


# ---------------------------------------------------- latent distributions


def test_latent_distribution_from_estimator(vae, scaled):
    X, y = scaled
    disp = LatentDistributionDisplay.from_estimator(vae, X, y, bins=12, name="m")
    assert disp.ax_.shape == (3,)
    assert len(disp.bin_edges_) == 3
    assert all(edges.shape == (13,) for edges in disp.bin_edges_)
    assert [len(patches) for patches in disp.patches_] == [2, 2, 2]
    # Class 1's histogram of dimension 0 counts exactly its codes.
    Z = vae.transform(X)
    counts, _ = np.histogram(Z[y == 1, 0], bins=disp.bin_edges_[0])
    widths = np.diff(disp.bin_edges_[0])
    np.testing.assert_allclose(disp.heights_[0][1], counts / counts.sum() / widths)
    kl = vae.kl_per_dimension_
    assert [ax.get_title() for ax in disp.ax_] == [
        f"z{d} (KL {kl[d]:.2f} nats)" for d in range(3)
    ]
    assert disp.ax_[0].get_ylabel() == "m\ndensity"
    assert disp.ax_[2].get_xlabel() == "latent code"
    # The bins cover the codes of that dimension exactly.
    assert disp.bin_edges_[1][0] == pytest.approx(Z[:, 1].min())
    assert disp.bin_edges_[1][-1] == pytest.approx(Z[:, 1].max())


def test_latent_distribution_ridge_beyond_a_few_classes():
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(10), 30)
    Z = rng.normal(size=(300, 2)) + y[:, np.newaxis] * 0.3
    disp = LatentDistributionDisplay(Z=Z, y=y).plot()
    assert disp.layout_ == "ridge"
    assert all(ax.get_legend() is None for ax in disp.ax_)  # classes on the y-axis
    labels = [t.get_text() for t in disp.ax_[0].get_yticklabels()]
    assert labels == [str(c) for c in range(10)]
    # Row c holds class c's density, scaled to 0.9 of a row, above baseline c.
    counts, _ = np.histogram(Z[y == 3, 1], bins=disp.bin_edges_[1], density=True)
    np.testing.assert_allclose(disp.heights_[1][3], counts)
    tops = disp.patches_[1][3].get_data().values
    np.testing.assert_allclose(tops, 3 + 0.9 * counts / counts.max())
    assert disp.ax_[0].get_ylim()[1] >= 10
    # A few classes stay overlaid, as before.
    few = LatentDistributionDisplay(Z=Z[y < 3], y=y[y < 3]).plot()
    assert few.layout_ == "overlay"
    assert LatentDistributionDisplay(Z=Z, y=y).plot(layout="overlay").layout_ == (
        "overlay"
    )
    with pytest.raises(ValueError, match="layout must be"):
        LatentDistributionDisplay(Z=Z, y=y).plot(layout="stacked")


def test_latent_distribution_shared_bin_edges():
    Z = np.column_stack([np.zeros(10), np.linspace(-2, 2, 10)])
    edges = np.linspace(-3, 3, 7)
    disp = LatentDistributionDisplay(Z=Z).plot(bins=edges)
    for d in range(2):
        np.testing.assert_array_equal(disp.bin_edges_[d], edges)
    # The constant dimension is a single bar: all its mass in the bin of 0.
    np.testing.assert_array_equal(disp.heights_[0][0], [0, 0, 0, 1.0, 0, 0])
    assert disp.heights_[1][0].sum() == pytest.approx(1.0)  # a density


def test_latent_distribution_needs_one_axes_per_dimension():
    Z = np.random.RandomState(0).normal(size=(20, 3))
    _, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="draws on 3 Axes, but ax holds 2"):
        LatentDistributionDisplay(Z=Z).plot(ax=axes)
    _, axes = plt.subplots(3, 1)
    disp = LatentDistributionDisplay(Z=Z).plot(ax=axes)
    assert list(disp.ax_) == list(axes)
    assert disp.ax_[0].get_ylabel() == "density"


# ------------------------------------------------------------- loss curves


def test_loss_curve_from_estimator(vae):
    disp = LossCurveDisplay.from_estimator(vae, name="auto")
    n = vae.n_iter_
    assert disp.reconstruction.shape == disp.kl.shape == (n,)
    recon_line, kl_line = disp.lines_
    np.testing.assert_allclose(recon_line.get_ydata(), vae.reconstruction_curve_)
    np.testing.assert_allclose(kl_line.get_ydata(), vae.kl_curve_)
    np.testing.assert_array_equal(kl_line.get_xdata(), np.arange(1, n + 1))
    assert [ax.get_title() for ax in disp.ax_] == ["Reconstruction", "KL divergence"]
    assert all(ax.get_xlabel() == "epoch" for ax in disp.ax_)
    assert recon_line.get_color() == kl_line.get_color()
    assert disp.ax_[1].get_ylim()[0] == 0.0


def test_loss_curves_overlay_on_the_same_axes():
    _, axes = plt.subplots(1, 2)
    LossCurveDisplay(reconstruction=[3, 2, 1], kl=[1, 1, 1]).plot(axes, name="a")
    disp = LossCurveDisplay(reconstruction=[5, 4], kl=[0.5, 0]).plot(axes, name="b")
    assert [len(ax.lines) for ax in disp.ax_] == [2, 2]
    legend = [t.get_text() for t in disp.ax_[1].get_legend().get_texts()]
    assert legend == ["a", "b"]
    assert disp.lines_[0].get_color() != axes[0].lines[0].get_color()


def test_loss_curve_shape_mismatch():
    with pytest.raises(ValueError, match="one value per epoch"):
        LossCurveDisplay(reconstruction=[1, 2, 3], kl=[1, 2]).plot()


# --------------------------------------------------------------- jacobian


def test_encoder_jacobian_heatmap(vae, scaled):
    from skvae.analysis import encoder_jacobian

    X, _ = scaled
    disp = JacobianDisplay.from_estimator(vae, X, name="auto")
    expected = np.asarray(encoder_jacobian(vae, X)).mean(axis=0)
    assert disp.jacobian.shape == (3, N_FEATURES)
    np.testing.assert_allclose(disp.jacobian, expected, rtol=1e-6)
    labels = [t.get_text() for t in disp.ax_.get_xticklabels()]
    assert labels == list(FLOW_FEATURE_NAMES)
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["z0", "z1", "z2"]
    assert disp.ax_.get_title() == "Encoder Jacobian: mean dz/dx (auto)"
    assert disp.ax_.get_xlabel() == "input feature"
    vmin, vmax = disp.image_.get_clim()
    assert vmin == -vmax == -np.abs(expected).max()
    assert disp.colorbar_ is not None and disp.bars_ is None


def test_jacobian_means_are_accumulated_in_chunks(vae, scaled, monkeypatch):
    # Means accumulated block by block equal those of the full arrays (the
    # decoder side over many small chunks here).
    from skvae import _data
    from skvae.analysis import decoder_finite_differences, encoder_jacobian

    X, _ = scaled
    # The analysis functions' chunk rule: chunks of 7 rows on both sides.
    monkeypatch.setattr(_data, "chunk_rows", lambda values_per_row: 7)
    decoder = JacobianDisplay.from_estimator(vae, X, side="decoder")
    full = decoder_finite_differences(vae, vae.transform(X), method="central")
    np.testing.assert_allclose(decoder.jacobian, full.mean(axis=0).T, rtol=1e-6)
    encoder = JacobianDisplay.from_estimator(vae, X)
    full = encoder_jacobian(vae, X, batch_size=7)
    np.testing.assert_allclose(encoder.jacobian, full.mean(axis=0), rtol=1e-6)


def test_encoder_jacobian_matches_finite_differences(vae, scaled):
    # The display's numbers are derivatives of transform: check one by hand.
    X, _ = scaled
    X = X.iloc[:40]
    disp = JacobianDisplay.from_estimator(vae, X)
    j, step = 5, 1e-4
    shifted = X.copy()
    shifted.iloc[:, j] += step
    by_hand = ((vae.transform(shifted) - vae.transform(X)) / step).mean(axis=0)
    np.testing.assert_allclose(disp.jacobian[:, j], by_hand, atol=1e-3)


def test_decoder_sensitivity_bars(vae, scaled):
    X, _ = scaled
    disp = JacobianDisplay.from_estimator(vae, X, side="decoder", kind="bars")
    assert disp.jacobian.shape == (3, N_FEATURES)
    assert disp.ax_.shape == (3,)
    assert len(disp.bars_) == 3
    heights = [bar.get_height() for bar in disp.bars_[2]]
    np.testing.assert_allclose(heights, disp.jacobian[2])
    # One scale for every dimension, so that bar heights compare.
    limits = {ax.get_ylim() for ax in disp.ax_}
    assert len(limits) == 1
    ((bottom, top),) = limits
    assert bottom == -top and top >= np.abs(disp.jacobian).max()
    own = JacobianDisplay(jacobian=disp.jacobian).plot(kind="bars", sharey=False)
    assert own.ax_[0].get_title().endswith("each panel on its own scale")
    assert disp.ax_[0].get_title() == (
        "Decoder sensitivity: mean dx\u0302/dz, same scale in every panel"
    )
    assert disp.ax_[1].get_ylabel() == "z1\ndx\u0302/dz"
    # The decoder's features are its outputs, not the encoder's inputs.
    assert disp.ax_[-1].get_xlabel() == "reconstructed feature"
    assert disp.image_ is None
    # Derivative of inverse_transform along z1, at the data's codes.
    Z = vae.transform(X)
    step = 1e-4
    up, down = Z.copy(), Z.copy()
    up[:, 1] += step
    down[:, 1] -= step
    by_hand = (vae.inverse_transform(up) - vae.inverse_transform(down)) / (2 * step)
    np.testing.assert_allclose(disp.jacobian[1], by_hand.mean(axis=0), atol=1e-3)


def test_jacobian_pipeline_uses_feature_names(flows):
    X, _ = flows
    # numpy between the steps: the names come from the preprocessing's output.
    vae = VAETransformer(n_components=2, likelihood="bernoulli", max_iter=2)
    pipe = make_pipeline(flows_preprocessor(), vae).fit(X)
    assert not hasattr(pipe[-1], "feature_names_in_")
    disp = JacobianDisplay.from_estimator(pipe, X, side="decoder")
    labels = [t.get_text() for t in disp.ax_.get_xticklabels()]
    assert labels == list(FLOW_FEATURE_NAMES)
    assert disp.ax_.get_xlabel() == "reconstructed feature"
    # Without a pipeline and without names: x0, x1, ...
    disp = JacobianDisplay.from_estimator(pipe[-1], pipe[:-1].transform(X))
    assert disp.ax_.get_xticklabels()[47].get_text() == "x47"
    assert disp.ax_.get_xlabel() == "input feature"


def test_jacobian_bad_arguments(vae, scaled):
    X, _ = scaled
    with pytest.raises(ValueError, match="side must be one of"):
        JacobianDisplay.from_estimator(vae, X, side="middle")
    disp = JacobianDisplay(jacobian=np.ones((2, 3)))
    with pytest.raises(ValueError, match="kind must be one of"):
        disp.plot(kind="pie")
    with pytest.raises(ValueError, match="feature_names has 2 entries"):
        JacobianDisplay(jacobian=np.ones((2, 3)), feature_names=["a", "b"]).plot()
    labels = [t.get_text() for t in disp.plot().ax_.get_xticklabels()]
    assert labels == ["x0", "x1", "x2"]


# -------------------------------------------------------------- traversal


def test_latent_traversal_lines(vae, scaled):
    X, _ = scaled
    disp = LatentTraversalDisplay.from_estimator(
        vae, X, dim=2, n_features=4, span="prior"
    )
    np.testing.assert_allclose(disp.values, np.linspace(-3, 3, 25))
    assert disp.decoded.shape == (25, N_FEATURES)
    # Each row decodes the mean code of X with z2 replaced by the value.
    codes = np.tile(vae.transform(X).mean(axis=0), (25, 1))
    codes[:, 2] = disp.values
    np.testing.assert_allclose(disp.decoded, vae.inverse_transform(codes), atol=1e-6)
    # The lines are the four features that change most, most changing first.
    spread = np.ptp(disp.decoded, axis=0)
    assert len(disp.lines_) == 4
    assert list(spread[disp.features_]) == sorted(spread, reverse=True)[:4]
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert legend == [FLOW_FEATURE_NAMES[j] for j in disp.features_]
    assert disp.ax_.get_xlabel() == "z2\n-3 to 3, the prior's bulk"
    assert disp.ax_.get_ylabel() == "decoded value"
    assert disp.ax_.get_title() == "Traversal of z2"


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_latent_traversal_sweeps_the_range_of_the_codes(vae, scaled, dim):
    X, _ = scaled
    disp = LatentTraversalDisplay.from_estimator(vae, X, dim=dim)
    codes = vae.transform(X)[:, dim]
    low, high = np.quantile(codes, [0.01, 0.99])
    assert disp.values[0] == pytest.approx(low)
    assert disp.values[-1] == pytest.approx(high)
    assert disp.values.size == 25
    assert np.all(np.diff(disp.values) > 0)
    # Never an extrapolation beyond what the codes reach.
    assert codes.min() <= disp.values.min() and disp.values.max() <= codes.max()
    assert disp.ax_.get_xlabel() == (
        f"{vae.get_feature_names_out()[dim]}\n1st-99th percentile of the codes of X"
    )
    disp = LatentTraversalDisplay.from_estimator(
        vae, X, dim=dim, quantiles=(0.1, 0.9), n_values=5
    )
    np.testing.assert_allclose(
        disp.values, np.linspace(*np.quantile(codes, [0.1, 0.9]), 5)
    )
    assert "10th-90th percentile" in disp.ax_.get_xlabel()
    # Without X there are no codes: the prior's range, and it says so.
    disp = LatentTraversalDisplay.from_estimator(vae, dim=dim)
    assert disp.values[0] == -3.0 and disp.values[-1] == 3.0
    assert "prior" in disp.ax_.get_xlabel()


def test_latent_traversal_bad_span_arguments(vae, scaled):
    X, _ = scaled
    with pytest.raises(ValueError, match="span must be 'data' or 'prior'"):
        LatentTraversalDisplay.from_estimator(vae, X, span="codes")
    with pytest.raises(ValueError, match="quantiles must be two numbers"):
        LatentTraversalDisplay.from_estimator(vae, X, quantiles=(0.9, 0.1))
    with pytest.raises(ValueError, match="n_values must be an integer"):
        LatentTraversalDisplay.from_estimator(vae, X, n_values=1)


def _overlaps(artist, ax):
    """Whether the drawn legend ``artist`` overlaps the data area of ``ax``."""
    ax.figure.canvas.draw()
    renderer = ax.figure.canvas.get_renderer()
    legend = artist.get_window_extent(renderer)
    return legend.overlaps(ax.get_window_extent(renderer))


def test_legends_sit_beside_the_data(vae, scaled):
    X, y = scaled
    disp = LatentTraversalDisplay.from_estimator(vae, X, dim=1)
    assert not _overlaps(disp.ax_.get_legend(), disp.ax_)
    disp = LatentSpaceDisplay.from_estimator(vae, X, y)
    assert not _overlaps(disp.ax_.get_legend(), disp.ax_)
    disp = LatentDistributionDisplay.from_estimator(vae, X, y)
    assert not any(_overlaps(disp.ax_[-1].get_legend(), ax) for ax in disp.ax_)
    disp = LossCurveDisplay.from_estimator(vae, name="m")
    assert disp.ax_[0].get_legend() is None  # one legend for both panels
    assert not any(_overlaps(disp.ax_[1].get_legend(), ax) for ax in disp.ax_)


def test_figures_name_latent_dimensions_as_get_feature_names_out(vae, scaled):
    X, y = scaled
    names = list(vae.get_feature_names_out())
    assert names == ["z0", "z1", "z2"]
    disp = LatentSpaceDisplay.from_estimator(vae, X, y, dims=(1, 2))
    assert disp.ax_.get_xlabel().split()[0] == names[1]
    assert disp.ax_.get_ylabel().split()[0] == names[2]
    disp = JacobianDisplay.from_estimator(vae, X)
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == names
    disp = LatentDistributionDisplay.from_estimator(vae, X, y)
    assert [ax.get_title().split()[0] for ax in disp.ax_] == names
    from skvae.analysis import latent_feature_importance

    table = latent_feature_importance(vae, X)
    assert sorted(table["component"].unique()) == names


def test_latent_traversal_heatmap_from_the_origin(vae):
    values = np.linspace(-1, 1, 5)
    disp = LatentTraversalDisplay.from_estimator(
        vae, dim=0, values=values, kind="heatmap", name="m"
    )
    codes = np.zeros((5, 3))
    codes[:, 0] = values
    np.testing.assert_allclose(disp.decoded, vae.inverse_transform(codes), atol=1e-6)
    assert disp.image_.get_array().shape == (5, N_FEATURES)
    assert disp.ax_.get_ylabel() == "z0"
    assert disp.ax_.get_title() == "Traversal of z0 (m)"
    assert disp.lines_ is None


def test_latent_traversal_shape_mismatch():
    with pytest.raises(ValueError, match="one row per value"):
        LatentTraversalDisplay(values=[0, 1], decoded=np.ones((3, 4)), dim=0).plot()
    disp = LatentTraversalDisplay(values=[0, 1], decoded=np.ones((2, 4)), dim=0)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_features must be a positive integer"):
            disp.plot(n_features=bad)


# --------------------------------------------------------------- rendering


def test_every_display_renders_to_png(vae, scaled, tmp_path):
    X, y = scaled
    displays = [
        LatentSpaceDisplay.from_estimator(vae, X, y),
        LatentDistributionDisplay.from_estimator(vae, X, y),
        LossCurveDisplay.from_estimator(vae),
        JacobianDisplay.from_estimator(vae, X),
        LatentTraversalDisplay.from_estimator(vae, X),
    ]
    for i, disp in enumerate(displays):
        path = tmp_path / f"{i}.png"
        disp.figure_.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_curve_kl_axis_starts_at_zero_and_fits_overlays():
    _, axes = plt.subplots(1, 2)
    LossCurveDisplay(reconstruction=[3, 2], kl=[0.0, 0.0]).plot(axes)
    disp = LossCurveDisplay(reconstruction=[3, 2], kl=[4.0, 5.0]).plot(axes)
    bottom, top = disp.ax_[1].get_ylim()
    assert bottom == 0.0
    assert top >= 5.0


def test_traversal_of_a_pipeline_decodes_into_its_input_space(pipeline, flows):
    X, _ = flows
    disp = LatentTraversalDisplay.from_estimator(pipeline, X, dim=0, n_values=5)
    assert disp.input_space == "pipeline"
    codes = np.tile(pipeline.transform(X).mean(axis=0), (5, 1))
    codes[:, 0] = disp.values
    np.testing.assert_allclose(
        disp.decoded, pipeline.inverse_transform(codes), rtol=1e-5
    )
    assert disp.feature_names == list(X.columns)
    disp = LatentTraversalDisplay.from_estimator(
        pipeline, X, dim=0, n_values=5, input_space="vae"
    )
    assert disp.input_space == "vae"
    np.testing.assert_allclose(
        disp.decoded, pipeline[-1].inverse_transform(codes), rtol=1e-5
    )
    assert disp.ax_.get_ylabel() == "decoded value (VAE's input space)"


@pytest.fixture(scope="module")
def mixed_vae():
    """A table model: numbers, a count and a 3-level category."""
    import pandas as pd

    rng = np.random.RandomState(0)
    n = 120
    species = rng.choice(["Adelie", "Chinstrap", "Gentoo"], size=n)
    shift = pd.Series(species).map({"Adelie": -1.0, "Chinstrap": 0.0, "Gentoo": 1.0})
    table = pd.DataFrame(
        {
            "bill": shift.to_numpy() + 0.3 * rng.normal(size=n),
            "species": pd.Categorical(species),
            "eggs": rng.poisson(2.0, size=n),
        }
    )
    vae = VAETransformer(
        n_components=2, likelihood="auto", max_iter=5, random_state=0
    ).fit(table)
    return vae, table


MIXED_NAMES = [
    "bill",
    "species_Adelie",
    "species_Chinstrap",
    "species_Gentoo",
    "eggs",
]


@pytest.mark.parametrize("side", ["encoder", "decoder"])
def test_jacobian_display_of_a_table_names_each_level(mixed_vae, side):
    vae, table = mixed_vae

    disp = JacobianDisplay.from_estimator(vae, table, side=side)

    assert disp.jacobian.shape == (2, len(MIXED_NAMES))
    labels = [t.get_text() for t in disp.ax_.get_xticklabels()]
    assert labels == MIXED_NAMES
    if side == "decoder":
        # Probability moved between levels: none is created or lost.
        np.testing.assert_allclose(disp.jacobian[:, 1:4].sum(axis=1), 0, atol=1e-6)


def test_latent_traversal_display_of_a_table_shows_level_probabilities(mixed_vae):
    vae, table = mixed_vae

    heatmap = LatentTraversalDisplay.from_estimator(vae, table, kind="heatmap")
    lines = LatentTraversalDisplay.from_estimator(vae, table, n_features=3)

    assert heatmap.decoded.shape == (25, len(MIXED_NAMES))
    assert [t.get_text() for t in heatmap.ax_.get_xticklabels()] == MIXED_NAMES
    np.testing.assert_allclose(heatmap.decoded[:, 1:4].sum(axis=1), 1.0, atol=1e-6)
    legend = [t.get_text() for t in lines.ax_.get_legend().get_texts()]
    assert legend == [MIXED_NAMES[j] for j in lines.features_]
