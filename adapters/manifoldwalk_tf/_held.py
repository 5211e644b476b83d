"""Batches of any structure as TensorFlow tensors: held whole, or streamed one at a time.

A batch (any nesting of dicts, tuples, lists, namedtuples; see ``manifoldwalk._batches``) is
split into its *array leaves* (anything with a ``shape`` and a ``dtype``: numpy, tensors),
converted to tensors (floating ones cast to θ's dtype), and a :class:`BatchSpec`: the
structure and the other leaves (strings, Python numbers), passed to the loss as they are.

:class:`HeldBatches` keeps every batch as tensors, batches of one structure, shapes and dtypes
stacked into one group (run in a ``tf.while_loop``: traced once whatever their number), with
each batch's weight ``n_b / N``; :func:`weighted_total` runs a per-batch function over them
inside a ``tf.function``: ``Σ_b (n_b / N) f(batch_b)``, the exact full-data mean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf


class BatchSpec(NamedTuple):
    """The static part of a batch: its structure and its non-array leaves.

    Attributes:
        structure: the batch with its leaves replaced (``tf.nest``'s structure).
        static: ``(leaf index, value)`` of each leaf that is not an array.
        n_leaves: the number of leaves.
        stacked: whether the arrays carry a leading batch axis (a group of several batches).
    """

    structure: Any
    static: tuple[tuple[int, Any], ...]
    n_leaves: int
    stacked: bool = False

    def rebuild(self, arrays: Sequence[Any]) -> Any:
        """The batch from its array leaves (traceable)."""
        static = dict(self.static)
        it = iter(arrays)
        leaves = [static[i] if i in static else next(it) for i in range(self.n_leaves)]
        return tf.nest.pack_sequence_as(self.structure, leaves)


def _is_array(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype") and not isinstance(leaf, type)


def plain(batch: Any) -> Any:
    """``batch`` with mappings other than dicts (``UserDict``, Hugging Face's
    ``BatchEncoding``) made dicts, at any depth: the loss gets them as dicts."""
    if isinstance(batch, Mapping):
        return {k: plain(v) for k, v in batch.items()}
    if isinstance(batch, list):
        return [plain(v) for v in batch]
    if isinstance(batch, tuple):
        items = [plain(v) for v in batch]
        return type(batch)(*items) if hasattr(type(batch), "_fields") else tuple(items)
    return batch


def split(batch: Any) -> tuple[BatchSpec, list[Any]]:
    """``(spec, array leaves)`` of a batch (its mappings made dicts first)."""
    batch = plain(batch)
    leaves = tf.nest.flatten(batch)
    static = tuple((i, leaf) for i, leaf in enumerate(leaves) if not _is_array(leaf))
    arrays = [leaf for leaf in leaves if _is_array(leaf)]
    return BatchSpec(batch, static, len(leaves)), arrays


def to_tensors(arrays: Iterable[Any], dtype: tf.DType) -> list[tf.Tensor]:
    """The arrays as tensors; floating ones cast to ``dtype``, others as they are.

    Through numpy: TensorFlow makes Python floats float32, so a float64 model's data would
    lose digits.
    """
    out = []
    for a in arrays:
        t = a if tf.is_tensor(a) else tf.convert_to_tensor(np.asarray(a))
        out.append(tf.cast(t, dtype) if t.dtype.is_floating and t.dtype != dtype else t)
    return out


def tensors_of(batch: Any, dtype: tf.DType) -> Any:
    """One batch with its arrays as tensors (floating ones in ``dtype``)."""
    spec, arrays = split(batch)
    return spec.rebuild(to_tensors(arrays, dtype))


def _key(spec: BatchSpec, arrays: list[tf.Tensor], index: int) -> Any:
    """What batches must share to be stacked: structure, static leaves, shapes, dtypes."""
    avals = tuple((tuple(a.shape), a.dtype.name) for a in arrays)
    try:
        structure = tf.nest.map_structure(lambda _: 0, spec.structure)
        return (repr(structure), hash(spec.static), spec.static, avals)
    except TypeError:  # an unhashable static leaf: a group of its own
        return ("alone", index)


class HeldBatches:
    """Every batch as tensors, grouped for :func:`weighted_total`.

    Build it with :meth:`gather` (batches of any structure) or :meth:`even` (one data set cut
    into batches of one size).

    Args:
        specs: one :class:`BatchSpec` per group.
        groups: per group, ``(arrays, weights)``.
        n_examples: N.

    Attributes:
        specs: one :class:`BatchSpec` per group (``stacked`` where it holds several batches).
        groups: per group, ``(arrays, weights)``: the array leaves (stacked along a new
            leading axis in a stacked group) and the batches' weights ``n_b / N``.
        single: True when there is one batch (its loss is the mean: no weights applied).
        n_examples: N, the sum of the ``n_b``.
    """

    def __init__(self, specs: list[BatchSpec], groups: list[Any], n_examples: int) -> None:
        self.specs = specs
        self.groups = groups
        self.n_examples = n_examples
        self.single = len(specs) == 1 and not specs[0].stacked

    @classmethod
    def gather(cls, batches: Iterable[tuple[Any, int]], dtype: tf.DType) -> HeldBatches:
        """Batches of any structure as tensors, those of one structure, shapes and dtypes
        stacked into a group.

        Args:
            batches: ``(batch, n_b)`` pairs (``n_b`` the batch's number of examples, its
                weight).
            dtype: θ's dtype: floating leaves and the weights are cast to it.
        """
        groups: dict[Any, list[tuple[BatchSpec, list[tf.Tensor], int]]] = {}
        for index, (batch, n) in enumerate(batches):
            spec, arrays = split(batch)
            arrays = to_tensors(arrays, dtype)
            groups.setdefault(_key(spec, arrays, index), []).append((spec, arrays, n))
        n_examples = sum(n for members in groups.values() for *_, n in members)
        specs, args = [], []
        for members in groups.values():
            weights = tf.constant(np.array([n / n_examples for *_, n in members]), dtype)
            if len(members) == 1:
                specs.append(members[0][0])
                args.append((members[0][1], weights))
            else:
                specs.append(members[0][0]._replace(stacked=True))
                parts = zip(*(m[1] for m in members), strict=True)
                args.append(([tf.stack(p) for p in parts], weights))
        return cls(specs, args, n_examples)

    @classmethod
    def even(cls, batch: Any, size: int | None, dtype: tf.DType) -> HeldBatches:
        """One batch of tensors split along its leading axis into batches of ``size``
        examples (stacked by a reshape) and the remainder.

        Args:
            batch: the whole data set, a structure of tensors of equal leading length N.
            size: examples per batch (None, or ≥ N: one batch).
            dtype: the weights' dtype (θ's).
        """
        spec, arrays = split(batch)
        n = int(arrays[0].shape[0])
        if size is None or size >= n:
            return cls([spec], [(arrays, tf.ones([1], dtype))], n)
        n_full, cut = n // size, n // size * size
        full = [tf.reshape(a[:cut], [n_full, size, *a.shape[1:]]) for a in arrays]
        specs = [spec._replace(stacked=True)]
        args = [(full, tf.fill([n_full], tf.constant(size / n, dtype)))]
        if cut < n:
            specs.append(spec)
            args.append(([a[cut:] for a in arrays], tf.constant([(n - cut) / n], dtype)))
        return cls(specs, args, n)

    def first(self) -> Any:
        """The first batch, rebuilt."""
        spec, (arrays, _) = self.specs[0], self.groups[0]
        if spec.stacked:
            arrays = [a[0] for a in arrays]
        return spec._replace(stacked=False).rebuild(arrays)


def weighted_total(
    per_batch: Callable[[tf.Tensor, Any], Any], held: HeldBatches, theta: tf.Tensor, zeros: Any
) -> Any:
    """``Σ_b w_b · per_batch(θ, batch_b)`` over the held batches (inside a ``tf.function``;
    ``per_batch`` returns a loss, or a loss and a gradient, shaped as ``zeros``). One batch:
    ``per_batch`` of it, unweighted. A stacked group runs in a ``tf.while_loop``, one batch
    at a time (the memory of one batch)."""
    if held.single:
        return per_batch(theta, held.specs[0].rebuild(held.groups[0][0]))
    acc = None
    for spec, (arrays, weights) in zip(held.specs, held.groups, strict=True):
        if spec.stacked:
            part = _loop_group(per_batch, spec, theta, arrays, weights, zeros)
        else:
            out = per_batch(theta, spec.rebuild(arrays))
            part = tf.nest.map_structure(lambda o, w=weights[0]: o * w, out)
        acc = part if acc is None else tf.nest.map_structure(tf.add, acc, part)
    return acc


def _loop_group(
    per_batch: Callable[[tf.Tensor, Any], Any],
    spec: BatchSpec,
    theta: tf.Tensor,
    arrays: list[tf.Tensor],
    weights: tf.Tensor,
    zeros: Any,
) -> Any:
    """``Σ_b w_b · per_batch(θ, batch_b)`` over a stacked group in a ``tf.while_loop``."""
    one = spec._replace(stacked=False)
    count = int(weights.shape[0])

    def body(i: tf.Tensor, acc: Any) -> tuple[tf.Tensor, Any]:
        out = per_batch(theta, one.rebuild([a[i] for a in arrays]))
        return i + 1, tf.nest.map_structure(lambda a, o: a + o * weights[i], acc, out)

    _, acc = tf.while_loop(
        lambda i, _: i < count, body, (tf.constant(0), zeros), parallel_iterations=1
    )  # one batch at a time: the memory of one batch
    return acc


def stream_total(per_batch: Callable[[Any], Any], batches: Iterable[tuple[Any, int]]) -> Any:
    """``Σ_b n_b · per_batch(batch_b) / Σ_b n_b`` over batches converted as they come; one
    batch: its value, unweighted. ``per_batch`` returns a tensor or a tuple of tensors."""
    acc, count, only = None, 0, None
    for batch, n in batches:
        out = per_batch(batch)
        if acc is None:
            only, acc = out, tf.nest.map_structure(lambda o, n=n: o * n, out)
        else:
            only = None
            acc = tf.nest.map_structure(lambda a, o, n=n: a + o * n, acc, out)
        count += n
    if only is not None:
        return only
    return tf.nest.map_structure(lambda a: a / count, acc)
