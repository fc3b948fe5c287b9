"""How close ``make_flows`` comes to the original post's flows, feature by feature.

The original post (the blog post "Variational Autoencoders" by Ke He) trains on
603 benign and 150 Slowloris flows. Only a summary of them exists here:
``shared/seed/flows_statistics.csv`` gives, per class and feature, the minimum,
the 5, 25, 50, 75 and 95% quantiles, the maximum and the fractions of values
that are exactly 0 and that are negative. This script draws flows with
``make_flows`` and reports, for every class and feature, the Kolmogorov-Smirnov
distance (the largest gap between two CDFs, 0 to 1) between the generated
values and the real distribution that the summary describes, then the mean and
the largest distance per class.

The reference CDF of a feature (``skvae.datasets._flows._quantile_ks``):

- it passes through ``(min, 0)``, ``(p05, 0.05)``, ..., ``(p95, 0.95)``,
  ``(max, 1)`` and is linear in between;
- where several of those share a value, the CDF jumps there: a point mass at
  least as large as the quantiles imply (for example the kurtosis -3 of every
  constant sample), but no larger, since the summary says no more;
- the fractions of zeros and of negatives are known exactly, so the CDF is
  pinned at 0: ``F(0-) = frac_negative``, ``F(0) = frac_negative + frac_zero``;
  quantile knots that disagree (quantiles interpolated across the atom) are
  moved onto those bounds;
- a feature with one value (``min == max``, or ``protocol``, given as
  ``TCP=603``) is a point mass: its distance is the share of generated values
  elsewhere;
- the table writes 6 significant digits (a Slowloris excess kurtosis of
  exactly -1.775 is a point mass there), so generated values are rounded the
  same way before they are compared;
- whole-number features (ports, packet and byte counts, flag counts, minimum
  and maximum packet sizes) are compared at whole numbers only: between them
  the generated CDF is flat by nature while the interpolated reference is not.

The real quantiles come from 603 and 150 rows, so even a perfect generator
would show distances of a few hundredths (about 0.05 for benign, 0.1 for
Slowloris at the 95% level of a two-sample test with many generated rows).
Run::

    python benchmarks/bench_flows_fidelity.py              # table and summary
    python benchmarks/bench_flows_fidelity.py --json out.json
    python benchmarks/bench_flows_fidelity.py --n-samples 755 --random-state 3

It writes ``results/flows_fidelity.md`` and ``results/flows_fidelity.json``
(unless ``--quick``, which only prints, at the default size).
"""

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's skvae, not an installed one

from skvae.datasets import FLOW_FEATURE_NAMES, make_flows  # noqa: E402
from skvae.datasets._flows import _discrete_feature, _quantile_ks  # noqa: E402

RESULTS = HERE / "results"
QUANTILES = (("min", 0.0), ("p05", 0.05), ("p25", 0.25), ("median", 0.5),
             ("p75", 0.75), ("p95", 0.95), ("max", 1.0))  # fmt: skip
CLASSES = ("benign", "slowloris")
TABLE = Path("shared") / "seed" / "flows_statistics.csv"


def find_table():
    """``shared/seed/flows_statistics.csv`` in this checkout or a folder above."""
    import skvae

    # beside this checkout, or (for run_all.py --quick, which runs a scratch
    # copy of benchmarks/) beside the skvae that was imported
    package = Path(skvae.__file__).resolve().parent.parent
    for start in (HERE.parent, package):
        for folder in [start, *start.parents]:
            if (folder / TABLE).exists():
                return folder / TABLE
    return None


def read_table(path):
    """``{(class, feature): row}`` with numbers as floats (NaN where empty)."""
    rows = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed = dict(row)
            for key, value in row.items():
                if key in ("cls", "feature", "note"):
                    continue
                parsed[key] = float(value) if value not in ("", None) else np.nan
            rows[row["cls"], row["feature"]] = parsed
    return rows


def reference(row):
    """Knots and atom fractions of one row, as ``_quantile_ks`` takes them."""
    if np.isnan(row["min"]):
        # only a note such as "values: TCP=603": one value
        protocol = row["note"].split(":")[1].split("=")[0].strip()
        value = {"TCP": 6.0, "UDP": 17.0}[protocol]
        return [(value, 0.0), (value, 1.0)], None, None
    knots = [(row[key], p) for key, p in QUANTILES]
    if np.isnan(row["frac_zero"]):
        return knots, None, None
    return knots, row["frac_zero"], row["frac_negative"]


