"""Scale: out-of-core fit, fit memory, dask transform, threads, grid search.

Each memory figure comes from a fresh child process (after one small warm-up
fit, so that torch's one-time allocations are not counted), which samples its
own anonymous resident memory (``RssAnon`` of ``/proc/self/status``, every 5 ms,
in a thread): the peak during the call above the value before it. Pages of a
memmapped file that the fit reads are file-backed and reclaimable, so they are
not counted (they are what the page cache would hold anyway). Linux only.

1. Out-of-core fit, 1 epoch, of an ``N x 48`` float32 ``np.memmap``
   (``--rows``, 10,000,000 by default: 1.9 GB): peak extra anonymous memory
   against the file's size, and samples/s against an in-memory fit of the
   first ``--in-memory-rows`` rows (2,000,000 by default, a subset to bound
   the memory of this benchmark) in the same process, side by side.
2. In-memory fit of 1,000,000 x 48 float32, 2 epochs, with and without
   ``early_stopping``: peak extra memory against the input's size.
3. Dask transform of the memmap's rows on ``LocalCluster(2 workers x 1
   thread)`` (the nanny's environment as dask sets it) against the same
   blocks transformed in this process on one thread: per-core throughput;
   the time to build the lazy graph; how many times each worker unpickled
   the model (a subclass that appends its process id to a file when
   unpickled). Then one block's task alone (8 transforms of one block, the
   best): in a worker, and in plain processes with and without the worker's
   ``MALLOC_TRIM_THRESHOLD_=65536``, interleaved, three rounds.
4. ``transform`` and ``score_samples`` rows/s at the thread count skvae picks
   against 1 and 2 fixed threads, on the machine as it is and with a second
   process spinning on one core.
5. ``GridSearchCV``, 12 fits (2 recon_weight x 3 seeds x 2 folds): serial vs
   loky ``n_jobs=2`` vs ``joblib.parallel_backend('dask')`` on 2 workers.

Run::

    python benchmarks/bench_scale.py            # about 10 minutes
    python benchmarks/bench_scale.py --quick    # about 2 minutes
"""

import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from _common import fmt, load_average, machine, make_data, parse_args, write_results

import skvae._vae as vae_module
from skvae import VAETransformer

warnings.filterwarnings("ignore")
MIB = 2**20
N_FEATURES = 48


class _AnonPeak:
    """Peak of this process's anonymous resident memory, sampled in a thread."""

    def __enter__(self):
        self.before = self.peak = _rss_anon()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_anon())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_anon())
        self.extra = self.peak - self.before


def _rss_anon():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("RssAnon not in /proc/self/status")


def write_memmap(path, n_rows, block=500_000):
    """An ``n_rows x 48`` float32 .npy file of ``make_data`` rows, block by block."""
    out = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(n_rows, N_FEATURES)
    )
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        out[start:stop] = make_data(stop - start, seed=start // block)
    out.flush()
    del out


# ------------------------------------------------------------ child probes


def probe_fit(kind, path, n_rows, early_stopping):
    """In a fresh process: peak extra anonymous memory and time of one fit."""
    if kind == "memmap":
        X = np.load(path, mmap_mode="r")
        if n_rows:
            X = X[:n_rows]
        nbytes = X.shape[0] * N_FEATURES * 4
    else:
        X = np.array(np.load(path, mmap_mode="r")[:n_rows])  # in memory, not a memmap
        nbytes = X.nbytes
    # One small fit first: torch's one-time allocations (thread pools, oneDNN
    # kernels) are not the fit's working memory.
    VAETransformer(max_iter=1, random_state=0).fit(make_data(2000))
    vae = VAETransformer(
        max_iter=1 if kind == "memmap" else 2,
        early_stopping=early_stopping,
        random_state=0,
    )
    with _AnonPeak() as peak:
        tic = time.perf_counter()
        vae.fit(X)
        seconds = time.perf_counter() - tic
    return {
        "extra_bytes": peak.extra,
        "input_bytes": nbytes,
        "seconds": seconds,
        "rows": int(X.shape[0]),
        "epochs": vae.n_iter_,
    }


# ------------------------------------------------------------ sections


def block_rows_per_s(model, path, n_rows, repeats=8):
    """Rows/s of ``model.transform`` on one block, best of ``repeats``, 1 thread.

    Run inside a dask worker and in plain processes: the task without the
    scheduler, so that what the worker's process costs shows on its own.
    """
    torch.set_num_threads(1)
    X = np.array(np.load(path, mmap_mode="r")[:n_rows])
    model.transform(X)
    return n_rows / min(_seconds(model.transform, X) for _ in range(repeats))


def local_cluster():
    """The benchmark's cluster: 2 worker processes x 1 thread, loopback only."""
    import distributed

    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )

