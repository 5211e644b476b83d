"""The host side of a chunked walk: it reads each chunk's carry once, records the rows and
trajectory points the device buffered, runs metrics and the callback at pauses, and assembles
the result; a walk that stopped off the level set replays its last good state from the chunk
input that reached it (:meth:`ChunkHost.replay`)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from manifoldwalk._array import Array, device_of, namespace, to_host, to_numpy
from manifoldwalk._chunked import Carry, DeviceLoop, put_by_mask, unbuffered
from manifoldwalk._history import describe_vector, row_of
from manifoldwalk._partial import keep_partial
from manifoldwalk._stops import BEFORE_CALLBACK, LOOK_KEYS, host_values, reason_of
from manifoldwalk.step import WalkState


def check_replayed(look: dict[str, Any], what: str) -> None:
    """Warn, at the caller's line outside the package, where a replayed last good state is
    off the level set or not finite (``look``: the stop rules' host look at it). Only on a
    device whose reductions differ from run to run: the replay re-ran ``what`` (named in the
    warning) from the same input; the state is still returned as θ."""
    if look["on"] and not look["nonfinite"]:
        return
    core = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(0), 1  # level 1: this function's own line
    while frame.f_back is not None and frame.f_code.co_filename.startswith(core):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"manifoldwalk: the replayed last good state is off the level set here (the device "
        f"did not reproduce {what} bit for bit); it is returned as θ.",
        RuntimeWarning,
        stacklevel=level,
    )


class ChunkHost:
    """The host's side of a chunked walk: chunk inputs, reading results back, the end.

    Args:
        run: the prepared walk (:class:`manifoldwalk.driver.PreparedWalk`): its recorder,
            stop rules and result assembly.
        loop: the device loop for this walk.
    """

    def __init__(self, run: Any, loop: DeviceLoop) -> None:
        self.run = run
        self.loop = loop
        self.done = False
        self.result = None
        self.paused: Carry | None = None  # a record-due point the host is recording at
        state = run.state
        xp = namespace(state.theta)
        rec = run.recorder
        count = state.n_predictor
        n_cols = len(describe_vector(loop.problem, state))
        n_theta = state.theta.shape[0]
        dtype = state.theta.dtype
        zeros = _zeros_maker(xp, state.theta)
        self.carry = Carry(
            state=state,
            good_at=xp.zeros_like(count) - 1,
            code=xp.zeros_like(count),
            pause=xp.zeros_like(state.predictor.started),
            n_done=xp.zeros_like(count),
            n_limit=_count_like(count, loop.steps),
            last_rec=xp.zeros_like(count) + rec.last_recorded,
            last_kept=xp.zeros_like(count) + rec.last_kept,
            rows=zeros((loop.row_capacity, n_cols), dtype),
            n_rows=xp.zeros_like(count),
            points=zeros((loop.point_capacity, n_theta), dtype),  # 0 rows without a trajectory
            n_points=xp.zeros_like(count),
            look=zeros((len(LOOK_KEYS),), dtype),
            max_steps=_count_like(count, run.rules.max_steps),
            max_total_steps=_count_like(count, run.rules.max_total_steps or 0),
        )
        self.carry = loop.finish(loop.examine(self.carry, put_by_mask))
        # Where the last good state is: (the input of the chunk that reached it, without its
        # row and point buffers, and its n_done). The walk's first state counts as good even
        # off the level set (a resumed walk).
        self.good_source = (unbuffered(self.carry), 0)

    def absorb(self, out: Carry, chunk: Callable[[Carry], Carry]) -> bool:
        """Take a chunk's output: rows, points, host records, the stop. True when the walk ended.

        Args:
            out: the carry the chunk returned for the input :attr:`carry`.
            chunk: the chunk that was run, to :meth:`replay` it if the walk stopped off the
                level set.

        Returns:
            Whether the walk has ended (then :attr:`result` holds its WalkResult).
        """
        rec = self.run.recorder
        head = to_host(
            out.code,
            out.n_rows,
            out.n_points,
            out.last_rec,
            out.last_kept,
            out.good_at,
            out.n_done,
            *_unstack(out.look),
        )
        code, n_rows, n_points, last_rec, last_kept, good_at, n_done = (
            int(round(h)) for h in head[:7]
        )
        v = host_values(head[7:])
        if good_at == n_done:
            self.good_source = (unbuffered(out), 0)
        elif good_at >= 0:
            self.good_source = (unbuffered(self.carry), good_at)
        if n_rows:
            rec.rows.extend(row_of(r) for r in to_numpy(out.rows[:n_rows]).tolist())
            rec.last_recorded = last_rec
        if n_points:
            rec.points.extend(out.points[i] for i in range(n_points))
            rec.last_kept = last_kept
        reason = reason_of(code)
        state = out.state
        n_pred = int(v["n_pred"])
        if self.loop.host_records and v["on"] and not v["nonfinite"] and rec.due(n_pred):
            self.paused = out  # where a metric or the callback that raises leaves the walk
            row = rec.record(state)
            if rec.callback is not None and reason not in BEFORE_CALLBACK and rec.callback(row):
                reason = "callback"
            self.paused = None
        if reason is not None:
            self.done = True
            self.carry = out  # stopped: a batched loop finds its cond false and leaves it be
            good = state if v["on"] and not v["nonfinite"] else self.replay(chunk)
            self.result = self.run.result(good, state, reason, v)
            return True
        xp = namespace(state.theta)
        zero = xp.zeros_like(out.n_done)
        self.carry = out._replace(
            good_at=zero - 1,
            pause=xp.zeros_like(out.pause),
            n_done=zero,
            n_rows=zero,
            n_points=zero,
            last_rec=zero + rec.last_recorded,
        )
        return False

    def replay(self, chunk: Callable[[Carry], Carry]) -> WalkState:
        """The last good state, from the chunk input that reached it: that chunk run again up
        to the good state's step (once, at the end of a walk that stopped off the level set;
        its evaluations are not counted in ``n_grad_evals``, its rows and points are dropped)."""
        carry, steps = self.good_source
        if steps == 0:
            return carry.state
        xp = namespace(carry.n_limit)
        buffers = {
            "rows": xp.zeros_like(self.carry.rows),
            "points": xp.zeros_like(self.carry.points),
        }
        out = chunk(carry._replace(n_limit=_count_like(carry.n_limit, steps), **buffers))
        check_replayed(host_values(to_host(*_unstack(out.look))), "the chunk")
        return out.state

    def so_far(self, chunk: Callable[[Carry], Carry], error: BaseException) -> Any:
        """The walk up to an exception that ended it, as a :class:`~manifoldwalk.WalkResult`
        with stop reason ``"error"``: at the record point where a metric or the callback
        raised, else at the end of the last chunk that completed (its last good state
        replayed where that end is off the level set).

        Args:
            chunk: the chunk the walk runs (to replay the last good state).
            error: the exception (named in the message).
        """
        out = self.carry if self.paused is None else self.paused
        v = host_values(to_host(*_unstack(out.look)))
        good = out.state if v["on"] and not v["nonfinite"] else self.replay(chunk)
        return self.run.result(good, out.state, "error", v, error=error)

    def drive(self, chunk: Callable[[Carry], Carry]) -> Any:
        """Run chunks until the walk ends; returns its :class:`~manifoldwalk.WalkResult`.

        Raises:
            Exception: what a chunk (the loss, at compile time or on an interrupt), a metric
                or the callback raised, with the walk so far attached (:meth:`so_far`).
        """
        try:
            while not self.absorb(chunk(self.carry), chunk):
                pass
        except (Exception, KeyboardInterrupt) as err:
            if not self.done:
                keep_partial(err, lambda error: self.so_far(chunk, error))
            raise
        return self.result


def _count_like(count: Array, value: int) -> Array:
    """``value`` as a count array like ``count`` (capped at its dtype's largest value)."""
    largest = int(np.iinfo(to_numpy(count).dtype).max)  # (not every namespace has iinfo)
    return namespace(count).zeros_like(count) + min(int(value), largest)


def _unstack(a: Array) -> list[Array]:
    return [a[i] for i in range(a.shape[0])]


def _zeros_maker(xp: Any, like: Array) -> Callable[[tuple[int, ...], Any], Array]:
    """``zeros(shape, dtype)`` on ``like``'s device."""
    dev = device_of(like)
    if dev is None:
        return lambda shape, dtype: xp.zeros(shape, dtype=dtype)
    return lambda shape, dtype: xp.zeros(shape, dtype=dtype, device=dev)
