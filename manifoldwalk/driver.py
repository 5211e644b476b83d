"""``walk``: the driver that runs the pure step, records history and checks stops.

The driver is the only place that synchronises with the device. The eager driver copies a
handful of scalars to the host once per step (one transfer) to decide whether to record or
stop; with ``steps_per_sync=K`` a problem's ``compile_loop`` hook runs up to K steps per
synchronisation on the device (:mod:`manifoldwalk._chunked`). Both decide with the same stop
rules (:mod:`manifoldwalk._stops`). Everything else stays in θ0's array type and device.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from manifoldwalk._array import (
    Array,
    copy_array,
    default_dtype,
    device_of,
    host_list,
    namespace,
    safe_divide,
    to_host,
    to_numpy,
    zero_count,
)
from manifoldwalk._checks import is_count
from manifoldwalk._chunked import ChunkHost, DeviceLoop, check_replayed
from manifoldwalk._compile_cache import step_cache_of, step_key
from manifoldwalk.correctors import Corrector
from manifoldwalk.directions import Direction, MinimiseReg, TowardTarget, as_direction
from manifoldwalk._history import COUNT_COLUMNS, HISTORY_COLUMNS, describe
from manifoldwalk.problem import Problem, ProblemError, check_theta, validate_problem
from manifoldwalk.result import STOP_REASONS, WalkResult
from manifoldwalk.schemes import Scheme, get_scheme
from manifoldwalk.step import (
    PointData,
    WalkState,
    as_scalar,
    fit_drift,
    init_state,
    make_evaluate,
    make_step,
)
from manifoldwalk.step_sizes import StepRule
from manifoldwalk._stops import BEFORE_CALLBACK, StopRules, host_values

__all__ = ["HISTORY_COLUMNS", "PreparedWalk", "describe", "prepare_walk", "walk"]

NO_RECORDS = 2**31 - 1
"""The record interval that ``record_every=None`` stands for: the largest 32-bit count (JAX's
default integer), so that n_predictor is a multiple of it only at the start (0) of any walk."""


def walk(
    problem: Problem,
    theta0: Array,
    *,
    scheme: str | Scheme = "default",
    corrector: str | Corrector | None = None,
    direction: Direction | Callable[[Array], Array] | None = None,
    predictor_step: StepRule | None = None,
    eta_min: float | None = None,
    eta_max: float | None = None,
    eta_c: float | None = None,
    level: float | None = None,
    tau: float = 1e-10,
    tau_relative: bool = False,
    max_steps: int = 20_000,
    max_total_steps: int | None = None,
    kkt_tol: float = 1e-6,
    stall_patience: int = 100,
    max_corrector_steps: int | None = None,
    singular_tol: float = 1e-12,
    record_every: int | None = 1,
    trajectory_every: int | None = None,
    metrics: Mapping[str, Callable[[Array], float]] | None = None,
    callback: Callable[[dict[str, float]], bool | None] | None = None,
    resume_from: WalkResult | None = None,
    compile_step: bool = True,
    steps_per_sync: int | None = None,
    steps_per_iteration: int = 1,
) -> WalkResult:
    """Walk the level set {θ : L(θ) = L0} of ``problem`` from ``theta0``.

    At a point where (L − L0)² ≤ τ the walk takes a predictor step along the part of
    the direction of interest orthogonal to ∇L (by default −∇R: lower the
    regulariser); elsewhere it takes corrector steps back to the level set.

    Args:
        problem: a :class:`~manifoldwalk.Problem` (``make_problem`` builds one from callables).
        theta0: the start, a finite 1-D float array (numpy, torch or jax); the walk
            keeps its array type, dtype and device.
        scheme: ``"default"`` (Newton corrector, fast step rule), ``"compensated"`` (the
            default with a drift-compensated predictor: the fewest evaluations on trained
            nets), ``"paper"`` (the paper's scheme as written), ``"authors"`` (the authors'
            code: constant corrector step) or a :class:`~manifoldwalk.Scheme`.
        corrector: override the scheme's corrector: ``"paper"``, ``"authors"``, ``"newton"``
            or a Corrector object.
        direction: the direction of interest: None (minimise R), ``RandomWalk(seed)``,
            ``TowardTarget(θ*)``, or any callable θ ↦ r.
        predictor_step: override the scheme's predictor step-size rule.
        eta_min, eta_max: the predictor's step floor and ceiling.
        eta_c: the gradient corrector's initial (``"authors"``: constant) step size.
        level: walk {L = level} (the paper's ε) instead of {L = L(θ0)}; θ0 is first
            projected onto it with Newton steps.
        tau: the deviation threshold on (L − L0)² (the paper's 1e-10).
        tau_relative: read ``tau`` relative to L0², i.e. as a threshold on ((L − L0)/L0)².
        max_steps: predictor-step budget (the authors' code counts these).
        max_total_steps: budget on predictor plus corrector steps (the paper's text).
        kkt_tol: stop as stationary when ‖r − proj_∇L r‖/‖r‖ ≤ kkt_tol, which for r = −∇R
            is the KKT residual ‖∇R + λ∇L‖/‖∇R‖ (both the 180° and the 0° case).
        stall_patience: stop as stalled after this many predictor reversals at the step floor
            (counted over the whole walk).
        max_corrector_steps: consecutive corrector steps before stopping as failed
            (default from the scheme).
        singular_tol: stop (or refuse to start) where ‖∇L‖ ≤ this: the level set is singular.
        record_every: record history every this many predictor steps (at on-level points).
            None: no records along the way, only the start and the point the walk returns
            (each record costs several passes over θ and a host synchronisation: on the
            eager PyTorch nets of ``benchmarks/history_cost.py``, ``record_every=1`` made a
            step 6–26 % slower than None).
        trajectory_every: keep every this-many-th on-level θ in ``trajectory`` (None: none).
        metrics: extra history columns, name ↦ callable θ ↦ float (e.g. test loss); they run
            only when a record is taken. Names must differ from :data:`HISTORY_COLUMNS`.
        callback: called with each history record (a dict); returning True stops the walk.
        resume_from: a result (possibly loaded from a file) whose state the walk continues
            from, on the same path the uninterrupted walk would have taken, with history
            and trajectory appended. Pass the same options as the original walk (another
            scheme, corrector or direction warns: the path would differ). The saved walk's
            level set and threshold are kept (``level``, ``tau`` and ``tau_relative`` passed
            otherwise warn and are ignored). A path is not a result: load it with
            ``WalkResult.load(path)``.
        compile_step: let the problem compile the step where it offers to (a Problem's
            optional ``compile_step(fn) -> fn``; the JAX adapter jit-compiles it), with the
            stop rules' look at the new state fused in, so that the host copies one small
            vector per step; a hook that can (JAX's) writes each new state into the old one's
            memory. Skipped for directions that are not traceable (``RandomWalk`` with its
            host sampler).
        steps_per_sync: None (default): the eager driver, one host synchronisation per step.
            K ≥ 1: the compiled driver, up to K steps per synchronisation, through the
            problem's ``compile_loop`` hook (JAX problems of ``manifoldwalk_jax``; wrap an
            analytic problem on jax arrays with ``manifoldwalk_jax.compiled``). Same path,
            history, stop reasons and result as the eager driver; with ``metrics`` or a
            ``callback`` a chunk also ends at each record-due point, so they run on the host.
        steps_per_iteration: M ≥ 1, with ``steps_per_sync``: each iteration of the compiled
            loop runs M masked steps (a step after a stop, a record pause or the chunk's K
            steps leaves the state as it was), so the loop's predicate is read once per M
            steps; the same path. Meant for small nets on a GPU (where XLA reads a while
            predicate on the host); 1 (default) is one step per iteration. The PyTorch
            chunk masks every step already; compiled, its graph holds M steps (where M = 1,
            K steps up to 4, else the largest divisor of K up to 4), called several times
            per chunk: a small graph compiles much faster.

    Returns:
        A :class:`~manifoldwalk.WalkResult`.

    Raises:
        ProblemError: a bad θ0 or Problem, a start where ∇L vanishes, or a level that
            cannot be reached from θ0.
        ValueError: an unknown scheme or corrector name, or a bad option; ``steps_per_sync``
            for a problem without a ``compile_loop`` hook or a direction that cannot be traced;
            ``steps_per_iteration`` other than 1 without ``steps_per_sync``; a metric named
            like a built-in history column.
        TypeError: an argument of the wrong type (``metrics`` not a dict of callables,
            ``resume_from`` not a WalkResult, ``predictor_step`` not a step-size rule, ...).
    """
    _check_steps_per_iteration(steps_per_iteration)
    if steps_per_sync is None and steps_per_iteration != 1:
        raise ValueError(
            f"steps_per_iteration={steps_per_iteration!r} needs steps_per_sync (the compiled "
            "driver); the eager driver takes one step per host synchronisation."
        )
    run = prepare_walk(
        problem,
        theta0,
        scheme=scheme,
        corrector=corrector,
        direction=direction,
        predictor_step=predictor_step,
        eta_min=eta_min,
        eta_max=eta_max,
        eta_c=eta_c,
        level=level,
        tau=tau,
        tau_relative=tau_relative,
        max_steps=max_steps,
        max_total_steps=max_total_steps,
        kkt_tol=kkt_tol,
        stall_patience=stall_patience,
        max_corrector_steps=max_corrector_steps,
        singular_tol=singular_tol,
        record_every=record_every,
        trajectory_every=trajectory_every,
        metrics=metrics,
        callback=callback,
        resume_from=resume_from,
        compile_step=compile_step,
    )
    if steps_per_sync is None:
        return run.until_stop()
    return run.run_chunked(steps_per_sync, steps_per_iteration)


def prepare_walk(
    problem: Problem,
    theta0: Array,
    *,
    scheme: str | Scheme = "default",
    corrector: str | Corrector | None = None,
    direction: Direction | Callable[[Array], Array] | None = None,
    predictor_step: StepRule | None = None,
    eta_min: float | None = None,
    eta_max: float | None = None,
    eta_c: float | None = None,
    level: float | None = None,
    tau: float = 1e-10,
    tau_relative: bool = False,
    max_steps: int = 20_000,
    max_total_steps: int | None = None,
    kkt_tol: float = 1e-6,
    stall_patience: int = 100,
    max_corrector_steps: int | None = None,
    singular_tol: float = 1e-12,
    record_every: int | None = 1,
    trajectory_every: int | None = None,
    metrics: Mapping[str, Callable[[Array], float]] | None = None,
    callback: Callable[[dict[str, float]], bool | None] | None = None,
    resume_from: WalkResult | None = None,
    compile_step: bool = True,
) -> PreparedWalk:
    """Check the options, evaluate the start and build a walk without running it.

    :func:`walk` is ``prepare_walk(...)`` followed by :meth:`PreparedWalk.until_stop` (or
    :meth:`PreparedWalk.run_chunked`); drivers that run several walks together (e.g.
    ``manifoldwalk_jax.walk_batch``) prepare each and drive their :meth:`PreparedWalk.host`.

    Args:
        problem, theta0, scheme, ...: as for :func:`walk`.

    Returns:
        A :class:`PreparedWalk`.

    Raises:
        ProblemError, ValueError, TypeError: as :func:`walk`.
    """
    _check_options(max_steps, max_total_steps, record_every, trajectory_every, tau, kkt_tol)
    _check_arguments(metrics, callback, resume_from, level, stall_patience)
    scheme = get_scheme(
        scheme,
        corrector=corrector,
        predictor_step=predictor_step,
        eta_min=eta_min,
        eta_max=eta_max,
        eta_c=eta_c,
        max_corrector_steps=max_corrector_steps,
    )
    direction = as_direction(direction)
    check_theta(theta0)
    validate_problem(problem, theta0)
    _check_direction(direction, problem, theta0)
    options = {
        "scheme": scheme.name,
        "corrector": scheme.corrector.name,
        "direction": type(direction).__name__,
        "level": level,
        "tau": tau,
        "tau_relative": tau_relative,
        "max_steps": max_steps,
        "max_total_steps": max_total_steps,
        "kkt_tol": kkt_tol,
        "stall_patience": stall_patience,
        "max_corrector_steps": scheme.max_corrector_steps,
        "drift_gain": scheme.drift_gain,
        "drift_cap": scheme.drift_cap,
        "record_every": record_every,
        "trajectory_every": trajectory_every,
    }
    if resume_from is not None:
        _warn_if_the_path_changes(resume_from.options, options)
        _keep_the_saved_level_set(resume_from, options)
        state = fit_drift(_restore_state(resume_from, theta0), scheme)
    else:
        state = _start(problem, direction, scheme, theta0, level, tau, tau_relative, singular_tol)
    interval = NO_RECORDS if record_every is None else record_every
    recorder = _Recorder(problem, interval, trajectory_every, metrics or {}, callback)
    if resume_from is not None:
        recorder.extend(resume_from)
    rules = StopRules(
        optimises=bool(direction.optimises),
        has_reached=callable(getattr(direction, "reached", None)),
        kkt_tol=kkt_tol,
        stall_patience=stall_patience,
        max_steps=max_steps,
        max_total_steps=max_total_steps,
        max_corrector_steps=scheme.max_corrector_steps,
        singular_tol=singular_tol,
    )
    return PreparedWalk(problem, direction, scheme, rules, recorder, state, options, compile_step)


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


def _advance(
    problem: Problem, direction: Direction, scheme: Scheme, rules: StopRules, wanted: bool
) -> Advance:
    """One step of the eager driver and the host's look at the new state.

    Where the problem has a ``compile_step`` hook (and ``wanted``), the step and the stop
    rules' look, packed into one small vector, are compiled together, so that the host copies
    one array per step instead of running the look's dozen small operations itself (1.3 ms of a
    5.5 ms step for JAX on MNIST-FF on a CPU). The compiled function is kept in the problem's
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
    if not (wanted and callable(compile_) and getattr(direction, "traceable", True)):
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
    return WalkState(*(copy_array(x) for x in s))


def _replay(advance: Advance, anchor: WalkState, steps: int) -> WalkState:
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


def _check_steps_per_iteration(m: Any) -> None:
    if not is_count(m):
        raise ValueError(f"steps_per_iteration must be a positive integer, got {m!r}.")


def _check_options(max_steps, max_total_steps, record_every, trajectory_every, tau, kkt_tol):
    if not is_count(max_steps):
        raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}.")
    for name, value in (
        ("max_total_steps", max_total_steps),
        ("record_every", record_every),
        ("trajectory_every", trajectory_every),
    ):
        if value is not None and not is_count(value):
            raise ValueError(f"{name} must be None or a positive integer, got {value!r}.")
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau!r}.")
    if not kkt_tol >= 0:
        raise ValueError(f"kkt_tol must be non-negative, got {kkt_tol!r}.")


def _check_arguments(metrics, callback, resume_from, level, stall_patience) -> None:
    """Refuse mistyped walk arguments by name, before they fail deep inside the walk."""
    if metrics is not None:
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f"metrics must be a dict of name -> callable θ -> float, got "
                f"{type(metrics).__name__}; e.g. metrics={{'test_loss': f}}."
            )
        for name, fn in metrics.items():
            if not isinstance(name, str):
                raise TypeError(f"metrics: names must be strings, got {name!r}.")
            if name in HISTORY_COLUMNS:
                raise ValueError(
                    f"metrics: the name {name!r} is a built-in history column and would "
                    f"overwrite it; rename the metric. Reserved: {', '.join(HISTORY_COLUMNS)}."
                )
            if not callable(fn):
                raise TypeError(
                    f"metrics[{name!r}] must be a callable θ -> float, got {type(fn).__name__}."
                )
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be None or callable, got {type(callback).__name__}.")
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
    if not is_count(stall_patience):
        raise ValueError(f"stall_patience must be a positive integer, got {stall_patience!r}.")


