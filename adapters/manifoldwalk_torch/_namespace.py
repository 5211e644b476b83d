"""``array_api_compat.torch`` with direct torch calls for the walk step's hot functions.

The eager walk step (the default for PyTorch problems) makes about a hundred calls per step
through the array-API namespace, most of them on 0-d tensors (step sizes, flags, counters).
``array_api_compat.torch`` wraps several of them in type-promotion code that costs more than
the operation: on this project's CPU, ``where`` on three 0-d tensors 8.6 µs against 2.3 µs for
``torch.where``, ``maximum`` 15 µs against 2.5 µs, ``matmul`` of two vectors 14 µs more than
``torch.matmul`` (``benchmarks/torch_namespace.py``). :data:`TORCH` calls torch directly where
the operands are tensors of one dtype (or a tensor and a Python scalar of its kind), where the
array API and torch agree on the result, and hands every other call, and every other name, to
``array_api_compat.torch``: the same values bit for bit, fewer microseconds. It is registered
with the core when ``manifoldwalk_torch`` is imported (:func:`register`).
"""

from __future__ import annotations

from typing import Any

import array_api_compat.torch as _base
import torch

from manifoldwalk._array import register_namespace

_Tensor = torch.Tensor


def _same_dtype(x1: Any, x2: Any) -> bool:
    """Both are tensors of one dtype (the array API and torch then promote alike: not at all)."""
    return isinstance(x1, _Tensor) and isinstance(x2, _Tensor) and x1.dtype == x2.dtype


def _scalar_of_kind(tensor: Any, scalar: Any) -> bool:
    """``tensor`` is a tensor and ``scalar`` a Python float (int) with a floating (integer)
    ``tensor``: both take ``tensor``'s dtype for the scalar."""
    if not isinstance(tensor, _Tensor):
        return False
    kind = type(scalar)
    if kind is float:
        return tensor.dtype.is_floating_point
    return kind is int and not tensor.dtype.is_floating_point and tensor.dtype != torch.bool


class TorchNamespace:
    """``array_api_compat.torch`` with torch's own ``where``, ``maximum``, ``minimum``,
    ``matmul`` and ``atan2`` where the operands need no promotion (see the module doc).
    Every other name is ``array_api_compat.torch``'s."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(_base, name)
        setattr(self, name, value)  # later lookups skip __getattr__
        return value

    def where(self, condition: Any, x1: Any, x2: Any, /) -> Any:
        """``where`` (array API)."""
        if isinstance(condition, _Tensor) and condition.dtype == torch.bool:
            if _same_dtype(x1, x2) or _scalar_of_kind(x1, x2) or _scalar_of_kind(x2, x1):
                return torch.where(condition, x1, x2)
        return _base.where(condition, x1, x2)

    def maximum(self, x1: Any, x2: Any, /) -> Any:
        """``maximum`` (array API)."""
        if _same_dtype(x1, x2):
            return torch.maximum(x1, x2)
        return _base.maximum(x1, x2)

    def minimum(self, x1: Any, x2: Any, /) -> Any:
        """``minimum`` (array API)."""
        if _same_dtype(x1, x2):
            return torch.minimum(x1, x2)
        return _base.minimum(x1, x2)

    def matmul(self, x1: Any, x2: Any, /) -> Any:
        """``matmul`` (array API)."""
        if _same_dtype(x1, x2):
            return torch.matmul(x1, x2)
        return _base.matmul(x1, x2)

    def atan2(self, x1: Any, x2: Any, /) -> Any:
        """``atan2`` (array API)."""
        if _same_dtype(x1, x2):
            return torch.atan2(x1, x2)
        return _base.atan2(x1, x2)


TORCH = TorchNamespace()
"""The namespace the core's ``namespace(x)`` answers for torch tensors once registered."""


def register() -> None:
    """Make the core's ``namespace(x)`` answer :data:`TORCH` for torch tensors."""
    register_namespace(_Tensor, TORCH)
