"""``from_loss``: a Keras model's loss on batches of any structure as a Problem.

Where :func:`~manifoldwalk_tf.from_model` takes ``loss_fn(outputs, targets)`` and ``(x, y)``
data, :func:`from_loss` takes ``loss_fn(model, batch)`` and batches of any nesting of dicts,
tuples and lists (a model of several inputs, a dict of token ids, a model that computes its own
loss). Both take the same path (:class:`~manifoldwalk_tf._base.TFBase`): the flat θ split into
the trainable variables' shapes, the model evaluated at θ without writing its variables (here
inside a ``keras.StatelessScope`` that maps each trainable variable to its piece of θ, so that
the user's ``model(...)`` calls read θ), the gradient with respect to the flat θ, the
example-weighted mean over batches, in one ``tf.function``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from manifoldwalk._batches import Batches, BatchSizeFn, describe_structure
from manifoldwalk.adapter_api import ProblemError, check_callable, loss_entry
from manifoldwalk_tf._base import TFBase
from manifoldwalk_tf._held import HeldBatches, tensors_of
from manifoldwalk_tf._wrap_checks import _check_backend, _warn_if_stochastic

ModelLoss = Callable[[keras.Model, Any], tf.Tensor]
"""``loss_fn(model, batch) -> 0-d tensor``: the batch's mean loss, computed with the model."""

MetricFn = Callable[[keras.Model, Any], Any]
"""``metric(model, batch) -> 0-d tensor or number``: the batch's mean of a metric."""

_EVAL_CACHE = 8
"""How many traced evaluations (one per set of metric functions) a problem keeps."""


