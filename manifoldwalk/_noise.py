"""How precisely a problem's loss can be evaluated near a point: its floating-point noise.

Two points a few ulps apart have losses that differ by their linear change ∇L·δ plus the
rounding of the evaluation, which follows no smooth law (a different order of partial sums, a
log-sum-exp that rounds otherwise). The walk compares L at every point with L0 computed the
same way, so what limits how level it can stay is that rounding, not the systematic error of the
loss (which cancels): a level tolerance below it cannot be met. :func:`loss_noise` measures it
from a few perturbations of θ by a few ulps, with their linear change removed.
"""

from __future__ import annotations

import numpy as np

from manifoldwalk._array import Array, namespace, to_host, to_like, to_numpy
from manifoldwalk.problem import Problem, loss_and_grad_of
from manifoldwalk.step import as_scalar

NOISE_SAMPLES = 4
"""Perturbations :func:`loss_noise` evaluates (not counted as the walk's gradient evaluations)."""


def loss_noise(
    problem: Problem, theta: Array, loss: float, grad: Array, samples: int = NOISE_SAMPLES
) -> float:
    """The floating-point noise of ``problem.loss`` near ``theta``.

    Each sample moves every coordinate of θ by 4 ulps of its own size (at least 4 ulps of the
    largest, for zeros) with a random sign (a fixed seed), evaluates L there and removes the
    linear change ∇L·δ (in float64 on the host): what is left is rounding.

    Args:
        problem: the problem.
        theta: the point (θ0).
        loss: L(θ) as a float.
        grad: ∇L(θ), as the problem returned it.
        samples: how many perturbations to evaluate.

    Returns:
        The largest |L(θ + δ) − L(θ) − ∇L·δ| over the samples (0 for an exact evaluation).
    """
    host = np.asarray(to_numpy(theta), dtype=np.float64)
    dtype = np.asarray(to_numpy(theta)).dtype
    eps = float(np.finfo(dtype).eps)
    g = np.asarray(to_numpy(grad), dtype=np.float64)
    size = np.maximum(np.abs(host), np.max(np.abs(host), initial=0.0) * 1e-3 + np.finfo(dtype).tiny)
    rng = np.random.default_rng(20261205)
    xp = namespace(theta)
    loss_of = getattr(problem, "loss", None)
    if not callable(loss_of):  # a problem may offer only the fused evaluation
        fused = loss_and_grad_of(problem)
        loss_of = lambda t: fused(t)[0]  # noqa: E731
    worst = 0.0
    for _ in range(samples):
        signs = rng.choice([-1.0, 1.0], size=host.shape)
        moved_host = (host + 4 * eps * size * signs).astype(dtype)
        delta = moved_host.astype(np.float64) - host
        moved = to_like(xp, moved_host, theta, theta.dtype)
        (value,) = to_host(as_scalar(loss_of(moved), moved))  # a Python float is a loss too
        worst = max(worst, abs(float(value) - loss - float(g @ delta)))
    return worst
