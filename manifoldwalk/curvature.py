"""Curvature of the training loss: top Hessian eigenvalues (Lanczos) and the trace (Hutchinson).

Both work from Hessian-vector products alone, never forming the P×P Hessian, on θ's own array
type and device (numpy, torch, JAX, TensorFlow through the adapters' namespaces). A problem
offers them through an optional method ``hvp(theta, v) -> ∇²L(θ)·v`` (the analytic problems
and the three adapters have it); without one, ``finite_difference=True`` takes central
differences of the gradient instead (approximate: about the cube root of the dtype's
precision, relative).

Each function measures either the full Hessian H or, with ``tangent=True``, its restriction to
the level set's tangent space at θ, P·H·P with P = I − ĝĝᵀ (ĝ = ∇L/|∇L|): the curvature the walk
sees along the directions it can move in. On the tangent space the direction ĝ itself is left
out (the operator acts on the P − 1 dimensional subspace), so its eigenvalues are those of the
walk's directions only.

Example::

    from manifoldwalk import curvature

    top = curvature.top_eigenvalues(problem, theta, k=3, tangent=True)
    trace = curvature.hessian_trace(problem, theta, n_samples=50)
    record = mw.Record(metrics={"sharpness": curvature.sharpness(problem, tangent=True)})
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from manifoldwalk._array import Array, dot, namespace, to_host, to_like, to_numpy
from manifoldwalk.problem import ProblemError, grad_of

__all__ = [
    "Eigenvalues",
    "TraceEstimate",
    "hessian_trace",
    "hvp_function",
    "sharpness",
    "top_eigenvalues",
]

HVP = Callable[[Array], Array]
"""v ↦ ∇²L(θ)·v at one θ."""


def hvp_function(problem: Any, theta: Array, *, finite_difference: bool = False) -> HVP:
    """The Hessian-vector product v ↦ ∇²L(θ)·v of ``problem`` at ``theta``.

    Args:
        problem: a Problem; its ``hvp(theta, v)`` is used where it has one.
        theta: the point, in the problem's array type.
        finite_difference: without a ``hvp`` method, use central differences of the gradient,
            (∇L(θ + εv) − ∇L(θ − εv)) / 2ε with ε = ∛(machine ε)·(1 + |θ|)/|v|: two gradient
            evaluations a product, accurate to about ∛(machine ε) relative (1e-5 in float64,
            5e-3 in float32).

    Returns:
        A function of one vector ``v`` (θ's shape, type and device) returning ∇²L(θ)·v.

    Raises:
        ProblemError: the problem has no ``hvp`` and ``finite_difference`` is False, or (without
            ``hvp``) no gradient of one loss: neither ``grad`` nor ``loss_and_grad`` (a
            k-constraint stack).
    """
    exact = getattr(problem, "hvp", None)
    if callable(exact):
        return lambda v: exact(theta, v)
    grad = grad_of(problem)  # a problem without one loss (a stack of several) is refused here
    if not finite_difference:
        raise ProblemError(
            f"{type(problem).__name__} has no hvp(theta, v) method for Hessian-vector "
            "products; pass finite_difference=True to use central differences of the gradient "
            "(approximate), or give the problem an hvp method."
        )
    xp = namespace(theta)
    eps = float(np.finfo(np.asarray(to_numpy(theta)).dtype).eps)
    scale = eps ** (1.0 / 3.0) * (1.0 + _norm(xp, theta))

    def fd_hvp(v: Array) -> Array:
        h = scale / max(_norm(xp, v), 1e-300)
        return (grad(theta + h * v) - grad(theta - h * v)) / (2.0 * h)

    return fd_hvp


@dataclass(frozen=True)
class Eigenvalues:
    """The largest eigenvalues of the Hessian (or of its tangent-space restriction).

    Attributes:
        values: the k largest eigenvalues (algebraically), in decreasing order.
        residuals: |H·u − λu| of each Ritz pair (u of unit norm): a bound on how far each value
            is from an eigenvalue of the operator.
        n_hvp: Hessian-vector products used.
        converged: every residual ≤ ``tol``·max(|λ₁|, tiny) (or the Krylov space became
            invariant: the values are exact to rounding).
        tangent: whether the operator was restricted to the level set's tangent space.
    """

    values: np.ndarray
    residuals: np.ndarray
    n_hvp: int
    converged: bool
    tangent: bool


@dataclass(frozen=True)
class TraceEstimate:
    """The trace of the Hessian (or of its tangent-space restriction).

    Attributes:
        value: the estimate (exact to rounding when ``exact``).
        stderr: the standard error of a Hutchinson estimate (0 when ``exact``).
        n_hvp: Hessian-vector products used.
        exact: whether the trace was summed over a basis rather than estimated.
        tangent: whether the operator was restricted to the level set's tangent space.
    """

    value: float
    stderr: float
    n_hvp: int
    exact: bool
    tangent: bool


def _norm(xp: Any, v: Array) -> float:
    return math.sqrt(to_host(dot(xp, v, v))[0])


class _Operator:
    """H or P·H·P at one θ, with the projection the tangent space needs."""

    def __init__(self, problem: Any, theta: Array, tangent: bool, finite_difference: bool):
        self.xp = namespace(theta)
        self.theta = theta
        self.hvp = hvp_function(problem, theta, finite_difference=finite_difference)
        self.n_hvp = 0
        self.unit_grad: Array | None = None
        self.dim = int(np.prod(tuple(theta.shape)))
        if tangent:
            grad = grad_of(problem)(theta)
            g_norm = _norm(self.xp, grad)
            if not g_norm > 0.0 or not math.isfinite(g_norm):
                raise ProblemError(
                    f"the tangent space at θ is undefined: |∇L(θ)| = {g_norm}; measure the "
                    "full Hessian (tangent=False) at a stationary point."
                )
            self.unit_grad = grad / g_norm
            self.dim -= 1

    def project(self, v: Array) -> Array:
        if self.unit_grad is None:
            return v
        return v - dot(self.xp, self.unit_grad, v) * self.unit_grad

    def __call__(self, v: Array) -> Array:
        self.n_hvp += 1
        return self.project(self.hvp(self.project(v)))

    def random(self, rng: np.random.Generator, rademacher: bool = False) -> Array:
        shape = tuple(self.theta.shape)
        host = rng.choice([-1.0, 1.0], shape) if rademacher else rng.standard_normal(shape)
        v = to_like(self.xp, host, self.theta, self.theta.dtype)
        return self.project(v)


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}.")
    return int(value)


def top_eigenvalues(
    problem: Any,
    theta: Array,
    k: int = 1,
    *,
    tangent: bool = False,
    block: int | None = None,
    max_iter: int | None = None,
    tol: float = 1e-6,
    seed: int = 0,
    finite_difference: bool = False,
) -> Eigenvalues:
    """The k largest eigenvalues of ∇²L(θ) by block Lanczos with full reorthogonalisation.

    The Krylov space grows by ``block`` Hessian-vector products a step from as many random
    vectors; the Ritz values of the Hessian projected on it approximate its largest eigenvalues.
    An eigenvalue of multiplicity up to ``block`` is found as often as it repeats (a
    single-vector Lanczos finds each distinct eigenvalue once). When the space stops growing (it
    holds an invariant subspace: small problems), it restarts from new random vectors
    orthogonal to it, so that on a problem smaller than ``max_iter`` the whole spectrum is
    found exactly.

    Args:
        problem: a Problem with ``hvp(theta, v)`` (see :func:`hvp_function`).
        theta: the point, in the problem's array type.
        k: how many eigenvalues (≥ 1, at most the operator's dimension).
        tangent: restrict to the level set's tangent space at θ (∇L projected out).
        block: vectors per Krylov step (default ``k``).
        max_iter: the Krylov space's dimension at most, i.e. Hessian-vector products (default
            min(dimension, max(2k + 30, 60))); the space keeps that many vectors of θ's size.
        tol: stop once every Ritz residual is ≤ ``tol``·max(|λ₁|, tiny).
        seed: the random starting vectors' seed.
        finite_difference: see :func:`hvp_function`.

    Returns:
        :class:`Eigenvalues` (the values on the host as float64).

    Raises:
        ValueError: a bad ``k``, ``block``, ``max_iter`` or ``tol``.
        ProblemError: no Hessian-vector product; or ``tangent`` at a point where ∇L = 0.
    """
    op = _Operator(problem, theta, tangent, finite_difference)
    k = _check_count("k", k)
    if k > op.dim:
        raise ValueError(f"k = {k} exceeds the operator's dimension {op.dim}.")
    b = min(_check_count("block", k if block is None else block), op.dim)
    m_max = min(op.dim, max(2 * k + 30, 60)) if max_iter is None else max_iter
    m_max = min(_check_count("max_iter", m_max, low=k), op.dim)
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}.")
    xp = op.xp
    rng = np.random.default_rng(seed)
    basis: list[Array] = []
    t = np.zeros((m_max, m_max))
    new, _ = _orthonormalise(xp, [op.random(rng) for _ in range(b)], basis)
    while True:
        start = len(basis)
        new = new[: m_max - start]
        basis.extend(new)
        m = len(basis)
        stacked = xp.stack(basis)
        remainders = []
        for j, q in enumerate(new):
            w = op(q)
            # the projected matrix's column and, twice ("twice is enough"), the remainder
            for _ in range(2):
                coef = xp.matmul(stacked, w)
                t[:m, start + j] += np.asarray(to_numpy(coef), dtype=np.float64)
                w = w - xp.matmul(coef, stacked)
            remainders.append(w)
        # the new columns' dot products fill their rows too (older columns never saw them)
        t[start:m, :start] = t[:start, start:m].T
        t[start:m, start:m] = 0.5 * (t[start:m, start:m] + t[start:m, start:m].T)
        vals, vecs = np.linalg.eigh(t[:m, :m])
        order = np.argsort(vals)[::-1][:k]
        values = vals[order]
        scale = max(float(np.max(np.abs(vals))), np.finfo(np.float64).tiny)
        new, coupling = _orthonormalise(xp, remainders, basis, drop=1e-10 * scale)
        # H·(basis)·s − λ·(basis)·s is the remainders' part: the next vectors times coupling
        residuals = np.linalg.norm(coupling @ vecs[start:m, order], axis=0)
        if m >= m_max:
            break
        if not new:  # an invariant subspace: go on in its complement
            new, _ = _orthonormalise(xp, [op.random(rng) for _ in range(b)], basis)
            if not new:
                break
            continue
        if m >= k and np.all(residuals <= tol * max(abs(values[0]), 1e-300)):
            break
    converged = bool(len(values) == k and np.all(residuals <= tol * max(abs(values[0]), 1e-300)))
    return Eigenvalues(values, residuals, op.n_hvp, converged or m == op.dim, tangent)


def _orthonormalise(
    xp: Any, vectors: list[Array], basis: list[Array], drop: float = 1e-10
) -> tuple[list[Array], np.ndarray]:
    """``vectors`` made orthonormal to ``basis`` and to each other (Gram–Schmidt, twice).

    Returns the new orthonormal vectors and the coefficients C with vectors[j] = Σᵢ C[i, j]·new[i]
    (their part outside ``basis``); a vector whose remaining norm is ≤ ``drop`` adds none.
    """
    accepted: list[Array] = []
    coef = np.zeros((len(vectors), len(vectors)))
    for j, v in enumerate(vectors):
        for _ in range(2):
            for u in basis:
                v = v - dot(xp, u, v) * u
            for i, u in enumerate(accepted):
                c = to_host(dot(xp, u, v))[0]
                coef[i, j] += c
                v = v - c * u
        nrm = _norm(xp, v)
        if nrm > drop:
            coef[len(accepted), j] = nrm
            accepted.append(v / nrm)
    return accepted, coef[: len(accepted)]


def hessian_trace(
    problem: Any,
    theta: Array,
    *,
    tangent: bool = False,
    n_samples: int = 100,
    exact: bool = False,
    seed: int = 0,
    finite_difference: bool = False,
) -> TraceEstimate:
    """The trace of ∇²L(θ): Hutchinson's estimate E[zᵀHz] over Rademacher z, or exact.

    Args:
        problem: a Problem with ``hvp(theta, v)`` (see :func:`hvp_function`).
        theta: the point, in the problem's array type.
        tangent: the trace of P·H·P, P projecting ∇L out (tr H − ĝᵀHĝ).
        n_samples: Hutchinson samples (each one Hessian-vector product).
        exact: sum eᵢᵀ(P)H(P)eᵢ over the coordinate basis instead (θ's size products; for
            small problems and tests).
        seed: the samples' seed.
        finite_difference: see :func:`hvp_function`.

    Returns:
        :class:`TraceEstimate`.

    Raises:
        ValueError: a bad ``n_samples``.
        ProblemError: no Hessian-vector product; or ``tangent`` at a point where ∇L = 0.
    """
    op = _Operator(problem, theta, tangent, finite_difference)
    xp = op.xp
    if exact:
        eye = np.eye(int(np.prod(tuple(theta.shape))))
        total = 0.0
        for row in eye:
            e = to_like(xp, row.reshape(tuple(theta.shape)), theta, theta.dtype)
            total += to_host(dot(xp, op.project(e), op(e)))[0]
        return TraceEstimate(total, 0.0, op.n_hvp, True, tangent)
    n = _check_count("n_samples", n_samples)
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    for i in range(n):
        z = op.random(rng, rademacher=True)
        samples[i] = to_host(dot(xp, z, op(z)))[0]
    stderr = float(samples.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return TraceEstimate(float(samples.mean()), stderr, op.n_hvp, False, tangent)


def sharpness(
    problem: Any, *, tangent: bool = True, k: int = 1, **options: Any
) -> Callable[[Array], float]:
    """A walk metric: θ ↦ the largest Hessian eigenvalue at θ (:func:`top_eigenvalues`).

    Use it as ``Record(metrics={"sharpness": sharpness(problem)})``; each record costs a
    Lanczos run (tens of Hessian-vector products), so record sparsely (``Record(every=…)``).

    Args:
        problem: a Problem with ``hvp(theta, v)``.
        tangent: on the level set's tangent space (the default: the curvature the walk sees).
        k: the k-th largest eigenvalue is reported (1: the largest).
        **options: passed to :func:`top_eigenvalues` (``max_iter``, ``tol``, ``seed``,
            ``finite_difference``).

    Returns:
        A function of θ returning a float.
    """
    _check_count("k", k)

    def metric(theta: Array) -> float:
        return float(top_eigenvalues(problem, theta, k, tangent=tangent, **options).values[-1])

    return metric