class TFLossProblem(TFBase):
    """A Keras model's loss on batches of any structure as a Problem on the flat θ.

    Build it with :func:`from_loss`, which documents the arguments. Its members are those of
    :class:`~manifoldwalk_tf.TFProblem` (the Problem protocol, ``theta0``, ``n_params``,
    ``unflatten``, ``flatten``, ``assign``, ``compile_step``, ``compile_loop``,
    ``as_float64``), except :meth:`evaluate`, which takes batches and metric functions of the
    model and a batch.

    Attributes:
        streamed: True when the batches are converted as they are used (data given as a
            re-iterable other than a tuple or list); False when they are held as tensors.
    """

    _entry_point = "from_loss"
    _compile_data_error = (
        "compile=True needs the training data as one batch or a list (or tuple) of batches, "
        "not a tf.data.Dataset, a loader or a generator function: the compiled step holds "
        "the batches."
    )

    def __init__(
        self,
        model: keras.Model,
        loss_fn: ModelLoss,
        data: Any,
        *,
        reg: str | Callable[[tf.Tensor], tf.Tensor] = "l2",
        batch_size: BatchSizeFn | None = None,
        compile: bool = False,
    ) -> None:
        _check_backend()
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be True or False, got {compile!r}.")
        _check_arguments(model, loss_fn)
        self._user_loss = loss_fn
        self._batch_size_fn = batch_size
        self._float64_args = (loss_fn, data, reg, batch_size)
        self._eval_fns: dict[tuple[Any, ...], Callable[..., Any]] = {}
        batches = Batches(data, batch_size)
        self.streamed = not (batches.single or isinstance(data, tuple | list))
        first = batches.first()
        if not model.built:  # build the variables by running the loss once, eagerly
            self._run_first(lambda: loss_fn(model, tensors_of(first, _compute_dtype(model))))
        self._init_model(model, reg, compile)
        _warn_if_stochastic(model)
        if self.streamed:
            self._set_stream(self._batch_loss, batches)
            self._check_first_batch(tensors_of(first, self._tf_dtype))
        else:
            held = HeldBatches.gather(batches.with_sizes(), self._tf_dtype)
            self._set_batches(self._batch_loss, held)
            self._check_first_batch(held.first())

    def evaluate(  # type: ignore[override]
        self,
        theta: Any,
        data: Any,
        *,
        metrics: Mapping[str, MetricFn] | None = None,
        batch_size: BatchSizeFn | None = None,
    ) -> dict[str, float]:
        """The loss and metrics of θ on held-out batches: example-weighted means over them.

        Meant for the walk's metric callables, e.g.
        ``metrics={"test_loss": lambda t: problem.evaluate(t, test_batches)["loss"]}``.
        Batches are read as the training data (one batch, or a re-iterable of batches) and
        converted one at a time (floating arrays cast to θ's dtype); each runs through one
        ``tf.function`` of θ and the batch (traced once per batch structure and set of metric
        functions: pass the same function objects at every call); the model's variables are
        not touched. One host synchronisation per call.

        Args:
            theta: flat θ (any array of length ``n_params``).
            data: one held-out batch or a re-iterable of them, structured as ``loss_fn``
                takes.
            metrics: ``{name: metric(model, batch)}``, each returning the batch's *mean* of the
                metric as a 0-d tensor or a number, computed with the model passed to it
                (e.g. accuracy: ``lambda m, b: tf.reduce_mean(tf.cast(tf.equal(tf.argmax(
                m(b["x"], training=False), -1), b["y"]), "float32"))``).
            batch_size: ``batch -> number of examples``, the weights (None: the problem's own,
                by default the first array's leading dimension).

        Returns:
            ``{"loss": float, name: float, ...}``: ``loss_fn`` and each metric averaged over
            the examples.

        Raises:
            ValueError: a metric named ``"loss"``.
            TypeError: a metric that is not callable, or data as :func:`from_loss` refuses it.
            ProblemError: θ of the wrong length, a metric that does not return a 0-d tensor
                or a number (named), or no batches.
        """
        metrics = dict(metrics or {})
        if "loss" in metrics:
            raise ValueError('evaluate: "loss" is always reported; name the metric otherwise.')
        for name, fn in metrics.items():
            check_callable(f"metrics[{name!r}]", fn)
        theta = self._eval_theta(theta)
        run = self._eval_fn(("loss", *metrics), (self._user_loss, *metrics.values()))
        sizes = self._batch_size_fn if batch_size is None else batch_size
        total, count = None, 0
        for batch, n in Batches(data, sizes).with_sizes():
            row = run(theta, tensors_of(batch, self._tf_dtype)) * n
            total = row if total is None else total + row
            count += n
        values = np.asarray(total.numpy(), dtype=np.float64) / count
        return dict(zip(["loss", *metrics], values.tolist(), strict=True))

    # --- internals ------------------------------------------------------------------------

    def _batch_loss(self, theta: tf.Tensor, batch: Any) -> tf.Tensor:
        """``loss_fn(model, batch)`` with the model's trainable variables reading θ."""
        with self._scope(theta):
            value = self._user_loss(self.model, batch)
        return tf.cast(value, theta.dtype)

    def _float64_copy(self, model: keras.Model) -> TFLossProblem | None:
        """The problem on the float64 ``model`` (the same loss, data, regulariser and
        weights; not compiled), or None where ``loss_fn`` cannot run on it (e.g. it uses the
        original model rather than the one passed to it)."""
        loss_fn, data, reg, batch_size = self._float64_args
        try:
            return TFLossProblem(model, loss_fn, data, reg=reg, batch_size=batch_size)
        except ProblemError:
            return None

    def _eval_fn(self, names: tuple[str, ...], fns: tuple[Any, ...]) -> Callable[..., Any]:
        """``(θ, batch) -> [loss, metric, ...]`` for these functions, a vector in θ's dtype:
        one ``tf.function`` (kept for later calls with the same function objects), its
        values checked outside it (an error raised while tracing would reach the caller
        wrapped in autograph's)."""
        if fns not in self._eval_fns:  # (the names are not traced: the functions key it)
            if len(self._eval_fns) >= _EVAL_CACHE:
                self._eval_fns.pop(next(iter(self._eval_fns)))

            def values(theta: tf.Tensor, batch: Any) -> list[Any]:
                with self._scope(theta):
                    return [fn(self.model, batch) for fn in fns]

            self._eval_fns[fns] = tf.function(values, reduce_retracing=True)
        traced = self._eval_fns[fns]

        def run(theta: tf.Tensor, batch: Any) -> tf.Tensor:
            values = traced(theta, batch)
            return tf.stack(
                [_metric_value(n, v, theta.dtype) for n, v in zip(names, values, strict=True)]
            )

        return run

    def _run_first(self, run: Callable[[], Any]) -> Any:
        """``run()`` (``loss_fn`` on the first batch), its failure a ProblemError."""
        try:
            return run()
        except Exception as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            detail = (lines[0] if lines else type(err).__name__).rstrip(".")
            raise ProblemError(
                f"loss_fn(model, batch) fails on the first batch: {detail}. loss_fn takes the "
                "model first, then one batch as the data holds it, and returns the batch's "
                "mean loss as a 0-d tensor."
            ) from err

    def _check_first_batch(self, batch: Any) -> None:
        """Run ``loss_fn`` on the first batch at θ0 with its gradient, so that a loss the walk
        cannot use is refused here, naming what it returned.

        Raises:
            ProblemError: ``loss_fn`` fails (TensorFlow's error as the cause), returns
                something other than a 0-d floating tensor, or a value that does not depend
                on the trainable variables through the tape.
        """
        theta = tf.convert_to_tensor(self.theta0)

        def run() -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                tape.watch(theta)
                with self._scope(theta):
                    value = self._user_loss(self.model, batch)
            if not tf.is_tensor(value) or value.shape.rank != 0 or not value.dtype.is_floating:
                return value, None
            return value, tape.gradient(value, theta)

        value, grad = self._run_first(run)
        _check_loss_value(value)
        if grad is None:
            raise ProblemError(
                "loss_fn(model, batch) returned a loss that does not depend on the model's "
                "trainable variables on the gradient tape: compute it from the model passed "
                "as the first argument (not another model, or values read from it "
                "beforehand), with TensorFlow or Keras operations (no .numpy(), no "
                "tf.stop_gradient)."
            )
        self._probe_dtype = value.dtype


