"""Run every benchmark and write one summary table.

Each ``benchmarks/bench_*.py`` runs in its own process (the training,
convergence, inference and scaling benchmarks of this folder first, then any
other, such as ``bench_jacobian.py``), one after the other; a script that fails
is reported and the others still run. The summary, one table of the headline
figures of every benchmark (each script writes its detailed tables next to
it), goes to ``benchmarks/results/summary.md``, which the README's performance
section shows. Run::

    python benchmarks/run_all.py            # a few minutes (bench_anomaly: 5)
    python benchmarks/run_all.py --quick    # smoke test, about 2 minutes
    python benchmarks/run_all.py --only training inference

``--quick`` runs every script with ``--quick`` in a scratch copy of this folder,
so that its small-size numbers never replace the real ones in ``results/``;
the path of its summary is printed.

All timings come from a shared machine: compare the ratios measured within
one run (every benchmark interleaves its contenders), not absolute numbers
across runs.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OURS = ("training", "convergence", "inference", "scaling", "scale")


def scripts(folder, only=None, skip=()):
    found = {
        path.stem.removeprefix("bench_"): path for path in folder.glob("bench_*.py")
    }
    order = [name for name in OURS if name in found]
    order += sorted(name for name in found if name not in OURS)
    if only:
        order = [name for name in order if name in only]
    return [(name, found[name]) for name in order if name not in skip]


def run(name, path, quick):
    command = [sys.executable, str(path)] + (["--quick"] if quick else [])
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    tic = time.perf_counter()
    completed = subprocess.run(command, cwd=path.parent)
    seconds = time.perf_counter() - tic
    status = "ok" if completed.returncode == 0 else f"failed ({completed.returncode})"
    print(f"== {name}: {status} in {seconds:.0f} s\n", flush=True)
    return status, seconds


def _load(results, name):
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _num(value, digits=3):
    if value is None:
        return "n/a"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return (
        values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
    )


def headline_rows(results):
    """``[measure, skvae, baseline, ratio]`` rows from the JSON of each benchmark."""
    rows = []
    training = _load(results, "training")
    if training:
        n = training["n_samples"] * training["epochs"]
        for batch in (128, 1024):
            section = training.get(f"batch_{batch}")
            if not section:
                continue
            seconds = section["seconds"]
            shipped = next(
                name for name in seconds if "shipped" in name and "but" not in name
            )
            for baseline in (
                "reference loop",
                "reference loop, 1 thread",
                "DataLoader(TensorDataset) loop",
                "pyod VAE",
            ):
                if baseline not in seconds:
                    continue
                ratio = _median(
                    b / s
                    for b, s in zip(seconds[baseline], seconds[shipped], strict=True)
                )
                rows.append(
                    [
                        f"training samples/s, batch {batch}, vs {baseline}",
                        _num(n / _median(seconds[shipped])),
                        _num(n / _median(seconds[baseline])),
                        f"{ratio:.2f}x",
                    ]
                )
    convergence = _load(results, "convergence")
    if convergence:
        summary = convergence["summary"]
        mine, reference = summary["VAETransformer"], summary["reference loop"]
        rows.append(
            [
                f"held-out ELBO after {convergence['epochs']} epochs, batch 128 "
                "(mean over seeds; higher is better)",
                _num(sum(mine["final_elbo"]) / len(mine["final_elbo"]), 4),
                _num(sum(reference["final_elbo"]) / len(reference["final_elbo"]), 4),
                "difference "
                + _num(
                    sum(mine["final_elbo"]) / len(mine["final_elbo"])
                    - sum(reference["final_elbo"]) / len(reference["final_elbo"]),
                    2,
                ),
            ]
        )
        pairs = [
            (a, b)
            for a, b in zip(
                mine["seconds_to_own_1pct"],
                reference["seconds_to_own_1pct"],
                strict=True,
            )
            if a and b
        ]
        ratio = _median(b / a for a, b in pairs)
        rows.append(
            [
                "seconds until held-out ELBO within 1% of its final value "
                "(median over seeds; ratio: median of per-seed ratios)",
                _num(_median(a for a, _ in pairs)),
                _num(_median(b for _, b in pairs)),
                f"{ratio:.2f}x" if ratio else "n/a",
            ]
        )
    inference = _load(results, "inference")
    if inference:
        peak = f"float32 matmul peak {_num(_median(inference['peak_gflops']))} GFLOP/s"
        for name, what in (
            ("transform", "transform of 1,000,000 x 48, end to end"),
            ("inverse_transform", "inverse_transform of 1,000,000 x 2, end to end"),
            ("encoder alone", "encoder on one batch of a chunk's rows"),
            ("decoder alone", "decoder on one batch of a chunk's rows"),
        ):
            entry = inference.get(name)
            if not entry:
                continue
            rate = ""
            if "rows" in entry:
                rate = f"{_num(entry['rows'] / _median(entry['seconds']))} rows/s, "
            rows.append(
                [
                    what,
                    f"{rate}{_num(_median(entry['gflops']))} GFLOP/s",
                    peak,
                    f"{100 * _median(entry['fraction']):.0f}% of peak",
                ]
            )
        before = next(
            (k for k in inference if k.startswith("transform as before")), None
        )
        if before and "transform" in inference:
            ratio = _median(
                b / a
                for a, b in zip(
                    inference["transform"]["seconds"],
                    inference[before]["seconds"],
                    strict=True,
                )
            )
            rows.append(
                [
                    "transform of 1,000,000 x 48 vs the code before this work",
                    "",
                    before,
                    f"{ratio:.2f}x",
                ]
            )
        memory = inference.get("memory", [])
        default = [m for m in memory if m["chunk"] == inference["chunk"]]
        if len(default) >= 2:
            small, large = default[0], default[-1]
            rows.append(
                [
                    f"working memory of transform, {small['n_samples']:,} -> "
                    f"{large['n_samples']:,} rows (chunk {inference['chunk']:,})",
                    f"{_num(small['fixed'])} -> {_num(large['fixed'])} MiB",
                    f"input {_num(small['n_samples'] * 48 * 4 / 2**20)} -> "
                    f"{_num(large['n_samples'] * 48 * 4 / 2**20)} MiB",
                    "bounded by the chunk",
                ]
            )
    scaling = _load(results, "scaling")
    if scaling:
        rows.append(
            [
                "fit time per epoch vs n_samples, log-log slope",
                f"{scaling['n_samples']['slope']:.2f}",
                "1 = linear",
                "",
            ]
        )
    return rows


def jacobian_rows(results):
    """Rows of ``bench_jacobian.py``'s table (its Markdown: it writes no JSON)."""
    path = results / "jacobian.md"
    if not path.exists():
        return []
    table = []
    for line in path.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 4:
            continue
        try:
            table.append((cells[0], cells[1], float(cells[2]), float(cells[3])))
        except ValueError:
            continue  # the header or the separator
    # Each side's reference is the row whose time ratio is 1.
    references = {
        "decoder" if "decoder" in name else "encoder": (name, seconds)
        for name, _, seconds, relative in table
        if relative == 1.0
    }
    rows = []
    for name, samples, seconds, relative in table:
        side = "decoder" if "decoder" in name else "encoder"
        if relative == 1.0 or side not in references:
            continue
        reference, reference_seconds = references[side]
        rows.append(
            [
                f"Jacobian, {samples} rows: time of {name} / time of {reference}",
                f"{reference_seconds:.3g} s",
                f"{seconds:.3g} s",
                f"{relative:.3g}x",
            ]
        )
    return rows


