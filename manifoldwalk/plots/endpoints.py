"""Endpoint averaging (the paper's §VII): the average of the seeds' final θ against each seed.

The walks of different seeds end near one another in the top principal components; the paper
asked whether their average (as in stochastic weight averaging) is a better net, and found its
loss worse. Here the average of the final weight vectors is evaluated on every seed's own
training and test sets, next to that seed's final θ.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from manifoldwalk.plots.evaluate import SeedProblem
from manifoldwalk.plots.runs import ExperimentRuns

__all__ = ["EndpointRow", "endpoint_average", "format_endpoints"]


@dataclass
class EndpointRow:
    """One seed: its final θ and the average of all seeds' final θ, on its own data.

    Attributes:
        seed: The seed.
        own_train_loss, own_test_loss, own_test_metric: At the seed's final θ.
        avg_train_loss, avg_test_loss, avg_test_metric: At the average final θ.
    """

    seed: int
    own_train_loss: float
    own_test_loss: float
    own_test_metric: float
    avg_train_loss: float
    avg_test_loss: float
    avg_test_metric: float


def endpoint_average(
    exp: ExperimentRuns, evaluators: Sequence[SeedProblem] | Callable[[int], SeedProblem]
) -> list[EndpointRow]:
    """Evaluate the average of the seeds' final θ on each seed's data, beside its own θ.

    Args:
        exp: The experiment's runs.
        evaluators: Each seed's rebuilt problem, in the order of ``exp.seeds``, or a function
            of the position in ``exp.seeds`` that returns it.

    Returns:
        One :class:`EndpointRow` per seed.
    """
    finals = [s.final_theta() for s in exp.seeds]
    average = np.mean(finals, axis=0)
    rows = []
    for i, (run, theta) in enumerate(zip(exp.seeds, finals, strict=True)):
        ev = evaluators(i) if callable(evaluators) else evaluators[i]
        own, avg = ev.test(theta), ev.test(average)
        rows.append(
            EndpointRow(
                seed=run.seed,
                own_train_loss=ev.train_loss(theta),
                own_test_loss=float(own["loss"]),
                own_test_metric=float(own[exp.metric]),
                avg_train_loss=ev.train_loss(average),
                avg_test_loss=float(avg["loss"]),
                avg_test_metric=float(avg[exp.metric]),
            )
        )
    return rows


def format_endpoints(rows: Sequence[EndpointRow], metric: str) -> str:
    """The endpoint-averaging table as Markdown, with the mean over seeds last.

    Args:
        rows: From :func:`endpoint_average`.
        metric: ``"accuracy"`` (shown in %) or ``"mse"``.

    Returns:
        The table.
    """
    k, name = (100.0, "test acc. (%)") if metric == "accuracy" else (1.0, "test MSE")
    head = (
        f"| seed | train loss, own θ | train loss, average θ | test loss, own θ | "
        f"test loss, average θ | {name}, own θ | {name}, average θ |"
    )
    lines = [head, "|" + "---|" * 7]

    def line(label: str, vals: Sequence[float]) -> str:
        t = [f"{v:.4g}" for v in vals[:4]] + [
            f"{v * k:.2f}" if k != 1 else f"{v:.4g}" for v in vals[4:]
        ]
        return f"| {label} | " + " | ".join(t) + " |"

    table = np.array(
        [
            [
                r.own_train_loss,
                r.avg_train_loss,
                r.own_test_loss,
                r.avg_test_loss,
                r.own_test_metric,
                r.avg_test_metric,
            ]
            for r in rows
        ]
    )
    for r, vals in zip(rows, table, strict=True):
        lines.append(line(str(r.seed), list(vals)))
    if len(rows) > 1:
        lines.append(line("mean", list(table.mean(axis=0))))
    return "\n".join(lines)
