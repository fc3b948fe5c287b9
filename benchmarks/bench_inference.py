"""Inference: transform and inverse_transform on 1,000,000 rows, speed and memory.

Speed, round-robin over ``--rounds`` rounds in this process, each round also
timing a 4096 x 4096 float32 ``torch.mm`` (the machine's matmul peak at torch's
thread count, measured next to what it is compared with):

- ``transform`` of 1,000,000 x 48 float32 rows and ``inverse_transform`` of
  1,000,000 x 2 codes, end to end (validation, chunking, copies);
- the encoder and the decoder alone (``skvae._inference.inference_view``, what
  ``transform`` and ``inverse_transform`` run) on one resident batch of
  ``skvae._data.chunk_rows(64)`` rows (16,384): the kernels' efficiency at
  large batch; and the encoder as ``module.encode`` (``nn.Sequential``) for comparison;
- ``transform`` as it ran before this work: ``module.encode`` on chunks of
  65,536 rows (after validation, timed from the chunking on).

GFLOP/s count the multiply-adds of the linear layers (2 per weight and row);
the fraction of peak divides by the ``torch.mm`` figure of the same round.

Memory, each figure from a fresh process (so that memory freed by one call
cannot hide the next one's): the peak resident set during one ``transform``
above the resident set before it, less the output array. "Working memory" runs
with a fixed glibc mmap threshold, so freed blocks leave the resident set and
the peak is the live memory of the call; the last column runs with glibc's
defaults, where freed chunks may stay resident for a while (what ``top``
shows). Measured for two numbers of rows and two chunk sizes, they show what
bounds the memory. Linux only (the peak is reset with
``/proc/self/clear_refs``).
Run::

    python benchmarks/bench_inference.py            # about 1 min
    python benchmarks/bench_inference.py --quick    # 200,000 rows

Tables: ``benchmarks/results/inference.md`` (and ``.json``).
"""

import json
import os
import subprocess
import sys
import warnings
from unittest import mock

import numpy as np
import torch
from _common import (
    fmt,
    load_average,
    machine,
    make_data,
    markdown_table,
    matmul_peak,
    median,
    parse_args,
    round_robin,
    write_results,
)

import skvae._vae as vae_module
from skvae import VAETransformer
from skvae._data import chunk_rows
from skvae._inference import inference_view

MIB = 2.0**20
OLD_CHUNK = 65_536
BEFORE = "transform as before (module.encode, chunks of 65,536)"
# glibc raises its mmap threshold as large blocks are freed, after which freed
# memory may stay in the heap and in the resident set; a fixed threshold gives
# every large block back on free, so the peak resident set is live memory.
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def fitted(n_features=48):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(max_iter=2, random_state=0).fit(
            make_data(5_000, n_features)
        )


def flops_per_row(sequential):
    return sum(
        2 * layer.weight.numel()
        for layer in sequential
        if isinstance(layer, torch.nn.Linear)
    )


def _rss_mib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def probe(n_samples, chunk):
    """In this (fresh) process: working memory of one transform, in MiB."""
    vae = fitted()
    X = np.random.default_rng(0).standard_normal((n_samples, 48), dtype=np.float32)
    vae.transform(X[:10])
    if chunk == chunk_rows(64):
        call = vae.transform
    else:  # transform with another chunk size

        def call(X):
            with mock.patch.object(vae_module, "chunk_rows", lambda _: chunk):
                return vae.transform(X)

    before = _rss_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset the peak resident set to the current one
    Z = call(X)
    peak = _rss_mib("VmHWM")
    print(
        json.dumps({"extra": peak - before - Z.nbytes / MIB, "output": Z.nbytes / MIB})
    )


def memory_rows(sizes, chunks):
    rows, data = [], []
    for n_samples in sizes:
        for chunk in chunks:
            result = {}
            for mode, env in (("fixed", FIXED_MMAP), ("default", {})):
                out = subprocess.run(
                    [sys.executable, __file__, "--probe", f"{n_samples},{chunk}"],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, **env},
                )
                probe_result = json.loads(out.stdout.strip().splitlines()[-1])
                result[mode] = probe_result["extra"]
                result["output"] = probe_result["output"]
            data.append({"n_samples": n_samples, "chunk": chunk, **result})
            rows.append(
                [
                    f"{n_samples:,}",
                    f"{chunk:,}",
                    fmt(n_samples * 48 * 4 / MIB),
                    fmt(result["output"]),
                    fmt(result["fixed"]),
                    fmt(result["default"]),
                ]
            )
    header = [
        "rows",
        "chunk (rows)",
        "input (MiB)",
        "output (MiB)",
        "working memory (MiB)",
        "peak RSS growth, glibc defaults (MiB)",
    ]
    return markdown_table(header, rows), data


