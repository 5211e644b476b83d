"""``stack``: k single-constraint Problems sharing θ and R as one k-constraint problem."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import array_api_compat

from manifoldwalk._array import Array, device_of, namespace
from manifoldwalk.multi import is_multi_constraint
from manifoldwalk.problem import Problem, ProblemError, loss_and_grad_of
from manifoldwalk.step import as_scalar

__all__ = ["StackedProblem", "stack"]


class StackedProblem:
    """k Problems on the same θ as one k-constraint problem (built by :func:`stack`).

    ``losses_and_jacobian(θ)`` calls each problem's ``loss_and_grad`` (or ``loss`` and
    ``grad``) in turn and stacks the losses into a (k,) array and the gradients into the rows
    of a (k, P) array, in θ's array type. Where every problem has
    ``loss_and_grad_into(θ, out)`` (the PyTorch adapter's problems) and θ's arrays can be
    written in place (torch, numpy), each gradient is written straight into its row of a
    fresh (k, P) array instead: no copy to stack them. R and ∇R are the first problem's.

    Attributes:
        problems: the k problems, in constraint order.
        n_constraints: k.
        dim: P where any problem declares ``dim`` (they agree), else None.
    """

    def __init__(self, problems: Sequence[Problem], dim: int | None) -> None:
        self.problems = tuple(problems)
        self.n_constraints = len(self.problems)
        self.dim = dim
        self._evaluators = [loss_and_grad_of(p) for p in self.problems]
        into = [getattr(p, "loss_and_grad_into", None) for p in self.problems]
        self._into = into if all(callable(f) for f in into) else None

    def losses_and_jacobian(self, theta: Array) -> tuple[Array, Array]:
        """The k losses, shape (k,), and their gradients as rows, shape (k, P).

        Raises:
            ProblemError: a problem's gradient not of θ's shape, dtype or array type (named).
        """
        xp = namespace(theta)
        if self._into is not None and _writable(theta):
            jacobian = _empty_like_rows(xp, theta, self.n_constraints)
            losses = [
                as_scalar(into(theta, jacobian[i]), theta) for i, into in enumerate(self._into)
            ]
            return xp.stack(losses), jacobian
        losses, grads = [], []
        for i, evaluate in enumerate(self._evaluators):
            loss, grad = evaluate(theta)
            if (
                tuple(getattr(grad, "shape", ())) != tuple(theta.shape)
                or getattr(grad, "dtype", None) != theta.dtype
                or namespace(grad) is not xp
            ):
                raise ProblemError(
                    f"stack: problem {i} ({type(self.problems[i]).__name__}) returned a gradient "
                    f"{type(grad).__name__} of shape {tuple(getattr(grad, 'shape', ()))} and "
                    f"dtype {getattr(grad, 'dtype', None)} for θ {type(theta).__name__} of shape "
                    f"{tuple(theta.shape)} and dtype {theta.dtype}; the stacked problems must "
                    "share θ: the same length, array type, dtype and device."
                )
            losses.append(as_scalar(loss, theta))
            grads.append(grad)
        return xp.stack(losses), xp.stack(grads)

    def reg(self, theta: Array) -> Array:
        """R(θ), the first problem's."""
        return self.problems[0].reg(theta)

    def reg_grad(self, theta: Array) -> Array:
        """∇R(θ), the first problem's."""
        return self.problems[0].reg_grad(theta)

    def __repr__(self) -> str:
        names = ", ".join(type(p).__name__ for p in self.problems)
        return f"StackedProblem([{names}])"


def _writable(theta: Array) -> bool:
    """Whether θ's array type can be written in place (torch and numpy; not jax)."""
    return array_api_compat.is_torch_array(theta) or array_api_compat.is_numpy_array(theta)


def _empty_like_rows(xp: Any, theta: Array, k: int) -> Array:
    """An uninitialised (k, P) array of θ's type, dtype and device (every row is written)."""
    device = device_of(theta)
    shape = (k, theta.shape[0])
    if device is None:
        return xp.empty(shape, dtype=theta.dtype)
    return xp.empty(shape, dtype=theta.dtype, device=device)


def stack(problems: Sequence[Problem]) -> Problem | StackedProblem:
    """k single-constraint Problems sharing θ and R as one k-constraint problem.

    Walk {θ : L_i(θ) = c_i for every i} with ``manifoldwalk.walk_constrained(stack([p0, p1]),
    θ0)``. R and ∇R are taken from the first problem (the others' are not called). A stack of
    one problem is that problem itself, so that it takes the single-constraint walk unchanged.

    Args:
        problems: a non-empty sequence of Problems (``loss_and_grad``, or ``loss`` and
            ``grad``; and ``reg``, ``reg_grad``), all on θ of one length, array type and dtype.

    Returns:
        ``problems[0]`` for one problem, else a :class:`StackedProblem`.

    Raises:
        ValueError: an empty sequence, or problems whose ``dim`` differ.
        ProblemError: an entry that is not a single-constraint Problem (a k-constraint problem
            included), named by its index. Problems whose θ differ in array type, dtype or
            length are refused when evaluated (by index).
    """
    if isinstance(problems, str | bytes) or not isinstance(problems, Sequence):
        raise ValueError(
            f"stack takes a sequence of Problems, got {type(problems).__name__}; e.g. "
            "stack([p0, p1])."
        )
    if not problems:
        raise ValueError("stack needs at least one Problem, got an empty sequence.")
    for i, p in enumerate(problems):
        if is_multi_constraint(p):
            raise ProblemError(
                f"stack: problem {i} ({type(p).__name__}) is a k-constraint problem; stack takes "
                "single-constraint Problems (stack the single problems it was built from)."
            )
        fused = callable(getattr(p, "loss_and_grad", None))
        needed = ("reg", "reg_grad") + (() if fused else ("loss", "grad"))
        missing = [m for m in needed if not callable(getattr(p, m, None))]
        if missing:
            raise ProblemError(
                f"stack: problem {i} ({type(p).__name__}) is not a Problem: it lacks "
                f"{', '.join(missing)}."
            )
    dims = {
        i: p.dim
        for i, p in enumerate(problems)
        if isinstance(getattr(p, "dim", None), int) and not isinstance(p.dim, bool)
    }
    if len(set(dims.values())) > 1:
        listed = ", ".join(f"problem {i}: {d}" for i, d in dims.items())
        raise ValueError(
            f"stack: the problems have θ of different lengths ({listed}); stacked problems "
            "must share θ."
        )
    if len(problems) == 1:
        return problems[0]
    return StackedProblem(problems, next(iter(dims.values()), None))
