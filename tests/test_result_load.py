"""``WalkResult.load`` reads a saved result or raises ValueError naming the file and the
problem, for every kind of damage (and never another exception, never a pickle)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import manifoldwalk as mw
from manifoldwalk.problems import Circle

TOP = np.array([0.0, 1.0])


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> bytes:
    """The bytes of a saved result with history, trajectory and state."""
    r = mw.walk(
        Circle(),
        TOP.copy(),
        scheme="paper",
        stop=mw.Stop(max_steps=8),
        record=mw.Record(trajectory_every=2),
    )
    path = tmp_path_factory.mktemp("saved") / "r.npz"
    r.save(path)
    return path.read_bytes()


def _members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _write(path: Path, members: dict[str, np.ndarray], *, allow_pickle: bool = False) -> Path:
    with open(path, "wb") as f:
        np.savez(f, allow_pickle=allow_pickle, **members)
    return path


def _with_meta(data: bytes, change) -> dict[str, np.ndarray]:
    members = _members(data)
    meta = json.loads(str(members["meta"]))
    members["meta"] = np.array(json.dumps(change(meta)))
    return members


def _drop(d: dict, key: str) -> dict:
    d.pop(key)
    return d


DAMAGE = {
    "not a zip": (lambda data: b"no result here", "not an .npz \\(zip\\) archive"),
    "a .npy file": (
        lambda data: _npy_bytes(np.zeros(3)),
        "not an .npz \\(zip\\) archive",
    ),
    "truncated": (lambda data: data[: len(data) // 2], "not an .npz \\(zip\\) archive"),
    "no meta": (
        lambda data: {k: v for k, v in _members(data).items() if k != "meta"},
        "no meta/theta entries",
    ),
    "no theta": (
        lambda data: {k: v for k, v in _members(data).items() if k != "theta"},
        "no meta/theta entries",
    ),
    "an unknown member": (
        lambda data: _members(data) | {"extra": np.zeros(2)},
        "the unknown entries \\['extra'\\]",
    ),
    "meta not JSON": (
        lambda data: _members(data) | {"meta": np.array("{not json")},
        "its meta is not JSON",
    ),
    "meta a JSON list": (
        lambda data: _members(data) | {"meta": np.array("[1, 2]")},
        "its meta is a JSON list, not an object",
    ),
    "meta numbers": (
        lambda data: _members(data) | {"meta": np.arange(3.0)},
        "its meta has shape \\(3,\\) and dtype float64, not a JSON string",
    ),
    "a field missing": (
        lambda data: _with_meta(data, lambda m: _drop(m, "n_predictor")),
        "lacks the fields \\['n_predictor'\\]",
    ),
    "an unknown field": (
        lambda data: _with_meta(data, lambda m: m | {"colour": "red"}),
        "the unknown fields \\['colour'\\]",
    ),
    "a count of the wrong type": (
        lambda data: _with_meta(data, lambda m: m | {"n_predictor": "8"}),
        "fields of the wrong type: n_predictor='8'",
    ),
    "a count that is a float": (
        lambda data: _with_meta(data, lambda m: m | {"n_corrector": 1e400}),
        "fields of the wrong type: n_corrector=inf",
    ),
    "options not a dict": (
        lambda data: _with_meta(data, lambda m: m | {"options": [1]}),
        "fields of the wrong type: options",
    ),
    "a 2-D theta": (
        lambda data: _members(data) | {"theta": np.zeros((2, 1))},
        "its theta has shape \\(2, 1\\)",
    ),
    "a NaN theta": (
        lambda data: _members(data) | {"theta": np.array([np.nan, 1.0])},
        "its theta holds NaN or inf",
    ),
    "a trajectory of another width": (
        lambda data: _members(data) | {"trajectory": np.zeros((3, 5))},
        "its trajectory has shape \\(3, 5\\)",
    ),
    "ragged history columns": (
        lambda data: _members(data) | {"history/reg": np.zeros(2)},
        "its columns have different lengths",
    ),
    "a string history column": (
        lambda data: _members(data) | {"history/reg": np.array(["a"] * 9)},
        "its array 'history/reg' has dtype <U1, not numbers",
    ),
    "a state field missing": (
        lambda data: {k: v for k, v in _members(data).items() if k != "state/loss"},
        "its walk state does not rebuild",
    ),
    "a state field of another shape": (
        lambda data: _members(data) | {"state/grad": np.zeros(5)},
        "its walk state's grad has shape \\(5,\\)",
    ),
    "a broken state layout": (
        lambda data: _with_meta(data, lambda m: m | {"state_layout": {"": "WalkState"}}),
        "its walk state does not rebuild",
    ),
}


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_every_damaged_file_raises_value_error_naming_the_file(tmp_path, saved, damage):
    # these raised BadZipFile, KeyError, TypeError, AttributeError, or loaded silently
    make, named = DAMAGE[damage]
    made = make(saved)
    path = tmp_path / "r.npz"
    if isinstance(made, bytes):
        path.write_bytes(made)
    else:
        _write(path, made)
    with pytest.raises(ValueError, match=named) as err:
        mw.WalkResult.load(path)
    assert str(err.value).startswith(f"{path} cannot be loaded as a WalkResult")


def test_an_array_of_objects_is_refused_and_never_unpickled(tmp_path, saved):
    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    members = _members(saved) | {"history/reg": np.array([Boom()] * 9, dtype=object)}
    path = _write(tmp_path / "r.npz", members, allow_pickle=True)
    with pytest.raises(ValueError, match="dtype object.*never|Python objects"):
        mw.WalkResult.load(path)


def test_a_member_claiming_more_data_than_it_holds_is_refused_before_allocating(tmp_path, saved):
    """A header that claims 10¹² floats in a member of a few bytes is refused by its size."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    members = _members(saved)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            if k != "trajectory":
                z.writestr(f"{k}.npy", _npy_bytes(v))
        z.writestr("trajectory.npy", header.getvalue() + b"\0" * 16)
    path = tmp_path / "r.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="'trajectory.npy' claims 8000000000000 bytes"):
        mw.WalkResult.load(path)


