"""The PyTorch adapter's data: ``(x, y)`` tensors or a DataLoader, handed out as batches.

Training data given as ``(x, y)`` is moved to the model's device once (floating arrays cast to
the model's dtype, integer labels kept); a DataLoader's batches are moved as they come. Held-out
data for ``evaluate`` stays where it is and is moved batch by batch. The distributed problem
takes each rank's share of the training set here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from manifoldwalk.adapter_api import ProblemError, check_plain_pair

__all__ = [
    "FROM_LOSS",
    "Data",
    "as_tensor",
    "check_batch_size",
    "check_lengths",
    "count_examples",
    "example_count",
    "pair_length",
    "refuse_distributed_sampler",
    "shard_bounds",
    "take_shard",
]


FROM_LOSS = (
    "manifoldwalk_torch.from_loss(model, lambda m, b: loss_fn(m(b[0]), b[1]), (x, y)) "
    "(m(*b[0]) for a tuple of positional inputs)"
)
"""The call the data errors point to for inputs that are not one array."""


def check_batch_size(batch_size: Any) -> int | None:
    """``batch_size`` after checking it is None or a positive integer.

    Raises:
        ValueError: anything else (bools and numpy integers included).
    """
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be None or a positive integer, got {batch_size!r}.")
    return batch_size


class Data:
    """Training or held-out data, handed out as ``(x, y)`` batches.

    Build it with :meth:`build`. ``single`` is True when there is exactly one batch, the whole
    data set (no accumulation); ``is_loader`` when the batches come from a DataLoader.

    Args:
        arrays: ``(x, y)`` tensors already on their device, or None for a loader.
        batch_size: split ``arrays`` into batches of this many examples (None: one batch).
        loader: a re-iterable of ``(x, y)`` batches, or None.
        dtype, device: what a loader's batches are cast to and moved to.
    """

    def __init__(
        self,
        arrays: tuple[torch.Tensor, torch.Tensor] | None = None,
        batch_size: int | None = None,
        loader: Any = None,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> None:
        self._arrays = arrays
        self._batch_size = batch_size
        self._loader = loader
        self._dtype, self._device = dtype, device
        self.single = loader is None and batch_size is None
        self.is_loader = loader is not None

    @classmethod
    def build(
        cls,
        data: Any,
        dtype: torch.dtype,
        device: torch.device | None,
        batch_size: int | None,
        what: str = "data",
    ) -> Data:
        """Arrays moved to ``device`` (if given), or a loader; see
        :func:`manifoldwalk_torch.from_model`.

        Args:
            data: ``(x, y)`` (tensors, numpy arrays or nested lists) or a DataLoader (any
                re-iterable of ``(x, y)`` batches).
            dtype: the dtype floating arrays are cast to (integer labels are kept).
            device: where arrays are moved (None: where they are).
            batch_size: for ``(x, y)``, examples per batch (None, or not fewer than the
                examples: one batch).
            what: what the data are, to start an error message (``"evaluate"``).

        Returns:
            The data.

        Raises:
            ValueError: a bad ``batch_size``, a ``batch_size`` with a DataLoader, or a scalar
                array.
            ProblemError: inputs and targets of different lengths, no examples, or a
                DataLoader that drops its last batch.
            TypeError: ``data`` of more than two arrays, or of another kind; an ``x`` or ``y``
                that is a dict or a tuple of arrays (several inputs: ``from_loss`` takes those).
        """
        batch_size = check_batch_size(batch_size)
        if isinstance(data, tuple | list) and len(data) == 2 and not _is_batch_list(data):
            check_plain_pair(data, what, FROM_LOSS)
            x, y = (as_tensor(a, dtype, device, name) for a, name in zip(data, "xy", strict=True))
            check_lengths(x, y)
            if x.shape[0] == 0:
                raise ProblemError("the data hold no examples.")
            if batch_size is not None and batch_size >= x.shape[0]:
                batch_size = None
            return cls((x, y), batch_size)
        if isinstance(data, tuple | list) and data and all(map(_is_array, data)):
            raise TypeError(
                f"data must be (x, y), two arrays; got a {type(data).__name__} of {len(data)} "
                "arrays. Pass the inputs and the targets only (extra targets go in a loss_fn "
                "that closes over them)."
            )
        if isinstance(data, Iterable) and not isinstance(data, torch.Tensor | str | bytes):
            if batch_size is not None:
                raise ValueError("batch_size applies to (x, y) data; a DataLoader has its own.")
            if getattr(data, "drop_last", False):
                raise ProblemError(
                    "the DataLoader drops its last batch (drop_last=True), so it does not cover "
                    "the training set: build it with drop_last=False."
                )
            return cls(loader=data, dtype=dtype, device=device)
        raise TypeError(
            "data must be (x, y) (tensors or numpy arrays) or a DataLoader of (x, y) batches, "
            f"got {type(data).__name__}."
        )

    @property
    def inputs(self) -> torch.Tensor | None:
        """All the inputs, for ``(x, y)`` data (None for a loader: not at hand)."""
        return None if self._arrays is None else self._arrays[0]

    @property
    def targets(self) -> torch.Tensor | None:
        """All the targets, for ``(x, y)`` data (None for a loader: not at hand)."""
        return None if self._arrays is None else self._arrays[1]

    def sized_batches(self) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], int]]:
        """The ``(x, y)`` batches with their numbers of examples, ``((x, y), n_b)``.

        Raises:
            As :meth:`batches`.
        """
        for x, y in self.batches():
            yield (x, y), x.shape[0]

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The ``(x, y)`` batches, each on the device (loader batches are moved as they come).

        Raises:
            TypeError: a DataLoader batch that is not an ``(x, y)`` pair of two arrays.
            ProblemError: a DataLoader batch of mismatched lengths, or no batches at all.
        """
        if self._loader is None:
            x, y = self._arrays
            if self._batch_size is None:
                yield x, y
            else:
                yield from zip(x.split(self._batch_size), y.split(self._batch_size), strict=True)
            return
        empty = True
        for batch in self._loader:
            if not (isinstance(batch, tuple | list) and len(batch) == 2):
                raise TypeError("each DataLoader batch must be an (x, y) pair.")
            check_plain_pair(batch, "each DataLoader batch", FROM_LOSS)
            x, y = (
                as_tensor(a, self._dtype, self._device, n) for a, n in zip(batch, "xy", strict=True)
            )
            check_lengths(x, y)
            empty = False
            yield x, y
        if empty:
            raise ProblemError("the DataLoader yielded no batches.")


