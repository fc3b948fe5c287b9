"""The ``skvae`` command line and the demo behind it, run in-process."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skvae import _demo
from skvae.__main__ import main
from skvae._training import torch_threads
from skvae.datasets import make_flows

pytest.importorskip("matplotlib")
TINY = ["--max-iter", "3", "--seeds", "1", "--quiet"]


def run(capsys, *argv):
    """``main(argv)``: exit status, stdout and stderr."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
def flows_csv(tmp_path):
    X, y = make_flows(n_samples=120, random_state=0, as_frame=True)
    frame = X.assign(label=y.map({0: "benign", 1: "slowloris"}))
    path = tmp_path / "flows.csv"
    frame.to_csv(path, index=False)
    return path, frame


# ------------------------------------------------------------- happy paths


def test_default_data_writes_table_verdict_and_figures(capsys, tmp_path):
    out = tmp_path / "figures"
    threads = torch.get_num_threads()
    status, stdout, stderr = run(capsys, "demo", *TINY, "--out", str(out))
    assert status == 0, stderr
    assert torch.get_num_threads() == threads  # the demo's 1 thread is undone
    assert stderr == ""  # --quiet: no progress bar
    assert sorted(p.name for p in out.iterdir()) == sorted(_demo.FIGURES.values())
    assert all(p.stat().st_size > 10_000 for p in out.iterdir())
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("recon_weight"))
    assert header.split()[:3] == ["recon_weight", "silhouette", "scorer"]
    assert any(line.startswith("1 ") for line in lines)
    assert any(line.startswith("auto (48) ") for line in lines)
    # the raw flows with likelihood='auto', one more row and one more sentence
    raw_row = next(line for line in lines if line.startswith("auto (48), raw table"))
    assert raw_row.split()[-5:] == ["n/a", "3", "(1", "hit", "max)"]
    verdict = lines.index(next(line for line in lines if line.startswith("Verdict")))
    sentence = lines[verdict + 1]
    assert sentence.startswith("Raw table, likelihood='auto' (")
    # The families 'auto' read from the raw flows' dtypes, with their counts.
    assert "2 categorical" in sentence and "6 negative_binomial" in sentence
    assert f"Figures written to {out.resolve()}" in stdout


def test_no_raw_skips_the_raw_table(capsys, tmp_path):
    status, stdout, stderr = run(
        capsys, "demo", *TINY, "--no-raw", "--recon-weights", "auto", "--out",
        str(tmp_path),
    )  # fmt: skip
    assert status == 0, stderr
    assert "raw table" not in stdout and "Raw table" not in stdout
    assert any(line.startswith("auto (48) ") for line in stdout.splitlines())


def test_progress_goes_to_stderr(capsys, tmp_path):
    status, stdout, stderr = run(
        capsys,
        "demo",
        "--data",
        "breast_cancer",
        "--recon-weights",
        "auto",
        "--max-iter",
        "2",
        "--seeds",
        "2",
        "--n-components",
        "2",
        "--out",
        str(tmp_path),
    )
    assert status == 0, stderr
    progress = [line for line in stderr.splitlines() if line.startswith("[")]
    # Two grid-search fits and one refit for the figures.
    assert len(progress) == 3
    assert progress[-1].startswith("[####################] 3/3 fits")
    assert "breast_cancer" in stdout
    assert "malignant" in stdout  # the class names, in the data summary
    assert "Done in" in stdout


def test_digits_and_a_custom_weight(capsys, tmp_path):
    status, stdout, stderr = run(
        capsys,
        "demo",
        "--data",
        "digits",
        "--recon-weights",
        "8",
        "--n-components",
        "2",
        *TINY,
        "--out",
        str(tmp_path),
    )
    assert status == 0, stderr
    table = [line for line in stdout.splitlines() if line.startswith("8 ")]
    assert len(table) == 1
    # Without both 1 and auto there is no claim to check, and it says so.
    assert "Include 1 and auto in --recon-weights" in stdout


def test_csv(capsys, tmp_path, flows_csv):
    path, _ = flows_csv
    status, stdout, stderr = run(
        capsys,
        "demo",
        "--csv",
        str(path),
        "--label",
        "label",
        "--n-components",
        "2",
        "--max-iter",
        "3",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "out"),
    )
    assert status == 0, stderr
    summary = "flows.csv (label 'label'): 120 rows, 48 features, 2 classes"
    assert f"Data: {summary} (benign 96, slowloris 24); min-max scaled" in stdout
    assert (tmp_path / "out" / "encoder_jacobian.png").is_file()


