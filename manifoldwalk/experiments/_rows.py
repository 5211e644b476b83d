"""The rows of Table I: walk against weight decay over the finished seeds of one directory.

The weight-decay λ is chosen twice from the same per-seed sweeps: on the test set, as the paper
did (which flatters the baseline), and on a validation split carved from the training data (the
honest choice). Each λ is trained on the full training set (its test metric is what is reported)
and on the remaining fit split (its validation metric is what chooses λ): select on validation,
then report the full-training-set net at that λ, the usual "select, then retrain" protocol. λ is
chosen on the mean over seeds; the paired statistics then compare, seed by seed, the walk's
final test metric with that of the full-training-set net at the chosen λ
(:mod:`~manifoldwalk.experiments.paired`).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._run_groups import (
    RunGroup,
    experiment_groups,
    load_finished,
    no_finished_runs,
)
from manifoldwalk.experiments.config import option_differences
from manifoldwalk.experiments.definitions import EXPERIMENTS, PaperRow
from manifoldwalk.experiments.paired import PairedComparison, paired_comparison
from manifoldwalk.experiments.rundir import RunDirError

__all__ = [
    "SHARPNESS_KEYS",
    "Choice",
    "Paired",
    "TableRow",
    "build_table",
    "experiment_table",
    "lambda_text",
    "mean_std",
    "table_row",
]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Return the mean and the sample standard deviation (ddof=1; NaN for one value).

    Args:
        values: The per-seed values.

    Returns:
        ``(mean, std)``; both NaN for no values.
    """
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def lambda_text(lam: float) -> str:
    """λ in short scientific notation: ``0``, ``1e-2``, ``3e-2``, ``2.5e-3`` (never rounded to a
    power of ten).

    Args:
        lam: The value.

    Returns:
        The text.
    """
    if lam == 0:
        return "0"
    mantissa, exponent = f"{lam:.12e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


@dataclass
class Choice:
    """A chosen λ and the test metric of the full-training-set nets trained with it.

    Attributes:
        lam: The λ.
        mean: The test metric's mean over seeds.
        std: Its sample standard deviation.
        score: The mean of the selection criterion (test or validation metric) at that λ.
    """

    lam: float
    mean: float
    std: float
    score: float


@dataclass
class Paired:
    """The walk against weight decay at one chosen λ, seed by seed.

    Attributes:
        chosen_by: ``"test"`` or ``"val"``: how λ was chosen.
        lam: The λ.
        seeds: The seeds compared (those with both numbers).
        comparison: walk − weight decay per seed, with its mean, 95 % interval and tests.
    """

    chosen_by: str
    lam: float
    seeds: list[int]
    comparison: PairedComparison


