"""The k×k Gram algebra of a k-constraint walk, on the host in float64.

With k constraints the walk needs G = J Jᵀ (J the k×P Jacobian of the losses) in two places:
the projection of a direction onto the tangent space, r − Jᵀ G⁻¹ J r, and the Gauss–Newton
corrector, −Jᵀ G⁻¹ (L − c). k is small and P large, so G is formed on θ's device (one k×P by
P×k product) and everything k×k happens here, in numpy float64. G is decomposed once per point,
through its row-normalised form Ĝ = D⁻¹ G D⁻¹ (D the diagonal of the rows' norms ‖∇L_i‖): the
eigenvalues of Ĝ say how close the constraints are to dependent whatever their scales, and its
eigenvectors name the constraints involved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WEIGHT_SHARE = 0.1
"""A constraint is named as dependent where its weight in the eigenvector of Ĝ's smallest
eigenvalue is at least this fraction of the largest weight."""


@dataclass(frozen=True)
class Gram:
    """The decomposition of G = J Jᵀ at one point (see the module docstring).

    Attributes:
        row_norms: ‖∇L_i‖ for each constraint, shape (k,).
        eigenvalues: the eigenvalues of the row-normalised Ĝ, ascending, shape (k,).
        eigenvectors: the matching unit eigenvectors as columns, shape (k, k).
        scale: 1/‖∇L_i‖ (0 for a vanished gradient), shape (k,): D⁻¹'s diagonal.
    """

    row_norms: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, gram: np.ndarray) -> Gram:
        """Decompose a Gram matrix.

        Args:
            gram: G = J Jᵀ, a finite symmetric (k, k) array.

        Returns:
            The :class:`Gram`. A zero row of J gives a zero row norm and leaves Ĝ's row and
            column for it zero (:meth:`vanished` reports it).
        """
        gram = np.asarray(gram, dtype=np.float64)
        norms = np.sqrt(np.maximum(gram.diagonal(), 0.0))
        if norms.min() > 0:
            scale = 1.0 / norms
        else:  # 1/‖∇L_i‖, 0 for a vanished gradient (where= skips the division by zero)
            scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        # symmetrised (the device product need not be symmetric to the bit) and normalised in
        # one pass; the factor 0.5 is exact, so this is 0.5·(G + Gᵀ) scaled, bit for bit
        values, vectors = np.linalg.eigh((gram + gram.T) * (0.5 * np.outer(scale, scale)))
        return cls(norms, values, vectors, scale)

    @property
    def condition(self) -> float:
        """Ĝ's condition number λ_max/λ_min (inf where λ_min ≤ 0)."""
        low, high = float(self.eigenvalues[0]), float(self.eigenvalues[-1])
        return high / low if low > 0 else float("inf")

    def vanished(self, singular_tol: float) -> list[int]:
        """The constraints whose gradient norm is at most ``singular_tol``."""
        return [i for i, n in enumerate(self.row_norms) if n <= singular_tol]

    def is_singular(self, singular_tol: float) -> bool:
        """Whether a gradient vanished or Ĝ's smallest eigenvalue is at most ``singular_tol``
        times its largest (the constraints are dependent to that tolerance)."""
        values = self.eigenvalues
        return bool(self.row_norms.min() <= singular_tol or values[0] <= singular_tol * values[-1])

    def dependent(self) -> list[int]:
        """The constraints that make up the near-dependence: those with a large weight (see
        :data:`WEIGHT_SHARE`) in the eigenvector of Ĝ's smallest eigenvalue."""
        weights = np.abs(self.eigenvectors[:, 0])
        return [int(i) for i in np.flatnonzero(weights >= WEIGHT_SHARE * weights.max())]

    def describe_singular(self, singular_tol: float) -> str:
        """Why :meth:`is_singular` holds, in words: which gradients vanished or which
        constraints became dependent, with the figures."""
        gone = self.vanished(singular_tol)
        if gone:
            what = ", ".join(f"‖∇L_{i}‖ = {self.row_norms[i]:.3g}" for i in gone)
            return f"the gradient of {name_constraints(gone)} vanished ({what})"
        return (
            f"{name_constraints(self.dependent())} became dependent "
            f"(Gram condition {self.condition:.3g})"
        )

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """μ with G μ = ``rhs`` (through Ĝ's eigendecomposition; G must not be singular).

        Args:
            rhs: shape (k,), float64.

        Returns:
            μ, shape (k,), float64.
        """
        scale, v = self.scale, self.eigenvectors
        return scale * (
            v @ ((v.T @ (scale * np.asarray(rhs, dtype=np.float64))) / self.eigenvalues)
        )


def name_constraints(indices: list[int]) -> str:
    """``[0, 2]`` → ``"constraints 0 and 2"``; ``[1]`` → ``"constraint 1"``."""
    if len(indices) == 1:
        return f"constraint {indices[0]}"
    head = ", ".join(str(i) for i in indices[:-1])
    return f"constraints {head} and {indices[-1]}"
