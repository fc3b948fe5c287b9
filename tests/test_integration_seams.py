"""Where the merged pieces meet: streamed fits that fail, the inference cache,
threads, persistence of streamed models, progress and the in-place ELBO."""

import io
import pickle
import threading
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import torch
from _state import estimator_state as _state

import skvae
from skvae import VAETransformer
from skvae._inference import elbo_rows, inference_view
from skvae._losses import elbo
from skvae._vae import score_noise

N_ROWS, N_FEATURES, BUFFER = 640, 5, 128


def _quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def _memmap(tmp_path, X, name="X.dat"):
    path = tmp_path / name
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)


def _zarr(tmp_path, X):
    zarr = pytest.importorskip("zarr")
    z = zarr.open_array(
        str(tmp_path / "X.zarr"), mode="w", shape=X.shape, chunks=(64, X.shape[1]),
        dtype=X.dtype,
    )
    z[:] = X
    return z


def _dask(X):
    da = pytest.importorskip("dask.array")
    return da.from_array(X, chunks=(64, X.shape[1]))


def _data(likelihood="gaussian", dtype=np.float32, seed=0):
    rng = np.random.RandomState(seed)
    if likelihood == "bernoulli":
        return rng.uniform(size=(N_ROWS, N_FEATURES)).astype(dtype)
    return rng.normal(size=(N_ROWS, N_FEATURES)).astype(dtype)


def _vae(**params):
    params.setdefault("max_iter", 3)
    params.setdefault("random_state", 0)
    params.setdefault("buffer_size", BUFFER)
    params.setdefault("batch_size", 32)
    return VAETransformer(**params)


ENGINES = ["memmap", "zarr", "dask"]


def _streamed(engine, tmp_path, X):
    if engine == "memmap":
        return _memmap(tmp_path, X)
    if engine == "zarr":
        return _zarr(tmp_path, X)
    return _dask(X)


# ------------------------------------------------ failed streamed fits


def _spoil(X, how, row):
    X = X.copy()
    if how == "inf":
        X[row, 2] = np.inf
    else:
        X[row, 2] = 1.5  # outside [0, 1] for bernoulli
    return X


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("how", ["inf", "support"])
@pytest.mark.parametrize("method", ["fit-warm", "fit-cold", "partial_fit"])
def test_failed_streamed_refit_leaves_the_estimator_and_cache_as_they_were(
    tmp_path, engine, how, method
):
    likelihood = "bernoulli"
    X = _data(likelihood)
    vae = _vae(likelihood=likelihood, warm_start=method == "fit-warm")
    _quiet(vae.fit, _streamed(engine, tmp_path, X))
    probe64 = X[:50].astype(np.float64)
    Z32, Z64 = vae.transform(X[:50]), vae.transform(probe64)  # caches built
    S64 = vae.score_samples(probe64)
    before = _state(vae)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = _streamed(engine, bad_dir, _spoil(X, how, N_ROWS - 3))  # a late block
    call = vae.partial_fit if method == "partial_fit" else vae.fit
    with pytest.raises(ValueError, match=r"rows 6\d\d\.\.6\d\d"):
        _quiet(call, bad)
    np.testing.assert_equal(_state(vae), before)
    np.testing.assert_array_equal(vae.transform(X[:50]), Z32)
    np.testing.assert_array_equal(vae.transform(probe64), Z64)
    np.testing.assert_array_equal(vae.score_samples(probe64), S64)


def test_failed_streamed_fit_of_an_unfitted_model_leaves_it_unfitted(tmp_path):
    X = _spoil(_data("bernoulli"), "inf", N_ROWS - 1)
    vae = _vae(likelihood="bernoulli")
    before = dict(vae.__dict__)
    with pytest.raises(ValueError, match="non-finite"):
        _quiet(vae.fit, _memmap(tmp_path, X))
    assert vae.__dict__ == before


