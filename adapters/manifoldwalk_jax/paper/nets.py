"""The paper's networks as pure JAX functions: ``init_*`` builds a parameter pytree, ``apply_*``
maps it and a batch to outputs.

Parameters are a dict ``{"conv": [...], "dense": [...]}`` (the feed-forward net has only
``"dense"``), each layer a dict ``{"kernel": ..., "bias": ...}`` in Keras' layout: dense kernels
``(in, out)``, convolution kernels ``(kh, kw, in, out)`` (HWIO). Weights are Glorot-normal
(``jax.nn.initializers.glorot_normal``: truncated normal, standard deviation
``sqrt(2 / (fan_in + fan_out))``, as Keras' ``GlorotNormal``) and biases zero. Convolutions are
NHWC, valid padding, stride 1; pooling is a 2×2 average of stride 2; the last feature map is
flattened in NHWC order. The nets therefore compute exactly what the Keras and PyTorch versions
compute for the same weights (:func:`get_weights` / :func:`set_weights` use the layout the three
share).

Parameter counts: MNIST-FF (``init_ff(key, 784, 10)``) 99,710; MNIST-CNV 54,930; CIFAR10-CNV
685,450 (see ``manifoldwalk_torch.paper.nets`` for the sums).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk.experiments._paper_parts import cnv_sizes, ff_widths

__all__ = [
    "Params",
    "apply_cnv",
    "apply_ff",
    "count_params",
    "get_weights",
    "init_cifar10_cnv",
    "init_cnv",
    "init_ff",
    "init_mnist_cnv",
    "set_weights",
]

Params = dict[str, list[dict[str, jax.Array]]]
"""A parameter pytree: ``{"conv": [layer, ...], "dense": [layer, ...]}``, layer = kernel + bias."""

_glorot = jax.nn.initializers.glorot_normal()


def _key(key: Any) -> jax.Array:
    """A PRNG key from a key or an integer seed."""
    if isinstance(key, (int, np.integer)):
        return jax.random.PRNGKey(int(key))
    return key


def _dtype(dtype: Any) -> jnp.dtype:
    """Check that ``dtype`` is a float type JAX will honour; return it as a NumPy dtype."""
    dt = jnp.dtype(dtype)
    if not jnp.issubdtype(dt, jnp.floating):
        raise ValueError(f"dtype must be a floating type, got {dt}")
    if dt.itemsize > 4 and not jax.config.jax_enable_x64:
        raise ValueError(
            f"dtype {dt} needs 64-bit JAX: set jax.config.update('jax_enable_x64', True) "
            "(or JAX_ENABLE_X64=1) before creating arrays"
        )
    return dt


@partial(jax.jit, static_argnums=(1, 2))
def _init_layers(
    key: jax.Array, shapes: tuple[tuple[int, ...], ...], dtype: jnp.dtype
) -> list[dict[str, jax.Array]]:
    """Layers with Glorot-normal kernels of ``shapes`` (fans from the last two axes), zero biases.

    Compiled as one program per architecture: run eagerly, the truncated normal compiles a few
    dozen small operations per kernel shape, which takes seconds on a small CPU.
    """
    keys = jax.random.split(key, len(shapes))
    return [
        {"kernel": _glorot(k, shape, dtype), "bias": jnp.zeros((shape[-1],), dtype)}
        for k, shape in zip(keys, shapes, strict=True)
    ]


def init_ff(
    key: Any,
    n_in: int | Sequence[int],
    n_out: int,
    hidden: Sequence[int] = (100, 100, 100),
    dtype: Any = jnp.float32,
) -> Params:
    """Initialise the paper's feed-forward net (tanh hidden layers, linear output).

    Args:
        key: A ``jax.random`` key, or an integer seed.
        n_in: The number of input features, or the shape of one input (flattened row-major).
        n_out: The number of outputs (class logits, or 1 for regression).
        hidden: The hidden widths; three of 100 by default (the authors' Iris/MPG nets had four).
        dtype: The parameters' floating dtype (float64 needs ``jax_enable_x64``).

    Returns:
        ``{"dense": [{"kernel": (a, b), "bias": (b,)}, ...]}``.

    Raises:
        ValueError: If a width is not positive or the dtype is not a usable float.
    """
    dt = _dtype(dtype)
    widths = ff_widths(n_in, hidden, n_out)
    shapes = tuple(zip(widths[:-1], widths[1:], strict=True))
    return {"dense": _init_layers(_key(key), shapes, dt)}


def apply_ff(params: Params, x: jax.Array) -> jax.Array:
    """Evaluate the feed-forward net.

    Args:
        params: From :func:`init_ff`.
        x: A batch ``(n, ...)``; everything after the first axis is flattened row-major.

    Returns:
        The outputs ``(n, n_out)``.
    """
    h = jnp.reshape(x, (x.shape[0], -1))
    layers = params["dense"]
    for layer in layers[:-1]:
        h = jnp.tanh(h @ layer["kernel"] + layer["bias"])
    return h @ layers[-1]["kernel"] + layers[-1]["bias"]


def init_cnv(
    key: Any,
    input_shape: Sequence[int],
    n_out: int = 10,
    *,
    filters: int = 20,
    dense: int = 100,
    dtype: Any = jnp.float32,
) -> Params:
    """Initialise the paper's convolutional net for channel-last images.

    conv ``filters``×3×3 tanh → avgpool 2 → conv ``filters``×3×3 tanh → avgpool 2 → flatten →
    dense ``dense`` tanh → dense ``n_out``.

    Args:
        key: A ``jax.random`` key, or an integer seed.
        input_shape: The shape of one image, ``(H, W)`` or ``(H, W, C)``.
        n_out: The number of class logits.
        filters: Filters per convolution.
        dense: The width of the hidden dense layer.
        dtype: The parameters' floating dtype.

    Returns:
        ``{"conv": [2 layers, HWIO kernels], "dense": [2 layers]}``.

    Raises:
        ValueError: If the image is too small for two conv/pool stages, a size is not positive or
            the dtype is not a usable float.
    """
    dt = _dtype(dtype)
    height, width, channels = cnv_sizes(input_shape, n_out, filters, dense)
    shapes = (
        (3, 3, channels, filters),
        (3, 3, filters, filters),
        (height * width * filters, dense),
        (dense, n_out),
    )
    layers = _init_layers(_key(key), shapes, dt)
    return {"conv": layers[:2], "dense": layers[2:]}


def init_mnist_cnv(key: Any, n_out: int = 10, dtype: Any = jnp.float32) -> Params:
    """Initialise MNIST-CNV (28×28×1 in, 20 filters, dense 100; 54,930 parameters).

    Args:
        key: A ``jax.random`` key, or an integer seed.
        n_out: The number of class logits.
        dtype: The parameters' floating dtype.

    Returns:
        The parameters of :func:`init_cnv` for ``(n, 28, 28)`` or ``(n, 28, 28, 1)`` inputs.
    """
    return init_cnv(key, (28, 28, 1), n_out, filters=20, dense=100, dtype=dtype)


def init_cifar10_cnv(key: Any, n_out: int = 10, dtype: Any = jnp.float32) -> Params:
    """Initialise CIFAR10-CNV (32×32×3 in, 60 filters, dense 300; 685,450 parameters).

    Args:
        key, n_out, dtype: As for :func:`init_mnist_cnv`.

    Returns:
        The parameters of :func:`init_cnv` for ``(n, 32, 32, 3)`` inputs.
    """
    return init_cnv(key, (32, 32, 3), n_out, filters=60, dense=300, dtype=dtype)


def _avg_pool_2(h: jax.Array) -> jax.Array:
    """2×2 average pooling of stride 2, valid padding, on an NHWC batch."""
    summed = jax.lax.reduce_window(
        h, np.zeros((), h.dtype), jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID"
    )
    return summed / jnp.asarray(4, h.dtype)


def apply_cnv(params: Params, x: jax.Array) -> jax.Array:
    """Evaluate the convolutional net.

    Args:
        params: From :func:`init_cnv` (or :func:`init_mnist_cnv`, :func:`init_cifar10_cnv`).
        x: Channel-last images ``(n, H, W)`` or ``(n, H, W, C)``.

    Returns:
        The logits ``(n, n_out)``.

    Raises:
        ValueError: If ``x`` has neither 3 nor 4 dimensions.
    """
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim != 4:
        raise ValueError(f"expected images (n, H, W) or (n, H, W, C), got shape {x.shape}")
    # Inputs take the parameters' dtype (numpy float64 images would otherwise meet float32
    # kernels when jax_enable_x64 is on).
    h = jnp.asarray(x, dtype=params["conv"][0]["kernel"].dtype)
    for layer in params["conv"]:
        h = jax.lax.conv_general_dilated(
            h,
            layer["kernel"],
            window_strides=(1, 1),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        h = _avg_pool_2(jnp.tanh(h + layer["bias"]))
    h = jnp.reshape(h, (h.shape[0], -1))
    hidden, out = params["dense"]
    h = jnp.tanh(h @ hidden["kernel"] + hidden["bias"])
    return h @ out["kernel"] + out["bias"]


def count_params(params: Any) -> int:
    """Return the number of scalars in a parameter pytree.

    Args:
        params: Any pytree of arrays.

    Returns:
        The total number of elements of its leaves.
    """
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))


def _layers(params: Params) -> list[dict[str, jax.Array]]:
    """Layers in network order: convolutions, then dense layers."""
    return [*params.get("conv", []), *params["dense"]]


def get_weights(params: Params) -> list[np.ndarray]:
    """Return the weights as NumPy arrays, kernel then bias per layer, in network order.

    The layout is Keras' (``model.get_weights()``) and that of
    ``manifoldwalk_torch.paper.nets.get_weights``: weights move between the frameworks unchanged.

    Args:
        params: A pytree from one of the ``init_*`` functions.

    Returns:
        A list of NumPy copies, two per layer.
    """
    return [np.array(layer[name]) for layer in _layers(params) for name in ("kernel", "bias")]


def set_weights(params: Params, weights: Sequence[np.ndarray]) -> Params:
    """Return a copy of ``params`` holding ``weights`` (the layout of :func:`get_weights`).

    Args:
        params: A template pytree from one of the ``init_*`` functions (gives shapes and dtype).
        weights: Kernel and bias per layer, in network order.

    Returns:
        A new pytree of the template's structure and dtypes.

    Raises:
        ValueError: If the number of arrays or a shape does not fit the template.
    """
    layers = _layers(params)
    if len(weights) != 2 * len(layers):
        raise ValueError(f"expected {2 * len(layers)} arrays, got {len(weights)}")
    new = iter(np.asarray(w) for w in weights)
    out: Params = {}
    for group in ("conv", "dense"):
        if group not in params:
            continue
        out[group] = []
        for layer in params[group]:
            entry = {}
            for name in ("kernel", "bias"):
                w = next(new)
                if w.shape != layer[name].shape:
                    raise ValueError(
                        f"{group} {name}: shape {w.shape} does not fit {layer[name].shape}"
                    )
                entry[name] = jnp.asarray(w, dtype=layer[name].dtype)
            out[group].append(entry)
    return out
