"""``ModelProblem``: the framework-free part of the adapters' model problems.

The PyTorch, JAX and Keras problems (``manifoldwalk_torch.TorchProblem``,
``manifoldwalk_jax.JaxProblem``, ``manifoldwalk_tf.TFProblem``) share everything but their
framework calls: the Problem protocol's plumbing (θ checked, then the framework's loss and
gradient), the choice of regulariser (``"l2"``, ``"l2-weights"`` or a callable), the θ checks
and the messages they give, the compiled-chunk cache and ``evaluate``'s loop over held-out
batches with the assembly of its result. Those live here, in numpy only; a subclass supplies
the framework calls as the small hooks listed in :class:`ModelProblem`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from manifoldwalk._adapter_checks import check_batch_size, check_eval_task, eval_metrics
from manifoldwalk._compile_cache import CompileCache

__all__ = ["REG_NAMES", "ModelProblem", "RegPair", "weight_mask"]

REG_NAMES = ("l2", "l2-weights")
"""The named regularisers: θᵀθ over all trainable parameters, or over the weights (rank ≥ 2)."""

RegPair = tuple[Callable[[Any], Any], Callable[[Any], Any]]
"""``(R, ∇R)``: the regulariser and its gradient, both functions of the flat θ."""


def weight_mask(shapes: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Which entries of flat θ belong to a weight (a parameter of rank ≥ 2: a kernel).

    Args:
        shapes: the trainable parameters' shapes, in θ's order.

    Returns:
        A boolean numpy vector of θ's length: True on the entries of parameters of rank ≥ 2.
    """
    parts = [np.full(int(np.prod(s, dtype=np.int64)), len(s) >= 2) for s in shapes]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