def flows_rows(results):
    """The row of ``bench_flows_fidelity.py``: how close ``make_flows`` comes."""
    fidelity = _load(results, "flows_fidelity")
    if not fidelity:
        return []
    s = fidelity["summary"]
    return [
        [
            "make_flows vs the original post's flows: mean KS over the 48 "
            "features, benign / Slowloris (max)",
            f"{s['benign']['mean']:.3f} / {s['slowloris']['mean']:.3f} "
            f"({s['benign']['max']:.2f} / {s['slowloris']['max']:.2f})",
            "target 0.15 (0.5)",
            "",
        ]
    ]


def anomaly_rows(results):
    """One row per data set of ``bench_anomaly.py``: default detector vs the best."""
    anomaly = _load(results, "anomaly")
    if not anomaly:
        return []
    rows = []
    for data_name, entry in anomaly["summary"].items():
        best_auc, best_name = entry["best_other"]
        pyod = entry.get("pyod_auc")
        rows.append(
            [
                f"anomaly ROC AUC, {data_name}: VAEOutlierDetector() vs the best "
                "other detector" + ("" if pyod is None else f" (pyod VAE {pyod:.3f})"),
                f"{entry['default_auc']:.3f}",
                f"{best_auc:.3f} ({best_name})",
                f"difference {entry['default_auc'] - best_auc:+.3f}",
            ]
        )
    return rows


