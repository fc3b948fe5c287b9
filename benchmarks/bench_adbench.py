"""ADBench's classical data sets: contaminated training, unsupervised detectors.

ADBench's protocol for unsupervised detectors (Han et al., NeurIPS 2022;
``adbench/datasets/data_generator.py``; ``data/adbench/README.md`` beside this
script), on its 13 classical sets in ``data/adbench/``, one seed:

1. a set larger than 10,000 rows is subsampled to 10,000 rows; one smaller
   than 1,000 rows becomes 1,000 rows drawn with replacement (duplicates);
2. a stratified 70/30 train/test split;
3. ``MinMaxScaler`` fitted on the training part, applied to both;
4. each detector is fitted on the whole training part, anomalies included and
   without labels (the contaminated setting), and scores the test part.

Contenders, each with its defaults (seeded where it has a seed):

- ``VAEOutlierDetector``: ``VAEOutlierDetector(random_state=seed)``;
- ``make_anomaly_pipeline``: :func:`skvae.datasets.make_anomaly_pipeline`
  (signed ``log1p`` and standardisation before the detector);
- ``IsolationForest``: scikit-learn's;
- pyod's ``ECOD``, ``PCA``, ``KNN``, ``LOF`` and ``VAE`` (if pyod is
  installed; ``verbose=0``, ``device='cpu'`` for its VAE).

Every contender runs at one torch thread (see ``main``). Per set: ROC AUC
and average precision (anomalies positive), fit+score
seconds, and the rank of the AUC among the contenders (1 is best, ties share
the mean rank). Then the means, and the median over the sets of each
detector's fit+score time divided by IsolationForest's on the same set.

``--variants`` runs instead the candidate settings of the detector listed in
``VARIANTS`` (and IsolationForest, for the time ratio) and reports a
leave-one-set-out view of choosing among them: for each set, the variant with
the best mean AUC on the other 12 sets, and its AUC on the held-out set,
against the default kept for every set. That is how the defaults were chosen;
a rule that only helps one set does not survive it. Run::

    python benchmarks/bench_adbench.py             # all contenders, a few minutes
    python benchmarks/bench_adbench.py --quick     # smoke test: 3 small sets
    python benchmarks/bench_adbench.py --variants  # the choice of defaults
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import fmt, machine, markdown_table, write_results
from scipy.stats import rankdata
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from skvae import VAEOutlierDetector
from skvae.datasets import make_anomaly_pipeline

DATA = Path(__file__).parent / "data" / "adbench"
SETS = sorted(
    (path.stem for path in DATA.glob("*.npz")), key=lambda s: int(s.split("_")[0])
)
QUICK_SETS = ["18_Ionosphere", "21_Lymphography", "39_vertebral"]
LOWER, UPPER = 1_000, 10_000  # ADBench's n_samples_lower_bound / upper_bound
TEST_SIZE = 0.3
REFERENCE = "IsolationForest"
TIME_GOAL = 10.0  # median fit+score time / the reference's, at most

# Candidate settings of the detector compared by --variants: name -> params.
# "default" is VAEOutlierDetector's defaults: 'auto' epochs (about 1,600
# gradient steps), 'auto' batch size, 16 importance draws, and the least likely
# 10% of the training rows left out of the second half of the fit. A
# "detector" entry names a candidate that is a rule rather than a parameter
# (the classes below: measurements written against the detector's private
# hooks, not API); the others are parameters of VAEOutlierDetector, and
# "standardise" puts a StandardScaler in front.


class TukeyTrimmed(VAEOutlierDetector):
    """Candidate: the share left out of the second fit estimated, not fixed.

    With ``contamination='auto'``: the share of the first fit's training
    scores below Tukey's fence, the rule that sets ``offset_``.
    """

    def _trimmed_share(self, scores):
        if self.support_fraction is not None or self.contamination != "auto":
            return super()._trimmed_share(scores)
        q1, q3 = np.percentile(scores, [25.0, 75.0])
        return float(np.mean(scores < q1 - 1.5 * (q3 - q1)))


def staged(n_stages, later_lr=None, later_steps=None):
    """Candidate: a trimmed fit in ``n_stages`` stages, written with public calls.

    The first stage fits all rows for ``1 / n_stages`` of the default's
    epochs; each later one continues (``warm_start``) on the most likely 90%
    of the rows under the model so far, as MinCovDet repeats its C-steps. The
    last stage gets the epochs left, or those of ``later_steps`` gradient
    steps; later stages run at ``later_lr`` if given. ``staged(2)`` is the
    default's fit.
    """

    class Staged(VAEOutlierDetector):
        def fit(self, X, y=None):
            X = np.asarray(X)
            n_samples = len(X)
            # The epochs of max_iter='auto' and batch_size='auto'.
            epochs = self._max_iter(n_samples, self._batch_size(n_samples))
            first = max(1, epochs // n_stages)
            params = {**self.get_params(), "support_fraction": 1.0}
            stage = VAEOutlierDetector(**{**params, "max_iter": first}).fit(X)
            for index in range(1, n_stages):
                scores = stage.score_samples(X)
                keep = n_samples - int(round(0.1 * n_samples))
                rows = np.sort(np.argsort(-scores, kind="stable")[:keep])
                later = first
                if index == n_stages - 1:
                    later = max(1, epochs - first * (n_stages - 1))
                    if later_steps is not None:
                        steps_per_epoch = -(-keep // self._batch_size(keep))
                        later = -(-later_steps // steps_per_epoch)
                stage.set_params(warm_start=True, max_iter=later)
                if later_lr is not None:
                    stage.set_params(learning_rate_init=later_lr)
                stage.fit(X[rows])
            self._stage = stage
            return self

        def score_samples(self, X):
            return self._stage.score_samples(X)

    return Staged


class SeedEnsemble(VAEOutlierDetector):
    """Candidate: the mean score of three default detectors, seeds s, s+1, s+2.

    Whether averaging, as IsolationForest averages its trees, removes
    variance the single model has; it costs three fits.
    """

    def fit(self, X, y=None):
        params = self.get_params()
        self._members = [
            VAEOutlierDetector(
                **{**params, "random_state": params["random_state"] + k}
            ).fit(X)
            for k in range(3)
        ]
        return self

    def score_samples(self, X):
        return np.mean([m.score_samples(X) for m in self._members], axis=0)


class ReconstructionScored(VAEOutlierDetector):
    """Candidate: the score is the reconstruction term alone (no prior term)."""

    def score_samples(self, X):
        return -np.sum(self.feature_contributions(X), axis=1)


def step_budget(steps):
    """Candidate: max_iter='auto' with a budget of ``steps`` instead of 1,600."""

    class Budget(VAEOutlierDetector):
        def _max_iter(self, n_samples, batch_size):
            if self.max_iter != "auto":
                return self.max_iter
            return max(1, -(-steps // max(1, -(-n_samples // batch_size))))

    Budget.__name__ = f"Budget{steps}"
    return Budget


VARIANTS = {
    "default": {},
    "before: 200 epochs, batch 32, K=64, no trimming": {
        "max_iter": 200,
        "batch_size": 32,
        "n_importance_samples": 64,
        "support_fraction": 1.0,
    },
    "200 epochs, batch 32 (trimmed)": {"max_iter": 200, "batch_size": 32},
    "default, no trimming": {"support_fraction": 1.0},
    "default, 5% trimmed": {"support_fraction": 0.95},
    "default, 25% trimmed": {"support_fraction": 0.75},
    "trimmed share from Tukey's fence": {"detector": TukeyTrimmed},
    "trimmed twice (3 stages)": {"detector": staged(3)},
    "second half at learning rate 1e-2": {"detector": staged(2, later_lr=1e-2)},
    "800 steps, then 4,000 on the support": {"detector": staged(2, later_steps=4000)},
    "mean of 3 seeds": {"detector": SeedEnsemble},
    "default, K=64": {"n_importance_samples": 64},
    "default, hidden (32, 16)": {"hidden_layer_sizes": (32, 16)},
    "default, n_components=2": {"n_components": 2},
    "default, n_components=8": {"n_components": 8},
    "default, beta=0.5": {"beta": 0.5},
    "default, early stopping": {"early_stopping": True},
    "default, learning rate 3e-3": {"learning_rate_init": 3e-3},
    "default, learning rate 1e-2": {"learning_rate_init": 1e-2},
    "budget of 800 steps": {"detector": step_budget(800)},
    "budget of 3,200 steps": {"detector": step_budget(3200)},
    "likelihood='gaussian' (unit noise)": {"likelihood": "gaussian"},
    "StandardScaler first": {"standardise": True},
    "score: reconstruction term only": {"detector": ReconstructionScored},
}


def load(name):
    with np.load(DATA / f"{name}.npz", allow_pickle=False) as data:
        return data["X"].astype(np.float64), data["y"].astype(int)


def adbench_split(X, y, seed):
    """ADBench's resampling, stratified 70/30 split and min-max scaling."""
    rng = np.random.RandomState(seed)
    if len(y) < LOWER:
        rows = rng.choice(len(y), LOWER, replace=True)
        X, y = X[rows], y[rows]
    if len(y) > UPPER:
        rows = rng.choice(len(y), UPPER, replace=False)
        X, y = X[rows], y[rows]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, shuffle=True, stratify=y, random_state=seed
    )
    scaler = MinMaxScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def negated_score_samples(detector):
    return lambda X: -detector.score_samples(X)


