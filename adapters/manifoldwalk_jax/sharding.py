"""A full-batch loss and gradient with the training data sharded over several JAX devices.

The training set is split along its example axis over a one-axis device mesh
(``NamedSharding(mesh, P("batch"))``) and θ is replicated on every device, so one jitted
loss-and-gradient runs as a single SPMD program: each device computes its shard's part and XLA
adds the parts with an all-reduce of P + 1 numbers. The result is the exact full-batch mean.
When the number of examples is not a multiple of the number of devices, the largest multiple
is sharded and the few examples left over (fewer than the devices) are replicated; the two
means are combined weighted by their example counts.

    problem = manifoldwalk_jax.sharding.from_apply(apply_fn, params, loss_fn, (x, y))
    result = manifoldwalk.walk(problem, problem.theta0)

The walk's step is compiled with the sharded data as arguments of the compiled function
(never as constants baked into it), so each device holds only its shard. See
``docs/distributed.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from manifoldwalk.adapter_api import Carry, DeviceLoop, ProblemError, check_examples, check_pair
from manifoldwalk_jax._device_data import DeviceBatches
from manifoldwalk_jax._flat import PyTree
from manifoldwalk_jax._reg import RegFn
from manifoldwalk_jax.loop import compile_loop
from manifoldwalk_jax.problem import ApplyFn, JaxProblem, LossFn

AXIS = "batch"
"""The name of the mesh axis the examples are split over."""


class ShardedJaxProblem(JaxProblem):
    """A JAX model's training loss with the data sharded over devices, θ replicated.

    Build it with :func:`from_apply`, which documents the arguments. It is a
    :class:`~manifoldwalk_jax.JaxProblem` (``loss``, ``grad``, ``loss_and_grad``, ``reg``,
    ``reg_grad`` on flat θ, ``theta0``, ``n_params``, ``unflatten``, ``flatten``, ``assign``,
    ``evaluate``) whose training data lie split over a device mesh; ``compile_step`` and
    ``compile_loop`` jit the walk's step, or the compiled driver's chunk, with the data as
    arguments. θ may be any array (a numpy one is placed on the mesh automatically).

    Attributes:
        mesh: the one-axis device mesh (axis ``"batch"``).
        theta0: the trainable parameters as one flat ``jax.Array``, replicated on the mesh.
        n_params: the length of θ.
        n_examples: the number of training examples.
        n_sharded: how many of them are split over the devices (a multiple of their number);
            the other ``n_examples - n_sharded`` are replicated.
        data_sharding: the sharding of the training inputs and targets (over ``"batch"``).
        replicated: the sharding of θ (a full copy on every device).
        loop_cache: the compiled driver's chunks of earlier walks
            (:class:`~manifoldwalk.adapter_api.CompileCache`).
    """

    def __init__(
        self,
        apply_fn: ApplyFn,
        params: PyTree,
        loss_fn: LossFn,
        data: tuple[Any, Any],
        *,
        devices: Sequence[Any] | None = None,
        reg: str | RegFn = "l2",
        trainable: PyTree | None = None,
    ) -> None:
        check_pair(data, "data")
        x, y = (np.asarray(a) if not isinstance(a, jax.Array) else a for a in data)
        check_examples("data", x.shape, y.shape)
        devices = _check_devices(devices)
        self.mesh = Mesh(np.asarray(devices, dtype=object), (AXIS,))
        self.data_sharding = NamedSharding(self.mesh, P(AXIS))
        self.replicated = NamedSharding(self.mesh, P())
        # the single-device problem checks the model, the loss and the parameters on one
        # example, so that the training set is never copied whole onto one device; its
        # jitted loss takes the data as arguments, which are then swapped for the shards
        super().__init__(apply_fn, params, loss_fn, (x[:1], y[:1]), reg=reg, trainable=trainable)
        self.n_examples = int(x.shape[0])
        self.n_sharded = self.n_examples - self.n_examples % len(devices)
        self.theta0: jax.Array = jax.device_put(self.theta0, self.replicated)
        frozen, *arrays = self._place(x, y)
        self._frozen = frozen
        # the four arrays as one batch, whose loss is the exact mean over both parts
        whole = DeviceBatches.gather([(tuple(arrays), self.n_examples)], lambda a: a, None)
        self._set_batches(lambda params, batch: self._loss_of(params, *batch), whole)
        self._sharded = True
        super()._warn_if_untrained(x, y)

    def _warn_if_untrained(self, x: Any, y: Any) -> None:
        """The base class's check, once the data are sharded (it would run on one example)."""
        if getattr(self, "_sharded", False):
            super()._warn_if_untrained(x, y)

    @property
    def _args(self) -> tuple[Any, ...]:
        """``(frozen, x_sharded, y_sharded, x_rest, y_rest)``: what the jitted loss takes after θ."""
        return (self._frozen, *self._data)

    @_args.setter
    def _args(self, args: tuple[Any, ...]) -> None:
        self._frozen, self._data = args[0], tuple(args[1:])

    def compile_step(self, step: Callable[..., Any], donate: bool = False) -> Callable[..., Any]:
        """The walk's pure step jitted with the training data as arguments (see :meth:`jit`);
        ``donate``: its state argument donated (see ``JaxProblem.compile_step``)."""
        return self.jit(step, donate)

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Carry], Carry]:
        """The compiled driver's chunk (``walk(..., driver=Chunked(K))``), data as arguments.

        As :func:`manifoldwalk_jax.loop.compile_loop`, compiled with :meth:`jit` and kept in
        :attr:`loop_cache`; the carry is placed replicated on the mesh before each call.

        Args:
            loop: the engine's device loop.

        Returns:
            The compiled chunk ``carry -> carry``.
        """
        return compile_loop(
            loop,
            self.loop_cache,
            jit=self.jit,
            place=lambda carry: jax.device_put(carry, self.replicated),
        )

    def jit(self, fn: Callable[..., Any], donate: bool = False) -> Callable[..., Any]:
        """``jax.jit(fn)``, with this problem's sharded data passed in as arguments.

        A function that calls this problem's ``loss`` or ``loss_and_grad`` would, jitted
        as it is, capture the training data as constants of the compiled program: a full copy
        on every device. Jitted through this method the data (and any frozen parameters)
        enter as arguments instead, each device holding its shard. Use it for any compiled
        driver built on this problem.

        Args:
            fn: a function of jax arrays and pytrees (e.g. the walk's step ``state -> state``).
            donate: donate ``fn``'s first argument (its buffers may hold the results; the
                caller must not read it again).

        Returns:
            A function with ``fn``'s signature; its ``lower(*args)`` lowers the compiled
            program (data arguments included) for inspection, as ``jax.jit(...).lower`` does.
        """

        def with_args(args: tuple[Any, ...], *inner: Any) -> Any:
            saved, self._args = self._args, args
            try:
                return fn(*inner)
            finally:
                self._args = saved

        compiled = jax.jit(with_args, donate_argnums=1 if donate else ())

        def call(*inner: Any) -> Any:
            return compiled(self._args, *inner)

        call.lower = lambda *inner: compiled.lower(self._args, *inner)
        return call

    # --- θ, the pytree and evaluation -----------------------------------------------------

    def replicate(self, theta: Any) -> jax.Array:
        """θ (any array of length ``n_params``) as a ``jax.Array`` replicated on the mesh."""
        return jax.device_put(jnp.asarray(theta), self.replicated)

    def flatten(self, params: PyTree) -> jax.Array:
        """The flat θ of a parameter pytree, replicated on the mesh (inverse of ``unflatten``)."""
        return self.replicate(super().flatten(params))

    # --- internals ------------------------------------------------------------------------

    def _place(self, x: Any, y: Any) -> tuple[Any, ...]:
        """``(frozen, x_sharded, y_sharded, x_rest, y_rest)`` on the mesh."""
        cut = self.n_sharded
        frozen = jax.device_put(self._eval_frozen, self.replicated)
        sharded = [jax.device_put(a[:cut], self.data_sharding) for a in (x, y)]
        rest = [jax.device_put(a[cut:], self.replicated) for a in (x, y)]
        return (frozen, *sharded, *rest)

    def _loss_of(self, params: PyTree, xs: Any, ys: Any, x_rest: Any, y_rest: Any) -> jax.Array:
        """The exact mean loss of the parameter pytree over all examples: the sharded part and
        the rest (traced)."""
        loss = super()._loss_of(params, xs, ys)
        n_rest = x_rest.shape[0]
        if n_rest == 0:
            return loss
        rest = super()._loss_of(params, x_rest, y_rest)
        return (loss * xs.shape[0] + rest * n_rest) / self.n_examples

    def _on_params(self, a: jax.Array) -> jax.Array:
        """``a`` replicated on the mesh, as θ is."""
        return jax.device_put(a, self.replicated)

    def _checked(self, theta: Any) -> Any:
        """θ as it is, unless it is committed to other devices than the mesh's.

        Raises:
            ProblemError: θ is a ``jax.Array`` committed to other devices.
        """
        if isinstance(theta, jax.Array) and not isinstance(theta, jax.core.Tracer):
            if theta.committed and theta.sharding.device_set != self.replicated.device_set:
                raise ProblemError(
                    f"θ lives on {sorted(map(str, theta.sharding.device_set))} but the problem "
                    f"is sharded over {sorted(map(str, self.replicated.device_set))}: start "
                    "from problem.theta0, or pass problem.replicate(theta)."
                )
        return theta


