"""Anomaly detection: VAEOutlierDetector against pyod's VAE and sklearn's detectors.

Novelty detection, as an analyst runs it: every detector is fitted on normal
rows only and scores held-out normal rows plus anomalies. Per data set, every
detector sees the same preprocessing (fitted on the training rows):

- ``flows``: :func:`skvae.datasets.make_flows` (2,000 flows, its default
  ``noise``), benign normal, Slowloris anomalous;
  :func:`skvae.datasets.anomaly_preprocessor` (signed ``log1p`` and
  standardisation).
- ``breast_cancer``: :func:`sklearn.datasets.load_breast_cancer`, benign
  normal, malignant anomalous; standardised (the log of these measurements
  cost the VAE 0.02 AUC).
- ``digits``: :func:`sklearn.datasets.load_digits`; in split ``k`` digit ``k``
  is normal and the other digits are anomalies; pixels divided by 16.

Each of the 5 splits puts a random 60% of the normal rows in training and the
other 40% in the test set, with anomalies drawn at random to make 20% of it.
ROC AUC and average precision (anomalies positive) are mean +- sd over the
splits; fit and score times are medians, in seconds, on a shared machine
(compare them within one run).

Contenders:

- ``VAEOutlierDetector()``: the defaults (seeded per split);
- ``VAEOutlierDetector, best of grid``: the best mean AUC on the test splits
  among ``n_components`` in {2, 4, 8} x ``likelihood`` in
  {'calibrated_gaussian', 'gaussian'} -- chosen on the test data, so an upper
  bound on what tuning gives;
- ``pyod VAE``: pyod's defaults (``capacity=0``: the KL term clamped at zero,
  30 epochs, its own standardisation on top) and the same with
  ``capacity=inf`` (the KL term on); the better mean AUC of the two counts as
  pyod, both are shown;
- ``IsolationForest``, ``LocalOutlierFactor(novelty=True)``, ``OneClassSVM``
  (scikit-learn defaults), and PCA reconstruction error (squared error of the
  reconstruction from the components explaining 90% of the variance).

A second table measures how much tighter the importance-weighted bound of
``score_samples`` is than the ELBO, on the held-out normal rows of each data
set. Run::

    python benchmarks/bench_anomaly.py           # about 10 minutes
    python benchmarks/bench_anomaly.py --quick   # smoke test
"""

import time
import warnings

import numpy as np
from _common import fmt, machine, markdown_table, parse_args, write_results
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.neighbors import LocalOutlierFactor
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import OneClassSVM

from skvae import VAEOutlierDetector, VAETransformer
from skvae.datasets import anomaly_preprocessor, make_flows

GRID = [
    {"n_components": n, "likelihood": likelihood}
    for n in (2, 4, 8)
    for likelihood in ("calibrated_gaussian", "gaussian")
]
TRAIN_FRACTION = 0.6
ANOMALY_SHARE = 0.2  # of the test set
KS = (1, 8, 64, 1024)


def flows(split, quick):
    X, y = make_flows(n_samples=600 if quick else 2000, random_state=0)
    return X[y == 0], X[y != 0], anomaly_preprocessor()


def breast_cancer(split, quick):
    X, y = load_breast_cancer(return_X_y=True)
    # target 1 is benign in scikit-learn's copy.
    return X[y == 1], X[y == 0], StandardScaler()


def digits(split, quick):
    X, y = load_digits(return_X_y=True)
    return X[y == split] / 16.0, X[y != split] / 16.0, FunctionTransformer()


DATASETS = {
    "flows": flows,
    "breast_cancer": breast_cancer,
    "digits": digits,
}


def make_split(normal, anomalies, seed):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(normal))
    n_train = int(round(TRAIN_FRACTION * len(normal)))
    train, test_normal = normal[order[:n_train]], normal[order[n_train:]]
    n_anomalies = int(round(ANOMALY_SHARE / (1 - ANOMALY_SHARE) * len(test_normal)))
    n_anomalies = min(max(n_anomalies, 1), len(anomalies))
    picked = anomalies[rng.choice(len(anomalies), n_anomalies, replace=False)]
    X_test = np.vstack([test_normal, picked])
    y_test = np.r_[np.zeros(len(test_normal)), np.ones(n_anomalies)]
    return train, X_test, y_test, len(test_normal)