@dataclass
class TableRow:
    """One experiment's row of Table I.

    Attributes:
        experiment: Its name.
        metric: ``"accuracy"`` (a fraction; shown in %) or ``"mse"``.
        seeds: The finished seeds counted.
        unfinished: Seed directories found but not finished (not counted).
        phase1: Phase 1's test metric, mean and std.
        walk: The walk's final test metric, mean and std.
        by_test: Weight decay with λ chosen on the test set (the paper's choice).
        by_val: Weight decay with λ chosen on the validation split.
        per_lambda: λ → (mean test metric, mean validation metric) over seeds.
        wd_reg: The weight-decay regulariser used.
        paper: The paper's row, if any (its accuracy in percent, as printed in the paper).
        label: How the row is named: the experiment, or the path of its directory when the
            experiment appears in several directories (:attr:`RunGroup.label`).
        directory: The experiment directory the seeds came from (None: not known).
        level_held: The largest |L − L0|/|L0| at an on-level point of any seed's walk (None:
            not recorded by the runs).
        notes: What the row left out and why, in words, each naming the directory or seed
            and λ concerned (printed under the table).
        paired: walk − weight decay per seed, for λ by test and λ by validation (empty for a
            row built without them).
        sharpness: The largest Hessian eigenvalue of the training loss, mean and sample std
            over the seeds that recorded it, by :data:`SHARPNESS_KEYS` (NaN where no seed did;
            empty for a row built without it).
    """

    experiment: str
    metric: str
    seeds: list[int]
    unfinished: int
    phase1: tuple[float, float]
    walk: tuple[float, float]
    by_test: Choice
    by_val: Choice
    per_lambda: dict[float, tuple[float, float]] = field(default_factory=dict)
    wd_reg: str = "l2"
    paper: PaperRow | None = None
    label: str = ""
    directory: Path | None = None
    level_held: float | None = None
    notes: list[str] = field(default_factory=list)
    paired: list[Paired] = field(default_factory=list)
    sharpness: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Label the row by its experiment when no label is given."""
        self.label = self.label or self.experiment


def _best(scores: list[float], higher: bool) -> int:
    keyed = [(-s if higher else s) if np.isfinite(s) else math.inf for s in scores]
    return int(np.argmin(keyed))


def _check_options(group: RunGroup, configs: list[dict]) -> None:
    """Refuse a group whose finished seeds were run with different options."""
    first = group.finished[0]
    for d, config in zip(group.finished[1:], configs[1:], strict=True):
        diff = option_differences(config, configs[0], (d.name, first.name))
        if diff:
            raise RunDirError(
                group.directory,
                f"it holds runs of different options ({d.name} and {first.name} differ in "
                f"{'; '.join(diff)}); a row counts runs of one set of options: move one set "
                "into a directory of its own",
            )


def _left_out(group: RunGroup, summaries: list[dict], metric: str) -> list[str]:
    """The notes naming the weight-decay results that are no number, by split and λ (a λ with
    one is left out of that choice)."""
    bad: dict[tuple[str, float], list[int]] = defaultdict(list)
    for s in summaries:
        for r in s["wd"]:
            value = r["test_metric"] if r["split"] == "full" else r["val_metric"]
            if not math.isfinite(float(value)):
                bad[(r["split"], float(r["lam"]))].append(int(s["seed"]))
    notes = []
    for (split, lam), seeds in sorted(bad.items()):
        which, what = ("test", "test") if split == "full" else ("val", "validation")
        notes.append(
            f"λ={lambda_text(lam)} left out of 'λ by {which}': its {what} {metric} is not a "
            f"number for seed {', '.join(map(str, sorted(seeds)))} ({group.directory})"
        )
    return notes


def _group_notes(group: RunGroup) -> list[str]:
    """The notes naming what a group left out: refused, ignored and not-asked directories."""
    notes = [f"not counted: {why}" for why in group.refused.values()]
    notes += [
        f"not read: {d} (not a seed directory's name; seed directories are named "
        "seed-<k> with k in at least 3 digits)"
        for d in group.ignored
    ]
    if group.not_asked:
        seeds = ", ".join(str(rundir.seed_of(d)) for d in group.not_asked)
        notes.append(
            f"{group.directory} also holds finished seed {seeds}, not asked for here and not "
            f"counted (`manifoldwalk table {group.directory}` counts every finished seed)"
        )
    return notes


def _paired(
    summaries: list[dict], choice: Choice, chosen_by: str, directory: Path
) -> tuple[Paired, list[str]]:
    """walk − weight decay per seed at ``choice.lam`` (the full-training-set nets), and the
    notes naming the seeds left out because one of the two is not a number."""
    walk, wd, seeds, left = [], [], [], []
    for s in summaries:
        at = [
            float(r["test_metric"])
            for r in s["wd"]
            if r["split"] == "full" and float(r["lam"]) == choice.lam
        ]
        w = float(s["walk"]["test_metric"])
        if len(at) == 1 and math.isfinite(at[0]) and math.isfinite(w):
            walk.append(w)
            wd.append(at[0])
            seeds.append(int(s["seed"]))
        else:
            left.append(int(s["seed"]))
    label = f"walk − WD (λ by {chosen_by})"
    notes = (
        [
            f"seed {', '.join(map(str, left))} left out of '{label}': the walk's or weight "
            f"decay's test metric at λ={lambda_text(choice.lam)} is not a number ({directory})"
        ]
        if left
        else []
    )
    return Paired(chosen_by, choice.lam, seeds, paired_comparison(walk, wd, label)), notes


def _level_held(summaries: list[dict]) -> float | None:
    """The largest on-level |L − L0|/|L0| over the seeds' walks (None where not recorded)."""
    values = [s["walk"].get("max_relative_deviation") for s in summaries]
    return None if None in values else max(float(v) for v in values)