def test_ctrl_c_stops_the_whole_demo(capsys, tmp_path, monkeypatch):
    import skvae._training

    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(skvae._training, "run_single_epoch", interrupted)
    status, stdout, stderr = run(capsys, "demo", *TINY, "--out", str(tmp_path))
    assert status == 130
    assert stderr == "skvae demo: interrupted\n"
    assert len(calls) == 1  # not one Ctrl-C per fit
    assert "Verdict" not in stdout


# ------------------------------------------------------------- bad input


def _one_line_error(status, stdout, stderr):
    assert status == 2
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("skvae demo: error: ")
    return lines[0]


def test_missing_csv(capsys, tmp_path):
    missing = tmp_path / "nope.csv"
    out = tmp_path / "out"
    result = run(
        capsys, "demo", "--csv", str(missing), "--label", "y", "--out", str(out)
    )
    assert f"no such file: {str(missing)!r}" in _one_line_error(*result)
    assert not out.exists()  # nothing was created before the input was checked


def test_missing_label_column(capsys, tmp_path, flows_csv):
    path, _ = flows_csv
    result = run(capsys, "demo", "--csv", str(path), "--label", "class")
    message = _one_line_error(*result)
    assert "--label 'class' is not a column of flows.csv" in message
    assert "duration, protocol, src_port" in message


def test_non_numeric_columns(capsys, tmp_path, flows_csv):
    _, frame = flows_csv
    path = tmp_path / "mixed.csv"
    frame.assign(host="example.org", proto="tcp").to_csv(path, index=False)
    result = run(capsys, "demo", "--csv", str(path), "--label", "label")
    message = _one_line_error(*result)
    assert "mixed.csv has non-numeric columns: host, proto" in message


def test_missing_values(capsys, tmp_path, flows_csv):
    _, frame = flows_csv
    frame = frame.copy()
    frame.loc[3, "duration"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    result = run(capsys, "demo", "--csv", str(path), "--label", "label")
    assert "missing values in columns: duration" in _one_line_error(*result)


@pytest.mark.parametrize(
    "labels, message",
    [
        (["a"] * 6, "has 1 distinct value; the demo needs at least 2 classes"),
        (["a"] * 5 + ["b"], "class 'b' of 'y' has a single row"),
        ([str(i) for i in range(30)], "has 30 distinct values"),
    ],
)
def test_labels_that_are_not_classes(capsys, tmp_path, labels, message):
    path = tmp_path / "t.csv"
    rows = "\n".join(f"{i},{i % 3},{label}" for i, label in enumerate(labels))
    path.write_text("f1,f2,y\n" + rows + "\n")
    result = run(capsys, "demo", "--csv", str(path), "--label", "y")
    assert message in _one_line_error(*result)


def test_empty_csv(capsys, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    result = run(capsys, "demo", "--csv", str(path), "--label", "y")
    assert "could not read" in _one_line_error(*result)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--seeds", "0"], "argument --seeds: must be at least 1, got 0"),
        (["--max-iter", "ten"], "argument --max-iter: 'ten' is not an integer"),
        (["--n-components", "-1"], "argument --n-components: must be at least 1"),
        (
            ["--recon-weights", "1,x"],
            "argument --recon-weights: 'x' is neither a positive number nor 'auto'",
        ),
        (["--recon-weights", "0"], "'0' is neither a positive number nor 'auto'"),
        (["--data", "mnist"], "argument --data: invalid choice: 'mnist'"),
        (["--data", "digits", "--csv", "x.csv"], "not allowed with argument"),
        (["--csv", "x.csv"], "--csv needs --label COLUMN"),
        (["--label", "y"], "--label goes with --csv PATH"),
    ],
)
def test_bad_arguments(capsys, argv, message):
    result = run(capsys, "demo", *argv)
    assert message in _one_line_error(*result)


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if the demo starts fitting: bad input is refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the demo started fitting before refusing its input")

    monkeypatch.setattr(_demo, "run_experiment", refuse)


def _csv(tmp_path, n_per_class, n_features=3, n_classes=2):
    rng = np.random.RandomState(0)
    n = n_per_class * n_classes
    frame = {f"f{j}": rng.uniform(size=n) for j in range(n_features)}
    lines = [",".join([*frame, "y"])]
    for i in range(n):
        lines.append(
            ",".join([*(f"{frame[c][i]:.6f}" for c in frame), f"c{i % n_classes}"])
        )
    path = tmp_path / "small.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "n_per_class, n_classes, message",
    [
        (1, 2, "has a single row"),
        (3, 2, "class 'c0' has 3 rows; the demo needs at least 4 per class"),
        (
            4,
            5,
            "20 rows are too few for 5 classes: the 5 held-out rows must outnumber "
            "the classes for the silhouette; use at least 24 rows",
        ),
    ],
)
def test_too_few_rows_per_class(
    capsys, tmp_path, no_fit, n_per_class, n_classes, message
):
    path = _csv(tmp_path, n_per_class, n_classes=n_classes)
    result = run(
        capsys,
        "demo",
        "--csv",
        path,
        "--label",
        "y",
        "--n-components",
        "2",
        "--out",
        str(tmp_path / "out"),
    )
    assert message in _one_line_error(*result)


