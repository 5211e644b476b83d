"""The restricted unpickler: plain containers and numpy arrays only, nothing executed."""

from __future__ import annotations

import builtins
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from manifoldwalk.datasets import DatasetError, restricted_load


class CustomThing:
    """A user class: unpickling it would import and call arbitrary code."""

    def __init__(self, value: int) -> None:
        self.value = value


class OpenPayload:
    """Unpickles to ``open(marker, "w")``, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (builtins.open, (str(self.marker), "w"))


class SystemPayload:
    """Unpickles to ``os.system("touch marker")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch '{self.marker}'",))


def _write(path: Path, obj: object, protocol: int = 4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_plain_containers_and_arrays_load(tmp_path: Path, protocol: int) -> None:
    obj = {
        b"data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "floats": np.linspace(0, 1, 5),
        "nested": [(1, 2.5, None, True), {"s": "text"}],
    }
    if protocol == 2:  # Python 3 writes bytes at protocol 2 through _codecs.encode: see below
        del obj[b"data"], obj["floats"]
    out = restricted_load(_write(tmp_path / "ok.pkl", obj, protocol), encoding="latin1")
    assert out.keys() == obj.keys()
    if protocol > 2:
        np.testing.assert_array_equal(out[b"data"], obj[b"data"])
        np.testing.assert_array_equal(out["floats"], obj["floats"])
    assert out["nested"] == obj["nested"]


def test_python3_protocol_2_arrays_are_refused_by_name(tmp_path: Path) -> None:
    """Python 3 pickles array bytes at protocol 2 via ``_codecs.encode``, which is not allowed."""
    path = _write(tmp_path / "p2.pkl", np.zeros(3), protocol=2)
    with pytest.raises(DatasetError, match=r"p2\.pkl.*_codecs\.encode"):
        restricted_load(path)


def test_python2_style_pickle_with_numpy1_names_loads(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    data = files.py2_pickle({"data": arr, "labels": [1, 2]})
    assert b"numpy.core.multiarray" in data
    (tmp_path / "py2").write_bytes(data)
    out = restricted_load(tmp_path / "py2")
    np.testing.assert_array_equal(out[b"data"], arr)
    assert out[b"labels"] == [1, 2]


@pytest.mark.parametrize("payload_type", [OpenPayload, SystemPayload])
def test_payload_is_live_when_unpickled_without_restriction(
    tmp_path: Path, payload_type: type
) -> None:
    """Control: the payloads below really do run code under plain pickle."""
    marker = tmp_path / "ran"
    result = pickle.loads(pickle.dumps(payload_type(marker)))
    if hasattr(result, "close"):
        result.close()
    assert marker.exists()


@pytest.mark.parametrize("payload_type", [OpenPayload, SystemPayload])
@pytest.mark.parametrize("nest", ["bare", "in_dict", "in_object_array"])
def test_code_executing_pickle_is_refused_without_running(
    tmp_path: Path, payload_type: type, nest: str
) -> None:
    marker = tmp_path / "ran"
    payload = payload_type(marker)
    obj = {
        "bare": payload,
        "in_dict": {b"data": np.zeros((1, 3072), np.uint8), b"labels": [payload]},
        "in_object_array": {b"data": np.array([payload, 1], dtype=object)},
    }[nest]
    path = _write(tmp_path / "data_batch_1", obj)
    refused = (
        f"{builtins.open.__module__}.open" if payload_type is OpenPayload else f"{os.name}.system"
    )
    with pytest.raises(
        DatasetError, match=rf"data_batch_1: refused to unpickle the global {refused}"
    ):
        restricted_load(path)
    assert not marker.exists()


def test_custom_class_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "custom.pkl", {"x": CustomThing(3)})
    with pytest.raises(
        DatasetError, match=r"custom\.pkl.*test_datasets_restricted_pickle\.CustomThing"
    ):
        restricted_load(path)


@pytest.mark.parametrize(
    "obj",
    [
        {1, 2},
        frozenset({1}),
        bytearray(b"x"),
        complex(1, 2),
        np.float64(1.0),
        np.int64(3),
    ],
    ids=["set", "frozenset", "bytearray", "complex", "numpy_float", "numpy_int"],
)
def test_other_globals_are_refused(tmp_path: Path, obj: object) -> None:
    path = _write(tmp_path / "other.pkl", obj, protocol=2)
    with pytest.raises(DatasetError, match="refused to unpickle the global"):
        restricted_load(path)


def test_protocol_5_arrays_are_refused_by_name(tmp_path: Path) -> None:
    path = _write(tmp_path / "p5.pkl", np.zeros(3), protocol=5)
    with pytest.raises(DatasetError, match=r"p5\.pkl.*_frombuffer"):
        restricted_load(path)


def test_truncated_and_garbage_pickles_are_refused(tmp_path: Path) -> None:
    data = pickle.dumps({"a": np.zeros(100)}, protocol=4)
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cut\.pkl"):
        restricted_load(tmp_path / "cut.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(DatasetError, match=r"junk\.pkl.*not a valid pickle"):
        restricted_load(tmp_path / "junk.pkl")
    with pytest.raises(DatasetError, match=r"absent\.pkl.*cannot be read"):
        restricted_load(tmp_path / "absent.pkl")


def _reconstruct() -> object:
    from numpy._core.multiarray import _reconstruct as func

    return func


class _Reduce:
    """Pickles as ``func(*args)``, then ``BUILD state`` if a state is given."""

    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _array(state: tuple) -> _Reduce:
    """An array pickled as numpy does, with the state given."""
    return _Reduce(_reconstruct(), (np.ndarray, (0,), b"b"), state)


def _dtype(spec: str, state: tuple = (3, "|", None, None, None, -1, -1, 0)) -> _Reduce:
    """A dtype pickled as numpy does, with the spec and state given."""
    return _Reduce(np.dtype, (spec, False, True), state)


_SIXTY_FOUR_MIB = (64 << 20).to_bytes(8, "little")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # BINBYTES8 claiming 64 MiB: the C unpickler would reserve it before reading.
        (b"\x80\x04\x8e" + _SIXTY_FOUR_MIB + b"x.", "but only 2 remain"),
        # LONG_BINPUT at index 10**7: the C unpickler would size its memo to match.
        (b"\x80\x02Nr" + (10**7).to_bytes(4, "little") + b".", "memo index 10000000"),
        # A frame claiming 64 MiB.
        (b"\x80\x04\x95" + _SIXTY_FOUR_MIB + b"N.", "a frame runs past the end"),
    ],
    ids=["binbytes8", "long_binput", "frame"],
)
def test_pickle_lengths_claiming_more_than_the_file_are_refused_unallocated(
    tmp_path: Path, files: SimpleNamespace, data: bytes, message: str
) -> None:
    path = tmp_path / "claims.pkl"
    path.write_bytes(data)
    outcome, peak = files.probe(tmp_path, lambda: restricted_load(path))
    assert isinstance(outcome, DatasetError)
    assert peak < 1 << 20, f"peak {peak} bytes"
    assert "claims.pkl: " in str(outcome)
    assert message in str(outcome)


