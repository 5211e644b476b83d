"""Many seeds at once for PyTorch: walks of one model on several datasets and starts, together.

:func:`walk_batch` walks S :class:`~manifoldwalk_torch.TorchProblem` of one architecture and
loss that differ in their data (of equal shapes), their start and their non-trainable tensors
(frozen parameters, buffers). Each seed is prepared as ``manifoldwalk.walk`` would prepare it;
then every walk step of all S seeds is one call of :func:`torch.func.vmap` over the engine's
step, the loss and gradient taken through :func:`torch.func.grad_and_value` of
:func:`torch.func.functional_call` on the first problem's model. One step's dozens of small
operations (the step sizes, the stop rules, the dot products) then run once for all seeds
instead of once per seed: that is where an eager walk of a small net spends a third of its
time. On a CPU that does not pay: each of those operations costs more under ``vmap``, and the
vmapped gradient of S seeds is slower than S single ones, so the batch is slower than S walks
in turn (``benchmarks/torch_batch_seeds.py``; measured: docs/performance.md, "Batched seeds").
It is meant for a GPU, where a small net's step is kernel launches that cost the same for one
seed or ten (not yet measured on a GPU).

The loop over steps stays on the host. Before each step it reads, for every seed, whether the
seed still walks and whether it is on the level set (one small copy): the step then runs
unmasked while every seed walks, and takes only the predictor or only the corrector branch
when every walking seed takes it, as the eager driver's told step does; the history rows and
trajectory points are formed only at the steps where some seed records one. A chunk ends when
every seed has stopped or paused for its host records, or after K steps; the hosts then read
their seeds' rows and end each seed with the WalkResult it would have had walked alone (within
floating-point tolerance: the batched products round differently).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.func import functional_call, vmap

from manifoldwalk import Chunked, Record
from manifoldwalk.adapter_api import (
    Carry,
    DeviceLoop,
    LaneProblem,
    WalkResult,
    check_lane_agrees,
    describe_vector,
    drive_hosts,
    prepare_hosts,
    same_function,
)
from manifoldwalk_torch._compile import _map, functional_loss_and_grad
from manifoldwalk_torch._model import eval_mode, scalar_loss
from manifoldwalk_torch.loss_problem import TorchLossProblem
from manifoldwalk_torch.problem import TorchProblem

_BUFFERS = ("rows", "points")
"""The carry's row and point buffers: written by the host loop, not inside ``vmap``."""

Batches = list[tuple[torch.Tensor, torch.Tensor]]
"""A lane's data: one ``(x, y)`` pair per minibatch, batch j of every seed stacked for ``vmap``."""


