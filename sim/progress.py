"""A progress bar for long runs, on stderr.

On a terminal it redraws one line (``\\r``); otherwise (logs, CI) it prints a line every
``every`` percent, so logs stay short.

>>> import io
>>> out = io.StringIO()
>>> bar = Progress(4, "epoch 1", stream=out, every=50)
>>> for _ in range(4):
...     bar.advance(note="loss 0.5")
>>> bar.close()
>>> print(out.getvalue().strip())
epoch 1 [############............] 2/4  50% loss 0.5
epoch 1 [########################] 4/4 100% loss 0.5
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``.

    >>> format_seconds(42.4), format_seconds(185), format_seconds(3725)
    ('42 s', '3 min 05 s', '1 h 02 min')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """``total`` steps of work labelled ``label``; :meth:`advance` after each."""

    WIDTH = 24

    def __init__(self, total: int, label: str, *, stream=None, every: int = 10,
                 eta: bool = False):
        self.total = max(1, total)
        #: Show the estimated time left (from the mean time of the steps done so far).
        self.eta = eta
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self.done = 0
        self.started = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._printed_percent = 0
        self._seconds_left: float | None = None

    def _line(self, note: str) -> str:
        filled = self.WIDTH * self.done // self.total
        percent = 100 * self.done // self.total
        width = len(str(self.total))
        line = (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{self.done:{width}d}/{self.total} {percent:3d}%")
        elapsed = time.monotonic() - self.started
        if self._tty:
            line += f" {elapsed:5.0f} s"
        if self.eta and 0 < self.done < self.total:
            left = (self._seconds_left if self._seconds_left is not None
                    else elapsed / self.done * (self.total - self.done))
            line += f" ETA {format_seconds(left)}"
        return line + (f" {note}" if note else "")

    def advance(self, steps: int = 1, *, note: str = "",
                seconds_left: float | None = None) -> None:
        """``steps`` more done; ``seconds_left``: the caller's own estimate of the time
        left (when its steps differ in cost), shown instead of the mean's."""
        self._seconds_left = seconds_left
        self.done = min(self.total, self.done + steps)
        percent = 100 * self.done // self.total
        if self._tty:
            self.stream.write("\r" + self._line(note))
            self.stream.flush()
        elif percent // self.every > self._printed_percent // self.every \
                or self.done == self.total:
            if percent != self._printed_percent:
                self.stream.write(self._line(note) + "\n")
                self.stream.flush()
                self._printed_percent = percent

    def close(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
