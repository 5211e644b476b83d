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

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk._adapter_checks import (
    EVAL_TASKS,
    accuracy_shape_error,
    check_batch_size,
    check_eval_task,
    check_examples,
    check_pair,
    eval_metrics,
)
from manifoldwalk._chunked import Carry, DeviceLoop
from manifoldwalk._compile_cache import CompileCache
from manifoldwalk.problem import ProblemError
from manifoldwalk_jax._flat import FlatParams, PyTree
from manifoldwalk_jax._reg import RegFn, make_reg
from manifoldwalk_jax.loop import compile_loop, jit_step

ApplyFn = Callable[[PyTree, jax.Array], Any]
LossFn = Callable[[Any, jax.Array], jax.Array]

TASKS = EVAL_TASKS
"""The tasks :meth:`JaxProblem.evaluate` knows: accuracy or mean squared error."""


class JaxProblem:
    """A JAX model's training loss as a manifoldwalk Problem on the flat trainable θ.

    Build it with :func:`from_apply`, which documents the arguments. Besides the Problem
    protocol (``loss``, ``grad``, ``loss_and_grad``, ``reg``, ``reg_grad`` on flat θ) it has
    ``theta0``, ``n_params``, ``unflatten``, ``flatten``, ``assign`` and ``evaluate``.

    Attributes:
        theta0: the trainable parameters as one flat ``jax.Array``.
        n_params: the length of θ.
        loop_cache: the compiled driver's chunks of earlier walks of this problem
            (:class:`~manifoldwalk._compile_cache.CompileCache`; ``loop_cache.clear()`` frees them).
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
        for name, fn in (("apply_fn", apply_fn), ("loss_fn", loss_fn)):
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}.")
        self._flat = FlatParams(params, trainable)
        if len(self._flat.leaf_dtypes) > 1:
            # θ would take the promoted dtype and each leaf be cut back to its own at every
            # evaluation: the walk would move θ in steps the model rounds away
            raise TypeError(
                f"the trainable parameters mix dtypes {self._flat.leaf_dtypes}; θ needs one: "
                "cast them, e.g. jax.tree.map(lambda a: a.astype(jnp.float32), params)."
            )
        self.theta0: jax.Array = self._flat.theta0
        self.n_params: int = int(self.theta0.shape[0])
        self._device = _single_device(self.theta0)
        self._frozen = [jax.device_put(leaf, self._device) for leaf in self._flat.frozen]
        self._apply_fn, self._loss_fn = apply_fn, loss_fn
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
        self._reg, self._reg_grad = make_reg(reg, self.theta0, self._flat.weight_mask)
        self._eval_batch = jax.jit(self._eval_sums, static_argnames="task")
        self.loop_cache = CompileCache()

    # --- the Problem protocol -------------------------------------------------------------

    def loss_and_grad(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The full-batch mean loss L(θ) and its gradient ∇L(θ), in one jitted pass.

        Args:
            theta: flat θ (``jax.Array`` of length ``n_params``).

        Returns:
            ``(L, ∇L)``: a 0-d array and an array like θ, on θ's device, in θ's dtype.

        Raises:
            TypeError: θ is not a ``jax.Array`` (a numpy θ, e.g. a loaded WalkResult's: pass
                ``jnp.asarray(theta)``) or not in the parameters' dtype.
            ValueError: θ is not flat of length ``n_params``.
        """
        self._check_theta(theta)
        return self._loss_and_grad(theta, self._frozen, *self._data)

    def compile_step(self, step, donate: bool = False):
        """``jax.jit(step)``: the walk's pure step compiled into one XLA computation.

        ``manifoldwalk.walk`` calls this (unless ``compile_step=False``); the step then
        fuses the engine's vector algebra with this problem's loss and gradient.

        Args:
            step: a pure function of a walk state.
            donate: let the compiled function write its results into its first argument's
                buffers (``donate_argnums=0``); the caller must not read that argument again.
                The eager driver asks for it and keeps copies of what it needs.
        """
        return jit_step(step, donate)

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Carry], Carry]:
        """Up to K walk steps per host synchronisation, inside a jitted ``lax.while_loop``.

        ``manifoldwalk.walk(..., steps_per_sync=K)`` calls this; see
        :func:`manifoldwalk_jax.loop.compile_loop`. The compiled chunk is kept in
        :attr:`loop_cache`: a later walk with the same options does not compile again.
        """
        return compile_loop(loop, self.loop_cache)

    def loss(self, theta: jax.Array) -> jax.Array:
        """The full-batch mean training loss L(θ) as a 0-d array (forward pass only).

        Raises:
            TypeError, ValueError: as :meth:`loss_and_grad`.
        """
        self._check_theta(theta)
        return self._loss(theta, self._frozen, *self._data)

    def grad(self, theta: jax.Array) -> jax.Array:
        """The gradient ∇L(θ), an array like θ."""
        return self.loss_and_grad(theta)[1]

    def reg(self, theta: jax.Array) -> jax.Array:
        """The regulariser R(θ) as a 0-d array."""
        return self._reg(theta)

    def reg_grad(self, theta: jax.Array) -> jax.Array:
        """The gradient ∇R(θ), an array like θ."""
        return self._reg_grad(theta)

    # --- between θ and the pytree ---------------------------------------------------------

    def unflatten(self, theta: jax.Array) -> PyTree:
        """The parameter pytree (frozen leaves included) for a flat θ, as ``apply_fn`` takes it.

        θ may be any array of length ``n_params`` (numpy too, e.g. a loaded WalkResult's).

        Raises:
            ValueError: θ is not flat of length ``n_params``.
        """
        theta = jnp.asarray(theta)
        self._check_length(theta)
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

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(
        self,
        theta: jax.Array,
        x: Any,
        y: Any,
        *,
        task: str = "classification",
        batch_size: int = 1024,
    ) -> dict[str, float]:
        """The mean loss and accuracy (or MSE) of θ on ``(x, y)``, in batches.

        Meant for the walk's metric callables, e.g.
        ``metrics={"test_loss": lambda th: problem.evaluate(th, x_te, y_te)["loss"]}``.
        Pass jax arrays to avoid a host-to-device copy on every call.

        Args:
            theta: flat θ.
            x, y: held-out inputs and targets (same length).
            task: ``"classification"`` (accuracy: argmax of the outputs' last axis against
                integer labels, or against the argmax of one-hot labels) or ``"regression"``
                (mean squared error over examples and outputs).
            batch_size: examples per batch.

        Returns:
            ``{"loss": float, "accuracy": float}`` or ``{"loss": float, "mse": float}``.

        Raises:
            ValueError: an unknown task or a bad batch size.
            ProblemError: ``x`` and ``y`` of different lengths, or accuracy asked of a model
                with a single output column.
        """
        check_eval_task(task)
        batch = check_batch_size(batch_size, "batch_size")
        theta = jnp.asarray(theta)
        x, y = _as_data((x, y), self._device, "evaluate")
        n = int(x.shape[0])
        total = None
        for start in range(0, n, batch):
            sums = self._eval_batch(
                theta, self._frozen, x[start : start + batch], y[start : start + batch], task=task
            )
            total = sums if total is None else total + sums
        loss_sum, metric_sum = np.asarray(total, dtype=np.float64).tolist()
        return eval_metrics(task, loss_sum, metric_sum, n)

    # --- traced pieces --------------------------------------------------------------------

    def _loss_at(self, theta: jax.Array, frozen: list[Any], xb: Any, yb: Any) -> jax.Array:
        """The mean loss over one batch (traced)."""
        loss = self._loss_of(self._flat.assemble(theta, frozen), xb, yb)
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

    def _check_theta(self, theta: Any) -> None:
        """Raise unless θ is a flat ``jax.Array`` (or tracer) of the parameters' length and
        dtype: said here, not as an error from deep inside the engine or the unravelling."""
        if not isinstance(theta, jax.Array):
            kind = f"{type(theta).__module__}.{type(theta).__name__}"
            raise TypeError(
                f"θ must be a jax.Array, got {kind}; convert it with jnp.asarray(theta) first "
                "(a loaded WalkResult's θ is numpy)."
            )
        self._check_length(theta)
        if theta.dtype != self.theta0.dtype:
            raise TypeError(
                f"θ has dtype {theta.dtype} but the model's parameters are "
                f"{self.theta0.dtype}; cast θ with theta.astype(jnp.{self.theta0.dtype}) (or "
                "build the problem from parameters of θ's dtype) first."
            )

    def _check_length(self, theta: Any) -> None:
        if tuple(theta.shape) != (self.n_params,):
            raise ValueError(
                f"θ must be a flat array of length {self.n_params}, got shape {tuple(theta.shape)}."
            )

    def _check_loss_is_scalar(self, xb: Any, yb: Any) -> None:
        """Raise if the loss of one batch is not a scalar (traced shapes only; nothing runs)."""
        outputs = jax.eval_shape(self._apply_fn, self.unflatten(self.theta0), xb)
        shape = jax.eval_shape(self._loss_fn, outputs, yb).shape
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
            one floating dtype, θ's. Use float64
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
            of different lengths, or a loss (or a callable ``reg``) that is not a scalar.
        TypeError: ``apply_fn`` or ``loss_fn`` not callable, a bad ``trainable`` mask leaf, or
            trainable leaves of mixed dtypes.
        ValueError: an unknown ``reg`` name or a bad ``batch_size``.
    """
    return JaxProblem(
        apply_fn, params, loss_fn, data, reg=reg, batch_size=batch_size, trainable=trainable
    )


def _single_device(theta: jax.Array) -> Any:
    """The one device θ lives on (the adapter does not shard)."""
    devices = theta.devices()
    if len(devices) != 1:
        raise ProblemError(
            f"the parameters span {len(devices)} devices; manifoldwalk_jax needs them on one."
        )
    return next(iter(devices))


def _as_data(data: Any, device: Any, what: str) -> tuple[jax.Array, jax.Array]:
    """``(x, y)`` as jax arrays on ``device``, checked to be of equal length."""
    check_pair(data, what)
    x, y = (jax.device_put(jnp.asarray(a), device) for a in data)
    check_examples(what, x.shape, y.shape)
    return x, y


def _split_batches(x: jax.Array, y: jax.Array, batch: int) -> tuple[jax.Array, ...]:
    """``(xs, ys, x_rest, y_rest)``: full batches stacked on a new leading axis, then the rest."""
    n_full = x.shape[0] // batch
    cut = n_full * batch

    def stack(a: jax.Array) -> jax.Array:
        return jnp.reshape(a[:cut], (n_full, batch, *a.shape[1:]))

    return stack(x), stack(y), x[cut:], y[cut:]


def _batched(per_batch: Callable[..., Any], n: int) -> Callable[..., Any]:
    """Turn a per-batch mean into the exact full-data mean Σ_b (n_b / n) f(batch_b).

    ``per_batch(theta, frozen, xb, yb)`` returns a pytree (a loss, or a loss and gradient);
    the result runs it over the stacked full batches with ``lax.scan`` (memory of one
    batch) and once more over the remainder, if there is one.
    """

    def total(theta, frozen, xs, ys, x_rest, y_rest):  # noqa: ANN001, ANN202 - traced
        weight = xs.shape[1] / n

        def body(acc, batch):  # noqa: ANN001, ANN202
            out = per_batch(theta, frozen, *batch)
            return jax.tree_util.tree_map(lambda a, o: a + o * weight, acc, out), None

        shapes = jax.eval_shape(per_batch, theta, frozen, xs[0], ys[0])
        init = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        acc, _ = jax.lax.scan(body, init, (xs, ys))
        if x_rest.shape[0]:
            out = per_batch(theta, frozen, x_rest, y_rest)
            acc = jax.tree_util.tree_map(lambda a, o: a + o * (x_rest.shape[0] / n), acc, out)
        return acc

    return total
