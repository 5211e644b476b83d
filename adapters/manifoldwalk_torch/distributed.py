"""A full-batch loss and gradient spread over ``torch.distributed`` processes.

Each process (rank) holds a slice of the training set. A loss-and-gradient evaluation computes
the rank's *sum* of example losses and gradients, packs them into one flat buffer of P + 1
numbers and sums the buffers over the ranks with a single ``all_reduce``; dividing by the
global example count gives the exact full-batch mean on every rank. Every rank then holds the
same loss and gradient, bit for bit, so with the same θ0 every rank walks the same path: run
``manifoldwalk.walk`` on every rank with the same arguments.

Launch with ``torchrun`` (gloo on CPUs, NCCL on GPUs)::

    torchrun --nproc_per_node 2 examples/distributed_torch.py

and in the script::

    torch.distributed.init_process_group("gloo")
    problem = manifoldwalk_torch.distributed.from_model(model, nn.CrossEntropyLoss(), (x, y))
    result = manifoldwalk.walk(problem, problem.theta0)

See ``docs/distributed.md``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from manifoldwalk.adapter_api import CompileCache, ProblemError, check_eval_task
from manifoldwalk_torch._data import (
    check_batch_size,
    count_examples,
    pair_length,
    refuse_distributed_sampler,
    shard_bounds,
    take_shard,
)
from manifoldwalk_torch.loss_problem import TorchLossProblem
from manifoldwalk_torch.problem import LossFn, RegFn, TorchProblem

SHARDINGS = ("contiguous", "strided", "local")
"""How :func:`from_model` splits the training set over the ranks (see its ``shard`` argument)."""


class DistributedTorchProblem(TorchProblem):
    """A :class:`~manifoldwalk_torch.TorchProblem` on this rank's shard, all-reduced to the full batch.

    Build it with :func:`from_model` (which shards the data and synchronises the models), or
    directly from a problem on this rank's examples, whose model, data and settings it takes
    over (shared, not copied). It is a TorchProblem (``loss``, ``grad``, ``loss_and_grad``,
    ``reg``, ``reg_grad`` on flat θ, ``theta0``, ``n_params``, ``unflatten``, ``assign``,
    ``evaluate``) whose loss and gradient are the exact mean over the examples of *all* ranks,
    with :meth:`broadcast` and :meth:`check_replicated`. It offers no compiled step or chunk
    (the all-reduce runs eagerly): ``walk(..., driver=Chunked(K))`` is refused.

    Every call of ``loss``, ``loss_and_grad``, ``grad``, ``evaluate`` and ``check_replicated``
    is a collective: all ranks must make it, in the same order (they do when every rank runs
    the same walk with the same options; a callback or metric that acts on one rank only must
    not call these).

    Attributes:
        local: the :class:`~manifoldwalk_torch.TorchProblem` on this rank's examples.
        rank, world_size: this process's rank and the number of processes in ``group``.
        n_local: the number of training examples on this rank.
        n_counts: every rank's number of examples, in rank order.
        n_total: the number of training examples over all ranks.
        n_params, dtype, device, model, names: as for the local problem.

    Args:
        local: the problem on this rank's examples (its loss is their mean).
        n_local: how many examples ``local`` holds.
        group: the process group (None: the default group).
        check_theta0: check, at the first loss evaluation, that θ is the same on every rank.

    Raises:
        RuntimeError: ``torch.distributed`` is not initialised.
        TypeError: ``local`` is not a :class:`~manifoldwalk_torch.TorchProblem`, or is one
            built with ``from_loss``.
        ProblemError: NCCL with a model off the GPU, or a rank without examples (on every rank).
    """

    def __init__(
        self, local: TorchProblem, n_local: int, *, group: Any = None, check_theta0: bool = True
    ) -> None:
        if isinstance(local, TorchLossProblem):
            raise TypeError(
                "local must be a from_model problem: a distributed problem over from_loss "
                "batches is not supported."
            )
        _check_initialised()
        if not isinstance(local, TorchProblem):
            raise TypeError(f"local must be a TorchProblem, got {type(local).__name__}.")
        # the local problem's model, data and compiled pieces, shared; a cache of its own
        vars(self).update(vars(local))
        self.loop_cache = CompileCache()
        self.local = local
        self.group = group
        self.rank: int = dist.get_rank(group)
        self.world_size: int = dist.get_world_size(group)
        _check_backend_device(self.device, group)
        counts = _gather_counts(n_local, self.device, group)
        self.n_local: int = int(n_local)
        self.n_counts: tuple[int, ...] = tuple(counts)
        self.n_total: int = sum(counts)
        self._scale = torch.tensor(float(self.n_local), dtype=self.dtype, device=self.device)
        self._check_pending = check_theta0

    # the all-reduce is not traced: no compiled step, no compiled chunk (the driver checks
    # for these hooks and runs the step eagerly, or refuses steps_per_sync)
    compile_step = None  # type: ignore[assignment]
    compile_loop = None  # type: ignore[assignment]

    # --- θ --------------------------------------------------------------------------------

    def broadcast(self, theta: torch.Tensor, src: int = 0) -> torch.Tensor:
        """θ as rank ``src`` holds it, on every rank (a collective: one broadcast of P numbers).

        Args:
            theta: flat θ on this rank (its values are ignored on ranks other than ``src``).
            src: the rank whose θ is kept (a rank of the group).

        Returns:
            A new flat tensor holding ``src``'s θ.
        """
        self._checked(theta)
        out = theta.detach().clone()
        dist.broadcast(out, _global_rank(src, self.group), group=self.group)
        return out

    def check_replicated(self, theta: torch.Tensor) -> None:
        """Check that θ is bit-for-bit the same on every rank (a collective).

        Rank 0's θ is broadcast and compared with each rank's; the verdict is then agreed
        by all ranks, so that they all raise or all return (none is left waiting).

        Raises:
            ProblemError: on every rank, if θ differs on some rank; the message names them.
        """
        reference = self.broadcast(theta, 0)
        differs = torch.zeros(self.world_size, dtype=torch.float64, device=self.device)
        differs[self.rank] = float(not torch.equal(reference, theta.detach()))
        dist.all_reduce(differs, group=self.group)
        bad = [r for r, d in enumerate(differs.tolist()) if d]
        if bad:
            raise ProblemError(
                f"θ differs between rank 0 and ranks {bad}: every rank must walk from the same "
                "θ0. Start from problem.theta0 (broadcast from rank 0 when the problem was "
                "built) or pass problem.broadcast(theta0)."
            )

    # --- the Problem protocol -------------------------------------------------------------

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The full-batch mean loss and gradient over all ranks' examples.

        One forward and backward pass over this rank's examples, then one ``all_reduce`` of
        P + 1 numbers (the loss and gradient sums packed together).

        Args:
            theta: flat θ, the same on every rank.

        Returns:
            ``(L, ∇L)``: a 0-d tensor and a flat tensor like θ, identical on every rank.
        """
        self._check_once(theta)
        loss, grad = super().loss_and_grad(theta)
        buffer = torch.empty(self.n_params + 1, dtype=self.dtype, device=self.device)
        torch.mul(grad, self._scale, out=buffer[1:])
        torch.mul(loss, self._scale, out=buffer[0])
        dist.all_reduce(buffer, group=self.group)
        buffer /= self.n_total
        return buffer[0], buffer[1:]

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """The full-batch mean loss over all ranks' examples (forward passes, one all_reduce)."""
        self._check_once(theta)
        total = super().loss(theta) * self._scale
        dist.all_reduce(total, group=self.group)
        return total / self.n_total

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(
        self,
        theta: torch.Tensor,
        x: Any,
        y: Any,
        *,
        task: str = "classification",
        batch_size: int = 1024,
        shard: bool = True,
    ) -> dict[str, float]:
        """The mean loss and accuracy (or MSE) of θ on held-out ``(x, y)``, the same on every rank.

        With ``shard`` (the default) every rank passes the whole held-out set, evaluates its
        contiguous slice of it and one ``all_reduce`` combines the slices, weighted by their
        sizes; without, every rank evaluates all of it (no communication).

        Args:
            theta: flat θ, the same on every rank.
            x, y: the held-out inputs and targets, the same on every rank.
            task: ``"classification"`` or ``"regression"`` (see :meth:`TorchProblem.evaluate`).
            batch_size: examples per forward pass.
            shard: split the evaluation over the ranks.

        Returns:
            ``{"loss": float, "accuracy": float}`` or ``{"loss": float, "mse": float}``.

        Raises:
            ValueError: an unknown task, a bad batch size, or ``x`` and ``y`` of different
                lengths.
        """
        check_eval_task(task)
        check_batch_size(batch_size)
        if not shard:
            return super().evaluate(theta, x, y, task=task, batch_size=batch_size)
        n = pair_length(x, y, "evaluate: ")
        start, stop = shard_bounds(n, self.rank, self.world_size)
        keys = ("loss", "accuracy" if task == "classification" else "mse")
        sums = torch.zeros(len(keys), dtype=torch.float64, device=self.device)
        if stop > start:
            part = super().evaluate(
                theta, x[start:stop], y[start:stop], task=task, batch_size=batch_size
            )
            sums += torch.tensor(
                [part[k] * (stop - start) for k in keys], dtype=torch.float64, device=self.device
            )
        dist.all_reduce(sums, group=self.group)
        return {k: v / n for k, v in zip(keys, sums.tolist(), strict=True)}

    # --- internals ------------------------------------------------------------------------

    def _check_once(self, theta: torch.Tensor) -> None:
        """Check θ is replicated the first time the loss is asked for (the walk's θ0)."""
        if self._check_pending:
            self._check_pending = False
            self.check_replicated(theta)


