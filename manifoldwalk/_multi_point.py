"""What a k-constraint walk computes at one point: the losses and Jacobian, the Gram
decomposition, the tangent part of the direction of interest, the corrector step, the record.

Vectors of length P stay in θ's array type and device; k-vectors and k×k matrices go to the
host in float64 (:mod:`manifoldwalk._gram`). No P×P matrix is ever formed.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from manifoldwalk._array import (
    DEG,
    Array,
    angle_between,
    dot,
    namespace,
    to_host,
    to_like,
    to_numpy,
)
from manifoldwalk._gram import Gram
from manifoldwalk.directions import Direction
from manifoldwalk.step import as_scalar


class MultiPoint(NamedTuple):
    """One evaluation of a k-constraint problem.

    Attributes:
        theta: the point.
        losses: L(θ), shape (k,), as the problem returned it.
        jacobian: J(θ), shape (k, P), as the problem returned it.
        host_losses: L(θ) on the host, float64.
        gram: the decomposition of J Jᵀ, or None where L or J is not finite.
    """

    theta: Array
    losses: Array
    jacobian: Array
    host_losses: np.ndarray
    gram: Gram | None

    @property
    def finite(self) -> bool:
        """Whether L and J are finite (J through its Gram matrix)."""
        return self.gram is not None


class Tangent(NamedTuple):
    """The direction of interest r at an on-level point and its tangent part d = r − Jᵀμ.

    Attributes:
        d: the tangent part (θ's array type), orthogonal to every ∇L_i.
        d_norm: ‖d‖.
        stationarity: ‖d‖/‖r‖ (0 for r = 0): the KKT residual for r = −∇R.
        cos: the cosine between d and the previous unit predictor direction (0 before one).
        finite: whether r (and so ∇R, for the directions that read it) was finite.
    """

    d: Array
    d_norm: float
    stationarity: float
    cos: float
    finite: bool


def gram_matrix(xp: Any, jacobian: Array) -> Array:
    """J Jᵀ on J's device: one (k, P) × (P, k) product (k row products where the namespace
    has no ``permute_dims``)."""
    permute = getattr(xp, "permute_dims", None)
    if permute is not None:
        return xp.matmul(jacobian, permute(jacobian, (1, 0)))
    return xp.stack([xp.matmul(jacobian, jacobian[i]) for i in range(jacobian.shape[0])])


def evaluate(problem: Any, theta: Array) -> MultiPoint:
    """Evaluate the losses and the Jacobian at θ and decompose their Gram matrix (one host
    copy of k² + k numbers; none where θ already lives on the host: numpy, CPU tensors).

    Args:
        problem: a k-constraint problem (``losses_and_jacobian``).
        theta: the point.

    Returns:
        The :class:`MultiPoint` (its ``gram`` None where L or J is not finite).
    """
    losses, jacobian = problem.losses_and_jacobian(theta)
    xp = namespace(theta)
    gram = gram_matrix(xp, jacobian)
    if _on_host(gram):
        # read in place, one by one: cheaper than packing them into one array first
        host_gram = np.asarray(to_numpy(gram), dtype=np.float64)
        host_losses = np.asarray(to_numpy(losses), dtype=np.float64)
    else:
        k = int(losses.shape[0])
        packed = xp.concat([xp.reshape(gram, (-1,)), xp.astype(losses, gram.dtype)])
        host = np.asarray(to_numpy(packed), dtype=np.float64)
        host_gram, host_losses = host[: k * k].reshape(k, k), host[k * k :]
    finite = bool(np.isfinite(host_gram).all() and np.isfinite(host_losses).all())
    decomposed = Gram.of(host_gram) if finite else None
    return MultiPoint(theta, losses, jacobian, host_losses, decomposed)


def _on_host(x: Array) -> bool:
    """Whether ``x`` lives in host memory (a numpy array or a CPU tensor): reading it needs no
    device synchronisation."""
    if array_api_compat.is_torch_array(x):
        return x.device.type == "cpu"
    return array_api_compat.is_numpy_array(x)


def _combine(xp: Any, weights: np.ndarray, point: MultiPoint) -> Array:
    """Jᵀw = Σ w_i ∇L_i for host weights w, in θ's array type."""
    w = to_like(xp, weights, point.theta, point.theta.dtype)
    return xp.matmul(w, point.jacobian)


def _minus_combination(xp: Any, base: Array, weights: np.ndarray, point: MultiPoint) -> Array:
    """``base`` − Jᵀw for host weights w, in θ's array type: on torch tensors one fused
    product-and-subtract (``addmv``), which reads J and ``base`` once and writes once; P-long
    passes over memory are what the step's algebra costs beside the gradients."""
    if array_api_compat.is_torch_array(base):
        # new_tensor: θ's dtype and device in one call (to_like asks for the device first)
        w = point.theta.new_tensor(weights)
        return base.addmv(point.jacobian.mT, w, alpha=-1)
    w = to_like(xp, weights, point.theta, point.theta.dtype)
    return base - xp.matmul(w, point.jacobian)


def moved(theta: Array, d: Array, scale: float) -> Array:
    """θ + scale·d, in θ's array type (one fused pass on torch tensors)."""
    if array_api_compat.is_torch_array(theta):
        return theta.add(d, alpha=scale)
    return theta + d * scale


