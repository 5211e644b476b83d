"""The part the JAX problems share: θ from a parameter pytree, and the loss over batches.

:class:`JaxBase` flattens the trainable leaves of a parameter pytree into one flat θ
(:class:`~manifoldwalk_jax._flat.FlatParams`), checks their dtype and device, and builds the
loss and its gradient from one function ``loss_of(params, batch) -> scalar``: over batches held
on the device (:class:`~manifoldwalk_jax._device_data.DeviceBatches`), one jitted function
that scans each group of equal batches (so the compiled drivers can trace it), or over batches
streamed from the host, one jitted call per batch. ``from_apply``'s
:class:`~manifoldwalk_jax.JaxProblem` and ``from_loss``'s
:class:`~manifoldwalk_jax.JaxLossProblem` are its two front ends.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk._batches import Batches
from manifoldwalk.adapter_api import (
    Carry,
    DeviceLoop,
    ModelProblem,
    ProblemError,
    RegPair,
    half_precision_error,
)
from manifoldwalk_jax._device_data import DeviceBatches, stream_total, weighted_total
from manifoldwalk_jax._flat import FlatParams, PyTree
from manifoldwalk_jax._inputs import _single_device
from manifoldwalk_jax._reg import RegFn, callable_reg, l2_reg, weights_reg
from manifoldwalk_jax.loop import compile_loop, jit_step

LossOf = Callable[[PyTree, Any], jax.Array]
"""``loss_of(params, batch)``: the mean loss of one batch, a scalar (traced)."""


class JaxBase(ModelProblem):
    """A loss of a parameter pytree over batches as a Problem on the flat trainable θ.

    A subclass calls :meth:`_init_params`, then :meth:`_set_batches` or :meth:`_set_stream`.

    Attributes:
        theta0: the trainable parameters as one flat ``jax.Array``.
        n_params: the length of θ.
        dtype: θ's dtype (the parameters').
        loop_cache: the compiled driver's chunks of earlier walks
            (:class:`~manifoldwalk.adapter_api.CompileCache`; ``loop_cache.clear()`` frees them).
    """

    _theta_type = "jax.Array"

    def _init_params(self, params: PyTree, trainable: PyTree | None, reg: str | RegFn) -> None:
        """θ0, its device, the frozen leaves and the regulariser.

        Raises:
            ProblemError: as :class:`~manifoldwalk_jax._flat.FlatParams`, or parameters on
                several devices.
            TypeError: trainable leaves of mixed dtypes, or half-precision ones.
        """
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
        super().__init__(self._flat.shapes, self.theta0.dtype, reg)

    def _per_batch(self, loss_of: LossOf) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """``(θ, frozen, batch) -> (L_b, ∇L_b)`` and ``(θ, frozen, batch) -> L_b`` (traced)."""
        # XLA:CPU builds the flat gradient faster in place (FlatParams.join says why)
        in_place = self._device.platform == "cpu"

        def loss_at(theta: jax.Array, frozen: list[Any], batch: Any) -> jax.Array:
            loss = loss_of(self._flat.assemble(theta, frozen), batch)
            return jnp.asarray(loss, dtype=theta.dtype)

        return self._flat.value_and_grad(loss_of, in_place), loss_at

    def _set_batches(self, loss_of: LossOf, batches: DeviceBatches) -> None:
        """The loss and gradient over batches held on the device: one jitted function each,
        taking ``(θ, frozen, *self._data)``, traceable by the compiled drivers."""
        value_and_grad, loss_at = self._per_batch(loss_of)
        self._streamed = None
        self._data: tuple[Any, ...] = batches.data
        self._loss_and_grad = jax.jit(weighted_total(value_and_grad, batches.specs, batches.single))
        self._loss = jax.jit(weighted_total(loss_at, batches.specs, batches.single))

    def _set_stream(self, loss_of: LossOf, batches: Batches) -> None:
        """The loss and gradient over batches moved to the device as they come: one jitted
        call per batch, summed on the host side (the batches' structure is a static
        argument: equal batches compile once)."""
        value_and_grad, loss_at = self._per_batch(loss_of)
        self._data = ()
        self._streamed = batches

        def on_arrays(fn: Callable[..., Any]) -> Callable[..., Any]:
            def run(theta: jax.Array, frozen: list[Any], arrays: list[Any], *, spec: Any) -> Any:
                return fn(theta, frozen, spec.rebuild(arrays))

            return jax.jit(run, static_argnames="spec")

        self._stream_loss_and_grad = on_arrays(value_and_grad)
        self._stream_loss = on_arrays(loss_at)

    # --- compiled steps and chunks -------------------------------------------------------

    def compile_step(self, step: Callable[..., Any], donate: bool = False) -> Callable[..., Any]:
        """``jax.jit(step)``: the walk's pure step compiled into one XLA computation.

        ``manifoldwalk.walk`` calls this (unless ``driver=Eager(compile_step=False)``); the step then
        fuses the engine's vector algebra with this problem's loss and gradient. A problem
        whose batches are streamed from the host returns ``step`` as it is (compiling it would
        bake every batch into the program): its loss and gradient are still jitted per batch.

        Args:
            step: a pure function of a walk state.
            donate: let the compiled function write its results into its first argument's
                buffers (``donate_argnums=0``); the caller must not read that argument again.
                The eager driver asks for it and keeps copies of what it needs.

        Returns:
            The jitted step (or ``step`` itself for streamed batches).
        """
        if self._streamed is not None:
            return step
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

        Raises:
            ProblemError: the batches are streamed from the host (the chunk would need them
                all inside the compiled program).
        """
        if self._streamed is not None:
            raise ProblemError(
                "driver=Chunked(K) compiles K steps, the loss over every batch included, into "
                "one program, so it needs the batches on the device: pass data as one batch or "
                "a list of batches (or walk with the default driver, which streams them)."
            )
        return compile_loop(loop, self.loop_cache)

    def as_float64(self) -> JaxBase | None:
        """The same problem in float64, for :func:`manifoldwalk.check_gradient`.

        The parameters' and the data's floating leaves cast to float64, with the same loss,
        regulariser, batches and trainable mask. Building it warns nothing (the warnings were
        this problem's).

        Returns:
            This problem if it is already float64; the copy; or None when
            ``jax_enable_x64`` is off (JAX would keep the copy in float32).
        """
        if self.dtype == jnp.float64:
            return self
        if not jax.config.jax_enable_x64:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._float64_copy()

    def _float64_copy(self) -> JaxBase:
        """The float64 copy (x64 on, this problem below float64)."""
        raise NotImplementedError

    # --- between θ and the pytree ---------------------------------------------------------

    def unflatten(self, theta: jax.Array) -> PyTree:
        """The parameter pytree (frozen leaves included) for a flat θ, as the model takes it.

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

    # --- ModelProblem's hooks -------------------------------------------------------------

    def _loss_and_grad_flat(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(L, ∇L)`` at a checked θ: one jitted pass over the batches on the device, or one
        jitted call per streamed batch (on θ's device, in θ's dtype)."""
        if self._streamed is None:
            return self._loss_and_grad(theta, self._frozen, *self._data)
        return self._stream(self._stream_loss_and_grad, theta)

    def _hvp_flat(self, theta: jax.Array, v: jax.Array) -> jax.Array:
        """∇²L(θ)·v forward over reverse: ``jax.jvp`` of the jitted gradient (one compiled
        function, made on first use; over streamed batches, one per batch, example-weighted)."""
        if self._streamed is None:
            if getattr(self, "_hvp", None) is None:
                self._hvp = jax.jit(
                    lambda t, d, frozen, *data: jax.jvp(
                        lambda s: self._loss_and_grad(s, frozen, *data)[1], (t,), (d,)
                    )[1]
                )
            return self._hvp(theta, v, self._frozen, *self._data)
        if getattr(self, "_stream_hvp", None) is None:

            def run(t: jax.Array, d: jax.Array, frozen: list[Any], arrays: list[Any], *, spec: Any):
                def grad(s: jax.Array) -> jax.Array:
                    return self._stream_loss_and_grad(s, frozen, arrays, spec=spec)[1]

                return jax.jvp(grad, (t,), (d,))[1]

            self._stream_hvp = jax.jit(run, static_argnames="spec")

        def per_batch(arrays: list[Any], *, spec: Any) -> Any:
            return self._stream_hvp(theta, v, self._frozen, arrays, spec=spec)

        return stream_total(per_batch, self._streamed.with_sizes(), self._on_params, self.dtype)

    def _loss_flat(self, theta: jax.Array) -> jax.Array:
        """L at a checked θ, forward passes only."""
        if self._streamed is None:
            return self._loss(theta, self._frozen, *self._data)
        return self._stream(self._stream_loss, theta)

    def _stream(self, fn: Callable[..., Any], theta: jax.Array) -> Any:
        """``fn`` summed over the streamed batches, example-weighted."""

        def per_batch(arrays: list[Any], *, spec: Any) -> Any:
            return fn(theta, self._frozen, arrays, spec=spec)

        return stream_total(per_batch, self._streamed.with_sizes(), self._on_params, self.dtype)

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

    def _on_params(self, a: jax.Array) -> jax.Array:
        """``a`` where θ lives (the parameters' device)."""
        return jax.device_put(a, self._device)
