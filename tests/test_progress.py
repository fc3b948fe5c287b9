"""skvae._progress: the one progress display of verbose fits and the demo."""

import io
import re
import warnings

import numpy as np
import pytest

from skvae import VAETransformer
from skvae._progress import Progress, _duration, epoch_note, fit_summary, stop_reason


def _fit(capsys, **params):
    X = np.random.RandomState(0).uniform(size=(120, 6))
    params = {"n_components": 3, "random_state": 0, "verbose": 1, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae = VAETransformer(**params).fit(X)
    return vae, capsys.readouterr().out.splitlines()


EPOCH_LINE = re.compile(
    r"Epoch +(\d+)/(\d+)  loss +-?\d+\.\d{4}  reconstruction +-?\d+\.\d{4}  "
    r"KL +-?\d+\.\d{4}(  val ELBO +-?\d+\.\d{4})?  +\d+\.\d{3} s/epoch  "
    r" *[\d.]+ (s|min \d\d s|h \d\d min) left at most$"
)


def test_verbose_fit_prints_aligned_epoch_lines_and_a_summary(capsys):
    vae, lines = _fit(capsys, max_iter=12)
    epochs, summary = lines[:-1], lines[-1]
    assert len(epochs) == vae.n_iter_ == 12
    for k, line in enumerate(epochs, start=1):
        match = EPOCH_LINE.match(line)
        assert match, line
        assert (int(match[1]), int(match[2])) == (k, 12)
    # Aligned: every column starts at the same place on every line.
    for word in ("loss", "reconstruction", "KL", "s/epoch"):
        assert len({line.index(word) for line in epochs}) == 1, word
    # Same precision everywhere: the logged numbers are the curves'.
    loss = [float(line.split("loss")[1].split()[0]) for line in epochs]
    np.testing.assert_allclose(loss, vae.loss_curve_, atol=5e-5)
    assert summary == (
        "Trained 12 epochs: stopped because reached max_iter=12 without "
        f"converging; {vae.active_units_} of 3 latent dimensions active (mean KL "
        "> 0.01 nats)."
    )


def test_verbose_early_stopping_says_why_it_stopped(capsys):
    vae, lines = _fit(
        capsys, max_iter=300, early_stopping=True, n_iter_no_change=2, tol=1.0
    )
    assert vae.n_iter_ < 300
    assert all("val ELBO" in line for line in lines[:-1])
    assert lines[-2].startswith(f"Epoch {vae.n_iter_:>3}/300")
    assert (
        "the validation ELBO did not improve by more than tol=1 for 2 epochs"
        in (lines[-1])
    )


def test_quiet_fit_prints_nothing(capsys):
    _, lines = _fit(capsys, max_iter=3, verbose=0)
    assert lines == []


def test_plain_lines_count_from_a_warm_start():
    stream = io.StringIO()
    progress = Progress(4, unit="epoch", stream=stream, start=10)
    for _ in range(2):
        progress.update(epoch_note(1.5, 1.25, 0.25))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["Epoch 11/14", "Epoch 12/14"]
    assert "loss     1.5000  reconstruction     1.2500  KL   0.2500" in lines[0]


def test_plain_bar_for_the_demo_and_disabled_display():
    stream = io.StringIO()
    progress = Progress(4, unit="fit", stream=stream, bar=True)
    progress.update("first")
    progress.update()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[#####---------------] 1/4 fits, ")
    assert lines[0].endswith(" left)  first")
    assert lines[1].startswith("[##########----------] 2/4 fits, ")
    silent = io.StringIO()
    Progress(4, stream=silent, enabled=False).update("x")
    assert silent.getvalue() == ""


def test_tqdm_on_a_terminal():
    pytest.importorskip("tqdm")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = Progress(3, unit="epoch", stream=stream)
    assert progress._tqdm is not None
    progress.update(epoch_note(1.0, 1.0, 0.0))
    progress.close()
    text = stream.getvalue()
    assert "1/3" in text and "reconstruction" in text and "\r" in text
    # Not a terminal: plain lines, no carriage return.
    plain = io.StringIO()
    Progress(3, stream=plain).update("x")
    assert "\r" not in plain.getvalue()


def test_words():
    assert _duration(4.25) == "4.2 s"
    assert _duration(75) == "1 min 15 s"
    assert _duration(4000) == "1 h 06 min"
    assert stop_reason(
        "interrupted", max_iter=5, tol=1e-4, n_iter_no_change=10, early_stopping=False
    ) == ("interrupted by the user (Ctrl-C)")
    assert fit_summary(1, "x", 1, 1) == (
        "Trained 1 epoch: stopped because x; 1 of 1 latent dimension active "
        "(mean KL > 0.01 nats)."
    )
