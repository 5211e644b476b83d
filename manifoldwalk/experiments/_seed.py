"""What the stages of one seed share: its data and net, its progress, its state after phase 1.

Also the notice printed when a saved file does not load and is recomputed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.experiments.definitions import Experiment
from manifoldwalk.experiments.progress import Progress, progress_bar
from manifoldwalk.experiments.rundir import RunFiles

__all__ = ["Seed", "Stage", "build_net", "damaged", "load_data"]


def load_data(config: RunConfig, spec: Experiment, seed: int) -> Any:
    """The dataset of one seed, in the experiment's dtype.

    Args:
        config: The configuration (its ``data_dir`` and ``n_train``).
        spec: The experiment (its dataset and dtype).
        seed: The seed (of the data split or subset).

    Returns:
        A :class:`manifoldwalk.datasets.Dataset`.

    Raises:
        manifoldwalk.datasets.DatasetError: The dataset's files are missing.
    """
    from manifoldwalk.datasets import load_dataset

    # the packaged tabular datasets have no files to look for in data_dir
    packaged = spec.dataset in ("iris", "auto-mpg")
    return load_dataset(
        spec.dataset,
        seed=seed,
        data_dir=None if packaged else config.data_dir,
        n_train=config.n_train,
        dtype=np.dtype(spec.dtype),
    )


def build_net(backend: ModuleType, spec: Experiment, ds: Any, seed: int) -> Any:
    """A freshly initialised net of the experiment, sized for the dataset.

    Args:
        backend: The experiment backend module.
        spec: The experiment (its net, hidden sizes and dtype).
        ds: The dataset (its input shape and its classes or target width).
        seed: The seed of the initialisation.

    Returns:
        The backend's model.
    """
    shape, n_out = ds.x_train.shape[1:], ds.n_classes or ds.y_train.shape[1]
    return backend.build_net(
        spec.net, shape, n_out, hidden=spec.hidden, seed=seed, dtype=spec.dtype
    )


def damaged(path: Path, err: BaseException | str, action: str) -> None:
    """Say on stderr that a saved file cannot be used and what is done instead.

    Args:
        path: The file.
        err: What loading it raised, or why it is not trusted, in words.
        action: What is done instead (e.g. ``"training phase 1 again"``).
    """
    why = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    print(f"manifoldwalk: {path} is damaged ({why}); {action}", file=sys.stderr)


class Stage:
    """Progress reporting for the stages of one seed (a bar, or nothing).

    Args:
        show: Draw the bars on stderr.
        plain: Print occasional plain lines instead of redrawing (for workers and logs).
    """

    def __init__(self, show: bool, plain: bool) -> None:
        self.show = show
        self.interval = 15.0 if plain else None

    def bar(self, total: int, label: str, unit: str, initial: int = 0) -> Progress:
        """A progress bar for one stage.

        Args:
            total: The units of work of the stage.
            label: The bar's label (e.g. ``"seed 0 walk"``).
            unit: The unit's name (``"steps"``, ``"epochs"``, ``"runs"``).
            initial: The units already done (a resumed stage).

        Returns:
            The bar (disabled when progress is not shown).
        """
        return progress_bar(
            total, label, unit=unit, enabled=self.show, interval=self.interval, initial=initial
        )


@dataclass
class Seed:
    """One seed between its phase 1 and its walk (what the walk and the rest need).

    Attributes:
        seed: The seed.
        d: Its run directory.
        backend: The experiment backend module.
        stage: Its progress reporting.
        ds: Its dataset.
        problem: The adapter's problem on its training set (phase 1's net).
        theta0: Phase 1's θ, where the walk starts.
        p1: Phase 1's record (losses, metric, example gradients, wall time).
        files: Its record of the files it wrote (``index.json``), through which it writes.
    """

    seed: int
    d: Path
    backend: ModuleType
    stage: Stage
    ds: Any
    problem: Any
    theta0: Any
    p1: dict[str, Any]
    files: RunFiles
