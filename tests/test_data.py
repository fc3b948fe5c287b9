
"""The data path: row blocks of in-memory and out-of-core arrays."""

import copy
import pickle
import threading

import numpy as np
import pytest
import torch

from skvae import VAETransformer
from skvae._data import (
    CHUNK_VALUES,
    MAX_CHUNK_ROWS,
    InMemoryRows,
    RowSource,
    StreamedRows,
    block_ranges,
    check_chunk_rows,
    chunk_rows,
    is_out_of_core,
    tensor_blocks,
)
from skvae._vae import inference_module

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore::skvae.PosteriorCollapseWarning",
)


def _data(n=6000, seed=0):
    rng = np.random.RandomState(seed)
    latent = rng.standard_normal((n, 3))
    X = latent @ rng.standard_normal((3, 10)) + 0.3 * rng.standard_normal((n, 10))
    return X.astype(np.float32)


def _memmap(tmp_path, X, name="x.npy"):
    path = tmp_path / name
    np.save(path, X)
    return np.load(path, mmap_mode="r")


def test_chunk_rows_is_one_rule():
    assert chunk_rows(1) == MAX_CHUNK_ROWS
    assert chunk_rows(1000) == CHUNK_VALUES // 1000
    assert chunk_rows(10 * CHUNK_VALUES) == 1
    assert chunk_rows(64, max_rows=100) == 100


def test_a_callers_batch_size_or_the_rule():
    assert check_chunk_rows(None, 1000) == chunk_rows(1000)
    assert check_chunk_rows(7, 1000) == 7
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            check_chunk_rows(bad, 10)


def test_tensor_blocks_copy_every_row_once_in_order():
    X = np.arange(30.0).reshape(10, 3)
    before = X.copy()
    blocks = list(tensor_blocks(X, 4, "cpu", dtype=np.float32))
    assert [rows for rows, _ in blocks] == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert all(x.dtype == torch.float32 for _, x in blocks)
    np.testing.assert_array_equal(torch.cat([x for _, x in blocks]).numpy(), X)
    blocks[0][1][:] = -1.0  # a copy: the caller's array does not change
    np.testing.assert_array_equal(X, before)


def test_what_is_out_of_core(tmp_path):
    X = _data(10)
    assert not is_out_of_core(X)
    assert is_out_of_core(_memmap(tmp_path, X))
    assert not is_out_of_core(X.tolist())
    pd = pytest.importorskip("pandas")
    assert not is_out_of_core(pd.DataFrame(X))
    zarr = pytest.importorskip("zarr")
    assert is_out_of_core(zarr.array(X))


def test_block_ranges_cover_the_rows_and_follow_storage_chunks():
    zarr = pytest.importorskip("zarr")
    X = zarr.create_array(store={}, shape=(1050, 3), chunks=(100, 3), dtype="f4")
    ranges = block_ranges(X, 250)
    # Whole storage chunks: 250 rounds down to 2 chunks of 100.
    assert ranges[0] == (0, 200) and ranges[-1] == (1000, 1050)
    covered = np.concatenate([np.arange(a, b) for a, b in ranges])
    np.testing.assert_array_equal(covered, np.arange(1050))
    assert block_ranges(np.zeros((10, 2)), 4) == [(0, 4), (4, 8), (8, 10)]


