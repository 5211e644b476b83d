"""Progress of long evaluations: the library's text bar, or tqdm's widget inside Jupyter.

In a terminal or a log file the bar is :class:`manifoldwalk.experiments.progress.ProgressBar`
(one line redrawn in place, or a plain line every 15 s). Inside a Jupyter kernel, where a
redrawn stderr line renders poorly, ``tqdm.auto`` draws its notebook widget when tqdm is
installed (it is not a dependency; without it the text bar is used there too).
"""

from __future__ import annotations

from manifoldwalk.experiments.progress import Progress
from manifoldwalk.experiments.progress import progress_bar as shared_progress_bar

__all__ = ["Progress", "progress_bar"]


def progress_bar(total: int, label: str, *, unit: str = "it", enabled: bool = True) -> Progress:
    """A progress bar for ``total`` units, drawn where the user is looking
    (:func:`manifoldwalk.experiments.progress.progress_bar`: tqdm's widget inside Jupyter when
    tqdm is installed, else the library's text bar on stderr).

    Args:
        total: The number of units.
        label: What is being done.
        unit: The unit's name.
        enabled: False: a bar that draws nothing.

    Returns:
        The bar.
    """
    return shared_progress_bar(total, label, unit=unit, enabled=enabled)
