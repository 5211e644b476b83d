"""Many seeds at once: walks of one model on several datasets and starts, ``vmap``-ed together.

:func:`walk_batch` walks S problems that share a model and a loss and differ in their data
(of equal shapes), their frozen leaves and their start. Each seed is prepared as
``manifoldwalk.walk`` would prepare it; then one jitted, ``vmap``-ed ``lax.while_loop`` runs up
to K steps of every seed per host synchronisation (compiled once per template problem and
options: a later batch of the same shapes reuses it). Each seed stops on its own: a seed whose
stop rule fired (or that waits for the host to record) is frozen, its state selected unchanged
by the batched loop, while the others go on; a chunk ends when every seed has stopped or paused
or K steps have passed. The host then reads each seed's rows back, calls its metrics and
callback, and ends each seed with the WalkResult it would have had walked alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from manifoldwalk import Chunked, Record
from manifoldwalk.adapter_api import (
    DeviceLoop,
    LaneProblem,
    WalkResult,
    check_lane_agrees,
    drive_hosts,
    prepare_hosts,
    same_function,
)
from manifoldwalk_jax.loop import committed, put_select, run_chunk
from manifoldwalk_jax.problem import JaxProblem

SEEDS = "seeds"
"""The name of the batch's ``vmap`` axis (lanes agree on a branch through it)."""