def child(*args, env=None):
    environ = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    out = subprocess.run(
        [sys.executable, __file__, "--probe", json.dumps(args)],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def section_out_of_core(path, n_rows, n_memory):
    streamed = child("fit", "memmap", path, 0, False)
    in_memory = child("fit", "memory", path, n_memory, False)
    # A second pair, interleaved, for the speed ratio on a busy machine.
    streamed_small = child("fit", "memmap", path, n_memory, False)
    rate = {
        "out-of-core, all rows": streamed["rows"] / streamed["seconds"],
        "out-of-core, subset": streamed_small["rows"] / streamed_small["seconds"],
        "in memory, subset": in_memory["rows"] * 2 / in_memory["seconds"],
    }
    rows = [
        [
            f"memmap {streamed['rows']:,} x 48, 1 epoch",
            fmt(streamed["input_bytes"] / MIB),
            fmt(streamed["extra_bytes"] / MIB),
            f"{streamed['extra_bytes'] / streamed['input_bytes']:.3f}x",
            fmt(rate["out-of-core, all rows"]),
        ],
        [
            f"memmap {streamed_small['rows']:,} x 48, 1 epoch",
            fmt(streamed_small["input_bytes"] / MIB),
            fmt(streamed_small["extra_bytes"] / MIB),
            f"{streamed_small['extra_bytes'] / streamed_small['input_bytes']:.3f}x",
            fmt(rate["out-of-core, subset"]),
        ],
        [
            f"in memory {in_memory['rows']:,} x 48, 2 epochs",
            fmt(in_memory["input_bytes"] / MIB),
            fmt(in_memory["extra_bytes"] / MIB),
            f"{in_memory['extra_bytes'] / in_memory['input_bytes']:.3f}x",
            fmt(rate["in memory, subset"]),
        ],
    ]
    ratio = rate["out-of-core, all rows"] / rate["in memory, subset"]
    data = {
        "streamed": streamed,
        "streamed_subset": streamed_small,
        "in_memory_subset": in_memory,
        "samples_per_s": rate,
        "throughput_ratio": ratio,
    }
    return rows, data


def section_in_memory(path, n_rows):
    rows, data = [], {}
    for early in (False, True):
        result = child("fit", "memory", path, n_rows, early)
        data[f"early_stopping={early}"] = result
        rows.append(
            [
                f"in memory {result['rows']:,} x 48, 2 epochs, early_stopping={early}",
                fmt(result["input_bytes"] / MIB),
                fmt(result["extra_bytes"] / MIB),
                f"{result['extra_bytes'] / result['input_bytes']:.3f}x",
                fmt(result["rows"] * 2 / result["seconds"]),
            ]
        )
    return rows, data


def _load_block(path, start, stop):
    return np.array(np.load(path, mmap_mode="r")[start:stop])


class CountingVAE(VAETransformer):
    """Appends its process id to ``COUNT_FILE`` each time it is unpickled."""

    count_file = None

    def __setstate__(self, state):
        with open(state["_count_file"], "a") as f:
            f.write(f"{os.getpid()}\n")
        super().__setstate__(state)

    def __getstate__(self):
        state = super().__getstate__()
        state["_count_file"] = type(self).count_file
        return state


def section_dask(path, n_rows, block_rows, model):
    import dask
    import dask.array as da
    import distributed

    count_file = Path(tempfile.mkdtemp()) / "unpickled.txt"
    CountingVAE.count_file = str(count_file)
    vae = CountingVAE(**model.get_params())
    vae.__dict__.update(
        {k: v for k, v in model.__dict__.items() if k.endswith("_") or k[0] == "_"}
    )
    starts = list(range(0, n_rows, block_rows))
    blocks = [
        da.from_delayed(
            dask.delayed(_load_block)(path, s, min(s + block_rows, n_rows)),
            (min(s + block_rows, n_rows) - s, N_FEATURES),
            dtype=np.float32,
        )
        for s in starts
    ]
    X = da.concatenate(blocks)

    # In process, one thread: the same blocks, read and transformed in turn.
    torch.set_num_threads(1)
    tic = time.perf_counter()
    total = np.zeros(2)
    for s in starts:
        total += model.transform(_load_block(path, s, s + block_rows)).sum(axis=0)
    in_process = time.perf_counter() - tic

    cluster = local_cluster()
    with cluster, distributed.Client(cluster) as client:
        client.run(lambda: None)  # workers up
        # torch's one-time set-up in each worker (thread pools, oneDNN
        # kernels), as in the warm client process; the counted model is
        # still unpickled inside the timed run.
        for _ in range(2):
            model.transform(X[: min(n_rows, 2 * block_rows)]).compute()
        tic = time.perf_counter()
        Z = vae.transform(X)
        graph_seconds = time.perf_counter() - tic
        tic = time.perf_counter()
        distributed_total = Z.sum(axis=0).compute()
        on_cluster = time.perf_counter() - tic
        worker_env = client.run(
            lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), torch.get_num_threads())
        )
        # One block's task in a worker against plain processes with and
        # without the worker's allocator setting, interleaved, three rounds.
        model_path = str(count_file.with_name("model.pkl"))
        with open(model_path, "wb") as f:
            pickle.dump(model, f)
        task = {"in a worker": [], "plain, trim": [], "plain": []}
        for _ in range(3):
            task["in a worker"].append(
                client.submit(
                    block_rows_per_s, model, path, block_rows, pure=False
                ).result()
            )
            for name, trim in (("plain, trim", "65536"), ("plain", None)):
                probe = child(
                    "task",
                    model_path,
                    path,
                    block_rows,
                    env={"MALLOC_TRIM_THRESHOLD_": trim},
                )
                task[name].append(probe["rows_per_s"])
    np.testing.assert_allclose(distributed_total, total, rtol=1e-3)
    pids = count_file.read_text().split() if count_file.exists() else []
    unpickled = {pid: pids.count(pid) for pid in sorted(set(pids))}
    per_core = (n_rows / on_cluster / 2) / (n_rows / in_process)
    data = {
        "rows": n_rows,
        "blocks": len(starts),
        "in_process_1_thread_rows_per_s": n_rows / in_process,
        "cluster_rows_per_s": n_rows / on_cluster,
        "per_core_ratio": per_core,
        "graph_build_seconds": graph_seconds,
        "unpickled_per_worker_process": unpickled,
        "worker_env": {k: list(v) for k, v in worker_env.items()},
        "one_block_task_rows_per_s": task,
    }
    rows = [
        ["in process, 1 thread", fmt(n_rows / in_process), ""],
        ["LocalCluster 2 x 1", fmt(n_rows / on_cluster), f"{per_core:.2f}"],
    ]
    rows += [
        [
            f"one {block_rows:,}-row block's task, {name}",
            " / ".join(fmt(v) for v in values),
            "",
        ]
        for name, values in task.items()
    ]
    return rows, data