def test_streamed_fit_keeps_feature_names_of_an_earlier_dataframe_fit_on_failure(
    tmp_path,
):
    pd = pytest.importorskip("pandas")
    X = _data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)])
    vae = _vae()
    _quiet(vae.fit, frame)
    names = vae.feature_names_in_.copy()
    before = _state(vae)
    with pytest.raises(ValueError, match="non-finite"):
        _quiet(vae.fit, _memmap(tmp_path, _spoil(X, "inf", N_ROWS - 2)))
    np.testing.assert_array_equal(vae.feature_names_in_, names)
    np.testing.assert_equal(_state(vae), before)


@pytest.mark.parametrize("engine", ENGINES)
def test_streamed_divergence_keeps_the_previous_model(tmp_path, engine):
    X = _data()
    vae = _vae(warm_start=True)
    _quiet(vae.fit, _streamed(engine, tmp_path, X))
    Z = vae.transform(X[:40].astype(np.float64))
    before = _state(vae)
    vae.set_params(learning_rate_init=1e6, max_iter=20)
    (tmp_path / "big").mkdir()
    big = _streamed(engine, tmp_path / "big", X * 1e6)
    with pytest.raises(ValueError, match="diverged"):
        _quiet(vae.fit, big)
    vae.set_params(learning_rate_init=1e-3, max_iter=3)
    np.testing.assert_equal(_state(vae), before)
    np.testing.assert_array_equal(vae.transform(X[:40].astype(np.float64)), Z)


def test_successful_streamed_refit_refreshes_the_cached_modules(tmp_path):
    X = _data()
    vae = _vae(warm_start=True)
    _quiet(vae.fit, _memmap(tmp_path, X))
    probe = X[:40].astype(np.float64)
    Z64, Z32 = vae.transform(probe), vae.transform(X[:40])
    _quiet(vae.fit, _memmap(tmp_path, X))
    expected = _quiet(lambda: _reference_transform(vae, probe))
    np.testing.assert_allclose(vae.transform(probe), expected, rtol=1e-6, atol=1e-7)
    assert not np.array_equal(vae.transform(probe), Z64)
    assert not np.array_equal(vae.transform(X[:40]), Z32)
    _quiet(vae.partial_fit, _memmap(tmp_path, X))
    expected = _reference_transform(vae, probe)
    np.testing.assert_allclose(vae.transform(probe), expected, rtol=1e-6, atol=1e-7)


def _reference_transform(vae, X64):
    """The posterior mean by a fresh float64 copy of the module (no cache)."""
    import copy

    module = copy.deepcopy(vae.module_).double()
    with torch.no_grad():
        return module.encode(torch.from_numpy(X64))[0].numpy()


# ------------------------------------------------ threads and the cache


@pytest.mark.parametrize("workspace", [False, True], ids=["fresh", "workspace"])
def test_eight_threads_on_a_cold_cache_match_serial(tmp_path, monkeypatch, workspace):
    da = pytest.importorskip("dask.array")
    # The workspace path is what dask workers (eager malloc trimming) take.
    monkeypatch.setattr(skvae._vae, "_use_workspace", lambda: workspace)
    X = _data()
    vae = _vae()
    _quiet(vae.fit, _memmap(tmp_path, X))
    X64 = X.astype(np.float64)
    serial = {
        "t32": vae.transform(X), "t64": vae.transform(X64),
        "s32": vae.score_samples(X), "s64": vae.score_samples(X64),
        "i64": vae.inverse_transform(vae.transform(X64)),
        "d64": vae.transform(da.from_array(X64, chunks=(100, -1))).compute(),
    }
    from skvae._vae import _MODULE_CACHES

    errors, results = [], []
    for _ in range(5):
        _MODULE_CACHES.pop(vae, None)  # every round starts with a cold cache
        barrier = threading.Barrier(8)

        def work(i, barrier=barrier):
            try:
                barrier.wait()
                key = ["t32", "t64", "s32", "s64", "i64", "d64", "t64", "s64"][i]
                if key == "t32":
                    out = vae.transform(X)
                elif key == "t64":
                    out = vae.transform(X64)
                elif key == "s32":
                    out = vae.score_samples(X)
                elif key == "s64":
                    out = vae.score_samples(X64)
                elif key == "i64":
                    out = vae.inverse_transform(serial["t64"])
                else:
                    out = vae.transform(
                        da.from_array(X64, chunks=(100, -1))
                    ).compute(scheduler="threads")
                results.append((key, out))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert len(results) == 40
    for key, out in results:
        np.testing.assert_array_equal(out, serial[key], err_msg=key)


