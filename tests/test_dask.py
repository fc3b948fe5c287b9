"""Dask collections in and out, dask-ml wrappers and a LocalCluster."""

import warnings

import numpy as np
import pytest
import torch

from skvae import VAETransformer

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::skvae.PosteriorCollapseWarning",
)


def _data(n=3000, dtype=np.float64):
    rng = np.random.RandomState(0)
    latent = rng.standard_normal((n, 2))
    X = latent @ rng.standard_normal((2, 8)) + 0.2 * rng.standard_normal((n, 8))
    return X.astype(dtype)


@pytest.fixture(scope="module")
def fitted():
    return VAETransformer(max_iter=3, random_state=0).fit(_data())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lazy_output_equals_the_in_process_result(fitted, dtype):
    X = _data(dtype=dtype)
    D = da.from_array(X, chunks=700)
    Z = fitted.transform(D)
    assert isinstance(Z, da.Array)
    assert Z.chunks == (D.chunks[0], (2,))
    assert Z.dtype == dtype and Z._meta.dtype == dtype and Z._meta.ndim == 2
    np.testing.assert_array_equal(Z.compute(), fitted.transform(X))
    scores = fitted.score_samples(D)
    assert scores.chunks == (D.chunks[0],) and scores.dtype == dtype
    np.testing.assert_allclose(scores.compute(), fitted.score_samples(X), rtol=1e-6)
    back = fitted.inverse_transform(Z)
    assert back.chunks == (D.chunks[0], (8,))
    np.testing.assert_array_equal(
        back.compute(), fitted.inverse_transform(fitted.transform(X))
    )


def test_nothing_is_computed_until_asked(fitted):
    calls = []

    def block(i):
        calls.append(i)
        return _data(500)[:, :]

    D = da.concatenate(
        [
            da.from_delayed(dask.delayed(block)(i), (500, 8), dtype=np.float64)
            for i in range(4)
        ]
    )
    Z = fitted.transform(D)
    assert calls == []
    Z.compute()
    assert sorted(calls) == [0, 1, 2, 3]


def test_the_model_is_one_key_of_the_graph(fitted):
    Z = fitted.transform(da.from_array(_data(), chunks=100))  # 30 blocks
    graph = dict(Z.__dask_graph__())
    model_keys = [key for key in graph if "VAETransformer" in str(key)]
    assert len(model_keys) == 1
    # Each block's task refers to that key, not to a copy of the estimator.
    n_copies = sum(1 for value in graph.values() if isinstance(value, VAETransformer))
    assert n_copies <= 1


def test_column_chunks_are_joined(fitted):
    D = da.from_array(_data(), chunks=(1000, 3))
    np.testing.assert_array_equal(
        fitted.transform(D).compute(), fitted.transform(_data())
    )


def test_bad_dask_input_gets_clear_errors(fitted):
    with pytest.raises(ValueError, match="2-D dask array.*got a 1-D"):
        fitted.transform(da.zeros(10, chunks=5))
    with pytest.raises(ValueError, match="2-D dask array.*got a 3-D"):
        fitted.score_samples(da.zeros((10, 8, 2), chunks=5))
    with pytest.raises(ValueError, match="X has 5 columns.*expects 8"):
        fitted.transform(da.zeros((10, 5), chunks=5))
    with pytest.raises(ValueError, match="Z has 3 columns.*expects 2"):
        fitted.inverse_transform(da.zeros((10, 3), chunks=5))
    with pytest.raises(ValueError, match="non-finite value.*rows"):
        VAETransformer(buffer_size=100).fit(
            da.from_array(np.full((300, 8), np.inf), chunks=50)
        )


def test_dask_ml_wrappers_still_work():
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X = _data()
    D = da.from_array(X, chunks=1000)
    inc = wrappers.Incremental(VAETransformer(random_state=0), shuffle_blocks=False)
    inc.fit(D)
    plain = VAETransformer(random_state=0)
    for start in range(0, 3000, 1000):
        plain.partial_fit(X[start : start + 1000])
    np.testing.assert_array_equal(inc.transform(D).compute(), plain.transform(X))
    post = wrappers.ParallelPostFit(VAETransformer(max_iter=2, random_state=0))
    post.fit(X)
    np.testing.assert_array_equal(
        post.transform(D).compute(), post.estimator.transform(X)
    )


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        with cluster, distributed.Client(cluster) as client:
            yield client


def test_transform_on_a_local_cluster(client, fitted):
    X = _data()
    Z = fitted.transform(da.from_array(X, chunks=500))
    np.testing.assert_array_equal(Z.compute(), fitted.transform(X))
    # dask's workers limit their threads; torch inside a task follows.
    assert set(client.run(torch.get_num_threads).values()) == {1}


def test_grid_search_on_dask_equals_serial(client):
    import joblib
    from sklearn.model_selection import GridSearchCV

    X = _data(600)
    grid = {"recon_weight": [1.0, "auto"], "random_state": [0, 1]}
    base = VAETransformer(hidden_layer_sizes=(8,), max_iter=3)
    serial = GridSearchCV(base, grid, cv=2, n_jobs=1).fit(X)
    with joblib.parallel_backend("dask"):
        parallel = GridSearchCV(base, grid, cv=2, n_jobs=2).fit(X)
    assert parallel.best_params_ == serial.best_params_
    for key in ("mean_test_score", "split0_test_score", "split1_test_score"):
        np.testing.assert_array_equal(
            parallel.cv_results_[key], serial.cv_results_[key]
        )
