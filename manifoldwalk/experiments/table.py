"""Table I from run directories: walk against weight decay, mean ± sample std over seeds.

The weight-decay λ is chosen twice from the same per-seed sweeps: on the test set, as the paper
did (which flatters the baseline), and on a validation split carved from the training data (the
honest choice). Each λ is trained on the full training set (its test metric is what is reported)
and on the remaining fit split (its validation metric is what chooses λ): select on validation,
then report the full-training-set net at that λ, the usual "select, then retrain" protocol.
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
from manifoldwalk.experiments.definitions import EXPERIMENTS, PaperRow

__all__ = ["Choice", "TableRow", "build_table", "format_table", "mean_std"]


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
class TableRow:
    """One experiment's row of Table I.

    Attributes:
        experiment: Its name.
        metric: ``"accuracy"`` (shown in %) or ``"mse"``.
        seeds: The finished seeds counted.
        unfinished: Seed directories found but not finished (not counted).
        phase1: Phase 1's test metric, mean and std.
        walk: The walk's final test metric, mean and std.
        by_test: Weight decay with λ chosen on the test set (the paper's choice).
        by_val: Weight decay with λ chosen on the validation split.
        per_lambda: λ → (mean test metric, mean validation metric) over seeds.
        wd_reg: The weight-decay regulariser used.
        paper: The paper's row, if any.
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


def _best(lams: list[float], scores: list[float], higher: bool) -> int:
    keyed = [(-s if higher else s) if np.isfinite(s) else math.inf for s in scores]
    return int(np.argmin(keyed))


def _row(name: str, summaries: list[dict], configs: list[dict], unfinished: int) -> TableRow:
    metric = summaries[0]["metric"]
    higher = metric == "accuracy"
    full: dict[float, list[float]] = defaultdict(list)
    val: dict[float, list[float]] = defaultdict(list)
    for s in summaries:
        for r in s["wd"]:
            (full if r["split"] == "full" else val)[float(r["lam"])].append(
                float(r["test_metric"] if r["split"] == "full" else r["val_metric"])
            )
    lams = sorted(full)
    test_means = [mean_std(full[lam])[0] for lam in lams]
    val_means = [mean_std(val.get(lam, []))[0] for lam in lams]
    choices = []
    for scores in (test_means, val_means):
        i = _best(lams, scores, higher)
        m, sd = mean_std(full[lams[i]])
        choices.append(Choice(lams[i], m, sd, scores[i]))
    exp = EXPERIMENTS.get(name)
    return TableRow(
        experiment=name,
        metric=metric,
        seeds=sorted(int(s["seed"]) for s in summaries),
        unfinished=unfinished,
        phase1=mean_std(s["phase1"]["test_metric"] for s in summaries),
        walk=mean_std(s["walk"]["test_metric"] for s in summaries),
        by_test=choices[0],
        by_val=choices[1],
        per_lambda={lam: (t, v) for lam, t, v in zip(lams, test_means, val_means, strict=True)},
        wd_reg=str(configs[0]["options"].get("wd_reg", "l2")),
        paper=exp.paper if exp else None,
    )


def build_table(root: str | os.PathLike[str]) -> list[TableRow]:
    """Build Table I from the run directories under ``root``.

    Only finished, intact seeds count (:func:`~manifoldwalk.experiments.rundir.is_finished`).

    Args:
        root: An output root, an experiment directory or one seed directory.

    Returns:
        One row per experiment found, in the order of
        :data:`~manifoldwalk.experiments.EXPERIMENTS`.

    Raises:
        FileNotFoundError: If ``root`` holds no finished run.
    """
    groups: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    unfinished: dict[str, int] = defaultdict(int)
    for d in rundir.seed_dirs(root):
        name = d.parent.name
        if not rundir.is_finished(d):
            unfinished[name] += 1
            continue
        groups[name].append(
            (rundir.read_json(d / "summary.json"), rundir.read_json(d / "config.json"))
        )
    if not groups:
        raise FileNotFoundError(f"no finished run directories (seed-*/DONE) under {Path(root)}")
    order = {n: i for i, n in enumerate(EXPERIMENTS)}
    return [
        _row(name, [s for s, _ in items], [c for _, c in items], unfinished[name])
        for name, items in sorted(groups.items(), key=lambda kv: order.get(kv[0], 99))
    ]


def _fmt(metric: str, mean: float, std: float) -> str:
    scale, unit = (100.0, "%") if metric == "accuracy" else (1.0, "")
    if not np.isfinite(mean):
        return "n/a"
    sd = f"{std * scale:.2f}" if np.isfinite(std) else "–"
    return f"{mean * scale:.2f} ± {sd}{unit}"


def _lam(lam: float) -> str:
    return "0" if lam == 0 else f"1e{int(round(math.log10(lam))):+d}".replace("+", "")


def format_table(rows: list[TableRow]) -> str:
    """Format Table I as Markdown, with the paper's figures beside ours.

    Args:
        rows: From :func:`build_table`.

    Returns:
        The table and a note on what each column means.
    """
    head = (
        "| experiment | seeds | phase 1 | walk | WD, λ by test | λ (test) | WD, λ by val | "
        "λ (val) | paper walk | paper WD | paper λ |"
    )
    lines = [head, "|" + "---|" * 11]
    regs = set()
    for r in rows:
        regs.add(r.wd_reg)
        p = r.paper
        paper = (
            [
                f"{p.walk:.2f} ± {p.walk_std:.2f}{'%' if r.metric == 'accuracy' else ''}",
                f"{p.wd:.2f} ± {p.wd_std:.2f}{'%' if r.metric == 'accuracy' else ''}",
                _lam(p.best_lambda),
            ]
            if p
            else ["–", "–", "–"]
        )
        name = r.experiment + (" (MSE)" if r.metric == "mse" else "")
        seeds = f"{len(r.seeds)}" + (f" (+{r.unfinished} unfinished)" if r.unfinished else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    seeds,
                    _fmt(r.metric, *r.phase1),
                    _fmt(r.metric, *r.walk),
                    _fmt(r.metric, r.by_test.mean, r.by_test.std),
                    _lam(r.by_test.lam),
                    _fmt(r.metric, r.by_val.mean, r.by_val.std),
                    _lam(r.by_val.lam),
                    *paper,
                ]
            )
            + " |"
        )
    reg_note = ", ".join(
        "l2 (all parameters, biases included: the same R as the walk)"
        if g == "l2"
        else "l2-weights (kernels only, as the authors' Keras baseline)"
        for g in sorted(regs)
    )
    lines += [
        "",
        "Test accuracy (%) or test MSE, mean ± sample std over seeds. 'λ by test': λ chosen by "
        "the mean test metric (the paper's choice, optimistic); 'λ by val': chosen by the mean "
        "metric on a validation split carved from the training data, reported for nets trained "
        f"on the full training set at that λ. Weight-decay regulariser: {reg_note}.",
    ]
    return "\n".join(lines)