def _spin():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def section_threads(model, n_rows):
    X = make_data(n_rows)
    rows, data = [], {}
    real = vae_module.inference_threads
    for load in ("as it is", "other core busy"):
        spinner = _spin() if load == "other core busy" else None
        try:
            for method, n in (("transform", n_rows), ("score_samples", n_rows // 10)):
                for threads in ("auto", 1, 2):
                    patch = (
                        mock.patch.object(vae_module, "inference_threads", real)
                        if threads == "auto"
                        else mock.patch.object(
                            vae_module, "inference_threads", lambda f, d, t=threads: t
                        )
                    )
                    with patch:
                        getattr(model, method)(X[:1000])
                        best = min(
                            _seconds(getattr(model, method), X[:n]) for _ in range(3)
                        )
                    data[f"{load}/{method}/{threads}"] = n / best
                    rows.append([load, method, str(threads), fmt(n / best)])
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    return rows, data


def _seconds(function, *args):
    tic = time.perf_counter()
    function(*args)
    return time.perf_counter() - tic


def section_grid(n_rows):
    import distributed
    import joblib
    from sklearn.model_selection import GridSearchCV

    X = make_data(n_rows)
    grid = {"recon_weight": [1.0, "auto"], "random_state": [0, 1, 2]}
    base = VAETransformer(max_iter=5)
    results, seconds = {}, {}
    for name in ("serial", "loky n_jobs=2", "dask 2 workers"):
        tic = time.perf_counter()
        if name == "serial":
            search = GridSearchCV(base, grid, cv=2, n_jobs=1).fit(X)
        elif name.startswith("loky"):
            search = GridSearchCV(base, grid, cv=2, n_jobs=2).fit(X)
        else:
            cluster = local_cluster()
            with cluster, distributed.Client(cluster) as client:
                client.run(lambda: None)
                tic = time.perf_counter()
                with joblib.parallel_backend("dask"):
                    search = GridSearchCV(base, grid, cv=2, n_jobs=2).fit(X)
        seconds[name] = time.perf_counter() - tic
        results[name] = search
    reference = results["serial"]
    rows, data = [], {}
    for name, search in results.items():
        same = search.best_params_ == reference.best_params_ and np.array_equal(
            search.cv_results_["mean_test_score"],
            reference.cv_results_["mean_test_score"],
        )
        rows.append(
            [
                name,
                fmt(seconds[name]),
                f"{seconds['serial'] / seconds[name]:.2f}x",
                str(search.best_params_),
                "yes" if same else "NO",
            ]
        )
        data[name] = {
            "seconds": seconds[name],
            "best_params": {k: str(v) for k, v in search.best_params_.items()},
            "identical": bool(same),
        }
    return rows, data


def main():
    args = parse_args(
        __doc__,
        rows=(int, 10_000_000, "rows of the memmap"),
        in_memory_rows=(int, 2_000_000, "rows of the in-memory fit it is compared to"),
        probe=(str, None, "internal: a child probe"),
        sections=(str, "1,2,3,4,5", "which sections to run"),
    )
    if args.probe:
        kind, *rest = json.loads(args.probe)
        if kind == "fit":
            print(json.dumps(probe_fit(*rest)))
        elif kind == "task":
            model_path, path, n_rows = rest
            with open(model_path, "rb") as f:
                model = pickle.load(f)
            print(json.dumps({"rows_per_s": block_rows_per_s(model, path, n_rows)}))
        return
    fit_rows, dask_rows, thread_rows, grid_rows = 1_000_000, None, 500_000, 20_000
    if args.quick:
        args.rows, args.in_memory_rows = 400_000, 200_000
        fit_rows, thread_rows, grid_rows = 200_000, 100_000, 4_000
    dask_rows = args.rows
    sections = {int(s) for s in args.sections.split(",")}
    header = (
        f"{machine()}; load average {load_average():.1f} at the start. The machine "
        "was shared with other jobs: compare ratios within this run."
    )
    out = [f"# Scale\n\n{header}\n"]
    data = {"machine": machine(), "quick": args.quick}
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "x.npy")
        write_memmap(path, max(args.rows, fit_rows))
        memory_header = [
            "fit",
            "input (MiB)",
            "peak extra anonymous memory (MiB)",
            "ratio to input",
            "samples/s",
        ]
        if 1 in sections:
            rows, data["out_of_core"] = section_out_of_core(
                path, args.rows, args.in_memory_rows
            )
            out += [
                "## Out-of-core fit (np.memmap) vs in memory\n",
                _table(memory_header, rows),
                f"\nout-of-core samples/s / in-memory samples/s: "
                f"{data['out_of_core']['throughput_ratio']:.2f} (in-memory on a "
                f"{args.in_memory_rows:,}-row subset)\n",
            ]
        if 2 in sections:
            rows, data["in_memory"] = section_in_memory(path, fit_rows)
            out += ["## In-memory fit\n", _table(memory_header, rows), ""]
        model = VAETransformer(max_iter=2, random_state=0).fit(make_data(20_000))
        if 3 in sections:
            rows, data["dask"] = section_dask(path, dask_rows, 250_000, model)
            d = data["dask"]
            out += [
                f"## Dask transform of {dask_rows:,} rows\n",
                _table(["where", "rows/s", "per-core ratio"], rows),
                f"\nlazy graph build: {d['graph_build_seconds'] * 1e3:.1f} ms for "
                f"{d['blocks']} blocks; model unpickled per worker process: "
                f"{d['unpickled_per_worker_process']}; worker "
                f"(MALLOC_TRIM_THRESHOLD_, torch threads): {d['worker_env']}\n",
            ]
        if 4 in sections:
            rows, data["threads"] = section_threads(model, thread_rows)
            out += [
                "## Inference threads\n",
                _table(["machine", "method", "threads", "rows/s"], rows),
                "",
            ]
        if 5 in sections:
            rows, data["grid"] = section_grid(grid_rows)
            out += [
                f"## GridSearchCV, 12 fits of {grid_rows:,} x 48, 5 epochs\n",
                _table(
                    ["backend", "seconds", "speed-up", "best_params_", "identical"],
                    rows,
                ),
                "",
            ]
    write_results("scale", "\n".join(out), data)


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
