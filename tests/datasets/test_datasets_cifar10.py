"""CIFAR10 from binary batches (no pickle) and python batches (restricted unpickler)."""

from __future__ import annotations

import builtins
import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifoldwalk.datasets import (
    DatasetError,
    load_cifar10,
    load_dataset,
    read_cifar10_binary_batch,
    read_cifar10_python_batch,
)

TRAIN_STEMS = [f"data_batch_{i}" for i in range(1, 6)]


def _expected_images(rows: np.ndarray) -> np.ndarray:
    """Build by hand the channel-last images that channel-major rows stand for."""
    out = np.empty((len(rows), 32, 32, 3), np.uint8)
    for n, row in enumerate(rows):
        for c in range(3):
            for i in range(32):
                out[n, i, :, c] = row[c * 1024 + i * 32 : c * 1024 + i * 32 + 32]
    return out


@pytest.mark.parametrize(("fmt", "style"), [("binary", None), ("python", "py2"), ("python", "py3")])
def test_batches_read_as_channel_last_images(
    tmp_path: Path, files: SimpleNamespace, fmt: str, style: str | None
) -> None:
    rows, labels = files.make_cifar_arrays(4, seed=3)
    path = tmp_path / "test_batch"
    if fmt == "binary":
        path.write_bytes(files.cifar_binary_bytes(rows, labels))
        images, out_labels = read_cifar10_binary_batch(path)
    else:
        path.write_bytes(files.cifar_python_bytes(rows, labels, style))
        images, out_labels = read_cifar10_python_batch(path)
    assert images.shape == (4, 32, 32, 3)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, _expected_images(rows))
    np.testing.assert_array_equal(images[0], np.broadcast_to([255, 0, 3], (32, 32, 3)))
    np.testing.assert_array_equal(out_labels, labels)
    assert out_labels.dtype == np.int64


@pytest.mark.parametrize(
    ("fmt", "style"), [("binary", "py2"), ("python", "py2"), ("python", "py3")]
)
def test_load_cifar10_shapes_range_and_content(
    tmp_path: Path, files: SimpleNamespace, fmt: str, style: str
) -> None:
    arrays = files.write_cifar_dir(tmp_path, fmt=fmt, n_per_batch=6, style=style)
    ds = load_cifar10(seed=0, data_dir=tmp_path, n_train=10)
    assert ds.x_train.shape == (10, 32, 32, 3)
    assert ds.x_test.shape == (6, 32, 32, 3)
    assert ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int64
    assert (ds.task, ds.n_classes, ds.name) == ("classification", 10, "cifar10")
    assert ds.x_train.min() >= 0.0
    assert ds.x_train.max() <= 1.0
    assert fmt in ds.source
    rows, labels = arrays["test_batch"]
    np.testing.assert_allclose(ds.x_test, _expected_images(rows) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, labels)
    all_images = np.concatenate([_expected_images(arrays[s][0]) for s in TRAIN_STEMS]) / 255.0
    all_labels = np.concatenate([arrays[s][1] for s in TRAIN_STEMS])
    for image, label in zip(ds.x_train, ds.y_train, strict=True):
        match = np.flatnonzero(np.all(np.isclose(all_images, image, atol=1e-6), axis=(1, 2, 3)))
        assert len(match) == 1
        assert all_labels[match[0]] == label


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_training_subset_is_seeded(tmp_path: Path, files: SimpleNamespace, seed: int) -> None:
    directory = tmp_path / "cifar-10-batches-bin"
    if not directory.exists():
        files.write_cifar_dir(directory, fmt="binary", n_per_batch=20)
    a = load_cifar10(seed=seed, data_dir=tmp_path, n_train=15)
    b = load_dataset("cifar10", seed=seed, data_dir=directory, n_train=15)
    c = load_cifar10(seed=seed + 1, data_dir=tmp_path, n_train=15)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, c.x_train)