SHARPNESS_KEYS = (
    "start",
    "end",
    "start_tangent",
    "end_tangent",
    "wd_by_val",
    "wd_by_val_tangent",
)
"""The sharpness of a row: at phase 1's θ0 (``start``), at the walk's end (``end``) and at
weight decay's full-training-set net at the λ chosen by validation (``wd_by_val``); the full
Hessian's, and with ``_tangent`` on the level set's tangent space."""


def _sharpness(
    summaries: list[dict], lam: float, directory: Path
) -> tuple[dict[str, tuple[float, float]], list[str]]:
    """The row's sharpness over the seeds (:data:`SHARPNESS_KEYS`), weight decay's at ``lam``,
    and the notes naming the seeds left out: runs made before the sharpness was measured or
    with it switched off, and values that are no number."""
    values: dict[str, list[float]] = {k: [] for k in SHARPNESS_KEYS}
    absent: list[int] = []  # runs made before the sharpness was measured
    off: list[int] = []  # runs made with --sharpness-every 0
    bad: dict[str, list[int]] = defaultdict(list)
    for s in summaries:
        rec = s.get("sharpness")
        if not isinstance(rec, dict) or rec.get("every") == 0:
            (off if isinstance(rec, dict) else absent).append(int(s["seed"]))
            continue
        at = [r for r in rec.get("wd", []) if float(r.get("lam", math.nan)) == lam]
        points = {"start": rec.get("start"), "end": rec.get("end"), "wd_by_val": None}
        if len(at) == 1:
            points["wd_by_val"] = at[0]
        for key in SHARPNESS_KEYS:
            point = points[key.removesuffix("_tangent")]
            value = None
            if isinstance(point, dict):
                value = point.get("tangent" if key.endswith("_tangent") else "full")
            value = math.nan if value is None else float(value)
            if math.isfinite(value):
                values[key].append(value)
            else:
                bad[key].append(int(s["seed"]))
    notes = []
    for seeds, why in (
        (absent, "a run made before it was measured"),
        (off, "run with --sharpness-every 0"),
    ):
        if seeds:
            notes.append(
                f"no sharpness recorded by seed {', '.join(map(str, sorted(seeds)))} ({why}; "
                f"left out of the sharpness columns, — where no seed has it) ({directory})"
            )
    for key, seeds in bad.items():
        notes.append(
            f"seed {', '.join(map(str, sorted(seeds)))} left out of the sharpness '{key}': it is "
            f"not a number there ({directory})"
        )
    return {k: mean_std(v) for k, v in values.items()}, notes


def table_row(group: RunGroup) -> TableRow:
    """Build the Table I row of one experiment directory, with its paired statistics.

    Args:
        group: From :func:`~manifoldwalk.experiments.table.experiment_groups`; it must hold a
            finished seed.

    Returns:
        The row, labelled as the group, with notes naming what it left out.

    Raises:
        ValueError: If the group has no finished seed.
        RunDirError: A seed's files do not hold what a run writes, or the group's seeds were
            run with different options (naming the directory and the options).
    """
    if not group.finished:
        raise ValueError(f"{group.directory} holds no finished seed (seed-*/DONE)")
    records = []
    for d in group.finished:
        loaded = group.records.get(d) or load_finished(d)
        if loaded is None:
            raise RunDirError(d, "it is not finished and intact any more (DONE)")
        records.append(loaded)
    configs = [c for c, _ in records]
    summaries = [s for _, s in records]
    _check_options(group, configs)
    metric = summaries[0]["metric"]
    if any(s["metric"] != metric for s in summaries):
        raise RunDirError(group.directory, "its seeds report different metrics")
    full: dict[float, list[float]] = defaultdict(list)
    val: dict[float, list[float]] = defaultdict(list)
    for s in summaries:
        for r in s["wd"]:
            (full if r["split"] == "full" else val)[float(r["lam"])].append(
                float(r["test_metric"] if r["split"] == "full" else r["val_metric"])
            )
    if not full:
        raise RunDirError(
            group.finished[0] / "summary.json", "it holds no weight-decay run on the full set"
        )
    notes = _left_out(group, summaries, metric)
    lams = sorted(full)
    test_means = [mean_std(full[lam])[0] for lam in lams]
    val_means = [mean_std(val.get(lam, []))[0] for lam in lams]
    choices = []
    for scores in (test_means, val_means):
        i = _best(scores, metric == "accuracy")
        m, sd = mean_std(full[lams[i]])
        choices.append(Choice(lams[i], m, sd, scores[i]))
    paired = []
    for choice, by in zip(choices, ("test", "val"), strict=True):
        p, why = _paired(summaries, choice, by, group.directory)
        paired.append(p)
        notes += why
    sharpness, why = _sharpness(summaries, choices[1].lam, group.directory)
    notes += why
    exp = EXPERIMENTS.get(group.name)
    return TableRow(
        experiment=group.name,
        metric=metric,
        seeds=sorted(int(s["seed"]) for s in summaries),
        unfinished=len(group.unfinished),
        phase1=mean_std(s["phase1"]["test_metric"] for s in summaries),
        walk=mean_std(s["walk"]["test_metric"] for s in summaries),
        by_test=choices[0],
        by_val=choices[1],
        per_lambda={lam: (t, v) for lam, t, v in zip(lams, test_means, val_means, strict=True)},
        wd_reg=str(configs[0]["options"].get("wd_reg", "l2")),
        paper=exp.paper if exp else None,
        label=group.label,
        directory=group.directory,
        level_held=_level_held(summaries),
        notes=_group_notes(group) + notes,
        paired=paired,
        sharpness=sharpness,
    )