def from_model(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    reg: str | RegFn = "l2",
    batch_size: int | None = None,
    shard: str = "contiguous",
    group: Any = None,
    sync_model: bool = True,
) -> DistributedTorchProblem:
    """Wrap a model, a loss and training data spread over ``torch.distributed`` ranks.

    Call it on every rank, after ``torch.distributed.init_process_group`` and with the same
    arguments. The loss and gradient it gives are the exact mean over all ranks' examples
    (weighted by example counts, so shards of unequal size are fine); walk it on every rank
    with ``manifoldwalk.walk(problem, problem.theta0, ...)``.

    Args:
        model: an ``nn.Module`` (see :func:`manifoldwalk_torch.from_model`); on a GPU with
            NCCL, on this rank's GPU (``cuda:LOCAL_RANK``).
        loss_fn: ``loss_fn(outputs, targets)`` returning the *mean* loss over a batch.
        data: with ``shard="contiguous"`` or ``"strided"``, the whole training set ``(x, y)``,
            the same on every rank, of which each rank keeps its slice (only the slice is moved
            to the model's device); with ``shard="local"``, this rank's own examples, ``(x, y)``
            or a DataLoader that visits each of them exactly once (not a
            ``DistributedSampler``, which pads shards with repeated examples).
        reg: the regulariser, as for :func:`manifoldwalk_torch.from_model`.
        batch_size: evaluate this rank's loss in batches of this many examples.
        shard: ``"contiguous"`` (rank r keeps a block of consecutive examples, sizes differing
            by at most one: :func:`shard_bounds`), ``"strided"`` (rank r keeps examples
            r, r + W, r + 2W, …) or ``"local"`` (``data`` is already this rank's share).
        group: the process group (None: the default group).
        sync_model: broadcast rank 0's parameters into every rank's model first, so that
            ``theta0`` is the same everywhere (turn off only if the models are already equal:
            the first loss evaluation checks it either way).

    Returns:
        A :class:`DistributedTorchProblem`.

    Raises:
        RuntimeError: ``torch.distributed`` is not initialised.
        ValueError: an unknown ``shard``, a rank left without examples, or any error of
            :func:`manifoldwalk_torch.from_model`.
        TypeError: as for :func:`manifoldwalk_torch.from_model`.
    """
    _check_initialised()
    if shard not in SHARDINGS:
        raise ValueError(f"shard must be one of {SHARDINGS}, got {shard!r}.")
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if shard == "local":
        refuse_distributed_sampler(data)
        local_data, n_local = data, count_examples(data)
    else:
        local_data, n_local = take_shard(data, rank, world, shard)
    # every rank learns the shard sizes (and raises together if one is empty) before any
    # rank can fail alone building its local problem
    _gather_counts(n_local, _model_device(model), group)
    local = TorchProblem(model, loss_fn, local_data, reg=reg, batch_size=batch_size)
    if sync_model:
        _check_backend_device(local.device, group)
        local.assign(_broadcast_flat(local.theta0, group))
    return DistributedTorchProblem(local, n_local, group=group)


