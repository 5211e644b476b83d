"""Strict JSON: no NaN or Infinity is ever written; a non-finite number is null with a note, and
reading restores it (manifoldwalk._json, and WalkResult files, whose metadata is JSON)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk import _json
from manifoldwalk.problems import Circle


def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


def strict_loads(text: str):
    """Python's parser with NaN/Infinity refused (what RFC 8259 readers do)."""
    return json.loads(text, parse_constant=_refuse)


numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-5, 5)
leaves = numbers | st.none() | st.booleans() | st.text(max_size=3)
keys = st.text("abcxyz", min_size=1, max_size=4)  # no key ends in "_note"
values = st.recursive(
    leaves,
    lambda inner: st.dictionaries(keys, inner, max_size=4) | st.lists(numbers, max_size=4),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=5)


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN, tuples as lists."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


@settings(max_examples=150, deadline=None)
@given(documents)
def test_a_round_trip_is_strict_and_gives_back_every_number(doc):
    text = _json.dumps(doc, sort_keys=True)
    strict_loads(text)  # no NaN, Infinity or -Infinity anywhere
    assert _same(_json.loads(text, keep_notes=False), doc)

    # every null written for a number has a note naming what it was
    def check(raw, original):
        if isinstance(original, dict):
            for k, v in original.items():
                if isinstance(v, float) and not math.isfinite(v):
                    assert raw[k] is None
                    kind = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
                    assert raw[f"{k}_note"].split(":")[0] == kind
                elif isinstance(v, dict):
                    check(raw[k], v)

    check(json.loads(text), doc)


def test_a_writers_note_says_why_and_a_wrong_one_is_replaced():
    text = _json.dumps({"v": math.nan, "v_note": "nan: not measured", "w": math.inf, "w_note": "x"})
    raw = strict_loads(text)
    assert raw == {
        "v": None,
        "v_note": "nan: not measured",
        "w": None,
        "w_note": "inf: not a finite number",
    }
    # a null without a note is an absent value and stays None
    assert _json.loads('{"a": null, "b": null, "b_note": "-inf: underflow"}') == {
        "a": None,
        "b": -math.inf,
        "b_note": "-inf: underflow",
    }
    # files written before strict JSON hold bare NaN: still read
    assert math.isnan(_json.loads('{"a": NaN}')["a"])


def test_a_number_with_no_key_to_note_it_beside_is_refused_not_written_as_nan():
    with pytest.raises(ValueError, match="no key"):
        _json.dumps([1.0, math.nan])
    with pytest.raises(ValueError, match="no key"):
        _json.dumps({"a": [[math.nan]]})
    with pytest.raises(ValueError, match="not a finite number"):
        _json.dumps(math.inf)


def test_a_walk_result_with_non_finite_fields_is_saved_as_strict_json_and_loads_back(tmp_path):
    result = mw.walk(Circle(), np.array([0.0, 1.0]), stop=mw.Stop(max_steps=5))
    result.kkt, result.angle = math.nan, math.inf
    result.options = {**result.options, "drift_cap": -math.inf}
    path = tmp_path / "r.npz"
    result.save(path)
    with np.load(path, allow_pickle=False) as f:
        meta = strict_loads(str(f["meta"]))
    assert meta["kkt"] is None and meta["kkt_note"].startswith("nan")
    assert meta["options"]["drift_cap_note"].startswith("-inf")
    back = mw.WalkResult.load(path)
    assert math.isnan(back.kkt) and back.angle == math.inf
    assert back.options["drift_cap"] == -math.inf and "drift_cap_note" not in back.options
    np.testing.assert_array_equal(back.theta, result.theta)