def _is_batch_list(data: tuple | list) -> bool:
    """``data`` is a sequence of ``(x, y)`` batches, each a pair of arrays (two batches, read as
    one ``(x, y)``, would take the first batch for the inputs and the second for the targets)."""
    return all(isinstance(b, tuple | list) and len(b) == 2 and all(map(_is_array, b)) for b in data)


def _is_array(value: Any) -> bool:
    """A tensor or an array (not a pair of them, as a list of loader batches holds)."""
    return isinstance(value, torch.Tensor) or (
        hasattr(value, "__array__") and not isinstance(value, tuple | list)
    )


def as_tensor(
    value: Any, dtype: torch.dtype | None, device: torch.device | None, name: str
) -> torch.Tensor:
    """``value`` as a tensor on ``device``; floating values cast to ``dtype`` (integers kept).

    Args:
        value: a tensor, numpy array or nested list with a leading example axis.
        dtype: the dtype for floating values (None: keep theirs).
        device: where to put it (None: where it is; the host for non-tensors).
        name: the argument's name, for the error message.

    Returns:
        The tensor (``value`` itself when nothing changes).

    Raises:
        ValueError: ``value`` is a scalar.
    """
    # Through numpy: torch.as_tensor makes Python floats float32 (its default dtype), so a
    # float64 model's nested-list data would lose digits before the cast below.
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    target = dtype if tensor.is_floating_point() and dtype is not None else tensor.dtype
    if tensor.dim() == 0:
        raise ValueError(f"{name} must have a leading example axis, got a scalar.")
    return tensor.to(device=device or tensor.device, dtype=target, non_blocking=True)


def check_lengths(x: torch.Tensor, y: torch.Tensor) -> None:
    """Raise unless inputs and targets hold the same number of examples.

    Raises:
        ProblemError: different lengths.
    """
    if x.shape[0] != y.shape[0]:
        raise ProblemError(
            f"inputs and targets must have the same number of examples, got {x.shape[0]} "
            f"inputs and {y.shape[0]} targets."
        )


