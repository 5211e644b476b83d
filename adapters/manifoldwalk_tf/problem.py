"""``TFProblem``: a Keras 3 model (TensorFlow backend), loss and data as a Problem on flat θ.

It is :class:`~manifoldwalk_tf._base.TFBase` (the path ``from_loss`` takes too) with the loss
of one batch ``loss_fn(outputs, y)``: the loss and its gradient are one ``tf.function``, traced
once: it splits the flat θ into tensors shaped like the model's trainable variables, runs the
model functionally with ``model.stateless_call`` (so θ is never written into the variables
during a walk), applies the loss (over the data in batches, in a ``tf.while_loop``, when
``batch_size`` is given) and returns the gradient with respect to the flat θ, the flattening
included.

Two seams. Eager (the default): the engine computes on numpy, so θ, the loss and the gradient
cross as numpy arrays on the host (one copy of θ in, one of the gradient out, per step).
Compiled (``from_model(..., compile=True)``): the adapter registers an array-API namespace
over TensorFlow (``_namespace.py``), θ is a ``tf.Tensor``, and :meth:`TFProblem.compile_step`
traces the engine's whole step, the loss and gradient included, into one XLA-compiled
``tf.function``. ``docs/performance.md`` gives the measured cost of each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from manifoldwalk._groups import build_warning_at_caller, refuse_group_options
from manifoldwalk.adapter_api import (
    EVAL_TASKS,
    DeviceLoop,
    ProblemError,
    accuracy_shape_error,
    check_batch_size,
    check_callable,
    trivial_loss,
    warn_if_untrained,
)
from manifoldwalk_tf._base import TFBase
from manifoldwalk_tf._float64 import float64_loss
from manifoldwalk_tf._held import HeldBatches
from manifoldwalk_tf._loop import chunk_runner
from manifoldwalk_tf._wrap_checks import (
    _as_tensors,
    _check_backend,
    _check_order,
    _in_our_order,
    _takes_training,
    _warn_if_stochastic,
)

LossFn = Callable[[Any, Any], Any]
"""``loss_fn(outputs, targets) -> 0-d tensor``: a batch's mean loss (a Keras loss is called as Keras orders it)."""

TASKS = EVAL_TASKS
"""The tasks :meth:`TFProblem.evaluate` knows: accuracy or mean squared error."""


