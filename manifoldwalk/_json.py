"""Strict JSON (RFC 8259) for every JSON the library writes: no ``NaN`` or ``Infinity``.

A number that is not finite is written as ``null``, and beside it, under the same key with
``_note`` appended, a string that starts with what the number was (``"nan"``, ``"inf"`` or
``"-inf"``), a colon and why::

    {"val_loss": null, "val_loss_note": "nan: not measured (...)"}

In a list of numbers (``"level": [0.1, NaN]``) the note is a list of the same length, ``null``
where the number is finite. A writer may put the note there itself (to say why); otherwise
:func:`encode` writes ``"<kind>: not a finite number"``. :func:`decode` turns a ``null`` that
has such a note back into the float it was, so a round trip gives the values written; a
``null`` without a note stays ``None`` (an absent value). Encoding uses ``allow_nan=False``,
so a non-finite number that escaped :func:`encode` fails loudly instead of writing ``NaN``.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["NOTE", "decode", "dumps", "encode", "loads", "note"]

NOTE = "_note"
"""The suffix of the key that says why a number beside it is ``null``."""

_DEFAULT_REASON = "not a finite number"
_KINDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _bad(value: Any) -> bool:
    """Whether ``value`` is a non-finite float (numpy's float64 included: a float subclass)."""
    return isinstance(value, float) and not math.isfinite(value)


def _kind(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def note(value: float, reason: str) -> str:
    """The note for a non-finite number: ``"<nan|inf|-inf>: <reason>"``.

    Args:
        value: The non-finite number.
        reason: Why it is not finite, in words.

    Returns:
        The note.
    """
    return f"{_kind(value)}: {reason}"


def _given(value: float, text: Any) -> str:
    """The writer's own note when it names the number's kind; otherwise the default note."""
    if isinstance(text, str) and text.split(":", 1)[0].strip() == _kind(value):
        return text
    return note(value, _DEFAULT_REASON)


def _encode_dict(obj: dict) -> dict:
    out: dict = {}
    notes: dict[str, Any] = {}
    for k, v in obj.items():
        key = f"{k}{NOTE}"
        if _bad(v):
            out[k] = None
            notes[key] = _given(v, obj.get(key))
        elif isinstance(v, list | tuple) and any(_bad(e) for e in v):
            given = obj.get(key)
            given = given if isinstance(given, list | tuple) and len(given) == len(v) else None
            out[k] = [None if _bad(e) else encode(e) for e in v]
            notes[key] = [
                _given(e, given[i] if given else None) if _bad(e) else None for i, e in enumerate(v)
            ]
        else:
            out[k] = encode(v)
    out.update(notes)  # a note the writer gave is replaced by the checked one
    return out


def encode(obj: Any) -> Any:
    """A copy of ``obj`` with every non-finite float written as ``None`` and noted beside it.

    Args:
        obj: Dicts, lists, tuples, strings, numbers, booleans and None, nested.

    Returns:
        The same structure (tuples as lists), holding no non-finite float.

    Raises:
        ValueError: A non-finite float that has no key to hold its note (the whole value, or
            a number in a list nested in a list).
    """
    if isinstance(obj, dict):
        return _encode_dict(obj)
    if isinstance(obj, list | tuple):
        if any(_bad(e) for e in obj):
            raise ValueError(
                f"a list holds a non-finite number ({[e for e in obj if _bad(e)][0]}) and no "
                "key to note it beside; put the list in a dict"
            )
        return [encode(e) for e in obj]
    if _bad(obj):
        raise ValueError(f"{obj} is not a finite number and has no key to note it beside")
    return obj


def _from_note(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    return _KINDS.get(text.split(":", 1)[0].strip())


def decode(obj: Any, *, keep_notes: bool = True) -> Any:
    """Turn every noted ``null`` of decoded JSON back into the float it was (see the module).

    Args:
        obj: What :func:`json.loads` gave.
        keep_notes: Keep the ``<key>_note`` entries (False: drop those that noted a number).

    Returns:
        The same structure with the noted numbers restored.
    """
    if isinstance(obj, list):
        return [decode(e, keep_notes=keep_notes) for e in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict = {}
    used: set[str] = set()
    for k, v in obj.items():
        text = obj.get(f"{k}{NOTE}") if isinstance(k, str) else None
        if v is None and _from_note(text) is not None:
            out[k] = _from_note(text)
            used.add(f"{k}{NOTE}")
        elif isinstance(v, list) and isinstance(text, list) and len(text) == len(v):
            restored = [
                _from_note(t) if e is None and _from_note(t) is not None else e
                for e, t in zip(v, text, strict=True)
            ]
            out[k] = [decode(e, keep_notes=keep_notes) for e in restored]
            used.add(f"{k}{NOTE}")
        else:
            out[k] = decode(v, keep_notes=keep_notes)
    if not keep_notes:
        for key in used:
            out.pop(key, None)
    return out


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`encode` (obj) with ``allow_nan=False``.

    Args:
        obj: What to write.
        **kwargs: Passed to :func:`json.dumps` (``indent``, ``sort_keys``...).

    Returns:
        Strict JSON text.

    Raises:
        ValueError: As :func:`encode`, or a non-finite number :func:`encode` did not reach.
    """
    return json.dumps(encode(obj), allow_nan=False, **kwargs)


def loads(text: str | bytes, *, keep_notes: bool = True) -> Any:
    """Parse JSON and restore its noted numbers (:func:`decode`).

    Files written before the library wrote strict JSON hold bare ``NaN``; they are accepted.

    Args:
        text: The JSON text.
        keep_notes: As :func:`decode`.

    Returns:
        The decoded object.

    Raises:
        ValueError: The text is not JSON (``json.JSONDecodeError``, a ValueError).
    """
    return decode(json.loads(text), keep_notes=keep_notes)
