"""``from_loss``'s data: batches of any structure, moved to the model's device as used.

How ``data`` is read (one batch or many) and how each batch is weighted are the core's
(:mod:`manifoldwalk._batches`). Here each batch is moved to the device: every tensor and
numeric numpy array in it becomes a tensor on the model's device, floating ones cast to the
parameters' dtype, integer and boolean ones (token ids, attention masks, class labels) kept
as they are; other leaves (Python numbers, strings, numpy arrays of strings) pass unchanged.
Dicts, tuples, lists and namedtuples are rebuilt with the moved leaves; another mapping
(``UserDict``, Hugging Face's ``BatchEncoding``) is rebuilt as its own type when that type
takes a dict, else as a dict.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from manifoldwalk._batches import Batches, BatchSizeFn
from manifoldwalk.adapter_api import ProblemError

__all__ = ["LossData", "move_batch"]

_NUMERIC_KINDS = "biufc"
"""numpy dtype kinds that become tensors (bool, integers, floats, complex)."""


def _move_leaf(value: Any, dtype: torch.dtype, device: torch.device | None) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind in _NUMERIC_KINDS:
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        return value
    target = dtype if value.is_floating_point() else value.dtype
    return value.to(device=device or value.device, dtype=target, non_blocking=True)


def move_batch(batch: Any, dtype: torch.dtype, device: torch.device | None) -> Any:
    """``batch`` with its tensors and numeric numpy arrays as tensors on ``device``.

    Args:
        batch: any nesting of dicts (mappings), tuples, lists and namedtuples.
        dtype: the dtype floating leaves are cast to (integer and boolean leaves are kept).
        device: where the tensors go (None: where they are; the host for numpy arrays).

    Returns:
        The same structure with the leaves moved (a leaf already in place is itself).
    """
    if isinstance(batch, Mapping):
        moved = {k: move_batch(v, dtype, device) for k, v in batch.items()}
        if type(batch) is dict:
            return moved
        try:
            return type(batch)(moved)
        except TypeError:  # a mapping type that is not built from a dict
            return moved
    if isinstance(batch, tuple):
        parts = [move_batch(v, dtype, device) for v in batch]
        return type(batch)(*parts) if hasattr(type(batch), "_fields") else tuple(parts)
    if isinstance(batch, list):
        return [move_batch(v, dtype, device) for v in batch]
    return _move_leaf(batch, dtype, device)


class LossData:
    """``from_loss``'s training data: batches of any structure with their weights.

    One batch is moved to the device once, when the problem is built; several batches are
    moved one by one as each evaluation uses them.

    Args:
        data: one batch, or a re-iterable of batches (see :mod:`manifoldwalk._batches`).
        dtype: the parameters' dtype (floating leaves are cast to it).
        device: the parameters' device.
        batch_size: ``batch -> number of examples`` (None: the first array's leading
            dimension).

    Attributes:
        single: True when ``data`` is one batch.
        is_loader: True when the batches come from a re-iterable other than a list or a tuple
            (a DataLoader, a generator function): they cannot be baked into a compiled step.

    Raises:
        TypeError: ``data`` is a one-shot iterator or of no batch structure, or
            ``batch_size`` is not callable.
        ProblemError: ``data`` is empty, or a DataLoader that drops its last batch.
    """

    def __init__(
        self,
        data: Any,
        dtype: torch.dtype,
        device: torch.device | None,
        batch_size: BatchSizeFn | None = None,
    ) -> None:
        if isinstance(batch_size, int) and not isinstance(batch_size, bool):
            raise TypeError(
                "from_loss's batch_size is a function batch -> number of examples (each "
                f"batch's weight in the mean), got the int {batch_size}: split the data into "
                "batches yourself (a list of batches or a DataLoader)."
            )
        if getattr(data, "drop_last", False):
            raise ProblemError(
                "the DataLoader drops its last batch (drop_last=True), so it does not cover "
                "the training set: build it with drop_last=False."
            )
        self._batches = Batches(data, batch_size)
        self._dtype, self._device = dtype, device
        self.single = self._batches.single
        self.is_loader = not self.single and not isinstance(data, list | tuple)
        self._fixed: list[tuple[Any, int]] | None = None
        if self.single:
            ((batch, n),) = self._batches.with_sizes()
            self._fixed = [(move_batch(batch, dtype, device), n)]

    def sized_batches(self) -> Iterator[tuple[Any, int]]:
        """The batches on the device with their weights, ``(batch, n_b)``.

        Raises:
            ProblemError: no batches, or a weight below 1.
            TypeError: a batch whose weight cannot be found (no array in it).
        """
        if self._fixed is not None:
            yield from self._fixed
            return
        for batch, n in self._batches.with_sizes():
            yield move_batch(batch, self._dtype, self._device), n

    def first(self) -> Any:
        """The first batch, on the device (for the build-time check)."""
        for batch, _ in self.sized_batches():
            return batch
        raise ProblemError("data yielded no batches.")  # pragma: no cover (sized_batches raises)

    def evaluation(self, data: Any, batch_size: BatchSizeFn | None) -> Iterator[tuple[Any, int]]:
        """Held-out ``data``'s batches on the device with their weights, moved one by one.

        Args:
            data: one batch or a re-iterable of batches, read as the training data is.
            batch_size: the weights (None: the first array's leading dimension).

        Raises:
            As :class:`~manifoldwalk._batches.Batches` and :meth:`sized_batches`.
        """
        for batch, n in Batches(data, batch_size).with_sizes():
            yield move_batch(batch, self._dtype, self._device), n
