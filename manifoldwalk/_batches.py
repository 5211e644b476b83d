"""Batches of any structure, for the adapters' ``from_loss`` (framework-free).

A *batch* is any nesting of dicts (any ``Mapping``), tuples, lists and namedtuples whose leaves
are arrays (numpy, torch, JAX, TensorFlow: anything with a ``shape``) or other values the
user's loss reads (Python scalars, strings). A *leaf array* is a value with a ``shape`` of
length ≥ 1; the first one, in the structure's order (a mapping's insertion order, a sequence's
item order, depth first), gives a batch's number of examples by default.

:class:`Batches` turns the ``data`` argument (one batch, or a re-iterable of batches) into a
re-iterable of batches. How ``data`` is read, in this order:

1. an array (a ``shape`` of length ≥ 1): one batch (it is not split along its first axis);
2. a mapping (dict, ``UserDict``, Hugging Face's ``BatchEncoding``): one batch;
3. a namedtuple: one batch (its fields are the parts of one batch);
4. a tuple or list holding at least one array among its *direct* items: one batch
   (``(x, y)``, ``[x, y]``, ``(inputs_dict, labels)``);
5. any other tuple or list: a sequence of batches, one per item (a list of dicts, a list of
   ``(x, y)`` tuples, a tuple of tuples); to pass one batch that this rule would read as
   many, e.g. ``((x1, x2), (y1, y2))``, wrap it in a list: ``[((x1, x2), (y1, y2))]``;
6. a one-shot iterator (an object that is its own iterator: a generator object,
   ``iter(...)``, ``map(...)``): refused with a TypeError, because the loss is evaluated many
   times and a second pass would find it empty;
7. any other iterable (a DataLoader, a ``tf.data.Dataset``, a ``range``-like sequence of
   batches): a re-iterable of batches, iterated afresh for each evaluation;
8. a callable that is not iterable (a generator *function*): called with no arguments for
   each evaluation, each call returning a fresh iterable of batches;
9. anything else: refused with a TypeError.

The full-batch loss is the example-weighted mean over the batches,
``Σ_b n_b·L_b / Σ_b n_b``, where ``L_b`` is batch b's mean loss and ``n_b`` its weight from
the ``batch_size`` callable (by default :func:`default_batch_size`, the first leaf array's
leading dimension); with one batch it is that batch's loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from numbers import Integral
from typing import Any

from manifoldwalk.problem import ProblemError

__all__ = [
    "BatchSizeFn",
    "Batches",
    "default_batch_size",
    "describe_structure",
    "first_array_leaf",
    "weighted_mean",
]

BatchSizeFn = Callable[[Any], int]
"""``batch_size(batch) -> int``: a batch's number of examples (its weight in the mean)."""


def _is_array(value: Any) -> bool:
    """A leaf array: something with a ``shape`` of length ≥ 1 (not a 0-d array or a scalar)."""
    shape = getattr(value, "shape", None)
    if shape is None or isinstance(value, type):
        return False
    try:
        return len(shape) >= 1
    except TypeError:  # a shape without a length (e.g. an unknown-rank symbolic shape)
        return False


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def describe_structure(value: Any, depth: int = 0) -> str:
    """A short description of a batch's structure for error messages, e.g.
    ``{'input_ids': Tensor(8, 12), 'labels': Tensor(8,)}`` (three levels deep at most).

    Args:
        value: a batch, or anything else.
        depth: the nesting level (internal).

    Returns:
        The description.
    """
    if getattr(value, "shape", None) is not None and not isinstance(value, type):
        return f"{type(value).__name__}{tuple(value.shape)}"
    if depth >= 3:
        return "…"
    if isinstance(value, Mapping):
        items = list(value.items())
        inner = ", ".join(f"{k!r}: {describe_structure(v, depth + 1)}" for k, v in items[:4])
        return "{" + inner + (", …" if len(items) > 4 else "") + "}"
    if isinstance(value, tuple | list):
        inner = ", ".join(describe_structure(v, depth + 1) for v in value[:4])
        more = ", …" if len(value) > 4 else ""
        return f"{type(value).__name__}({inner}{more})"
    return type(value).__name__


def _leaves(batch: Any) -> Iterator[Any]:
    """The leaf arrays of ``batch``, depth first, mappings in insertion order."""
    if _is_array(batch):
        yield batch
    elif isinstance(batch, Mapping):
        for value in batch.values():
            yield from _leaves(value)
    elif isinstance(batch, tuple | list):
        for value in batch:
            yield from _leaves(value)


def first_array_leaf(batch: Any) -> Any:
    """The first leaf array of a batch: depth first through dicts (any ``Mapping``, in
    insertion order), tuples, lists and namedtuples.

    Args:
        batch: an array, or a nesting of mappings, tuples and lists holding arrays.

    Returns:
        The first value with a ``shape`` of length ≥ 1 (0-d arrays and scalars are skipped).

    Raises:
        TypeError: the batch holds no such array (its structure is named in the message).
    """
    for leaf in _leaves(batch):
        return leaf
    raise TypeError(
        f"the batch {describe_structure(batch)} holds no array with a leading example axis, so its "
        "number of examples is unknown: put the examples in arrays (numpy or framework "
        "tensors, examples first), or pass batch_size=, a function batch -> number of examples."
    )


def default_batch_size(batch: Any) -> int:
    """A batch's number of examples: the leading dimension of its first leaf array.

    Args:
        batch: as for :func:`first_array_leaf`.

    Returns:
        ``int(first_array_leaf(batch).shape[0])``.

    Raises:
        TypeError: the batch holds no array with a leading axis.
    """
    return int(first_array_leaf(batch).shape[0])


