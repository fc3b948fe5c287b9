"""Warnings point at the user's line: this file, whatever the estimator or wrapper."""

import os
import signal
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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


class _CtrlCOnSecondRead:
    """An out-of-core array-like that sends a real SIGINT at its second read:
    inside the first epoch of a streamed fit."""

    def __init__(self, X):
        self._X, self.reads = X, 0
        self.shape, self.ndim, self.dtype = X.shape, X.ndim, X.dtype

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._X, dtype=dtype)

    def __getitem__(self, index):
        self.reads += 1
        if self.reads == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return self._X[index]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals"
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_interrupted_partial_fit_points_at_the_caller(Estimator, X):
    # Streamed (X longer than buffer_size), so that the signal lands mid-epoch.
    estimator = Estimator(buffer_size=16, random_state=0)
    source = _CtrlCOnSecondRead(X)
    records = caught(TrainingInterruptedWarning, lambda: estimator.partial_fit(source))
    assert_points_here(records)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_warning_under_a_pipeline_points_at_the_pipelines_caller(Estimator, X):
    pipeline = make_pipeline(StandardScaler(), Estimator(max_iter=1, random_state=0))
    assert_points_here(caught(ConvergenceWarning, lambda: pipeline.fit(X)))