# --- helpers --------------------------------------------------------------------------------


def _check_initialised() -> None:
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "torch.distributed is not initialised: launch with torchrun and call "
            'torch.distributed.init_process_group("gloo") (CPU) or ("nccl") (GPU) before '
            "building a distributed problem."
        )


def _check_backend_device(device: torch.device, group: Any) -> None:
    backend = dist.get_backend(group)
    if backend == "nccl" and device.type != "cuda":
        raise ProblemError(
            f"the NCCL backend needs the model on a GPU, but it is on {device}: move it with "
            'model.to(f"cuda:{local_rank}"), or use the gloo backend on the CPU.'
        )


def _global_rank(rank: int, group: Any) -> int:
    return rank if group is None else dist.get_global_rank(group, rank)


def _broadcast_flat(theta: torch.Tensor, group: Any) -> torch.Tensor:
    out = theta.detach().clone()
    dist.broadcast(out, _global_rank(0, group), group=group)
    return out


def _model_device(model: Any) -> torch.device:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def _gather_counts(n_local: int, device: torch.device, group: Any) -> list[int]:
    """Every rank's example count, in rank order (one all_reduce), checked to be non-zero.

    Raises:
        ProblemError: on every rank, if some rank holds no examples.
    """
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    slots = torch.zeros(world, dtype=torch.float64, device=device)
    slots[rank] = float(n_local)
    dist.all_reduce(slots, group=group)
    counts = [int(v) for v in slots.tolist()]
    if min(counts) < 1:
        empty = [r for r, c in enumerate(counts) if c < 1]
        raise ProblemError(
            f"ranks {empty} hold no training examples (counts per rank: {counts}); every rank "
            "needs at least one: use fewer processes or give each rank some data."
        )
    return counts