def _is_one_batch(data: Any) -> bool:
    """Rules 1–5 of the module docstring: ``data`` is one batch (not a sequence of them)."""
    if _is_array(data) or isinstance(data, Mapping) or _is_namedtuple(data):
        return True
    if isinstance(data, tuple | list):
        return any(_is_array(item) for item in data)
    return False


class Batches:
    """``data`` (one batch, or a re-iterable of batches) as a re-iterable of batches.

    How ``data`` is read (one batch or many, refused) is set out in this module's docstring:
    arrays, mappings, namedtuples and tuples or lists with an array among their direct items
    are one batch; other tuples and lists, and other re-iterables, are many; a generator
    function is called for each pass; a one-shot iterator is refused.

    Args:
        data: one batch, or a re-iterable of batches, or a generator function.
        batch_size: ``batch -> number of examples``, each batch's weight in the mean (None:
            :func:`default_batch_size`).

    Attributes:
        data: ``data`` as given.
        single: True when ``data`` is one batch.

    Raises:
        TypeError: ``data`` is a one-shot iterator, a string, a 0-d array or not iterable, or
            ``batch_size`` is not callable.
        ProblemError: ``data`` is an empty tuple or list.
    """

    def __init__(self, data: Any, batch_size: BatchSizeFn | None = None) -> None:
        if batch_size is not None and not callable(batch_size):
            raise TypeError(
                "batch_size must be a function batch -> number of examples (or None for the "
                f"first array's leading dimension), got {type(batch_size).__name__}."
            )
        self.data = data
        self._batch_size = default_batch_size if batch_size is None else batch_size
        self._factory: Callable[[], Iterable[Any]] | None = None
        if isinstance(data, tuple | list) and not _is_namedtuple(data) and len(data) == 0:
            raise ProblemError("data is an empty sequence: it holds no batches.")
        self.single = _is_one_batch(data)
        if self.single:
            return
        if isinstance(data, str | bytes) or hasattr(data, "shape"):
            raise TypeError(
                f"data must be a batch or a re-iterable of batches, got {describe_structure(data)}: "
                "arrays need a leading example axis."
            )
        if isinstance(data, Iterator):
            raise TypeError(
                f"data is a one-shot iterator ({type(data).__name__}): the loss is evaluated "
                "many times, and a second pass would find it empty. Pass a list of batches, a "
                "re-iterable (e.g. a DataLoader), or a function that returns a fresh iterable "
                "of batches."
            )
        if isinstance(data, Iterable):
            return
        if callable(data):
            self._factory = data
            return
        raise TypeError(
            f"data must be one batch (a dict, tuple or list of arrays, or an array) or a "
            f"re-iterable of batches, got {type(data).__name__}."
        )

    def __iter__(self) -> Iterator[Any]:
        """The batches, in order: ``data`` once if it is one batch, else a fresh pass.

        Raises:
            ProblemError: the pass yields no batches.
            TypeError: a generator function returns something that is not iterable.
        """
        if self.single:
            yield self.data
            return
        source = self.data if self._factory is None else self._factory()
        if self._factory is not None and not isinstance(source, Iterable):
            raise TypeError(
                "data is a function, so it must return an iterable of batches when called; "
                f"it returned {type(source).__name__}."
            )
        empty = True
        for batch in source:
            empty = False
            yield batch
        if empty:
            raise ProblemError("data yielded no batches.")

    def first(self) -> Any:
        """The first batch (a pass is started and left after one batch).

        Raises:
            ProblemError: there are no batches.
        """
        return next(iter(self))

    def size(self, batch: Any) -> int:
        """A batch's weight in the mean: ``batch_size(batch)``, checked.

        Args:
            batch: one of the batches.

        Returns:
            The number of examples, a positive ``int``.

        Raises:
            TypeError: ``batch_size`` returned something other than an integer, or the
                default found no array in the batch.
            ProblemError: it returned an integer below 1.
        """
        n = self._batch_size(batch)
        if isinstance(n, bool) or not isinstance(n, Integral):
            raise TypeError(
                f"batch_size(batch) must return the batch's number of examples as an int, got "
                f"{type(n).__name__} ({n!r})."
            )
        if n < 1:
            raise ProblemError(
                f"batch_size(batch) returned {int(n)}: every batch must hold at least one "
                "example (drop empty batches from the data)."
            )
        return int(n)

    def with_sizes(self) -> Iterator[tuple[Any, int]]:
        """The batches with their weights, ``(batch, n_b)``; for one batch ``n_b`` is
        whatever :meth:`size` gives, or 1 when the batch holds no array (its weight does not
        matter then).

        Raises:
            As :meth:`__iter__` and :meth:`size`.
        """
        for batch in self:
            weightless = self.single and next(_leaves(batch), None) is None
            yield batch, 1 if weightless else self.size(batch)


def weighted_mean(terms: Iterable[tuple[Any, int]]) -> Any:
    """The example-weighted mean ``Σ_b n_b·v_b / Σ_b n_b`` of per-batch values.

    Works for anything with ``*``, ``+`` and ``/`` by a number (floats, numpy arrays,
    framework tensors); with one term, that term's value itself (no rounding).

    Args:
        terms: ``(v_b, n_b)`` pairs, ``n_b`` positive.

    Returns:
        The mean.

    Raises:
        ProblemError: ``terms`` is empty.
    """
    total, count, only = None, 0, None
    for value, n in terms:
        if total is None:
            only, total = value, value * n
        else:
            only, total = None, total + value * n
        count += n
    if total is None:
        raise ProblemError("no batches to average over.")
    return only if only is not None else total / count