def main():
    args = parse_args(
        __doc__,
        n_samples=(int, 1_000_000, "rows to transform"),
        rounds=(int, 3, "rounds of the round-robin"),
        probe=(str, None, "internal: 'n_samples,chunk' memory probe"),
    )
    if args.probe:
        probe(*(int(v) for v in args.probe.split(",")))
        return
    if args.quick:
        args.n_samples, args.rounds = 200_000, 2
    chunk = chunk_rows(64)
    vae = fitted()
    module = vae.module_
    view = inference_view(module)  # what transform & co. run
    X = np.random.default_rng(1).standard_normal((args.n_samples, 48), dtype=np.float32)
    Z = vae.transform(X)
    encoder_flops = flops_per_row(module.encoder)
    decoder_flops = flops_per_row(module.decoder)
    x_chunk = torch.from_numpy(X[:chunk].copy())
    z_chunk = torch.from_numpy(Z[:chunk].copy())

    def kernel(function, batch, repeats=20):
        def run():
            with torch.no_grad():
                for _ in range(repeats):
                    function(batch)

        return run

    def transform_as_before():
        # nn.Sequential modules and chunks of 65,536 rows, as before this work.
        with (
            mock.patch.object(
                vae_module, "inference_module", lambda vae, dtype, view: vae.module_
            ),
            mock.patch.object(vae_module, "chunk_rows", lambda _: OLD_CHUNK),
        ):
            return vae.transform(X)

    peaks = []
    contenders = {
        "peak": lambda: peaks.append(matmul_peak(repeats=2)),
        "transform": lambda: vae.transform(X),
        "inverse_transform": lambda: vae.inverse_transform(Z),
        "encoder alone": kernel(view.encode, x_chunk),
        "decoder alone": kernel(view.decode, z_chunk),
        "encoder alone, module.encode": kernel(module.encode, x_chunk),
        BEFORE: transform_as_before,
    }
    load = load_average()
    times, _ = round_robin(contenders, args.rounds)
    work = {
        "transform": (args.n_samples, encoder_flops),
        "inverse_transform": (args.n_samples, decoder_flops),
        "encoder alone": (20 * chunk, encoder_flops),
        "decoder alone": (20 * chunk, decoder_flops),
        "encoder alone, module.encode": (20 * chunk, encoder_flops),
        BEFORE: (args.n_samples, encoder_flops),
    }
    rows = []
    data = {"machine": machine(), "load_average_before": load, "chunk": chunk}
    for name, (n_rows, per_row) in work.items():
        gflops = [n_rows * per_row / t / 1e9 for t in times[name]]
        fractions = [g / p for g, p in zip(gflops, peaks, strict=True)]
        data[name] = {
            "rows": n_rows,
            "seconds": times[name],
            "gflops": gflops,
            "fraction": fractions,
        }
        rows.append(
            [
                name,
                f"{n_rows:,}",
                fmt(n_rows / median(times[name])),
                fmt(median(gflops)),
                f"{100 * median(fractions):.0f}%",
            ]
        )
    data["peak_gflops"] = peaks
    header = ["what", "rows", "rows/s", "GFLOP/s", "fraction of matmul peak"]
    speed = markdown_table(header, rows)
    sizes = (50_000, 200_000) if args.quick else (250_000, 1_000_000)
    memory, data["memory"] = memory_rows(sizes, (chunk, OLD_CHUNK))
    markdown = (
        f"# Inference\n\nMachine: {data['machine']}. Float32 matmul peak "
        f"(4096 x 4096 torch.mm, median of {args.rounds} rounds): "
        f"{median(peaks):.0f} GFLOP/s. Default chunk: {chunk:,} "
        f"rows; load average {load:.1f} before.\n\n{speed}\n\n"
        f"Working memory of `transform` (float32, 48 features):\n\n{memory}"
    )
    write_results("inference", markdown, data)


if __name__ == "__main__":
    main()
