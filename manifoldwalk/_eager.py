"""The eager driver's loop: one step and one small host copy per step, until a stop.

Where the problem compiles the step (with the stop rules' look fused in), the host copies
one packed vector per step; a compiled step that donates its input's memory is never given a
state the walk still needs, and the last good state is replayed from a kept copy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from manifoldwalk._array import Array, copy_array, host_list
from manifoldwalk._chunk_host import check_replayed
from manifoldwalk._compile_cache import step_cache_of, step_key
from manifoldwalk._partial import keep_partial
from manifoldwalk._stops import BEFORE_CALLBACK, StopRules, host_values
from manifoldwalk.directions import Direction, is_traceable
from manifoldwalk.problem import Problem
from manifoldwalk.schemes import Scheme
from manifoldwalk.step import WalkState, make_step, map_state

if TYPE_CHECKING:
    from manifoldwalk.driver import PreparedWalk
    from manifoldwalk.result import WalkResult


Advance = Callable[..., tuple[WalkState, dict[str, Any]]]
"""``advance(state, on=None) -> (next state, the stop rules' host look at it)``: one
eager-driver step; ``on`` is the look's ``"on"`` at ``state`` where the caller has it (a step
that is not compiled then forms only the branch it takes; see :func:`make_step`). Its
``consumes_state`` attribute, where true, says that the step reuses the memory of the state it
is given (a donating compiled step): the caller must not read that state again."""

ANCHOR_EVERY = 64
"""Steps between the copies of an on-level state that the eager driver keeps when its step
consumes its input: a walk that stops off the level set replays its last good state from the
latest copy (at most this many steps and one corrector series, once, at the end)."""


def make_advance(
    problem: Problem, direction: Direction, scheme: Scheme, rules: StopRules, wanted: bool
) -> Advance:
    """One step of the eager driver and the host's look at the new state.

    Where the problem has a ``compile_step`` hook (and ``wanted``), the step and the stop
    rules' look, packed into one small vector, are compiled together, so that the host copies
    one array per step instead of running the look's dozen small operations itself (a large
    part of a small net's step; measured: docs/performance.md). The compiled function is kept in the problem's
    ``step_cache`` for later walks with the same direction, scheme and kind of look. A step
    that is not compiled (no hook, or a hook that hands the function back, as an eager PyTorch
    problem's does) runs as it is and is told its branch by ``advance(state, on)``, so it
    forms only the predictor or the corrector; the host then reads the look itself.

    A hook that takes a ``donate`` keyword is asked for ``donate=True``: the compiled step may
    write the new state into the old one's memory (``jax.jit(..., donate_argnums=0)``), which
    saves allocating and writing a fresh state at every step; the returned ``advance`` then
    has ``consumes_state = True`` and the driver keeps copies of what it still needs.
    """
    step = make_step(problem, direction, scheme)

    def plain(s: WalkState, on: bool | None = None) -> tuple[WalkState, dict[str, Any]]:
        s = step(s, on)
        return s, rules.host_look(s, direction)

    compile_ = getattr(problem, "compile_step", None)
    if not (wanted and callable(compile_) and is_traceable(direction)):
        return plain

    def step_and_look(s: WalkState) -> tuple[WalkState, Array]:
        s = step(s)
        return s, rules.packed_look(s, direction)

    donate = _takes_donate(compile_)

    def build() -> Callable[..., Any] | None:
        fn = compile_(step_and_look, donate=True) if donate else compile_(step_and_look)
        return None if fn is step_and_look else fn  # None: the hook compiled nothing

    cache = step_cache_of(problem)
    key = step_key(problem, direction, scheme)
    if cache is None or key is None:
        fused = build()
    else:  # the look depends on the direction (in the key) and on whether it has `reached`;
        # a hook swapped for one that does not donate must not be served a donating step
        fused = cache.get_by_key((*key, rules.has_reached, donate), build)
    if fused is None:  # an eager PyTorch problem: the plain step, told its branch
        return plain

    def advance(s: WalkState, on: bool | None = None) -> tuple[WalkState, dict[str, Any]]:
        s, packed = fused(s)
        return s, host_values(host_list(packed))

    advance.consumes_state = donate  # type: ignore[attr-defined]
    return advance


def _takes_donate(hook: Callable[..., Any]) -> bool:
    """Whether a ``compile_step`` hook takes the ``donate`` keyword."""
    try:
        return "donate" in inspect.signature(hook).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): the plain protocol
        return False


def copy_state(s: WalkState) -> WalkState:
    """``s`` with every array copied into memory of its own (see :func:`copy_array`)."""
    return map_state(copy_array, s)


def replay(advance: Advance, anchor: WalkState, steps: int) -> WalkState:
    """The state ``steps`` eager-driver steps after ``anchor`` (a copy of it is consumed): the
    last good state of a walk whose step consumed it. The compiled step is a deterministic
    function of its input, so the replay reaches the same state (on a device whose reductions
    are not bitwise reproducible, a state the same steps reach within rounding)."""
    if steps == 0:
        return anchor
    s = copy_state(anchor)
    for _ in range(steps):
        s, v = advance(s)
    check_replayed(v, "the steps")
    return s


def run_eager(run: PreparedWalk, compile_step: bool = True) -> WalkResult:
    """Run a prepared walk with the eager driver (one host synchronisation per step) to a stop.

    Args:
        run: the prepared walk.
        compile_step: let the problem compile the step where it offers to.

    Returns:
        The :class:`~manifoldwalk.WalkResult`.

    Raises:
        Exception: what the loss, a metric or the callback raised (or ``KeyboardInterrupt``),
            with the walk so far attached (:mod:`manifoldwalk._partial`).
    """
    rules = run.rules
    advance = make_advance(run.problem, run.direction, run.scheme, rules, compile_step)
    rec = run.recorder
    # A step that consumes its input (see make_advance) is never given the caller's θ0 or
    # resumed state, nor a state whose θ went to the metrics or the trajectory; the last
    # good state is replayed, where the walk ends off it, from an anchor: a copy taken at
    # most ANCHOR_EVERY steps before it (the walk's start to begin with).
    consumes = getattr(advance, "consumes_state", False)
    own = copy_array if consumes else None
    anchor, anchor_at, taken, good_at = run.state, 0, 0, 0
    state = good = copy_state(run.state) if consumes else run.state
    v = rules.host_look(state, run.direction)
    stepping = False  # `state` is in the step (a consuming step may have reused its memory)
    try:
        while True:
            reason = rules.reason(v)
            if v["on"] and not v["nonfinite"]:
                good, good_at = state, taken
                n_pred = int(v["n_pred"])
                row = rec.record(state, own) if rec.due(n_pred) else None
                rec.keep(state, n_pred, own)
                if row is not None and rec.callback is not None and reason not in BEFORE_CALLBACK:
                    if rec.callback(row):
                        reason = "callback"
            if reason:
                if good is not state and consumes:
                    good = replay(advance, anchor, good_at - anchor_at)
                return run.result(good, state, reason, v)
            if consumes and good is state and taken - anchor_at >= ANCHOR_EVERY:
                anchor, anchor_at = copy_state(state), taken
            stepping = True
            state, v = advance(state, v["on"])
            stepping = False
            taken += 1
    except (Exception, KeyboardInterrupt) as err:

        def so_far(error: BaseException) -> WalkResult:
            # `state` is where the walk stood (the step from it raised), `good` its last point
            # on the level set; what a consuming step was given is replayed from the anchor
            last, last_good = state, good
            if consumes and (stepping or good is not state):
                last = last_good = replay(advance, anchor, good_at - anchor_at)
            return run.result(last_good, last, "error", v, error=error)

        keep_partial(err, so_far)
        raise
