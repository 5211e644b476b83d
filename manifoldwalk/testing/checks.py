"""Reusable property checks on walk results; each raises AssertionError saying what failed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.result import WalkResult


def level_bound(result: WalkResult, hessian_norm: float, grad_norm: float | None = None) -> float:
    """The documented bound on |L − L0| over every point a walk visits.

    The on-level tolerance (``result.tolerance``) plus the second-order excursion of the longest
    predictor step taken, ½·η_max²·‖∇²L‖, where ``hessian_norm`` bounds the
    loss Hessian's spectral norm along the path. With drift compensation
    (``drift_gain > 0``) a predictor step also moves by up to ``drift_cap``·η off the
    tangent plane, so the step is up to (1 + cap)·η long and its first-order change
    of L is up to cap·η·``grad_norm`` (a bound on ‖∇L‖ at on-level points).

    Raises:
        ValueError: a drift-compensated walk without ``grad_norm``.
    """
    tol = result.tolerance
    eta = result.max_predictor_step
    if not result.options.get("drift_gain"):
        return tol + 0.5 * eta**2 * hessian_norm
    if grad_norm is None:
        raise ValueError("a drift-compensated walk's level bound needs grad_norm.")
    cap = result.options["drift_cap"]
    return tol + cap * eta * grad_norm + 0.5 * ((1 + cap) * eta) ** 2 * hessian_norm


def check_level_kept(
    result: WalkResult, hessian_norm: float, grad_norm: float | None = None
) -> None:
    """|L − L0| stayed within :func:`level_bound` at every point, and the end is on level."""
    bound = level_bound(result, hessian_norm, grad_norm)
    assert result.max_deviation <= bound, (
        f"max |L - L0| = {result.max_deviation:.3g} exceeds the bound {bound:.3g} "
        f"(longest predictor step {result.max_predictor_step:.3g})"
    )
    final = abs(result.loss - result.level)
    assert final <= result.tolerance * (1 + 1e-9), (
        f"the final point is off the level set: |L - L0| = {final:.3g} > {result.tolerance:.3g}"
    )


def reg_slack(result: WalkResult, lagrangian_hessian_norm: float) -> float:
    """How much R may rise between consecutive on-level points without a wrong step.

    Two on-level points may differ in L by up to twice the tolerance b, which moves R by up to
    2·|λ|·b (λ = dR/dL across level sets, the largest recorded); and a predictor
    step of length η changes R by its first-order decrease plus up to
    ½·η²·‖∇²R + λ∇²L‖, which near a turning point can outweigh it.
    """
    lam = float(np.max(np.abs(result.history["lam"])))
    eta = result.max_predictor_step
    return 2.0 * lam * result.tolerance + 0.5 * eta**2 * lagrangian_hessian_norm


def check_reg_decreasing(result: WalkResult, slack: float = 0.0) -> None:
    """R at recorded on-level points never rises until the predictor first turns back (> 90°).

    Needs a walk with ``Record(every=1)``; ``slack`` admits rises up to that size
    (:func:`reg_slack` gives the bound for finite steps and a finite τ).
    """
    reg, turn = result.history["reg"], result.history["turn"]
    reversals = np.nonzero(turn > 90.0)[0]
    stop = reversals[0] if len(reversals) else len(reg)
    rises = np.diff(reg[:stop])
    assert np.all(rises <= slack), (
        f"R rose by {rises.max():.3g} (> {slack:.3g}) before the first reversal at record {stop}"
    )


def check_stationary(result: WalkResult, kkt_tol: float) -> None:
    """The walk stopped as converged (stationary or stalled), not by budget or failure."""
    assert result.stop_reason in ("stationary", "stalled"), (
        f"the walk stopped by {result.stop_reason!r} ({result.message}), not by stationarity"
    )
    if result.stop_reason == "stationary":
        assert result.kkt <= kkt_tol, f"KKT residual {result.kkt:.3g} > {kkt_tol:.3g}"


def check_reaches(result: WalkResult, solution: Any, tol: float) -> None:
    """The end point is within ``tol`` of ``solution`` (Euclidean distance)."""
    err = float(np.linalg.norm(to_numpy(result.theta) - np.asarray(solution)))
    assert err <= tol, f"end point is {err:.3g} from the solution (> {tol:.3g}); {result!r}"


def check_backends_agree(
    run: Callable[[Any], WalkResult],
    theta0: np.ndarray,
    converters: Sequence[Callable[[np.ndarray], Any]],
    atol: float = 1e-8,
) -> list[WalkResult]:
    """Run the same walk from the same start in several array types and compare paths.

    Args:
        run: θ0 ↦ WalkResult, with ``Record(every=1)`` so every on-level point is recorded.
        theta0: the start as a numpy array.
        converters: each turns a numpy array into another array type (torch, jax, ...).
        atol: allowed difference of final θ and of the recorded L and R.

    Returns:
        The results, in the order of ``converters``.
    """
    results = [run(convert(theta0.copy())) for convert in converters]
    ref = results[0]
    for other in results[1:]:
        for column in ("n_predictor", "n_corrector"):
            a, b = ref.history[column], other.history[column]
            assert len(a) == len(b) and np.array_equal(a, b), (
                f"step sequences differ ({column}): {len(a)} vs {len(b)} records"
            )
        diff = np.max(np.abs(to_numpy(ref.theta) - to_numpy(other.theta)))
        assert diff <= atol, f"final θ differ by {diff:.3g} (> {atol:.3g})"
        for column in ("loss", "reg"):
            d = np.max(np.abs(ref.history[column] - other.history[column]))
            assert d <= atol, f"recorded {column} differ by {d:.3g}"
    return results
