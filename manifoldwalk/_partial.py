"""Keeping the walk done so far when an exception ends it: the user's loss, a metric or the
callback raised (or the user pressed Ctrl-C) after hours of walking.

The drivers re-raise the exception, with the walk up to its last good point attached as
:data:`ATTRIBUTE` (a :class:`~manifoldwalk.WalkResult` with stop reason ``"error"``) and a note,
shown in the traceback, saying how to get it and continue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ATTRIBUTE = "walk_result"
"""The attribute of an exception raised inside a walk that holds the walk so far."""

BATCH_ATTRIBUTE = "walk_results"
"""The attribute of an exception raised inside a batched walk: each seed's result so far."""


def keep_partial(
    error: BaseException, build: Callable[[BaseException], Any], batched: bool = False
) -> None:
    """Attach what ``build(error)`` gives (the walk so far) to ``error``, with a note saying so.

    Never raises: where the partial result cannot be built (the failing function is needed
    to assemble it) or attached, the note says so and ``error`` goes on as it was.

    Args:
        error: the exception that ended the walk (re-raised by the caller).
        build: assembles the :class:`~manifoldwalk.WalkResult` so far (a list of them, one per
            seed, where ``batched``) from the error (named in its message).
        batched: the walk is a batch of seeds (attached as :data:`BATCH_ATTRIBUTE`).
    """
    name = BATCH_ATTRIBUTE if batched else ATTRIBUTE
    try:
        kept = build(error)
        setattr(error, name, kept)
    except Exception as failure:  # noqa: BLE001 (the original error is what matters)
        _note(
            error,
            f"manifoldwalk: the walk so far could not be kept ({type(failure).__name__}: "
            f"{failure}).",
        )
        return
    if batched:
        what = (
            f"each seed's walk so far is kept as this exception's .{name} (a list of "
            "WalkResults, stop_reason 'error' for the seeds it stopped"
        )
    else:
        what = (
            f"the walk so far ({kept.n_predictor} predictor and {kept.n_corrector} corrector "
            f"steps) is kept as this exception's .{name} (a WalkResult with stop_reason 'error'"
        )
    _note(
        error,
        f"manifoldwalk: {what}, θ the last point on the level set); continue it with "
        f"walk(..., resume_from=err.{name}{'[i]' if batched else ''}).",
    )


def _note(error: BaseException, text: str) -> None:
    """Add ``text`` to the traceback of ``error`` (where its type allows notes)."""
    try:
        error.add_note(text)
    except (AttributeError, TypeError):  # an exception type without notes
        pass
