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


# --- several constraints: intersections with closed-form optima ----------------------------


def _plane_rows(a: Any, n: int) -> np.ndarray:
    """The hyperplane normals as the rows of an (m, n) array, checked."""
    rows = np.atleast_2d(np.asarray(a, dtype=np.float64))
    if rows.ndim != 2 or rows.shape[1] != n:
        raise ValueError(f"a must have shape ({n},) or (m, {n}), got {np.shape(a)}.")
    m = rows.shape[0]
    if m > n - 2:
        raise ValueError(
            f"{m} hyperplanes in {n} dimensions leave an intersection of dimension "
            f"{n - 1 - m} < 1 (a few points): nothing to walk; use at most n − 2 = {n - 2}."
        )
    if np.linalg.matrix_rank(rows) < m:
        raise ValueError("the hyperplane normals (rows of a) must be linearly independent.")
    return rows


class EllipsoidHyperplane:
    """An ellipsoid cut by m hyperplanes: minimise R(x) = cᵀx on {xᵀAx = ρ, a_jᵀx = β_j}.

    A k-constraint problem (k = 1 + m, see :func:`manifoldwalk.walk_constrained`): L_0 = xᵀAx,
    L_j = a_jᵀx for j = 1..m. The intersection is a lower-dimensional ellipsoid, and the
    minimiser of a linear function on it has a closed form (:meth:`solution`). Levels are
    ``(ρ, β_1, ..., β_m)``. Works on numpy, torch and jax arrays.

    Args:
        A: symmetric positive-definite (n, n) matrix.
        a: the hyperplanes' normals, shape (n,) for one or (m, n), independent, m ≤ n − 2.
        c: the objective, shape (n,), not in the span of the normals.

    Raises:
        ValueError: on mismatched shapes, a non-symmetric or indefinite A, dependent normals,
            too many hyperplanes, or a c that the hyperplanes make constant.
    """

    def __init__(self, A: Any, a: Any, c: Any) -> None:
        A = np.asarray(A, dtype=np.float64)
        _check_spd_shape(A)
        if np.linalg.eigvalsh(A)[0] <= 0:
            raise ValueError("A must be positive definite (the level set an ellipsoid).")
        n = A.shape[0]
        planes = _plane_rows(a, n)
        c = np.asarray(c, dtype=np.float64)
        if c.shape != (n,):
            raise ValueError(f"c must have shape ({n},), got {c.shape}.")
        _, _, vt = np.linalg.svd(planes)
        self._null = vt[planes.shape[0] :].T  # an orthonormal basis of {x : a_jᵀx = 0}
        if np.linalg.norm(self._null.T @ c) <= 1e-12 * np.linalg.norm(c):
            raise ValueError(
                "c lies in the span of the hyperplanes' normals: R is constant on the "
                "intersection, there is no minimiser to find."
            )
        self.A, self.planes, self.c = A, planes, c
        self._k = _Constants(A=A, planes=planes, c=c)

    @property
    def dim(self) -> int:
        """Number of variables n."""
        return self.A.shape[0]

    @property
    def n_constraints(self) -> int:
        """k = 1 + m."""
        return 1 + self.planes.shape[0]

    def losses_and_jacobian(self, x: Array) -> tuple[Array, Array]:
        """L = (xᵀAx, a_1ᵀx, ..., a_mᵀx) and J with rows 2Ax, a_1, ..., a_m."""
        xp = namespace(x)
        Ax = xp.matmul(self._k.get("A", x), x)
        planes = self._k.get("planes", x)
        losses = xp.concat([xp.reshape(xp.sum(x * Ax), (1,)), xp.matmul(planes, x)])
        return losses, xp.concat([xp.reshape(2.0 * Ax, (1, x.shape[0])), planes])

    def reg(self, x: Array) -> Array:
        """R(x) = cᵀx."""
        xp = namespace(x)
        return xp.sum(self._k.get("c", x) * x)

    def reg_grad(self, x: Array) -> Array:
        """∇R(x) = c."""
        xp = namespace(x)
        return xp.zeros_like(x) + self._k.get("c", x)

    def _levels(self, levels: Any) -> np.ndarray:
        levels = np.asarray(levels, dtype=np.float64)
        if levels.shape != (self.n_constraints,):
            raise ValueError(
                f"levels must be (ρ, β_1, ..., β_m): {self.n_constraints} numbers, got "
                f"shape {levels.shape}."
            )
        return levels

    def centre_and_radius_sq(self, levels: Any) -> tuple[np.ndarray, float]:
        """The intersection as {centre + Qz : zᵀ(QᵀAQ)z = r²}, Q :attr:`null_basis`.

        Returns:
            The centre (numpy, float64) and r² (≤ 0: empty or a single point).
        """
        levels = self._levels(levels)
        rho, beta = levels[0], levels[1:]
        q, A = self._null, self.A
        x_p = np.linalg.lstsq(self.planes, beta, rcond=None)[0]  # the least-norm point
        B = q.T @ A @ q
        y_c = -np.linalg.solve(B, q.T @ A @ x_p)
        return x_p + q @ y_c, float(rho - x_p @ A @ x_p + y_c @ B @ y_c)

    @property
    def null_basis(self) -> np.ndarray:
        """An orthonormal basis (columns) of the hyperplanes' direction space {x : a_jᵀx = 0}."""
        return self._null

    def _radius_sq(self, levels: Any) -> tuple[np.ndarray, float]:
        centre, r2 = self.centre_and_radius_sq(levels)
        if not r2 > 0:
            raise ValueError(f"the intersection at levels {list(levels)} is empty or one point.")
        return centre, r2

    def solution(self, levels: Any) -> np.ndarray:
        """The exact minimiser of cᵀx on the intersection at ``levels`` (numpy, float64).

        Raises:
            ValueError: levels of the wrong length, or an empty (or one-point) intersection.
        """
        centre, r2 = self._radius_sq(levels)
        q = self._null
        B = q.T @ self.A @ q
        ct = q.T @ self.c
        b_inv_c = np.linalg.solve(B, ct)
        return centre - np.sqrt(r2 / (ct @ b_inv_c)) * (q @ b_inv_c)

    def point_on_levels(self, u: Any, levels: Any) -> np.ndarray:
        """Where the ray from the intersection's centre along u's part in the hyperplanes'
        direction space meets the intersection (numpy, float64).

        Raises:
            ValueError: u normal to the hyperplanes (or zero), or an empty intersection.
        """
        centre, r2 = self._radius_sq(levels)
        q = self._null
        v = q.T @ np.asarray(u, dtype=np.float64)
        vbv = v @ (q.T @ self.A @ q) @ v
        if not vbv > 0:
            raise ValueError("u must have a non-zero part along the hyperplanes.")
        return centre + np.sqrt(r2 / vbv) * (q @ v)