def _check_direction(direction: Direction, problem: Problem, theta0: Array) -> None:
    """Evaluate the direction once at θ0 and check its shape (a wrong one fails, or worse
    broadcasts silently, inside the step)."""
    target = getattr(direction, "target", None) if isinstance(direction, TowardTarget) else None
    if target is not None and tuple(np.shape(target)) != tuple(theta0.shape):
        raise ProblemError(
            f"TowardTarget's target has shape {tuple(np.shape(target))} but θ0 has "
            f"shape {tuple(theta0.shape)}; give a target point of θ0's shape."
        )
    r = direction(theta0, problem.reg_grad(theta0), zero_count(theta0))
    shape = getattr(r, "shape", None)
    if shape is None or tuple(shape) != tuple(theta0.shape):
        got = f"a {type(r).__name__}" if shape is None else f"shape {tuple(shape)}"
        raise ProblemError(
            f"the direction {type(direction).__name__} must return an array of θ's shape "
            f"{tuple(theta0.shape)}, got {got}."
        )


def _start(problem, direction, scheme, theta0, level, tau, tau_relative, singular_tol) -> WalkState:
    """Evaluate θ0, project it onto {L = level} if a level is given, and build the state."""
    xp = namespace(theta0)
    evaluate = make_evaluate(problem, direction)
    zero = zero_count(theta0)
    point = evaluate(theta0, zero)
    reg0 = as_scalar(problem.reg(theta0), theta0)
    loss0, gnorm0, reg0, stat0 = to_host(
        point.loss, xp.sqrt(point.grad_sq), reg0, point.stationarity
    )
    if not (np.isfinite(loss0) and np.isfinite(gnorm0) and np.isfinite(stat0)):
        which = _what_is_not_finite(problem, direction, theta0, point)
        raise ProblemError(f"{which} at θ0 holds NaN or inf (L = {loss0}).")
    if not np.isfinite(reg0):
        raise ProblemError(f"the regulariser at θ0 is not finite (R = {reg0}).")
    if gnorm0 <= singular_tol:
        raise ProblemError(
            f"‖∇L(θ0)‖ = {gnorm0:.3g} vanishes: θ0 is a critical point of L (an exact minimum?) "
            "and the level set is singular there, so there is no tangent space to walk in. "
            "Start from a point with L slightly above its minimum (e.g. stop training earlier)."
        )
    target = loss0 if level is None else float(level)
    tau_abs = tau * target**2 if tau_relative else tau
    theta, n_evals = theta0, 1
    if level is not None:
        theta, point, n_evals = _project(evaluate, theta0, point, target, tau_abs, singular_tol)
    return init_state(problem, direction, scheme, theta, target, tau_abs, n_evals, point)


