"""The regulariser R(θ) and its gradient for the TensorFlow adapter.

θ is a numpy array at the adapter's eager seam, so the named regularisers are computed in
numpy with no conversion there; inside a compiled step (``from_model(..., compile=True)``) θ is
a ``tf.Tensor`` and they are TensorFlow ops. A user's callable is a TensorFlow function of the
flat θ, run with its gradient inside one ``tf.function``. Which one a problem takes is
:class:`~manifoldwalk.adapter_api.ModelProblem`'s choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from manifoldwalk.adapter_api import ProblemError, reg_not_differentiable

NumpyFn = Callable[[np.ndarray], Any]


def l2_reg() -> tuple[NumpyFn, NumpyFn]:
    """``(θ ↦ θᵀθ, θ ↦ 2θ)`` on θ of either kind.

    Returns:
        ``(R, ∇R)``.
    """
    return _either(lambda t: np.asarray(t @ t), lambda t: tf.tensordot(t, t, 1)), (lambda t: 2 * t)


def weights_reg(weight_mask: np.ndarray) -> tuple[NumpyFn, NumpyFn]:
    """``(θ ↦ Σ mask·θ², θ ↦ 2·mask·θ)`` on θ of either kind: θᵀθ over the weights only.

    Args:
        weight_mask: 1 on weight entries (variables of rank ≥ 2), 0 elsewhere, in θ's dtype.

    Returns:
        ``(R, ∇R)``.
    """
    mask = tf.constant(weight_mask)
    value = _either(
        lambda t: np.asarray((weight_mask * t) @ t),
        lambda t: tf.tensordot(mask * t, t, 1),
    )
    return value, _either(lambda t: 2 * weight_mask * t, lambda t: 2 * mask * t)


def callable_reg(
    reg: Callable[[tf.Tensor], tf.Tensor], n: int, dtype: Any
) -> tuple[NumpyFn, NumpyFn]:
    """``(R, ∇R)`` for a differentiable TensorFlow function of the flat θ, run with its
    gradient inside one ``tf.function``.

    Args:
        reg: the function, of a ``tf.Tensor`` θ, returning a scalar.
        n: the length of θ.
        dtype: θ's numpy dtype.

    Returns:
        ``(R, ∇R)``, returning values of θ's kind (numpy or ``tf.Tensor``).

    Raises:
        ProblemError: ``reg`` does not return a scalar, fails when traced (e.g. calls
            numpy), or has no gradient connected to θ (e.g. through ``tf.stop_gradient``).
    """
    spec = tf.TensorSpec([n], tf.as_dtype(dtype))

    @tf.function(input_signature=[spec])
    def value_and_grad(theta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(theta)
            value = tf.convert_to_tensor(reg(theta))
        return tf.cast(value, theta.dtype), tape.gradient(value, theta)

    written_in = "TensorFlow (tf operations)"
    try:
        outputs = value_and_grad.get_concrete_function().structured_outputs
    except Exception as err:
        # a traced function's error ends with the line that says what failed
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[-1] if lines else type(err).__name__
        raise reg_not_differentiable(reg, written_in, detail.rstrip(".")) from err
    if outputs[1] is None:
        raise reg_not_differentiable(reg, written_in, "its value does not depend on θ on the tape")
    shape = tuple(outputs[0].shape)
    if shape != ():
        raise ProblemError(f"reg(θ) must return a scalar, got shape {shape}.")

    value = _either(lambda t: value_and_grad(t)[0].numpy(), lambda t: value_and_grad(t)[0])
    grad = _either(lambda t: value_and_grad(t)[1].numpy(), lambda t: value_and_grad(t)[1])
    return value, grad


def _either(on_numpy: NumpyFn, on_tensor: Callable[[tf.Tensor], tf.Tensor]) -> NumpyFn:
    """One function of θ that dispatches on θ's kind: numpy at the seam, TensorFlow traced."""
    return lambda theta: on_tensor(theta) if tf.is_tensor(theta) else on_numpy(theta)