def test_n_components_refused_before_fitting(capsys, tmp_path, no_fit):
    result = run(capsys, "demo", "--n-components", "150", "--out", str(tmp_path))
    assert (
        "--n-components 150 is more than the 48 features of the data; use at most 10"
        in _one_line_error(*result)
    )
    result = run(capsys, "demo", "--n-components", "11", "--out", str(tmp_path))
    assert "draws one panel per latent dimension and takes at most 10" in (
        _one_line_error(*result)
    )


def test_huge_recon_weight_is_refused(capsys):
    result = run(capsys, "demo", "--recon-weights", "1,1e308")
    assert "argument --recon-weights: 1e308 is too large: above 1000000" in (
        _one_line_error(*result)
    )


def test_divergence_is_one_line(capsys, tmp_path, monkeypatch):
    def diverge(*args, **kwargs):
        raise ValueError(
            "Training diverged at epoch 1: the loss is not finite\n(nan). Lower it."
        )

    monkeypatch.setattr(_demo, "run_experiment", diverge)
    result = run(capsys, "demo", *TINY, "--out", str(tmp_path))
    assert "Training diverged at epoch 1: the loss is not finite (nan)" in (
        _one_line_error(*result)
    )


def test_header_without_rows(capsys, tmp_path, no_fit):
    path = tmp_path / "header.csv"
    path.write_text("a,b,y\n")
    result = run(capsys, "demo", "--csv", str(path), "--label", "y")
    assert "header.csv has a header (a, b, y) but no rows" in _one_line_error(*result)


def test_unwritable_or_too_long_out_fails_before_fitting(capsys, tmp_path, no_fit):
    long = tmp_path / ("x" * 300)
    result = run(capsys, "demo", "--out", str(long))
    error = _one_line_error(*result)
    assert "cannot create --out" in error and "File name too long" in error
    assert len(error) < 200  # the path is shortened
    if not Path("/proc/self").is_dir():
        return  # Linux only: a directory nobody may write into, even root
    result = run(capsys, "demo", "--out", "/proc/self")
    assert "cannot write figures into --out '/proc/self'" in _one_line_error(*result)


def test_out_is_a_file(capsys, tmp_path):
    target = tmp_path / "taken"
    target.write_text("")
    result = run(capsys, "demo", *TINY, "--out", str(target))
    assert "exists and is not a directory" in _one_line_error(*result)


# ------------------------------------------------------------- help


def test_help(capsys):
    status, stdout, _ = run(capsys, "--help")
    assert status == 0
    assert "demo" in stdout and "usage: skvae" in stdout
    status, stdout, _ = run(capsys, "demo", "--help")
    assert status == 0
    for option in ["--data", "--csv", "--label", "--recon-weights", "--seeds"]:
        assert option in stdout
    for option in ["--max-iter", "--n-components", "--out", "--quiet"]:
        assert option in stdout


def test_no_command_prints_help_and_fails(capsys):
    status, stdout, _ = run(capsys)
    assert status == 2
    assert "usage: skvae" in stdout


def test_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "skvae", "demo", "--seeds", "x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("skvae demo: error: argument --seeds")
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------- the logic


def test_parse_recon_weights():
    assert _demo.parse_recon_weights("1, 8,auto,1") == [1.0, 8.0, "auto"]
    with pytest.raises(_demo.DemoError, match="'inf' is neither"):
        _demo.parse_recon_weights("inf")


def _result(weight, silhouette, active_units, kl, reconstruction=12.0, collapsed=14.0):
    n = len(silhouette)
    return _demo.SettingResult(
        recon_weight=weight,
        n_features=48,
        seeds=list(range(n)),
        silhouette=np.array(silhouette),
        silhouette_active=np.array(silhouette),
        active_units=np.array(active_units),
        kl_per_dimension=np.tile(kl, (n, 1)),
        reconstruction=np.full(n, reconstruction),
        n_iter=np.resize([50, 60, 200], n),
        collapsed_reconstruction=collapsed,
    )


