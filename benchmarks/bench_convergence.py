"""Time to a good model: wall time until the held-out ELBO is within 1% of its end.

Samples per second say nothing if the model learns less per epoch. Here
``VAETransformer`` (default settings, one ``partial_fit`` call per epoch) and
the hand-written reference loop (at torch's threads, and at one thread) train
for ``--epochs`` epochs on 100,000 x 48 rows, interleaved epoch by epoch so a
busy spell of the machine hits all of them, for each of ``--seeds`` seeds.
After every epoch the held-out ELBO (10,000 rows, the 16 fixed draws of
``score_samples``) is measured, outside the timed region.

Reported per contender: the final held-out ELBO (mean and spread over seeds:
the noise against which "no loss in what the model learns" is judged), the
epochs and the training seconds until the ELBO is within 1% of its own final
value, and the seconds until it is within 1% of the reference loop's final
value. ``partial_fit`` validates its input and computes ``kl_per_dimension_``
at every call, which counts against skvae here. Run::

    python benchmarks/bench_convergence.py            # about 1-2 min
    python benchmarks/bench_convergence.py --quick    # seconds

Tables: ``benchmarks/results/convergence.md`` (and ``.json``).
"""

import statistics
import warnings

import numpy as np
from _common import (
    fmt,
    heldout_elbo,
    load_average,
    machine,
    make_data,
    markdown_table,
    parse_args,
    reference_fit,
    timed,
    write_results,
)

from skvae import VAETransformer
from skvae._training import torch_threads

TOLERANCE = 0.01


class SkvaeRun:
    def __init__(self, X, seed):
        self.X = X
        self.model = VAETransformer(random_state=seed)

    def epoch(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.partial_fit(self.X)


class ReferenceRun:
    def __init__(self, X, seed, threads=None):
        self.X, self.seed, self.threads = X, seed, threads
        self.model = self.optimizer = None

    def epoch(self):
        with torch_threads(self.threads):
            self.model, self.optimizer = reference_fit(
                self.X, 1, seed=self.seed, model=self.model, optimizer=self.optimizer
            )


CONTENDERS = {
    "VAETransformer": SkvaeRun,
    "reference loop": ReferenceRun,
    "reference loop, 1 thread": lambda X, seed: ReferenceRun(X, seed, threads=1),
}


def train_interleaved(X, X_test, epochs, seed):
    """Per contender: cumulative training seconds and held-out ELBO per epoch."""
    runs = {name: make(X, seed) for name, make in CONTENDERS.items()}
    curves = {name: {"seconds": [], "elbo": []} for name in runs}
    for _ in range(epochs):
        for name, run in runs.items():
            seconds, _ = timed(run.epoch)
            curve = curves[name]
            previous = curve["seconds"][-1] if curve["seconds"] else 0.0
            curve["seconds"].append(previous + seconds)
            curve["elbo"].append(heldout_elbo(run.model, X_test))
    return curves


def first_within(curve, target):
    """(epochs, seconds) at the first epoch within TOLERANCE of ``target``."""
    for epoch, (seconds, value) in enumerate(
        zip(curve["seconds"], curve["elbo"], strict=True), start=1
    ):
        if abs(value - target) <= TOLERANCE * abs(target):
            return epoch, seconds
    return None, None


def main():
    args = parse_args(
        __doc__,
        n_samples=(int, 100_000, "training rows"),
        epochs=(int, 12, "epochs per contender"),
        seeds=(int, 3, "seeds"),
    )
    if args.quick:
        args.n_samples, args.epochs, args.seeds = 10_000, 4, 1
    X_all = make_data(args.n_samples + 10_000)
    X, X_test = X_all[: args.n_samples], X_all[args.n_samples :]
    train_interleaved(X[:2048], X_test[:512], 1, seed=0)  # warm-up
    load = load_average()
    runs = [
        train_interleaved(X, X_test, args.epochs, seed) for seed in range(args.seeds)
    ]

    rows = []
    summary = {}
    for name in CONTENDERS:
        finals = [run[name]["elbo"][-1] for run in runs]
        own = [first_within(run[name], run[name]["elbo"][-1]) for run in runs]
        common = [
            first_within(run[name], run["reference loop"]["elbo"][-1]) for run in runs
        ]
        total = [run[name]["seconds"][-1] for run in runs]
        summary[name] = {
            "final_elbo": finals,
            "epochs_to_own_1pct": [e for e, _ in own],
            "seconds_to_own_1pct": [s for _, s in own],
            "seconds_to_reference_1pct": [s for _, s in common],
            "total_seconds": total,
        }
        rows.append(
            [
                name,
                f"{statistics.mean(finals):.3f} ± {_spread(finals):.3f}",
                "/".join(str(e) for e, _ in own),
                fmt(_median_or_none([s for _, s in own])),
                fmt(_median_or_none([s for _, s in common])),
                fmt(statistics.median(total)),
            ]
        )
    reference_seconds = summary["reference loop"]["seconds_to_own_1pct"]
    for row, name in zip(rows, CONTENDERS, strict=True):
        mine = summary[name]["seconds_to_own_1pct"]
        ratios = [
            r / m for r, m in zip(reference_seconds, mine, strict=True) if r and m
        ]
        row.insert(4, fmt(statistics.median(ratios), 2) if ratios else "n/a")
    header = [
        "contender",
        f"held-out ELBO after {args.epochs} epochs (mean ± sd over seeds)",
        "epochs to within 1% of own final (per seed)",
        "seconds to within 1% of own final (median)",
        "speed-up vs reference loop",
        "seconds to within 1% of the reference's final",
        f"seconds for {args.epochs} epochs",
    ]
    markdown = (
        f"# Time to a good model\n\nMachine: {machine()}. {args.n_samples:,} x "
        f"{X.shape[1]} training rows, batch 128, {args.seeds} seed(s), epochs "
        f"interleaved across contenders (load average {load:.1f} before).\n\n"
        + markdown_table(header, rows)
    )
    data = {
        "machine": machine(),
        "n_samples": args.n_samples,
        "epochs": args.epochs,
        "load_average_before": load,
        "summary": summary,
        "curves": runs,
    }
    write_results("convergence", markdown, data)


def _spread(values):
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