# ------------------------------------------------ persistence of streamed models


@pytest.mark.parametrize("engine", ["memmap", "dask"])
@pytest.mark.parametrize("how", ["save", "pickle"])
def test_streamed_model_round_trips_and_keeps_streaming(tmp_path, engine, how):
    X = _data()
    source = _streamed(engine, tmp_path, X)
    vae = _vae(buffer_size=BUFFER)
    _quiet(vae.fit, source)
    if how == "save":
        skvae.save(vae, tmp_path / "m.skvae")
        loaded = skvae.load(tmp_path / "m.skvae")
    else:
        loaded = pickle.loads(pickle.dumps(vae))
    assert loaded.buffer_size == BUFFER
    X64 = X.astype(np.float64)
    np.testing.assert_array_equal(loaded.transform(X64), vae.transform(X64))
    np.testing.assert_array_equal(loaded.score_samples(X), vae.score_samples(X))
    _quiet(vae.partial_fit, source)
    _quiet(loaded.partial_fit, source)
    np.testing.assert_array_equal(loaded.transform(X64), vae.transform(X64))
    assert loaded.n_iter_ == vae.n_iter_


# ------------------------------------------------ progress


def test_verbose_streamed_fit_and_partial_fit_print_progress(tmp_path):
    X = _memmap(tmp_path, _data())
    vae = _vae(verbose=1, max_iter=2)
    out = io.StringIO()
    with redirect_stdout(out):
        _quiet(vae.fit, X)
        _quiet(vae.partial_fit, X)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Epoch 1/2") and lines[1].startswith("Epoch 2/2")
    assert lines[2].startswith("Trained 2 epochs: stopped because reached max_iter")
    assert lines[3].startswith("Epoch 3/3"), lines  # partial_fit: one epoch
    assert len(lines) == 4, lines


def test_verbose_warm_start_summary_counts_this_calls_epochs(tmp_path):
    # It said "Trained 4 epochs: stopped because reached max_iter=2".
    X = _memmap(tmp_path, _data())
    vae = _vae(verbose=1, max_iter=2, warm_start=True)
    _quiet(vae.fit, X)
    out = io.StringIO()
    with redirect_stdout(out):
        _quiet(vae.fit, X)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("Epoch 3/4"), lines
    assert lines[-1].startswith(
        "Trained 2 epochs (4 in all): stopped because reached max_iter=2"
    ), lines


