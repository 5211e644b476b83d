"""Read an experiment's run directories into per-seed series for the figures.

Only finished, intact seeds are read (:func:`~manifoldwalk.experiments.rundir.is_finished`);
seeds still running or broken are counted and named, not plotted. A seed that stopped before
its step budget is finished too: its series simply end earlier. Each experiment directory is
read on its own (:func:`~manifoldwalk.experiments.table.experiment_groups`): copies of one
experiment in several directories are never merged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.experiments import rundir
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
        resumed segment repeats the point it started from, which is kept once.

        Args:
            every: Keep every ``every``-th saved point (1: all), counting from the first.

        Returns:
            ``(steps, parts)``: the steps of the kept points, increasing, and ``(array, rows)``
            pairs for :class:`~manifoldwalk.plots.pca.PointSet` (arrays memory-mapped).

        Raises:
            FileNotFoundError: If the run saved no trajectory.
            ValueError: If ``every < 1``.
        """
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        files = sorted((self.path / "walk").glob("thetas-*.npz"))
        if not files:
            raise FileNotFoundError(f"{self.path} has no saved trajectory (walk/thetas-*.npz)")
        seen: set[int] = set()
        steps: list[np.ndarray] = []
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        for f in files:
            with np.load(f, allow_pickle=False) as z:
                file_steps = np.asarray(z["steps"], dtype=np.int64)
            fresh = np.array([i for i, s in enumerate(file_steps) if int(s) not in seen], int)
            seen.update(int(s) for s in file_steps)
            if len(fresh):
                steps.append(file_steps[fresh])
                parts.append((npz_array(f, "theta"), fresh))
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
        """The walk's final θ (``final.npz``), float64."""
        with np.load(self.path / "final.npz", allow_pickle=False) as z:
            return np.asarray(z["theta"], dtype=np.float64)

    def wd_theta(self, lam: float, split: str = "full") -> np.ndarray:
        """The final θ of the weight-decay run at ``lam`` (``wd/<split>-<i>.npz``), float64.

        Args:
            lam: One of :attr:`lambdas`.
            split: ``"full"`` (trained on the whole training set) or ``"val"``.

        Returns:
            The weight vector.

        Raises:
            ValueError: If ``lam`` was not in the sweep.
        """
        try:
            i = self.lambdas.index(float(lam))
        except ValueError:
            raise ValueError(
                f"λ={lam:g} is not in seed {self.seed}'s sweep {self.lambdas}"
            ) from None
        with np.load(self.path / "wd" / f"{split}-{i:02d}.npz", allow_pickle=False) as z:
            return np.asarray(z["theta"], dtype=np.float64)

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


def _metrics(path: Path) -> dict[str, np.ndarray]:
    cols = rundir.read_csv(path)
    if not cols or len(cols["step"]) == 0:
        return cols
    # a resumed walk records the step it resumed from again: keep the last record of a step
    _, last = np.unique(cols["n_predictor"][::-1], return_index=True)
    keep = np.sort(len(cols["n_predictor"]) - 1 - last)
    return {k: v[keep] for k, v in cols.items()}


def load_runs(directory: str | os.PathLike[str]) -> list[ExperimentRuns]:
    """Read every finished seed under ``directory``, one entry per experiment directory.

    Args:
        directory: An output root, an experiment directory or one seed directory.

    Returns:
        One entry per experiment directory with a finished seed, in the order of Table I;
        an experiment found in several directories gives several entries, labelled by path.

    Raises:
        FileNotFoundError: If ``directory`` does not exist or holds no finished run.
    """
    root = Path(directory)
    groups = experiment_groups(root)
    out = []
    for g in groups:
        if not g.finished:
            continue
        seeds = []
        for d in g.finished:
            summary = rundir.read_json(d / "summary.json")
            seeds.append(
                SeedRun(
                    seed=int(summary["seed"]),
                    path=d,
                    config=rundir.read_json(d / "config.json"),
                    summary=summary,
                    metrics=_metrics(d / "metrics.csv"),
                )
            )
        out.append(
            ExperimentRuns(
                name=g.name,
                seeds=sorted(seeds, key=lambda s: s.seed),
                row=table_row(g),
                unfinished=list(g.unfinished),
            )
        )
    if not out:
        raise no_finished_runs(root, groups)
    return out
