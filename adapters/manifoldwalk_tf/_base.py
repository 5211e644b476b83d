"""The part the Keras problems share: θ from the model's variables, and the loss over batches.

:class:`TFBase` reads the trainable variables of a built Keras model as one flat θ
(:class:`~manifoldwalk_tf._flat.FlatVariables`) and builds the loss and its gradient from one
function ``per_batch(θ, batch) -> scalar`` that evaluates the model at θ without writing its
variables (``stateless_call``, or a ``keras.StatelessScope`` around the user's loss): over
batches held as tensors (:class:`~manifoldwalk_tf._held.HeldBatches`), one ``tf.function``
traced once, which the compiled seam can trace into the walk's step; or over batches streamed
from a re-iterable, one ``tf.function`` call per batch. ``from_model``'s
:class:`~manifoldwalk_tf.TFProblem` and ``from_loss``'s :class:`~manifoldwalk_tf.TFLossProblem`
are its two front ends.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from manifoldwalk._batches import Batches
from manifoldwalk.adapter_api import (
    DeviceLoop,
    ModelProblem,
    ProblemError,
    RegPair,
    reg_not_differentiable,
)
from manifoldwalk_tf._flat import FlatVariables
from manifoldwalk_tf._float64 import float64_clone
from manifoldwalk_tf._held import HeldBatches, stream_total, tensors_of, weighted_total
from manifoldwalk_tf._loop import chunk_runner
from manifoldwalk_tf._namespace import register as register_namespace
from manifoldwalk_tf._reg import callable_reg, l2_reg, weights_reg
from manifoldwalk_tf._wrap_checks import _check_precision

PerBatch = Callable[[tf.Tensor, Any], tf.Tensor]
"""``per_batch(θ, batch)``: the mean loss of one batch at flat θ, in θ's dtype (traced)."""


