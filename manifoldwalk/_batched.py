"""The host's side of walks batched by an adapter: many seeds, one device loop.

An adapter's ``walk_batch`` (``manifoldwalk_jax.walk_batch``, ``manifoldwalk_torch.walk_batch``)
walks S problems of one model together. What it shares with every other batched driver lives
here: the per-seed arguments, one prepared walk and :class:`~manifoldwalk._chunk_host.ChunkHost`
per seed (:func:`prepare_hosts`), the problem one lane evaluates (:class:`LaneProblem`), the
check that a lane computes what its seed's own problem does (:func:`check_lane_agrees`), and the
loop that hands every unfinished seed's carry to the adapter's batched chunk and each seed's output back
to its host (:func:`drive_hosts`). The adapter only supplies the chunk: a function from the S
carries to the S carries after up to K steps of each, in which a seed whose host is done (or
whose ``n_limit`` is 0) takes no step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from manifoldwalk._array import Array, namespace, to_numpy
from manifoldwalk._chunk_host import ChunkHost
from manifoldwalk._chunked import Carry
from manifoldwalk._partial import keep_partial
from manifoldwalk.driver import prepare_walk
from manifoldwalk.drivers import Chunked
from manifoldwalk.options import Record
from manifoldwalk.problem import Problem
from manifoldwalk.result import WalkResult

BatchChunk = Callable[[list[Carry]], list[Carry]]
"""``chunk(carries) -> carries``: up to K steps of every seed at once, one carry per seed."""


def prepare_hosts(
    problems: Sequence[Problem],
    thetas: Sequence[Array] | None,
    *,
    driver: Chunked,
    record: Record | Sequence[Record] = Record(),
    resume_from: Sequence[WalkResult | None] | None = None,
    check: Callable[[list[Any]], None] | None = None,
    **options: Any,
) -> list[ChunkHost]:
    """Prepare each seed's walk as ``manifoldwalk.walk`` would and give its chunk host.

    Args:
        problems: the S problems (at least one).
        thetas: S starting points, or None for each problem's ``theta0``.
        driver: K steps per chunk and M masked steps per iteration of the device loop.
        record: one :class:`~manifoldwalk.Record` for every seed, or S of them.
        resume_from: S results (or None) to resume each seed from.
        check: the adapter's test that the problems can be batched (one model, data of equal
            shapes), called with the list of problems before anything is evaluated; it raises.
        **options: any other keyword of ``manifoldwalk.walk`` (``scheme``, ``direction``,
            ``level``, ``tolerance``, ``stop``), the same for every seed.

    Returns:
        S hosts, in the order of ``problems``; their ``loop`` is the first seed's device loop
        with every option the batch shares.

    Raises:
        ValueError: no problems, lists of the wrong length, metrics or callbacks given to
            some seeds only, or anything ``manifoldwalk.walk`` refuses.
        TypeError: ``driver`` not a :class:`~manifoldwalk.Chunked`.
        Exception: what ``check`` raises.
    """
    if not isinstance(driver, Chunked):
        raise TypeError(
            f"walk_batch: driver must be manifoldwalk.Chunked(steps_per_sync=K), got {driver!r}."
        )
    problems = list(problems)
    n = len(problems)
    if n == 0:
        raise ValueError("walk_batch needs at least one problem.")
    if check is not None:
        check(problems)
    thetas = [p.theta0 for p in problems] if thetas is None else list(thetas)
    records = [record] * n if isinstance(record, Record) else list(record)
    seeds = {
        "thetas": thetas,
        "record": records,
        "resume_from": [None] * n if resume_from is None else list(resume_from),
    }
    for name, values in seeds.items():
        if len(values) != n:
            raise ValueError(f"walk_batch: {name} has {len(values)} entries for {n} problems.")
    if len({bool(r.metrics) or r.callback is not None for r in records}) > 1:
        raise ValueError(
            "walk_batch: give metrics or a callback to every seed or to none (a batched chunk "
            "pauses at record points for all seeds alike)."
        )
    runs = [
        prepare_walk(p, th, record=rec, resume_from=r, **options)
        for p, th, rec, r in zip(problems, *seeds.values(), strict=True)
    ]
    return [
        run.host(driver.steps_per_sync, steps_per_iteration=driver.steps_per_iteration)
        for run in runs
    ]


def drive_hosts(hosts: list[ChunkHost], chunk: BatchChunk) -> list[WalkResult]:
    """Run the batched chunk until every seed's walk has ended.

    Each round hands all S carries to ``chunk`` (a finished seed's carry has its stop code
    set, so its lane takes no step) and each unfinished seed's output to its host. A seed
    that stopped off the level set replays its last chunk alone (the other lanes idle, with
    ``n_limit`` 0) through the same batched chunk, so the replay reaches the same state.

    Args:
        hosts: the seeds' hosts (:func:`prepare_hosts`).
        chunk: the adapter's batched chunk.

    Returns:
        Each seed's WalkResult, in the order of ``hosts``.

    Raises:
        Exception: what the chunk, a metric or a callback raised (or ``KeyboardInterrupt``),
            with each seed's walk so far attached as ``err.walk_results`` (stop reason
            ``"error"`` for the seeds it stopped; see :meth:`ChunkHost.so_far`).
    """
    n = len(hosts)
    try:
        while not all(h.done for h in hosts):
            outs = chunk([h.carry for h in hosts])
            for i, (h, out) in enumerate(zip(hosts, outs, strict=True)):
                if not h.done:
                    h.absorb(out, lambda c, i=i: _alone(chunk, c, i, n))
    except (Exception, KeyboardInterrupt) as err:

        def so_far(error: BaseException) -> list[WalkResult]:
            return [
                h.result if h.done else h.so_far(lambda c, i=i: _alone(chunk, c, i, n), error)
                for i, h in enumerate(hosts)
            ]

        keep_partial(err, so_far, batched=True)
        raise
    return [h.result for h in hosts]


def _alone(chunk: BatchChunk, carry: Carry, i: int, n: int) -> Carry:
    """The batched chunk run for seed ``i`` alone from ``carry`` (the other lanes get
    ``carry`` with no step to take)."""
    idle = carry._replace(n_limit=namespace(carry.n_limit).zeros_like(carry.n_limit))
    return chunk([carry if j == i else idle for j in range(n)])[i]


class LaneProblem:
    """The problem one lane of a batched chunk evaluates: the first (template) problem's
    regulariser, and the gradient from the adapter's ``loss_and_grad`` on the lane's data.

    Subclasses define ``loss_and_grad(theta)`` and ``loss(theta)``.

    Args:
        template: the batch's first problem (its ``reg`` and ``reg_grad`` serve every lane).
    """

    def __init__(self, template: Any) -> None:
        self.template = template

    def grad(self, theta: Array) -> Array:
        """∇L(θ) on the lane's data."""
        return self.loss_and_grad(theta)[1]

    def reg(self, theta: Array) -> Array:
        """R(θ), the template's."""
        return self.template.reg(theta)

    def reg_grad(self, theta: Array) -> Array:
        """∇R(θ), the template's."""
        return self.template.reg_grad(theta)