def pyod_score(detector):
    return detector.decision_function


def contenders(seed, quick):
    """``name -> (make_detector, detector -> anomaly score function)``."""
    quick_params = {"max_iter": 10} if quick else {}
    out = {
        "VAEOutlierDetector": (
            lambda: VAEOutlierDetector(random_state=seed, **quick_params),
            negated_score_samples,
        ),
        "make_anomaly_pipeline": (
            lambda: make_anomaly_pipeline(random_state=seed, **quick_params),
            negated_score_samples,
        ),
        REFERENCE: (lambda: IsolationForest(random_state=seed), negated_score_samples),
    }
    try:
        from pyod.models.ecod import ECOD
        from pyod.models.knn import KNN
        from pyod.models.lof import LOF
        from pyod.models.pca import PCA
        from pyod.models.vae import VAE
    except ImportError:
        print("pyod is not installed: its detectors are left out", flush=True)
        return out
    vae_params = {"epoch_num": 2} if quick else {}
    out["pyod ECOD"] = (ECOD, pyod_score)
    out["pyod PCA"] = (lambda: PCA(random_state=seed), pyod_score)
    out["pyod KNN"] = (KNN, pyod_score)
    out["pyod LOF"] = (LOF, pyod_score)
    out["pyod VAE"] = (
        lambda: VAE(random_state=seed, verbose=0, device="cpu", **vae_params),
        pyod_score,
    )
    return out


