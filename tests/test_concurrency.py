"""Every public inference and analysis function is safe from several threads.

8 threads call each function many times on one fitted model, interleaved; every
result must be identical (bitwise) to the serial one.
"""

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer
from skvae.analysis import (
    decoder_finite_differences,
    decoder_jacobian,
    encoder_jacobian,
    latent_clustering_scores,
    latent_coupling,
    latent_feature_importance,
    latent_silhouette_scorer,
    latent_traversal,
)

N_THREADS = 8
N_ROUNDS = 4


@pytest.fixture(scope="module")
def models():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(160, 6)) @ rng.normal(size=(6, 6))
    y = (X[:, 0] > np.median(X[:, 0])).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(
            n_components=3, activation="tanh", max_iter=20, random_state=0
        ).fit(X)
        pipe = make_pipeline(
            StandardScaler(),
            VAETransformer(n_components=3, max_iter=20, random_state=0),
        ).fit(X)
    return vae, pipe, X, y


def _calls(vae, pipe, X, y):
    Z = vae.transform(X)
    calls = {}
    for name, dtype in (("32", np.float32), ("64", np.float64)):
        Xd, Zd = X.astype(dtype), Z.astype(dtype)
        calls.update(
            {
                f"transform{name}": lambda Xd=Xd: vae.transform(Xd),
                f"inverse_transform{name}": lambda Zd=Zd: vae.inverse_transform(Zd),
                f"score_samples{name}": lambda Xd=Xd: vae.score_samples(Xd),
                f"decoder_jacobian{name}": lambda Zd=Zd: decoder_jacobian(
                    vae, Zd, batch_size=16
                ),
                f"latent_coupling{name}": lambda Zd=Zd: latent_coupling(
                    vae, Zd, batch_size=16
                ),
                f"encoder_jacobian{name}": lambda Xd=Xd: encoder_jacobian(
                    vae, Xd, batch_size=16
                ),
                f"decoder_finite_differences{name}": lambda Zd=Zd: (
                    decoder_finite_differences(vae, Zd, step=1e-2, batch_size=16)
                ),
            }
        )
    calls.update(
        {
            "score": lambda: vae.score(X),
            "sample": lambda: vae.sample(20, random_state=0),
            "get_feature_names_out": lambda: vae.get_feature_names_out(),
            "pipeline_decoder_jacobian": lambda: decoder_jacobian(
                pipe, Z[:40], batch_size=8
            ),
            "pipeline_encoder_jacobian": lambda: encoder_jacobian(pipe, X[:40]),
            "latent_feature_importance": lambda: latent_feature_importance(
                vae, X, batch_size=16
            ),
            "latent_traversal": lambda: latent_traversal(vae, dim=1),
            "latent_clustering_scores": lambda: latent_clustering_scores(vae, X, y),
            "latent_silhouette_scorer": lambda: latent_silhouette_scorer(vae, X, y),
        }
    )
    return calls


def _assert_identical(result, expected, name):
    if isinstance(expected, dict):
        assert result.keys() == expected.keys(), name
        for key in expected:
            _assert_identical(result[key], expected[key], f"{name}[{key}]")
    elif isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(result, expected, check_exact=True)
    else:
        np.testing.assert_array_equal(result, expected, err_msg=name, strict=True)


def test_every_public_function_is_thread_safe(models):
    calls = _calls(*models)
    serial = {name: call() for name, call in calls.items()}
    # Every function in every round, shuffled: different functions overlap.
    order = [name for _ in range(N_ROUNDS) for name in calls]
    np.random.RandomState(0).shuffle(order)
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(lambda name: (name, calls[name]()), order))
    assert len(results) == N_ROUNDS * len(calls)
    for name, result in results:
        _assert_identical(result, serial[name], name)


@pytest.mark.parametrize("function", [decoder_jacobian, latent_coupling])
def test_decoder_derivatives_from_many_threads(models, function):
    # The calls of the issue: torch.func.jacfwd raised a forward-AD error (or
    # returned zeros) in most of them.
    vae, _, X, _ = models
    Z = vae.transform(X)
    expected = function(vae, Z, batch_size=16)
    assert np.any(expected != 0)
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(
            pool.map(lambda _: function(vae, Z, batch_size=16), range(8 * N_THREADS))
        )
    for result in results:
        np.testing.assert_array_equal(result, expected, strict=True)