class SphereHyperplane(EllipsoidHyperplane):
    """A sphere cut by m hyperplanes: minimise cᵀx on {‖x‖² = ρ, a_jᵀx = β_j}.

    The intersection is a sphere of dimension n − m − 1 centred at the point m₀ of the
    hyperplanes nearest the origin, of radius s = √(ρ − ‖m₀‖²); the minimiser is
    m₀ − s·Pc/‖Pc‖, with P the projection onto the hyperplanes' direction space.

    Args:
        a: the normals, shape (n,) or (m, n) (independent, m ≤ n − 2).
        c: the objective, shape (n,), not in the span of the normals.

    Raises:
        ValueError: as :class:`EllipsoidHyperplane`.
    """

    def __init__(self, a: Any, c: Any) -> None:
        c = np.asarray(c, dtype=np.float64)
        if c.ndim != 1:
            raise ValueError(f"c must be a vector, got shape {c.shape}.")
        super().__init__(np.eye(c.shape[0]), a, c)

    def solution(self, levels: Any) -> np.ndarray:
        """The exact minimiser m₀ − s·Pc/‖Pc‖ (numpy, float64).

        Raises:
            ValueError: levels of the wrong length, or an empty (or one-point) intersection.
        """
        levels = self._levels(levels)
        m0 = np.linalg.lstsq(self.planes, levels[1:], rcond=None)[0]
        s2 = levels[0] - m0 @ m0
        if not s2 > 0:
            raise ValueError(f"the intersection at levels {list(levels)} is empty or one point.")
        a = self.planes
        pc = self.c - a.T @ np.linalg.solve(a @ a.T, a @ self.c)
        return m0 - np.sqrt(s2) * pc / np.linalg.norm(pc)