def _project(evaluate, theta, point: PointData, level: float, tau: float, singular_tol: float):
    """Newton steps from θ onto {L = level} until (L − level)² ≤ τ."""
    xp = namespace(theta)
    zero = zero_count(theta)
    for n_evals in range(1, 101):
        loss, gnorm = to_host(point.loss, xp.sqrt(point.grad_sq))
        if (loss - level) ** 2 <= tau:
            return theta, point, n_evals
        if not (np.isfinite(loss) and gnorm > singular_tol):
            break
        theta = theta - safe_divide(xp, point.loss - level, point.grad_sq) * point.grad
        point = evaluate(theta, zero)
    raise ProblemError(
        f"could not project θ0 onto the level set {{L = {level}}}: after {n_evals} Newton steps "
        f"L = {loss:.6g}, ‖∇L‖ = {gnorm:.3g}. Is the level reachable from θ0 (above the "
        "minimum of L, below where ∇L vanishes)?"
    )


PATH_OPTIONS = ("scheme", "corrector", "direction", "drift_gain", "drift_cap")
"""Options that decide a walk's path: a walk resumed with others takes another path."""


def _warn_if_the_path_changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """Warn where a resumed walk's options differ from the saved result's in a way that
    changes its path (a longer budget does not; another scheme does)."""
    changed = [
        f"{k}={saved[k]!r} -> {now[k]!r}"
        for k in PATH_OPTIONS
        if k in saved and k in now and saved[k] != now[k]
    ]
    if changed:
        warnings.warn(
            f"resume_from: the result was walked with other options ({', '.join(changed)}); "
            "the resumed walk will not take the path the uninterrupted walk would have. Pass "
            "the options of the walk that saved it to continue that walk.",
            UserWarning,
            stacklevel=4,
        )


