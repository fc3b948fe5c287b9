"""Warnings point at the user's line: this file, whatever the estimator or wrapper."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvae._training
from skvae import (
    PosteriorCollapseWarning,
    TrainingInterruptedWarning,
    VAEOutlierDetector,
    VAETransformer,
)

ESTIMATORS = [VAETransformer, VAEOutlierDetector]


@pytest.fixture
def X():
    rng = np.random.RandomState(0)
    return rng.normal(size=(60, 2)) @ rng.normal(size=(2, 4))


def caught(category, call):
    """The warnings of ``category`` that ``call()`` raises, recorded."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        call()
    records = [r for r in records if issubclass(r.category, category)]
    assert records, f"no {category.__name__}"
    return records


def assert_points_here(records):
    assert {r.filename for r in records} == {__file__}


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_convergence_warning_of_fit_points_at_the_caller(Estimator, X):
    estimator = Estimator(max_iter=1, random_state=0)
    assert_points_here(caught(ConvergenceWarning, lambda: estimator.fit(X)))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_collapse_warning_of_fit_points_at_the_caller(Estimator, X):
    # A KL weight this large leaves no latent dimension active.
    estimator = Estimator(n_components=2, beta=1e4, max_iter=20, random_state=0)
    assert_points_here(caught(PosteriorCollapseWarning, lambda: estimator.fit(X)))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_interrupted_partial_fit_points_at_the_caller(Estimator, X, monkeypatch):
    def interrupted_epoch(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(skvae._training, "run_single_epoch", interrupted_epoch)
    estimator = Estimator(random_state=0)
    records = caught(TrainingInterruptedWarning, lambda: estimator.partial_fit(X))
    assert_points_here(records)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_warning_under_a_pipeline_points_at_the_pipelines_caller(Estimator, X):
    pipeline = make_pipeline(StandardScaler(), Estimator(max_iter=1, random_state=0))
    assert_points_here(caught(ConvergenceWarning, lambda: pipeline.fit(X)))