def test_parent_directory_and_format_choice(tmp_path: Path, files: SimpleNamespace) -> None:
    files.write_cifar_dir(tmp_path / "cifar-10-batches-py", fmt="python", n_per_batch=3)
    assert "python version" in load_cifar10(seed=0, data_dir=tmp_path, n_train=2).source
    files.write_cifar_dir(tmp_path / "cifar-10-batches-bin", fmt="binary", n_per_batch=3)
    assert "binary version" in load_cifar10(seed=0, data_dir=tmp_path, n_train=2).source
    ds = load_cifar10(seed=0, data_dir=tmp_path, n_train=2, fmt="python")
    assert "python version" in ds.source
    with pytest.raises(ValueError, match="fmt"):
        load_cifar10(seed=0, data_dir=tmp_path, fmt="zip")  # type: ignore[arg-type]


def test_default_subset_is_1000(tmp_path: Path, files: SimpleNamespace) -> None:
    files.write_cifar_dir(tmp_path, fmt="binary", n_per_batch=201)
    assert load_dataset("cifar10", seed=0, data_dir=tmp_path).x_train.shape == (
        1000,
        32,
        32,
        3,
    )


def test_environment_variable_names_the_directory(
    tmp_path: Path, files: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.write_cifar_dir(tmp_path, fmt="binary", n_per_batch=2)
    monkeypatch.setenv("MANIFOLDWALK_CIFAR10_DIR", str(tmp_path))
    assert load_cifar10(seed=0, n_train=3).x_test.shape == (2, 32, 32, 3)


def test_missing_directory_names_files_source_and_how_to_pass_it(
    tmp_path: Path,
) -> None:
    for data_dir in (None, tmp_path / "absent", tmp_path):
        with pytest.raises(DatasetError) as info:
            load_dataset("cifar10", seed=0, data_dir=data_dir)
        message = str(info.value)
        for needle in (
            "data_batch_1.bin",
            "data_batch_5.bin",
            "test_batch.bin",
            "data_batch_1,",
            "test_batch;",
            "cifar-10-batches-bin",
            "cifar-10-batches-py",
            "https://www.cs.toronto.edu/~kriz/cifar.html",
            "MANIFOLDWALK_CIFAR10_DIR",
            "data_dir",
        ):
            assert needle in message
    assert str(tmp_path) in message


def test_truncated_binary_batch_is_refused_with_its_name(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    files.write_cifar_dir(tmp_path, fmt="binary", n_per_batch=2)
    path = tmp_path / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"data_batch_3\.bin: truncated"):
        load_cifar10(seed=0, data_dir=tmp_path, n_train=2)
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"data_batch_3\.bin: truncated"):
        read_cifar10_binary_batch(path)


def test_bad_labels_are_refused(tmp_path: Path, files: SimpleNamespace) -> None:
    rows, labels = files.make_cifar_arrays(2, seed=0)
    labels[1] = 10
    (tmp_path / "b.bin").write_bytes(files.cifar_binary_bytes(rows, labels))
    with pytest.raises(DatasetError, match=r"b\.bin: labels outside 0\.\.9"):
        read_cifar10_binary_batch(tmp_path / "b.bin")


def test_truncated_python_batch_is_refused_with_its_name(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    files.write_cifar_dir(tmp_path, fmt="python", n_per_batch=2)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DatasetError, match="test_batch"):
        load_cifar10(seed=0, data_dir=tmp_path, n_train=2)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (builtins.open, (str(self.marker), "w"))


def test_python_batch_with_disallowed_global_is_refused_without_running(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    files.write_cifar_dir(tmp_path, fmt="python", n_per_batch=2)
    marker = tmp_path / "executed"
    rows, _ = files.make_cifar_arrays(2, seed=0)
    evil = {b"data": rows, b"labels": [0, 1], b"filenames": _Payload(marker)}
    (tmp_path / "data_batch_2").write_bytes(pickle.dumps(evil, protocol=4))
    with pytest.raises(
        DatasetError, match=r"data_batch_2: refused to unpickle the global io\.open"
    ):
        load_cifar10(seed=0, data_dir=tmp_path, n_train=2)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([1, 2], "holds a list"),
        ({b"labels": [0]}, "no 'data' entry"),
        ({b"data": np.zeros((1, 3072), np.float32), b"labels": [0]}, "not a 2-d uint8"),
        ({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}, "100 values"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "labels of shape"),
        ({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["x"]}, "not integers"),
    ],
)
def test_malformed_python_batch_is_refused(tmp_path: Path, batch: object, message: str) -> None:
    path = tmp_path / "odd_batch"
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DatasetError, match=rf"odd_batch: .*{message}"):
        read_cifar10_python_batch(path)


