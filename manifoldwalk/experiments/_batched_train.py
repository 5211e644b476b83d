"""Training several nets of one architecture at once: phase 1 of many seeds, a weight-decay sweep.

A *member* is one training run (a freshly built net, its training set, its λ and its shuffling
seed). Members whose training sets are of one length train together, as one batched
computation, through the backend's optional ``train_batched`` (stacked parameters, every
operation batched over the members; see :class:`~manifoldwalk.experiments.backend.PaperBackend`).
Each member ends as the backend's ``train`` would leave it, equal up to floating-point rounding.
A backend without ``train_batched`` (TensorFlow) trains the members one by one through its
``train``, so the experiment layer has one code path either way.

How many members train together is capped so that a batch of a big net fits in memory
(:func:`members_per_batch`); a longer list is split into batches of nearly equal size
(:func:`plan_batches`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from manifoldwalk.experiments._seed import build_net
from manifoldwalk.experiments.definitions import Experiment

__all__ = [
    "ACTIVATIONS_PER_INPUT",
    "BATCH_SIZE",
    "MEMORY_BUDGET",
    "Member",
    "batch_cap",
    "can_batch",
    "members_per_batch",
    "plan_batches",
    "train_members",
]

BATCH_SIZE = 32
"""The paper's minibatch size (every ``train`` and ``train_batched`` uses it)."""

MEMORY_BUDGET = 4 * 2**30
"""Bytes that the members of one batch may take together, by :func:`members_per_batch`'s
estimate (4 GiB: a fraction of a GPU's memory or of a workstation's RAM)."""

ACTIVATIONS_PER_INPUT = 32
"""Values a paper net keeps per input value of an example while training (an upper estimate:
MNIST-CNV's first convolution alone keeps 20 maps of 26 × 26 of a 28 × 28 image, about 17 per
input value, and the feed-forward nets keep far fewer)."""


@dataclass(frozen=True)
class Member:
    """One training run of a batch.

    Attributes:
        model: A net from the backend's ``build_net`` (every member of a batch: the same net).
        x: Its training inputs.
        y: Its training targets.
        weight_decay: Its λ (0 for phase 1).
        seed: Its shuffling seed.
    """

    model: Any
    x: np.ndarray
    y: np.ndarray
    weight_decay: float
    seed: int


def can_batch(backend: ModuleType) -> bool:
    """Whether the backend trains several members in one computation (has ``train_batched``).

    Args:
        backend: The paper backend module.

    Returns:
        True when ``backend.train_batched`` is callable.
    """
    return callable(getattr(backend, "train_batched", None))