class PCAError:
    """Squared error of the PCA reconstruction: higher is more anomalous."""

    def fit(self, X):
        self.pca_ = PCA(n_components=0.9, svd_solver="full").fit(X)
        return self

    def anomaly_score(self, X):
        reconstruction = self.pca_.inverse_transform(self.pca_.transform(X))
        return np.square(X - reconstruction).sum(axis=1)


def sklearn_score(detector):
    return lambda X: -detector.score_samples(X)


def contenders(seed, quick):
    """``name -> (make_detector, anomaly_score(detector) -> function of X)``."""
    max_iter = 20 if quick else 200
    out = {
        "VAEOutlierDetector()": (
            lambda: VAEOutlierDetector(
                random_state=seed, **({"max_iter": max_iter} if quick else {})
            ),
            sklearn_score,
        ),
    }
    for params in GRID:
        name = "grid " + ", ".join(f"{k}={v}" for k, v in params.items())
        out[name] = (
            lambda params=params: VAEOutlierDetector(
                random_state=seed, max_iter=max_iter, **params
            ),
            sklearn_score,
        )
    for capacity in (0.0, float("inf")):
        out[f"pyod VAE, capacity={capacity:g}"] = (
            lambda capacity=capacity: pyod_vae(capacity, seed, quick),
            lambda detector: detector.decision_function,
        )
    out["IsolationForest"] = (lambda: IsolationForest(random_state=seed), sklearn_score)
    out["LocalOutlierFactor"] = (
        lambda: LocalOutlierFactor(novelty=True),
        sklearn_score,
    )
    out["OneClassSVM"] = (OneClassSVM, sklearn_score)
    out["PCA reconstruction error"] = (PCAError, lambda d: d.anomaly_score)
    return out


def pyod_vae(capacity, seed, quick):
    from pyod.models.vae import VAE

    params = {"epoch_num": 2} if quick else {}
    return VAE(capacity=capacity, random_state=seed, verbose=0, device="cpu", **params)


def pyod_installed():
    try:
        import pyod  # noqa: F401
    except ImportError:
        return False
    return True


def tightness(detector, X):
    """Mean of (bound with K draws - ELBO) over rows, for each K in KS."""
    elbo = VAETransformer.score_samples(detector, X).astype(np.float64)
    saved = detector.n_importance_samples
    gaps = {}
    for k in KS:
        detector.set_params(n_importance_samples=k)
        gaps[k] = float(np.mean(detector.score_samples(X) - elbo))
    detector.set_params(n_importance_samples=saved)
    return gaps


def run(args):
    n_splits = 2 if args.quick else args.splits
    has_pyod = pyod_installed()
    results = {}
    gaps = {}
    for data_name, loader in DATASETS.items():
        results[data_name] = {}
        gaps[data_name] = []
        for split in range(n_splits):
            normal, anomalies, preprocessor = loader(split, args.quick)
            train, X_test, y_test, n_normal = make_split(normal, anomalies, split)
            preprocessor.fit(train)
            train, X_test = (
                preprocessor.transform(train),
                preprocessor.transform(X_test),
            )
            for name, (make, score_of) in contenders(split, args.quick).items():
                if name.startswith("pyod") and not has_pyod:
                    continue
                detector = make()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    tic = time.perf_counter()
                    detector.fit(train)
                    fit_seconds = time.perf_counter() - tic
                    tic = time.perf_counter()
                    score = np.asarray(score_of(detector)(X_test), dtype=np.float64)
                    score_seconds = time.perf_counter() - tic
                entry = results[data_name].setdefault(
                    name, {"auc": [], "ap": [], "fit_s": [], "score_s": []}
                )
                if not np.all(np.isfinite(score)):
                    print(f"  {data_name} {name}: non-finite scores", flush=True)
                    score = np.nan_to_num(score, nan=np.inf)
                entry["auc"].append(roc_auc_score(y_test, score))
                entry["ap"].append(average_precision_score(y_test, score))
                entry["fit_s"].append(fit_seconds)
                entry["score_s"].append(score_seconds)
                if name == "VAEOutlierDetector()":
                    gaps[data_name].append(tightness(detector, X_test[:n_normal]))
            print(
                f"{data_name} split {split}: "
                + ", ".join(
                    f"{n} {v['auc'][-1]:.3f}"
                    for n, v in results[data_name].items()
                    if not n.startswith("grid")
                ),
                flush=True,
            )
    return results, gaps


