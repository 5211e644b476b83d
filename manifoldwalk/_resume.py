"""Resuming a walk from a saved result: its state in θ0's array type, its level set kept,
a warning where the options would take another path, and a refusal, saying what differs,
of a result the walk cannot continue (another problem, length or dtype; a non-finite state)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from manifoldwalk import _state_io
from manifoldwalk._array import Array, namespace, to_host, to_like, to_numpy
from manifoldwalk._history import check_columns
from manifoldwalk.options import NOISE_FACTOR
from manifoldwalk.problem import Problem, loss_and_grad_of
from manifoldwalk.result import WalkResult
from manifoldwalk.schemes import Scheme
from manifoldwalk.step import WalkState, as_scalar, map_state

PATH_OPTIONS = ("scheme", "corrector", "direction", "drift_gain", "drift_cap")
"""Options that decide a walk's path: a walk resumed with others takes another path."""


def warn_if_the_path_changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> None:
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


LEVEL_SET_OPTIONS = ("level", "rtol", "atol", "tau", "noise")
"""Options that decide the level set and its threshold: a resumed walk keeps the saved state's
(its L0 and absolute τ), whatever is passed now."""


def keep_the_saved_level_set(result: WalkResult, options: dict[str, Any]) -> None:
    """Record the saved walk's ``level``, tolerance and measured noise in a resumed walk's
    ``options`` (its state walks by them), warning where others were passed (``level=None``,
    the default, asks for none)."""
    saved = result.options
    kept = {k: repr(saved[k]) for k in LEVEL_SET_OPTIONS if k in saved}
    if saved.get("level") is None and result.state is not None:  # L0 was L(θ0): say which
        kept["level"] = f"L0 = {float(to_numpy(result.state.level)):.6g}"
    changed = [
        f"{k}={options[k]!r} (kept: {kept[k]})"
        for k in kept
        if k in options and saved[k] != options[k] and not (k == "level" and options[k] is None)
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


POINT_FIELDS = ("theta", "loss", "grad", "grad_sq", "level", "tau")
"""The fields of a saved state that must be finite for a walk to continue from it."""


def check_resumable(result: WalkResult, like: Array) -> None:
    """Refuse, saying what differs, a result that a walk from θ0 ``like`` cannot continue:
    no state, θ of another length or dtype, a state that is not finite (a NaN checkpoint, or
    a walk that stopped on NaN), or a history whose columns differ in length.

    Raises:
        ValueError: naming the problem.
    """
    state = result.state
    if state is None:
        raise ValueError("resume_from: this result holds no state to resume from.")
    shape = tuple(np.shape(state.theta))
    if shape != tuple(like.shape):
        raise ValueError(
            f"resume_from: the result's θ has shape {shape} but θ0 has shape "
            f"{tuple(like.shape)}; resume with the problem and θ0 of the walk that saved it."
        )
    saved, now = np.asarray(to_numpy(state.theta)).dtype, np.asarray(to_numpy(like[:1])).dtype
    if saved != now:  # its level set and threshold were walked in the saved dtype
        raise ValueError(
            f"resume_from: the result was walked in {saved} but θ0 is {now}; resume with a θ0 "
            f"in {saved} (the dtype of the walk that saved it), or start a new walk from "
            "result.theta to walk in another dtype."
        )
    for name in POINT_FIELDS:
        if not np.all(np.isfinite(np.asarray(to_numpy(getattr(state, name)), dtype=float))):
            raise ValueError(
                f"resume_from: the result's saved state holds NaN or inf in {name} (stop "
                f"reason {result.stop_reason!r}): there is no finite point to continue from. "
                "Start a new walk from the result's last point on the level set, result.theta."
            )
    check_columns(result.history, "resume_from: the result's history")


def check_same_problem(problem: Problem, state: WalkState, result: WalkResult) -> None:
    """Refuse a result of another problem: L at its saved θ, evaluated now, must be the loss
    the saved walk recorded there, within the saved level tolerance (and the loss's measured
    noise); a result of another problem, data or level set fails this.

    Args:
        problem: the problem the walk is given.
        state: the restored state (in θ0's array type).
        result: the result it came from (for its recorded noise).

    Raises:
        ValueError: naming both losses and the allowed difference.
    """
    loss, _ = loss_and_grad_of(problem)(state.theta)
    now, saved, level, tau = to_host(
        as_scalar(loss, state.theta), state.loss, state.level, state.tau
    )
    noise = result.options.get("noise")
    eps = float(np.finfo(np.asarray(to_numpy(state.theta[:1])).dtype).eps)
    allowed = (
        math.sqrt(tau)
        + (NOISE_FACTOR * noise if isinstance(noise, int | float) else 0.0)
        + 64 * eps * abs(saved)
    )
    if not abs(now - saved) <= allowed:
        raise ValueError(
            f"resume_from: the result is not a walk of this problem: at its saved θ the saved "
            f"walk had L = {saved:.10g} (on the level set L0 = {level:.10g}) but this problem "
            f"gives L = {now:.10g} there (they may differ by {allowed:.3g}). Resume with the "
            "problem (model, data, loss) of the walk that saved it."
        )


def restore_state(result: WalkResult, like: Array, scheme: Scheme) -> WalkState:
    """A saved state moved into θ0's array type, device and dtype, fitted to ``scheme``'s
    pieces (a piece the saved walk did not use starts afresh).

    Raises:
        ValueError: the result cannot be continued from θ0 (:func:`check_resumable`).
    """
    check_resumable(result, like)
    xp = namespace(like)

    def moved(value: Any) -> Array:
        value = np.asarray(value) if not hasattr(value, "__array_namespace__") else value
        dtype = like.dtype if np.issubdtype(np.asarray(value).dtype, np.floating) else None
        return to_like(xp, value, like, dtype)

    state = map_state(moved, result.state)
    return state._replace(
        predictor=_state_io.adopt(scheme.predictor.init(like), state.predictor),
        corrector=_state_io.adopt(scheme.corrector.init(like), state.corrector),
    )
