"""``TFGroupsProblem``: the mean losses of k groups of training examples as one k-constraint
problem (``from_model(..., groups=ids)``).

The examples are reordered once, group by group (``manifoldwalk._groups``), so that each group
is one contiguous slice of the data tensors. ``losses_and_jacobian(θ)`` is one ``tf.function``
(traced once) returning the k group losses and their gradients as the rows of a (k, P) array,
on the eager numpy seam. Three ways to take them (``jacobian=``), measured in
``benchmarks/multi_constraint.py``:

- ``"split"`` (the default): each group's loss and gradient over its own examples (k
  forward-and-reverse passes that together cost about one full-batch pass);
- ``"passes"``: one forward pass over all the examples under a persistent ``GradientTape``,
  then k ``tape.gradient`` calls, each over every example;
- ``"batched"``: the same forward pass, then ``tape.jacobian(..., experimental_use_pfor=True)``
  (the k reverse passes vectorised).

The problem is a :class:`~manifoldwalk_tf.TFProblem` besides: ``loss``, ``loss_and_grad``
and ``evaluate`` are the full-batch mean over every example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from manifoldwalk._groups import GroupedLosses, GroupLayout, check_jacobian, layout_groups
from manifoldwalk_tf._wrap_checks import _as_tensors
from manifoldwalk_tf.problem import LossFn, TFProblem

__all__ = ["TFGroupsProblem"]

_ZERO = tf.UnconnectedGradients.ZERO


class TFGroupsProblem(GroupedLosses, TFProblem):
    """The mean training loss of each of k groups of examples, as one k-constraint problem.

    Build it with ``manifoldwalk_tf.from_model(model, loss_fn, (x, y), groups=ids)``, which
    documents the arguments; walk it with ``manifoldwalk.walk(problem, problem.theta0)``. θ
    is a flat numpy array.

    Its attributes ``n_constraints`` (k), ``dim``, ``group_sizes``, ``loss_weights``,
    ``jacobian`` and ``layout`` are those of :class:`~manifoldwalk._groups.GroupedLosses`.
    """

    def __init__(
        self,
        model: keras.Model,
        loss_fn: LossFn | keras.losses.Loss,
        data: tuple[Any, Any],
        *,
        groups: Any,
        n_groups: int | None = None,
        jacobian: str = "split",
        reg: str | Callable[[tf.Tensor], tf.Tensor] = "l2",
    ) -> None:
        self.jacobian = check_jacobian(jacobian)
        x, y = _as_tensors(data, "data")
        layout = layout_groups(groups, int(x.shape[0]), n_groups)
        if layout.order is not None:  # group by group, once
            x, y = tf.gather(x, layout.order), tf.gather(y, layout.order)
        super().__init__(model, loss_fn, (x, y), reg=reg)
        self.layout: GroupLayout = layout
        self._slices = layout.slices()
        spec = [tf.TensorSpec([self.n_params], self._tf_dtype)]
        self._tf_losses_and_jacobian = tf.function(self._jacobian_fn(), input_signature=spec)
        self._tf_losses = tf.function(self._losses_fn(), input_signature=spec)

    # --- the k-constraint protocol --------------------------------------------------------

    def losses_and_jacobian(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The k group losses and their gradients, the rows of the Jacobian (one
        ``tf.function`` call).

        Args:
            theta: flat θ, a numpy array of length ``n_params`` in θ's dtype.

        Returns:
            ``(L, J)``: a (k,) and a (k, P) numpy array, θ's dtype.

        Raises:
            TypeError, ProblemError: θ of the wrong kind, dtype or shape (as
                :meth:`loss_and_grad`).
        """
        losses, jac = self._tf_losses_and_jacobian(self._checked(theta))
        return losses.numpy(), jac.numpy()

    def losses(self, theta: np.ndarray) -> np.ndarray:
        """The k group losses at θ, forward passes only (a (k,) numpy array).

        Raises:
            TypeError, ProblemError: as :meth:`losses_and_jacobian`.
        """
        return self._tf_losses(self._checked(theta)).numpy()

    # --- traced pieces --------------------------------------------------------------------

    def _one_pass(self, theta: tf.Tensor) -> tf.Tensor:
        """The k group losses from one forward pass over every example."""
        outputs = self._outputs(theta, self._x)
        return tf.stack(
            [tf.cast(self._loss_fn(outputs[s], self._y[s]), theta.dtype) for s in self._slices]
        )

    def _losses_fn(self) -> Callable[[tf.Tensor], tf.Tensor]:
        """``θ -> L``: per group, or from one forward pass."""
        if self.jacobian != "split":
            return self._one_pass

        def losses(theta: tf.Tensor) -> tf.Tensor:
            return tf.stack(
                [self._batch_loss(theta, (self._x[s], self._y[s])) for s in self._slices]
            )

        return losses

    def _jacobian_fn(self) -> Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
        """``θ -> (L, J)``, the way ``jacobian`` names."""
        if self.jacobian == "split":

            def split(theta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                pairs = [self._with_grad(theta, (self._x[s], self._y[s])) for s in self._slices]
                return tf.stack([v for v, _ in pairs]), tf.stack([g for _, g in pairs])

            return split

        persistent = self.jacobian == "passes"

        def one_pass(theta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape(persistent=persistent) as tape:
                tape.watch(theta)
                losses = self._one_pass(theta)
                parts = tf.unstack(losses) if persistent else None
            if persistent:
                rows = [tape.gradient(part, theta, unconnected_gradients=_ZERO) for part in parts]
                del tape
                return losses, tf.stack(rows)
            jac = tape.jacobian(
                losses, theta, unconnected_gradients=_ZERO, experimental_use_pfor=True
            )
            return losses, jac

        return one_pass