def mean_sd(values):
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}"


def summarise(results, gaps, args):
    rows = []
    summary = {}
    for data_name, by_name in results.items():
        grid = {n: v for n, v in by_name.items() if n.startswith("grid")}
        best_grid = max(grid, key=lambda n: np.mean(grid[n]["auc"]))
        pyod = {n: v for n, v in by_name.items() if n.startswith("pyod")}
        best_pyod = max(pyod, key=lambda n: np.mean(pyod[n]["auc"])) if pyod else None
        shown = {"VAEOutlierDetector()": by_name["VAEOutlierDetector()"]}
        shown[f"VAEOutlierDetector, best of grid ({best_grid[5:]})"] = grid[best_grid]
        for name, value in by_name.items():
            if not name.startswith(("grid", "VAEOutlier")):
                label = name + (" (counts as pyod)" if name == best_pyod else "")
                shown[label] = value
        best_auc = max(np.mean(v["auc"]) for v in shown.values())
        default_auc = np.mean(by_name["VAEOutlierDetector()"]["auc"])
        summary[data_name] = {
            "default_auc": default_auc,
            "best_auc": best_auc,
            "best_other": max(
                (np.mean(v["auc"]), n)
                for n, v in shown.items()
                if not n.startswith("VAEOutlier")
            ),
            "pyod_auc": np.mean(pyod[best_pyod]["auc"]) if pyod else None,
        }
        for name, value in shown.items():
            rows.append(
                [
                    data_name,
                    name,
                    mean_sd(value["auc"]),
                    mean_sd(value["ap"]),
                    fmt(float(np.median(value["fit_s"]))),
                    fmt(float(np.median(value["score_s"]))),
                ]
            )
    gap_rows = []
    for data_name, per_split in gaps.items():
        gap_rows.append(
            [data_name] + [fmt(float(np.mean([g[k] for g in per_split]))) for k in KS]
        )
    n_splits = len(next(iter(next(iter(results.values())).values()))["auc"])
    command = "python benchmarks/bench_anomaly.py" + (" --quick" if args.quick else "")
    goal_rows = [
        [
            data_name,
            f"{s['default_auc']:.3f}",
            f"{s['best_other'][0]:.3f} ({s['best_other'][1]})",
            f"{s['default_auc'] - s['best_auc']:+.3f}",
            "n/a"
            if s["pyod_auc"] is None
            else f"{s['default_auc'] - s['pyod_auc']:+.3f}",
        ]
        for data_name, s in summary.items()
    ]
    markdown = "\n".join(
        [
            "# Anomaly detection",
            "",
            f"`{command}` on {machine()}, {time.strftime('%Y-%m-%d')}; "
            f"{n_splits} splits; shared machine. Fitted on normal rows only; "
            "test sets of held-out normal rows and 20% anomalies. AUC and AP: "
            "mean +- sd over splits; times: median seconds per fit / per "
            "scoring of the test set.",
            "",
            markdown_table(
                [
                    "data",
                    "detector",
                    "ROC AUC",
                    "average precision",
                    "fit s",
                    "score s",
                ],
                rows,
            ),
            "",
            "## The goals: default detector vs the best and vs pyod (AUC)",
            "",
            markdown_table(
                [
                    "data",
                    "VAEOutlierDetector()",
                    "best other detector",
                    "default - best of all",
                    "default - pyod",
                ],
                goal_rows,
            ),
            "",
            "## Importance-weighted bound minus ELBO (nats per row)",
            "",
            "Mean over the held-out normal rows of `score_samples` with K draws "
            "minus the ELBO (`VAETransformer.score_samples`, 16 antithetic "
            "draws), for the default detector; the default is K = 64.",
            "",
            markdown_table(["data"] + [f"K = {k}" for k in KS], gap_rows),
        ]
    )
    data = {"results": results, "gaps": gaps, "summary": summary}
    return markdown, data


def main():
    args = parse_args(__doc__, splits=(int, 5, "number of splits"))
    tic = time.perf_counter()
    results, gaps = run(args)
    markdown, data = summarise(results, gaps, args)
    write_results("anomaly", markdown, data)
    print(f"done in {time.perf_counter() - tic:.0f} s", flush=True)


if __name__ == "__main__":
    main()