def test_a_missing_file_stays_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        mw.WalkResult.load(tmp_path / "absent.npz")


def test_a_saved_result_still_loads_whole(tmp_path, saved):
    path = tmp_path / "r.npz"
    path.write_bytes(saved)
    r = mw.WalkResult.load(path)
    assert r.stop_reason == "max_steps" and r.trajectory.shape == (5, 2)
    assert isinstance(r.state, mw.WalkState) and r.n_predictor == 8


_EDITS = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(
        st.just("flip"),
        st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), min_size=1, max_size=4),
    ),
    st.tuples(st.just("remove"), st.integers(0, 100)),
    st.tuples(st.just("extra"), st.sampled_from(["extra", "history/more", "state/more", "meta"])),
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edit=_EDITS)
def test_a_damaged_file_loads_or_raises_value_error_never_another_exception(tmp_path, saved, edit):
    kind, how = edit
    if kind == "truncate":
        data = saved[: int(how * len(saved))]
    elif kind == "flip":
        data = bytearray(saved)
        for where, bits in how:
            data[min(int(where * len(data)), len(data) - 1)] ^= bits
        data = bytes(data)
    else:
        members = _members(saved)
        if kind == "remove":
            members.pop(sorted(members)[how % len(members)])
        else:
            members[how] = np.arange(3.0)
        buf = io.BytesIO()
        np.savez(buf, **members)
        data = buf.getvalue()
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(data)
    try:
        r = mw.WalkResult.load(path)
    except ValueError as err:
        assert str(path) in str(err)
    else:  # what loads is a result: a finite 1-D θ, rows of θ's width
        assert r.theta.ndim == 1 and np.all(np.isfinite(r.theta))
        assert r.trajectory is None or r.trajectory.shape[1] == r.theta.shape[0]