# ------------------------------------------------ in-place ELBO


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "calibrated_gaussian"])
def test_in_place_elbo_agrees_with_the_out_of_place_one_in_float64(likelihood):
    X = _data(likelihood, np.float64)
    vae = _vae(likelihood=likelihood, buffer_size=10_000)
    _quiet(vae.fit, X)
    module = skvae._vae.inference_module(vae, np.float64)
    eps = score_noise(vae.n_components, torch.float64, "cpu")
    x = torch.from_numpy(X)
    with torch.no_grad():
        expected = elbo(module, x, eps).numpy()
        got = elbo_rows(inference_view(module), x, eps).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(vae.score_samples(X), expected, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("likelihood", ["gaussian", "calibrated_gaussian", "bernoulli"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_finite_input_gives_finite_scores_or_names_rows(likelihood, dtype):
    X = _data(likelihood, np.float64)
    vae = _vae(likelihood=likelihood, buffer_size=10_000)
    _quiet(vae.fit, X)
    module = skvae._vae.inference_module(vae, np.float64)
    eps = score_noise(vae.n_components, torch.float64, "cpu")
    scales = [1.0] if likelihood == "bernoulli" else 10.0 ** np.arange(0, 300, 7)
    n_checked = 0
    for scale in scales:
        rows = (X[:20] * scale).astype(dtype)
        if not np.all(np.isfinite(rows)):
            continue
        n_checked += 1
        try:
            scores = vae.score_samples(rows)
        except ValueError as exc:
            assert "row indices" in str(exc), exc
            continue
        assert scores.dtype == dtype
        assert np.all(np.isfinite(scores)), (scale, scores)
        with torch.no_grad():
            x64 = torch.from_numpy(rows.astype(np.float64))
            ref = elbo(module, x64, eps).numpy()
        if np.all(np.isfinite(ref)) and np.all(np.abs(ref) < np.finfo(dtype).max):
            tol = 1e-4 if dtype == np.float32 else 1e-9
            np.testing.assert_allclose(scores, ref, rtol=tol, err_msg=str(scale))
    assert n_checked >= 1


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli", "calibrated_gaussian"])
def test_a_row_scores_the_same_in_float32_and_float64(likelihood):
    # The fixed draws of score_samples were drawn in the dtype of X, and
    # torch's randn draws other numbers in float64: 1.5% apart, not rounding.
    X = _data(likelihood, np.float32)
    vae = _vae(likelihood=likelihood, buffer_size=10_000)
    _quiet(vae.fit, X)
    np.testing.assert_allclose(
        vae.score_samples(X), vae.score_samples(X.astype(np.float64)), rtol=2e-5
    )


@pytest.mark.parametrize("engine", ["ndarray", *ENGINES])
def test_a_float64_value_beyond_float32_is_named_not_called_nan(tmp_path, engine):
    # Streamed, a finite 1e39 became inf in the float32 block and was reported
    # as "NaN or infinity"; in memory it was a "Training diverged" error.
    X = _data(dtype=np.float64)
    X[600, 1] = -1e39
    source = X if engine == "ndarray" else _streamed(engine, tmp_path, X)
    vae = _vae()
    with pytest.raises(ValueError, match=r"too large for float32 at row 600 .*1e\+39"):
        _quiet(vae.fit, source)
    assert not hasattr(vae, "module_")


@pytest.mark.parametrize("method", ["transform", "score_samples"])
@pytest.mark.parametrize("how", ["inf", "support", "huge"])
def test_dask_inference_errors_name_the_block_rows(method, how):
    # Out of core, an error names the rows in the whole array (issue 9), as
    # the streamed fit does; the block function only saw its block.
    X = _data("bernoulli", np.float64)
    vae = _vae(likelihood="bernoulli", buffer_size=10_000)
    _quiet(vae.fit, X)
    X[603, 1] = {"inf": np.inf, "support": 1.5, "huge": 1e300}[how]
    lazy = getattr(vae, method)(_dask(X))
    if how != "inf" and method == "transform":
        np.testing.assert_array_equal(lazy.compute(), vae.transform(X))
        return
    with pytest.raises(ValueError, match=r"In rows 576\.\.639 of the dask array"):
        lazy.compute()


# ------------------------------------------------ Ctrl-C in a streamed fit


class _SignallingArray:
    """An out-of-core array-like that sends SIGINT to this process at read ``at``.

    The signal is real, so it lands where the fit happens to be: in the
    training loop (interruptible) or in the diagnostics read after it
    (deferred). pytest runs tests in the main thread, where signals arrive.
    """

    def __init__(self, X, at):
        self._X, self._at, self.reads = X, at, 0
        self.shape, self.ndim, self.dtype = X.shape, X.ndim, X.dtype

    def __getitem__(self, index):
        self.reads += 1
        if self.reads == self._at:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGINT)
        return self._X[index]


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals"
)
@pytest.mark.parametrize("where", ["first-epoch", "later-epoch", "diagnostics"])
def test_ctrl_c_in_a_streamed_fit_gives_a_consistent_model(where):
    from skvae import TrainingInterruptedWarning
    from skvae._losses import kl_divergence

    X = _data()
    max_iter = 4
    n_blocks = N_ROWS // (BUFFER // 8)
    at = {"first-epoch": 3, "later-epoch": 2 * n_blocks + 3}.get(
        where, max_iter * n_blocks + 1
    )
    source = _SignallingArray(X, at)
    vae = _vae(max_iter=max_iter, tol=0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.fit(source)
    assert source.reads >= at
    assert any(issubclass(w.category, TrainingInterruptedWarning) for w in caught)
    expected_epochs = {"first-epoch": 0, "later-epoch": 2}.get(where, max_iter)
    assert vae.n_iter_ == expected_epochs == len(vae.loss_curve_)
    # The diagnostics are of the final weights, on the bounded sample.
    sample = np.concatenate(
        [X[start:stop] for start, stop in _sample_ranges(vae, source)]
    )
    with torch.no_grad():
        mean, logvar = vae.module_.encode(torch.from_numpy(sample))
        kl = kl_divergence(mean, logvar).double().mean(dim=0).numpy()
    np.testing.assert_allclose(vae.kl_per_dimension_, kl, rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(vae.transform(X)))


def _sample_ranges(vae, X):
    from skvae._data import RowSource, StreamedRows, block_ranges

    ranges = block_ranges(X, vae.buffer_size // 8)
    rows = StreamedRows(RowSource(X, np.float32), ranges, vae.buffer_size, "cpu")
    return rows.sample(vae.buffer_size).ranges


def test_a_dask_array_of_unknown_length_is_not_loaded_whole():
    # X.shape[0] is NaN (a dask DataFrame's .values): NaN > buffer_size was
    # False, so fit computed the whole array into memory whatever buffer_size.
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X = _data(dtype=np.float64)
    frame = dd.from_pandas(pd.DataFrame(X), npartitions=5)
    vae = _vae()
    with pytest.raises(ValueError, match=r"unknown number of rows.*compute_chunk"):
        _quiet(vae.fit, frame.values)
    assert not hasattr(vae, "n_features_in_")
    known = frame.values.compute_chunk_sizes()
    _quiet(vae.fit, known)
    assert vae.n_features_in_ == N_FEATURES


@pytest.mark.parametrize("how", ["save", "pickle", "skops"])
def test_loaded_streamed_model_survives_a_failed_streamed_partial_fit(tmp_path, how):
    X = _data()
    source = _memmap(tmp_path, X)
    vae = _vae()
    _quiet(vae.fit, source)

    def reload():
        if how == "save":
            skvae.save(vae, tmp_path / "m.skvae")
            return skvae.load(tmp_path / "m.skvae")
        if how == "pickle":
            return pickle.loads(pickle.dumps(vae))
        sio = pytest.importorskip("skops.io")
        sio.dump(vae, tmp_path / "m.skops")
        return sio.load(tmp_path / "m.skops", trusted=sio.get_untrusted_types(
            file=tmp_path / "m.skops"))

    loaded, fresh = reload(), reload()
    before = _state(loaded)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    with pytest.raises(ValueError, match="non-finite"):
        _quiet(loaded.partial_fit, _memmap(bad_dir, _spoil(X, "inf", N_ROWS - 5)))
    np.testing.assert_equal(_state(loaded), before)
    # The optimiser state that loading gave survived: both continue alike.
    _quiet(loaded.partial_fit, source)
    _quiet(fresh.partial_fit, source)
    X64 = X.astype(np.float64)
    np.testing.assert_array_equal(loaded.transform(X64), fresh.transform(X64))
    np.testing.assert_equal(_state(loaded), _state(fresh))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_error_for_unscorable_rows_suggests_float64_only_for_float32(dtype):
    X = _data(dtype=np.float64)
    vae = _vae(buffer_size=10_000)
    _quiet(vae.fit, X)
    rows = (X[:5] * 1e30).astype(dtype)
    with pytest.raises(ValueError, match="row indices") as info:
        vae.score_samples(rows)
    assert ("pass float64 X" in str(info.value)) == (dtype == np.float32)


def test_a_pickle_from_before_buffer_size_still_works(tmp_path):
    # buffer_size came with the out-of-core merge; a model pickled before it
    # has no such attribute, and get_params (repr, clone) and fit read it.
    from sklearn.base import clone

    X = _data()
    vae = _vae()
    _quiet(vae.fit, X)
    state = vae.__getstate__()
    del state["buffer_size"]
    old = VAETransformer.__new__(VAETransformer)
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old.get_params()["buffer_size"] == 262_144
    assert "VAETransformer" in repr(old) and clone(old).buffer_size == 262_144
    np.testing.assert_array_equal(old.transform(X), vae.transform(X))
    old.set_params(buffer_size=BUFFER)
    _quiet(old.partial_fit, _memmap(tmp_path, X))
    _quiet(vae.partial_fit, _memmap(tmp_path, X))
    np.testing.assert_array_equal(old.transform(X), vae.transform(X))


class _FailingArray(_SignallingArray):
    """Raises ``error`` at read ``at`` (an I/O error in a late block)."""

    def __init__(self, X, at, error):
        super().__init__(X, at=-1)
        self._fail_at, self._error = at, error

    def __getitem__(self, index):
        if self.reads + 1 == self._fail_at:
            self.reads += 1
            raise self._error
        return super().__getitem__(index)


@pytest.mark.parametrize("error", [OSError("disk gone"), MemoryError("no room")])
@pytest.mark.parametrize("method", ["fit-warm", "partial_fit", "fit-cold-unfitted"])
def test_a_read_error_mid_stream_leaves_the_estimator_as_it_was(error, method):
    X = _data()
    vae = _vae(warm_start=method == "fit-warm", max_iter=3)
    if method != "fit-cold-unfitted":
        _quiet(vae.fit, X)
        vae.transform(X.astype(np.float64))
    before = _state(vae)
    n_blocks = N_ROWS // (BUFFER // 8)
    source = _FailingArray(X, n_blocks + n_blocks // 2, error)  # epoch 2
    if method == "partial_fit":
        source = _FailingArray(X, n_blocks - 1, error)
    with pytest.raises(type(error), match=str(error)):
        _quiet(vae.partial_fit if method == "partial_fit" else vae.fit, source)
    np.testing.assert_equal(_state(vae), before)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_streamed_array_without_columns_gets_the_in_memory_error(tmp_path, engine):
    # It was a raw ZeroDivisionError; in memory it is scikit-learn's message.
    X = np.zeros((N_ROWS, 0), dtype=np.float32)
    source = np.lib.format.open_memmap(
        tmp_path / "empty.npy", mode="w+", dtype=np.float32, shape=X.shape
    ) if engine == "memmap" else (_dask(X) if engine == "dask" else None)
    if engine == "zarr":
        zarr = pytest.importorskip("zarr")
        source = zarr.open_array(
            str(tmp_path / "e.zarr"), mode="w", shape=X.shape, dtype="f4"
        )
    vae = _vae()
    with pytest.raises(ValueError, match=r"0 feature\(s\).*minimum of 1"):
        _quiet(vae.fit, source)
    assert not hasattr(vae, "n_features_in_")


def test_an_empty_dask_array_gets_the_in_memory_error():
    vae = _vae(buffer_size=10_000)
    _quiet(vae.fit, _data())
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match=r"^Found array with 0 sample\(s\)"):
        vae.transform(da.zeros((0, N_FEATURES), chunks=(10, -1))).compute()


def test_pandas_output_with_dask_input():
    # set_output(transform="pandas") made the meta (and every block) a
    # DataFrame: AttributeError 'DataFrame' object has no attribute 'dtype'.
    # Now the blocks are arrays and scikit-learn's wrapper makes the result a
    # pandas DataFrame (computed, as it would from any other input).
    X = _data(dtype=np.float64)
    vae = _vae(buffer_size=10_000)
    _quiet(vae.fit, X)
    vae.set_output(transform="pandas")
    out = vae.transform(_dask(X))
    expected = vae.transform(X)
    assert list(out.columns) == list(expected.columns) == ["z0", "z1"]
    np.testing.assert_array_equal(out.to_numpy(), expected.to_numpy())
    vae.set_output(transform="default")
    assert hasattr(vae.transform(_dask(X)), "dask")