def experiment_table(directory: str | os.PathLike[str], seeds: Iterable[int]) -> TableRow:
    """The Table I row of exactly ``seeds`` of one experiment directory (what ``reproduce``
    prints): other finished seeds in the directory are left out and named in the row's notes.

    Args:
        directory: The experiment directory (``OUT/<experiment>``).
        seeds: The seeds to count; each must be finished there.

    Returns:
        The row.

    Raises:
        FileNotFoundError: If ``directory`` does not exist or holds no seed directory.
        ValueError: A seed asked for is not finished there (naming it and why).
        RunDirError: As :func:`table_row`.
    """
    directory = Path(directory)
    here = os.path.abspath(directory)
    groups = [g for g in experiment_groups(directory) if os.path.abspath(g.directory) == here]
    if not groups:
        raise no_finished_runs(directory, [])
    (g,) = groups
    wanted = set(seeds)
    by_seed = {rundir.seed_of(d): d for d in g.finished}
    missing = sorted(wanted - set(by_seed))
    if missing:
        why = {rundir.seed_of(d): w for d, w in g.refused.items()}
        raise ValueError(
            f"{directory}: seed {', '.join(map(str, missing))} not finished"
            + "".join(f" ({why[s]})" for s in missing if s in why)
        )
    asked = RunGroup(
        g.name,
        g.label,
        g.directory,
        finished=[d for s, d in sorted(by_seed.items()) if s in wanted],  # type: ignore[misc]
        refused=g.refused,
        ignored=g.ignored,
        not_asked=[d for s, d in sorted(by_seed.items()) if s not in wanted],  # type: ignore[misc]
        records=g.records,
    )
    return table_row(asked)


def build_table(root: str | os.PathLike[str]) -> list[TableRow]:
    """Build Table I from the run directories under ``root``.

    Only finished, intact seeds count (:func:`~manifoldwalk.experiments.rundir.is_finished`,
    :func:`~manifoldwalk.experiments.table.load_finished`). Each experiment directory gives its
    own row (:func:`~manifoldwalk.experiments.table.experiment_groups`): seeds of one
    experiment found in several directories are not merged.

    Args:
        root: An output root, an experiment directory or one seed directory.

    Returns:
        One row per experiment directory with a finished seed, in the order of
        :func:`~manifoldwalk.experiments.table.experiment_groups`.

    Raises:
        FileNotFoundError: If ``root`` does not exist or holds no finished run.
        RunDirError: An experiment directory holds seeds of different options (see
            :func:`table_row`).
    """
    groups = experiment_groups(root)
    rows = [table_row(g) for g in groups if g.finished]
    if not rows:
        raise no_finished_runs(root, groups)
    return rows