class TwoSpheres:
    """Two spheres' intersection: minimise cᵀx on {‖x‖² = ρ_0, ‖x − p‖² = ρ_1}.

    A 2-constraint problem whose constraints are both quadrics. Subtracting them gives the
    hyperplane pᵀx = β = (ρ_0 − ρ_1 + ‖p‖²)/2, so the intersection and the minimiser are those
    of :class:`SphereHyperplane` with a = p at levels (ρ_0, β). Levels are ``(ρ_0, ρ_1)``.

    Args:
        p: the second sphere's centre, shape (n,), n ≥ 3, non-zero.
        c: the objective, shape (n,), not parallel to p.

    Raises:
        ValueError: a zero p, n < 3, or c parallel to p.
    """

    n_constraints = 2

    def __init__(self, p: Any, c: Any) -> None:
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 1 or not np.any(p):
            raise ValueError(f"p must be a non-zero vector, got {p!r}.")
        self._slice = SphereHyperplane(p, c)
        self.p, self.c = p, self._slice.c
        self._k = _Constants(p=p, c=self.c)

    @property
    def dim(self) -> int:
        """Number of variables n."""
        return self.p.shape[0]

    def losses_and_jacobian(self, x: Array) -> tuple[Array, Array]:
        """L = (‖x‖², ‖x − p‖²) and J with rows 2x, 2(x − p)."""
        xp = namespace(x)
        d = x - self._k.get("p", x)
        return xp.stack([xp.sum(x * x), xp.sum(d * d)]), xp.stack([2.0 * x, 2.0 * d])

    def reg(self, x: Array) -> Array:
        """R(x) = cᵀx."""
        xp = namespace(x)
        return xp.sum(self._k.get("c", x) * x)

    def reg_grad(self, x: Array) -> Array:
        """∇R(x) = c."""
        xp = namespace(x)
        return xp.zeros_like(x) + self._k.get("c", x)

    def plane_levels(self, levels: Any) -> np.ndarray:
        """(ρ_0, β): the levels of the equivalent :class:`SphereHyperplane` (a = p).

        Raises:
            ValueError: not two levels.
        """
        levels = np.asarray(levels, dtype=np.float64)
        if levels.shape != (2,):
            raise ValueError(f"levels must be (ρ_0, ρ_1), got shape {levels.shape}.")
        return np.array([levels[0], 0.5 * (levels[0] - levels[1] + self.p @ self.p)])

    def solution(self, levels: Any) -> np.ndarray:
        """The exact minimiser of cᵀx on the intersection (numpy, float64).

        Raises:
            ValueError: not two levels, or spheres that do not meet in more than one point.
        """
        return self._slice.solution(self.plane_levels(levels))

    def point_on_levels(self, u: Any, levels: Any) -> np.ndarray:
        """A point of the intersection: see :meth:`EllipsoidHyperplane.point_on_levels`.

        Raises:
            ValueError: as :meth:`solution`, or u parallel to p.
        """
        return self._slice.point_on_levels(u, self.plane_levels(levels))
