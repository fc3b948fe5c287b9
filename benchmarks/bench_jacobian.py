"""Benchmark the Jacobians of skvae.analysis against the obvious loops.

Encoder side, for ``--n-samples`` x ``--n-features`` inputs:

- ``encoder_jacobian`` (one backward pass per latent dimension, in chunks);
- ``torch.func.vmap(torch.func.jacrev(...))`` over the same chunks, the other
  vectorised way;
- a per-output loop: one forward pass over all samples, then one backward pass
  per latent dimension, unchunked;
- a per-sample loop: ``torch.autograd.functional.jacobian`` on one row at a
  time, timed on a subset and extrapolated (the full loop takes minutes).

Decoder side: ``decoder_finite_differences`` (forward and central) against
``decoder_jacobian`` on the codes of the same samples.

Times are the best of ``--repeats``, taken round-robin over the methods in one
process, so that ratios compare like with like on a busy machine. Memory is
measured in a second process, one call per method: the peak resident set size
(sampled every millisecond) above its level before the call, minus the size of
the result, i.e. the working memory of the computation. That process runs with
a fixed glibc mmap threshold, so that freed blocks leave the resident set
instead of hiding the next call's allocations (it would slow the timings,
hence the separate process). Run::

    python benchmarks/bench_jacobian.py            # 100,000 x 48, about 1 min
    python benchmarks/bench_jacobian.py --quick    # 20,000 x 48, seconds

The table is printed and written to ``benchmarks/results/jacobian.md``.
"""

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skvae import VAETransformer
from skvae._vae import inference_module
from skvae.analysis import (
    decoder_finite_differences,
    decoder_jacobian,
    encoder_jacobian,
)

RESULTS = Path(__file__).parent / "results" / "jacobian.md"
MIB = 2.0**20
# Rows per chunk of both vectorised methods, passed to encoder_jacobian too
# (whose default, None, follows the package's rule skvae._data.chunk_rows).
CHUNK = 4096


# ------------------------------------------------------------ the baselines


def vmap_jacrev(vae, X, batch_size=CHUNK):
    module = inference_module(vae, X.dtype)
    X = torch.from_numpy(X)

    def mean(x):
        return module.encode(x)[0]

    jacobian = torch.func.vmap(torch.func.jacrev(mean))
    out = np.empty((X.shape[0], vae.n_components, X.shape[1]), dtype=X.numpy().dtype)
    with torch.no_grad():
        for start in range(0, X.shape[0], batch_size):
            out[start : start + batch_size] = jacobian(X[start : start + batch_size])
    return out


def per_output_loop(vae, X):
    module = inference_module(vae, X.dtype)
    x = torch.from_numpy(X.copy()).requires_grad_(True)
    mean = module.encode(x)[0]
    rows = []
    for k in range(vae.n_components):
        (gradient,) = torch.autograd.grad(
            mean[:, k].sum(), x, retain_graph=k < vae.n_components - 1
        )
        rows.append(gradient.numpy())
    return np.stack(rows, axis=1)


def per_sample_loop(vae, X):
    module = inference_module(vae, X.dtype)

    def mean(x):
        return module.encode(x)[0]

    out = np.empty((X.shape[0], vae.n_components, X.shape[1]), dtype=X.dtype)
    for i in range(X.shape[0]):
        out[i] = torch.autograd.functional.jacobian(mean, torch.from_numpy(X[i]))
    return out


# ------------------------------------------------------- what is measured


def setup(args):
    """The data, a VAE with the default architecture, and its codes."""
    torch.set_num_threads(args.threads)
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(args.n_samples, args.n_features)).astype(args.dtype)
    with warnings.catch_warnings():
        # The weights only need to exist: one epoch, collapsed or not.
        warnings.simplefilter("ignore")
        vae = VAETransformer(
            n_components=args.n_components,
            likelihood="bernoulli",
            max_iter=1,
            random_state=0,
        ).fit(X[:2_000])
    Z = vae.transform(X)
    encoder_jacobian(vae, X[:100])  # warm-up: first calls pay for set-up
    decoder_jacobian(vae, Z[:100])
    return vae, X, Z


