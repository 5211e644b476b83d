"""``JaxProblem``: a JAX model, loss and data as a manifoldwalk Problem on flat θ.

The model is an apply function ``apply_fn(params, x) -> outputs`` and a parameter pytree
(plain dicts, Flax ``variables["params"]``, the array part of an Equinox model: all reduce to
this). The trainable leaves are flattened with :func:`jax.flatten_util.ravel_pytree`; the loss
and its gradient are one function, jitted once, that unflattens θ, runs the model over the
data (batch by batch under ``lax.scan`` when ``batch_size`` is given) and returns the flat
gradient (differentiated leaf by leaf and joined, in place on a CPU: see
:meth:`FlatParams.join <manifoldwalk_jax._flat.FlatParams.join>`). θ, the loss and the
gradient are ``jax.Array`` on the parameters' device.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk.adapter_api import (
    EVAL_TASKS,
    Carry,
    DeviceLoop,
    ModelProblem,
    ProblemError,
    RegPair,
    accuracy_shape_error,
    check_batch_size,
    half_precision_error,
    trivial_loss,
    warn_if_untrained,
)
from manifoldwalk_jax._flat import FlatParams, PyTree
from manifoldwalk_jax._inputs import (
    _as_data,
    _batched,
    _check_order,
    _first_line,
    _single_device,
    _split_batches,
    _to_float64,
)
from manifoldwalk_jax._reg import RegFn, callable_reg, l2_reg, weights_reg
from manifoldwalk_jax.loop import compile_loop, jit_step

ApplyFn = Callable[[PyTree, jax.Array], Any]
LossFn = Callable[[Any, jax.Array], jax.Array]

TASKS = EVAL_TASKS
"""The tasks :meth:`JaxProblem.evaluate` knows: accuracy or mean squared error."""


class JaxProblem(ModelProblem):
    """A JAX model's training loss as a manifoldwalk Problem on the flat trainable θ.

    Build it with :func:`from_apply`, which documents the arguments; θ is one flat ``jax.Array``.
    Its members are those of :class:`~manifoldwalk._model_problem.ModelProblem`.

    Attributes:
        theta0: the trainable parameters as one flat ``jax.Array``.
        n_params: the length of θ.
        dtype: θ's dtype (the parameters').
        loop_cache: the compiled driver's chunks of earlier walks of this problem
            (:class:`~manifoldwalk.adapter_api.CompileCache`; ``loop_cache.clear()`` frees them).
    """

    _theta_type = "jax.Array"

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
        self._flat = FlatParams(params, trainable)
        if len(self._flat.leaf_dtypes) > 1:
            # θ would take the promoted dtype and each leaf be cut back to its own at every
            # evaluation: the walk would move θ in steps the model rounds away
            raise TypeError(
                f"the trainable parameters mix dtypes {self._flat.leaf_dtypes}; θ needs one: "
                "cast them, e.g. jax.tree.map(lambda a: a.astype(jnp.float32), params)."
            )
        if self._flat.leaf_dtypes[0] in ("float16", "bfloat16"):
            raise half_precision_error(
                self._flat.leaf_dtypes[0],
                "params = jax.tree.map(lambda p: p.astype(jnp.float32), params)",
            )
        self.theta0: jax.Array = self._flat.theta0
        self._device = _single_device(self.theta0)
        self._frozen = [jax.device_put(leaf, self._device) for leaf in self._flat.frozen]
        self._eval_frozen = self._frozen  # evaluate's frozen leaves, on its one device
        self._apply_fn, self._loss_fn = apply_fn, loss_fn
        super().__init__(self._flat.shapes, self.theta0.dtype, reg)
        x, y = _as_data(data, self._device, "data")
        n = int(x.shape[0])
        batch = check_batch_size(batch_size, "batch_size")
        batch = None if batch is None or batch >= n else batch
        self._check_loss_is_scalar(x[: batch or n], y[: batch or n])
        self._data = (x, y) if batch is None else _split_batches(x, y, batch)
        # XLA:CPU builds the flat gradient faster in place (FlatParams.join says why)
        in_place = self._device.platform == "cpu"
        value_and_grad = self._flat.value_and_grad(self._loss_of, in_place)
        if batch is None:
            self._loss_and_grad = jax.jit(value_and_grad)
            self._loss = jax.jit(self._loss_at)
        else:
            self._loss_and_grad = jax.jit(_batched(value_and_grad, n))
            self._loss = jax.jit(_batched(self._loss_at, n))
        self._eval_batch = jax.jit(self._eval_sums, static_argnames="task")
        self._warn_if_untrained(x, y)

    # --- compiled steps and chunks -------------------------------------------------------

    def compile_step(self, step: Callable[..., Any], donate: bool = False) -> Callable[..., Any]:
        """``jax.jit(step)``: the walk's pure step compiled into one XLA computation.

        ``manifoldwalk.walk`` calls this (unless ``driver=Eager(compile_step=False)``); the step then
        fuses the engine's vector algebra with this problem's loss and gradient.

        Args:
            step: a pure function of a walk state.
            donate: let the compiled function write its results into its first argument's
                buffers (``donate_argnums=0``); the caller must not read that argument again.
                The eager driver asks for it and keeps copies of what it needs.

        Returns:
            The jitted step.
        """
        return jit_step(step, donate)

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Carry], Carry]:
        """Up to K walk steps per host synchronisation, inside a jitted ``lax.while_loop``.

        ``manifoldwalk.walk(..., driver=Chunked(K))`` calls this; see
        :func:`manifoldwalk_jax.loop.compile_loop`. The compiled chunk is kept in
        :attr:`loop_cache`: a later walk with the same options does not compile again.

        Args:
            loop: the engine's device loop.

        Returns:
            The compiled chunk, ``carry -> carry``.
        """
        return compile_loop(loop, self.loop_cache)

    def as_float64(self) -> JaxProblem | None:
        """The same problem in float64, for :func:`manifoldwalk.check_gradient`.

        The parameters' and the data's floating leaves cast to float64, with the same
        ``apply_fn``, loss, regulariser, batch size and trainable mask.

        Returns:
            This problem if it is already float64; the copy; or None when
            ``jax_enable_x64`` is off (JAX would keep the copy in float32).
        """
        if self.dtype == jnp.float64:
            return self
        if not jax.config.jax_enable_x64:
            return None
        apply_fn, params, loss_fn, data, reg, batch_size, trainable = self._float64_args
        x, y = (_to_float64(a) for a in data)
        with warnings.catch_warnings():  # the warnings were this problem's
            warnings.simplefilter("ignore")
            return JaxProblem(
                apply_fn,
                jax.tree_util.tree_map(_to_float64, params),
                loss_fn,
                (x, y),
                reg=reg,
                batch_size=batch_size,
                trainable=trainable,
            )

    # --- between θ and the pytree ---------------------------------------------------------

    def unflatten(self, theta: jax.Array) -> PyTree:
        """The parameter pytree (frozen leaves included) for a flat θ, as ``apply_fn`` takes it.

        θ may be any array of length ``n_params`` (numpy too, e.g. a loaded WalkResult's).

        Raises:
            ValueError: θ is not flat of length ``n_params``.
        """
        theta = jnp.asarray(theta)
        self._check_shape(theta.shape)
        return self._flat.assemble(theta, self._frozen)

    def assign(self, theta: jax.Array) -> PyTree:
        """The parameter pytree for θ: JAX arrays are immutable, so this returns it.

        The same as :meth:`unflatten`; it exists so that code written for the PyTorch and
        Keras adapters (whose ``assign`` writes into the model) reads the same here:
        ``params = problem.assign(result.theta)``.
        """
        return self.unflatten(theta)

    def flatten(self, params: PyTree) -> jax.Array:
        """The flat θ of a parameter pytree of the model's structure (inverse of ``unflatten``).

        Raises:
            ProblemError: if ``params`` does not have the model's pytree structure.
        """
        return self._flat.flatten(params)

    # --- traced pieces --------------------------------------------------------------------

    def _loss_at(self, theta: jax.Array, frozen: list[Any], *data: Any) -> jax.Array:
        """The mean loss over ``data`` (one batch: ``xb, yb``) at flat θ (traced)."""
        loss = self._loss_of(self._flat.assemble(theta, frozen), *data)
        return jnp.asarray(loss, dtype=theta.dtype)

    def _loss_of(self, params: PyTree, xb: Any, yb: Any) -> jax.Array:
        """The mean loss of the parameter pytree over one batch (traced)."""
        return self._loss_fn(self._apply_fn(params, xb), yb)

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

    def _loss_and_grad_flat(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(L, ∇L)`` at a checked θ, in one jitted pass (on θ's device, in θ's dtype)."""
        return self._loss_and_grad(theta, self._frozen, *self._data)

    def _loss_flat(self, theta: jax.Array) -> jax.Array:
        """L at a checked θ, one jitted forward pass."""
        return self._loss(theta, self._frozen, *self._data)

    def _is_theta(self, theta: Any) -> bool:
        return isinstance(theta, jax.Array)  # tracers too

    def _theta_conversion(self) -> str:
        return "jnp.asarray(theta)"

    def _cast_hint(self, theta: Any) -> str:
        return f"theta.astype(jnp.{self.dtype})"

    def _l2_reg(self) -> RegPair:
        return l2_reg()

    def _weights_reg(self, mask: np.ndarray) -> RegPair:
        return weights_reg(self._on_params(jnp.asarray(mask, self.dtype)))

    def _callable_reg(self, fn: RegFn) -> RegPair:
        return callable_reg(fn, self.theta0)

    def _eval_theta(self, theta: Any) -> jax.Array:
        # no check: any array of θ's length, moved to the parameters' device
        return jax.device_put(jnp.asarray(theta), self._device)

    def _eval_data(self, x: Any, y: Any) -> tuple[jax.Array, jax.Array]:
        return _as_data((x, y), self._device, "evaluate")

    def _eval_batch_sums(
        self, theta: jax.Array, xb: jax.Array, yb: jax.Array, task: str
    ) -> tuple[jax.Array, int]:
        return self._eval_batch(theta, self._eval_frozen, xb, yb, task=task), int(xb.shape[0])

    def _on_params(self, a: jax.Array) -> jax.Array:
        """``a`` where θ lives (the parameters' device)."""
        return jax.device_put(a, self._device)

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

    Returns:
        A :class:`JaxProblem`; walk it with ``manifoldwalk.walk(problem, problem.theta0)``.

    Raises:
        ProblemError: no trainable parameters, a non-float trainable leaf, inputs and targets
            of different lengths, ``apply_fn`` or ``loss_fn`` failing on the data (often
            swapped), a loss (or a callable ``reg``) that is not a scalar, or a callable
            ``reg`` that ``jax.grad`` cannot differentiate at θ0.

    Warns:
        UserWarning: the model looks untrained, its loss at θ0 not well below the trivial loss
            (that of predicting the class frequencies, or the targets' mean), for a loss
            recognised as cross-entropy or MSE on the first 8 examples (one full loss
            evaluation at θ0 decides).
        TypeError: arguments out of order (``apply_fn`` or ``loss_fn`` not callable, or a
            function as ``params``), a bad ``trainable`` mask leaf, trainable leaves of mixed
            dtypes, or half-precision (float16, bfloat16) ones.
        ValueError: an unknown ``reg`` name or a bad ``batch_size``.
    """
    return JaxProblem(
        apply_fn, params, loss_fn, data, reg=reg, batch_size=batch_size, trainable=trainable
    )