def test_streamed_epoch_visits_every_row_once_in_a_new_order():
    X = _data(1000)
    source = RowSource(X, np.float32)
    rows = StreamedRows(source, block_ranges(X, 50), buffer_size=200, device="cpu")
    generator = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        # Each chunk is a view of a reused buffer: copy it before the next.
        chunks = [(x.clone(), eps) for x, eps in rows.epoch(32, 3, generator)]
        x = torch.cat([c[0] for c in chunks]).numpy()
        assert all(c[0].shape[0] % 32 == 0 for c in chunks[:-1])
        assert all(c[1].shape == (c[0].shape[0], 3) for c in chunks)
        # Every row exactly once: the rows, sorted, are X's rows, sorted.
        np.testing.assert_array_equal(
            x[np.lexsort(x.T[::-1])], X[np.lexsort(X.T[::-1])]
        )
        epochs.append(x)
    assert not np.array_equal(epochs[0], epochs[1])
    # Shuffled within buffers: the first buffer's 192 rows (6 batches) come from
    # its 4 blocks of 50 rows.
    first = {int(np.flatnonzero((X == row).all(axis=1))[0]) // 50 for row in x[:192]}
    assert len(first) == 4


def test_in_memory_rows_match_a_whole_array_gather():
    X = torch.from_numpy(_data(60000))  # several chunks of 16,384 rows
    rows = torch.arange(0, 60000, 2)
    generator = torch.Generator().manual_seed(1)
    # Each chunk is a view of a reused buffer: copy it before the next.
    chunks = [(x.clone(), e) for x, e in InMemoryRows(X, rows).epoch(64, 2, generator)]
    generator = torch.Generator().manual_seed(1)
    order = torch.randperm(rows.shape[0], generator=generator)
    eps = torch.randn(rows.shape[0], 2, generator=generator)
    torch.testing.assert_close(
        torch.cat([c[0] for c in chunks]), X[rows[order]], rtol=0, atol=0
    )
    torch.testing.assert_close(torch.cat([c[1] for c in chunks]), eps, rtol=0, atol=0)


def test_memmap_fit_reaches_the_in_memory_held_out_elbo(tmp_path):
    X = _data(6000)
    X_train, X_test = X[:5000], X[5000:]
    memmap = _memmap(tmp_path, X_train)
    params = dict(max_iter=8, batch_size=64, buffer_size=1000)
    in_memory = [
        VAETransformer(random_state=s, **params).fit(X_train).score(X_test)
        for s in range(3)
    ]
    streamed = [
        VAETransformer(random_state=s, **params).fit(memmap).score(X_test)
        for s in range(3)
    ]
    spread = max(np.std(in_memory), np.std(streamed), 0.02)
    assert abs(np.mean(streamed) - np.mean(in_memory)) < 3 * spread
    # And the model learned something: far better than its first epoch.
    untrained = VAETransformer(random_state=0, **(params | {"max_iter": 1}))
    assert np.mean(streamed) > untrained.fit(memmap).score(X_test) + 1.0


def test_zarr_h5py_dask_and_memmap_train_the_same_model(tmp_path):
    zarr = pytest.importorskip("zarr")
    h5py = pytest.importorskip("h5py")
    da = pytest.importorskip("dask.array")
    X = _data(3000)
    z = zarr.create_array(
        store=str(tmp_path / "x.zarr"), shape=X.shape, chunks=(125, 10), dtype="f4"
    )
    z[:] = X
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=X, chunks=(125, 10))
    params = dict(max_iter=2, random_state=0, buffer_size=1000, early_stopping=True)
    models = []
    with h5py.File(tmp_path / "x.h5", "r") as f:
        for data in (_memmap(tmp_path, X), z, f["x"], da.from_array(X, chunks=125)):
            models.append(VAETransformer(**params).fit(data))
    reference = models[0].transform(X)
    for model in models[1:]:
        np.testing.assert_array_equal(model.transform(X), reference)
        assert model.validation_scores_ == models[0].validation_scores_


def test_non_finite_block_is_named_by_its_rows(tmp_path):
    X = _data(4000)
    X[3205, 4] = np.inf  # NaN is a missing value; infinity is refused
    memmap = _memmap(tmp_path, X)
    vae = VAETransformer(max_iter=1, buffer_size=800, random_state=0)
    with pytest.raises(
        ValueError,
        match=r"non-finite value .* rows 3,200..3,299, "
        r"first at row 3,205",
    ):
        vae.fit(memmap)
    assert np.isinf(memmap[3205, 4])


def test_bernoulli_support_is_checked_block_by_block(tmp_path):
    X = np.clip(_data(2000) / 8 + 0.5, 0, 1)
    X[1234, 0] = 1.5
    vae = VAETransformer(likelihood="bernoulli", max_iter=1, buffer_size=400)
    where = r"\[0, 1\].*row 1234 \(in rows 1,200..1,249\) holds 1.5"
    with pytest.raises(ValueError, match=where):
        vae.fit(_memmap(tmp_path, X))


