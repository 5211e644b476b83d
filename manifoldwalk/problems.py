"""Analytic constrained problems with known answers.

Each is a :class:`~manifoldwalk.Problem` whose "loss" L is a quadratic constraint
function and whose "regulariser" R is the objective, so that walking the level set
{L = level} while lowering R solves  min R(x) s.t. L(x) = level.  They work on
numpy, torch and jax arrays alike (constants are converted once per array type
and device), and know their exact constrained minimiser where one has a closed
form, so the engine can be tested against exact answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from manifoldwalk._array import Array, device_of, namespace


class _Constants:
    """Numpy constants converted to each array type, dtype and device once, then reused."""

    def __init__(self, **arrays: np.ndarray) -> None:
        self._np = arrays
        self._cache: dict[tuple, Array] = {}

    def get(self, name: str, like: Array) -> Array:
        try:
            key = (name, type(like), like.dtype, like.device)
            return self._cache[key]
        except KeyError:
            pass
        except Exception:  # a traced jax value has no device: build a constant, do not cache it
            key = None
        xp = namespace(like)
        dev = device_of(like)
        kwargs = {} if dev is None else {"device": dev}
        value = xp.asarray(self._np[name], dtype=like.dtype, **kwargs)
        if key is not None:
            self._cache[key] = value
        return value


def _check_spd_shape(A: np.ndarray) -> None:
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {A.shape}.")
    if not np.allclose(A, A.T, rtol=1e-12, atol=1e-12):
        raise ValueError("A must be symmetric.")


class Quadric:
    """L(x) = xᵀAx + bᵀx (the constraint), R(x) = cᵀx (the objective).

    Args:
        A: symmetric (n, n) matrix; positive definite for :meth:`solution`.
        b: linear term of L (default zero).
        c: objective vector (default all ones).

    Raises:
        ValueError: on mismatched shapes, a non-symmetric A or a zero c.
    """

    def __init__(self, A: Any, b: Any = None, c: Any = None) -> None:
        A = np.asarray(A, dtype=np.float64)
        _check_spd_shape(A)
        n = A.shape[0]
        b = np.zeros(n) if b is None else np.asarray(b, dtype=np.float64)
        c = np.ones(n) if c is None else np.asarray(c, dtype=np.float64)
        if b.shape != (n,) or c.shape != (n,):
            raise ValueError(f"b and c must have shape ({n},), got {b.shape} and {c.shape}.")
        if not np.any(c):
            raise ValueError("c must be non-zero: a zero objective has no minimiser to find.")
        self.A, self.b, self.c = A, b, c
        self._k = _Constants(A=A, b=b, c=c)

    @property
    def dim(self) -> int:
        """Number of variables n."""
        return self.A.shape[0]

    def loss(self, x: Array) -> Array:
        """L(x) = xᵀAx + bᵀx."""
        return self.loss_and_grad(x)[0]

    def grad(self, x: Array) -> Array:
        """∇L(x) = 2Ax + b."""
        return self.loss_and_grad(x)[1]

    def loss_and_grad(self, x: Array) -> tuple[Array, Array]:
        """L(x) and ∇L(x) with one matrix-vector product."""
        xp = namespace(x)
        Ax = xp.matmul(self._k.get("A", x), x)
        b = self._k.get("b", x)
        return xp.sum(x * Ax) + xp.sum(b * x), 2.0 * Ax + b

    def reg(self, x: Array) -> Array:
        """R(x) = cᵀx."""
        xp = namespace(x)
        return xp.sum(self._k.get("c", x) * x)

    def reg_grad(self, x: Array) -> Array:
        """∇R(x) = c."""
        xp = namespace(x)
        return xp.zeros_like(x) + self._k.get("c", x)

    def hvp(self, x: Array, v: Array) -> Array:
        """∇²L(x)·v = 2Av (the Hessian-vector product :mod:`manifoldwalk.curvature` uses)."""
        xp = namespace(x)
        return 2.0 * xp.matmul(self._k.get("A", x), v)

    def loss_hessian(self) -> np.ndarray:
        """∇²L = 2A."""
        return 2.0 * self.A

    def reg_hessian(self) -> np.ndarray:
        """∇²R = 0."""
        return np.zeros_like(self.A)

    def _centre_and_radius_sq(self, level: float) -> tuple[np.ndarray, float]:
        """x = y + centre with yᵀAy = rho: the level set as a centred ellipsoid."""
        centre = -0.5 * np.linalg.solve(self.A, self.b)
        rho = level + 0.25 * self.b @ np.linalg.solve(self.A, self.b)
        return centre, rho

    def solution(self, level: float = 1.0) -> np.ndarray:
        """The exact minimiser of R on {L = level} (numpy, float64).

        Raises:
            ValueError: if A is not positive definite or the level set is empty.
        """
        if np.linalg.eigvalsh(self.A)[0] <= 0:
            raise ValueError("solution() needs a positive-definite A.")
        centre, rho = self._centre_and_radius_sq(level)
        if rho <= 0:
            raise ValueError(f"the level set {{L = {level}}} is empty or a single point.")
        a_inv_c = np.linalg.solve(self.A, self.c)
        return centre - np.sqrt(rho / (self.c @ a_inv_c)) * a_inv_c

    def point_on_level(self, u: Any, level: float = 1.0) -> np.ndarray:
        """The point where the ray from the level set's centre along ``u`` meets {L = level}.

        Raises:
            ValueError: if ``u`` is zero or A is not positive definite along it.
        """
        u = np.asarray(u, dtype=np.float64)
        uau = u @ self.A @ u
        if not uau > 0:
            raise ValueError("u must be non-zero and A positive along it.")
        centre, rho = self._centre_and_radius_sq(level)
        return centre + np.sqrt(rho / uau) * u


class Sphere(Quadric):
    """L(x) = ‖x‖², R(x) = cᵀx: minimise a linear function on a sphere."""

    def __init__(self, c: Any) -> None:
        c = np.asarray(c, dtype=np.float64)
        if c.ndim != 1:
            raise ValueError(f"c must be a vector, got shape {c.shape}.")
        super().__init__(np.eye(c.shape[0]), None, c)


class Circle(Sphere):
    """The paper's Fig. 1: minimise x + y on x² + y² = 1; the answer is −(1, 1)/√2."""

    def __init__(self) -> None:
        super().__init__([1.0, 1.0])