def test_arrays_may_not_share_bytes_to_outgrow_the_file(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    raw = bytes(1000)
    one = [_array((1, (1000,), _dtype("u1"), False, raw))]
    path = _write(tmp_path / "shared.pkl", one)
    np.testing.assert_array_equal(restricted_load(path)[0], np.zeros(1000, np.uint8))
    # The pickler memoises ``raw``: 200 arrays of 1000 bytes from a file of about 3 KB.
    many = [_array((1, (1000,), _dtype("u1"), False, raw)) for _ in range(200)]
    path = _write(tmp_path / "shared.pkl", many)
    assert path.stat().st_size < 10_000
    outcome, _ = files.probe(tmp_path, lambda: restricted_load(path))
    assert isinstance(outcome, DatasetError)
    assert "shared.pkl: refused arrays holding more bytes than the pickle itself" in str(outcome)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (_array((1, (2,), _dtype("O"), False, [1, 2])), r"array dtype \('O'"),
        (_array((1, (1,), _dtype("V8"), False, bytes(8))), r"array dtype \('V8'"),
        (
            _array(
                (
                    1,
                    (1,),
                    _dtype("u1", (3, "|", (np.dtype("u1"), (10**6,)), None, None, -1, -1, 0)),
                    False,
                    b"x",
                )
            ),
            r"refused the state .* of dtype 'u1'",
        ),
        (
            _array((1, (1,), _dtype("u1", (3, "|", None, None, None, -1, -1, 63)), False, b"x")),
            r"refused the state .* of dtype 'u1'",
        ),
        (_array((1, (-1,), _dtype("u1"), False, b"x")), r"array shape \(-1,\)"),
        (_array((1, (2,), _dtype("u1"), False, b"x")), "needs 2 bytes, the pickle holds 1 bytes"),
        (_array((1, (1,), "u1", False, b"x")), "not numpy's"),
        (_Reduce(_reconstruct(), (np.ndarray, (0,), b"b")), "announced without its data"),
        (np.dtype, "bare global numpy.dtype"),
        (np.ndarray, "bare global numpy.ndarray"),
        (_Reduce(np.ndarray, ((3,),)), "call of numpy.ndarray"),
    ],
    ids=[
        "object",
        "void",
        "subarray_state",
        "flags_state",
        "negative_shape",
        "short_data",
        "dtype_not_a_dtype",
        "no_state",
        "bare_dtype",
        "bare_ndarray",
        "ndarray_call",
    ],
)
def test_arrays_and_dtypes_numpy_would_build_unchecked_are_refused(
    tmp_path: Path, obj: object, message: str
) -> None:
    path = _write(tmp_path / "arr.pkl", {"x": obj})
    with pytest.raises(DatasetError, match=rf"arr\.pkl: .*{message}"):
        restricted_load(path)


@pytest.mark.parametrize("dtype", ["u1", "<i2", ">i4", "<f8", ">c16", "b1"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_numeric_arrays_round_trip_with_byte_order_and_layout(
    tmp_path: Path, dtype: str, order: str
) -> None:
    array = np.asarray(np.arange(12).reshape(3, 4) % 2, dtype=dtype, order=order)
    out = restricted_load(_write(tmp_path / "a.pkl", {"a": array, "b": [array]}))
    np.testing.assert_array_equal(out["a"], array)
    assert out["a"].dtype == array.dtype.newbyteorder("=")  # native, as numpy unpickles
    assert out["a"].flags.f_contiguous == (order == "F")
    assert out["a"].flags.writeable
    assert out["b"][0] is out["a"]  # shared in the pickle, shared when loaded


def test_size_and_opcode_limits(tmp_path: Path) -> None:
    path = _write(tmp_path / "list.pkl", list(range(300, 400)))
    assert restricted_load(path, max_opcodes=1000) == list(range(300, 400))
    with pytest.raises(DatasetError, match=r"list\.pkl: refused a pickle of more than 50 opcodes"):
        restricted_load(path, max_opcodes=50)
    size = path.stat().st_size
    assert restricted_load(path, max_bytes=size) == list(range(300, 400))
    with pytest.raises(DatasetError, match=rf"list\.pkl: {size} bytes, more than the limit"):
        restricted_load(path, max_bytes=size - 1)
    with pytest.raises(TypeError, match="max_opcodes"):
        restricted_load(path, max_opcodes=None)  # type: ignore[arg-type]
