"""Shared fixtures: small data sets that make the tests quick."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import MinMaxScaler


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