def variant(params, seed):
    params = dict(params)
    standardise = params.pop("standardise", False)
    detector = params.pop("detector", VAEOutlierDetector)(random_state=seed, **params)
    return make_pipeline(StandardScaler(), detector) if standardise else detector


def variant_contenders(seed, quick):
    quick_params = {"max_iter": 10} if quick else {}
    out = {
        name: (
            lambda params=params: variant({**params, **quick_params}, seed),
            negated_score_samples,
        )
        for name, params in VARIANTS.items()
    }
    out[REFERENCE] = (lambda: IsolationForest(random_state=seed), negated_score_samples)
    return out


def evaluate(make, score_of, X_train, X_test, y_test):
    detector = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tic = time.perf_counter()
        detector.fit(X_train)
        score = np.asarray(score_of(detector)(X_test), dtype=np.float64)
        seconds = time.perf_counter() - tic
    if not np.all(np.isfinite(score)):
        print("  non-finite scores", flush=True)
        score = np.nan_to_num(score, nan=np.inf)
    return {
        "auc": float(roc_auc_score(y_test, score)),
        "ap": float(average_precision_score(y_test, score)),
        "seconds": seconds,
    }


def run(args, make_contenders):
    sets = QUICK_SETS if args.quick else SETS
    if args.sets:
        sets = [s for s in SETS if any(part in s for part in args.sets.split(","))]
    results = {}
    for name in sets:
        X, y = load(name)
        X_train, X_test, y_train, y_test = adbench_split(X, y, args.seed)
        results[name] = {
            "n_train": len(y_train),
            "n_features": X.shape[1],
            "train_anomaly_share": float(y_train.mean()),
            "detectors": {},
        }
        for detector, (make, score_of) in make_contenders(
            args.seed, args.quick
        ).items():
            results[name]["detectors"][detector] = evaluate(
                make, score_of, X_train, X_test, y_test
            )
        print(
            f"{name}: "
            + ", ".join(
                f"{d} {v['auc']:.3f} ({v['seconds']:.2f} s)"
                for d, v in results[name]["detectors"].items()
            ),
            flush=True,
        )
    return results