# --- a rank's share of the data (manifoldwalk_torch.distributed) ---------------------------


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous slice ``[start, stop)`` of ``n`` examples that ``rank`` holds.

    The first ``n % world_size`` ranks hold one example more than the others, so shard sizes
    differ by at most one (as ``numpy.array_split``).

    Args:
        n: the number of examples (≥ 0).
        rank: this rank, ``0 <= rank < world_size``.
        world_size: the number of ranks (≥ 1).

    Returns:
        ``(start, stop)``.

    Raises:
        ValueError: a negative ``n``, a ``world_size`` below 1 or a rank out of range.
    """
    if n < 0 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(
            f"shard_bounds needs n >= 0 and 0 <= rank < world_size, got n={n}, rank={rank}, "
            f"world_size={world_size}."
        )
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def example_count(a: Any, name: str) -> int:
    """The length of ``a``'s leading example axis.

    Raises:
        TypeError: ``a`` has no shape, or is a scalar.
    """
    shape = getattr(a, "shape", None)
    if shape is None or len(shape) == 0:
        raise TypeError(f"{name} must be an array or tensor with a leading example axis.")
    return int(shape[0])


def pair_length(x: Any, y: Any, prefix: str = "") -> int:
    """The number of examples in ``(x, y)``, checked to be the same in both.

    Args:
        x, y: arrays or tensors with a leading example axis.
        prefix: what starts the error message (e.g. ``"evaluate: "``).

    Returns:
        The number of examples.

    Raises:
        ProblemError: different lengths.
        TypeError: an argument without a leading axis.
    """
    n = example_count(x, "x")
    if example_count(y, "y") != n:
        raise ProblemError(
            f"{prefix}inputs and targets must have the same number of examples, got {n} inputs "
            f"and {example_count(y, 'y')} targets."
        )
    return n


def take_shard(data: Any, rank: int, world: int, shard: str) -> tuple[tuple[Any, Any], int]:
    """This rank's slice of the whole training set ``(x, y)``, and its size.

    Args:
        data: the whole training set ``(x, y)``, the same on every rank.
        rank, world: this rank and the number of ranks.
        shard: ``"contiguous"`` (:func:`shard_bounds`) or ``"strided"`` (every ``world``-th
            example from ``rank``, copied into contiguous memory).

    Returns:
        ``((x_part, y_part), n_part)``.

    Raises:
        TypeError: ``data`` is not an ``(x, y)`` pair.
        ProblemError: inputs and targets of different lengths.
    """
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise TypeError(
            f'shard="{shard}" needs the whole training set as (x, y) arrays on every rank, got '
            f'{type(data).__name__}; for a DataLoader of this rank\'s own examples use shard="local".'
        )
    x, y = data
    n = pair_length(x, y)
    if shard == "contiguous":
        start, stop = shard_bounds(n, rank, world)
        return (x[start:stop], y[start:stop]), stop - start
    # a strided slice is copied into contiguous memory (so is what from_model moves to a device)
    part = tuple(_contiguous(a[rank::world]) for a in (x, y))
    return part, len(range(rank, n, world))


def _contiguous(a: Any) -> Any:
    return a.contiguous() if isinstance(a, torch.Tensor) else np.ascontiguousarray(a)


def refuse_distributed_sampler(data: Any) -> None:
    """Raise if ``data`` is a DataLoader with a ``DistributedSampler``.

    Raises:
        ProblemError: it is (the sampler pads shards with repeated examples).
    """
    sampler = getattr(data, "sampler", None)
    if isinstance(sampler, torch.utils.data.DistributedSampler):
        raise ProblemError(
            "the DataLoader uses a DistributedSampler, which pads the shards with repeated "
            "examples (so the mean would not be the full-batch mean); give each rank a "
            "DataLoader over a torch.utils.data.Subset of its own examples instead."
        )


def count_examples(data: Any) -> int:
    """The number of examples in this rank's ``(x, y)`` or DataLoader (one pass if needed).

    Raises:
        ProblemError, TypeError: as :func:`pair_length`, for ``(x, y)``.
    """
    if isinstance(data, tuple | list) and len(data) == 2:
        return pair_length(*data)
    sampler = getattr(data, "sampler", None)
    whole = (torch.utils.data.SequentialSampler, torch.utils.data.RandomSampler)
    if isinstance(sampler, whole) and not getattr(sampler, "replacement", False):
        return len(sampler)
    return sum(int(batch[0].shape[0]) for batch in data)
