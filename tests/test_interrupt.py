"""Ctrl-C at any moment of a fit: a TrainingInterruptedWarning and a consistent model.

Each case runs in a fresh Python process, because what breaks is the first fit
of a process: torch imports sympy and torch.fx when the first optimiser is
built, and a KeyboardInterrupt in the middle used to escape raw and leave a
broken sympy behind for every later fit. The signal is real (SIGINT sent by
the process to itself), so the tests never interrupt pytest itself.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGINT") or os.name != "posix",
    reason="needs POSIX signals",
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELUDE = textwrap.dedent(
    """
    import json, os, signal, sys, threading, warnings
    import numpy as np
    import torch
    from skvae import TrainingInterruptedWarning, VAETransformer
    from skvae._losses import kl_divergence

    X = np.random.RandomState(0).normal(size=(300, 8))

    def never_converging(**params):
        # Stops only when interrupted (or after far longer than any delay).
        return VAETransformer(max_iter=100_000, tol=0.0, n_iter_no_change=100_000,
                              random_state=0, **params)

    def interrupt_after(delay):
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        return timer

    def report(vae, caught, **extra):
        with torch.no_grad():
            mean, logvar = vae.module_.encode(torch.as_tensor(X, dtype=torch.float32))
            kl = kl_divergence(mean, logvar).mean(dim=0).double().numpy()
        again = VAETransformer(max_iter=3, random_state=0).fit(X)
        print(json.dumps(dict(
            interrupted=sum(issubclass(w.category, TrainingInterruptedWarning)
                            for w in caught),
            n_iter=vae.n_iter_,
            curves=len(vae.loss_curve_),
            finite=bool(np.all(np.isfinite(vae.transform(X)))),
            kl_consistent=bool(np.allclose(vae.kl_per_dimension_, kl, rtol=1e-4,
                                           atol=1e-6)),
            second_fit=bool(np.all(np.isfinite(again.transform(X)))),
            **extra,
        )))
    """
)

TIMED = PRELUDE + textwrap.dedent(
    """
    delay = float(sys.argv[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        timer = interrupt_after(delay)
        vae = never_converging().fit(X)
    timer.join()
    report(vae, caught)
    """
)

# Ctrl-C delivered at chosen points outside the training loop: while the
# first optimiser is built (the lazy imports), and during the diagnostics
# after training (twice: the loop's Ctrl-C, then a second one).
STAGED = PRELUDE + textwrap.dedent(
    """
    import skvae._training as training
    import skvae._vae as vae_module

    stage = sys.argv[1]
    if stage == "setup":
        real = training.make_adam
        def make_adam(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return real(*args, **kwargs)
        vae_module.make_adam = make_adam
        vae = never_converging()
    else:
        real_epoch = training.run_single_epoch
        calls = []
        def run_single_epoch(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return real_epoch(*args, **kwargs)
        training.run_single_epoch = run_single_epoch
        real_attributes = VAETransformer._set_fitted_attributes
        def set_fitted_attributes(self, X):
            os.kill(os.getpid(), signal.SIGINT)
            return real_attributes(self, X)
        VAETransformer._set_fitted_attributes = set_fitted_attributes
        vae = never_converging()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae.fit(X)
    if stage != "setup":
        VAETransformer._set_fitted_attributes = real_attributes
    report(vae, caught)
    """
)


def _run(script, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "KeyboardInterrupt" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assert_consistent(result):
    assert result["interrupted"] == 1
    assert result["n_iter"] == result["curves"]
    assert result["finite"]
    assert result["kl_consistent"]
    assert result["second_fit"]


# From inside the lazy imports of the first fit (about the first 1.5 s on an
# idle machine) to well into training.
@pytest.mark.parametrize("delay", [0.02, 0.3, 1.0, 2.5])
def test_ctrl_c_at_any_moment_of_the_first_fit(delay):
    _assert_consistent(_run(TIMED, str(delay)))


def test_ctrl_c_while_the_first_optimiser_is_built():
    result = _run(STAGED, "setup")
    _assert_consistent(result)
    assert result["n_iter"] == 0


def test_second_ctrl_c_during_the_diagnostics():
    result = _run(STAGED, "diagnostics")
    _assert_consistent(result)
    assert result["n_iter"] == 2