def tangent(
    problem: Any,
    direction: Direction,
    point: MultiPoint,
    count: Array,
    previous: Array | None,
    previous_length: float = 1.0,
) -> Tangent:
    """The tangent part of the direction of interest at an on-level point.

    Args:
        problem: the problem (its ``reg_grad`` feeds the direction).
        direction: the direction of interest.
        point: the point, with a non-singular Gram matrix.
        count: predictor steps taken so far, the direction's step index (a 0-d integer
            array on θ's device: ``zero_count(θ) + n``).
        previous: the direction of the last predictor step (any positive multiple of its
            unit direction: the walk keeps that step's d), or None before the first.
        previous_length: ‖previous‖.

    Returns:
        The :class:`Tangent`.
    """
    theta = point.theta
    xp = namespace(theta)
    r = direction(theta, problem.reg_grad(theta), count)
    jr = np.asarray(to_numpy(xp.matmul(point.jacobian, r)), dtype=np.float64)
    if not np.isfinite(jr).all():
        return Tangent(r, float("nan"), float("nan"), 0.0, False)
    mu = point.gram.solve(jr)
    d = _minus_combination(xp, r, mu, point)
    if previous is None:
        (dd,), d_prev = to_host(dot(xp, d, d)), 0.0
    else:
        dd, d_prev = to_host(dot(xp, d, d), dot(xp, d, previous))
    # ‖r‖² = ‖d‖² + ‖Jᵀμ‖² = ‖d‖² + μ·Jr (orthogonal parts, both non-negative: no cancellation)
    rr = dd + max(float(mu @ jr), 0.0)
    if not (math.isfinite(dd) and math.isfinite(rr)):
        return Tangent(d, float("nan"), float("nan"), 0.0, False)
    d_norm = math.sqrt(dd)
    stationarity = d_norm / math.sqrt(rr) if rr > 0 else 0.0
    cos = d_prev / (d_norm * previous_length) if d_norm > 0 and previous_length > 0 else 0.0
    return Tangent(d, d_norm, stationarity, cos, True)


def correction(point: MultiPoint, levels: np.ndarray) -> Array:
    """The Gauss–Newton minimum-norm corrector step δ = −Jᵀ G⁻¹ (L − c).

    Args:
        point: the point, with a non-singular Gram matrix.
        levels: c, the levels, float64 (k,).

    Returns:
        δ in θ's array type.
    """
    mu = point.gram.solve(point.host_losses - levels)
    return _combine(namespace(point.theta), -mu, point)


def corrected(point: MultiPoint, levels: np.ndarray) -> Array:
    """θ + δ, the point the Gauss–Newton corrector step (:func:`correction`) moves to.

    Args:
        point: the point, with a non-singular Gram matrix.
        levels: c, the levels, float64 (k,).

    Returns:
        θ + δ in θ's array type.
    """
    mu = point.gram.solve(point.host_losses - levels)
    return _minus_combination(namespace(point.theta), point.theta, mu, point)


def describe(
    problem: Any,
    point: MultiPoint,
    levels: np.ndarray,
    counts: dict[str, int],
    eta_p: float,
    d: Array,
    previous: Array | None,
    weights: np.ndarray | None = None,
) -> dict[str, float]:
    """The history record of an on-level point (see :func:`manifoldwalk.multi.history_columns`).

    Args:
        problem: the problem (R and ∇R).
        point: the point.
        levels: the levels c.
        counts: ``step``, ``n_predictor``, ``n_corrector``, ``n_grad_evals``.
        eta_p: the last predictor step size.
        d: the tangent part of the direction of interest at the point.
        previous: the direction of the last predictor step (any positive multiple of its
            unit direction), or None before the first.
        weights: w for the ``loss`` column, Σ_i w_i L_i (None: no such column).

    Returns:
        The record, a dict of floats (counts as ints).
    """
    theta = point.theta
    xp = namespace(theta)
    gr = problem.reg_grad(theta)
    jg = np.asarray(to_numpy(xp.matmul(point.jacobian, gr)), dtype=np.float64)
    lam = -point.gram.solve(jg)  # ∇R + Jᵀλ is ∇R's part orthogonal to every ∇L_i
    residual = gr + _combine(xp, lam, point)
    values = [
        xp.sqrt(dot(xp, residual, residual)),
        xp.sqrt(dot(xp, gr, gr)),
        as_scalar(problem.reg(theta), theta),
    ]
    if previous is not None:
        values.append(angle_between(xp, d, previous) * DEG)
    res_norm, gr_norm, reg, *turn = to_host(*values)
    along = math.sqrt(max(-float(lam @ jg), 0.0))  # ‖Jᵀλ‖² = λᵀGλ = −λ·J∇R
    deviations = np.abs(point.host_losses - levels)
    row: dict[str, float] = dict(counts)
    row.update(
        deviation=float(deviations.max()),
        reg=float(reg),
        angle=math.atan2(res_norm, along) * DEG,
        kkt=res_norm / gr_norm if gr_norm > 0 else 0.0,
        eta_p=float(eta_p),
        eta_c=0.0,
        turn=float(turn[0]) if turn else 0.0,
    )
    if weights is not None:
        row["loss"] = float(weights @ point.host_losses)
    for i, loss in enumerate(point.host_losses):
        row[f"loss_{i}"] = float(loss)
    for i, dev in enumerate(deviations):
        row[f"deviation_{i}"] = float(dev)
    for i, value in enumerate(lam):
        row[f"lam_{i}"] = float(value)
    return row
