"""``JaxProblem``: a JAX model, loss and ``(x, y)`` data as a manifoldwalk Problem on flat θ.

The model is an apply function ``apply_fn(params, x) -> outputs`` and a parameter pytree
(plain dicts, Flax ``variables["params"]``, the array part of an Equinox model: all reduce to
this). It is :class:`~manifoldwalk_jax._base.JaxBase` (the path ``from_loss`` takes too) with
the loss of one batch ``loss_fn(apply_fn(params, x), y)``: the trainable leaves are flattened
with :func:`jax.flatten_util.ravel_pytree`; the loss and its gradient are one function, jitted
once, that unflattens θ, runs the model over the data (batch by batch under ``lax.scan`` when
``batch_size`` is given) and returns the flat gradient (differentiated leaf by leaf and joined,
in place on a CPU: see :meth:`FlatParams.join <manifoldwalk_jax._flat.FlatParams.join>`). θ,
the loss and the gradient are ``jax.Array`` on the parameters' device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk._groups import build_warning_at_caller, refuse_group_options
from manifoldwalk.adapter_api import (
    EVAL_TASKS,
    ProblemError,
    accuracy_shape_error,
    check_batch_size,
    trivial_loss,
    warn_if_untrained,
)
from manifoldwalk_jax._base import JaxBase
from manifoldwalk_jax._device_data import DeviceBatches
from manifoldwalk_jax._flat import PyTree
from manifoldwalk_jax._inputs import _as_data, _check_order, _first_line, _to_float64
from manifoldwalk_jax._reg import RegFn

ApplyFn = Callable[[PyTree, jax.Array], Any]
"""``apply_fn(params, x) -> outputs``: the model, as a function of its parameter pytree."""
LossFn = Callable[[Any, jax.Array], jax.Array]
"""``loss_fn(outputs, targets) -> 0-d array``: the mean loss of a batch."""

TASKS = EVAL_TASKS
"""The tasks :meth:`JaxProblem.evaluate` knows: accuracy or mean squared error."""


class JaxProblem(JaxBase):
    """A JAX model's training loss as a manifoldwalk Problem on the flat trainable θ.

    Build it with :func:`from_apply`, which documents the arguments; θ is one flat ``jax.Array``.
    Its members are those of :class:`~manifoldwalk._model_problem.ModelProblem`, plus
    ``flatten``, ``compile_step``, ``compile_loop`` and ``as_float64``.

    Attributes:
        theta0: the trainable parameters as one flat ``jax.Array``.
        n_params: the length of θ.
        dtype: θ's dtype (the parameters').
        loop_cache: the compiled driver's chunks of earlier walks of this problem
            (:class:`~manifoldwalk.adapter_api.CompileCache`; ``loop_cache.clear()`` frees them).
    """

    def __init__(
        self,
        apply_fn: ApplyFn,
        params: PyTree,
        loss_fn: LossFn,
        data: tuple[Any, Any],
        *,
        reg: str | RegFn = "l2",
        batch_size: int | None = None,
        trainable: PyTree | None = None,
    ) -> None:
        _check_order(apply_fn, params, loss_fn)
        # what as_float64 builds its copy from
        self._float64_args = (apply_fn, params, loss_fn, data, reg, batch_size, trainable)
        self._init_params(params, trainable, reg)
        self._apply_fn, self._loss_fn = apply_fn, loss_fn
        x, y = _as_data(data, self._device, "data")
        n = int(x.shape[0])
        batch = check_batch_size(batch_size, "batch_size")
        batch = None if batch is None or batch >= n else batch
        self._check_loss_is_scalar(x[: batch or n], y[: batch or n])
        self._set_batches(self._batch_loss, DeviceBatches.even((x, y), batch, self._on_params))
        self._eval_batch = jax.jit(self._eval_sums, static_argnames="task")
        self._warn_if_untrained(x, y)

    def _float64_copy(self) -> JaxProblem:
        """The parameters' and the data's floating leaves cast to float64, with the same
        ``apply_fn``, loss, regulariser, batch size and trainable mask."""
        apply_fn, params, loss_fn, data, reg, batch_size, trainable = self._float64_args
        x, y = (_to_float64(a) for a in data)
        return JaxProblem(
            apply_fn,
            jax.tree_util.tree_map(_to_float64, params),
            loss_fn,
            (x, y),
            reg=reg,
            batch_size=batch_size,
            trainable=trainable,
        )

    # --- traced pieces --------------------------------------------------------------------

    def _loss_at(self, theta: jax.Array, frozen: list[Any], *data: Any) -> jax.Array:
        """The mean loss over ``data`` (one batch: ``xb, yb``) at flat θ (traced)."""
        loss = self._loss_of(self._flat.assemble(theta, frozen), *data)
        return jnp.asarray(loss, dtype=theta.dtype)

    def _loss_of(self, params: PyTree, xb: Any, yb: Any) -> jax.Array:
        """The mean loss of the parameter pytree over one batch (traced)."""
        return self._loss_fn(self._apply_fn(params, xb), yb)

    def _batch_loss(self, params: PyTree, batch: tuple[Any, ...]) -> jax.Array:
        """:meth:`_loss_of` on a batch given as one tuple (what the shared path passes)."""
        return self._loss_of(params, *batch)

    def _eval_sums(
        self, theta: jax.Array, frozen: list[Any], xb: Any, yb: Any, *, task: str
    ) -> jax.Array:
        """``[loss · n_b, metric · n_b]`` over one batch (traced)."""
        outputs = self._apply_fn(self._flat.assemble(theta, frozen), xb)
        n_b = xb.shape[0]
        loss = jnp.asarray(self._loss_fn(outputs, yb), dtype=theta.dtype) * n_b
        if task == "classification":
            if outputs.ndim < 2 or outputs.shape[-1] < 2:
                raise accuracy_shape_error(outputs.shape)
            labels = jnp.argmax(yb, axis=-1) if yb.ndim == outputs.ndim else yb
            metric = jnp.sum(jnp.argmax(outputs, axis=-1) == labels)
        else:
            err = outputs - jnp.reshape(yb, outputs.shape)
            metric = jnp.sum(err * err) * n_b / outputs.size
        return jnp.stack([loss, jnp.asarray(metric, dtype=theta.dtype)])

    def _warn_if_untrained(self, x: jax.Array, y: jax.Array) -> None:
        """Warn when L0 is not well below the trivial loss (a recognised cross-entropy or MSE;
        the loss is recognised on 8 examples, then evaluated in full at θ0, only then)."""
        xb, yb = x[:8], y[:8]
        outputs = self._apply_fn(self.unflatten(self.theta0), xb)
        if not isinstance(outputs, jax.Array):
            return
        probe = float(self._loss_fn(outputs, yb))
        trivial = trivial_loss(np.asarray(outputs), np.asarray(yb), probe, np.asarray(y))
        if trivial is not None:
            # from_apply, __init__, this method lie between the user's call and the warning
            warn_if_untrained(float(self._loss_flat(self.theta0)), trivial, stacklevel=4)

    # --- ModelProblem's hooks -------------------------------------------------------------

    def _eval_data(self, x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
        return _as_data((x, y), self._device, "evaluate")

    def _eval_batch_sums(
        self, theta: jax.Array, xb: jax.Array, yb: jax.Array, task: str
    ) -> tuple[jax.Array, int]:
        return self._eval_batch(theta, self._eval_frozen, xb, yb, task=task), int(xb.shape[0])

    def _check_loss_is_scalar(self, xb: Any, yb: Any) -> None:
        """Raise if the loss of one batch is not a scalar (traced shapes only; nothing runs),
        or if ``apply_fn`` or ``loss_fn`` cannot take what they are given (the usual sign of
        arguments in the wrong order)."""
        order = "from_apply(apply_fn, params, loss_fn, data)"
        try:
            outputs = jax.eval_shape(self._apply_fn, self.unflatten(self.theta0), xb)
        except Exception as err:
            raise ProblemError(
                f"apply_fn(params, x) fails on the training inputs: {_first_line(err)}. "
                f"Check the arguments' order, {order}: apply_fn takes the parameters and a "
                "batch of inputs."
            ) from err
        try:
            shape = jax.eval_shape(self._loss_fn, outputs, yb).shape
        except Exception as err:
            raise ProblemError(
                f"loss_fn(outputs, targets) fails on the model's outputs: {_first_line(err)}. "
                f"Check the arguments' order, {order}: loss_fn takes the outputs, then the "
                "targets."
            ) from err
        if shape != ():
            raise ProblemError(
                f"loss_fn(outputs, targets) must return a scalar (the mean loss over the batch), "
                f"got shape {shape}; reduce it, e.g. with .mean()."
            )


def from_apply(
    apply_fn: ApplyFn,
    params: PyTree,
    loss_fn: LossFn,
    data: tuple[Any, Any],
    *,
    reg: str | RegFn = "l2",
    batch_size: int | None = None,
    trainable: PyTree | None = None,
    groups: Any = None,
    n_groups: int | None = None,
    jacobian: str = "split",
) -> JaxProblem:
    """Wrap a JAX model, its loss and its training data as a manifoldwalk Problem.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``, a pure JAX function (Flax:
            ``lambda p, x: model.apply({"params": p}, x)``).
        params: the parameter pytree; its trainable leaves, flattened, are θ, and must share
            one floating dtype, θ's: float32 or float64 (cast float16 or bfloat16 leaves
            first, ``jax.tree.map(lambda p: p.astype(jnp.float32), params)``). Use float64
            leaves for a float64 walk (with ``jax.config.update("jax_enable_x64", True)`` set
            by you: the adapter never changes JAX's global configuration).
        loss_fn: ``loss_fn(outputs, targets)`` returning the mean loss over the batch (a
            scalar), e.g. ``optax.softmax_cross_entropy_with_integer_labels(o, t).mean()``.
        data: ``(x, y)``, the training inputs and targets (arrays of equal length), moved once
            to the parameters' device.
        reg: the regulariser R: ``"l2"`` (θᵀθ over every trainable parameter, the paper's
            walk), ``"l2-weights"`` (θᵀθ over leaves of rank ≥ 2 only: kernels, not biases or
            normalisation scales; Keras ``kernel_regularizer`` semantics), or a differentiable
            function of the flat θ (a ``jax.Array``) returning a scalar.
        batch_size: None for one full batch; else the loss and gradient are accumulated over
            batches of this size (a ``lax.scan`` plus a remainder batch), giving exactly the
            full-batch mean, with the memory of one batch.
        trainable: frozen parameters: None (every leaf is trainable) or a pytree of bools with
            the structure of ``params`` (or a prefix of it); leaves marked False are held
            fixed and are not part of θ. Equivalently, leave frozen arrays out of ``params``
            and close over them in ``apply_fn``.
        groups: None (one constraint, the mean loss over every example), or one integer group
            id per example, 0..k−1 (e.g. ``groups=y`` for integer class labels): the problem
            is then a k-constraint problem
            (:class:`~manifoldwalk_jax.groups.JaxGroupsProblem`) whose k losses are
            ``loss_fn`` over each group's examples, from one copy of the data reordered group
            by group once; ``walk`` holds every group's loss at its level. Not with
            ``batch_size``; every group needs an example (a group of one warns).
        n_groups: with ``groups``: k, when the ids need not reach k − 1 (an id of k or more is
            refused, and so is an empty group); None: the largest id plus one.
        jacobian: with ``groups``: how the k gradients are taken, ``"split"`` (each group's
            loss and gradient over its own examples: about one full-batch gradient in all,
            the fastest measured), ``"passes"`` (one forward pass over every example,
            ``jax.vjp``, then k pullbacks) or ``"batched"`` (the k pullbacks as one
            ``jax.vmap``, as ``jax.jacrev``).

    Returns:
        A :class:`JaxProblem`; walk it with ``manifoldwalk.walk(problem, problem.theta0)``.
        With ``groups``, a :class:`~manifoldwalk_jax.groups.JaxGroupsProblem`.

    Raises:
        ProblemError: no trainable parameters, a non-float trainable leaf, inputs and targets
            of different lengths, ``apply_fn`` or ``loss_fn`` failing on the data (often
            swapped), a loss (or a callable ``reg``) that is not a scalar, or a callable
            ``reg`` that ``jax.grad`` cannot differentiate at θ0. With ``groups``: ids not
            one per example, out of range (named with their examples) or leaving a group
            empty.
        TypeError: arguments out of order (``apply_fn`` or ``loss_fn`` not callable, or a
            function as ``params``), a bad ``trainable`` mask leaf, trainable leaves of mixed
            dtypes, half-precision (float16, bfloat16) ones, or group ids that are not
            integers.
        ValueError: an unknown ``reg`` name or a bad ``batch_size``; ``batch_size`` or an
            unknown ``jacobian`` with ``groups``; ``n_groups`` or ``jacobian`` without.

    Warns:
        UserWarning: the model looks untrained, its loss at θ0 not well below the trivial loss
            (that of predicting the class frequencies, or the targets' mean), for a loss
            recognised as cross-entropy or MSE on the first 8 examples (one full loss
            evaluation at θ0 decides). With ``groups``: a group of one example.
    """
    if groups is None:
        refuse_group_options(n_groups, jacobian)
        return JaxProblem(
            apply_fn, params, loss_fn, data, reg=reg, batch_size=batch_size, trainable=trainable
        )
    if batch_size is not None:
        raise ValueError(
            "batch_size does not apply with groups=: each group's loss is taken over its "
            "examples in one batch. Leave batch_size out."
        )
    from manifoldwalk_jax.groups import JaxGroupsProblem  # (imports this module)

    return build_warning_at_caller(
        lambda: JaxGroupsProblem(
            apply_fn,
            params,
            loss_fn,
            data,
            groups=groups,
            n_groups=n_groups,
            jacobian=jacobian,
            reg=reg,
            trainable=trainable,
        )
    )
