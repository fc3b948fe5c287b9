"""Ctrl-C during ``fit``: only the training loop is interruptible.

A ``KeyboardInterrupt`` can land between any two bytecodes. Inside the
training loop that is what the loop expects (it stops and keeps the weights of
the last completed step); anywhere else in ``fit`` it would leave a
half-built estimator, or, during the first fit of a process, a half-imported
module: torch imports ``torch._dynamo`` (and with it sympy and ``torch.fx``)
when the first optimiser is built, and a Ctrl-C in the middle leaves
``sys.modules`` with a broken sympy that fails every later fit. So outside the
loop Ctrl-C is deferred: noted, and honoured once the estimator is consistent
again. Knows nothing of scikit-learn.
"""

import signal
import threading
from contextlib import contextmanager

import torch

_PRIMED = False


class DeferredInterrupts:
    """SIGINT handling of one ``fit``; see :func:`deferred_interrupts`.

    Attributes
    ----------
    pending : bool
        Whether Ctrl-C was pressed while deferred.
    """

    def __init__(self, active):
        self.pending = False
        self._active = active

    def _note(self, signum, frame):
        self.pending = True

    def allow(self):
        """From now on Ctrl-C raises ``KeyboardInterrupt`` as usual."""
        if self._active:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def defer(self):
        """From now on Ctrl-C is noted in ``pending`` (the default in the block)."""
        if self._active:
            signal.signal(signal.SIGINT, self._note)


@contextmanager
def deferred_interrupts():
    """Defer Ctrl-C in the block, except between ``allow()`` and ``defer()``.

    Yields a :class:`DeferredInterrupts`. Signals reach the main thread only,
    so elsewhere (a fit in a worker thread), and where the program installed a
    SIGINT handler of its own, this changes nothing.
    """
    active = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    interrupts = DeferredInterrupts(active)
    if not active:
        yield interrupts
        return
    signal.signal(signal.SIGINT, interrupts._note)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def prime_lazy_imports():
    """Import now what torch would import lazily in the first training step.

    Builds an optimiser as training does and takes one step, forward and
    backward included, on a throwaway parameter: that imports ``torch._dynamo``
    (sympy, ``torch.fx``) and the profiler hooks of ``Optimizer.step``, so that
    the interruptible training loop imports nothing. Once per process.
    """
    global _PRIMED
    if _PRIMED:
        return
    from ._training import make_adam

    parameter = torch.nn.Parameter(torch.zeros(2))
    optimizer = make_adam([parameter], lr=1e-3)
    torch.square(parameter).sum().backward()
    optimizer.step()
    _PRIMED = True