LEVEL_SET_OPTIONS = ("level", "tau", "tau_relative")
"""Options that decide the level set and its threshold: a resumed walk keeps the saved state's
(its L0 and absolute τ), whatever is passed now."""


def _keep_the_saved_level_set(result: WalkResult, options: dict[str, Any]) -> None:
    """Record the saved walk's ``level``, ``tau`` and ``tau_relative`` in a resumed walk's
    ``options`` (its state walks by them), warning where others were passed (``level=None``,
    the default, asks for none)."""
    saved = result.options
    kept = {k: repr(saved[k]) for k in LEVEL_SET_OPTIONS if k in saved}
    if saved.get("level") is None and result.state is not None:  # L0 was L(θ0): say which
        kept["level"] = f"L0 = {float(to_numpy(result.state.level)):.6g}"
    changed = [
        f"{k}={options[k]!r} (kept: {kept[k]})"
        for k in kept
        if saved[k] != options[k] and not (k == "level" and options[k] is None)
    ]
    if changed:
        warnings.warn(
            f"resume_from: the resumed walk stays on the saved walk's level set with its "
            f"threshold; ignored: {', '.join(changed)}. Start a new walk from the result's θ "
            "to walk another level set or threshold.",
            UserWarning,
            stacklevel=4,
        )
    options.update({k: saved[k] for k in kept})


