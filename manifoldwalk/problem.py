"""The Problem protocol: the seam between the engine and a model.

A Problem gives the training loss L, its gradient, the regulariser R and its
gradient on flat 1-D parameter arrays. The engine prefers a fused
``loss_and_grad`` when the Problem has one, so that one walk step costs one
loss-and-gradient evaluation (one forward and one backward pass for a net).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from manifoldwalk._array import Array, namespace, to_host


class ProblemError(ValueError):
    """A Problem or a starting point that the walk cannot use (named in the message)."""


@runtime_checkable
class Problem(Protocol):
    """What the engine needs from a constrained problem.

    ``loss(θ)`` and ``reg(θ)`` return 0-d arrays (or Python floats); ``grad(θ)``
    and ``reg_grad(θ)`` return arrays with θ's shape, dtype and device. A Problem
    may also define ``loss_and_grad(θ) -> (loss, grad)``, which the engine then
    uses instead of separate ``loss`` and ``grad`` calls, and ``compile_step(fn) ->
    fn``, which the walk uses to compile a pure function of a ``WalkState`` (the eager
    driver passes its step fused with the stop rules' look: ``state -> (state, vector)``;
    the JAX adapter returns ``jax.jit(fn)``). A hook that also takes ``donate=False`` is
    called with ``donate=True``: the compiled function may then reuse the memory of the state
    it is given for its results (JAX: ``donate_argnums=0``), and the driver never reads a
    state it has passed (it keeps copies of what it needs).
    """

    def loss(self, theta: Array) -> Array:
        """Training loss L(θ) as a 0-d array."""
        ...

    def grad(self, theta: Array) -> Array:
        """Gradient ∇L(θ), same shape as θ."""
        ...

    def reg(self, theta: Array) -> Array:
        """Regulariser R(θ) as a 0-d array."""
        ...

    def reg_grad(self, theta: Array) -> Array:
        """Gradient ∇R(θ), same shape as θ."""
        ...


def squared_norm(theta: Array) -> Array:
    """R(θ) = θᵀθ, the paper's regulariser."""
    xp = namespace(theta)
    return xp.sum(theta * theta)


def squared_norm_grad(theta: Array) -> Array:
    """∇R(θ) = 2θ for R = θᵀθ."""
    return 2.0 * theta


@dataclass(frozen=True)
class FunctionProblem:
    """A Problem built from plain callables; see :func:`make_problem`."""

    loss_fn: Callable[[Array], Array]
    grad_fn: Callable[[Array], Array] | None = None
    reg_fn: Callable[[Array], Array] = squared_norm
    reg_grad_fn: Callable[[Array], Array] = squared_norm_grad
    loss_and_grad_fn: Callable[[Array], tuple[Array, Array]] | None = None

    def loss(self, theta: Array) -> Array:
        """Training loss L(θ)."""
        return self.loss_fn(theta)

    def grad(self, theta: Array) -> Array:
        """Gradient ∇L(θ) (from ``grad_fn`` or the fused callable)."""
        if self.grad_fn is not None:
            return self.grad_fn(theta)
        return self.loss_and_grad_fn(theta)[1]

    def reg(self, theta: Array) -> Array:
        """Regulariser R(θ)."""
        return self.reg_fn(theta)

    def reg_grad(self, theta: Array) -> Array:
        """Gradient ∇R(θ)."""
        return self.reg_grad_fn(theta)

    def loss_and_grad(self, theta: Array) -> tuple[Array, Array]:
        """L(θ) and ∇L(θ) together (fused when a fused callable was given)."""
        if self.loss_and_grad_fn is not None:
            return self.loss_and_grad_fn(theta)
        return self.loss_fn(theta), self.grad_fn(theta)