class _Bound(LaneProblem):
    """The template problem's model, loss and R on one seed's (traced) data and frozen leaves."""

    def __init__(self, template: JaxProblem, frozen: list[Any], data: tuple[Any, ...]) -> None:
        super().__init__(template)
        self.frozen, self.data = frozen, data

    def loss_and_grad(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.template._loss_and_grad(theta, self.frozen, *self.data)

    def loss(self, theta: jax.Array) -> jax.Array:
        return self.template._loss(theta, self.frozen, *self.data)


def walk_batch(
    problems: Sequence[JaxProblem],
    thetas: Sequence[jax.Array] | None = None,
    *,
    driver: Chunked = Chunked(64),
    record: Record | Sequence[Record] = Record(),
    resume_from: Sequence[WalkResult | None] | None = None,
    **options: Any,
) -> list[WalkResult]:
    """Walk several problems of one model at once (one ``vmap``-ed compiled loop).

    Args:
        problems: S :class:`~manifoldwalk_jax.JaxProblem` of the same model and loss (the
            first problem's ``apply_fn``, ``loss_fn`` and regulariser are used for all; checked
            once at the start against each problem's own loss, gradient and R), with data of
            equal shapes and dtypes (e.g. one per seed).
        thetas: S starting points (default: each problem's ``theta0``).
        driver: K steps per host synchronisation and M masked steps per iteration of the
            batched ``while_loop`` (:class:`~manifoldwalk.Chunked`).
        record: one :class:`~manifoldwalk.Record` for every seed, or S of them; with metrics
            or callbacks each seed's chunk also ends at its record points, as in
            ``walk(..., driver=Chunked(K))``.
        resume_from: S results (or None) to resume each seed from.
        **options: any other keyword of ``manifoldwalk.walk`` (``scheme``, ``direction``,
            ``level``, ``tolerance``, ``stop``), the same for every seed.

    Returns:
        S WalkResults, the same (path, history, stop) as walking each problem alone with
        ``manifoldwalk.walk(problem, theta, driver=Chunked(K), ...)``, within floating-point
        tolerance.

    Raises:
        ValueError: no problems, lists of the wrong length, problems of different models,
            data shapes or dtypes, or a direction that cannot be traced; or a seed whose
            loss, gradient or regulariser at its start, evaluated as the batch does (with the
            first problem's ``apply_fn``, ``loss_fn`` and regulariser), differs from its own
            problem's beyond rounding (the error names the seed).
        TypeError: a problem that is not a JaxProblem.
    """
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
    template, loop = problems[0], hosts[0].loop
    _check_same_values(problems, hosts)
    jitted = template.loop_cache.get(loop, lambda: _batched_chunk(template, loop), kind="batch")
    frozen = _stack([p._frozen for p in problems])
    data = _stack([p._data for p in problems])
    n = len(problems)

    def chunk(carries: list[Any]) -> list[Any]:
        return _unstack(jitted(_stack(carries), frozen, data), n)

    return drive_hosts(hosts, chunk)


def _batched_chunk(
    template: JaxProblem, loop: DeviceLoop, runner: Callable[[DeviceLoop, Any], Any] | None = None
) -> Callable[..., Any]:
    """The jitted, vmapped chunk: ``(carries, frozen, data) -> carries`` over the seed axis.

    ``runner(loop, carry)`` runs one lane's chunk (default: :func:`default_runner` for the
    template's device; benchmarks pass one to time the other).
    """
    run = runner or default_runner(next(iter(template.theta0.devices())).platform)

    def one(carry: Any, frozen: list[Any], data: tuple[Any, ...]) -> Any:
        return run(loop.bound_to(_Bound(template, frozen, data)), carry)

    jitted = jax.jit(jax.vmap(one, axis_name=SEEDS))

    def chunk(carries: Any, frozen: Any, data: Any) -> Any:
        return jitted(committed(carries), frozen, data)

    return chunk


def _any_lane(flag: jax.Array) -> jax.Array:
    """Whether ``flag`` holds in any lane of the batch: one value for all lanes, so a
    ``lax.cond`` or ``while_loop`` predicate made of it stays a branch under ``vmap`` (a
    predicate that differs by lane becomes a select that runs both sides)."""
    return lax.psum(flag.astype(jnp.int32), SEEDS) > 0


def _lane_put(buffer: jax.Array, i: jax.Array, due: jax.Array, make_row: Callable) -> jax.Array:
    """A buffer write for one lane of the batch: the row (a history record, several passes
    over θ) is computed only when some lane is due, and written where this lane is."""
    return lax.cond(_any_lane(due), lambda b: put_select(b, i, due, make_row), lambda b: b, buffer)


def _run_lanes(loop: DeviceLoop, carry: Any) -> Any:
    """``loop.run`` for one lane of the batch, with M = 1: one ``while`` predicate for all
    lanes (go on while any lane goes on) and the masked step only once some lane has stopped.

    ``vmap`` of the plain chunk would select every carry field of every lane at every step
    (the loop's predicate differs by lane) and compute each history row at every step (its
    ``lax.cond`` becomes a select). With M > 1 the chunk stays branch-free, as on a GPU,
    where a branch's predicate is read on the host (:func:`~manifoldwalk_jax.loop.run_chunk`).
    """
    if loop.steps_per_iteration > 1:
        return run_chunk(loop, carry)

    def iteration(c: Any) -> Any:
        return lax.cond(
            _any_lane(~loop.cond(c)),
            lambda c: loop.masked_body(c, _lane_put),
            lambda c: loop.body(c, _lane_put),
            c,
        )

    return loop.finish(lax.while_loop(lambda c: _any_lane(loop.cond(c)), iteration, carry))


def default_runner(platform: str) -> Callable[[DeviceLoop, Any], Any]:
    """How a batch on ``platform`` runs one lane's chunk: :func:`_run_lanes` on a CPU (a
    branch is cheap there, a select of every carry field is passes over memory); the plain
    chunk, ``vmap``-ed as it is, elsewhere (a GPU reads every branch's predicate on the host,
    and selects are cheap). ``benchmarks/batch_seeds.py`` times both on a CPU."""
    return _run_lanes if platform == "cpu" else run_chunk


def _check_same_model(problems: list[JaxProblem]) -> None:
    """Raise unless every problem has the first one's model, loss and data shapes."""
    first = problems[0]
    first_shapes = [_avals(x) for x in (first._data, first._frozen, first.theta0)]
    for i, p in enumerate(problems):
        if not isinstance(p, JaxProblem):
            raise TypeError(f"walk_batch: problems[{i}] is a {type(p).__name__}, not a JaxProblem.")
        if not (
            same_function(p._apply_fn, first._apply_fn)
            and same_function(p._loss_fn, first._loss_fn)
        ):
            raise ValueError(
                f"walk_batch: problems[{i}] has another apply_fn or loss_fn than problems[0]; "
                "a batch walks one model and loss on several datasets."
            )
        if [_avals(x) for x in (p._data, p._frozen, p.theta0)] != first_shapes:
            raise ValueError(
                f"walk_batch: problems[{i}] has data, frozen parameters or θ of other shapes or "
                "dtypes than problems[0]; batch seeds of equal shapes only."
            )


def _check_same_values(problems: list[JaxProblem], hosts: list[Any]) -> None:
    """Check each seed's start as the batch evaluates it (:func:`check_lane_agrees`): two
    closures of one code over other functions or constants pass :func:`_check_same_model`."""
    template = problems[0]
    for i, (p, h) in enumerate(zip(problems, hosts, strict=True)):
        if i:
            lane = _Bound(template, p._frozen, p._data)
            check_lane_agrees(i, lane, p, h.carry.state.theta, "apply_fn, loss_fn and regulariser")


def _avals(tree: Any) -> list[tuple[tuple[int, ...], Any]]:
    return [(tuple(a.shape), a.dtype) for a in jax.tree_util.tree_leaves(tree)]


def _stack(trees: list[Any]) -> Any:
    """Stack pytrees of equal structure along a new leading (seed) axis."""
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)


def _unstack(tree: Any, n: int) -> list[Any]:
    """The inverse of :func:`_stack`: n pytrees (one split per leaf)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    split = [list(jnp.unstack(leaf)) for leaf in leaves]
    return [treedef.unflatten([s[i] for s in split]) for i in range(n)]