class QuadricDistance(Quadric):
    """L(x) = xᵀAx + bᵀx, R(x) = ‖x − p‖²: the nearest point to p on a quadric.

    On a sphere (A = aI, b = 0) the unique minimiser is r·p/‖p‖ with r = √(level/a);
    on an ellipsoid there may be several local minima, some with ∇L and ∇R
    parallel rather than anti-parallel, so :meth:`solution` has no closed form
    there: check candidates with :func:`kkt_residual` and :func:`is_local_min`.
    """

    def __init__(self, A: Any, p: Any, b: Any = None) -> None:
        p = np.asarray(p, dtype=np.float64)
        super().__init__(A, b, np.ones_like(p))
        if not np.any(p):
            raise ValueError("p must be non-zero (every point of a sphere is nearest to 0).")
        self.p = p
        self._k = _Constants(A=self.A, b=self.b, c=self.c, p=p)

    def reg(self, x: Array) -> Array:
        """R(x) = ‖x − p‖²."""
        xp = namespace(x)
        d = x - self._k.get("p", x)
        return xp.sum(d * d)

    def reg_grad(self, x: Array) -> Array:
        """∇R(x) = 2(x − p)."""
        return 2.0 * (x - self._k.get("p", x))

    def reg_hessian(self) -> np.ndarray:
        """∇²R = 2I."""
        return 2.0 * np.eye(self.dim)

    def solution(self, level: float = 1.0) -> np.ndarray:
        """The nearest point to p on the sphere {L = level} (A = aI, b = 0 only).

        Raises:
            ValueError: on an ellipsoid, where there is no closed form.
        """
        a = self.A[0, 0]
        if not (np.allclose(self.A, a * np.eye(self.dim)) and not np.any(self.b) and a > 0):
            raise ValueError(
                "QuadricDistance.solution() has a closed form on spheres only; on an "
                "ellipsoid check a candidate with kkt_residual() and is_local_min()."
            )
        return np.sqrt(level / a) * self.p / np.linalg.norm(self.p)


def lagrange_multiplier(problem: Any, x: np.ndarray) -> float:
    """λ = −∇R·∇L/‖∇L‖², the multiplier that makes ∇R + λ∇L smallest."""
    g = np.asarray(problem.grad(x))
    gr = np.asarray(problem.reg_grad(x))
    return float(-(gr @ g) / (g @ g))


def kkt_residual(problem: Any, x: np.ndarray) -> float:
    """‖∇R + λ∇L‖/‖∇R‖ at x: 0 exactly at a constrained stationary point."""
    g = np.asarray(problem.grad(x))
    gr = np.asarray(problem.reg_grad(x))
    lam = lagrange_multiplier(problem, x)
    return float(np.linalg.norm(gr + lam * g) / np.linalg.norm(gr))


def is_local_min(problem: Any, x: np.ndarray, tol: float = 1e-9) -> bool:
    """Whether the Lagrangian's Hessian is positive definite on the tangent space at x.

    The second-order sufficient condition for a strict constrained local minimum
    (at a point that is already stationary); ``problem`` must provide
    ``loss_hessian()`` and ``reg_hessian()``.
    """
    g = np.asarray(problem.grad(x))
    lam = lagrange_multiplier(problem, x)
    hess = problem.reg_hessian() + lam * problem.loss_hessian()
    # An orthonormal basis of the tangent space {v : v·g = 0}.
    q, _ = np.linalg.qr(np.column_stack([g, np.eye(len(g))]))
    tangent = q[:, 1 : len(g)]
    return bool(np.linalg.eigvalsh(tangent.T @ hess @ tangent)[0] > tol)
