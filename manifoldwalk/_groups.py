"""Group ids for the adapters' ``groups=`` option, checked and laid out (numpy only).

``from_model(..., groups=ids)`` (PyTorch, Keras) and ``from_apply(..., groups=ids)`` (JAX)
build one k-constraint problem whose k losses are the mean losses over k groups of the
training examples. This module is the framework-free part: it checks the ids (one integer in
0..k−1 per example, no empty group) and lays the examples out group by group, so that each
group is one contiguous slice of the reordered data (:class:`GroupLayout`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from manifoldwalk.problem import ProblemError

__all__ = [
    "JACOBIANS",
    "GroupLayout",
    "GroupedLosses",
    "build_warning_at_caller",
    "check_jacobian",
    "layout_groups",
    "refuse_group_options",
]

T = TypeVar("T")

JACOBIANS = ("split", "passes", "batched")
"""How a ``groups=`` problem takes its k gradients:

- ``"split"``: one forward and one reverse pass per group, each over that group's examples
  only (the k passes together cost one full-batch loss and gradient, plus k calls);
- ``"passes"``: one forward pass over every example, the k group losses read off its outputs,
  then k reverse passes through that one graph (each reverse pass runs over every example);
- ``"batched"``: the same forward pass, then the k reverse passes as one batched (vectorised)
  reverse pass.
"""


@dataclass(frozen=True)
class GroupLayout:
    """Where each group's examples lie once the data are reordered group by group.

    Attributes:
        n_groups: k.
        order: the example indices in their new order (a stable sort by group id), or None
            where the data are already in group order.
        bounds: k + 1 offsets: group i is ``[bounds[i], bounds[i + 1])`` of the reordered data.
        sizes: the number of examples in each group, shape (k,).
    """

    n_groups: int
    order: np.ndarray | None
    bounds: tuple[int, ...]
    sizes: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """Each group's share of the examples, n_i/N (the full-batch mean loss is
        Σ_i weights[i]·L_i), float64, shape (k,)."""
        return self.sizes / self.sizes.sum()

    def slices(self) -> list[slice]:
        """The k groups' slices of the reordered data."""
        b = self.bounds
        return [slice(b[i], b[i + 1]) for i in range(self.n_groups)]


class GroupedLosses:
    """What every framework's ``groups=`` problem exposes beyond its single-loss base class,
    derived from its :class:`GroupLayout` (a mixin: the class sets ``layout``, ``jacobian`` and
    has ``n_params``).

    Attributes:
        layout: where each group's examples lie in the reordered data.
        jacobian: how the k gradients are taken (``"split"``, ``"passes"``, ``"batched"``).
    """

    layout: GroupLayout
    jacobian: str
    n_params: int

    @property
    def n_constraints(self) -> int:
        """k, the number of groups."""
        return self.layout.n_groups

    @property
    def dim(self) -> int:
        """P, the length of θ (``n_params``)."""
        return self.n_params

    @property
    def group_sizes(self) -> np.ndarray:
        """The number of examples in each group (numpy, shape (k,))."""
        return self.layout.sizes

    @property
    def loss_weights(self) -> list[float]:
        """Each group's share of the examples n_i/N: the full-batch mean loss is
        Σ_i loss_weights[i]·L_i (the walk's history records it as ``loss``)."""
        return [float(w) for w in self.layout.weights]


def check_jacobian(jacobian: Any) -> str:
    """``jacobian`` after checking it names one of :data:`JACOBIANS`.

    Raises:
        ValueError: anything else.
    """
    if not isinstance(jacobian, str) or jacobian not in JACOBIANS:
        raise ValueError(
            f"jacobian must be one of {', '.join(map(repr, JACOBIANS))} (how the k group "
            f"gradients are taken), got {jacobian!r}."
        )
    return jacobian


