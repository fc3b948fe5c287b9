"""Shared fixtures: small data sets that make the tests quick."""

import os

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import MinMaxScaler

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # only tests/test_properties.py needs it
    settings = None

if settings is not None:
    # "ci": fixed and derandomised, about a minute on two cores (CI sets CI=true).
    # "dev": many more cases, for local runs (HYPOTHESIS_PROFILE=dev).
    _common = dict(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile(
        "ci", max_examples=600, derandomize=True, print_blob=True, **_common
    )
    settings.register_profile("dev", max_examples=3000, **_common)
    settings.register_profile("default", max_examples=100, **_common)
    _profile = os.environ.get("HYPOTHESIS_PROFILE")
    if _profile is None:
        _profile = "ci" if os.environ.get("CI", "").lower() == "true" else "default"
    settings.load_profile(_profile)


@pytest.fixture(scope="session")
def digits01():
    """500 digits scaled into [0, 1] (Bernoulli-ready), with labels."""
    data = load_digits()
    X = MinMaxScaler().fit_transform(data.data[:500])
    return X, data.target[:500]


@pytest.fixture
def gaussian_data():
    """Standardised-looking real data: 120 samples, 6 features, rank-2 signal."""
    rng = np.random.RandomState(0)
    latent = rng.normal(size=(120, 2))
    X = latent @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(120, 6))
    return X