def _metric_value(name: str, value: Any, dtype: tf.DType) -> tf.Tensor:
    """A metric's batch mean as a 0-d tensor of ``dtype``.

    Raises:
        ProblemError: ``value`` is neither a 0-d tensor nor a number (the metric named).
    """
    if isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return tf.constant(float(value), dtype)
    if not tf.is_tensor(value) or value.shape.rank != 0:
        raise ProblemError(
            f"evaluate: metric {name!r} must return the batch's mean as a 0-d tensor or a "
            f"number, got {describe_structure(value)}."
        )
    return tf.cast(value, dtype)


def _is_loss(value: Any) -> bool:
    """Whether ``value`` is a loss the walk can use: a 0-d floating tensor."""
    return tf.is_tensor(value) and value.shape.rank == 0 and value.dtype.is_floating


def _check_loss_value(value: Any) -> None:
    """Raise unless ``value`` is a 0-d floating tensor, naming what it is.

    Raises:
        ProblemError: anything else; a container holding the loss (a ``"loss"`` entry, a
            ``.loss`` field, or first in a tuple) gets a hint.
    """
    if _is_loss(value):
        return
    if tf.is_tensor(value):
        what = f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype.name}"
        hint = " Return the batch's mean loss (tf.reduce_mean) as a floating tensor."
    else:
        what = describe_structure(value)
        hint = " Return the batch's mean loss as a 0-d tensor computed with the model."
        found = loss_entry(value, _is_loss)
        if found is not None:
            hint = f" It holds the loss as {found[0]}: return that."
    raise ProblemError(
        f"loss_fn(model, batch) must return a 0-d floating tensor (the batch's mean loss), "
        f"got {what} on the first batch.{hint}"
    )


def _compute_dtype(model: keras.layers.Layer) -> tf.DType:
    """The dtype an unbuilt model computes in (its dtype policy's)."""
    return tf.as_dtype(getattr(model, "compute_dtype", None) or keras.config.floatx())


def _check_arguments(model: Any, loss_fn: Any) -> None:
    """Raise unless ``model`` is a Keras model and ``loss_fn`` a function of the model and a
    batch.

    Raises:
        TypeError: arguments swapped, a model that is not a Keras layer or model, a loss that
            is not callable, or a Keras loss (a function of targets and outputs).
    """
    if not isinstance(model, keras.layers.Layer):
        if isinstance(loss_fn, keras.layers.Layer):
            raise TypeError(
                f"model is a {type(model).__name__} and loss_fn the Keras model "
                f"{type(loss_fn).__name__}: the arguments are swapped. The order is "
                "from_loss(model, loss_fn, data)."
            )
        raise TypeError(f"model must be a Keras 3 model, got {type(model).__name__}.")
    check_callable("loss_fn", loss_fn)
    is_class = isinstance(loss_fn, type) and issubclass(loss_fn, keras.losses.Loss)
    module = getattr(loss_fn, "__module__", None) or ""
    if is_class or isinstance(loss_fn, keras.losses.Loss) or module.startswith("keras."):
        name = getattr(loss_fn, "__name__", type(loss_fn).__name__)
        raise TypeError(
            f"loss_fn is the Keras loss {name}, a function of targets and outputs; from_loss "
            "takes loss_fn(model, batch). Use from_model(model, loss, (x, y)), or "
            "from_loss(model, lambda m, b: loss(b[1], m(b[0], training=False)), data)."
        )