def from_apply(
    apply_fn: ApplyFn,
    params: PyTree,
    loss_fn: LossFn,
    data: tuple[Any, Any],
    *,
    devices: Sequence[Any] | None = None,
    reg: str | RegFn = "l2",
    trainable: PyTree | None = None,
) -> ShardedJaxProblem:
    """Wrap a JAX model, its loss and its training data sharded over devices as a Problem.

    The arguments are those of :func:`manifoldwalk_jax.from_apply` (without ``batch_size``:
    each device holds ``len(x) / len(devices)`` examples), plus ``devices``.

    Args:
        apply_fn: ``apply_fn(params, x) -> outputs``, a pure JAX function.
        params: the parameter pytree; its trainable leaves, flattened, are θ.
        loss_fn: ``loss_fn(outputs, targets)`` returning the *mean* loss over the batch.
        data: ``(x, y)``, the whole training set (numpy arrays, or jax arrays), split over
            the devices along the first axis.
        devices: the devices to shard over (default: ``jax.devices()``, all devices of the
            default backend). One device is allowed (then nothing is split).
        reg: ``"l2"``, ``"l2-weights"`` or a function of the flat θ (as in ``from_apply``).
        trainable: the frozen-parameter mask, as in ``from_apply``.

    Returns:
        A :class:`ShardedJaxProblem`; walk it with ``manifoldwalk.walk(problem, problem.theta0)``.

    Raises:
        ProblemError: as :func:`manifoldwalk_jax.from_apply`, or an empty or repeated
            device list.
        TypeError: as :func:`manifoldwalk_jax.from_apply`.
    """
    return ShardedJaxProblem(
        apply_fn, params, loss_fn, data, devices=devices, reg=reg, trainable=trainable
    )


def _check_devices(devices: Sequence[Any] | None) -> list[Any]:
    chosen = list(jax.devices() if devices is None else devices)
    if not chosen:
        raise ProblemError("devices is empty: give at least one device to shard over.")
    if len(set(chosen)) != len(chosen):
        raise ProblemError(f"devices lists a device more than once: {chosen}.")
    return chosen