class TFProblem(TFBase):
    """A Keras model's training loss as a manifoldwalk Problem on the flat trainable θ.

    Build it with :func:`from_model`, which documents the arguments; θ is a flat numpy array.
    Its members are those of :class:`~manifoldwalk._model_problem.ModelProblem`, plus
    ``flatten``, ``compile_step``, ``compile_loop`` and ``as_float64``.

    Attributes:
        model: the wrapped Keras model.
        theta0: the model's trainable variables at construction, as one flat numpy array.
        n_params: the length of θ.
        dtype: θ's numpy dtype (the variables' dtype).
        loop_cache: the compiled chunks of earlier walks
            (:class:`~manifoldwalk.adapter_api.CompileCache`; ``loop_cache.clear()`` frees them).
    """

    def __init__(
        self,
        model: keras.Model,
        loss_fn: LossFn | keras.losses.Loss,
        data: tuple[Any, Any],
        *,
        reg: str | Callable[[tf.Tensor], tf.Tensor] = "l2",
        batch_size: int | None = None,
        compile: bool = False,
    ) -> None:
        _check_backend()
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be True or False, got {compile!r}.")
        _check_order(model, loss_fn)
        check_callable("loss_fn", loss_fn)
        x, y = _as_tensors(data, "data")
        if not model.built:
            model(x[:1])  # build the variables
        # what as_float64 builds its copy from
        self._float64_args = (loss_fn, data, reg, batch_size)
        self._init_model(model, reg, compile)
        self._call_kwargs = {"training": False} if _takes_training(model) else {}
        if str(self.dtype) == "float64":
            # a Keras loss object computes in its own dtype (floatx, float32 by default): a
            # float64 model's loss would be rounded to float32, and its gradient with it
            loss_fn = float64_loss(loss_fn)
        self._loss_fn = _in_our_order(loss_fn)
        self._x, self._y = self._cast(x), self._cast(y)
        n = int(x.shape[0])
        batch = check_batch_size(batch_size, "batch_size")
        batch = None if batch is None or batch >= n else batch
        _warn_if_stochastic(model)
        outputs, probe_loss = self._check_loss_is_scalar()
        self._probe_dtype = tf.convert_to_tensor(probe_loss).dtype
        held = HeldBatches.even((self._x, self._y), batch, self._tf_dtype)
        self._set_batches(self._batch_loss, held)
        self._tf_eval_sums = tf.function(self._eval_sums, reduce_retracing=True)
        self._warn_if_untrained(outputs, probe_loss)

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Any], Any]:
        """Up to K walk steps per host synchronisation (``walk(..., driver=Chunked(K))``).

        One XLA-compiled ``tf.function`` runs the engine's chunk in a ``tf.while_loop``: the
        step, the stop rules and the history buffers, with one call (and one host read) per K
        steps. Needs ``from_model(..., compile=True)`` (θ as a ``tf.Tensor``). Kept in
        :attr:`loop_cache`: a later walk with the same options does not trace it again.

        Raises:
            ProblemError: the problem was built without ``compile=True``.
        """
        return self._compile_loop(loop, chunk_runner)

    def _float64_copy(self, model: keras.Model) -> TFProblem:
        """The problem on the float64 ``model``: the same data (floating arrays cast), the
        loss in float64, the same regulariser and batch size; not compiled."""
        loss_fn, data, reg, batch_size = self._float64_args
        return TFProblem(model, float64_loss(loss_fn), data, reg=reg, batch_size=batch_size)

    # --- traced pieces --------------------------------------------------------------------

    def _outputs(self, theta: tf.Tensor, xb: tf.Tensor) -> Any:
        """The model's outputs at θ, run functionally (the variables are not written)."""
        non_trainable = [v.value for v in self._non_trainable]
        outputs, _ = self.model.stateless_call(
            self._flat.split(theta), non_trainable, xb, **self._call_kwargs
        )
        return outputs

    def _batch_loss(self, theta: tf.Tensor, batch: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        """The mean loss over one ``(x, y)`` batch."""
        xb, yb = batch
        return tf.cast(self._loss_fn(self._outputs(theta, xb), yb), theta.dtype)

    def _eval_sums(self, theta: tf.Tensor, xb: tf.Tensor, yb: tf.Tensor, *, task: str) -> tf.Tensor:
        """``[loss · n_b, metric · n_b]`` over one batch."""
        outputs = self._outputs(theta, xb)
        n_b = tf.cast(tf.shape(xb)[0], theta.dtype)
        loss = tf.cast(self._loss_fn(outputs, yb), theta.dtype) * n_b
        if task == "classification":
            if outputs.shape.rank < 2 or outputs.shape[-1] < 2:
                raise accuracy_shape_error(tuple(outputs.shape))
            labels = tf.argmax(yb, axis=-1) if yb.shape.rank == outputs.shape.rank else yb
            hits = tf.equal(tf.argmax(outputs, axis=-1), tf.cast(labels, tf.int64))
            metric = tf.reduce_sum(tf.cast(hits, theta.dtype))
        else:
            err = tf.cast(outputs, theta.dtype) - tf.reshape(yb, tf.shape(outputs))
            size = tf.cast(tf.size(err), theta.dtype)
            metric = tf.reduce_sum(err * err) * n_b / size
        return tf.stack([loss, metric])

    # --- ModelProblem's hooks -------------------------------------------------------------

    def _eval_data(self, x: Any, y: Any) -> tuple[tf.Tensor, tf.Tensor]:
        x, y = _as_tensors((x, y), "evaluate")
        return self._cast(x), self._cast(y)

    def _eval_batch_sums(
        self, theta: tf.Tensor, xb: tf.Tensor, yb: tf.Tensor, task: str
    ) -> tuple[tf.Tensor, int]:
        return self._tf_eval_sums(theta, xb, yb, task=task), int(xb.shape[0])

    def _cast(self, a: tf.Tensor) -> tf.Tensor:
        """Floating-point data in θ's dtype; integer data (labels, token ids) unchanged."""
        return tf.cast(a, self.dtype) if a.dtype.is_floating else a

    def _warn_if_untrained(self, outputs: Any, probe_loss: Any) -> None:
        """Warn when L0 is not well below the trivial loss (a recognised cross-entropy or MSE;
        the loss is recognised on the probe's examples, then evaluated in full at θ0)."""
        if not tf.is_tensor(outputs):
            return
        n = int(outputs.shape[0])
        trivial = trivial_loss(
            outputs.numpy(), self._y[:n].numpy(), float(probe_loss), self._y.numpy()
        )
        if trivial is not None:
            loss0 = float(self._tf_loss(tf.convert_to_tensor(self.theta0)))
            # from_model, __init__, this method lie between the user's call and the warning
            warn_if_untrained(loss0, trivial, stacklevel=4)

    def _check_loss_is_scalar(self) -> tuple[Any, Any]:
        """Raise if the loss of a few examples is not a scalar (one small forward pass);
        return those examples' outputs and loss."""
        theta = tf.convert_to_tensor(self.theta0)
        xb, yb = self._x[:8], self._y[:8]
        outputs = self._outputs(theta, xb)
        value = self._loss_fn(outputs, yb)
        shape = tuple(tf.convert_to_tensor(value).shape)
        if shape != ():
            raise ProblemError(
                f"loss_fn must return a scalar (the mean loss over the batch), got shape {shape} "
                f"on a probe of the first {int(xb.shape[0])} training examples. "
                "Reduce it (tf.reduce_mean), or use a Keras loss object such as "
                "keras.losses.SparseCategoricalCrossentropy(), which averages over the batch."
            )
        return outputs, value


def from_model(
    model: keras.Model,
    loss_fn: LossFn | keras.losses.Loss,
    data: tuple[Any, Any],
    *,
    reg: str | Callable[[tf.Tensor], tf.Tensor] = "l2",
    batch_size: int | None = None,
    compile: bool = False,
    groups: Any = None,
    n_groups: int | None = None,
    jacobian: str = "split",
) -> TFProblem:
    """Wrap a Keras 3 model (TensorFlow backend), its loss and training data as a Problem.

    The model runs in inference mode (``training=False``: no dropout, batch normalisation
    with its moving statistics), and its layers' own losses (``kernel_regularizer``, activity
    regularisers) are not added: L is the data loss, R is ``reg``.

    Args:
        model: a built Keras 3 model (an unbuilt one is built by calling it on one example).
            Its trainable variables are θ; non-trainable ones (``layer.trainable = False``,
            batch-norm statistics) are held fixed and are not part of θ. A float64 model
            (layers made with ``dtype="float64"``) gives a float64 walk.
        loss_fn: a Keras loss object (``keras.losses.SparseCategoricalCrossentropy(
            from_logits=True)``) or a function from ``keras.losses``, called in Keras order
            ``loss_fn(y_true, y_pred)``; or any other callable, called like the other adapters'
            as ``loss_fn(outputs, targets)``. It must return the mean over the batch (a
            scalar). Keras loss objects compute in ``keras.config.floatx()`` unless made with
            ``dtype="float64"``.
        data: ``(x, y)``, the training inputs and targets (arrays of equal length). Floating
            data is cast to θ's dtype; integer data (labels, token ids) is left as it is.
        reg: the regulariser R: ``"l2"`` (θᵀθ over every trainable parameter, the paper's
            walk), ``"l2-weights"`` (θᵀθ over variables of rank ≥ 2 only: kernels, not
            biases or normalisation scales; Keras ``kernel_regularizer`` semantics), or a
            differentiable TensorFlow function of the flat θ (a ``tf.Tensor``) returning a
            scalar (its gradient is taken once at θ0 while building: one that goes through
            numpy or ``tf.stop_gradient`` is refused).
        batch_size: None for one full batch; else the loss and gradient are accumulated over
            batches of this size inside the one ``tf.function``, giving exactly the full-batch
            mean, with the memory of one batch.
        compile: run the walk on ``tf.Tensor`` with the whole step (loss and gradient
            included) compiled into one XLA ``tf.function`` (see
            :meth:`TFProblem.compile_step`); ``theta0`` and the walk's θ are then
            ``tf.Tensor``. False (the default): the eager numpy seam, θ a numpy array.
        groups: None (one constraint, the mean loss over every example), or one integer group
            id per example, 0..k−1 (e.g. ``groups=y`` for integer class labels): the problem
            is then a k-constraint problem (:class:`~manifoldwalk_tf.groups.TFGroupsProblem`,
            on the numpy seam) whose k losses are ``loss_fn`` over each group's examples, from
            one copy of the data reordered group by group once; ``walk`` holds every group's
            loss at its level. Not with ``batch_size`` or ``compile``; every group needs an
            example (a group of one warns).
        n_groups: with ``groups``: k, when the ids need not reach k − 1 (an id of k or more is
            refused, and so is an empty group); None: the largest id plus one.
        jacobian: with ``groups``: how the k gradients are taken, ``"split"`` (each group's
            loss and gradient over its own examples: about one full-batch gradient in all,
            the fastest measured), ``"passes"`` (one forward pass over every example under a
            persistent tape, then k ``tape.gradient`` calls) or ``"batched"`` (the same
            forward pass, ``tape.jacobian(..., experimental_use_pfor=True)``).

    Returns:
        A :class:`TFProblem`; walk it with ``manifoldwalk.walk(problem, problem.theta0)`` and
        write the result into the model with ``problem.assign(result.theta)``. With
        ``groups``, a :class:`~manifoldwalk_tf.groups.TFGroupsProblem`.

    Raises:
        ProblemError: no trainable parameters, a non-float trainable variable, inputs and
            targets of different lengths, or a loss (or a callable ``reg``) that is not a
            scalar. With ``groups``: ids not one per example, out of range (named with their
            examples) or leaving a group empty.
        RuntimeError: Keras runs on another backend than TensorFlow.
        TypeError: ``model`` is not a Keras model (a loss there: the arguments swapped),
            ``loss_fn`` is not callable or is a loss class (not an instance), the model
            computes in float16 or bfloat16 (a mixed-precision policy): build it under a
            float32 policy; or group ids that are not integers.
        ValueError: an unknown ``reg`` name or a bad ``batch_size``; ``batch_size``,
            ``compile`` or an unknown ``jacobian`` with ``groups``; ``n_groups`` or
            ``jacobian`` without.

    Warns:
        UserWarning: the model holds dropout or batch-norm layers (evaluated in inference
            mode, ``training=False``), as the PyTorch adapter warns. Also: the model looks
            untrained, its loss at θ0 not well below the trivial loss (that of predicting the
            class frequencies, or the targets' mean), for a loss recognised as cross-entropy
            or MSE on the first 8 examples (one full loss evaluation at θ0 decides). With
            ``groups``: a group of one example.
    """
    if groups is None:
        refuse_group_options(n_groups, jacobian)
        return TFProblem(model, loss_fn, data, reg=reg, batch_size=batch_size, compile=compile)
    if batch_size is not None or compile:
        raise ValueError(
            "batch_size and compile do not apply with groups=: each group's loss is taken over "
            "its examples in one batch, and the k-constraint walk runs eagerly on numpy. "
            "Leave them out."
        )
    from manifoldwalk_tf.groups import TFGroupsProblem  # (imports this module)

    return build_warning_at_caller(
        lambda: TFGroupsProblem(
            model, loss_fn, data, groups=groups, n_groups=n_groups, jacobian=jacobian, reg=reg
        )
    )
