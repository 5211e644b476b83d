"""An array-API namespace over TensorFlow, so the engine's step can run on ``tf.Tensor``.

The engine computes through array-API namespaces (``array_api_compat``), which do not cover
TensorFlow. The walk step uses a small set of functions (elementwise arithmetic, ``where``,
``matmul`` of vectors, reductions, dtype handling); this module provides exactly those on
top of ``tf.experimental.numpy`` so that :meth:`TFProblem.compile_step` can trace the whole
step, the loss and gradient included, into one ``tf.function`` (XLA-compiled). It is
registered with the core by :func:`register`; nothing else in the core changes.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow.experimental.numpy as tnp

from manifoldwalk.adapter_api import register_namespace


class _Info:
    """What ``__array_namespace_info__()`` answers for TensorFlow."""

    def default_dtypes(self) -> dict[str, tf.DType]:
        return {"integral": tf.int64, "real floating": tf.float32, "bool": tf.bool}


_KINDS = {
    "real floating": lambda d: d.is_floating,
    "integral": lambda d: d.is_integer,
    "bool": lambda d: d == tf.bool,
}


_BLOCK = 32
"""Entries per block of :func:`_vector_dot` (the window of XLA:CPU's tree reduction)."""


def _vector_dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """``a · b`` of two vectors inside a traced function, summed in blocks of 32 entries.

    XLA:CPU sums a long vector as a tree of windowed sums of 32 (for accuracy), and so it does
    here: the sum of each row of 32 becomes the tree's first level, with the product written
    out in full. Yet the compiled chunk runs faster than with ``reduce_sum(a * b)``
    (``benchmarks/tf_dots.py``, "blocks" against "sums"; measured: docs/performance.md). The
    optimised HLO differs in how XLA fuses the flat gradient's concatenation into the
    products; why that is faster was not pinned down.
    """
    n = a.shape[0]
    if n is None or n < 2 * _BLOCK:
        return tf.reduce_sum(a * b)
    m = n - n % _BLOCK
    total = tf.reduce_sum(tf.reduce_sum(tf.reshape(a[:m] * b[:m], (-1, _BLOCK)), axis=1))
    if m < n:
        total += tf.reduce_sum(a[m:] * b[m:])
    return total


class TensorFlowNamespace:
    """The array-API functions the engine uses, for ``tf.Tensor`` (see the module doc)."""

    bool = tf.bool
    float32 = tf.float32
    float64 = tf.float64
    int64 = tf.int64

    # one-to-one with tf.experimental.numpy
    where = staticmethod(tnp.where)
    sqrt = staticmethod(tnp.sqrt)
    abs = staticmethod(tnp.abs)
    maximum = staticmethod(tnp.maximum)
    minimum = staticmethod(tnp.minimum)
    sign = staticmethod(tnp.sign)
    isfinite = staticmethod(tnp.isfinite)
    zeros_like = staticmethod(tnp.zeros_like)
    ones_like = staticmethod(tnp.ones_like)
    reshape = staticmethod(tnp.reshape)
    stack = staticmethod(tnp.stack)
    sum = staticmethod(tnp.sum)
    all = staticmethod(tnp.all)
    finfo = staticmethod(tnp.finfo)
    atan = staticmethod(tnp.arctan)
    atan2 = staticmethod(tnp.arctan2)

    @staticmethod
    def matmul(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        """``a @ b``; for two vectors in a traced function, a sum of products in blocks
        (:func:`_vector_dot`): XLA:CPU runs its dot of two vectors slower than a fused sum, and
        the walk step has up to six (``benchmarks/tf_dots.py``; measured:
        docs/performance.md)."""
        if a.shape.rank == 1 and b.shape.rank == 1 and not tf.executing_eagerly():
            return _vector_dot(a, b)
        return tnp.matmul(a, b)

    @staticmethod
    def asarray(value: Any, dtype: Any = None, device: Any = None) -> tf.Tensor:
        """``value`` as a tensor of ``dtype`` (``device`` is ignored: TensorFlow places it)."""
        return tf.convert_to_tensor(value, dtype=dtype)

    @staticmethod
    def zeros(shape: Any, dtype: Any = None, device: Any = None) -> tf.Tensor:
        """Zeros of ``shape`` and ``dtype`` (``device`` is ignored: TensorFlow places it)."""
        return tf.zeros(shape, dtype=dtype or tf.float32)

    @staticmethod
    def arange(stop: int, dtype: Any = None, device: Any = None) -> tf.Tensor:
        """``0, 1, …, stop − 1`` (``device`` is ignored: TensorFlow places it)."""
        return tf.range(stop, dtype=dtype or tf.int64)

    @staticmethod
    def astype(x: tf.Tensor, dtype: Any, copy: bool = True) -> tf.Tensor:
        """``x`` cast to ``dtype`` (``copy`` is ignored: tensors are immutable)."""
        return tf.cast(x, dtype)

    @staticmethod
    def full_like(x: tf.Tensor, fill_value: Any, dtype: Any = None) -> tf.Tensor:
        """A tensor shaped like ``x`` filled with ``fill_value``."""
        dtype = dtype or x.dtype
        # A Python float goes straight to ``dtype``: tf.cast would make it float32 first
        # (0.2 → 0.20000000298 in float64, a 1.5e-8 error an eta_max of 0.2 exposed).
        value = (
            tf.cast(fill_value, dtype)
            if tf.is_tensor(fill_value)
            else tf.constant(fill_value, dtype)
        )
        return tf.fill(tf.shape(x), value)

    @staticmethod
    def isdtype(dtype: tf.DType, kind: str) -> bool:
        """Whether ``dtype`` is of ``kind`` (``"real floating"``, ``"integral"``, ``"bool"``)."""
        return _KINDS[kind](tf.as_dtype(dtype))

    @staticmethod
    def __array_namespace_info__() -> _Info:
        return _Info()


NAMESPACE = TensorFlowNamespace()
"""The namespace instance the core returns for ``tf.Tensor`` arrays."""


def register() -> None:
    """Make the core's ``namespace(x)`` answer :data:`NAMESPACE` for TensorFlow tensors."""
    register_namespace(tf.Tensor, NAMESPACE)