def members_per_batch(
    n_params: int, input_size: int, itemsize: int, budget: int = MEMORY_BUDGET
) -> int:
    """The most members of one net that may train together within ``budget`` bytes.

    A member is estimated at ``itemsize × (5·P + 3·B·A)`` bytes: its parameters, gradient, the
    two Adam moments and one temporary copy (5·P, P parameters), and the activations of a
    minibatch of B = :data:`BATCH_SIZE` examples with their gradients and the copies autograd
    keeps (3·B·A, A = :data:`ACTIVATIONS_PER_INPUT` × the values of one input). For MNIST-CNV
    in float32 that is about 11 MB a member, 397 members in 4 GiB; for the Iris net in float64
    about 0.9 MB.

    Args:
        n_params: The net's parameter count P.
        input_size: The values of one input example (e.g. 784 for an MNIST image).
        itemsize: Bytes per value of the net's dtype (4 or 8).
        budget: Bytes all members of a batch may take.

    Returns:
        At least 1.

    Raises:
        ValueError: For a count, size or budget below 1.
    """
    for name, v in (("n_params", n_params), ("input_size", input_size), ("itemsize", itemsize)):
        if v < 1:
            raise ValueError(f"{name} must be at least 1, got {v}")
    if budget < 1:
        raise ValueError(f"the memory budget must be at least 1 byte, got {budget}")
    member = itemsize * (5 * n_params + 3 * BATCH_SIZE * ACTIVATIONS_PER_INPUT * input_size)
    return max(1, budget // member)


def batch_cap(
    backend: ModuleType,
    spec: Experiment,
    ds: Any,
    seed: int,
    n_params: int | None = None,
    budget: int = MEMORY_BUDGET,
) -> int:
    """The members per batch for the experiment's net (:func:`members_per_batch`); 1 when the
    backend cannot batch.

    Args:
        backend: The paper backend module.
        spec: The experiment (its net and dtype).
        ds: A dataset of the experiment (its input shape).
        seed: A seed to build the net from, when its size is not given.
        n_params: The net's parameter count (None: the net is built and counted).
        budget: Bytes a batch may take.

    Returns:
        At least 1.
    """
    if not can_batch(backend):
        return 1
    if n_params is None:  # a net of this experiment, wrapped on one example only to count
        model = build_net(backend, spec, ds, seed)
        x, y = ds.x_train[:1], ds.y_train[:1]
        with warnings.catch_warnings():  # an untrained net, on purpose: say nothing about it
            warnings.simplefilter("ignore")
            n_params = int(backend.make_problem(model, x, y, task=spec.task).n_params)
    input_size = math.prod(ds.x_train.shape[1:])
    return members_per_batch(n_params, input_size, np.dtype(spec.dtype).itemsize, budget)


def plan_batches(lengths: Sequence[int], cap: int) -> list[list[int]]:
    """Group members into batches: equal training-set lengths together, at most ``cap`` each.

    Groups of one length keep the order in which their first member appears, and the members
    keep theirs; a group longer than ``cap`` is split into the fewest batches of at most
    ``cap`` members, of sizes that differ by at most one (280 members, cap 203: two of 140).

    Args:
        lengths: Each member's training-set length, in member order.
        cap: The most members of one batch (at least 1).

    Returns:
        The batches, as lists of member indices.

    Raises:
        ValueError: For ``cap < 1``.
    """
    if cap < 1:
        raise ValueError(f"the members per batch must be at least 1, got {cap}")
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    batches = []
    for members in groups.values():
        k = math.ceil(len(members) / cap)
        size, extra = divmod(len(members), k)
        start = 0
        for j in range(k):
            stop = start + size + (1 if j < extra else 0)
            batches.append(members[start:stop])
            start = stop
    return batches


def train_members(
    backend: ModuleType,
    members: Sequence[Member],
    *,
    task: str,
    epochs: int,
    reg: str = "l2",
    batched: bool = True,
    progress: Callable[[int, int, float], None] | None = None,
) -> tuple[list[Any], list[int], int]:
    """Train the members, together where the backend can and ``batched`` asks for it.

    Args:
        backend: The paper backend module.
        members: The runs (one net; with ``train_batched``, training sets of one length).
        task: ``"classification"`` or ``"regression"``.
        epochs: Passes over each member's training set.
        reg: The weight-decay regulariser (``"l2"`` or ``"l2-weights"``).
        batched: Train the members in one ``backend.train_batched`` call when the backend has
            it (False: one by one through ``backend.train``, the sequential path).
        progress: Called after every epoch as ``progress(epoch, epochs, loss)``: the batch's
            mean epoch loss over the members, or (one by one) the member's own.

    Returns:
        ``(models, example_grads, together)``: the trained models and each member's
        example-wise gradient count, in member order, and how many members trained in one
        computation (``len(members)`` through ``train_batched``, otherwise 1).

    Raises:
        ValueError: For no members, or as the backend's ``train`` / ``train_batched``.
    """
    if not members:
        raise ValueError("no members to train; pass at least one")
    if batched and can_batch(backend):
        models, counts = backend.train_batched(
            [m.model for m in members],
            [m.x for m in members],
            [m.y for m in members],
            task=task,
            epochs=epochs,
            weight_decays=[m.weight_decay for m in members],
            seeds=[m.seed for m in members],
            reg=reg,
            progress=progress,
        )
        return list(models), [int(c) for c in counts], len(members)
    models, counts = [], []
    for m in members:
        model, n_ex = backend.train(
            m.model,
            m.x,
            m.y,
            task=task,
            epochs=epochs,
            weight_decay=m.weight_decay,
            reg=reg,
            seed=m.seed,
            progress=progress,
        )
        models.append(model)
        counts.append(int(n_ex))
    return models, counts, 1