def same_function(f: Any, g: Any) -> bool:
    """The same callable, or two closures of the same code (one lambda made per seed)."""
    code = getattr(f, "__code__", None)
    return f is g or (code is not None and code is getattr(g, "__code__", None))


def check_lane_agrees(i: int, lane: Problem, own: Problem, theta: Array, batch_uses: str) -> None:
    """Raise unless seed ``i``'s loss, gradient, R and ∇R at ``theta`` as its batch lane
    evaluates them equal its own problem's within rounding (√ε of θ's dtype, relative).

    A batch evaluates every seed with the first problem's functions; the structural checks an
    adapter makes (model class, shapes, code objects) cannot see another activation or a
    closure's constant, which would walk the seed on another function with no sign of it.
    One evaluation of each, at the start (host copies are fine there).

    Args:
        i: The seed's index in the batch (for the message).
        lane: The seed as the batch evaluates it (the template's functions on its data).
        own: The seed's own problem.
        theta: The seed's start.
        batch_uses: What the batch takes from ``problems[0]``, e.g. ``"model, loss_fn and
            regulariser"`` (for the message).

    Raises:
        ValueError: Naming the seed, the first quantity that differs and both values.
    """
    batched = (*lane.loss_and_grad(theta), lane.reg(theta), lane.reg_grad(theta))
    mine = (*own.loss_and_grad(theta), own.reg(theta), own.reg_grad(theta))
    for what, a, b in zip(("loss", "gradient", "regulariser", "∇R"), batched, mine, strict=True):
        a, b = np.asarray(to_numpy(a)), np.asarray(to_numpy(b))
        tol = float(np.finfo(b.dtype).eps) ** 0.5  # rounding differs; another function does not
        gap = float(np.linalg.norm(np.ravel(a - b)))
        if gap <= tol * (1.0 + float(np.linalg.norm(np.ravel(b)))):
            continue
        if a.ndim == 0:
            found = f"{what} {float(a):.8g} where problems[{i}] itself gives {float(b):.8g}"
        else:
            found = f"a {what} {gap:.3g} away (in norm) from problems[{i}]'s own"
        raise ValueError(
            f"walk_batch: problems[{i}] is not the function the batch would walk: at its start "
            f"θ the batch, which evaluates every seed with problems[0]'s {batch_uses}, gives "
            f"{found}. Batch only seeds of one model, loss and reg (the same functions, layers "
            "and constants) that differ in their data, start and frozen parameters; walk this "
            "problem alone or in another batch."
        )