def test_verdict_when_the_effect_shows():
    plain = _result(1.0, [0.0, 0.05, -0.05], [0, 0, 0], [0.0, 0.0, 0.0])
    weighted = _result("auto", [0.6, 0.62, 0.58], [3, 2, 3], [0.9, 0.05, 0.02])
    text = _demo.verdict([plain, weighted])
    assert "recon_weight=1: posterior collapse in 3 of 3 seeds" in text
    assert (
        "recon_weight=auto (48): 2-3 of 3 active dimensions (3 in 2 of 3 seeds), "
        "total KL 0.97 nats, held-out reconstruction 2.00 nats per row better "
        "than the collapsed model's" in text
    )
    assert "informative in all 3 seeds" in text
    assert "Verdict: as in the original post" in text
    assert "silhouette 0.60 against 0.00" in text


def test_barely_active_codes_are_not_informative():
    # What --data breast_cancer gave: every dimension just above 0.01 nats, a
    # total KL of 0.08 nats, and a held-out reconstruction worse than the
    # collapsed model's (16.01 vs 15.88 nats). Not informative, whatever the
    # silhouette.
    plain = _result(1.0, [0.11] * 5, [0] * 5, [0.0] * 3, 15.88, 15.88)
    weighted = _result("auto", [0.46] * 5, [3] * 5, [0.033, 0.029, 0.022], 16.01, 15.88)
    assert not weighted.informative.any()
    assert _demo.informative_failures(weighted, 0) == [
        "total KL 0.08 < 0.1 nats",
        "reconstruction 0.13 nats worse than the collapsed model's",
    ]
    text = _demo.verdict([plain, weighted])
    assert "keeps the latent space informative" not in text
    assert "did not fully show" in text
    assert "informative in only 0 of 5 seeds" in text
    assert "3 of 3 active dimensions in all 5 seeds" in text
    assert "at least" not in text


def test_informative_needs_the_gain_to_exceed_the_kl():
    # Enough KL, but the reconstruction it buys (0.5 nats) is less than the
    # code costs (1 nat): the held-out ELBO is worse than the collapsed one.
    result = _result("auto", [0.5], [2], [0.6, 0.4], 13.5, 14.0)
    assert not result.informative[0]
    assert _demo.informative_failures(result, 0) == [
        "reconstruction gain 0.50 nats over the collapsed model, not more than "
        "its total KL 1.00 nats"
    ]
    assert _demo.informative(_result("auto", [0.5], [2], [0.6, 0.4], 12.9, 14.0))[0]


def test_collapsed_reconstruction_is_the_training_mean_on_the_test_rows():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(40, 3))
    y = np.repeat(["a", "b"], 20)
    train, test = next(_demo._split().split(X, y))
    p = X[train].mean(axis=0)
    expected = -np.mean(
        (X[test] * np.log(p) + (1 - X[test]) * np.log(1 - p)).sum(axis=1)
    )
    assert _demo.collapsed_reconstruction(X, y) == pytest.approx(expected, rel=1e-12)


def test_verdict_says_what_failed():
    plain = _result(1.0, [0.3, 0.35, 0.25], [0, 1, 0], [0.2, 0.0, 0.0])
    weighted = _result(
        "auto", [0.35, 0.4, 0.3], [1, 1, 1], [0.9, 0.0, 0.0], reconstruction=13.5
    )
    text = _demo.verdict([plain, weighted])
    assert "did not fully show" in text
    assert "recon_weight=1 kept active dimensions in some seeds" in text
    assert "recon_weight=auto (48) are informative in only 0 of 3 seeds" in text
    assert (
        "(48)'s silhouette is only +0.05 above recon_weight=1's (needs > 0.1)" in text
    )
    assert "collapsed in 2 of 3 seeds" in text


def test_verdict_needs_every_seed_apart():
    plain = _result(1.0, [0.0, 0.05, 0.3], [0, 0, 0], [0.0, 0.0, 0.0])
    weighted = _result("auto", [0.6, 0.62, 0.25], [3, 3, 3], [0.9, 0.05, 0.02])
    text = _demo.verdict([plain, weighted])
    assert (
        "overlaps recon_weight=1's across seeds (lowest 0.25 vs highest 0.30)" in text
    )
    assert "did not fully show" in text
    # A collapsed setting's silhouette is noise: a wide spread there is no
    # reason to doubt a separation that holds in every seed.
    plain = _result(1.0, [0.31, 0.05, 0.17, 0.28, -0.11], [0] * 5, [0.0] * 3)
    weighted = _result(
        "auto", [0.42, 0.41, 0.44, 0.42, 0.44], [3] * 5, [0.9] * 3, reconstruction=10
    )
    assert "Verdict: as in the original post" in _demo.verdict([plain, weighted])


