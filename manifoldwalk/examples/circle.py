"""The paper's Fig. 1: minimise x + y on the unit circle, from the top of the circle."""

from __future__ import annotations

import time

import numpy as np

from manifoldwalk import Stop
from manifoldwalk.driver import walk
from manifoldwalk.problems import Circle
from manifoldwalk.result import WalkResult

START = np.array([0.0, 1.0])
"""The paper's starting point (the black dot at the top of the circle)."""


def run_circle(
    schemes: tuple[str, ...] = ("default", "compensated", "paper", "authors"),
) -> list[tuple[str, WalkResult, float]]:
    """Walk the circle with each scheme; return (scheme, result, seconds) rows."""
    rows = []
    for name in schemes:
        start = time.perf_counter()
        result = walk(Circle(), START.copy(), scheme=name, stop=Stop(max_steps=50_000))
        rows.append((name, result, time.perf_counter() - start))
    return rows


def format_table(rows: list[tuple[str, WalkResult, float]]) -> str:
    """The rows as a plain-text table, with the exact answer underneath."""
    width = max([len("scheme")] + [len(name) for name, _, _ in rows])
    head = (
        f"{'scheme':<{width}} {'x':>9} {'y':>9} {'angle°':>9} {'kkt':>8} {'pred':>6} "
        f"{'corr':>6} {'evals':>6} {'max|L-L0|':>9} {'time s':>6}  stop reason"
    )
    lines = [head, "-" * len(head)]
    for name, r, seconds in rows:
        x, y = np.asarray(r.theta).tolist()
        lines.append(
            f"{name:<{width}} {x:>9.5f} {y:>9.5f} {r.angle:>9.4f} {r.kkt:>8.1e} {r.n_predictor:>6d} "
            f"{r.n_corrector:>6d} {r.n_grad_evals:>6d} {r.max_deviation:>9.1e} {seconds:>6.2f}  "
            f"{r.stop_reason}"
        )
    exact = Circle().solution(1.0)
    lines.append(f"exact minimiser: ({exact[0]:.5f}, {exact[1]:.5f}), angle 180°")
    return "\n".join(lines)
