"""Resuming a walk from a saved result: its state in θ0's array type, its level set kept,
and a warning where the options would take another path."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from manifoldwalk import _state_io
from manifoldwalk._array import Array, namespace, to_like, to_numpy
from manifoldwalk.result import WalkResult
from manifoldwalk.schemes import Scheme
from manifoldwalk.step import WalkState, map_state

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


def restore_state(result: WalkResult, like: Array, scheme: Scheme) -> WalkState:
    """A saved state moved into θ0's array type, device and dtype, fitted to ``scheme``'s
    pieces (a piece the saved walk did not use starts afresh)."""
    if result.state is None:
        raise ValueError("resume_from: this result holds no state to resume from.")
    shape = tuple(np.shape(result.state.theta))
    if shape != tuple(like.shape):
        raise ValueError(
            f"resume_from: the result's θ has shape {shape} but θ0 has shape "
            f"{tuple(like.shape)}; resume with the problem and θ0 of the walk that saved it."
        )
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