def test_verdict_with_one_latent_dimension():
    plain = _result(1.0, [0.0, 0.01, 0.02], [0, 0, 0], [0.0])
    weighted = _result("auto", [0.5, 0.52, 0.55], [1, 1, 1], [0.8])
    text = _demo.verdict([plain, weighted])
    assert "1 of 1 active dimensions in all 3 seeds" in text
    assert "Verdict: as in the original post" in text


def test_format_table():
    plain = _result(1.0, [0.0, 0.1, -0.1], [0, 0, 0], [0.0, 0.0, 0.0])
    weighted = _result("auto", [0.6, 0.6, 0.6], [3, 2, 3], [0.9, 0.05, 0.02])
    lines = _demo.format_table([plain, weighted], max_iter=200).splitlines()
    assert lines[2].split() == [
        "1",
        "0.000",
        "\u00b1",
        "0.100",
        "0.000",
        "\u00b1",
        "0.100",
        "0.0",
        "(0-0)",
        "0.000",
        "0.000",
        "0.000",
        "12.00",
        "\u00b1",
        "0.00",
        "0",
        "of",
        "3",
        "103",
        "(1",
        "hit",
        "max)",
    ]
    assert lines[3].startswith("auto (48)")
    assert "2.7 (2-3)" in lines[3]
    assert "0.900  0.050  0.020" in lines[3]


def test_raw_row_of_the_table():
    weighted = _result("auto", [0.6, 0.6, 0.6], [3, 2, 3], [0.9, 0.05, 0.02])
    raw = _result("auto", [0.5, 0.3, 0.4], [3, 3, 3], [2.5, 2.0, 1.5], 97.0, None)
    raw.likelihoods = [("calibrated_gaussian", ["a", "b"]), ("categorical", ["c"])]
    assert raw.raw and not weighted.raw
    assert raw.name == "recon_weight=auto (48), raw table"
    lines = _demo.format_table([weighted, raw], max_iter=200).splitlines()
    assert lines[3].startswith("auto (48), raw table  0.400 \u00b1 0.100")
    assert "97.00 \u00b1 0.00  n/a" in lines[3]
    assert "'auto' chose 2 calibrated_gaussian, 1 categorical columns." in lines[-2]
    assert _demo.describe_raw(raw, [weighted]) == (
        "Raw table, likelihood='auto' (2 calibrated_gaussian, 1 categorical "
        "columns, no scaling): 3 of 3 active dimensions in all 3 seeds, total KL "
        "6.00 nats, silhouette 0.40 \u00b1 0.10, against 0.60 \u00b1 0.00 for "
        "the Bernoulli model on the min-max scaled flows at recon_weight=auto (48)."
    )


def test_raw_experiment_fits_the_raw_flows():
    data = _demo.load_dataset("flows")
    assert data.raw.shape == data.X.shape
    assert data.raw["fwd_tot_pkt"].dtype == np.int64
    with torch_threads(1):
        raw = _demo.run_raw_experiment(
            data, n_seeds=1, max_iter=2, n_components=2, progress=False
        )
    families = {c: f for f, columns in raw.likelihoods for c in columns}
    assert families["dst_port"] == "categorical"
    assert families["bwd_tot_pkt"] == "negative_binomial"
    assert raw.kl_per_dimension.shape == (1, 2)
    assert np.isfinite(raw.reconstruction).all() and raw.n_iter.tolist() == [2]
    assert raw.collapsed_reconstruction is None and raw.model is None
    digits = _demo.load_dataset("digits")
    assert _demo.run_raw_experiment(digits, progress=False) is None


def test_latent_space_pairs_are_the_same_in_every_row():
    class Model:
        def __init__(self, kl):
            self.kl_per_dimension_ = np.asarray(kl)
            self.n_components = len(kl)

    plain = _result(1.0, [0.0], [0], [0.0] * 3)
    weighted = _result("auto", [0.6], [3], [0.9, 0.05, 0.02])
    plain.model, weighted.model = Model([0.0, 0.0, 0.0]), Model([0.02, 0.9, 0.05])
    pairs, text = _demo.latent_pairs([plain, weighted], weighted)
    # Index order, whatever the KL of either model: the columns line up.
    assert pairs == [(0, 1), (0, 2), (1, 2)]
    assert text == "in index order"
    weighted.model = Model([0.02, 0.9, 0.05, 0.0, 0.4])
    plain.model = Model([0.0] * 5)
    pairs, text = _demo.latent_pairs([plain, weighted], weighted)
    assert pairs == [(1, 2), (1, 4), (2, 4)]
    assert text == "the 3 with the largest KL at recon_weight=auto (48)"