def _restore_state(result: WalkResult, like: Array) -> WalkState:
    """A saved state moved into θ0's array type, device and dtype."""
    if result.state is None:
        raise ValueError("resume_from: this result holds no state to resume from.")
    shape = tuple(np.shape(result.state.theta))
    if shape != tuple(like.shape):
        raise ValueError(
            f"resume_from: the result's θ has shape {shape} but θ0 has shape "
            f"{tuple(like.shape)}; resume with the problem and θ0 of the walk that saved it."
        )
    xp = namespace(like)
    fields = {}
    for name, value in result.state._asdict().items():
        value = np.asarray(value) if not hasattr(value, "__array_namespace__") else value
        dtype = like.dtype if np.issubdtype(np.asarray(value).dtype, np.floating) else None
        array = _to_like(xp, value, like, dtype)
        fields[name] = array
    return WalkState(**fields)


def _to_like(xp, value, like, dtype):
    """``value`` (any array) copied into ``like``'s namespace and device, in ``dtype``."""
    host = to_numpy(value)
    if dtype is None:
        dtype = xp.bool if host.dtype == np.dtype(bool) else default_dtype(xp, "integral")
    dev = device_of(like)
    return (
        xp.asarray(host, dtype=dtype) if dev is None else xp.asarray(host, dtype=dtype, device=dev)
    )