def add_ranks(results):
    for entry in results.values():
        names = list(entry["detectors"])
        ranks = rankdata([-entry["detectors"][n]["auc"] for n in names])
        for name, rank in zip(names, ranks, strict=True):
            entry["detectors"][name]["rank"] = float(rank)


def means(results):
    """``name -> {auc, ap, rank, median_seconds, median_ratio}`` over the sets."""
    names = list(next(iter(results.values()))["detectors"])
    out = {}
    for name in names:
        values = [entry["detectors"][name] for entry in results.values()]
        ratios = [
            entry["detectors"][name]["seconds"]
            / entry["detectors"][REFERENCE]["seconds"]
            for entry in results.values()
        ]
        out[name] = {
            "auc": float(np.mean([v["auc"] for v in values])),
            "ap": float(np.mean([v["ap"] for v in values])),
            "rank": float(np.mean([v["rank"] for v in values])),
            "median_seconds": float(np.median([v["seconds"] for v in values])),
            "median_ratio": float(np.median(ratios)),
        }
    return out


def leave_one_set_out(results, candidates):
    """For each set: the candidate best on the others, and its AUC on this one."""
    out = {}
    for held_out in results:
        others = [s for s in results if s != held_out]
        chosen = max(
            candidates,
            key=lambda c: np.mean([results[s]["detectors"][c]["auc"] for s in others]),
        )
        out[held_out] = {
            "chosen": chosen,
            "auc": results[held_out]["detectors"][chosen]["auc"],
        }
    return out


def header(args, what):
    command = "python benchmarks/bench_adbench.py" + (" --quick" if args.quick else "")
    if args.variants:
        command += " --variants"
    return (
        f"`{command}` on {machine()}, {time.strftime('%Y-%m-%d')}; seed "
        f"{args.seed}; shared machine. {what}"
    )


def per_set_rows(results, names):
    rows = []
    for set_name, entry in results.items():
        for name in names:
            v = entry["detectors"][name]
            rows.append(
                [
                    set_name,
                    name,
                    f"{v['auc']:.3f}",
                    f"{v['ap']:.3f}",
                    fmt(v["seconds"]),
                    f"{v['rank']:g}",
                ]
            )
    return rows


def summary_rows(summary):
    order = sorted(summary, key=lambda n: -summary[n]["auc"])
    return [
        [
            name,
            f"{summary[name]['auc']:.3f}",
            f"{summary[name]['ap']:.3f}",
            f"{summary[name]['rank']:.2f}",
            fmt(summary[name]["median_seconds"]),
            f"{summary[name]['median_ratio']:.3g}",
        ]
        for name in order
    ]


SUMMARY_HEADER = [
    "detector",
    "mean ROC AUC",
    "mean average precision",
    "mean rank",
    "median fit+score s",
    f"median time / {REFERENCE}'s",
]


def summarise(results, args):
    add_ranks(results)
    summary = means(results)
    names = list(summary)
    set_rows = [
        [
            name,
            entry["n_train"],
            entry["n_features"],
            f"{entry['train_anomaly_share']:.3f}",
        ]
        + [f"{entry['detectors'][n]['auc']:.3f}" for n in names]
        for name, entry in results.items()
    ]
    markdown = "\n".join(
        [
            "# ADBench classical sets: contaminated training",
            "",
            header(
                args,
                "ADBench's protocol: at most 10,000 and at least 1,000 rows "
                "(drawn with replacement), stratified 70/30 split, min-max "
                "scaling fitted on the training part; detectors fitted on the "
                "whole training part, anomalies included. Rank: of the AUC "
                "among the contenders on a set (1 is best). Time: fit plus "
                "scoring of the test part, one run each.",
            ),
            "",
            "## Means over the sets",
            "",
            markdown_table(SUMMARY_HEADER, summary_rows(summary)),
            "",
            "## ROC AUC per set",
            "",
            markdown_table(
                ["set", "train rows", "features", "train anomaly share"] + names,
                set_rows,
            ),
            "",
            "## Per set and detector",
            "",
            markdown_table(
                [
                    "set",
                    "detector",
                    "ROC AUC",
                    "average precision",
                    "fit+score s",
                    "rank",
                ],
                per_set_rows(results, names),
            ),
        ]
    )
    return markdown, {"results": results, "summary": summary}


