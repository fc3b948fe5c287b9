"""How VAETransformer.fit's time grows with n_samples and with n_features.

- ``n_samples`` from 1,000 to 1,000,000 rows of 48 features, with fewer epochs
  at the top (the time per epoch is what is compared): fit time divided by
  the epochs run, and per sample and epoch. The slope of log(time per epoch)
  against log(n_samples) over the largest sizes is 1 for linear growth; the
  smallest sizes are dominated by the fixed cost of a fit (validation, model
  set-up, the final pass for ``kl_per_dimension_``).
- ``n_features`` from 10 to 1,000 at 20,000 rows, with the hand-written
  reference loop (torch's threads) at the same sizes for the ratio.

Each point is the median of ``--rounds`` fits, interleaved over sizes. Run::

    python benchmarks/bench_scaling.py            # about 1 min
    python benchmarks/bench_scaling.py --quick    # up to 100,000 rows

Tables: ``benchmarks/results/scaling.md`` (and ``.json``).
"""

import warnings

import numpy as np
from _common import (
    fmt,
    load_average,
    machine,
    make_data,
    markdown_table,
    median,
    parse_args,
    ratio_median,
    reference_fit,
    round_robin,
    write_results,
)

from skvae import VAETransformer


def fit(X, epochs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(max_iter=epochs, tol=0.0, random_state=0).fit(X)


def main():
    args = parse_args(__doc__, rounds=(int, 2, "fits per point"))
    if args.quick:
        sizes = {1_000: 10, 10_000: 3, 100_000: 1}
        widths, width_rows, width_epochs = (10, 100, 1000), 5_000, 1
    else:
        sizes = {1_000: 20, 10_000: 5, 100_000: 2, 1_000_000: 1}
        widths, width_rows, width_epochs = (10, 30, 100, 300, 1000), 20_000, 2
    data = {"machine": machine(), "load_average_before": load_average()}
    fit(make_data(1_000), 1)  # warm-up: the first optimiser imports torch._dynamo

    X_big = make_data(max(sizes))
    contenders = {n: (lambda n=n, e=e: fit(X_big[:n], e)) for n, e in sizes.items()}
    times, _ = round_robin(contenders, args.rounds)
    per_epoch = {n: median(times[n]) / sizes[n] for n in sizes}
    top = sorted(sizes)[-3:]
    slope = np.polyfit(np.log([*top]), np.log([per_epoch[n] for n in top]), 1)[0]
    rows = [
        [
            f"{n:,}",
            sizes[n],
            fmt(per_epoch[n]),
            fmt(1e6 * per_epoch[n] / n),
            fmt(n / per_epoch[n]),
        ]
        for n in sizes
    ]
    rows_table = markdown_table(
        [
            "n_samples",
            "epochs",
            "seconds per epoch",
            "us per sample-epoch",
            "samples/s",
        ],
        rows,
    )
    data["n_samples"] = {
        "epochs": sizes,
        "seconds": {str(n): t for n, t in times.items()},
        "slope": slope,
    }

    width_data = {d: make_data(width_rows, d) for d in widths}
    contenders = {}
    for d in widths:
        contenders[("skvae", d)] = lambda d=d: fit(width_data[d], width_epochs)
        contenders[("reference", d)] = lambda d=d: reference_fit(
            width_data[d], width_epochs
        )
    times, _ = round_robin(contenders, args.rounds)
    rows = []
    for d in widths:
        seconds = median(times[("skvae", d)]) / width_epochs
        rows.append(
            [
                d,
                fmt(seconds),
                fmt(1e6 * seconds / width_rows),
                fmt(median(times[("reference", d)]) / width_epochs),
                fmt(ratio_median(times[("reference", d)], times[("skvae", d)]), 2),
            ]
        )
    width_table = markdown_table(
        [
            "n_features",
            "seconds per epoch",
            "us per sample-epoch",
            "reference loop, seconds per epoch",
            "speed vs reference loop",
        ],
        rows,
    )
    data["n_features"] = {
        "rows": width_rows,
        "epochs": width_epochs,
        "seconds": {f"{who}_{d}": t for (who, d), t in times.items()},
    }
    markdown = (
        f"# Scaling of fit\n\nMachine: {data['machine']}. Default settings "
        f"(batch 128, hidden (64, 32), 2 components); medians of {args.rounds} "
        f"fits; load average {data['load_average_before']:.1f} before.\n\n"
        f"By n_samples (48 features). Slope of log(seconds per epoch) against "
        f"log(n_samples) over {', '.join(f'{n:,}' for n in top)} rows: "
        f"**{slope:.2f}** (1 is linear).\n\n{rows_table}\n\n"
        f"By n_features ({width_rows:,} rows, {width_epochs} epoch(s) per "
        f"fit):\n\n{width_table}"
    )
    write_results("scaling", markdown, data)


if __name__ == "__main__":
    main()