def make_problem(
    loss: Callable[[Array], Array] | None = None,
    grad: Callable[[Array], Array] | None = None,
    *,
    reg: Callable[[Array], Array] | None = None,
    reg_grad: Callable[[Array], Array] | None = None,
    loss_and_grad: Callable[[Array], tuple[Array, Array]] | None = None,
) -> FunctionProblem:
    """Build a Problem from plain callables on flat 1-D arrays.

    Args:
        loss: θ ↦ L(θ). May be omitted when ``loss_and_grad`` is given.
        grad: θ ↦ ∇L(θ). May be omitted when ``loss_and_grad`` is given.
        reg: θ ↦ R(θ); with ``reg_grad``, or neither: both default to the paper's θᵀθ and 2θ.
        reg_grad: θ ↦ ∇R(θ); given exactly when ``reg`` is.
        loss_and_grad: θ ↦ (L, ∇L) in one pass; preferred by the engine.

    Returns:
        A :class:`FunctionProblem`.

    Raises:
        ProblemError: if neither ``loss_and_grad`` nor both ``loss`` and ``grad`` are given,
            if only one of ``reg`` and ``reg_grad`` is given (the other would be the default's,
            a gradient of another R), or if a given argument is not callable.
    """
    given = {"loss": loss, "grad": grad, "reg": reg, "reg_grad": reg_grad}
    given["loss_and_grad"] = loss_and_grad
    for name, fn in given.items():
        if fn is not None and not callable(fn):
            raise ProblemError(f"make_problem: {name} must be callable, got {type(fn).__name__}.")
    if loss_and_grad is None and (loss is None or grad is None):
        raise ProblemError(
            "make_problem needs either loss_and_grad=, or both loss and grad "
            "(a gradient the engine can call; use an autodiff adapter to get one)."
        )
    if (reg is None) != (reg_grad is None):
        given_one, missing = ("reg", "reg_grad") if reg_grad is None else ("reg_grad", "reg")
        raise ProblemError(
            f"make_problem got {given_one}= without {missing}=: the default R is θᵀθ with "
            f"gradient 2θ, and pairing it with your own {given_one} would walk one function "
            f"with the gradient of another. Pass both reg= and reg_grad=, or neither."
        )
    if reg is None:
        reg, reg_grad = squared_norm, squared_norm_grad
    if loss is None:

        def loss(theta: Array) -> Array:
            return loss_and_grad(theta)[0]

    return FunctionProblem(loss, grad, reg, reg_grad, loss_and_grad)


def loss_and_grad_of(problem: Problem) -> Callable[[Array], tuple[Array, Array]]:
    """The fused ``loss_and_grad`` of ``problem`` if it has one, else loss and grad called in turn."""
    fused = getattr(problem, "loss_and_grad", None)
    if callable(fused):
        return fused

    def separate(theta: Array) -> tuple[Array, Array]:
        return problem.loss(theta), problem.grad(theta)

    return separate


def loss_of(problem: Problem) -> Callable[[Array], Array]:
    """θ ↦ L(θ): the problem's ``loss``, or the first part of its fused ``loss_and_grad``.

    Raises:
        ProblemError: the problem has neither (a k-constraint stack is named as such).
    """
    return _part_of(problem, "loss", 0)


def grad_of(problem: Problem) -> Callable[[Array], Array]:
    """θ ↦ ∇L(θ): the problem's ``grad``, or the second part of its fused ``loss_and_grad``.

    Raises:
        ProblemError: the problem has neither (a k-constraint stack is named as such).
    """
    return _part_of(problem, "grad", 1)


def _part_of(problem: Any, method: str, index: int) -> Callable[[Array], Array]:
    """The problem's ``method``, or part ``index`` of its ``loss_and_grad``; see
    :func:`loss_of`."""
    own = getattr(problem, method, None)
    if callable(own):
        return own
    fused = getattr(problem, "loss_and_grad", None)
    if not callable(fused):
        raise _single_loss_error(problem, method)
    return lambda theta: fused(theta)[index]