def from_loss(
    model: keras.Model,
    loss_fn: ModelLoss,
    data: Any,
    *,
    reg: str | Callable[[tf.Tensor], tf.Tensor] = "l2",
    batch_size: BatchSizeFn | None = None,
    compile: bool = False,
) -> TFLossProblem:
    """Wrap a Keras 3 model (TensorFlow backend) and its loss on batches of any structure.

    Example (a model of a dict batch)::

        def loss_fn(model, batch):
            logits = model({"tokens": batch["tokens"], "mask": batch["mask"]}, training=False)
            return tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(batch["y"], logits, from_logits=True)
            )

        problem = manifoldwalk_tf.from_loss(model, loss_fn, batches)
        result = manifoldwalk.walk(problem, problem.theta0)

    The loss is evaluated at any θ without writing the model's variables: ``loss_fn`` runs
    inside a ``keras.StatelessScope`` in which every trainable variable reads as its piece of
    θ (assignments inside, e.g. batch-norm updates in training mode, are dropped).

    Args:
        model: a Keras 3 model; its trainable variables are θ, as for
            :func:`~manifoldwalk_tf.from_model` (one floating dtype; non-trainable variables
            held fixed). An unbuilt model is built by running ``loss_fn`` on the first batch.
        loss_fn: ``loss_fn(model, batch)`` returning the batch's mean loss as a 0-d floating
            tensor, computed with the model passed to it by TensorFlow or Keras operations
            (e.g. ``lambda m, b: tf.reduce_mean(tf.square(m(b["x"], training=False) -
            b["y"]))``, or a model that returns its own loss). Call the model with
            ``training=False``: the walk needs a deterministic loss (a warning names the
            dropout and batch-norm layers). It is run once with its gradient on the first
            batch while building and refused with a ProblemError if it fails there
            (TensorFlow's error as the cause), returns anything but a 0-d floating tensor, or
            does not depend on the trainable variables. A float32 Keras loss object used
            inside computes in float32 even on the float64 copy; then ``as_float64()`` returns
            None.
        data: one batch, or a re-iterable of batches. A batch is any nesting of dicts (other
            mappings are read as dicts), tuples, lists and namedtuples of numpy arrays or
            tensors and other values (strings, Python numbers: passed to ``loss_fn`` as they
            are). A dict, a namedtuple, an array, or a tuple or list with an array among its
            items is one batch; another tuple or list is a list of batches; a generator object
            is refused (the loss is evaluated many times). Floating arrays are cast to θ's
            dtype, integer and boolean ones kept. One batch or a tuple or list of batches is
            converted once and held: batches of equal structure, shapes and dtypes stacked and
            run in a ``tf.while_loop`` inside one ``tf.function`` (traced once). Any other
            re-iterable (a ``tf.data.Dataset``, a function returning a fresh iterable) is
            streamed: each batch converted as it is used and run through a per-batch
            ``tf.function``; ``compile=True`` is then refused.
        reg: ``"l2"``, ``"l2-weights"`` or a differentiable TensorFlow function of the flat θ,
            as for :func:`~manifoldwalk_tf.from_model`.
        batch_size: ``batch -> number of examples``, each batch's weight: the full-batch loss
            is ``Σ_b n_b·L_b / Σ_b n_b``. None: the leading dimension of the batch's first
            array (dicts in insertion order, depth first); give it when that array is not one
            row per example.
        compile: run the walk on ``tf.Tensor`` with the whole step compiled into one XLA
            ``tf.function``, as for :func:`~manifoldwalk_tf.from_model` (held batches only,
            and a ``loss_fn`` that XLA can compile).

    Returns:
        A :class:`TFLossProblem`; walk it with ``manifoldwalk.walk(problem, problem.theta0)``
        and write the result into the model with ``problem.assign(result.theta)``.

    Raises:
        TypeError: ``model`` not a Keras model (arguments swapped), ``loss_fn`` not callable
            or a Keras loss of targets and outputs (use :func:`~manifoldwalk_tf.from_model`),
            data that is no batch or a one-shot iterator, a ``batch_size`` that is not
            callable, a half-precision model.
        ProblemError: empty data, a batch without an array when there are several (give
            ``batch_size``), ``compile=True`` with streamed batches, a ``loss_fn`` refused on
            the first batch (see ``loss_fn``); the parameter errors of
            :func:`~manifoldwalk_tf.from_model`.
        RuntimeError: Keras runs on another backend than TensorFlow.
        ValueError: an unknown ``reg`` name.

    Warns:
        UserWarning: the model holds dropout or batch-norm layers.
    """
    return TFLossProblem(model, loss_fn, data, reg=reg, batch_size=batch_size, compile=compile)