def methods(vae, X, Z, per_sample_rows):
    """``name -> (label, samples, function)``; encoder rows first."""
    quarter = X[: X.shape[0] // 4]
    subset = X[:per_sample_rows]
    n = X.shape[0]
    return {
        "ours": (
            f"`encoder_jacobian` (chunks of {CHUNK})",
            n,
            lambda: encoder_jacobian(vae, X, batch_size=CHUNK),
        ),
        "quarter": (
            "`encoder_jacobian`, a quarter of the samples",
            quarter.shape[0],
            lambda: encoder_jacobian(vae, quarter, batch_size=CHUNK),
        ),
        "vmap": (
            f"`vmap(jacrev)` (chunks of {CHUNK})",
            n,
            lambda: vmap_jacrev(vae, X),
        ),
        "per_output": (
            "per-output loop of backward passes (unchunked)",
            n,
            lambda: per_output_loop(vae, X),
        ),
        "per_sample": (
            "per-sample `autograd.functional.jacobian` loop",
            subset.shape[0],
            lambda: per_sample_loop(vae, subset),
        ),
        "decoder_jacobian": (
            "`decoder_jacobian` (double-backward JVPs)",
            n,
            lambda: decoder_jacobian(vae, Z),
        ),
        "forward": (
            "`decoder_finite_differences`, forward",
            n,
            lambda: decoder_finite_differences(vae, Z, method="forward"),
        ),
        "central": (
            "`decoder_finite_differences`, central",
            n,
            lambda: decoder_finite_differences(vae, Z, method="central"),
        ),
    }


def rss_bytes():
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Highest RSS seen while the block runs, above the RSS when it started."""

    def __enter__(self):
        gc.collect()
        self.start = rss_bytes()
        self.peak = self.start
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
        self.delta = self.peak - self.start


def time_all(table, repeats):
    """Best time of each function, repeats round-robin; and the results."""
    best = dict.fromkeys(table, float("inf"))
    results = {}
    for repeat in range(repeats):
        for name, (_, _, function) in table.items():
            if name == "per_sample" and repeat >= 3:
                continue  # seconds per call: three are enough
            results.pop(name, None)
            gc.collect()
            start = time.perf_counter()
            results[name] = function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def memory_all(table):
    """Working memory of one call of each function, in bytes."""
    working = {}
    for name, (_, _, function) in table.items():
        with PeakRSS() as memory:
            result = function()
        working[name] = max(memory.delta - result.nbytes, 0)
        del result
    return working


def measure_memory_in_subprocess(argv):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    output = subprocess.run(
        [sys.executable, __file__, *argv, "--memory-only"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


# ------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=100_000)
    parser.add_argument("--n-features", type=int, default=48)
    parser.add_argument("--n-components", type=int, default=2)
    parser.add_argument("--per-sample-rows", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a small shared machine, more threads "
        "mostly measure contention with other processes)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="20,000 samples, 300 per-sample rows"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_samples, args.per_sample_rows = 20_000, 300
    args.per_sample_rows = min(args.per_sample_rows, args.n_samples)
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    vae, X, Z = setup(args)
    table = methods(vae, X, Z, args.per_sample_rows)
    if args.memory_only:
        print(json.dumps(memory_all(table)))
        return

    times, results = time_all(table, args.repeats)
    J = results["ours"]
    tolerance = 1e-5 if args.dtype == "float32" else 1e-12
    for name in ("vmap", "per_output"):
        np.testing.assert_allclose(results[name], J, rtol=tolerance, atol=tolerance)
    m = args.per_sample_rows
    np.testing.assert_allclose(
        results["per_sample"], J[:m], rtol=tolerance, atol=tolerance
    )
    # Not everywhere: with ReLU layers a difference quotient that straddles a
    # kink is a secant, not the derivative on either side.
    close = np.isclose(
        results["central"], results["decoder_jacobian"], rtol=1e-2, atol=1e-3
    )
    assert close.mean() > 0.95, close.mean()
    per_sample_measured = times["per_sample"]
    times["per_sample"] *= args.n_samples / m
    del results
    working = measure_memory_in_subprocess(argv)

    report = format_report(args, table, times, working, J.nbytes, per_sample_measured)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report + "\n")
    print(f"\nWritten to {args.output}")


def format_report(args, table, times, working, result_bytes, per_sample_measured):
    n = args.n_samples
    lines = [
        "# Jacobian benchmark",
        "",
        f"`python benchmarks/bench_jacobian.py{' --quick' if args.quick else ''}`: "
        f"{n:,} samples x {args.n_features} features, "
        f"n_components={args.n_components}, {args.dtype}, hidden_layer_sizes="
        f"(64, 32); torch {torch.__version__}, {platform.machine()}, "
        f"{args.threads} torch thread(s) on {os.cpu_count()} CPUs. Time: best of "
        f"{args.repeats}, round-robin in one process. Working memory: peak "
        "resident set above its level before one call, minus the result "
        f"({result_bytes / MIB:.1f} MiB for the encoder Jacobian), in a second "
        "process.",
        "",
        "| computation | samples | time (s) | time / reference | working memory "
        "(MiB) | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, (label, samples, _) in table.items():
        decoder = name in ("decoder_jacobian", "forward", "central")
        reference = times["decoder_jacobian" if decoder else "ours"]
        note = ""
        if name == "per_sample":
            note = (
                f"time extrapolated from {samples:,} rows ({per_sample_measured:.2f} s)"
            )
            samples = n
        lines.append(
            f"| {label} | {samples:,} | {times[name]:.3f} | "
            f"{times[name] / reference:.2f} | {working[name] / MIB:.1f} | {note} |"
        )
    speedup = times["per_sample"] / times["ours"]
    lines += [
        "",
        "time / reference: against `encoder_jacobian` on all samples for the "
        "encoder rows, against `decoder_jacobian` for the decoder rows.",
        "",
        f"`encoder_jacobian` is {speedup:.0f}x faster than the per-sample loop "
        f"(target: at least 100x) and {times['per_output'] / times['ours']:.2f}x "
        "the speed of the per-output loop (target: at least 1).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
