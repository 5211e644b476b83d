"""The trainable variables of a Keras model as one flat θ, and the way back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from manifoldwalk.adapter_api import ProblemError


class FlatVariables:
    """The model's trainable variables, in ``model.trainable_variables`` order, as flat θ.

    θ has the widest dtype among the variables (they normally share one); each piece is cast
    back to its variable's dtype when θ is split.

    Args:
        variables: the trainable variables.

    Raises:
        ProblemError: no variables, or a variable that is not floating-point.
    """

    def __init__(self, variables: Sequence[Any]) -> None:
        if not variables:
            raise ProblemError(
                "the model has no trainable parameters (model.trainable_variables is empty), "
                "so there is nothing to walk over; is every layer frozen (trainable=False)?"
            )
        for v in variables:
            dtype = np.dtype(tf.as_dtype(v.dtype).as_numpy_dtype)
            if not np.issubdtype(dtype, np.floating):
                kind = "an integer" if np.issubdtype(dtype, np.integer) else f"a {dtype}"
                raise ProblemError(
                    f"trainable variable {v.path!r} is {kind} variable (dtype {dtype}); the "
                    "walk needs floating-point parameters: create it with a float dtype, or "
                    "with trainable=False."
                )
        self.variables = list(variables)
        self.shapes = [tuple(int(d) for d in v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.tf_dtypes = [tf.as_dtype(v.dtype) for v in self.variables]
        self.dtype = np.result_type(*(d.as_numpy_dtype for d in self.tf_dtypes))
        self.n = sum(self.sizes)

    def read(self) -> np.ndarray:
        """The variables' current values as flat θ (numpy)."""
        return self.flatten([v.numpy() for v in self.variables])

    def flatten(self, arrays: Sequence[Any]) -> np.ndarray:
        """Flat θ from arrays shaped like the variables, in their order.

        Raises:
            ProblemError: the wrong number of arrays or a wrong shape.
        """
        arrays = list(arrays)
        if len(arrays) != len(self.shapes):
            raise ProblemError(
                f"flatten: expected {len(self.shapes)} arrays (one per trainable variable), "
                f"got {len(arrays)}."
            )
        parts = []
        for a, shape, v in zip(arrays, self.shapes, self.variables, strict=True):
            a = np.asarray(a)
            if a.shape != shape:
                raise ProblemError(f"flatten: {v.path!r} has shape {shape}, got {a.shape}.")
            parts.append(a.astype(self.dtype, copy=False).ravel())
        return np.concatenate(parts)

    def unflatten(self, theta: Any) -> list[np.ndarray]:
        """θ as a list of numpy arrays, one per variable, with its shape and dtype."""
        theta = self.check(theta)
        pieces = np.split(theta, np.cumsum(self.sizes)[:-1])
        return [
            p.reshape(s).astype(d.as_numpy_dtype, copy=True)
            for p, s, d in zip(pieces, self.shapes, self.tf_dtypes, strict=True)
        ]

    def split(self, theta: tf.Tensor) -> list[tf.Tensor]:
        """θ as a list of tensors shaped and typed like the variables (traceable)."""
        pieces = tf.split(theta, self.sizes)
        return [
            tf.cast(tf.reshape(p, s), d)
            for p, s, d in zip(pieces, self.shapes, self.tf_dtypes, strict=True)
        ]

    def assign(self, theta: Any) -> None:
        """Write θ into the variables."""
        for v, value in zip(self.variables, self.unflatten(theta), strict=True):
            v.assign(value)

    def check(self, theta: Any) -> np.ndarray:
        """θ as a 1-D numpy array of θ's dtype and length.

        Raises:
            ProblemError: the wrong shape.
        """
        theta = np.asarray(theta, dtype=self.dtype)
        self.check_shape(theta.shape)
        return theta

    def check_shape(self, shape: Any) -> None:
        """Raise ProblemError unless ``shape`` is θ's, ``(n,)``."""
        if tuple(shape) != (self.n,):
            raise ProblemError(
                f"θ must be a flat array of length {self.n}, got shape {tuple(shape)}."
            )