class _Recorder:
    """Keeps the history columns and the trajectory; calls metrics and the callback."""

    def __init__(self, problem, record_every, trajectory_every, metrics, callback):
        self.problem = problem
        self.record_every = record_every
        self.trajectory_every = trajectory_every
        self.metrics = dict(metrics)
        self.callback = callback
        self.rows: list[dict[str, float]] = []
        self.points: list[Array] = []
        self.prior_trajectory = None
        self.last_recorded = -1
        self.last_kept = -1

    def extend(self, previous: WalkResult) -> None:
        """Start from a previous result's history and trajectory (resuming)."""
        n = len(next(iter(previous.history.values()), []))
        self.rows = [
            {
                k: int(v[i]) if k in COUNT_COLUMNS else float(v[i])
                for k, v in previous.history.items()
            }
            for i in range(n)
        ]  # counts stay ints, as a fresh walk records them
        if self.rows:
            self.last_recorded = int(self.rows[-1]["n_predictor"])
        self.prior_trajectory = previous.trajectory
        if previous.trajectory is not None and len(previous.trajectory):
            self.last_kept = int(previous.n_predictor)

    def due(self, n_predictor: int) -> bool:
        return n_predictor % self.record_every == 0 and n_predictor != self.last_recorded

    def record(
        self, state: WalkState, own: Callable[[Array], Array] | None = None
    ) -> dict[str, float]:
        """Record ``state``; the metrics get ``own(θ)`` where given (a copy they may keep)."""
        row = describe(self.problem, state)
        theta = state.theta if own is None or not self.metrics else own(state.theta)
        for name, fn in self.metrics.items():
            row[name] = float(fn(theta))
        self.rows.append(row)
        self.last_recorded = int(row["n_predictor"])
        return row

    def keep(
        self, state: WalkState, n_predictor: int, own: Callable[[Array], Array] | None = None
    ) -> None:
        """Keep θ in the trajectory where due (``own(θ)`` where given: a copy)."""
        every = self.trajectory_every
        if every and n_predictor % every == 0 and n_predictor != self.last_kept:
            self.points.append(state.theta if own is None else own(state.theta))
            self.last_kept = n_predictor

    def history(self) -> dict[str, np.ndarray]:
        names = list(HISTORY_COLUMNS) + [m for m in self.metrics if m not in HISTORY_COLUMNS]
        if self.rows:
            names += [k for k in self.rows[0] if k not in names]
        return {k: np.array([row.get(k, np.nan) for row in self.rows]) for k in names}

    def trajectory(self, like: Array) -> Array | None:
        if not self.trajectory_every:
            return self.prior_trajectory
        xp = namespace(like)
        rows = list(self.points)
        if self.prior_trajectory is not None and len(self.prior_trajectory):
            prior = _to_like(xp, self.prior_trajectory, like, like.dtype)
            rows = [prior[i] for i in range(prior.shape[0])] + rows
        if not rows:
            return xp.reshape(xp.zeros_like(like), (0, like.shape[0]))
        return xp.stack(rows)


