"""What the Keras adapter checks when it wraps a model: the arguments' order, the model's
precision and stochastic layers, the backend, and the data's conversion to tensors."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from manifoldwalk.adapter_api import (
    check_examples,
    check_plain_pair,
    half_precision_error,
    stochastic_layers_message,
)

LossFn = Callable[[Any, Any], Any]
"""``loss_fn(y_true, y_pred)`` as the adapter calls it."""

FROM_LOSS = (
    "manifoldwalk_tf.from_loss(model, lambda m, b: keras_loss(b[1], m(b[0], training=False)), "
    "(x, y))"
)
"""The call the data errors point to for inputs that are not one array."""

# the Keras layers that behave differently in training
_STOCHASTIC = tuple(
    getattr(keras.layers, name)
    for name in (
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianDropout",
        "GaussianNoise",
        "AlphaDropout",
        "BatchNormalization",
    )
    if hasattr(keras.layers, name)
)


def _check_order(model: Any, loss_fn: Any) -> None:
    """Raise unless ``model`` is a Keras model and ``loss_fn`` a loss instance (not a class),
    naming swapped arguments.

    Raises:
        TypeError: ``model`` is not a Keras layer or model (a loss: the arguments swapped),
            or ``loss_fn`` is a loss class.
    """
    if not isinstance(model, keras.layers.Layer):
        if isinstance(loss_fn, keras.layers.Layer):
            raise TypeError(
                f"model is a {type(model).__name__} and loss_fn the Keras model "
                f"{type(loss_fn).__name__}: the arguments are swapped. The order is "
                "from_model(model, loss_fn, data)."
            )
        raise TypeError(f"model must be a Keras 3 model, got {type(model).__name__}.")
    if isinstance(loss_fn, type) and issubclass(loss_fn, keras.losses.Loss):
        name = loss_fn.__name__
        raise TypeError(
            f"loss_fn is the class keras.losses.{name}, not a loss: instantiate it, e.g. "
            f"loss_fn=keras.losses.{name}() (with its options, such as from_logits=True)."
        )


def _layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The model and every layer inside it."""
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:
        return [model, *getattr(model, "layers", [])]
    return list(flatten(include_self=True, recursive=True))


def _check_precision(model: keras.layers.Layer) -> None:
    """Raise if a layer computes or keeps its variables in half precision (a float16 or
    bfloat16 dtype policy, mixed ones included).

    Raises:
        TypeError: a half-precision layer (the policy named in the message).
    """
    for layer in _layers(model):
        policy = getattr(layer, "dtype_policy", None)
        compute = str(getattr(policy, "compute_dtype", None) or getattr(layer, "compute_dtype", ""))
        variable = str(getattr(policy, "variable_dtype", None) or "")
        if compute in ("float16", "bfloat16") or variable in ("float16", "bfloat16"):
            name = getattr(policy, "name", compute)
            raise half_precision_error(
                f"{compute} (layer {layer.name!r}, dtype policy {name!r})",
                "a float32 policy: keras.config.set_dtype_policy('float32') before building "
                "the model (or dtype='float32' on its layers), and the weights loaded into it",
            )


def _warn_if_stochastic(model: keras.layers.Layer) -> None:
    """Warn, as the PyTorch adapter does, that the loss is taken in inference mode, where the
    model behaves differently in training (``stacklevel=4``: ``from_model``,
    ``TFProblem.__init__`` and this function lie between the user and the warning).

    Warns:
        UserWarning: the model holds dropout, noise or batch-norm layers (or a recurrent
            layer with a dropout rate).
    """
    found = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in _layers(model)[1:]
        if isinstance(layer, _STOCHASTIC)
        or float(getattr(layer, "dropout", 0) or 0) > 0
        or float(getattr(layer, "recurrent_dropout", 0) or 0) > 0
    ]
    if found:
        warnings.warn(
            stochastic_layers_message(found, "manifoldwalk_tf", "training=False: "),
            UserWarning,
            stacklevel=4,
        )


def _check_backend() -> None:
    """Raise unless Keras runs on TensorFlow."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"manifoldwalk_tf needs Keras on the TensorFlow backend, but Keras runs on {backend!r}:"
            " set KERAS_BACKEND=tensorflow before Keras is imported."
        )


def _in_our_order(loss_fn: Any) -> LossFn:
    """``loss_fn`` as ``(outputs, targets) -> loss``: Keras losses take ``(y_true, y_pred)``."""
    module = getattr(loss_fn, "__module__", None) or ""
    if isinstance(loss_fn, keras.losses.Loss) or module.startswith("keras."):
        return lambda outputs, targets: loss_fn(targets, outputs)
    return loss_fn


def _takes_training(model: keras.layers.Layer) -> bool:
    """Whether ``model.call`` accepts a ``training`` argument."""
    params = inspect.signature(model.call).parameters.values()
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)


def _as_tensors(data: Any, what: str) -> tuple[tf.Tensor, tf.Tensor]:
    """``(x, y)`` as tensors, checked to be of equal, non-zero length.

    Raises:
        TypeError: ``data`` is not a pair of two arrays (a dict or a list of arrays as ``x``,
            for a model of several inputs: ``from_loss`` takes those).
        ProblemError: inputs and targets of different lengths, or no examples.
    """
    check_plain_pair(data, what, FROM_LOSS)
    # Through numpy: TensorFlow makes Python floats float32, so a float64 model's nested-list
    # data would lose digits.
    x, y = (tf.convert_to_tensor(a if tf.is_tensor(a) else np.asarray(a)) for a in data)
    check_examples(what, tuple(x.shape), tuple(y.shape))
    return x, y