class ModelProblem:
    """The shared part of a model's training loss as a manifoldwalk Problem on flat θ.

    Besides the Problem protocol (``loss``, ``grad``, ``loss_and_grad``, ``reg``, ``reg_grad`` on
    flat θ), an adapter's problem has ``theta0``, ``n_params``, ``unflatten``, ``assign`` and
    ``evaluate`` (the JAX and Keras problems also ``flatten``).

    A subclass sets up its model, data and the framework's loss and gradient, then calls
    ``super().__init__`` with the parameters' shapes, θ's dtype and ``reg``. It provides:

    - ``_loss_and_grad_flat(θ)`` and ``_loss_flat(θ)``: L and ∇L (or L alone) for a checked θ;
    - ``_hvp_flat(θ, v)``: the Hessian-vector product ∇²L(θ)·v for a checked θ and v;
    - ``_l2_reg()``, ``_weights_reg(mask)``, ``_callable_reg(fn)``: ``(R, ∇R)`` for each
      regulariser (``mask`` from :func:`weight_mask`);
    - ``_is_theta``, ``_theta_conversion``, ``_dtype_of``, ``_cast_hint`` and the class
      attributes ``_theta_type``, ``_theta_kind``, ``_dtype_owner``, ``_dtype_remedy``,
      ``_shape_error``: what θ must be, and the words its check uses;
    - ``_eval_theta``, ``_eval_data``, ``_eval_batch_sums`` (and, where needed,
      ``_eval_context`` and ``_to_host``): the framework's side of :meth:`evaluate`.

    Attributes:
        n_params: the length of θ.
        dtype: θ's dtype (the framework's dtype object).
        loop_cache: the compiled chunks of earlier walks
            (:class:`~manifoldwalk._compile_cache.CompileCache`; ``loop_cache.clear()`` frees
            them).
    """

    _theta_type: ClassVar[str] = "array"
    """What θ must be, as the type error names it (``"torch.Tensor"``, ``"jax.Array"``)."""
    _theta_kind: ClassVar[str] = "array"
    """What θ is called in the shape error: "θ must be a flat <kind> of length n"."""
    _dtype_owner: ClassVar[str] = "the model's parameters are"
    """Whose dtype θ must have, in the dtype error: "θ has dtype a but <owner> b"."""
    _dtype_remedy: ClassVar[str] = "or build the problem from parameters of θ's dtype"
    """The other way out, in the dtype error's parenthesis."""
    _shape_error: ClassVar[type[Exception]] = ValueError
    """The exception a θ of the wrong shape raises."""
    _checks_reg_theta: ClassVar[bool] = False
    """Whether ``reg`` and ``reg_grad`` check θ first (a cheap check where θ crosses a seam)."""

    def __init__(self, shapes: Sequence[tuple[int, ...]], dtype: Any, reg: Any) -> None:
        """Set ``n_params``, ``dtype``, ``loop_cache`` and the regulariser.

        Args:
            shapes: the trainable parameters' shapes, in θ's order.
            dtype: θ's dtype, in the framework's terms.
            reg: ``"l2"``, ``"l2-weights"`` or a function of the flat θ.

        Raises:
            ValueError: an unknown regulariser name.
            TypeError: ``reg`` is neither a name nor a callable.
        """
        self._shapes_of_theta = [tuple(s) for s in shapes]
        self.n_params: int = sum(int(np.prod(s, dtype=np.int64)) for s in self._shapes_of_theta)
        self.dtype = dtype
        self.loop_cache = CompileCache()
        self._reg, self._reg_grad = self._make_reg(reg)

    @property
    def param_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The trainable parameters' shapes in θ's order (their sizes add up to ``n_params``),
        as the framework lays them out (PyTorch weights ``(out, in, …)``, JAX and Keras kernels
        ``(…, in, out)``); read-only."""
        return tuple(self._shapes_of_theta)

    # --- the Problem protocol -------------------------------------------------------------

    def loss_and_grad(self, theta: Any) -> tuple[Any, Any]:
        """The full-batch mean loss L(θ) and its gradient ∇L(θ).

        Args:
            theta: flat θ, an array of the adapter's kind of length ``n_params`` in θ's dtype.

        Returns:
            ``(L, ∇L)``: a 0-d array and an array like θ.

        Raises:
            TypeError: θ of another array kind or dtype (the message says how to convert it).
            ValueError: θ is not flat of length ``n_params``.
        """
        return self._loss_and_grad_flat(self._checked(theta))

    def loss(self, theta: Any) -> Any:
        """The full-batch mean training loss L(θ) as a 0-d array (forward passes only).

        Raises:
            TypeError, ValueError: as :meth:`loss_and_grad`.
        """
        return self._loss_flat(self._checked(theta))

    def grad(self, theta: Any) -> Any:
        """The gradient ∇L(θ), an array like θ (see :meth:`loss_and_grad`)."""
        return self.loss_and_grad(theta)[1]

    def reg(self, theta: Any) -> Any:
        """The regulariser R(θ) as a 0-d array of θ's kind."""
        return self._reg(self._checked(theta) if self._checks_reg_theta else theta)

    def reg_grad(self, theta: Any) -> Any:
        """The gradient ∇R(θ), an array like θ."""
        return self._reg_grad(self._checked(theta) if self._checks_reg_theta else theta)

    def hvp(self, theta: Any, v: Any) -> Any:
        """The Hessian-vector product ∇²L(θ)·v, on the device, without forming the Hessian.

        What :mod:`manifoldwalk.curvature` uses for the Hessian's top eigenvalues and trace.
        Over several batches it is the example-weighted mean of the batches' products, as L is.

        Args:
            theta: flat θ, as for :meth:`loss_and_grad`.
            v: a vector of θ's kind, shape and dtype.

        Returns:
            ∇²L(θ)·v, an array like θ.

        Raises:
            TypeError, ValueError: θ or v not a flat array of θ's kind, length and dtype.
        """
        return self._hvp_flat(self._checked(theta), self._checked(v))

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(
        self,
        theta: Any,
        x: Any,
        y: Any,
        *,
        task: str = "classification",
        batch_size: int | None = 1024,
    ) -> dict[str, float]:
        """The mean loss and accuracy (or MSE) of θ on held-out ``(x, y)``, in batches.

        Meant for the walk's metric callables, e.g.
        ``metrics={"test_acc": lambda t: problem.evaluate(t, x_te, y_te)["accuracy"]}``.
        One host synchronisation per call.

        Args:
            theta: flat θ.
            x, y: held-out inputs and targets (the same length). For classification ``y``
                holds class indices, or one-hot rows like the outputs.
            task: ``"classification"`` (accuracy: the argmax of the outputs' last axis equals
                the label) or ``"regression"`` (mse: the mean squared error over examples and
                outputs).
            batch_size: examples per batch (None: all in one).

        Returns:
            ``{"loss": float, "accuracy": float}`` or ``{"loss": float, "mse": float}``.

        Raises:
            ValueError: an unknown task or a bad batch size.
            ProblemError: ``x`` and ``y`` of different lengths, or accuracy asked of a model
                with a single output column.
        """
        check_eval_task(task)
        batch = self._check_eval_batch_size(batch_size)
        theta = self._eval_theta(theta)
        x, y = self._eval_data(x, y)
        n = int(x.shape[0])
        batch = n if batch is None else batch
        total, metric_n = None, 0
        with self._eval_context():
            for start in range(0, n, batch):
                sums, count = self._eval_batch_sums(
                    theta, x[start : start + batch], y[start : start + batch], task
                )
                total = sums if total is None else total + sums
                metric_n += count
        loss_sum, metric_sum = self._to_host(total)
        return eval_metrics(task, loss_sum, metric_sum, n, metric_n)

    # --- θ checks -------------------------------------------------------------------------

    def _checked(self, theta: Any) -> Any:
        """θ for the Problem protocol, checked to be flat, of ``n_params`` entries and θ's dtype:
        said here, not as an error from deep inside the engine or the framework.

        Raises:
            TypeError: θ is not of the adapter's array kind, or of another dtype.
            ValueError (``_shape_error``): θ is not flat of length ``n_params``.
        """
        theta = self._coerce_theta(theta)
        if not self._is_theta(theta):
            kind = f"{type(theta).__module__}.{type(theta).__name__}"
            raise TypeError(
                f"θ must be a {self._theta_type}, got {kind}; convert it with "
                f"{self._theta_conversion()} first (a loaded WalkResult's θ is numpy)."
            )
        self._check_shape(theta.shape)
        got = self._dtype_of(theta)
        if got != self.dtype:
            raise TypeError(
                f"θ has dtype {got} but {self._dtype_owner} {self.dtype}; cast θ with "
                f"{self._cast_hint(theta)} ({self._dtype_remedy}) first."
            )
        return theta

    def _check_shape(self, shape: Any) -> None:
        """Raise ``_shape_error`` unless ``shape`` is θ's, ``(n_params,)``."""
        if tuple(shape) != (self.n_params,):
            raise self._shape_error(
                f"θ must be a flat {self._theta_kind} of length {self.n_params}, got shape "
                f"{tuple(shape)}."
            )

    def _coerce_theta(self, theta: Any) -> Any:
        """θ as the checks see it (the identity; an adapter may convert, e.g. to numpy)."""
        return theta

    def _is_theta(self, theta: Any) -> bool:
        """Whether θ is of the adapter's array kind."""
        return True

    def _theta_conversion(self) -> str:
        """The expression the type error suggests for converting θ."""
        return "np.asarray(theta)"

    def _dtype_of(self, theta: Any) -> Any:
        """θ's dtype, comparable with :attr:`dtype`."""
        return theta.dtype

    def _cast_hint(self, theta: Any) -> str:
        """The expression the dtype error suggests for casting θ."""
        return f"theta.astype({self.dtype})"

    # --- the regulariser ------------------------------------------------------------------

    def _make_reg(self, reg: Any) -> RegPair:
        """``(R, ∇R)`` for ``reg``, a name of :data:`REG_NAMES` or a function of the flat θ.

        Raises:
            ValueError: an unknown name.
            TypeError: neither a name nor a callable.
        """
        if isinstance(reg, str):
            if reg == "l2":
                return self._l2_reg()
            if reg == "l2-weights":
                return self._weights_reg(weight_mask(self._shapes_of_theta))
        elif callable(reg):
            return self._callable_reg(reg)
        raise self._reg_error(reg)

    def _reg_error(self, reg: Any) -> Exception:
        """The error for a ``reg`` that is neither a known name nor a callable."""
        if isinstance(reg, str):
            return ValueError(f"reg must be one of {REG_NAMES} or a callable, got {reg!r}.")
        return TypeError(f"reg must be one of {REG_NAMES} or a callable, got {type(reg).__name__}.")

    def _l2_reg(self) -> RegPair:
        """``(θ ↦ θᵀθ, θ ↦ 2θ)`` in the framework."""
        raise NotImplementedError

    def _weights_reg(self, mask: np.ndarray) -> RegPair:
        """``(θ ↦ Σ mask·θ², θ ↦ 2·mask·θ)`` in the framework (``mask``: :func:`weight_mask`)."""
        raise NotImplementedError

    def _callable_reg(self, fn: Callable[[Any], Any]) -> RegPair:
        """``(R, ∇R)`` for a user's differentiable function of the flat θ."""
        raise NotImplementedError

    # --- the framework's loss and evaluation ----------------------------------------------

    def _loss_and_grad_flat(self, theta: Any) -> tuple[Any, Any]:
        """``(L, ∇L)`` at a checked θ."""
        raise NotImplementedError

    def _hvp_flat(self, theta: Any, v: Any) -> Any:
        """∇²L(θ)·v for a checked θ and v (the framework's second-order autodiff)."""
        raise NotImplementedError

    def _loss_flat(self, theta: Any) -> Any:
        """L at a checked θ (forward passes only)."""
        raise NotImplementedError

    def _check_eval_batch_size(self, batch_size: Any) -> int | None:
        """``evaluate``'s batch size, checked (None: one batch)."""
        return check_batch_size(batch_size, "batch_size")

    def _eval_theta(self, theta: Any) -> Any:
        """θ as ``evaluate`` uses it (checked, or converted)."""
        return self._checked(theta)

    def _eval_data(self, x: Any, y: Any) -> tuple[Any, Any]:
        """Held-out ``(x, y)`` as the framework's arrays, checked to be of equal length."""
        raise NotImplementedError

    def _eval_batch_sums(self, theta: Any, xb: Any, yb: Any, task: str) -> tuple[Any, int]:
        """``([loss · n_b, metric sum], count)`` over one batch: the sums as a framework
        vector (added over batches), and what the metric sum is divided by, on the host."""
        raise NotImplementedError

    def _eval_context(self) -> contextlib.AbstractContextManager[Any]:
        """The context ``evaluate``'s batches run in (none; PyTorch: no autograd, eval mode)."""
        return contextlib.nullcontext()

    def _to_host(self, total: Any) -> list[float]:
        """The summed ``[loss, metric]`` vector as two Python floats (one synchronisation)."""
        return np.asarray(total, dtype=np.float64).tolist()