class PreparedWalk:
    """A walk ready to run: its pieces, stop rules, recorder and starting state.

    Built by :func:`prepare_walk`. Run it once, eagerly (:meth:`until_stop`) or in compiled
    chunks (:meth:`run_chunked`, or :meth:`host` for a driver that runs the chunks itself).

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
        recorder: _Recorder,
        state: WalkState,
        options: dict[str, Any],
        compile_step: bool,
    ) -> None:
        self.problem = problem
        self.direction = direction
        self.scheme = scheme
        self.rules = rules
        self.recorder = recorder
        self.state = state
        self.options = options
        self.compile_step = compile_step

    def until_stop(self) -> WalkResult:
        """Run the eager driver (one host synchronisation per step) to a stop.

        Returns:
            The :class:`~manifoldwalk.WalkResult`.
        """
        rules = self.rules
        advance = _advance(self.problem, self.direction, self.scheme, rules, self.compile_step)
        rec = self.recorder
        # A step that consumes its input (see _advance) is never given the caller's θ0 or
        # resumed state, nor a state whose θ went to the metrics or the trajectory; the last
        # good state is replayed, where the walk ends off it, from an anchor: a copy taken at
        # most ANCHOR_EVERY steps before it (the walk's start to begin with).
        consumes = getattr(advance, "consumes_state", False)
        own = copy_array if consumes else None
        anchor, anchor_at, taken, good_at = self.state, 0, 0, 0
        state = good = copy_state(self.state) if consumes else self.state
        v = rules.host_look(state, self.direction)
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
                    good = _replay(advance, anchor, good_at - anchor_at)
                return self.result(good, state, reason, v)
            if consumes and good is state and taken - anchor_at >= ANCHOR_EVERY:
                anchor, anchor_at = copy_state(state), taken
            state, v = advance(state, v["on"])
            taken += 1

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
            A :class:`~manifoldwalk._chunked.ChunkHost` whose ``loop`` is the
            :class:`~manifoldwalk._chunked.DeviceLoop` to compile.

        Raises:
            ValueError: a bad ``steps_per_sync`` or ``steps_per_iteration``, or a direction
                that cannot be traced.
        """
        _check_steps_per_iteration(steps_per_iteration)
        if not is_count(steps_per_sync):
            raise ValueError(
                f"steps_per_sync must be None or a positive integer, got {steps_per_sync!r}."
            )
        if not getattr(self.direction, "traceable", True):
            raise ValueError(
                f"steps_per_sync: the direction {type(self.direction).__name__} draws on the "
                "host and cannot run inside a compiled loop; give RandomWalk a device sampler "
                "(sampler=...) or leave steps_per_sync=None."
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
                "or leave steps_per_sync=None for the eager driver."
            )
        host = self.host(steps_per_sync, steps_per_iteration=steps_per_iteration)
        return host.drive(compile_loop(host.loop))

    def result(
        self, good: WalkState, last: WalkState, reason: str, v: dict[str, Any]
    ) -> WalkResult:
        """Assemble the result: θ is ``good`` (the last on-level state), ``last`` is kept to resume.

        Args:
            good: the last state on the level set.
            last: the state the walk stopped at.
            reason: the stop reason.
            v: the stop rules' host look at ``last``.

        Returns:
            The :class:`~manifoldwalk.WalkResult`.
        """
        rec = self.recorder
        if rec.last_recorded != int(to_host(good.n_predictor)[0]) or not rec.rows:
            rec.record(good)
        final = describe(rec.problem, good)
        n_pred, n_corr, n_evals, max_dev, max_step = to_host(
            last.n_predictor, last.n_corrector, last.n_evals, last.max_dev, last.max_step
        )
        if reason == "non_finite":  # say which of them
            which = _what_is_not_finite(self.problem, self.direction, last.theta, last)
            message = f"the walk met NaN or inf in {which}; θ is the last point on the level set"
        else:
            message = STOP_REASONS[reason] + _details(reason, final, v, self.rules)
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
            stop_reason=reason,
            message=message,
            history=rec.history(),
            trajectory=rec.trajectory(good.theta),
            state=last,
            options=self.options,
        )