def layout_groups(
    groups: Any, n_examples: int, n_groups: int | None = None, *, stacklevel: int = 4
) -> GroupLayout:
    """Check group ids, one per training example, and lay the examples out by group.

    Args:
        groups: one integer id per example, in 0..k−1 (numpy array, list, or a torch, JAX or
            TensorFlow tensor); e.g. integer class labels for per-class losses.
        n_examples: the number of training examples N.
        n_groups: k, if given (then every id must be below it); None: k is the largest id
            plus one.
        stacklevel: the warning's stack level (4: the caller of the adapter function that
            called the problem's constructor that called this).

    Returns:
        The :class:`GroupLayout`.

    Raises:
        TypeError: ids that are not integers (floats, bools, strings), or ``n_groups`` not a
            positive integer.
        ProblemError: not one id per example (a 2-D array: one-hot targets), negative ids or
            ids of k or more (the first few named with their example indices), or a group
            with no examples.

    Warns:
        UserWarning: a group holds a single example (its constraint holds that one example's
            loss fixed).
    """
    if n_groups is not None and (
        isinstance(n_groups, bool) or not isinstance(n_groups, int | np.integer) or n_groups < 1
    ):
        raise TypeError(f"n_groups must be None or a positive integer, got {n_groups!r}.")
    ids = _host_array(groups)
    if ids.dtype == np.bool_ or not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(
            f"groups must hold one integer group id per example (0..k−1), got dtype "
            f"{ids.dtype}; e.g. groups=y for integer class labels, or groups=ids.astype(int)."
        )
    if ids.ndim != 1 or ids.shape[0] != n_examples:
        hint = (
            " For one-hot targets pass the class indices, groups=y.argmax(axis=1)."
            if ids.ndim == 2
            else ""
        )
        raise ProblemError(
            f"groups must be a 1-D array of one group id per training example ({n_examples}), "
            f"got shape {tuple(ids.shape)}.{hint}"
        )
    k = int(ids.max()) + 1 if n_groups is None else int(n_groups)
    bad = np.flatnonzero((ids < 0) | (ids >= k))
    if bad.size:
        shown = ", ".join(f"example {i}: {ids[i]}" for i in bad[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise ProblemError(f"groups: ids must lie in 0..{k - 1} (n_groups={k}), got {shown}{more}.")
    sizes = np.bincount(ids, minlength=k).astype(np.int64)
    empty = np.flatnonzero(sizes == 0)
    if empty.size:
        which = ", ".join(map(str, empty[:10]))
        raise ProblemError(
            f"groups: group {which} {'has' if empty.size == 1 else 'have'} no examples (ids "
            f"run over 0..{k - 1}); every group needs at least one, since its mean loss is a "
            "constraint. Renumber the groups without gaps, or drop the empty ones."
        )
    single = np.flatnonzero(sizes == 1)
    if single.size:
        warnings.warn(
            f"groups: group {', '.join(map(str, single[:10]))} holds a single example: its "
            "constraint holds that one example's loss fixed.",
            UserWarning,
            stacklevel=stacklevel,
        )
    order = np.argsort(ids, kind="stable")
    if np.array_equal(order, np.arange(n_examples)):
        order = None
    bounds = tuple(int(b) for b in np.concatenate([[0], np.cumsum(sizes)]))
    return GroupLayout(n_groups=k, order=order, bounds=bounds, sizes=sizes)


def _host_array(groups: Any) -> np.ndarray:
    """``groups`` as a numpy array (a tensor on a device is copied to the host)."""
    if groups is None or isinstance(groups, str | bytes | dict):
        raise TypeError(
            f"groups must be an array of one integer group id per example, got "
            f"{type(groups).__name__}."
        )
    detach = getattr(groups, "detach", None)
    if callable(detach):  # a torch tensor, possibly on a GPU
        groups = detach().cpu().numpy()
    return np.asarray(groups)


def refuse_group_options(n_groups: Any, jacobian: Any) -> None:
    """Refuse ``n_groups`` or a ``jacobian`` other than the default without ``groups``.

    Args:
        n_groups: The ``n_groups`` passed to an adapter's constructor.
        jacobian: The ``jacobian`` passed.

    Raises:
        ValueError: Either was given although ``groups`` was not.
    """
    if n_groups is not None or jacobian != "split":
        raise ValueError(
            "n_groups and jacobian apply to a problem with groups=; pass groups (one id "
            "per example) or leave them out."
        )


def build_warning_at_caller(build: Callable[[], T]) -> T:
    """Call ``build()`` and warn again, at the adapter's caller, what it warned.

    A groups problem's warnings (an untrained model, a group of one example) are raised inside
    its constructor; raised again here they point at the line that called the adapter's
    ``from_model`` / ``from_apply``, as that function's own warnings do.

    Args:
        build: Makes the problem.

    Returns:
        What ``build`` returned.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = build()
    for w in caught:  # this frame, the adapter's function, then its caller
        warnings.warn(w.message, w.category, stacklevel=3)
    return problem
