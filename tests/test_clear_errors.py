"""Inputs that used to surface numpy's or torch's internals get a clear error."""

import warnings

import numpy as np
import pandas as pd
import pytest

from skvae import VAETransformer
from skvae.analysis import (
    decoder_finite_differences,
    encoder_jacobian,
    latent_clustering_scores,
)


@pytest.fixture(scope="module")
def data():
    return np.random.RandomState(0).normal(size=(60, 4))


@pytest.fixture(scope="module")
def fitted(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(max_iter=2, random_state=0).fit(data)


@pytest.mark.parametrize("n_samples", [True, False, 2.0, "3", 0, -1])
def test_sample_refuses_what_is_not_a_positive_int(fitted, n_samples):
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        fitted.sample(n_samples)


def test_sample_takes_numpy_integers(fitted):
    assert fitted.sample(np.int64(3), random_state=0).shape == (3, 4)


@pytest.mark.parametrize(
    "param", ["n_components", "max_iter", "batch_size", "kl_warmup"]
)
def test_boolean_integer_parameters_are_refused(data, param):
    vae = VAETransformer(**{"max_iter": 2, param: True})
    with pytest.raises(ValueError, match=f"{param} must be a positive integer"):
        vae.fit(data)
    assert not hasattr(vae, "module_")


@pytest.mark.parametrize("kind", ["datetime64[s]", "timedelta64[s]"])
def test_dates_and_durations_are_refused(fitted, data, kind):
    X = (np.arange(data.size).reshape(data.shape) * 1000).astype(kind)
    with pytest.raises(TypeError, match="dates or durations"):
        VAETransformer(max_iter=2).fit(X)
    with pytest.raises(TypeError, match="dates or durations"):
        fitted.transform(X)
    with pytest.raises(TypeError, match="dates or durations"):
        encoder_jacobian(fitted, X)


def test_datetime_dataframe_columns_are_named(data):
    frame = pd.DataFrame(data, columns=list("abcd"))
    frame["b"] = pd.date_range("2020-01-01", periods=len(frame))
    with pytest.raises(TypeError, match="columns: b"):
        VAETransformer(max_iter=2).fit(frame)


def test_masked_values_are_refused(fitted, data):
    masked = np.ma.masked_array(data, mask=data > 1)
    for call in (
        lambda: VAETransformer(max_iter=2).fit(masked),
        lambda: fitted.transform(masked),
        lambda: fitted.score_samples(masked),
        lambda: latent_clustering_scores(fitted, masked, np.arange(60) % 2),
    ):
        with pytest.raises(ValueError, match="masked array with .* masked values"):
            call()
    # A masked array with nothing masked is just an array.
    unmasked = np.ma.masked_array(data, mask=np.zeros_like(data, dtype=bool))
    np.testing.assert_array_equal(fitted.transform(unmasked), fitted.transform(data))


@pytest.mark.parametrize(
    "dtype, step", [(np.float32, 1e-8), (np.float64, 1e-17), (np.float64, 1e-320)]
)
def test_finite_difference_step_below_resolution(fitted, dtype, step):
    Z = fitted.transform(np.zeros((3, 4))).astype(dtype)
    with pytest.raises(ValueError, match="below the resolution"):
        decoder_finite_differences(fitted, Z, step=step)
    D = decoder_finite_differences(
        fitted, Z, step=1e-3 if dtype is np.float32 else 1e-5
    )
    assert np.all(np.isfinite(D)) and np.any(D != 0)


def test_huge_hidden_layer_is_refused_before_allocating(data):
    vae = VAETransformer(hidden_layer_sizes=(2**31,), max_iter=1)
    with pytest.raises(ValueError, match="wider than|GiB"):
        vae.fit(data)
    assert not hasattr(vae, "module_")
    # Narrower than the index limit, but 2**56 weights: refused on any machine.
    vae = VAETransformer(hidden_layer_sizes=(2**28, 2**28), max_iter=1)
    with pytest.raises(ValueError, match="GiB.*Use smaller layers"):
        vae.fit(data)