def _what_is_not_finite(
    problem: Problem, direction: Direction, theta: Array, point: PointData | WalkState
) -> str:
    """Which of L, ∇L, ∇R or the direction is NaN or inf at θ, where ``point`` (θ's
    evaluation) failed the finiteness test (looked at once, at the start or the stop: the
    step's look tests only scalars)."""
    xp = namespace(theta)
    loss_ok, grad_ok = to_host(xp.isfinite(point.loss), xp.isfinite(point.grad_sq))
    if not loss_ok:
        return "the loss L"
    if not grad_ok:
        return "the loss's gradient ∇L"
    # the loss is finite: the direction r was not (the look's stationarity test)
    if isinstance(direction, MinimiseReg):
        (reg_grad_ok,) = to_host(xp.all(xp.isfinite(problem.reg_grad(theta))))
        if not reg_grad_ok:
            return "the regulariser's gradient ∇R"
    return f"the direction of interest ({type(direction).__name__})"


def _details(reason: str, final: dict[str, float], v: dict[str, Any], rules: StopRules) -> str:
    if reason == "stationary":
        return f" ({final['kkt']:.3g} ≤ {rules.kkt_tol:g})"
    if reason == "corrector_failed":
        return f" ({int(v['n_consec'])} steps); θ is the last point on the level set"
    if reason == "singular":
        return f" (‖∇L‖ = {v['gnorm']:.3g})"
    return ""
