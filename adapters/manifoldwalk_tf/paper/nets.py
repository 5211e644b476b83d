"""The paper's networks as Keras 3 models: the feed-forward net and the two convolutional nets.

These are the authors' own architectures (their code is Keras): ``GlorotNormal`` kernels (a
normal of standard deviation ``sqrt(2 / (fan_in + fan_out))``, truncated at two deviations and
rescaled to keep it), zero biases, tanh hidden layers, linear outputs (logits; the losses take
``from_logits=True``). Convolutions use the Keras defaults: valid padding, stride 1, channel-last
(NHWC); pooling is ``AveragePooling2D(2)``. Single-channel images ``(n, H, W)`` get their channel
axis added inside the model.

The weights (``model.get_weights()``: kernel then bias per layer, dense kernels ``(in, out)``,
convolution kernels HWIO) are interchangeable with ``manifoldwalk_torch.paper.nets`` and
``manifoldwalk_jax.paper.nets`` through their ``get_weights`` / ``set_weights``.

Parameter counts: MNIST-FF (``ff_net(784, 10)``) 99,710; MNIST-CNV 54,930; CIFAR10-CNV 685,450.

Each layer's initialiser gets its own integer seed derived from ``seed``
(``numpy.random.SeedSequence``), so a model is reproducible whatever the global Keras seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np

from manifoldwalk.experiments._paper_parts import cnv_sizes, ff_widths

__all__ = [
    "cifar10_cnv",
    "cnv_net",
    "count_params",
    "ff_net",
    "get_weights",
    "mnist_cnv",
    "set_weights",
]


def _seeds(seed: int, n: int) -> list[int]:
    """``n`` distinct per-layer initialiser seeds derived from ``seed``."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n) % (2**31 - 1)]


def _dense(units: int, seed: int, dtype: str, activation: str | None, name: str) -> keras.Layer:
    """A Dense layer with a seeded GlorotNormal kernel and a zero bias."""
    return keras.layers.Dense(
        units,
        activation=activation,
        kernel_initializer=keras.initializers.GlorotNormal(seed=seed),
        bias_initializer="zeros",
        dtype=dtype,
        name=name,
    )


def ff_net(
    n_in: int | Sequence[int],
    n_out: int,
    hidden: Sequence[int] = (100, 100, 100),
    *,
    dtype: str = "float32",
    seed: int = 0,
) -> keras.Sequential:
    """Build the paper's feed-forward net: flatten → (dense, tanh) per hidden layer → dense.

    Args:
        n_in: The number of input features, or the shape of one input (flattened row-major).
        n_out: The number of outputs: class logits, or 1 for regression.
        hidden: The hidden widths; three of 100 by default (the authors' Iris/MPG nets had four).
        dtype: The layers' dtype (``"float32"`` or ``"float64"``).
        seed: Seeds the initialisation.

    Returns:
        A built ``keras.Sequential`` mapping ``(n, *input_shape)`` to ``(n, n_out)``.

    Raises:
        ValueError: If a width is not positive.
    """
    shape = (int(n_in),) if isinstance(n_in, (int, np.integer)) else tuple(int(d) for d in n_in)
    widths = ff_widths(shape, hidden, n_out)
    seeds = _seeds(seed, len(widths) - 1)
    layers: list[keras.Layer] = [keras.Input(shape=shape, dtype=dtype)]
    if len(shape) > 1:
        layers.append(keras.layers.Flatten(dtype=dtype))
    for i, units in enumerate(widths[1:]):
        last = i == len(widths) - 2
        name = "output" if last else f"hidden_{i}"
        layers.append(_dense(units, seeds[i], dtype, None if last else "tanh", name))
    return keras.Sequential(layers, name="ff_net")


