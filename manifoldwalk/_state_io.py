"""A walk state to and from flat numpy arrays and a JSON-able layout, without pickle.

A :class:`~manifoldwalk.WalkState` is a nest of NamedTuples (the pieces own their states). It
is saved as one array per leaf, keyed by its path (``"predictor/inner/eta"``), and a layout
naming each tuple's type and fields. Loading rebuilds the nest from the layout: known types by
name from the engine's pieces, any other (a piece of the user's own) as a plain NamedTuple of
the saved fields; no code is run from the file.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk.correctors import GradientState, NoState
from manifoldwalk.predictors import DriftState, TangentState
from manifoldwalk.step import WalkState

KNOWN_TYPES = {t.__name__: t for t in (WalkState, TangentState, DriftState, GradientState, NoState)}
"""The state types rebuilt by name on loading."""


def flatten(state: Any, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """A state's leaves as host arrays by path, and its layout.

    Args:
        state: a WalkState (or any nest of NamedTuples of arrays).
        prefix: the path of ``state`` itself ("" for the root).

    Returns:
        ``(arrays, layout)``: ``arrays`` maps each leaf's path to a numpy array; ``layout``
        maps each tuple's path to ``[type name, field names]``.
    """
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, list] = {prefix: [type(state).__name__, list(state._fields)]}
    for name, value in zip(state._fields, state, strict=True):
        path = f"{prefix}/{name}" if prefix else name
        if isinstance(value, tuple):
            more, more_layout = flatten(value, path)
            arrays.update(more)
            layout.update(more_layout)
        else:
            arrays[path] = to_numpy(value)
    return arrays, layout


def unflatten(arrays: dict[str, np.ndarray], layout: dict[str, list], prefix: str = "") -> Any:
    """The state that :func:`flatten` took apart.

    Raises:
        ValueError: a layout that does not match the arrays (a damaged file).
    """
    try:
        type_name, fields = layout[prefix]
        values = []
        for name in fields:
            path = f"{prefix}/{name}" if prefix else name
            values.append(unflatten(arrays, layout, path) if path in layout else arrays[path])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"the saved walk state is damaged at {prefix or 'its root'!r}: {err}"
        ) from err
    cls = KNOWN_TYPES.get(type_name)
    if cls is None or list(cls._fields) != list(fields):
        cls = namedtuple(str(type_name), [str(f) for f in fields])  # a piece of the user's own
    return cls(*values)


def from_flat_fields(items: dict[str, np.ndarray], corrector: str | None) -> WalkState:
    """A state saved by an older version of the engine, whose state was one flat record
    (``eta_p``, ``dir_p``, ``drift``, ...), in today's nested layout.

    Args:
        items: the saved ``state/`` arrays by field name.
        corrector: the saved walk's corrector name (``"newton"`` has no state).
    """
    get = items.get
    pred, pred_norm, dir_p = items["pred"], items["pred_norm"], items["dir_p"]
    cos = get("cos_p")
    if cos is None:  # older still: the cosine is formed from the point as the step forms it
        cos = np.dot(pred, dir_p) / pred_norm if pred_norm != 0 else np.zeros_like(pred_norm)
    zero = np.zeros_like(items["eta_p"])
    tangent = TangentState(
        items["eta_p"],
        dir_p,
        items["has_p"],
        np.asarray(cos),
        items["n_stall"],
        zero,
        np.asarray(False),
    )
    drift = get("drift")
    predictor: Any = tangent
    if drift is not None and np.ndim(drift) == 1:
        restart = np.asarray(items["n_consec_corr"] > 0)
        predictor = DriftState(tangent, drift, get("eta_sq_sum", np.zeros(())), restart)
    if corrector == "newton":
        corr: Any = NoState()
    else:
        corr = GradientState(items["eta_c"], items["dir_c"], items["has_c"])
    names = [f for f in WalkState._fields if f not in ("predictor", "corrector", "n_grad_evals")]
    fields = {k: items[k] for k in names if k != "max_on_dev"}
    fields["max_on_dev"] = items.get("max_on_dev", zero)
    return WalkState(**fields, n_grad_evals=items["n_evals"], predictor=predictor, corrector=corr)


def adopt(template: Any, saved: Any) -> Any:
    """``saved`` fitted to the structure of ``template`` (a fresh state of the pieces a walk
    resumes with): the saved piece states where their types match, the fresh ones where the
    resumed walk uses another piece (e.g. drift compensation turned on or off, where the
    wrapped predictor's state is kept)."""
    if not isinstance(template, tuple):
        return saved
    if type(template).__name__ == type(saved).__name__ and template._fields == saved._fields:
        return type(template)(*(adopt(t, s) for t, s in zip(template, saved, strict=True)))
    if "inner" in template._fields:
        return template._replace(inner=adopt(template.inner, saved))
    if isinstance(saved, tuple) and "inner" in saved._fields:
        return adopt(template, saved.inner)
    return template
