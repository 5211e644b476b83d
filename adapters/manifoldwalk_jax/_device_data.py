"""Batches of any structure as JAX arguments: array leaves on the device, the rest static.

A batch (any pytree of dicts, tuples, lists, namedtuples; see ``manifoldwalk._batches``) is
split into its *array leaves* (anything with a ``shape`` and a ``dtype``: numpy, JAX), which
go to the device and into jitted functions as arguments, and a :class:`BatchSpec`: the tree
structure and the other leaves (strings, Python numbers), closed over as constants.

:class:`DeviceBatches` holds every batch on the device, batches of one structure, shapes and
dtypes stacked into one group (scanned with ``lax.scan``: compiled once whatever their
number), with each batch's weight ``n_b / N``. :func:`weighted_total` runs a per-batch
function over them: ``Σ_b (n_b / N) f(batch_b)``, the exact full-data mean, with the memory of
one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from manifoldwalk.adapter_api import ProblemError


class BatchSpec(NamedTuple):
    """The static part of a batch: its tree structure and its non-array leaves.

    Attributes:
        treedef: the batch's pytree structure.
        static: ``(leaf index, value)`` of each leaf that is not an array.
        n_leaves: the number of leaves (array and static).
        stacked: whether the arrays carry a leading batch axis (a group of several batches).
    """

    treedef: Any
    static: tuple[tuple[int, Any], ...]
    n_leaves: int
    stacked: bool = False

    def rebuild(self, arrays: Sequence[Any]) -> Any:
        """The batch from its array leaves (traceable: the arrays may be tracers)."""
        static = dict(self.static)
        it = iter(arrays)
        return self.treedef.unflatten(
            [static[i] if i in static else next(it) for i in range(self.n_leaves)]
        )


def _is_array(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype") and not isinstance(leaf, type)


def plain(batch: Any) -> Any:
    """``batch`` with mappings that JAX does not flatten (``UserDict``, Hugging Face's
    ``BatchEncoding``) turned into dicts, at any depth, so that their arrays are leaves."""
    if isinstance(batch, Mapping) and not isinstance(batch, dict):
        if jax.tree_util.all_leaves([batch]):
            return {k: plain(v) for k, v in batch.items()}
        return batch
    if isinstance(batch, dict):
        return {k: plain(v) for k, v in batch.items()}
    if isinstance(batch, list):
        return [plain(v) for v in batch]
    if isinstance(batch, tuple) and not hasattr(type(batch), "_fields"):
        return tuple(plain(v) for v in batch)
    return batch


def split(batch: Any) -> tuple[BatchSpec, list[Any]]:
    """``(spec, array leaves)`` of a batch (its mappings made plain first)."""
    leaves, treedef = jax.tree_util.tree_flatten(plain(batch))
    static = tuple((i, leaf) for i, leaf in enumerate(leaves) if not _is_array(leaf))
    arrays = [leaf for leaf in leaves if _is_array(leaf)]
    return BatchSpec(treedef, static, len(leaves)), arrays


Place = Callable[[jax.Array], jax.Array]
"""Puts an array where the problem wants it (``jax.device_put`` to θ's device, say)."""


def to_device(arrays: Iterable[Any], place: Place, dtype: Any | None) -> list[jax.Array]:
    """The arrays as ``jax.Array`` put by ``place``; floating ones cast to ``dtype`` (if
    given), integer and boolean ones as they are."""
    out = []
    for a in arrays:
        a = jnp.asarray(a)
        if dtype is not None and jnp.issubdtype(a.dtype, jnp.floating) and a.dtype != dtype:
            a = a.astype(dtype)
        out.append(place(a))
    return out


def _key(spec: BatchSpec, arrays: list[Any], index: int) -> Any:
    """What batches must share to be stacked: structure, static leaves, shapes, dtypes."""
    avals = tuple((tuple(a.shape), str(a.dtype)) for a in arrays)
    try:
        hash(spec.static)
    except TypeError:  # an unhashable static leaf: a group of its own
        return ("alone", index)
    return (spec.treedef, spec.static, avals)


class DeviceBatches:
    """Every batch on the device, grouped for :func:`weighted_total`.

    Build it with :meth:`gather` (batches of any structure) or :meth:`even` (one data set cut
    into batches of one size).

    Args:
        specs: one :class:`BatchSpec` per group.
        groups: per group, ``(arrays, weights)``.
        n_examples: N.

    Attributes:
        specs: one :class:`BatchSpec` per group (``stacked`` where it holds several batches).
        data: what the function :func:`weighted_total` builds takes after θ and the frozen
            leaves: one batch's array leaves; or, for several batches, a one-tuple of
            ``(arrays, weights)`` per group (the array leaves, stacked along a new leading
            axis in a stacked group, and the batches' weights ``n_b / N``).
        single: True when there is one batch (its loss is the mean: no weights applied).
        n_examples: N, the sum of the ``n_b``.
    """

    def __init__(self, specs: list[BatchSpec], groups: list[Any], n_examples: int) -> None:
        self.specs = specs
        self.n_examples = n_examples
        self.single = len(specs) == 1 and not specs[0].stacked
        self.data: tuple[Any, ...] = tuple(groups[0][0]) if self.single else (tuple(groups),)

    @classmethod
    def gather(cls, batches: Iterable[tuple[Any, int]], place: Place, dtype: Any) -> DeviceBatches:
        """Batches of any structure, put by ``place``, those of one structure, shapes and
        dtypes stacked into a group.

        Args:
            batches: ``(batch, n_b)`` pairs (``n_b`` the batch's number of examples, its
                weight).
            place: puts each array (and the weights) where it goes.
            dtype: floating leaves are cast to it (None: kept).
        """
        groups: dict[Any, list[tuple[BatchSpec, list[jax.Array], int]]] = {}
        for index, (batch, n) in enumerate(batches):
            spec, arrays = split(batch)
            arrays = to_device(arrays, place, dtype)
            groups.setdefault(_key(spec, arrays, index), []).append((spec, arrays, n))
        n_examples = sum(n for members in groups.values() for *_, n in members)
        weight_dtype = dtype if dtype is not None else jnp.result_type(float)
        specs, args = [], []
        for members in groups.values():
            weights = np.array([n / n_examples for *_, n in members])
            weights = place(jnp.asarray(weights, weight_dtype))
            if len(members) == 1:
                specs.append(members[0][0])
                args.append((members[0][1], weights))
            else:
                specs.append(members[0][0]._replace(stacked=True))
                parts = zip(*(m[1] for m in members), strict=True)
                args.append(([jnp.stack(p) for p in parts], weights))
        return cls(specs, args, n_examples)

    @classmethod
    def even(cls, batch: Any, size: int | None, place: Place) -> DeviceBatches:
        """One batch of arrays already placed, split along its leading axis into batches of
        ``size`` examples (stacked, without copying each) and the remainder.

        Args:
            batch: the whole data set, a pytree of arrays of equal leading length N.
            size: examples per batch (None, or ≥ N: one batch).
            place: puts the weights where the arrays are.
        """
        spec, arrays = split(batch)
        n = int(arrays[0].shape[0])
        if size is None or size >= n:
            return cls([spec], [(arrays, place(jnp.ones(1)))], n)
        n_full, cut = n // size, n // size * size
        dtype = jnp.result_type(float)
        specs, args = (
            [spec._replace(stacked=True)],
            [
                (
                    [jnp.reshape(a[:cut], (n_full, size, *a.shape[1:])) for a in arrays],
                    place(jnp.full(n_full, size / n, dtype)),
                )
            ],
        )
        if cut < n:
            specs.append(spec)
            args.append(([a[cut:] for a in arrays], place(jnp.full(1, (n - cut) / n, dtype))))
        return cls(specs, args, n)

    def first(self) -> Any:
        """The first batch, rebuilt (on the device)."""
        spec = self.specs[0]
        arrays = self.data if self.single else self.data[0][0][0]
        if spec.stacked:
            arrays = [a[0] for a in arrays]
        return spec._replace(stacked=False).rebuild(arrays)


def weighted_total(
    per_batch: Callable[..., Any], specs: Sequence[BatchSpec], single: bool
) -> Callable[..., Any]:
    """``(θ, frozen, *data) -> Σ_b w_b · per_batch(θ, frozen, batch_b)`` over
    :attr:`DeviceBatches.data` (traceable; ``per_batch`` returns a pytree: a loss, or a
    loss and a gradient). One batch: ``per_batch`` of it, unweighted. A stacked group runs
    under ``lax.scan`` (the memory of one batch, compiled once).
    """

    def total(theta: Any, frozen: Any, *data: Any) -> Any:
        if single:
            return per_batch(theta, frozen, specs[0].rebuild(data))
        acc = None
        for spec, (arrays, weights) in zip(specs, data[0], strict=True):
            if spec.stacked:
                part = _scan_group(per_batch, spec, theta, frozen, arrays, weights)
            else:
                out = per_batch(theta, frozen, spec.rebuild(arrays))
                part = jax.tree_util.tree_map(lambda o, w=weights[0]: o * w.astype(o.dtype), out)
            acc = part if acc is None else jax.tree_util.tree_map(jnp.add, acc, part)
        return acc

    return total


def _scan_group(
    per_batch: Callable[..., Any],
    spec: BatchSpec,
    theta: Any,
    frozen: Any,
    arrays: list[Any],
    weights: Any,
) -> Any:
    """``Σ_b w_b · per_batch(batch_b)`` over a stacked group, one batch at a time."""
    one = spec._replace(stacked=False)

    def body(acc: Any, xs: Any) -> tuple[Any, None]:
        batch_arrays, w = xs
        out = per_batch(theta, frozen, one.rebuild(batch_arrays))
        return jax.tree_util.tree_map(lambda a, o: a + o * w.astype(o.dtype), acc, out), None

    first = one.rebuild([a[0] for a in arrays])
    shapes = jax.eval_shape(lambda b: per_batch(theta, frozen, b), first)
    init = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    acc, _ = lax.scan(body, init, (arrays, weights))
    return acc


def stream_total(
    per_batch: Callable[..., Any],
    batches: Iterable[tuple[Any, int]],
    place: Place,
    dtype: Any,
) -> Any:
    """``Σ_b n_b · per_batch(arrays_b, spec=spec_b) / Σ_b n_b`` over batches put by ``place``
    as they come (floating leaves cast to ``dtype``); one batch: its value, unweighted.

    ``per_batch(arrays, spec=spec)`` is a jitted function (``spec`` static), so batches of one
    structure and shapes compile once.

    Raises:
        ProblemError: as :func:`split_hashable`.
    """
    acc, count, only = None, 0, None
    for batch, n in batches:
        spec, arrays = split_hashable(batch)
        out = per_batch(to_device(arrays, place, dtype), spec=spec)
        if acc is None:
            only, acc = out, jax.tree_util.tree_map(lambda o, n=n: o * n, out)
        else:
            only = None
            acc = jax.tree_util.tree_map(lambda a, o, n=n: a + o * n, acc, out)
        count += n
    if only is not None:
        return only
    return jax.tree_util.tree_map(lambda a: a / count, acc)


def split_hashable(batch: Any) -> tuple[BatchSpec, list[Any]]:
    """:func:`split`, for a batch whose spec is a static argument of a jitted function.

    Raises:
        ProblemError: a leaf that is neither an array nor hashable.
    """
    spec, arrays = split(batch)
    for _, value in spec.static:
        try:
            hash(value)
        except TypeError as err:
            raise ProblemError(
                f"a batch holds a {type(value).__name__}, neither an array nor hashable; "
                "batches that are moved to the device one at a time pass such values to a "
                "jitted function as static arguments. Make it an array (or a tuple), or pass "
                "the batches as a list (held on the device)."
            ) from err
    return spec, arrays