class _Lane(LaneProblem):
    """The template problem's model, loss and R on one seed's θ, data and non-trainable
    tensors: the problem the vmapped step evaluates (its tensors bound per call)."""

    def __init__(self, template: TorchProblem) -> None:
        super().__init__(template)
        self.extras: dict[str, torch.Tensor] = {}
        self.batches: Batches = []

    def bind(self, extras: dict[str, torch.Tensor], batches: Batches) -> _Lane:
        """Point the lane at one seed's (vmapped) non-trainable tensors and data."""
        self.extras, self.batches = extras, batches
        return self

    def _batch_loss(self, theta: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        t, (x, y) = self.template, batch
        out = functional_call(t.model, {**t.unflatten(theta), **self.extras}, (x,))
        return scalar_loss(t._loss_fn(out, y))

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sized = [((x, y), x.shape[0]) for x, y in self.batches]
        return functional_loss_and_grad(self._batch_loss, sized)(theta)

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        return self.loss_and_grad(theta)[0]


def walk_batch(
    problems: Sequence[TorchProblem],
    thetas: Sequence[torch.Tensor] | None = None,
    *,
    driver: Chunked = Chunked(64),
    record: Record | Sequence[Record] = Record(),
    resume_from: Sequence[WalkResult | None] | None = None,
    **options: Any,
) -> list[WalkResult]:
    """Walk several problems of one model at once (each step one ``vmap`` over the seeds).

    Args:
        problems: S :class:`~manifoldwalk_torch.TorchProblem` of the same architecture and
            loss (the first problem's model, ``loss_fn`` and regulariser are used for all,
            with each problem's own data, frozen parameters and buffers; checked once at the
            start against each problem's own loss, gradient and R), with ``(x, y)``
            data of equal shapes and dtypes and the same ``batch_size`` (not a DataLoader).
            Their ``compile`` setting is not used: the batch runs eagerly.
        thetas: S starting points (default: each problem's ``theta0``).
        driver: ``Chunked(K)``: K, the most steps before the hosts read their seeds' rows
            (its ``steps_per_iteration`` must be 1: the host loop reads every step's flags).
        record: one :class:`~manifoldwalk.Record` for every seed, or S of them; with metrics
            or callbacks each seed also pauses at its record points, as in
            ``walk(..., driver=Chunked(K))``.
        resume_from: S results (or None) to resume each seed from.
        **options: any other keyword of ``manifoldwalk.walk`` (``scheme``, ``direction``,
            ``level``, ``tolerance``, ``stop``), the same for every seed.

    Returns:
        S WalkResults, the same (path, history, stop) as walking each problem alone with
        ``manifoldwalk.walk(problem, theta, ...)``, within floating-point tolerance.

    Raises:
        ValueError: no problems, lists of the wrong length, problems of different models,
            losses, data shapes or dtypes, DataLoader data, a ``steps_per_iteration`` above 1,
            or a direction that cannot be traced; or a seed whose loss, gradient or
            regulariser at its start, evaluated as the batch does (with the first problem's
            model, loss and regulariser), differs from its own problem's beyond rounding (the
            error names the seed).
        TypeError: a problem that is not a TorchProblem, or one built with ``from_loss``.
    """
    if getattr(driver, "steps_per_iteration", 1) != 1:
        raise ValueError(
            "walk_batch (PyTorch) takes no steps_per_iteration: its host loop checks every "
            "step (manifoldwalk_jax.walk_batch has masked iterations)."
        )
    problems = list(problems)
    hosts = prepare_hosts(
        problems,
        thetas,
        driver=driver,
        record=record,
        resume_from=resume_from,
        check=_check_same_model,
        **options,
    )
    template = problems[0]
    lanes = _LaneSteps(template, hosts[0].loop)
    _check_same_values(problems, hosts, lanes.lane)
    extras = _stack([_extras(p) for p in problems])
    batches = [  # batch j of every seed, stacked
        (torch.stack([x for x, _ in group]), torch.stack([y for _, y in group]))
        for group in zip(*(p._data.batches() for p in problems), strict=True)
    ]

    def chunk(carries: list[Carry]) -> list[Carry]:
        with eval_mode(template.model):
            out = lanes.run(_stack(carries), extras, batches)
        return [_map(lambda t, i=i: t[i], out) for i in range(len(carries))]

    return drive_hosts(hosts, chunk)


class _LaneSteps:
    """One chunk of all seeds: the host loop over steps, each step vmapped over the seeds."""

    def __init__(self, template: TorchProblem, loop: DeviceLoop) -> None:
        self.lane = _Lane(template)
        self.loop = loop.bound_to(self.lane)  # (its steps_per_iteration is not used here)
        self._steps: dict[tuple[bool | None, bool], Callable] = {}
        self._describe = vmap(self._lane_row)
        self._finish = vmap(self._lane_finish)

    def run(self, carry: Carry, extras: dict[str, torch.Tensor], batches: Batches) -> Carry:
        """Up to K steps of every lane of the stacked ``carry``, then each lane's look."""
        c, n = carry, carry.n_done.shape[0]
        go, on = _flags(self.loop, c)
        while any(go):
            walking = [o for g, o in zip(go, on, strict=True) if g]
            branch = walking[0] if all(o == walking[0] for o in walking) else None
            step = self._step(branch, masked=len(walking) < n)
            new = Carry(**step(_unbuffered(c), extras, batches), rows=c.rows, points=c.points)
            due, kept, go, on = _flags(self.loop, new, c)
            if any(due):
                rows = self._describe(_unbuffered(new), extras, batches)
                new = new._replace(rows=_put(c.rows, c.n_rows, due, rows))
            if any(kept):
                new = new._replace(points=_put(c.points, c.n_points, kept, new.state.theta))
            c = new
        return c._replace(look=self._finish(_unbuffered(c), extras, batches))

    def _step(self, on: bool | None, masked: bool) -> Callable:
        """The vmapped step of one lane, told its branch (or None) and masked or not."""
        key = (on, masked)
        if key not in self._steps:
            self._steps[key] = vmap(functools.partial(self._lane_step, on=on, masked=masked))
        return self._steps[key]

    def _lane_step(
        self, parts: dict, extras: dict, batches: Batches, on: bool | None, masked: bool
    ) -> dict:
        c = Carry(**parts, rows=None, points=None)
        self.lane.bind(extras, batches)
        body = self.loop.masked_body if masked else self.loop.body
        return _unbuffered(body(c, _no_put, on))

    def _lane_row(self, parts: dict, extras: dict, batches: Batches) -> torch.Tensor:
        return describe_vector(self.lane.bind(extras, batches), parts["state"])

    def _lane_finish(self, parts: dict, extras: dict, batches: Batches) -> torch.Tensor:
        self.lane.bind(extras, batches)
        return self.loop.rules.packed_look(parts["state"], self.loop.direction)


def _flags(loop: DeviceLoop, c: Carry, before: Carry | None = None) -> list[list[bool]]:
    """What the host loop reads per lane, in one copy: whether each lane walks on and is on
    the level set at ``c``, and after a step from ``before``, whether it recorded a row and
    kept a point (those first)."""
    dev = c.state.loss - c.state.level
    flags = [loop.cond(c), dev * dev <= c.state.tau]
    if before is not None:
        flags = [c.n_rows > before.n_rows, c.n_points > before.n_points, *flags]
    return torch.stack(flags).tolist()


def _no_put(buffer: Any, i: Any, due: Any, make_row: Callable) -> Any:
    """The vmapped step writes no buffer: the host loop writes the due rows after it."""
    return buffer


def _put(
    buffer: torch.Tensor, at: torch.Tensor, due: list[bool], rows: torch.Tensor
) -> torch.Tensor:
    """``buffer`` (lanes, capacity, width) with row ``at[i]`` of lane i set to ``rows[i]``
    where ``due[i]`` (a fresh buffer: the input carry keeps its own)."""
    out = buffer.clone()
    lanes = [i for i, d in enumerate(due) if d]
    index = torch.tensor(lanes, device=buffer.device)
    out[index, at[index]] = rows[index].to(buffer.dtype)
    return out


def _unbuffered(c: Carry) -> dict[str, Any]:
    """The carry's fields but its buffers, as the dict a vmapped lane takes and returns."""
    return {k: v for k, v in c._asdict().items() if k not in _BUFFERS}


def _extras(problem: TorchProblem) -> dict[str, torch.Tensor]:
    """A problem's non-trainable tensors by name: frozen parameters and buffers (detached)."""
    trainable = set(problem.names)
    model = problem.model
    out = {n: p.detach() for n, p in model.named_parameters() if n not in trainable}
    out.update({n: b.detach() for n, b in model.named_buffers()})
    return out


def _stack(trees: list[Any]) -> Any:
    """Stack equal nested tuples or dicts of tensors along a new leading (seed) axis."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: _stack([t[k] for t in trees]) for k in first}
    if isinstance(first, tuple):
        return _map(lambda *a: torch.stack(a), *trees)
    return torch.stack(trees)


def _check_same_model(problems: list[TorchProblem]) -> None:
    """Raise unless every problem has the first one's architecture, loss and data shapes."""
    for i, p in enumerate(problems):
        if not isinstance(p, TorchProblem):
            raise TypeError(
                f"walk_batch: problems[{i}] is a {type(p).__name__}, not a TorchProblem."
            )
        if isinstance(p, TorchLossProblem):
            raise TypeError(
                f"walk_batch: problems[{i}] was built with from_loss; walk_batch stacks the "
                "seeds' (x, y) data and takes from_model problems only. Walk each from_loss "
                "problem with manifoldwalk.walk."
            )
        if p._data.is_loader:
            raise ValueError(
                f"walk_batch: problems[{i}] reads its data from a DataLoader; a batch stacks "
                "the seeds' data, so give each problem (x, y) tensors (with batch_size if "
                "they do not fit one pass)."
            )
    first = problems[0]
    expected = _signature(first)
    for i, p in enumerate(problems):
        if type(p.model) is not type(first.model) or not _same_loss(p._loss_fn, first._loss_fn):
            raise ValueError(
                f"walk_batch: problems[{i}] has another model class or loss_fn than "
                "problems[0]; a batch walks one model and loss on several datasets."
            )
        if _signature(p) != expected:
            raise ValueError(
                f"walk_batch: problems[{i}] has parameters, buffers or data of other names, "
                "shapes or dtypes than problems[0]; batch seeds of equal shapes only."
            )


def _check_same_values(problems: list[TorchProblem], hosts: list[Any], lane: _Lane) -> None:
    """Check each seed's start as the batch evaluates it (:func:`check_lane_agrees`): the
    structural checks cannot see another activation or a closure's constant."""
    template = problems[0]
    for i, (p, h) in enumerate(zip(problems, hosts, strict=True)):
        if i == 0:
            continue
        with eval_mode(template.model):
            lane.bind(_extras(p), list(p._data.batches()))
            check_lane_agrees(i, lane, p, h.carry.state.theta, "model, loss_fn and regulariser")
        lane.bind({}, [])


def _same_loss(f: Any, g: Any) -> bool:
    """The same loss function, or two loss modules of one class with equal settings and
    buffers (``nn.CrossEntropyLoss()`` made once per seed)."""
    if same_function(f, g):
        return True
    if not (isinstance(f, torch.nn.Module) and type(f) is type(g)):
        return False
    plain = (str, int, float, bool, type(None))

    def settings(m: torch.nn.Module) -> dict[str, Any]:
        return {k: v for k, v in vars(m).items() if not k.startswith("_") and isinstance(v, plain)}

    fb, gb = dict(f.named_buffers()), dict(g.named_buffers())
    return (
        settings(f) == settings(g)
        and fb.keys() == gb.keys()
        and all(torch.equal(fb[k], gb[k]) for k in fb)
    )


def _signature(p: TorchProblem) -> list[Any]:
    """Names, shapes, dtypes and devices of a problem's θ pieces, extras and data batches."""
    batches = [(x, y) for x, y in p._data.batches()]
    tensors = [*_extras(p).items(), *((f"batch{j}", t) for j, b in enumerate(batches) for t in b)]
    pieces = [(n, tuple(t.shape), t.dtype, t.device) for n, t in tensors]
    return [p.names, p._shapes, p.dtype, p.device, pieces]