class TFBase(ModelProblem):
    """A Keras model's loss over batches as a Problem on the flat trainable θ.

    A subclass calls :meth:`_init_model`, then :meth:`_set_batches` or :meth:`_set_stream`.

    Attributes:
        model: the wrapped Keras model.
        theta0: the model's trainable variables at construction, as one flat numpy array
            (a ``tf.Tensor`` with ``compile=True``).
        n_params: the length of θ.
        dtype: θ's numpy dtype (the variables' dtype).
        compiled: whether the walk runs on ``tf.Tensor`` with the step compiled whole.
        loop_cache: the compiled chunks of earlier walks
            (:class:`~manifoldwalk.adapter_api.CompileCache`; ``loop_cache.clear()`` frees them).
    """

    _dtype_owner = "the model's variables are"
    _dtype_remedy = "or build the model in θ's dtype"
    _shape_error = ProblemError
    _checks_reg_theta = True
    _compile_data_error = ""
    """Why ``compile=True`` is refused for streamed batches (set by the front end that allows
    them)."""

    def _init_model(self, model: keras.Model, reg: Any, compile: bool) -> None:
        """θ0 from a built model's trainable variables, the regulariser and the seam.

        Raises:
            RuntimeError: Keras runs on another backend than TensorFlow.
            TypeError: ``compile`` not a bool, or a half-precision model.
            ProblemError: as :class:`~manifoldwalk_tf._flat.FlatVariables`.
        """
        _check_precision(model)
        self.model = model
        self._flat = FlatVariables(model.trainable_variables)
        super().__init__(self._flat.shapes, np.dtype(self._flat.dtype), reg)
        self.compiled = compile
        self.theta0: np.ndarray | tf.Tensor = self._flat.read()
        if compile:  # the walk runs on tf.Tensor from its first step
            register_namespace()
            self.theta0 = tf.constant(self.theta0)
        self._non_trainable = list(model.non_trainable_variables)
        self._tf_dtype = tf.as_dtype(self.dtype)
        if callable(reg) and not isinstance(reg, str):
            self._check_reg_gradient(reg)

    def _set_batches(self, per_batch: PerBatch, held: HeldBatches) -> None:
        """The loss and gradient over batches held as tensors: one ``tf.function`` each,
        traced once (input signature θ), holding the batches."""
        self._streamed: Batches | None = None
        self._per_batch = per_batch

        def loss_and_grad(theta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return weighted_total(self._with_grad, held, theta, self._zeros(with_grad=True))

        def loss(theta: tf.Tensor) -> tf.Tensor:
            return weighted_total(per_batch, held, theta, self._zeros(with_grad=False))

        spec = [tf.TensorSpec([self.n_params], self._tf_dtype)]
        self._tf_loss_and_grad = tf.function(loss_and_grad, input_signature=spec)
        self._tf_loss = tf.function(loss, input_signature=spec)

    def _set_stream(self, per_batch: PerBatch, batches: Batches) -> None:
        """The loss and gradient over batches converted as they come: one ``tf.function``
        call per batch (retraced only for batches of new shapes or structure), summed in
        Python.

        Raises:
            ProblemError: ``compile=True`` (the step would need every batch inside).
        """
        if self.compiled:
            raise ProblemError(self._compile_data_error)
        self._streamed = batches
        self._per_batch = per_batch
        self._tf_batch_loss_and_grad = tf.function(self._with_grad, reduce_retracing=True)
        self._tf_batch_loss = tf.function(per_batch, reduce_retracing=True)

    def _with_grad(self, theta: tf.Tensor, batch: Any) -> tuple[tf.Tensor, tf.Tensor]:
        """The mean loss of one batch and its gradient with respect to the flat θ."""
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss = self._per_batch(theta, batch)
        grad = tape.gradient(loss, theta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return loss, grad

    def _zeros(self, *, with_grad: bool) -> Any:
        """The accumulator's start: a zero loss (and a zero gradient)."""
        zero = tf.zeros([], self._tf_dtype)
        return (zero, tf.zeros([self.n_params], self._tf_dtype)) if with_grad else zero

    # --- compiled steps and chunks -------------------------------------------------------

    def compile_step(self, step: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The walk's pure step as one XLA-compiled ``tf.function``, if ``compile`` was asked.

        ``manifoldwalk.walk`` calls this (unless ``driver=Eager(compile_step=False)``). Without
        ``compile=True`` the step is returned as it is (eager, numpy seam). With it, the step
        runs on ``tf.Tensor`` and fuses the engine's vector algebra with the loss and
        gradient; the first call traces and compiles (seconds).
        """
        if not self.compiled:
            return step
        return tf.function(step, jit_compile=True, autograph=False)  # the step is branch-free

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Any], Any]:
        """Up to K walk steps per host synchronisation (``walk(..., driver=Chunked(K))``).

        One XLA-compiled ``tf.function`` runs the engine's chunk in a ``tf.while_loop``: the
        step, the stop rules and the history buffers, with one call (and one host read) per K
        steps. Needs ``compile=True`` (θ as a ``tf.Tensor``). Kept in :attr:`loop_cache`: a
        later walk with the same options does not trace it again.

        Raises:
            ProblemError: the problem was built without ``compile=True``.
        """
        return self._compile_loop(loop, chunk_runner)

    def _compile_loop(
        self, loop: DeviceLoop, runner: Callable[[DeviceLoop], Callable[[Any], Any]]
    ) -> Callable[[Any], Any]:
        """:meth:`compile_loop` with the chunk built by ``runner`` (a front end passes the
        name its own module holds)."""
        if not self.compiled:
            raise ProblemError(
                "steps_per_sync needs the walk on tf.Tensor: build the problem with "
                f"manifoldwalk_tf.{self._entry_point}(..., compile=True)."
            )
        return self.loop_cache.get(loop, lambda: runner(loop))

    _entry_point = "from_model"
    """The function that builds this kind of problem, as messages name it."""

    def as_float64(self) -> TFBase | None:
        """The same problem in float64, for :func:`manifoldwalk.check_gradient`.

        A float64 clone of the model (a Sequential or Functional model rebuilt layer by layer
        from its config with ``dtype="float64"``, float64 inputs, the weights copied and
        cast), on the same data (floating arrays cast to float64) with the same loss (a Keras
        loss object remade in float64), regulariser and batches; never compiled. Building it
        warns nothing (the warnings were this problem's).

        Returns:
            This problem if it is already float64; the copy; or None where there is none: a
            subclassed model (``clone_model`` cannot rebuild it), a layer that cannot be
            rebuilt in float64, or a loss that still computes below float64 on the copy
            (e.g. a float32 Keras loss object inside a ``from_loss`` function). With None,
            ``check_gradient`` checks the problem as it is.
        """
        if self.dtype == np.float64:
            return self
        model = float64_clone(self.model)
        if model is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy = self._float64_copy(model)
        return copy if copy is not None and copy._probe_dtype == tf.float64 else None

    def _float64_copy(self, model: keras.Model) -> TFBase | None:
        """The copy on the float64 ``model`` (this problem below float64)."""
        raise NotImplementedError

    # --- between θ and the model ----------------------------------------------------------

    def unflatten(self, theta: np.ndarray) -> list[np.ndarray]:
        """θ as a list of numpy arrays, one per trainable variable (``model.trainable_variables``
        order, each with its variable's shape and dtype)."""
        return self._flat.unflatten(theta)

    def flatten(self, arrays: list[Any]) -> np.ndarray:
        """Flat θ from one array per trainable variable, in order (inverse of ``unflatten``).

        Raises:
            ProblemError: the wrong number of arrays or a wrong shape.
        """
        return self._flat.flatten(arrays)

    def assign(self, theta: np.ndarray) -> None:
        """Write θ into the model's trainable variables (e.g. the walk's final θ)."""
        self._flat.assign(theta)

    # --- traced pieces --------------------------------------------------------------------

    def _scope(self, theta: tf.Tensor) -> keras.StatelessScope:
        """A scope in which the model's trainable variables read as θ's pieces (the
        variables are not written; assignments inside are dropped)."""
        return keras.StatelessScope(
            state_mapping=list(zip(self._flat.variables, self._flat.split(theta), strict=True))
        )

    # --- ModelProblem's hooks -------------------------------------------------------------

    def _loss_and_grad_flat(self, theta: Any) -> tuple[Any, Any]:
        """``(L, ∇L)`` at a checked θ in one ``tf.function`` call (or one per streamed batch):
        numpy for a numpy θ (the eager seam), ``tf.Tensor`` for a ``tf.Tensor``."""
        if self._streamed is None:
            loss, grad = self._tf_loss_and_grad(theta)
        else:
            t = tf.convert_to_tensor(theta)
            loss, grad = stream_total(
                lambda b: self._tf_batch_loss_and_grad(t, b), self._converted()
            )
        if tf.is_tensor(theta):  # the compiled seam: stay in TensorFlow
            return loss, grad
        return np.asarray(loss.numpy()), grad.numpy()

    def _hvp_flat(self, theta: Any, v: Any) -> Any:
        """∇²L(θ)·v forward over reverse: the gradient's ``tf.function`` run under a
        ``tf.autodiff.ForwardAccumulator`` along ``v``; of θ's kind."""
        t, d = tf.convert_to_tensor(theta), tf.convert_to_tensor(v)
        with tf.autodiff.ForwardAccumulator(t, d) as acc:
            if self._streamed is None:
                _, grad = self._tf_loss_and_grad(t)
            else:
                _, grad = stream_total(
                    lambda b: self._tf_batch_loss_and_grad(t, b), self._converted()
                )
        hv = acc.jvp(grad, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return hv if tf.is_tensor(theta) else hv.numpy()

    def _loss_flat(self, theta: Any) -> Any:
        """L at a checked θ (forward passes only), of θ's kind."""
        if self._streamed is None:
            loss = self._tf_loss(theta)
        else:
            t = tf.convert_to_tensor(theta)
            loss = stream_total(lambda b: self._tf_batch_loss(t, b), self._converted())
        return loss if tf.is_tensor(theta) else np.asarray(loss.numpy())

    def _converted(self) -> Any:
        """The streamed batches with their weights, converted to tensors as they come."""
        for batch, n in self._streamed.with_sizes():
            yield tensors_of(batch, self._tf_dtype), n

    def _coerce_theta(self, theta: Any) -> Any:
        # a tf.Tensor as it is, anything else as a numpy array
        return theta if tf.is_tensor(theta) else np.asarray(theta)

    def _dtype_of(self, theta: Any) -> np.dtype:
        return np.dtype(tf.as_dtype(theta.dtype).as_numpy_dtype)

    def _cast_hint(self, theta: Any) -> str:
        if tf.is_tensor(theta):
            return f"tf.cast(theta, tf.{self.dtype})"
        return f"theta.astype(np.{self.dtype})"

    def _check_shape(self, shape: Any) -> None:
        self._flat.check_shape(shape)

    def _l2_reg(self) -> RegPair:
        return l2_reg()

    def _weights_reg(self, mask: np.ndarray) -> RegPair:
        return weights_reg(mask.astype(self.dtype))

    def _callable_reg(self, fn: Callable[[tf.Tensor], tf.Tensor]) -> RegPair:
        return callable_reg(fn, self.n_params, self.dtype)

    def _eval_theta(self, theta: Any) -> tf.Tensor:
        # any dtype, cast to θ's; the shape checked
        return tf.convert_to_tensor(self._flat.check(theta))

    def _check_reg_gradient(self, reg: Callable[[tf.Tensor], tf.Tensor]) -> None:
        """Raise unless a callable ``reg``'s gradient at θ0 is finite (its tracing, and a
        gradient connected to θ, are checked where it is built: ``_reg.callable_reg``)."""
        grad = np.asarray(self.reg_grad(self.theta0))
        if not np.all(np.isfinite(grad)):
            raise reg_not_differentiable(reg, "TensorFlow (tf operations)", "a non-finite gradient")
