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