class _Reduce:
    """Pickles as ``func(*args)`` (then ``BUILD state`` if given): a hand-made payload."""

    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _reconstruct() -> object:
    from numpy._core.multiarray import _reconstruct as func

    return func


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # numpy.ndarray(shape, dtype): 30 MB of uninitialised memory from a few bytes.
        (_Reduce(np.ndarray, ((10_000, 3072), np.dtype(np.uint8))), "call of numpy.ndarray"),
        # The reconstructor with a real shape instead of numpy's (0,).
        (_Reduce(_reconstruct(), (np.ndarray, (10_000, 3072), b"u1")), "array reconstructor"),
        # numpy's own form, but a state whose shape needs bytes the file does not hold.
        (
            _Reduce(
                _reconstruct(),
                (np.ndarray, (0,), b"b"),
                (1, (10_000, 3072), np.dtype(np.uint8), False, b"x"),
            ),
            "needs 30720000 bytes, the pickle holds 1 bytes",
        ),
    ],
    ids=["ndarray_call", "reconstruct_shape", "state_shape"],
)
def test_python_batch_cannot_reserve_images_it_does_not_hold(
    tmp_path: Path, files: SimpleNamespace, data: object, message: str
) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [0] * 10_000}, protocol=4))
    assert path.stat().st_size < 25_000
    outcome, peak = files.probe(tmp_path, lambda: read_cifar10_python_batch(path))
    assert isinstance(outcome, DatasetError), outcome
    assert peak < 2 << 20, f"peak {peak} bytes"
    assert re.search(rf"data_batch_1: .*{message}", str(outcome))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([1.5], r"'labels' are not integers \(found 1.5\)"),
        ([True], r"'labels' are not integers \(found True\)"),
        (np.array([1.0]), r"'labels' are not integers \(an array of float64\)"),
        ([10], r"labels outside 0\.\.9"),
        ([-1], r"labels outside 0\.\.9"),
        ([2**70], r"labels outside 0\.\.9"),
        (b"\x01", r"'labels' are not integers \(a bytes\)"),
    ],
)
def test_python_batch_labels_must_be_ints_in_range(
    tmp_path: Path, labels: object, message: str
) -> None:
    path = tmp_path / "odd_batch"
    path.write_bytes(
        pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": labels}, protocol=4)
    )
    with pytest.raises(DatasetError, match=rf"odd_batch: {message}"):
        read_cifar10_python_batch(path)


@pytest.mark.parametrize(("rows", "message"), [(0, "holds no images"), (10_001, "holds 10001")])
def test_python_batch_row_count_is_that_of_a_batch(tmp_path: Path, rows: int, message: str) -> None:
    path = tmp_path / "data_batch_4"
    batch = {b"data": np.zeros((rows, 3072), np.uint8), b"labels": [0] * rows}
    path.write_bytes(pickle.dumps(batch, protocol=4))
    with pytest.raises(DatasetError, match=rf"data_batch_4: {message}"):
        read_cifar10_python_batch(path)


def test_python_batch_larger_than_a_batch_is_refused_unread(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    path = tmp_path / "test_batch"
    with path.open("wb") as file:
        file.truncate(33 << 20)  # sparse: nothing is written, the size is over 32 MiB
    outcome, peak = files.probe(tmp_path, lambda: read_cifar10_python_batch(path))
    assert isinstance(outcome, DatasetError)
    assert peak < 1 << 20, f"peak {peak} bytes"
    assert "test_batch: 34603008 bytes, more than the limit of 33554432" in str(outcome)


def test_binary_batch_over_10000_records_is_refused_unread(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    path = tmp_path / "data_batch_1.bin"
    with path.open("wb") as file:
        file.truncate(10_001 * 3073)  # sparse: a whole number of records, one too many
    outcome, peak = files.probe(tmp_path, lambda: read_cifar10_binary_batch(path))
    assert isinstance(outcome, DatasetError)
    assert peak < 1 << 20, f"peak {peak} bytes"
    assert "data_batch_1.bin: 10001 records, more than the 10000" in str(outcome)
    with path.open("r+b") as file:
        file.truncate(10_000 * 3073)
    images, labels = read_cifar10_binary_batch(path)
    assert images.shape == (10_000, 32, 32, 3)
    assert labels.shape == (10_000,)
