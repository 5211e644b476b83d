"""Reading a saved :class:`~manifoldwalk.WalkResult` file, checked piece by piece.

A result is saved as an ``.npz`` (a zip archive of ``.npy`` arrays, never pickles): ``meta`` (a
JSON string of the scalar fields and options), ``theta``, ``trajectory``, ``history/<column>``
and ``state/<path>``. :func:`read_members` reads the archive without numpy's pickle path and
without allocating more than each member holds; :func:`result_fields` checks what was read and
builds the result's fields. Either raises :class:`Damaged`, naming the problem; the caller adds
the file's name.
"""

from __future__ import annotations

import math
import zipfile
from typing import Any, BinaryIO

import numpy as np

from manifoldwalk import _json, _state_io
from manifoldwalk._history import check_columns
from manifoldwalk.step import WalkState

NUMBER_FIELDS = (
    "level",
    "loss",
    "reg",
    "angle",
    "lam",
    "kkt",
    "max_deviation",
    "max_predictor_step",
    "tolerance",
    "max_relative_deviation",
)
"""Scalar fields that are numbers (a list of numbers for a walk of several constraints)."""

COUNT_FIELDS = ("n_predictor", "n_corrector", "n_grad_evals")
"""Scalar fields that are counts."""

TEXT_FIELDS = ("stop_reason", "message")
"""Scalar fields that are strings."""

SCALAR_FIELDS = NUMBER_FIELDS[:-2] + COUNT_FIELDS + NUMBER_FIELDS[-2:] + TEXT_FIELDS
"""The scalar fields a result saves in ``meta``."""

ADDED_LATER = ("tolerance", "max_relative_deviation")
"""Fields that files saved before they existed lack (read as NaN)."""

_KINDS = "biuf"
"""The dtype kinds an array of a result may have (``meta`` aside, a string)."""

DEFLATE_RATIO = 1100
"""The most a compressed member may expand (deflate's limit is about 1032:1): a member that
claims more is refused, so loading allocates at most this many times the file's size."""


class Damaged(Exception):
    """A saved result file that cannot be read, and why (the caller names the file)."""