def _single_loss_error(problem: Any, method: str) -> ProblemError:
    """The error for a problem without one loss's ``method`` (``loss`` or ``grad``) or
    ``loss_and_grad``, naming a k-constraint problem as such.

    Args:
        problem: the problem.
        method: the method looked for.

    Returns:
        A :class:`ProblemError` to raise.
    """
    name = type(problem).__name__
    if callable(getattr(problem, "losses_and_jacobian", None)):
        return ProblemError(
            f"{name} is a k-constraint problem (losses_and_jacobian) without one loss's "
            f"{method} or loss_and_grad: pass one of its losses as a Problem of its own (e.g. "
            "one of the problems given to manifoldwalk.stack)."
        )
    return ProblemError(
        f"{name} has neither {method} nor loss_and_grad; a Problem needs loss and grad, or "
        "loss_and_grad (manifoldwalk.make_problem builds one from callables)."
    )


_REQUIRED = ("reg", "reg_grad")


def check_theta(theta: Array, what: str = "theta0") -> None:
    """Check that ``theta`` is a finite 1-D float32 or float64 array.

    Raises:
        ProblemError: naming what is wrong and what to do about it.
    """
    try:
        xp = namespace(theta)
    except TypeError as err:
        raise ProblemError(
            f"{what} must be a numpy, torch or jax array, got {type(theta).__name__}; "
            "convert it with numpy.asarray(...) first."
        ) from err
    if theta.ndim != 1:
        raise ProblemError(
            f"{what} must be a flat 1-D array, got shape {tuple(theta.shape)}; "
            "flatten the parameters (the adapters do this for models)."
        )
    if theta.shape[0] == 0:
        raise ProblemError(f"{what} is empty: there are no parameters to walk over.")
    if theta.dtype not in (xp.float32, xp.float64):
        raise ProblemError(
            f"{what} has dtype {theta.dtype}; the walk needs float32 or float64 (lower "
            "precisions cannot resolve the level set, complex parameters are not supported): "
            "cast it, e.g. theta.astype(numpy.float64), tensor.double() or .float()."
        )
    (finite,) = to_host(xp.all(xp.isfinite(theta)))
    if not finite:
        raise ProblemError(f"{what} contains NaN or inf; start the walk from finite parameters.")


SCALAR_KINDS = (
    "a real floating scalar: a Python float, a 0-d array of a float dtype, or a 0-d floating "
    "tensor of θ's framework"
)
"""What ``Problem.loss`` and ``Problem.reg`` must return (said in the start's refusals)."""


def _type_name(value: Any) -> str:
    """``value``'s type as a message names it: ``list``, ``numpy.ndarray``, ``torch.Tensor``."""
    kind = type(value)
    module = kind.__module__.split(".")[0]
    return kind.__name__ if module == "builtins" else f"{module}.{kind.__name__}"


def _shown(value: Any) -> str:
    """``value``'s type and a short repr, for a message."""
    text = repr(value)
    return f"{_type_name(value)} {text if len(text) <= 40 else text[:37] + '...'}"


def _is_real_floating(value: Any) -> bool:
    """Whether an array-like ``value`` has a real floating dtype (any framework)."""
    try:
        return bool(namespace(value).isdtype(value.dtype, "real floating"))
    except Exception:  # a namespace without isdtype: ask numpy about the dtype
        try:
            return bool(np.issubdtype(np.dtype(value.dtype), np.floating))
        except Exception:
            return False