def loso_section(results, candidates, title, note):
    loso = leave_one_set_out(results, candidates)
    rows = [
        [
            set_name,
            v["chosen"],
            f"{v['auc']:.3f}",
            f"{results[set_name]['detectors'][REFERENCE]['auc']:.3f}",
        ]
        for set_name, v in loso.items()
    ]
    loso_mean = float(np.mean([v["auc"] for v in loso.values()]))

    def mean_auc(name):
        return float(np.mean([e["detectors"][name]["auc"] for e in results.values()]))

    # Choosing is worth it only if it beats keeping the default for every set.
    lines = [
        f"## {title}",
        "",
        (note + " " if note else "")
        + "For each set, the candidate with the best mean AUC on the other "
        f"sets, and its AUC on the held-out set. Mean: {loso_mean:.3f} "
        f"(the default on every set: {mean_auc('default'):.3f}; {REFERENCE}: "
        f"{mean_auc(REFERENCE):.3f}).",
        "",
        markdown_table(
            ["held-out set", "chosen on the others", "its AUC", REFERENCE], rows
        ),
        "",
    ]
    return lines, loso


def summarise_variants(results, args):
    add_ranks(results)
    summary = means(results)
    candidates = [n for n in summary if n != REFERENCE]
    within_goal = [n for n in candidates if summary[n]["median_ratio"] <= TIME_GOAL]
    all_lines, loso_all = loso_section(
        results, candidates, "Leave one set out, all candidates", ""
    )
    goal_lines, loso_goal = loso_section(
        results,
        within_goal,
        f"Leave one set out, candidates within {TIME_GOAL:g}x {REFERENCE}'s time",
        f"Only the candidates whose median fit+score time is at most {TIME_GOAL:g}x "
        f"{REFERENCE}'s (the goal of issue 17).",
    )
    set_rows = [
        [name] + [f"{entry['detectors'][n]['auc']:.3f}" for n in summary]
        for name, entry in results.items()
    ]
    markdown = "\n".join(
        [
            "# ADBench classical sets: the choice of the detector's defaults",
            "",
            header(
                args,
                "The same protocol as `bench_adbench.py`; each row of the first "
                "table is one candidate setting (parameters in the script's "
                "VARIANTS).",
            ),
            "",
            markdown_table(SUMMARY_HEADER, summary_rows(summary)),
            "",
            *all_lines,
            *goal_lines,
            "## ROC AUC per set",
            "",
            markdown_table(["set"] + list(summary), set_rows),
        ]
    )
    data = {
        "results": results,
        "summary": summary,
        "leave_one_set_out": loso_all,
        "leave_one_set_out_within_time_goal": loso_goal,
    }
    return markdown, data


def main():
    # One torch thread for every contender. On this shared 2-core machine,
    # pyod's VAE at torch's default of 2 threads took 43 s for 2 epochs of
    # 2,000 x 6 rows against 2 s at 1 thread: its small steps wait at thread
    # barriers. skvae's training picks 1 thread for steps this small anyway.
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 3 sets")
    parser.add_argument(
        "--variants", action="store_true", help="compare the VARIANTS instead"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of everything")
    parser.add_argument(
        "--sets", default="", help="comma-separated parts of set names (default: all)"
    )
    args = parser.parse_args()
    tic = time.perf_counter()
    if args.variants:
        results = run(args, variant_contenders)
        markdown, data = summarise_variants(results, args)
        name = "adbench_variants"
    else:
        results = run(args, contenders)
        markdown, data = summarise(results, args)
        name = "adbench"
    if args.quick or args.sets:
        name += "_partial"
    write_results(name, markdown, data)
    print(f"done in {time.perf_counter() - tic:.0f} s", flush=True)


if __name__ == "__main__":
    main()
