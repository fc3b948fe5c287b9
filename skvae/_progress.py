"""One progress display for everything that counts steps: the epochs of a fit
with ``verbose=1`` and the fits of ``skvae demo``.

On a terminal it is a live tqdm bar when tqdm is installed; otherwise (no tqdm,
a log file, a pipe, a notebook's captured output) one plain line per step,
aligned in columns, with the step count, the numbers of the step, the time per
step and the time left.
"""

import sys
import time


def _is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _duration(seconds):
    """``4.2 -> '4.2 s'``, ``75 -> '1 min 15 s'``, ``4000 -> '1 h 07 min'``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Progress over ``total`` steps of one kind (``unit``: 'epoch', 'fit').

    Parameters
    ----------
    total : int
        The number of steps at most (``max_iter`` for a fit: early stopping
        may end sooner, so the time left is an upper bound there).
    unit : str, default='step'
        What a step is, for the display.
    stream : file-like, default=None
        Where to write; None means ``sys.stdout`` (read when the object is
        made, so that captured output is honoured).
    enabled : bool, default=True
        False shows nothing (and costs nothing).
    bar : bool, default=False
        Draw a ``[####----]`` bar at the start of each plain line.
    use_tqdm : bool, default=None
        None uses tqdm when it is installed and ``stream`` is a terminal.
    start : int, default=0
        Steps already done before this display (a warm start), counted in
        the step number but not in the time per step.
    """

    def __init__(
        self,
        total,
        *,
        unit="step",
        stream=None,
        enabled=True,
        bar=False,
        use_tqdm=None,
        start=0,
        width=20,
    ):
        self.total = int(total)
        self.unit = unit
        self.stream = sys.stdout if stream is None else stream
        self.enabled = enabled
        self.bar = bar
        self.width = width
        self.start = int(start)
        self.done = 0
        self._start_time = time.perf_counter()
        self._tqdm = None
        if enabled:
            if use_tqdm is None:
                use_tqdm = _is_terminal(self.stream)
            if use_tqdm:
                try:
                    from tqdm.auto import tqdm
                except ModuleNotFoundError:
                    tqdm = None
                if tqdm is not None:
                    self._tqdm = tqdm(
                        total=self.start + self.total,
                        initial=self.start,
                        unit=unit,
                        file=self.stream,
                        dynamic_ncols=True,
                        leave=True,
                    )

    @property
    def step_number(self):
        """The number of the last step, counting ``start``."""
        return self.start + self.done

    def seconds_per_step(self):
        if self.done == 0:
            return float("nan")
        return (time.perf_counter() - self._start_time) / self.done

    def update(self, note=""):
        """One step done; ``note`` is what to show about it."""
        self.done += 1
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(note, refresh=False)
            self._tqdm.update(1)
            return
        self.stream.write(self.line(note) + "\n")
        self.stream.flush()

    def line(self, note=""):
        """The plain line for the current step."""
        per_step = self.seconds_per_step()
        left = per_step * max(self.total - self.done, 0)
        end = self.start + self.total
        count = f"{self.step_number:>{len(str(end))}}/{end}"
        if self.bar:
            filled = round(self.width * self.done / max(self.total, 1))
            elapsed = _duration(time.perf_counter() - self._start_time)
            line = (
                "[" + "#" * filled + "-" * (self.width - filled) + "] "
                f"{count} {self.unit}s, {elapsed} (about {_duration(left)} left)"
            )
            return line + (f"  {note}" if note else "")
        parts = [f"{self.unit.capitalize()} {count}"]
        if note:
            parts.append(note)
        parts.append(f"{per_step:6.3f} s/{self.unit}")
        parts.append(f"{_duration(left):>9} left at most")
        return "  ".join(parts)

    def write(self, text):
        """A line of its own, between steps, without breaking a live bar."""
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self):
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None


def epoch_note(loss, reconstruction, kl, validation=None):
    """The numbers of one epoch, in fixed columns."""
    note = f"loss {loss:10.4f}  reconstruction {reconstruction:10.4f}  KL {kl:8.4f}"
    if validation is not None:
        note += f"  val ELBO {validation:10.4f}"
    return note


def stop_reason(status, *, max_iter, tol, n_iter_no_change, early_stopping):
    """Why a fit stopped, in words, from ``fit_loop``'s status."""
    if status == "converged":
        what = "the validation ELBO" if early_stopping else "the training loss"
        return (
            f"{what} did not improve by more than tol={tol:g} for "
            f"{n_iter_no_change} epochs"
        )
    if status == "interrupted":
        return "interrupted by the user (Ctrl-C)"
    return f"reached max_iter={max_iter} without converging"


def fit_summary(n_epochs, reason, active_units, n_components, total_epochs=None):
    """The one line printed at the end of a verbose fit.

    ``n_epochs`` are this call's; ``total_epochs`` (a warm start's, counting
    the earlier fits) is added when it differs.
    """
    total = ""
    if total_epochs is not None and total_epochs != n_epochs:
        total = f" ({total_epochs} in all)"
    return (
        f"Trained {n_epochs} epoch{'s' if n_epochs != 1 else ''}{total}: stopped "
        "because "
        f"{reason}; {active_units} of {n_components} latent "
        f"dimension{'s' if n_components != 1 else ''} active (mean KL > 0.01 nats)."
    )
