"""The blocks of an experiment's report: what was plotted, the Table I row, the figures, the
endpoint table, the configuration and the environment (rendered by
:mod:`~manifoldwalk.plots.report`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from manifoldwalk.experiments.table import format_table
from manifoldwalk.plots.report import Block, config_text, environment
from manifoldwalk.plots.runs import ExperimentRuns

__all__ = ["report_blocks"]


def _header(exp: ExperimentRuns, result: Any) -> list[Block]:
    n = len(exp.seeds)
    unfinished = (
        f"; {len(exp.unfinished)} unfinished seed directories not counted" if exp.unfinished else ""
    )
    blocks = [
        Block("h1", f"{exp.label}: report"),
        Block(
            "p",
            f"{n} finished seed{'s' if n != 1 else ''} "
            f"({', '.join(str(s.seed) for s in exp.seeds)}){unfinished}. "
            f"Made by `manifoldwalk plot` from `{exp.seeds[0].path.parent}`.",
        ),
        *[Block("p", f"Not drawn: {note}.") for note in result.notes],
    ]
    if result.stale:
        blocks.append(
            Block(
                "p",
                "Also in this directory, left from an earlier `manifoldwalk plot` and not part "
                "of this report: " + ", ".join(f"`{p.name}`" for p in result.stale) + ".",
            )
        )
    return blocks


def _endpoints(exp: ExperimentRuns, result: Any) -> list[Block]:
    if not result.endpoints:
        return []
    avg = np.mean([r.avg_test_loss for r in result.endpoints])
    own = np.mean([r.own_test_loss for r in result.endpoints])
    verdict = "lower" if avg < own else "higher" if avg > own else "equal"
    return [
        Block("h2", "Endpoint averaging"),
        Block(
            "p",
            f"The average of the {len(exp.seeds)} walks' final θ against each seed's own final "
            f"θ, on that seed's training and test sets (§VII of the paper). Mean test loss: "
            f"{avg:.4g} at the average against {own:.4g} at the seeds' own θ ({verdict}).",
        ),
        Block("table", result.endpoints_table),
    ]


def report_blocks(
    exp: ExperimentRuns, result: Any, figures: list[Block], device: str
) -> list[Block]:
    """The report of one experiment's plots.

    Args:
        exp: The experiment.
        result: Its :class:`~manifoldwalk.plots.make.PlotResult` (notes, stale files, endpoints).
        figures: The figures' blocks, in order.
        device: Where the plots evaluated losses.

    Returns:
        The blocks, in order.
    """
    stops: dict[str, int] = {}
    for s in exp.seeds:
        stops[s.stop_reason] = stops.get(s.stop_reason, 0) + 1
    cfg = dict(exp.seeds[0].config)
    cfg["seed"] = [s.seed for s in exp.seeds]
    timing = [s.summary.get("timing", {}) for s in exp.seeds]
    walk_s = [t.get("walk_s_last_session") for t in timing if t.get("walk_s_last_session")]
    wall = (
        f". Walk wall time per seed (last run of the walk): median {np.median(walk_s):.1f} s."
        if walk_s
        else "."
    )
    versions = exp.seeds[0].summary.get("versions", {})
    devices = [str(s.config["options"].get("device", "cpu")) for s in exp.seeds]
    return [
        *_header(exp, result),
        Block("h2", "Table I row"),
        Block("table", format_table([exp.row])),
        Block("h2", "Figures"),
        *figures,
        *_endpoints(exp, result),
        Block("h2", "Configuration"),
        Block(
            "p",
            "Walk stop reasons: " + ", ".join(f"{k} ×{v}" for k, v in sorted(stops.items())) + wall,
        ),
        Block("code", config_text(cfg)),
        Block("h2", "Environment"),
        Block("code", config_text(environment(versions, devices, device))),
    ]
