"""``array_api_compat.torch`` with direct torch calls for the walk step's hot functions.

The eager walk step (the default for PyTorch problems) makes about a hundred calls per step
through the array-API namespace, most of them on 0-d tensors (step sizes, flags, counters).
``array_api_compat.torch`` wraps several in type-promotion code that costs more than the
operation itself on 0-d tensors (``where``, ``maximum``, ``minimum``, ``atan2``, ``matmul``;
``python benchmarks/torch_namespace.py``; measured: docs/performance.md). :data:`TORCH` calls torch
directly where the operands are tensors of one dtype (there the array API and torch agree: no
promotion) and hands every other call, and every other name, to ``array_api_compat.torch``:
the same values bit for bit, fewer microseconds. ``manifoldwalk_torch`` registers it with the
core when imported (:func:`register`).
"""

from __future__ import annotations

from typing import Any

import array_api_compat.torch as _base
import torch

from manifoldwalk.adapter_api import register_namespace

_Tensor = torch.Tensor
_is_batched = getattr(torch._C._functorch, "is_batchedtensor", lambda x: False)
"""Whether a tensor is a :func:`torch.func.vmap` lane's view of a batch (private API; absent
in some torch version, nothing is batched)."""


def _same_dtype(x1: Any, x2: Any) -> bool:
    """Both are tensors of one dtype (the array API and torch then promote alike: not at all)."""
    return isinstance(x1, _Tensor) and isinstance(x2, _Tensor) and x1.dtype == x2.dtype


def _binary(name: str) -> Any:
    """The namespace method ``name(x1, x2)``: torch's own for two tensors of one dtype, else
    compat's."""
    direct, compat = getattr(torch, name), getattr(_base, name)

    def method(self: Any, x1: Any, x2: Any, /) -> Any:
        if _same_dtype(x1, x2):
            return direct(x1, x2)
        return compat(x1, x2)

    method.__name__ = name
    method.__doc__ = f"``{name}`` (array API)."
    return method


class TorchNamespace:
    """``array_api_compat.torch`` with torch's own ``where``, ``maximum``, ``minimum``,
    ``matmul`` and ``atan2`` where the operands need no promotion (see the module doc), and
    the inner product of vectors as a product and sum inside ``vmap``.
    Every other name is ``array_api_compat.torch``'s."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(_base, name)
        setattr(self, name, value)  # later lookups skip __getattr__
        return value

    def where(self, condition: Any, x1: Any, x2: Any, /) -> Any:
        """``where`` (array API)."""
        # A Python scalar operand goes to compat, which is as fast there (it only promotes).
        if isinstance(condition, _Tensor) and condition.dtype == torch.bool and _same_dtype(x1, x2):
            return torch.where(condition, x1, x2)
        return _base.where(condition, x1, x2)

    maximum = _binary("maximum")
    minimum = _binary("minimum")
    atan2 = _binary("atan2")

    def matmul(self, x1: Any, x2: Any, /) -> Any:
        """``matmul`` (array API)."""
        if not _same_dtype(x1, x2):
            return _base.matmul(x1, x2)
        if x1.dim() == 1 and _is_batched(x1) and _is_batched(x2):
            # Inside torch.func.vmap (manifoldwalk_torch.walk_batch) the inner product of two
            # vectors becomes a batched matrix product, slower on a CPU than the product and
            # sum formed here (measured:
            # docs/measurements/performance_history_2026-11-27_to_2026-12-03.md,
            # "PyTorch batched seeds"). The sum rounds differently; outside vmap nothing changes.
            return (x1 * x2).sum()
        return torch.matmul(x1, x2)


TORCH = TorchNamespace()
"""The namespace the core's ``namespace(x)`` answers for torch tensors once registered."""


def register() -> None:
    """Make the core's ``namespace(x)`` answer :data:`TORCH` for torch tensors."""
    register_namespace(_Tensor, TORCH)
