"""FeatureContributionDisplay, drawn headless on the Agg backend."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skvae import VAEOutlierDetector, VAETransformer  # noqa: E402
from skvae.datasets import (  # noqa: E402
    FLOW_FEATURE_NAMES,
    make_anomaly_pipeline,
    make_flows,  # noqa: E402
)
from skvae.plotting import FeatureContributionDisplay  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::skvae.PosteriorCollapseWarning",
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def flows_model():
    X, y = make_flows(n_samples=300, random_state=0, as_frame=True)
    model = make_anomaly_pipeline(max_iter=30, random_state=0).fit(X[y == 0])
    return model, X, y


def test_from_estimator_shows_the_lowest_scoring_rows(flows_model):
    model, X, _ = flows_model
    disp = FeatureContributionDisplay.from_estimator(model, X, n_rows=2, n_features=4)
    scores = model.score_samples(X)
    assert_array_equal(disp.rows, np.argsort(scores)[:2])
    assert_allclose(disp.scores, scores[disp.rows])
    assert disp.contributions.shape == (2, len(FLOW_FEATURE_NAMES))
    assert len(disp.bars_) == 2 and disp.ax_.shape == (2,)
    # Names from the DataFrame, through the pipeline; largest excess on top.
    excess = disp.excess_[0]
    top = [tick.get_text() for tick in disp.ax_[0].get_yticklabels()]
    expected = [FLOW_FEATURE_NAMES[j] for j in np.argsort(-excess)[:4]]
    assert top == expected[::-1] or top == expected
    widths = [bar.get_width() for bar in disp.bars_[0]]
    assert_allclose(widths, np.sort(excess)[::-1][:4])
    assert disp.figure_ is disp.ax_[0].figure


def test_median_baseline_and_raw(flows_model):
    model, X, _ = flows_model
    all_contributions = model[-1].feature_contributions(model[0].transform(X))
    disp = FeatureContributionDisplay.from_estimator(model, X, rows=[0, 5])
    assert_allclose(disp.baseline, np.median(np.asarray(all_contributions), axis=0))
    assert_allclose(disp.excess_, np.asarray(all_contributions)[[0, 5]] - disp.baseline)
    raw = FeatureContributionDisplay.from_estimator(model, X, rows=[0], baseline=None)
    assert raw.baseline is None
    assert_allclose(raw.excess_, np.asarray(all_contributions)[[0]])
    assert "nats" in raw.ax_[0].get_xlabel()


def test_reference_rows_as_baseline(flows_model):
    model, X, y = flows_model
    normal = X[y == 0]
    disp = FeatureContributionDisplay.from_estimator(
        model, X, rows=[1], baseline=normal
    )
    reference = model[-1].feature_contributions(model[0].transform(normal))
    assert_allclose(disp.baseline, np.median(np.asarray(reference), axis=0))


def test_plot_on_given_axes_and_titles(flows_model):
    model, X, _ = flows_model
    _, axes = plt.subplots(1, 3)
    disp = FeatureContributionDisplay.from_estimator(model, X, ax=axes)
    assert all(a is b for a, b in zip(disp.ax_, axes, strict=True))
    assert "log-likelihood" in disp.ax_[0].get_title()
    with pytest.raises(ValueError, match="3 Axes"):
        disp.plot(ax=axes[:2])


def test_plain_detector_and_numpy_names():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 2)) @ rng.normal(size=(2, 5))
    detector = VAEOutlierDetector(max_iter=5, random_state=0).fit(X)
    disp = FeatureContributionDisplay.from_estimator(detector, X, n_rows=1)
    names = {tick.get_text() for tick in disp.ax_[0].get_yticklabels()}
    assert names == {f"x{j}" for j in range(5)}


def test_refuses_a_transformer_and_bad_rows(flows_model):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3))
    vae = make_pipeline(StandardScaler(), VAETransformer(max_iter=2, random_state=0))
    with pytest.raises(TypeError, match="VAEOutlierDetector"):
        FeatureContributionDisplay.from_estimator(vae.fit(X), X)
    model, X_flows, _ = flows_model
    with pytest.raises(ValueError, match="outside"):
        FeatureContributionDisplay.from_estimator(model, X_flows, rows=[10_000])
    with pytest.raises(ValueError, match="n_rows"):
        FeatureContributionDisplay.from_estimator(model, X_flows, n_rows=0)


def test_constructor_checks_names():
    disp = FeatureContributionDisplay(contributions=np.eye(3), feature_names=["a"])
    with pytest.raises(ValueError, match="one name per column"):
        disp.plot()