def test_bad_out_of_core_shapes_and_columns(tmp_path):
    zarr = pytest.importorskip("zarr")
    vae = VAETransformer(max_iter=1, buffer_size=10)
    with pytest.raises(ValueError, match="Expected a 2-D array.*got a 3-D"):
        vae.fit(zarr.zeros((30, 2, 2), dtype="f4"))
    with pytest.raises(ValueError, match="Expected a 2-D array.*got a 1-D"):
        vae.fit(zarr.zeros((30,), dtype="f4"))
    with pytest.raises(ValueError, match="not a real number type"):
        vae.fit(zarr.zeros((30, 2), dtype="c8"))
    vae.fit(_memmap(tmp_path, _data(100)))
    with pytest.raises(
        ValueError, match="has 3 features, but VAETransformer is expecting 10"
    ):
        vae.partial_fit(zarr.zeros((30, 3), dtype="f4"))


def test_streaming_mutates_nothing(tmp_path):
    zarr = pytest.importorskip("zarr")
    X = _data(2000).astype(np.float64)
    z = zarr.array(X.copy(), chunks=(100, 10))
    before = z[:].copy()
    vae = VAETransformer(
        max_iter=2, buffer_size=300, early_stopping=True, random_state=0
    ).fit(z)
    # partial_fit refuses early stopping, so it streams with it off.
    vae.set_params(early_stopping=False).partial_fit(z)
    np.testing.assert_array_equal(z[:], before)
    np.testing.assert_array_equal(z[:], X)


def test_streamed_diagnostics_come_from_a_bounded_sample(tmp_path):
    X = _data(4000)
    vae = VAETransformer(max_iter=2, buffer_size=1000, random_state=0)
    vae.fit(_memmap(tmp_path, X))
    # buffer_size rows, evenly spaced blocks of 125 across X.
    blocks = np.linspace(0, 31, 8).round().astype(int)
    sample = np.concatenate([X[b * 125 : (b + 1) * 125] for b in blocks])
    module = inference_module(vae, np.float64)
    with torch.no_grad():
        mean, logvar = module.encode(torch.from_numpy(sample.astype(np.float64)))
    kl = 0.5 * (mean**2 + logvar.exp() - 1 - logvar)
    np.testing.assert_allclose(vae.kl_per_dimension_, kl.mean(0).numpy(), rtol=1e-5)


def test_inference_module_is_cached_and_follows_the_weights():
    X = _data(500).astype(np.float64)
    vae = VAETransformer(max_iter=1, random_state=0).fit(X)
    assert inference_module(vae, np.float32) is vae.module_
    first = inference_module(vae, np.float64)
    assert inference_module(vae, np.float64) is first
    assert next(first.parameters()).dtype == torch.float64
    state = vae.__dict__.copy()
    vae.transform(X)
    assert vae.__dict__.keys() == state.keys()
    vae.partial_fit(X)
    second = inference_module(vae, np.float64)
    assert second is not first
    torch.testing.assert_close(
        next(second.parameters()).float(), next(vae.module_.parameters())
    )
    # Weights changed in place (not by fit) are noticed too.
    with torch.no_grad():
        next(vae.module_.parameters()).add_(1.0)
    third = inference_module(vae, np.float64)
    assert third is not second
    # The cached float64 copy is never pickled: the pickle of a model whose
    # cache holds a copy is the pickle of the same model without one.
    assert third is inference_module(vae, np.float64)
    # A deep copy has no cache (it is held outside the estimator).
    fresh = copy.deepcopy(vae)
    assert len(pickle.dumps(vae)) == len(pickle.dumps(fresh))
    assert inference_module(fresh, np.float64) is not third


def test_inference_module_is_built_once_under_threads():
    vae = VAETransformer(max_iter=1, random_state=0).fit(_data(300))
    results = []
    barrier = threading.Barrier(8)

    def build():
        barrier.wait()
        results.append(inference_module(vae, np.float64))

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(module) for module in results}) == 1


def test_nothing_of_dask_is_imported_without_dask_input():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from skvae import VAETransformer\n"
        "X = np.random.RandomState(0).rand(60, 3)\n"
        "vae = VAETransformer(max_iter=1).fit(X)\n"
        "vae.transform(X), vae.score_samples(X), vae.inverse_transform(X[:, :2])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed', 'zarr', 'h5py')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
