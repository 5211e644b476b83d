"""Compiled steps and chunks kept for later walks of the same problem.

Compiling a walk's step (the eager driver's ``problem.compile_step``) or its chunk (the
compiled driver's ``problem.compile_loop``) costs from a second (JAX, TensorFlow) to minutes
(``torch.compile`` of an unrolled chunk). A second walk of the same problem with the same
scheme and direction (another start, a resumed walk, another τ) traces to the same
computation, so it may reuse the first's. :class:`CompileCache` is a small least-recently-used
cache keyed by value (:func:`value_key`); the eager driver keeps one per problem for its
compiled steps (:func:`step_cache_of`), and the adapters keep one per problem for their chunks
(``problem.loop_cache``).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from manifoldwalk._array import to_numpy


class CompileCache:
    """A small least-recently-used cache of compiled functions (steps or chunks).

    A compiled function may hold the problem's training data as constants on the device, so
    the cache is small.

    Args:
        maxsize: the most entries kept; the least recently used goes first.
    """

    def __init__(self, maxsize: int = 4) -> None:
        self.maxsize = maxsize
        self._entries: OrderedDict[Hashable, Callable[..., Any]] = OrderedDict()

    def get(self, loop: Any, build: Callable[[], Callable[..., Any]], kind: str = "chunk"):
        """The cached chunk for a :class:`~manifoldwalk._chunked.DeviceLoop`, or ``build()``'s.

        Args:
            loop: the device loop the chunk runs (keyed by its ``cache_key()``; not cached
                where that is None).
            build: makes the chunk (not called on a hit).
            kind: what ``build`` makes, part of the key (``walk_batch`` keeps its batched
                chunks as ``"batch"``).
        """
        key = loop.cache_key()
        return self.get_by_key(None if key is None else (kind, key), build)

    def get_by_key(self, key: Hashable | None, build: Callable[[], Callable[..., Any]]):
        """The entry under ``key``, or ``build()``'s, cached (uncached where ``key`` is None)."""
        if key is None:
            return build()
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        entry = self._entries[key] = build()
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every compiled function (and the device memory it holds)."""
        self._entries.clear()


def step_key(problem: Any, direction: Any, scheme: Any) -> Hashable | None:
    """The key of a walk step ``make_step(problem, direction, scheme)``: the problem by
    identity, the direction and scheme by value (:func:`value_key`); None if unhashable."""
    try:
        key = ("step", id(problem), value_key(direction), value_key(scheme))
        hash(key)
    except TypeError:
        return None
    return key


def step_cache_of(problem: Any) -> CompileCache | None:
    """The problem's cache of compiled steps (its ``step_cache`` attribute, made on first use),
    or None where the problem cannot hold one (no instance attributes)."""
    cache = getattr(problem, "__dict__", {}).get("step_cache")
    if isinstance(cache, CompileCache):
        return cache
    cache = CompileCache()
    try:
        problem.step_cache = cache
    except AttributeError:
        return None
    return cache


def value_key(obj: Any) -> Hashable:
    """A hashable value-key of a walk piece (a scheme, a direction, stop rules).

    Frozen dataclasses count field by field, numbers with their type (``1``, ``1.0`` and
    ``True`` differ, so do ``-0.0`` and ``0.0``), arrays by type, dtype, shape and bytes;
    functions and other objects by their own hash (identity by default).

    Raises:
        TypeError: some part cannot be hashed (then do not cache).
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = dataclasses.fields(obj)
        return (type(obj), tuple((f.name, value_key(getattr(obj, f.name))) for f in fields))
    if isinstance(obj, float):
        return (float, repr(obj))  # -0.0 and 0.0 differ; nan equals nan
    if obj is None or isinstance(obj, bool | int | str):
        return (type(obj), obj)
    if isinstance(obj, tuple | list):
        return (type(obj), tuple(value_key(o) for o in obj))
    if hasattr(obj, "__array_namespace__") or hasattr(obj, "__array__"):
        a = to_numpy(obj)
        return (type(obj), str(a.dtype), a.shape, a.tobytes())
    hash(obj)
    return obj
