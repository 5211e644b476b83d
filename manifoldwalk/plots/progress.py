"""Progress of long evaluations: the library's text bar, or tqdm's widget inside Jupyter.

In a terminal or a log file the bar is :class:`manifoldwalk.experiments.progress.ProgressBar`
(one line redrawn in place, or a plain line every 15 s). Inside a Jupyter kernel, where a
redrawn stderr line renders poorly, ``tqdm.auto`` draws its notebook widget when tqdm is
installed (it is not a dependency; without it the text bar is used there too).
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from manifoldwalk.experiments.progress import ProgressBar

__all__ = ["Progress", "progress_bar"]


class Progress(Protocol):
    """What a progress bar offers: ``update(done)`` with the absolute count, and ``close()``."""

    def update(self, count: int, extra: str = "") -> None:
        """Set the number of units done."""

    def close(self) -> None:
        """End the bar."""


class _Tqdm:
    """A tqdm bar behind :class:`Progress` (absolute counts)."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, count: int, extra: str = "") -> None:
        self.bar.update(int(count) - self.bar.n)
        if extra:
            self.bar.set_postfix_str(extra, refresh=False)

    def close(self) -> None:
        self.bar.close()


def progress_bar(total: int, label: str, *, unit: str = "it", enabled: bool = True) -> Progress:
    """A progress bar for ``total`` units, drawn where the user is looking.

    Args:
        total: The number of units.
        label: What is being done.
        unit: The unit's name.
        enabled: False: a bar that draws nothing.

    Returns:
        tqdm's notebook bar inside a Jupyter kernel when tqdm is installed, else the library's
        text bar on stderr.
    """
    if enabled and "ipykernel" in sys.modules:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return _Tqdm(tqdm(total=total, desc=label, unit=unit))
    return ProgressBar(total, label, unit=unit, enabled=enabled)