def scale_rows(results):
    """The rows of ``bench_scale.py``: memory and speed beyond one array in memory."""
    scale = _load(results, "scale")
    if not scale or scale.get("quick"):
        return []
    rows = []
    streamed = scale["out_of_core"]["streamed"]
    subset = scale["out_of_core"]["in_memory_subset"]
    streamed_subset = scale["out_of_core"]["streamed_subset"]
    rows.append(
        [
            f"out-of-core fit of a {streamed['rows']:,} x 48 memmap, 1 epoch: peak "
            "extra memory / file size",
            f"{streamed['extra_bytes'] / 2**20:,.0f} MiB",
            f"{streamed['input_bytes'] / 2**20:,.0f} MiB",
            f"{streamed['extra_bytes'] / streamed['input_bytes']:.3f}x",
        ]
    )
    rate = streamed_subset["rows"] / streamed_subset["seconds"]
    rate_memory = subset["rows"] * subset["epochs"] / subset["seconds"]
    rows.append(
        [
            f"samples/s streamed from a memmap vs in memory ({subset['rows']:,} rows)",
            f"{rate:,.0f}",
            f"{rate_memory:,.0f}",
            f"{rate / rate_memory:.2f}x",
        ]
    )
    for key, entry in scale["in_memory"].items():
        rows.append(
            [
                f"in-memory fit of {entry['rows']:,} x 48, {key}: peak extra memory "
                "/ input",
                f"{entry['extra_bytes'] / 2**20:,.0f} MiB",
                f"{entry['input_bytes'] / 2**20:,.0f} MiB",
                f"{entry['extra_bytes'] / entry['input_bytes']:.2f}x",
            ]
        )
    dask = scale["dask"]
    rows.append(
        [
            f"dask transform of {dask['rows']:,} rows, LocalCluster 2 x 1 thread: "
            "rows/s per core vs in process, 1 thread",
            f"{dask['cluster_rows_per_s'] / 2:,.0f}",
            f"{dask['in_process_1_thread_rows_per_s']:,.0f}",
            f"{dask['per_core_ratio']:.2f}x",
        ]
    )
    return rows


def run_line(statuses):
    if all(seconds is None for _, seconds in statuses.values()):
        return "Figures as each script last wrote them in `results/`."
    return (
        "Scripts: "
        + ", ".join(
            f"`{name}` {status} ({seconds:.0f} s)"
            for name, (status, seconds) in statuses.items()
        )
        + "."
    )


def summary(results, statuses, quick):
    sys.path.insert(0, str(HERE))
    from _common import machine, markdown_table

    command = "python benchmarks/run_all.py" + (" --quick" if quick else "")
    details = ", ".join(
        f"`results/{name}.md`" for name in statuses if (results / f"{name}.md").exists()
    )
    lines = [
        "# Performance summary",
        "",
        f"`{command}` on {machine()}, {time.strftime('%Y-%m-%d')}. The machine is"
        " shared: the ratios (measured side by side, interleaved, in one process)"
        " are what counts, not absolute numbers. Ratios above 1 favour skvae.",
        "",
        markdown_table(
            ["measure", "skvae", "baseline", "ratio"],
            headline_rows(results)
            + jacobian_rows(results)
            + scale_rows(results)
            + flows_rows(results)
            + anomaly_rows(results),
        ),
        "",
        run_line(statuses) + f" Detailed tables: {details}.",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, scratch copy"
    )
    parser.add_argument("--only", nargs="+", help="names such as training jacobian")
    parser.add_argument("--skip", nargs="+", default=(), help="names to leave out")
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="rebuild results/summary.md from the results there, run nothing",
    )
    args = parser.parse_args()
    if args.summary_only:
        statuses = {name: ("not rerun", None) for name, _ in scripts(HERE)}
        text = summary(HERE / "results", statuses, quick=False)
        (HERE / "results" / "summary.md").write_text(text)
        print(text)
        return 0

    folder = HERE
    if args.quick:
        folder = Path(tempfile.mkdtemp(prefix="skvae-bench-")) / "benchmarks"
        shutil.copytree(
            HERE, folder, ignore=shutil.ignore_patterns("results", "__pycache__")
        )
    results = folder / "results"
    results.mkdir(exist_ok=True)
    statuses = {}
    tic = time.perf_counter()
    for name, path in scripts(folder, args.only, args.skip):
        statuses[name] = run(name, path, args.quick)
    text = summary(results, statuses, args.quick)
    (results / "summary.md").write_text(text)
    print(text)
    print(f"Wrote {results / 'summary.md'} in {time.perf_counter() - tic:.0f} s.")
    return 0 if all(status == "ok" for status, _ in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