def cnv_net(
    input_shape: Sequence[int],
    n_out: int = 10,
    *,
    filters: int = 20,
    dense: int = 100,
    dtype: str = "float32",
    seed: int = 0,
) -> keras.Sequential:
    """Build the paper's convolutional net for channel-last images.

    conv ``filters``×3×3 tanh → avgpool 2 → conv ``filters``×3×3 tanh → avgpool 2 → flatten →
    dense ``dense`` tanh → dense ``n_out`` (logits).

    Args:
        input_shape: The shape of one image, ``(H, W)`` or ``(H, W, C)``.
        n_out: The number of class logits.
        filters: Filters per convolution.
        dense: The width of the hidden dense layer.
        dtype: The layers' dtype.
        seed: Seeds the initialisation.

    Returns:
        A built ``keras.Sequential``.

    Raises:
        ValueError: If the image is too small for two conv/pool stages or a size is not positive.
    """
    cnv_sizes(input_shape, n_out, filters, dense)  # raises for an image too small
    shape = tuple(int(d) for d in input_shape)
    seeds = _seeds(seed, 4)
    layers: list[keras.Layer] = [keras.Input(shape=shape, dtype=dtype)]
    if len(shape) == 2:
        layers.append(keras.layers.Reshape((*shape, 1), dtype=dtype))
    for i in range(2):
        layers += [
            keras.layers.Conv2D(
                filters,
                3,
                activation="tanh",
                kernel_initializer=keras.initializers.GlorotNormal(seed=seeds[i]),
                bias_initializer="zeros",
                dtype=dtype,
                name=f"conv_{i}",
            ),
            keras.layers.AveragePooling2D(2, dtype=dtype, name=f"pool_{i}"),
        ]
    layers += [
        keras.layers.Flatten(dtype=dtype),
        _dense(dense, seeds[2], dtype, "tanh", "hidden"),
        _dense(n_out, seeds[3], dtype, None, "output"),
    ]
    return keras.Sequential(layers, name="cnv_net")


def mnist_cnv(n_out: int = 10, *, dtype: str = "float32", seed: int = 0) -> keras.Sequential:
    """Build MNIST-CNV (28×28 single-channel in, 20 filters, dense 100; 54,930 parameters).

    Args:
        n_out: The number of class logits.
        dtype: The layers' dtype.
        seed: Seeds the initialisation.

    Returns:
        The model of :func:`cnv_net` for ``(n, 28, 28)`` inputs.
    """
    return cnv_net((28, 28), n_out, filters=20, dense=100, dtype=dtype, seed=seed)


def cifar10_cnv(n_out: int = 10, *, dtype: str = "float32", seed: int = 0) -> keras.Sequential:
    """Build CIFAR10-CNV (32×32×3 in, 60 filters, dense 300; 685,450 parameters).

    Args:
        n_out, dtype, seed: As for :func:`mnist_cnv`.

    Returns:
        A built ``keras.Sequential``: the model of :func:`cnv_net` for ``(n, 32, 32, 3)`` inputs.
    """
    return cnv_net((32, 32, 3), n_out, filters=60, dense=300, dtype=dtype, seed=seed)


def count_params(model: keras.Model) -> int:
    """Return the number of trainable scalars of ``model``.

    Args:
        model: A built Keras model.

    Returns:
        The total number of elements of its trainable variables.
    """
    return sum(math.prod(v.shape) for v in model.trainable_variables)


def get_weights(model: keras.Model) -> list[np.ndarray]:
    """Return ``model.get_weights()``: kernel then bias per layer, the layout shared with the
    PyTorch and JAX nets.

    Args:
        model: A built Keras model.

    Returns:
        A list of NumPy arrays.
    """
    return [np.asarray(w) for w in model.get_weights()]


def set_weights(model: keras.Model, weights: Sequence[np.ndarray]) -> None:
    """Load weights in the layout of :func:`get_weights` into ``model``, in place.

    Args:
        model: A built Keras model.
        weights: Kernel and bias per layer.

    Raises:
        ValueError: If the number of arrays or a shape does not fit ``model``.
    """
    variables = model.weights
    if len(weights) != len(variables):
        raise ValueError(f"expected {len(variables)} arrays, got {len(weights)}")
    for v, w in zip(variables, weights, strict=True):
        w = np.asarray(w)
        if tuple(w.shape) != tuple(v.shape):
            raise ValueError(f"{v.path}: shape {w.shape} does not fit {tuple(v.shape)}")
        v.assign(w.astype(v.dtype))