def read_members(f: BinaryIO) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive by name (without ``.npy``), checked as they are read.

    Each member's ``.npy`` header is read first: a dtype holding Python objects (a pickle) is
    refused, and so is a member that claims more bytes than it holds, before anything is
    allocated for it.

    Args:
        f: the open file (binary, seekable).

    Returns:
        The arrays, each in memory of its own.

    Raises:
        Damaged: not a zip archive, a member that is not a numeric or string ``.npy`` array,
            a duplicated or truncated member.
    """
    try:
        archive = zipfile.ZipFile(f)
    except zipfile.BadZipFile as err:
        raise Damaged(f"it is not an .npz (zip) archive ({err})") from None
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for info in archive.infolist():
            name = info.filename
            if not name.endswith(".npy") or name[:-4] in arrays:
                raise Damaged(f"its member {name!r} is not a (single) .npy array")
            if info.compress_type != zipfile.ZIP_STORED and (
                info.file_size > DEFLATE_RATIO * info.compress_size + 1024
            ):
                raise Damaged(f"its member {name!r} claims to expand beyond what deflate can")
            with archive.open(info) as member:
                arrays[name[:-4]] = _read_npy(member, name, info.file_size)
    return arrays


def _read_npy(member: BinaryIO, name: str, size: int) -> np.ndarray:
    """One ``.npy`` member of ``size`` bytes, read after its header is checked."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise Damaged(f"its member {name!r} is .npy version {version}, not one numpy saves")
    if dtype.hasobject or dtype.kind not in _KINDS + "U" or dtype.fields is not None:
        raise Damaged(
            f"its member {name!r} has dtype {dtype}: a result holds numbers and its JSON "
            "metadata only (arrays of Python objects, which would be unpickled, are refused)"
        )
    count = math.prod(shape)
    claimed = count * dtype.itemsize
    if claimed > size:
        raise Damaged(f"its member {name!r} claims {claimed} bytes of data in a {size}-byte member")
    data = member.read(claimed)
    if len(data) != claimed or member.read(1):
        raise Damaged(f"its member {name!r} holds another number of bytes than its header says")
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def result_fields(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The keyword arguments of ``WalkResult(...)`` from a saved file's arrays, checked.

    Args:
        arrays: the file's arrays (:func:`read_members`).

    Returns:
        The fields.

    Raises:
        Damaged: naming what is missing, of the wrong type or shape, or inconsistent.
    """
    unknown = [
        k
        for k in arrays
        if k not in ("meta", "theta", "trajectory") and not k.startswith(("history/", "state/"))
    ]
    if "meta" not in arrays or "theta" not in arrays or unknown:
        what = f"the unknown entries {unknown}" if unknown else "no meta/theta entries"
        raise Damaged(f"it is not a saved WalkResult ({what})")
    meta = _meta(arrays["meta"])
    theta = arrays["theta"]
    if theta.ndim != 1 or theta.dtype.kind != "f" or theta.shape[0] == 0:
        raise Damaged(f"its theta has shape {theta.shape} and dtype {theta.dtype}, not 1-D floats")
    if not np.all(np.isfinite(theta)):
        raise Damaged("its theta holds NaN or inf (a walk returns a point on the level set)")
    for k, v in arrays.items():
        if k != "meta" and v.dtype.kind not in _KINDS:
            raise Damaged(f"its array {k!r} has dtype {v.dtype}, not numbers")
    trajectory = arrays.get("trajectory")
    if trajectory is not None and (
        trajectory.ndim != 2
        or trajectory.shape[1] != theta.shape[0]
        or trajectory.dtype.kind != "f"
    ):
        raise Damaged(
            f"its trajectory has shape {trajectory.shape} and dtype {trajectory.dtype}, not rows "
            f"of {theta.shape[0]} floats (θ's length)"
        )
    history = {k[8:]: v for k, v in arrays.items() if k.startswith("history/")}
    try:
        check_columns(history, "its history")
    except ValueError as err:
        raise Damaged(str(err)) from None
    state = _state(
        {k[6:]: v for k, v in arrays.items() if k.startswith("state/")},
        meta.pop("state_layout", None),
        meta["options"].get("corrector"),
        theta.shape[0],
    )
    return {
        "theta": theta,
        "history": history,
        "trajectory": trajectory,
        "state": state,
        **meta,
    }


def _meta(array: np.ndarray) -> dict[str, Any]:
    """The scalar fields, options and state layout from the ``meta`` entry, checked."""
    if array.shape != () or array.dtype.kind != "U":
        raise Damaged(
            f"its meta has shape {array.shape} and dtype {array.dtype}, not a JSON string"
        )
    try:
        meta = _json.loads(str(array), keep_notes=False)
    except ValueError as err:
        raise Damaged(f"its meta is not JSON ({err})") from None
    if not isinstance(meta, dict):
        raise Damaged(f"its meta is a JSON {type(meta).__name__}, not an object")
    for name in ADDED_LATER:  # files saved before these fields were
        meta.setdefault(name, math.nan)
    known = (*SCALAR_FIELDS, "options", "state_layout")
    missing = [k for k in known[:-1] if k not in meta]
    unknown = [k for k in meta if k not in known]
    if missing or unknown:
        raise Damaged(f"its meta lacks the fields {missing} or has the unknown fields {unknown}")
    bad = [k for k in NUMBER_FIELDS if not _is_numbers(meta[k])]
    bad += [k for k in COUNT_FIELDS if not (_is_int(meta[k]) and meta[k] >= 0)]
    bad += [k for k in TEXT_FIELDS if not isinstance(meta[k], str)]
    if not isinstance(meta["options"], dict):
        bad.append("options")
    if bad:
        shown = ", ".join(f"{k}={meta[k]!r:.40}" for k in bad)
        raise Damaged(f"its meta has fields of the wrong type: {shown}")
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_numbers(value: Any) -> bool:
    """A number, or a non-empty list of numbers (one per constraint)."""
    if isinstance(value, list):
        return bool(value) and all(_is_number(v) for v in value)
    return _is_number(value)


_VECTORS = ("theta", "grad", "pred")
_COUNTS = ("n_predictor", "n_corrector", "n_grad_evals", "n_consec_corr")


def _state(items: dict[str, np.ndarray], layout: Any, corrector: Any, n: int) -> WalkState | None:
    """The saved walk state (None where none was saved), checked to be a walk state of θ's
    length."""
    if layout is None and not items:
        return None
    try:
        if layout is not None:
            if not isinstance(layout, dict):
                raise Damaged(f"its state layout is a {type(layout).__name__}, not an object")
            state = _state_io.unflatten(items, layout)
        else:  # a file whose state was one flat record
            state = _state_io.from_flat_fields(items, corrector)
    except (KeyError, TypeError, ValueError) as err:
        raise Damaged(f"its walk state does not rebuild ({type(err).__name__}: {err})") from None
    if not isinstance(state, WalkState):
        raise Damaged(f"its walk state is a {type(state).__name__}, not a WalkState")
    for name, value in zip(WalkState._fields, state, strict=True):
        if name in ("predictor", "corrector"):
            if not isinstance(value, tuple):
                raise Damaged(f"its walk state's {name} is not a piece's state")
            continue
        shape = (n,) if name in _VECTORS else ()
        kinds = "iu" if name in _COUNTS else "f"
        if np.shape(value) != shape or np.asarray(value).dtype.kind not in kinds:
            raise Damaged(
                f"its walk state's {name} has shape {np.shape(value)} and dtype "
                f"{np.asarray(value).dtype}; expected shape {shape} of "
                f"{'integers' if kinds == 'iu' else 'floats'}"
            )
    return state
