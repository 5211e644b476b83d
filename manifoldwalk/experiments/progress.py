"""A dependency-free text progress bar on stderr: phase, count, rate and time left.

On a terminal the bar redraws in place (at most every ``interval`` seconds); elsewhere (a log
file, a worker process) it prints a plain line at most every ``interval`` seconds, so that long
runs leave a readable trace without flooding the log. Inside a Jupyter kernel
:func:`progress_bar` draws tqdm's notebook widget instead, when tqdm is installed.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

__all__ = ["Progress", "ProgressBar", "format_seconds", "progress_bar"]


def format_seconds(seconds: float) -> str:
    """Format a duration as ``"1h02m"``, ``"3m05s"`` or ``"12s"`` (``"?"`` when unknown).

    Args:
        seconds: The duration; negative, infinite or NaN values give ``"?"``.

    Returns:
        A short human-readable string.
    """
    if not (seconds >= 0 and seconds != float("inf")):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class ProgressBar:
    """A progress bar for ``total`` units of work, labelled ``label``.

    Args:
        total: The number of units (steps, epochs, seeds); at least 1.
        label: What is being done, e.g. ``"seed 3 walk"``.
        unit: The unit's name for the rate, e.g. ``"steps"``.
        stream: Where to write (stderr by default).
        enabled: False makes every method a no-op.
        interval: Minimum seconds between two redraws (default: 0.2 on a terminal, 15 otherwise).
        initial: Units already done before this run started (a resumed run); the rate and the time
            left count only the units done since.
    """

    def __init__(
        self,
        total: int,
        label: str,
        *,
        unit: str = "it",
        stream: TextIO | None = None,
        enabled: bool = True,
        interval: float | None = None,
        initial: int = 0,
    ) -> None:
        self.total = max(1, int(total))
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 15.0)
        self.initial = int(initial)
        self.count = self.initial
        self.start = time.monotonic()
        self._last = -float("inf")
        self.extra = ""
        self._drawn = -1

    def line(self) -> str:
        """The current bar as one line of text (no newline)."""
        elapsed = time.monotonic() - self.start
        frac = min(1.0, self.count / self.total)
        rate = max(0, self.count - self.initial) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.count) / rate if rate > 0 else float("inf")
        filled = int(frac * 20)
        bar = "#" * filled + "-" * (20 - filled)
        extra = f" {self.extra}" if self.extra else ""
        # slow units (seeds take minutes) per minute: "0.0 seeds/s" says nothing
        speed = f"{rate:.1f} {self.unit}/s" if rate >= 0.1 else f"{rate * 60:.1f} {self.unit}/min"
        return (
            f"{self.label} [{bar}] {self.count}/{self.total} {speed} "
            f"elapsed {format_seconds(elapsed)} left {format_seconds(left)}{extra}"
        )

    def update(self, count: int, extra: str = "") -> None:
        """Set the number of units done and redraw if ``interval`` has passed.

        Args:
            count: Units done so far (absolute, not an increment).
            extra: A short note appended to the line (e.g. the current loss).
        """
        self.count = int(count)
        self.extra = extra
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.interval or self.count >= self.total:
            self._last = now
            self._draw()
            self._drawn = self.count

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        if self._drawn != self.count:
            self._draw()
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


class Progress(Protocol):
    """What a progress bar offers: ``update(count, extra)`` with the absolute count, ``close()``."""

    def update(self, count: int, extra: str = "") -> None:
        """Set the number of units done."""

    def close(self) -> None:
        """End the bar."""


class _Tqdm:
    """A tqdm bar behind :class:`ProgressBar`'s ``update(count, extra)`` and ``close()``."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, count: int, extra: str = "") -> None:
        """Set the number of units done."""
        self.bar.update(int(count) - self.bar.n)
        if extra:
            self.bar.set_postfix_str(extra, refresh=False)

    def close(self) -> None:
        """End the bar."""
        self.bar.close()


def progress_bar(
    total: int,
    label: str,
    *,
    unit: str = "it",
    enabled: bool = True,
    interval: float | None = None,
    initial: int = 0,
) -> Progress:
    """A progress bar drawn where the user is looking.

    Inside a Jupyter kernel, where a redrawn stderr line renders poorly, ``tqdm.auto`` draws its
    notebook widget when tqdm is installed (it is not a dependency); elsewhere, and without
    tqdm, the library's text bar on stderr (:class:`ProgressBar`: one line redrawn in place on a
    terminal, a plain line every 15 s in a log file).

    Args:
        total: The number of units.
        label: What is being done.
        unit: The unit's name.
        enabled: False: a bar that draws nothing.
        interval: The text bar's seconds between redraws (see :class:`ProgressBar`).
        initial: Units already done (a resumed run).

    Returns:
        An object with ``update(count, extra="")`` and ``close()``.
    """
    if enabled and "ipykernel" in sys.modules:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            resumed = {"initial": initial} if initial else {}
            return _Tqdm(tqdm(total=total, desc=label, unit=unit, **resumed))
    return ProgressBar(total, label, unit=unit, enabled=enabled, interval=interval, initial=initial)
