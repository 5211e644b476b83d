"""Many walk steps per host synchronisation: the loop body a compiled driver runs on the device.

A *chunk* runs up to K steps without looking at the host. :class:`DeviceLoop` gives its pieces
as pure, branch-free array functions: ``examine`` (the stop rules of
:class:`~manifoldwalk._stops.StopRules`, where the last on-level state was, history rows and
trajectory points written into preallocated buffers) and the loop's ``cond`` and ``body``. The
engine never imports a framework, so the loop itself is run by a problem's ``compile_loop(loop)``
hook, which calls :meth:`DeviceLoop.run` with its framework's ``while_loop`` and a row-writing
primitive (``manifoldwalk_jax`` jit-compiles it around ``jax.lax.while_loop``).
:class:`ChunkHost` is the host's side: it builds each chunk's input, reads what came back (one
copy per chunk), calls the metrics and the callback, and ends the walk with the same result as
the eager driver.

Host-side ``metrics`` and ``callback`` cannot run on the device: when either is given, a chunk
also ends at every point where a history record is due, the host records it there (metrics
included) and calls the callback, and the next chunk goes on from that point.

The last good state (on the level set and finite), which a walk that stops elsewhere returns, is
not copied at every step: a chunk keeps only its step number, and the host, which holds the
input of every chunk, runs that chunk again up to that step (:meth:`~manifoldwalk._chunk_host.ChunkHost.replay`) in the
rare walk that stops off the level set. The chunk is a deterministic function of its input, so
the replay reaches the same state (on a device whose reductions are not bitwise reproducible, a
state the same steps reach within rounding). Copying it at every step would cost a pass over θ
for the rare walk that needs it (measured: docs/performance.md).

With ``steps_per_iteration=M > 1`` each iteration of the ``while_loop`` runs M steps, all but
the first *masked* (:meth:`DeviceLoop.masked_body`: a step where :meth:`DeviceLoop.cond` is
false leaves the carry as it was), so the loop's predicate is read once per M steps; the path is
the same.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from manifoldwalk._array import Array, device_of, namespace
from manifoldwalk._compile_cache import value_key
from manifoldwalk._history import describe_vector
from manifoldwalk._stops import LOOK_KEYS, StopRules
from manifoldwalk.directions import Direction
from manifoldwalk.problem import Problem
from manifoldwalk.schemes import Scheme
from manifoldwalk.step import WalkState, make_step, select

Put = Callable[[Array, Array, Array, Callable[[], Array]], Array]
"""``put(buffer, i, due, make_row) -> buffer``: where the 0-d bool ``due`` holds, ``buffer``
with row ``i`` (a 0-d integer array) replaced by ``make_row()``, else ``buffer`` unchanged.
A compiled loop computes the row only when it is due (``lax.cond`` in JAX)."""

WhileLoop = Callable[[Callable[[Any], Array], Callable[[Any], Any], Any], Any]
"""``while_loop(cond, body, init) -> final`` (the signature of ``jax.lax.while_loop``)."""


class Carry(NamedTuple):
    """What a chunk carries on the device; all fields are arrays.

    Attributes:
        state: the current walk state.
        good_at: ``n_done`` at the last state of this chunk that was on the level set and
            finite (0: the chunk's input state), −1 if none was.
        code: the stop code at ``state`` (0: go on; see :meth:`StopRules.code`).
        pause: ``state`` is a record-due point where the host must record (metrics, callback).
        n_done: steps taken in this chunk.
        n_limit: the most steps this chunk takes (K; fewer when the host replays a chunk).
        last_rec: n_predictor of the last history record (−1: none).
        last_kept: n_predictor of the last trajectory point (−1: none).
        rows: history rows written in this chunk, ``(capacity, len(HISTORY_COLUMNS))``.
        n_rows: rows written.
        points: trajectory points written in this chunk, ``(capacity, n)`` (0 rows when the
            walk keeps no trajectory).
        n_points: points written.
        look: the stop rules' values at ``state`` in :data:`~manifoldwalk._stops.LOOK_KEYS`
            order, in θ's dtype (formed once, at the end of the chunk: :meth:`DeviceLoop.finish`).
        max_steps, max_total_steps: the walk's step budgets, as counts (0 for no
            ``max_total_steps``): values, not constants of the compiled chunk.
    """

    state: WalkState
    good_at: Array
    code: Array
    pause: Array
    n_done: Array
    n_limit: Array
    last_rec: Array
    last_kept: Array
    rows: Array
    n_rows: Array
    points: Array
    n_points: Array
    look: Array
    max_steps: Array
    max_total_steps: Array


class DeviceLoop:
    """The pure pieces of one chunk of at most ``steps`` walk steps.

    Args:
        problem: the problem (traceable by the framework that runs the loop).
        direction: the direction of interest (traceable).
        scheme: the walk's scheme.
        rules: the stop rules.
        record_every: record history every this many predictor steps (on-level points).
        trajectory_every: keep every this-many-th on-level θ (None: none).
        host_records: the host records (metrics or a callback): pause at record-due points
            instead of writing rows on the device.
        steps: K, the most steps per chunk.
        steps_per_iteration: M, the steps one iteration of the ``while_loop`` runs, each
            masked by :meth:`cond` (1: one plain step per iteration).
    """

    def __init__(
        self,
        problem: Problem,
        direction: Direction,
        scheme: Scheme,
        rules: StopRules,
        record_every: int,
        trajectory_every: int | None,
        host_records: bool,
        steps: int,
        steps_per_iteration: int = 1,
    ) -> None:
        self.problem = problem
        self.direction = direction
        self.scheme = scheme
        self.rules = rules
        self.record_every = record_every
        self.trajectory_every = trajectory_every
        self.host_records = host_records
        self.steps = steps
        self.steps_per_iteration = steps_per_iteration
        self.step = make_step(problem, direction, scheme)

    def bound_to(self, problem: Problem) -> DeviceLoop:
        """This loop with another problem (every other setting kept): a batched driver's lane
        evaluates a problem bound to that lane's data.

        Args:
            problem: the problem the new loop's step evaluates.

        Returns:
            A new DeviceLoop.
        """
        return DeviceLoop(
            problem,
            self.direction,
            self.scheme,
            self.rules,
            self.record_every,
            self.trajectory_every,
            self.host_records,
            self.steps,
            self.steps_per_iteration,
        )

    @property
    def row_capacity(self) -> int:
        """Buffer rows a chunk may write: one per distinct due n_predictor, plus a spare slot."""
        return self.steps // self.record_every + 2

    @property
    def point_capacity(self) -> int:
        """Buffer rows for trajectory points a chunk may write (0 without a trajectory)."""
        return self.steps // self.trajectory_every + 2 if self.trajectory_every else 0

    def examine(self, c: Carry, put: Put) -> Carry:
        """Look at ``c.state``: stop code, whether it is good, due history row and trajectory
        point."""
        s = c.state
        xp = namespace(s.theta)
        v = dict(zip(LOOK_KEYS, self.rules.look(s, self.direction), strict=True))
        budgets = {"max_steps": c.max_steps, "max_total_steps": c.max_total_steps}
        code = self.rules.code(v | budgets)
        good_here = v["on"] & ~v["nonfinite"]
        good_at = xp.where(good_here, c.n_done, c.good_at)
        n = s.n_predictor
        due = good_here & (n % self.record_every == 0) & (n != c.last_rec)
        rows, n_rows, last_rec, pause = c.rows, c.n_rows, c.last_rec, xp.zeros_like(c.pause)
        if self.host_records:
            pause = due
        else:
            rows = put(rows, n_rows, due, lambda: describe_vector(self.problem, s))
            n_rows = n_rows + xp.astype(due, n_rows.dtype)
            last_rec = xp.where(due, n, last_rec)
        points, n_points, last_kept = c.points, c.n_points, c.last_kept
        if self.trajectory_every:
            keep = good_here & (n % self.trajectory_every == 0) & (n != last_kept)
            points = put(points, n_points, keep, lambda: s.theta)
            n_points = n_points + xp.astype(keep, n_points.dtype)
            last_kept = xp.where(keep, n, last_kept)
        return c._replace(
            good_at=good_at,
            code=code,
            pause=pause,
            last_rec=last_rec,
            rows=rows,
            n_rows=n_rows,
            points=points,
            n_points=n_points,
            last_kept=last_kept,
        )

    def finish(self, c: Carry) -> Carry:
        """``c`` with its ``look`` at ``c.state``: what the host reads at the end of a chunk."""
        return c._replace(look=self.rules.packed_look(c.state, self.direction))

    def cond(self, c: Carry) -> Array:
        """Go on while no stop fired, the host is not needed and fewer than ``n_limit`` (at
        most K) steps were taken."""
        return (c.code == 0) & ~c.pause & (c.n_done < c.n_limit)

    def body(self, c: Carry, put: Put, on: bool | None = None) -> Carry:
        """One walk step, then :meth:`examine` the new state.

        ``on`` is the step's branch where the caller knows it on the host (see
        :func:`~manifoldwalk.step.make_step`; a batch whose lanes all take it), else None.
        """
        state = self.step(c.state, on)
        return self.examine(c._replace(state=state, n_done=c.n_done + 1), put)

    def masked_body(self, c: Carry, put: Put, on: bool | None = None) -> Carry:
        """:meth:`body` where :meth:`cond` holds at ``c``; else ``c``'s values, unchanged.

        Branch-free: the step is computed either way and its result selected with ``where``;
        the buffers are not selected (a masked step writes no row: ``put`` sees ``due`` false).
        ``on`` as for :meth:`body` (a masked lane's step is discarded, so only the lanes that
        step need take that branch).
        """
        go = self.cond(c)
        xp = namespace(c.n_done)

        def gated(buffer: Array, i: Array, due: Array, make_row: Callable[[], Array]) -> Array:
            return put(buffer, i, due & go, make_row)

        new = self.body(c, gated, on)
        return Carry(
            *(
                n if name in ("rows", "points") else select(xp, go, n, o)
                for name, n, o in zip(Carry._fields, new, c, strict=True)
            )
        )

    def iteration(self, c: Carry, put: Put) -> Carry:
        """One iteration of the chunk's ``while_loop``: :meth:`body`, then M − 1 masked steps.

        A loop enters an iteration only where :meth:`cond` holds (a batched loop keeps the old
        carry of a lane where it does not), so the first step needs no mask.
        """
        c = self.body(c, put)
        for _ in range(self.steps_per_iteration - 1):
            c = self.masked_body(c, put)
        return c

    def run(self, c: Carry, put: Put, while_loop: WhileLoop) -> Carry:
        """The whole chunk: iterate while :meth:`cond` holds, from an examined carry, then
        :meth:`finish`.

        Every carry a chunk returns is examined at its state; the host examines the first
        one (:class:`ChunkHost`), so a chunk never looks at its entry state again.
        """
        return self.finish(while_loop(self.cond, lambda c: self.iteration(c, put), c))

    def cache_key(self) -> Hashable | None:
        """A hashable description of everything a traced chunk of this loop closes over.

        Two loops with equal keys trace to the same computation (for carries of the same
        shapes and dtypes), so an adapter may reuse one compiled chunk for both. The problem
        counts by identity (a problem must not change once walked); the scheme, direction and
        stop rules (but their step budgets, which the carry holds) by value, field by field,
        with the type of every number (``1`` and ``1.0`` differ) and arrays by dtype, shape
        and bytes; other callables by identity.

        Returns:
            The key, or None where some piece cannot be hashed (then do not cache).
        """
        try:
            key = (
                id(self.problem),
                value_key(self.scheme),
                value_key(self.direction),
                value_key(self.rules.without_budgets()),
                self.record_every,
                self.trajectory_every,
                self.host_records,
                self.steps,
                self.steps_per_iteration,
            )
            hash(key)
        except TypeError:
            return None
        return key


def put_by_mask(buffer: Array, i: Array, due: Array, make_row: Callable[[], Array]) -> Array:
    """A :data:`Put` in array-API operations only (one pass over the buffer; for the host)."""
    xp = namespace(buffer)
    dev = device_of(buffer)
    index = xp.arange(buffer.shape[0]) if dev is None else xp.arange(buffer.shape[0], device=dev)
    hit = (index == i) & due
    return xp.where(hit[:, None], xp.astype(make_row(), buffer.dtype)[None, :], buffer)


def unbuffered(carry: Carry) -> Carry:
    """``carry`` without its row and point buffers (what a replay needs; the trajectory buffer
    can be large)."""
    return carry._replace(rows=None, points=None)