def _check_scalar(value: Any, name: str, theta: Array | None = None) -> None:
    """Refuse a ``loss`` or ``reg`` value that is not a real floating scalar, by what it is.

    A bool, an int, a complex number, a string or a list used to be cast or to fail deep in
    the engine (a bool loss even stopped "stationary" off the level set). With ``theta``, the
    value must also convert to θ's array type as the step converts it (a torch tensor for a
    numpy θ does not). Checked once, at the start.

    Raises:
        ProblemError: naming what was returned and what is needed.
    """
    if isinstance(value, bool | np.bool_):
        raise ProblemError(
            f"Problem.{name}(θ) returned {_shown(value)}; it must return {SCALAR_KINDS} (a "
            "bool cannot be walked: it has no level set to hold)."
        )
    if isinstance(value, float) and not hasattr(value, "dtype"):  # a Python float
        return
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None or dtype is None:
        raise ProblemError(
            f"Problem.{name}(θ) returned {_shown(value)}; it must return {SCALAR_KINDS}."
        )
    if tuple(shape) != ():
        raise ProblemError(
            f"Problem.{name}(θ) must return a scalar (0-d array or float), got shape "
            f"{tuple(shape)}; reduce it (e.g. take the mean over examples)."
        )
    if not _is_real_floating(value):
        raise ProblemError(
            f"Problem.{name}(θ) returned a {_type_name(value)} of dtype {dtype}; it must return "
            f"{SCALAR_KINDS} (cast it to θ's dtype)."
        )
    if theta is not None:
        from manifoldwalk.step import as_scalar  # (the step module imports this one)

        try:  # what the step does with the value at every evaluation
            same = namespace(as_scalar(value, theta)) is namespace(theta)
        except Exception:
            same = False
        if not same:
            raise ProblemError(
                f"Problem.{name}(θ) returned a {_type_name(value)} for a θ of type "
                f"{_type_name(theta)}; return a value of θ's array type (or a Python float)."
            )


def _check_vector(value: Any, theta: Array, name: str) -> None:
    shape = getattr(value, "shape", None)
    if shape is None or tuple(shape) != tuple(theta.shape):
        raise ProblemError(
            f"Problem.{name}(θ) must return an array of θ's shape {tuple(theta.shape)}, "
            f"got {'a ' + type(value).__name__ if shape is None else 'shape ' + str(tuple(shape))}."
        )
    try:
        same_kind = namespace(value) is namespace(theta)
    except TypeError:
        same_kind = False
    if not same_kind:  # a numpy gradient for a torch θ failed deep in the step, or mixed types
        raise ProblemError(
            f"Problem.{name}(θ) returned a {_type_name(value)} but θ is a {_type_name(theta)}; "
            "return it in θ's array type, dtype and device."
        )
    if getattr(value, "dtype", None) != theta.dtype:
        raise ProblemError(
            f"Problem.{name}(θ) returned dtype {value.dtype} but θ is {theta.dtype}; "
            "return gradients in θ's dtype."
        )


def validate_problem(problem: Any, theta: Array) -> None:
    """Check ``problem`` against the protocol at ``theta`` before a walk starts.

    Evaluates each method once and checks shapes, dtypes and scalar-ness, so that
    a mistake is reported here, by name, not deep inside the engine.

    Raises:
        ProblemError: a method is missing, returns the wrong shape, dtype or array type, the
            loss or R is not a real floating scalar (:data:`SCALAR_KINDS`; a bool, an int, a
            complex number, a string or a list is refused), or θ's length differs from the
            problem's ``dim`` (where it has one).
    """
    has_fused = callable(getattr(problem, "loss_and_grad", None))
    needed = list(_REQUIRED) + ([] if has_fused else ["loss", "grad"])
    missing = [m for m in needed if not callable(getattr(problem, m, None))]
    if missing:
        raise ProblemError(
            f"{type(problem).__name__} is not a Problem: it lacks {', '.join(missing)}. "
            "A Problem needs loss, grad (or loss_and_grad), reg and reg_grad; "
            "manifoldwalk.make_problem builds one from callables."
        )
    dim = getattr(problem, "dim", None)
    if isinstance(dim, int) and not isinstance(dim, bool) and dim != theta.shape[0]:
        raise ProblemError(
            f"{type(problem).__name__} has {dim} variables but θ has shape "
            f"{tuple(theta.shape)}; pass a θ0 of shape ({dim},)."
        )
    loss, grad = loss_and_grad_of(problem)(theta)
    _check_scalar(loss, "loss", theta)
    _check_vector(grad, theta, "grad")
    _check_scalar(problem.reg(theta), "reg", theta)
    _check_vector(problem.reg_grad(theta), theta, "reg_grad")