def round_like_the_table(X):
    """``X`` rounded to 6 significant digits, as the table writes its numbers."""
    magnitude = np.floor(np.log10(np.where(X == 0, 1.0, np.abs(X))))
    scale = 10.0 ** (5 - magnitude)
    return np.round(X * scale) / scale


def distances(table, n_samples, random_state, noise):
    X, y = make_flows(n_samples, noise=noise, random_state=random_state)
    X = round_like_the_table(X)
    out = {}
    for label, name in enumerate(CLASSES):
        rows = X[y == label]
        for j, feature in enumerate(FLOW_FEATURE_NAMES):
            knots, frac_zero, frac_negative = reference(table[name, feature])
            out[name, feature] = _quantile_ks(
                rows[:, j],
                knots,
                frac_zero=frac_zero,
                frac_negative=frac_negative,
                discrete=_discrete_feature(feature),
            )
    return out


def summarise(ks):
    summary = {}
    for name in CLASSES:
        values = {f: ks[name, f] for f in FLOW_FEATURE_NAMES}
        worst = sorted(values, key=values.get, reverse=True)[:5]
        summary[name] = {
            "mean": float(np.mean(list(values.values()))),
            "max": max(values.values()),
            "worst": [[f, values[f]] for f in worst],
            "n_above_0.5": sum(v > 0.5 for v in values.values()),
        }
    return summary


def markdown(ks, summary, command):
    lines = [
        "# make_flows against the original post's flows",
        "",
        f"`{command}`: Kolmogorov-Smirnov distance per feature between "
        "`make_flows` and the CDF defined by `shared/seed/flows_statistics.csv` "
        "(see the script's docstring for how point masses are handled).",
        "",
        "| feature | benign | slowloris |",
        "|---|---|---|",
    ]
    for feature in FLOW_FEATURE_NAMES:
        lines.append(
            f"| {feature} | {ks['benign', feature]:.3f} "
            f"| {ks['slowloris', feature]:.3f} |"
        )
    lines += ["", "| class | mean KS | max KS | features above 0.5 | worst 5 |",
              "|---|---|---|---|---|"]  # fmt: skip
    for name in CLASSES:
        s = summary[name]
        worst = ", ".join(f"{f} {v:.2f}" for f, v in s["worst"])
        lines.append(
            f"| {name} | {s['mean']:.3f} | {s['max']:.3f} | {s['n_above_0.5']} "
            f"| {worst} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-samples",
        type=int,
        default=7550,
        help="flows to draw (default 7550: ten times the post's)",
    )
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument(
        "--noise",
        type=float,
        default=0.1,
        help="make_flows' noise (default: its default, 0.1)",
    )
    parser.add_argument(
        "--table",
        type=Path,
        default=None,
        help="the statistics CSV (default: shared/seed/ above)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write the distances to this JSON file",
    )
    parser.add_argument(
        "--quick", action="store_true", help="the default 755 flows, print only"
    )
    args = parser.parse_args(argv)  # fmt: skip
    path = args.table or find_table()
    if path is None or not Path(path).exists():
        print(
            f"bench_flows_fidelity: no {TABLE} in {HERE.parent} or a folder above "
            "it; pass --table PATH.",
            file=sys.stderr,
        )
        return 2
    n_samples = 755 if args.quick else args.n_samples
    command = (
        f"python benchmarks/bench_flows_fidelity.py --n-samples {n_samples} "
        f"--random-state {args.random_state} --noise {args.noise}"
    )
    tic = time.perf_counter()
    ks = distances(read_table(path), n_samples, args.random_state, args.noise)
    summary = summarise(ks)
    text = markdown(ks, summary, command)
    print(text)
    print(f"({time.perf_counter() - tic:.1f} s)")
    payload = {
        "n_samples": n_samples,
        "random_state": args.random_state,
        "noise": args.noise,
        "ks": {f"{c}/{f}": v for (c, f), v in ks.items()},
        "summary": summary,
    }
    if args.json:
        args.json.write_text(json.dumps(payload, indent=1))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "flows_fidelity.md").write_text(text)
        (RESULTS / "flows_fidelity.json").write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
