"""``walk``: the entry point, and the prepared walk that its drivers run.

:func:`walk` checks the options, evaluates the start (:mod:`manifoldwalk._start`) or restores a
saved state (:mod:`manifoldwalk._resume`), and hands the :class:`PreparedWalk` to a driver
(:mod:`manifoldwalk.drivers`): the eager loop (:mod:`manifoldwalk._eager`) or compiled chunks
(:mod:`manifoldwalk._chunked`). Both decide with the same stop rules (:mod:`manifoldwalk._stops`)
and record through the same :class:`~manifoldwalk._recorder.Recorder`. Everything stays in θ0's
array type and device.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from manifoldwalk import _eager, _resume, _start
from manifoldwalk._array import Array, to_host
from manifoldwalk._checks import LARGEST_COUNT
from manifoldwalk._chunk_host import ChunkHost
from manifoldwalk._chunked import DeviceLoop
from manifoldwalk._history import HISTORY_COLUMNS, describe
from manifoldwalk._recorder import NO_RECORDS, Recorder
from manifoldwalk._stops import StopRules, details
from manifoldwalk.directions import Direction, as_direction, is_traceable, target_test
from manifoldwalk.drivers import Chunked, Eager, as_driver
from manifoldwalk.options import Record, Stop, Tolerance
from manifoldwalk.problem import Problem, check_theta, validate_problem
from manifoldwalk.result import STOP_REASONS, WalkResult
from manifoldwalk.schemes import Scheme, get_scheme
from manifoldwalk.step import WalkState

__all__ = ["HISTORY_COLUMNS", "PreparedWalk", "describe", "prepare_walk", "walk"]


def walk(
    problem: Problem,
    theta0: Array,
    *,
    scheme: str | Scheme = "default",
    direction: Direction | Callable[[Array], Array] | None = None,
    level: float | Sequence[float] | None = None,
    tolerance: Tolerance | None = None,
    stop: Stop = Stop(),
    record: Record = Record(),
    resume_from: WalkResult | None = None,
    driver: Eager | Chunked | None = None,
) -> WalkResult:
    """Walk the level set {θ : L(θ) = L0} of ``problem`` from ``theta0``.

    A problem with k constraints (``losses_and_jacobian``; :func:`manifoldwalk.stack` builds
    one) is walked by :func:`manifoldwalk.walk_constrained`, with ``level`` its k levels.

    At a point where (L − L0)² ≤ τ the walk takes the scheme's predictor step along the part
    of the direction of interest orthogonal to ∇L (by default −∇R: lower the regulariser);
    elsewhere it takes corrector steps back to the level set.

    Args:
        problem: a :class:`~manifoldwalk.Problem` (``make_problem`` builds one from callables).
        theta0: the start, a finite 1-D float array (numpy, torch or jax); the walk keeps its
            array type, dtype and device.
        scheme: ``"default"``, ``"compensated"``, ``"paper"``, ``"authors"`` (see
            docs/schemes.md) or a :class:`~manifoldwalk.Scheme`; change a named one with
            ``get_scheme(name, eta_min=..., corrector=...)`` or ``Scheme.replace``.
        direction: the direction of interest: None (minimise R), ``RandomWalk(seed)``,
            ``TowardTarget(θ*)``, or any callable θ ↦ r.
        level: walk {L = level} (the paper's ε) instead of {L = L(θ0)}; θ0 is first projected
            onto it with Newton steps (k levels for a k-constraint problem).
        tolerance: when a point counts as on the level set (:class:`~manifoldwalk.Tolerance`);
            None: the scheme's (relative to L0 for the library's schemes, with the dtype's
            default, widened to the loss's measured noise where that is larger; the paper's
            absolute τ = 1e-10 for ``"paper"`` and ``"authors"``).
        stop: the budgets and stop tolerances (:class:`~manifoldwalk.Stop`).
        record: the history, trajectory, metrics and callback (:class:`~manifoldwalk.Record`).
        resume_from: a result (possibly loaded with ``WalkResult.load``) whose state the walk
            continues from, on the path the uninterrupted walk would have taken, with history
            and trajectory appended. Pass the options of the original walk (another scheme or
            direction warns: the path would differ); its level set and threshold are kept.
        driver: ``None`` or :class:`~manifoldwalk.Eager` (one host synchronisation per step),
            or :class:`~manifoldwalk.Chunked` (K steps per synchronisation, compiled).

    Returns:
        A :class:`~manifoldwalk.WalkResult`.

    Raises:
        ProblemError: a bad θ0 or Problem (checked once, at θ0: a loss or R that is not a
            real floating scalar, such as a bool, an int, a complex number, a string or a
            list; gradients or a direction of another shape, dtype or array type), a start
            where ∇L vanishes, or a level that cannot be reached from θ0 or held in its dtype.
        ValueError: an unknown scheme; a tolerance whose threshold θ's dtype cannot hold; a
            ``resume_from`` result that this walk cannot continue (its θ of another length or
            dtype, its state holding NaN or inf, its history ragged, or a loss at its θ that
            is not this problem's: a result of another problem or level set); a chunked
            driver for a problem without a ``compile_loop`` hook, a direction that cannot be
            traced, or more ``steps_per_sync`` than a walk counts (2³¹ − 1).
        TypeError: an argument of the wrong type (``stop`` not a Stop, ``resume_from`` not a
            WalkResult, ...).
        Exception: whatever the loss, a metric or the callback raises during the walk (and
            ``KeyboardInterrupt``) is re-raised with the walk so far attached as
            ``err.walk_result``: a WalkResult with stop reason ``"error"`` whose θ is the last
            point on the level set and whose state is where the walk stood, so that
            ``walk(..., resume_from=err.walk_result)`` continues on the path the walk was
            taking (a note in the traceback says so). The chunked driver keeps the walk up to
            the record point where a metric or the callback raised, else up to the end of the
            last chunk that completed.
    """
    from manifoldwalk.multi import is_multi_constraint, walk_constrained  # multi imports walk

    if is_multi_constraint(problem):
        levels = level if level is None or isinstance(level, Sequence) else [level]
        return walk_constrained(
            problem,
            theta0,
            scheme=scheme,
            direction=direction,
            levels=levels,
            tolerance=tolerance,
            stop=stop,
            record=record,
            resume_from=resume_from,
            driver=driver,
        )
    run_with = as_driver(driver)
    run = prepare_walk(
        problem,
        theta0,
        scheme=scheme,
        direction=direction,
        level=level,
        tolerance=tolerance,
        stop=stop,
        record=record,
        resume_from=resume_from,
    )
    return run_with.run(run)


def prepare_walk(
    problem: Problem,
    theta0: Array,
    *,
    scheme: str | Scheme = "default",
    direction: Direction | Callable[[Array], Array] | None = None,
    level: float | None = None,
    tolerance: Tolerance | None = None,
    stop: Stop = Stop(),
    record: Record = Record(),
    resume_from: WalkResult | None = None,
) -> PreparedWalk:
    """Check the options, evaluate the start and build a walk without running it.

    :func:`walk` is ``prepare_walk(...)`` run by a driver; drivers that run several walks
    together (e.g. ``manifoldwalk_jax.walk_batch``) prepare each and drive their
    :meth:`PreparedWalk.host`.

    Args:
        problem, theta0, scheme, ...: as for :func:`walk`.

    Returns:
        A :class:`PreparedWalk`.

    Raises:
        ProblemError, ValueError, TypeError: as :func:`walk`.
    """
    scheme = get_scheme(scheme)
    tolerance = scheme.tolerance if tolerance is None else tolerance
    _check_types(stop=stop, record=record, tolerance=tolerance)
    _check_arguments(resume_from, level)
    direction = as_direction(direction)
    check_theta(theta0)
    validate_problem(problem, theta0)
    _start.check_direction(direction, problem, theta0)
    options = {
        "scheme": scheme.name,
        "corrector": scheme.corrector.name,
        "direction": type(direction).__name__,
        "level": level,
        "rtol": tolerance.rtol,
        "atol": tolerance.atol,
        "tau": tolerance.tau,
        "max_steps": stop.max_steps,
        "max_total_steps": stop.max_total_steps,
        "kkt_tol": stop.kkt_tol,
        "stall_patience": stop.stall_patience,
        "max_corrector_steps": scheme.max_corrector_steps,
        "drift_gain": scheme.drift_gain,
        "drift_cap": scheme.drift_cap,
        "record_every": record.every,
        "trajectory_every": record.trajectory_every,
    }
    if resume_from is not None:
        _resume.warn_if_the_path_changes(resume_from.options, options)
        _resume.keep_the_saved_level_set(resume_from, options)
        state = _resume.restore_state(resume_from, theta0, scheme)
        _resume.check_same_problem(problem, state, resume_from)
    else:
        state, options["noise"] = _start.start(
            problem, direction, scheme, theta0, level, tolerance, stop.singular_tol
        )
    interval = NO_RECORDS if record.every is None else record.every
    recorder = Recorder(problem, interval, record.trajectory_every, record.metrics, record.callback)
    if resume_from is not None:
        recorder.extend(resume_from)
    rules = StopRules(  # counts beyond a walk's count mean "never" (and overflow a device loop)
        optimises=bool(direction.optimises),
        has_reached=target_test(direction) is not None,
        kkt_tol=stop.kkt_tol,
        stall_patience=min(stop.stall_patience, LARGEST_COUNT),
        max_steps=min(stop.max_steps, LARGEST_COUNT),
        max_total_steps=stop.max_total_steps and min(stop.max_total_steps, LARGEST_COUNT),
        max_corrector_steps=min(scheme.max_corrector_steps, LARGEST_COUNT),
        singular_tol=stop.singular_tol,
    )
    return PreparedWalk(problem, direction, scheme, rules, recorder, state, options)


def _check_types(**groups: Any) -> None:
    """Refuse an option group of the wrong type by name (e.g. a dict for ``stop``)."""
    kinds = {"stop": Stop, "record": Record, "tolerance": Tolerance}
    for name, value in groups.items():
        kind = kinds[name]
        if not isinstance(value, kind):
            raise TypeError(
                f"{name} must be a manifoldwalk.{kind.__name__}, got {type(value).__name__} "
                f"{value!r}; e.g. {name}=manifoldwalk.{kind.__name__}(...)."
            )


def _check_arguments(resume_from: Any, level: Any) -> None:
    """Refuse a mistyped ``resume_from`` or ``level`` by name, before it fails deep inside."""
    if resume_from is not None and not isinstance(resume_from, WalkResult):
        hint = (
            f"; load a saved result first: resume_from=mw.WalkResult.load({resume_from!r})"
            if isinstance(resume_from, str | os.PathLike)
            else ""
        )
        raise TypeError(
            f"resume_from must be a WalkResult, got {type(resume_from).__name__}{hint}."
        )
    if level is not None:
        try:  # a string such as "1" would convert: refuse it with the rest
            ok = not isinstance(level, str | bytes | bool) and bool(np.isfinite(float(level)))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise TypeError(f"level must be None or a finite number, got {level!r}.")


class PreparedWalk:
    """A walk ready to run: its pieces, stop rules, recorder and starting state.

    Built by :func:`prepare_walk`. Run it once, by a driver: eagerly (:meth:`until_stop`) or in
    compiled chunks (:meth:`run_chunked`, or :meth:`host` for a driver that runs the chunks
    itself).

    Attributes:
        problem, direction, scheme: the walk's pieces.
        rules: the :class:`~manifoldwalk._stops.StopRules`.
        recorder: keeps the history and trajectory, calls metrics and the callback.
        state: the starting :class:`~manifoldwalk.WalkState`.
        options: the JSON-able options recorded in the result.
    """

    def __init__(
        self,
        problem: Problem,
        direction: Direction,
        scheme: Scheme,
        rules: StopRules,
        recorder: Recorder,
        state: WalkState,
        options: dict[str, Any],
    ) -> None:
        self.problem = problem
        self.direction = direction
        self.scheme = scheme
        self.rules = rules
        self.recorder = recorder
        self.state = state
        self.options = options

    def until_stop(self, compile_step: bool = True) -> WalkResult:
        """Run the eager driver (one host synchronisation per step) to a stop.

        Args:
            compile_step: let the problem compile the step where it offers to.

        Returns:
            The :class:`~manifoldwalk.WalkResult`.
        """
        return _eager.run_eager(self, compile_step)

    def host(
        self, steps_per_sync: int, problem: Problem | None = None, steps_per_iteration: int = 1
    ) -> ChunkHost:
        """The host side of a chunked run of this walk, and its device loop.

        Args:
            steps_per_sync: K, the most steps per chunk (a positive integer).
            problem: the problem the device loop evaluates (default: this walk's; a batched
                driver passes one bound to traced data).
            steps_per_iteration: M, masked steps per iteration of the device loop.

        Returns:
            A :class:`~manifoldwalk._chunk_host.ChunkHost` whose ``loop`` is the
            :class:`~manifoldwalk._chunked.DeviceLoop` to compile.

        Raises:
            ValueError: a bad ``steps_per_sync`` (K ≤ 2³¹ − 1) or ``steps_per_iteration``,
                or a direction that cannot be traced.
        """
        Chunked(steps_per_sync, steps_per_iteration)  # checks K and M
        if steps_per_sync > LARGEST_COUNT:
            raise ValueError(
                f"steps_per_sync={steps_per_sync!r} is more steps than a walk counts (at most "
                f"{LARGEST_COUNT}); pass a K that a chunk's buffers can hold (e.g. 64 to 1024)."
            )
        if not is_traceable(self.direction):
            raise ValueError(
                f"steps_per_sync: the direction {type(self.direction).__name__} draws on the "
                "host and cannot run inside a compiled loop; give RandomWalk a device sampler "
                "(sampler=...) or use the eager driver."
            )
        rec = self.recorder
        loop = DeviceLoop(
            self.problem if problem is None else problem,
            self.direction,
            self.scheme,
            self.rules,
            rec.record_every,
            rec.trajectory_every,
            bool(rec.metrics) or rec.callback is not None,
            int(steps_per_sync),
            int(steps_per_iteration),
        )
        return ChunkHost(self, loop)

    def run_chunked(self, steps_per_sync: int, steps_per_iteration: int = 1) -> WalkResult:
        """Run to a stop with up to K steps per host synchronisation (the compiled driver).

        Args:
            steps_per_sync: K.
            steps_per_iteration: M, masked steps per iteration of the device loop.

        Returns:
            The :class:`~manifoldwalk.WalkResult`, the same as :meth:`until_stop` gives.

        Raises:
            ValueError: the problem has no ``compile_loop`` hook, or as :meth:`host`.
        """
        compile_loop = getattr(self.problem, "compile_loop", None)
        if not callable(compile_loop):
            raise ValueError(
                f"steps_per_sync={steps_per_sync!r} needs a problem with a compile_loop hook, "
                f"and {type(self.problem).__name__} has none: use a manifoldwalk_jax problem "
                "(wrap an analytic problem on jax arrays with manifoldwalk_jax.compiled(...)), "
                "or use the eager driver (driver=None)."
            )
        host = self.host(steps_per_sync, steps_per_iteration=steps_per_iteration)
        return host.drive(compile_loop(host.loop))

    def result(
        self,
        good: WalkState,
        last: WalkState,
        reason: str,
        v: dict[str, Any],
        error: BaseException | None = None,
    ) -> WalkResult:
        """Assemble the result: θ is ``good`` (the last on-level state), ``last`` is kept to resume.

        Args:
            good: the last state on the level set.
            last: the state the walk stopped at.
            reason: the stop reason.
            v: the stop rules' host look at ``last``.
            error: the exception that ended the walk (reason ``"error"``): named in the
                message; the metrics are not called again for the last row.

        Returns:
            The :class:`~manifoldwalk.WalkResult`.
        """
        rec = self.recorder
        if rec.last_recorded != int(to_host(good.n_predictor)[0]) or not rec.rows:
            rec.record(good, with_metrics=error is None)
        final = describe(rec.problem, good)
        n_pred, n_corr, n_evals, max_dev, max_step, max_on, tau, level = to_host(
            last.n_predictor,
            last.n_corrector,
            last.n_grad_evals,
            last.max_dev,
            last.max_step,
            last.max_on_dev,
            last.tau,
            last.level,
        )
        if reason == "non_finite":  # say which of them
            which = _start.what_is_not_finite(self.problem, self.direction, last.theta, last)
            message = f"the walk met NaN or inf in {which}; θ is the last point on the level set"
        elif error is not None:
            message = (
                f"{STOP_REASONS[reason]} ({type(error).__name__}: {error}); θ is the last point "
                "on the level set, and the state the walk stood at is kept to resume from"
            )
        else:
            message = STOP_REASONS[reason] + details(reason, final, v, self.rules)
        return WalkResult(
            theta=good.theta,
            level=float(to_host(good.level)[0]),
            loss=final["loss"],
            reg=final["reg"],
            angle=final["angle"],
            lam=final["lam"],
            kkt=final["kkt"],
            n_predictor=int(n_pred),
            n_corrector=int(n_corr),
            n_grad_evals=int(n_evals),
            max_deviation=max_dev,
            max_predictor_step=max_step,
            tolerance=float(tau) ** 0.5,
            max_relative_deviation=max_on / abs(level) if level else float("inf"),
            stop_reason=reason,
            message=message,
            history=rec.history(),
            trajectory=rec.trajectory(good.theta),
            state=last,
            options=self.options,
        )
