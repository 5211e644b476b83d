"""Read an experiment's run directories into per-seed series for the figures.

Only finished, intact seeds are read (:func:`~manifoldwalk.experiments.rundir.is_finished`);
seeds still running or broken are counted and named, not plotted. A seed that stopped before
its step budget is finished too: its series simply end earlier. Each experiment directory is
read on its own (:func:`~manifoldwalk.experiments.table.experiment_groups`): copies of one
experiment in several directories are never merged, a copy such as ``seed-000.bak`` is not
read, and an experiment directory holding seeds of different options is refused.

Only the files a seed's ``DONE`` marker lists are read, each checked against its recorded
SHA-256 when it is read: a ``walk/thetas-*.npz`` file added after the run finished is not part
of its trajectory. A listed file that does not hold what a run writes (an array of another
shape, a CSV row of another length) raises
:class:`~manifoldwalk.experiments.rundir.RunDirError` naming the file. The files written beside
the seed directories (``table.*``, ``history.*``, ``wd.csv``) are outputs and are never read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._outputs import read_metrics
from manifoldwalk.experiments.rundir import RunDirError
from manifoldwalk.experiments.table import (
    TableRow,
    experiment_groups,
    no_finished_runs,
    table_row,
)
from manifoldwalk.plots.pca import npz_array

__all__ = ["ExperimentRuns", "SeedRun", "load_runs"]


@dataclass
class SeedRun:
    """One finished seed of one experiment.

    Attributes:
        seed: The seed.
        path: Its run directory.
        config: ``config.json``.
        summary: ``summary.json``.
        metrics: ``metrics.csv`` as float columns, one entry per recorded predictor step
            (a row repeated when a walk was resumed is kept once).
    """

    seed: int
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: dict[str, np.ndarray]

    @property
    def metric(self) -> str:
        """``"accuracy"`` or ``"mse"``."""
        return str(self.summary["metric"])

    @property
    def stop_reason(self) -> str:
        """Why the walk stopped (``"max_steps"`` when it used its whole budget)."""
        return str(self.summary["walk"]["stop_reason"])

    @property
    def lambdas(self) -> list[float]:
        """The weight-decay λ sweep, in the order of the ``wd/<split>-<i>`` files."""
        return [float(v) for v in self.config["wd_lambdas"]]

    def trajectory(self, every: int = 1) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """The saved walk points: their predictor steps and where they lie in the files.

        The walk saves θ every ``save_every`` predictor steps in ``walk/thetas-<n>.npz``; a
        resumed segment repeats the point it started from, which is kept once. Only the files
        the seed's ``DONE`` marker lists are read, each checked against its SHA-256.

        Args:
            every: Keep every ``every``-th saved point (1: all), counting from the first.

        Returns:
            ``(steps, parts)``: the steps of the kept points, increasing, and ``(array, rows)``
            pairs for :class:`~manifoldwalk.plots.pca.PointSet` (arrays memory-mapped).

        Raises:
            FileNotFoundError: If the run saved no trajectory.
            ValueError: If ``every < 1``.
            RunDirError: A listed file changed after the run finished or is no saved segment
                (naming it).
        """
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        listing = rundir.done_listing(self.path)
        names = sorted(n for n in listing if _THETAS.fullmatch(n))
        if not names:
            raise FileNotFoundError(f"{self.path} has no saved trajectory (walk/thetas-*.npz)")
        seen: set[int] = set()
        steps: list[np.ndarray] = []
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        width = None
        for name in names:
            f = rundir.check_listed(self.path, name, listing)
            file_steps, theta = _thetas(f)
            if width is not None and theta.shape[1] != width:
                raise RunDirError(f, f"its θ has {theta.shape[1]} values, the others {width}")
            width = theta.shape[1]
            fresh = np.array([i for i, s in enumerate(file_steps) if int(s) not in seen], int)
            seen.update(int(s) for s in file_steps)
            if len(fresh):
                steps.append(file_steps[fresh])
                parts.append((theta, fresh))
        if not steps:
            raise RunDirError(self.path, "its saved trajectory (walk/thetas-*.npz) holds no point")
        all_steps = np.concatenate(steps)
        order = np.argsort(all_steps, kind="stable")
        if not np.array_equal(order, np.arange(len(order))):
            raise ValueError(f"{self.path}: the saved steps are not in file order")
        keep = np.arange(0, len(all_steps), every)
        out_parts, base = [], 0
        for array, rows in parts:
            local = keep[(keep >= base) & (keep < base + len(rows))] - base
            if len(local):
                out_parts.append((array, rows[local]))
            base += len(rows)
        return all_steps[keep], out_parts

    def final_theta(self) -> np.ndarray:
        """The walk's final θ (``final.npz``), float64.

        Raises:
            RunDirError: The file is not listed in ``DONE``, changed, or holds no θ vector.
        """
        return self._theta("final.npz")

    def _theta(self, name: str) -> np.ndarray:
        """A listed ``.npz`` file's 1-D ``theta`` (checked against ``DONE``), float64."""
        data = rundir.read_listed(self.path, name, rundir.done_listing(self.path))
        path = self.path / name
        theta = rundir.npz_array_bounded(data, "theta", path)
        n = self.summary.get("n_params")
        if theta.ndim != 1 or theta.dtype.kind != "f" or (isinstance(n, int) and len(theta) != n):
            raise RunDirError(
                path, f"its theta has shape {theta.shape} and dtype {theta.dtype}, not a θ"
            )
        return theta.astype(np.float64)

    def wd_theta(self, lam: float, split: str = "full") -> np.ndarray:
        """The final θ of the weight-decay run at ``lam`` (``wd/<split>-<i>.npz``), float64.

        Args:
            lam: One of :attr:`lambdas`.
            split: ``"full"`` (trained on the whole training set) or ``"val"``.

        Returns:
            The weight vector.

        Raises:
            ValueError: If ``lam`` was not in the sweep.
            RunDirError: The file is not listed in ``DONE``, changed, or holds no θ vector.
        """
        try:
            i = self.lambdas.index(float(lam))
        except ValueError:
            raise ValueError(
                f"λ={lam:g} is not in seed {self.seed}'s sweep {self.lambdas}"
            ) from None
        return self._theta(f"wd/{split}-{i:02d}.npz")

    def wd_record(self, lam: float, split: str = "full") -> dict[str, Any]:
        """The summary record of the weight-decay run at ``lam`` on ``split``.

        Args:
            lam: One of :attr:`lambdas`.
            split: ``"full"`` or ``"val"``.

        Returns:
            Its record (λ, epochs, example_grads, train/test/val metrics).

        Raises:
            ValueError: If there is no such run.
        """
        for r in self.summary["wd"]:
            if float(r["lam"]) == float(lam) and r["split"] == split:
                return r
        raise ValueError(f"seed {self.seed} has no weight-decay run at λ={lam:g} ({split})")


