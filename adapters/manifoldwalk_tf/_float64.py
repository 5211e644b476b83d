"""Float64 copies of a Keras model and loss, for ``check_gradient`` on float32 problems.

A Sequential or Functional model is cloned with ``keras.models.clone_model``: every layer
rebuilt from its config with ``dtype="float64"`` (nested Sequential or Functional models
cloned the same way), float64 inputs in place of the floating ones, then the weights copied
and cast. A subclassed model has no config to rebuild it from, so it has no copy.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


def float64_clone(model: keras.Model) -> keras.Model | None:
    """A float64 copy of ``model`` with its weights, or None where it cannot be made.

    Args:
        model: a built Keras model.

    Returns:
        The copy (its variables and every layer's compute dtype float64), or None: a
        subclassed model, a layer whose config cannot be rebuilt in float64, or weights that
        do not fit the copy.
    """
    try:
        clone = _clone(model)
        clone.set_weights([_cast(w) for w in model.get_weights()])
    except Exception:  # any failure to rebuild means there is no copy, not an error
        return None
    if not _is_float64(clone):
        return None
    return clone


def float64_loss(loss_fn: Any) -> Any:
    """``loss_fn`` computing in float64: a Keras loss object remade from its config with
    ``dtype="float64"`` (it computes in its own dtype); anything else as it is."""
    if isinstance(loss_fn, keras.losses.Loss):
        try:
            return type(loss_fn).from_config({**loss_fn.get_config(), "dtype": "float64"})
        except Exception:  # a loss class without a config that takes dtype: as it is
            return loss_fn
    return loss_fn


def _clone(model: keras.Model) -> keras.Model:
    """``clone_model`` in float64 (raises for models it cannot clone)."""
    return keras.models.clone_model(
        model, input_tensors=_float64_inputs(model), clone_function=_float64_layer
    )


def _float64_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """``layer`` rebuilt from its config in float64 (a nested model: cloned)."""
    if isinstance(layer, keras.layers.InputLayer):
        return layer
    if isinstance(layer, keras.Model):
        return _clone(layer)
    config = layer.get_config()
    config["dtype"] = "float64"
    return type(layer).from_config(config)


def _float64_inputs(model: keras.Model) -> Any:
    """New ``keras.Input`` tensors like the model's, floating ones in float64."""

    def like(t: Any) -> Any:
        dtype = "float64" if "float" in str(t.dtype) else t.dtype
        return keras.Input(batch_shape=t.shape, dtype=dtype, name=getattr(t, "name", None))

    if isinstance(model, keras.Sequential):
        return like(model.inputs[0])
    return keras.tree.map_structure(like, model.input)


def _cast(w: Any) -> np.ndarray:
    """A weight as numpy, float64 where floating."""
    w = np.asarray(w)
    return w.astype(np.float64) if np.issubdtype(w.dtype, np.floating) else w


def _is_float64(model: keras.Model) -> bool:
    """Whether every floating variable and every layer's computation is float64 (input
    layers and nested models aside: they compute nothing themselves; their tensors' dtypes
    are the inputs' and their layers')."""
    for v in model.variables:
        if "float" in str(v.dtype) and str(v.dtype) != "float64":
            return False
    layers = model._flatten_layers(include_self=False, recursive=True)
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer | keras.Model):
            continue
        if str(getattr(layer, "compute_dtype", "float64")) != "float64":
            return False
    return True