@dataclass
class ExperimentRuns:
    """The finished seeds of one experiment and its Table I row.

    Attributes:
        name: The experiment.
        seeds: Its finished seeds, in seed order.
        row: Its Table I row (the weight-decay λ chosen on the test set is ``row.by_test.lam``).
        unfinished: Seed directories found but not finished (not plotted).
    """

    name: str
    seeds: list[SeedRun]
    row: TableRow
    unfinished: list[Path] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Its row's label: the experiment's name, or its directory's path where the
        experiment appears in several directories
        (:attr:`~manifoldwalk.experiments.table.RunGroup.label`); the plots go to
        ``OUT/<label>``."""
        return self.row.label

    @property
    def metric(self) -> str:
        """``"accuracy"`` or ``"mse"``."""
        return self.seeds[0].metric

    @property
    def best_lambda(self) -> float:
        """The weight-decay λ with the best mean test metric (the paper's choice)."""
        return float(self.row.by_test.lam)


_THETAS = re.compile(r"walk/thetas-[0-9]{8}\.npz")


def _thetas(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A saved segment's steps and its θ rows (memory-mapped), their shapes checked."""
    steps = rundir.npz_array_bounded(None, "steps", path)
    try:
        theta = npz_array(path, "theta")  # memory-mapped: no more than the file holds
    except Exception as err:  # noqa: BLE001 (a listed file that does not load)
        raise RunDirError(path, f"it does not load ({type(err).__name__}: {err})") from None
    if steps.ndim != 1 or steps.dtype.kind not in "iu":
        raise RunDirError(path, f"its steps have shape {steps.shape} and dtype {steps.dtype}")
    if theta.ndim != 2 or theta.shape[0] != len(steps) or theta.dtype.kind != "f":
        raise RunDirError(
            path,
            f"its theta has shape {theta.shape} and dtype {theta.dtype}; expected one row of "
            f"floats for each of its {len(steps)} steps",
        )
    return steps.astype(np.int64), theta


def _plot_problem(config: dict, summary: dict) -> str | None:
    """Why a finished seed's records lack what the figures read (None: they have it)."""

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    walk, phase1 = summary["walk"], summary["phase1"]
    if not isinstance(walk.get("stop_reason"), str) or not number(walk.get("level")):
        return "its walk record has no stop_reason or level"
    if not number(phase1.get("example_grads")):
        return "its phase-1 record has no example_grads number"
    if not all(number(r.get("example_grads")) for r in summary["wd"]):
        return "a weight-decay record has no example_grads number"
    if "wd_lambdas" not in config:
        return "config.json has no wd_lambdas"
    return None


def load_runs(directory: str | os.PathLike[str]) -> list[ExperimentRuns]:
    """Read every finished seed under ``directory``, one entry per experiment directory.

    Args:
        directory: An output root, an experiment directory or one seed directory.

    Returns:
        One entry per experiment directory with a finished seed, in the order of Table I;
        an experiment found in several directories gives several entries, labelled by path.

    Raises:
        FileNotFoundError: If ``directory`` does not exist or holds no finished run.
        RunDirError: A finished seed's listed file does not hold what a run writes, or an
            experiment directory holds seeds of different options (naming the file or
            directory).
    """
    root = Path(directory)
    groups = experiment_groups(root)
    out = []
    for g in groups:
        if not g.finished:
            continue
        row = table_row(g)  # refuses a directory of mixed options before anything is read
        seeds = []
        for d in g.finished:
            config, summary = g.records[d]
            why = _plot_problem(config, summary)
            if why is not None:
                raise RunDirError(d / "summary.json", why)
            listing = rundir.done_listing(d)
            seeds.append(
                SeedRun(
                    seed=int(summary["seed"]),
                    path=d,
                    config=config,
                    summary=summary,
                    metrics=read_metrics(d, listing, str(summary["metric"])),
                )
            )
        out.append(
            ExperimentRuns(
                name=g.name,
                seeds=sorted(seeds, key=lambda s: s.seed),
                row=row,
                unfinished=list(g.unfinished),
            )
        )
    if not out:
        raise no_finished_runs(root, groups)
    return out
