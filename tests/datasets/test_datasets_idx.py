"""MNIST-format IDX files: the checked reader and the MNIST / Fashion-MNIST loaders."""

from __future__ import annotations

import functools
import gzip
import os
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifoldwalk.datasets import (
    DatasetError,
    idx,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)

EXPECTED_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_raw_and_gzip(
    tmp_path: Path, files: SimpleNamespace, gz: bool
) -> None:
    images, labels = files.make_idx_arrays(7, seed=0)
    ipath = files.write_bytes(tmp_path / "img", files.idx_bytes(images), gz=gz)
    lpath = files.write_bytes(tmp_path / "lab", files.idx_bytes(labels), gz=gz)
    out = read_idx(ipath, magic=idx.IDX_IMAGES_MAGIC)
    np.testing.assert_array_equal(out, images)
    assert out.dtype == np.uint8
    assert out.flags.writeable
    np.testing.assert_array_equal(read_idx(lpath, magic=idx.IDX_LABELS_MAGIC), labels)


def test_read_idx_reads_other_element_types(tmp_path: Path) -> None:
    data = np.arange(6, dtype=">i4").reshape(2, 3)
    path = tmp_path / "ints"
    path.write_bytes(
        bytes([0, 0, 0x0C, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + data.tobytes()
    )
    out = read_idx(path)
    np.testing.assert_array_equal(out, data)
    assert out.dtype == np.dtype("int32")


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_magic_is_refused_with_the_file_name(
    tmp_path: Path, files: SimpleNamespace, gz: bool
) -> None:
    _, labels = files.make_idx_arrays(5, seed=0)
    path = files.write_bytes(tmp_path / "train-images-idx3-ubyte", files.idx_bytes(labels), gz=gz)
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.*wrong magic number 2049"):
        read_idx(path, magic=idx.IDX_IMAGES_MAGIC)


def test_non_idx_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello world, not an IDX file")
    with pytest.raises(DatasetError, match=r"notes\.txt.*magic number"):
        read_idx(path)


@pytest.mark.parametrize("cut", [2, 10, 100])
@pytest.mark.parametrize("gz", [False, True])
def test_truncated_file_is_refused_with_its_name(
    tmp_path: Path, files: SimpleNamespace, cut: int, gz: bool
) -> None:
    images, _ = files.make_idx_arrays(3, seed=0)
    data = files.idx_bytes(images)
    path = files.write_bytes(
        tmp_path / "t10k-images-idx3-ubyte",
        data[: len(data) - cut] if cut != 2 else data[:2],
        gz=gz,
    )
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.*truncated"):
        read_idx(path, magic=idx.IDX_IMAGES_MAGIC)


def test_truncated_gzip_stream_is_refused_with_its_name(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    images, _ = files.make_idx_arrays(20, seed=0)
    compressed = gzip.compress(files.idx_bytes(images))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(
        DatasetError, match=r"train-images-idx3-ubyte\.gz.*truncated or corrupt gzip"
    ):
        read_idx(path)


def test_trailing_bytes_are_refused(tmp_path: Path, files: SimpleNamespace) -> None:
    path = files.write_bytes(tmp_path / "lab", files.idx_bytes(np.zeros(4, np.uint8)) + b"\0")
    with pytest.raises(DatasetError, match=r"lab: 1 bytes beyond"):
        read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_shapes_range_and_pixels(
    tmp_path: Path, files: SimpleNamespace, gz: bool
) -> None:
    arrays = files.write_mnist_dir(tmp_path, n_train=60, n_test=20, gz=gz)
    ds = load_mnist(seed=0, data_dir=tmp_path, n_train=25)
    assert ds.x_train.shape == (25, 28, 28)
    assert ds.x_test.shape == (20, 28, 28)
    assert ds.x_train.dtype == np.float32
    assert ds.y_train.dtype == np.int64
    assert (ds.task, ds.n_classes, ds.name) == ("classification", 10, "mnist")
    assert ds.x_train.min() >= 0.0
    assert ds.x_train.max() <= 1.0
    test_images, test_labels = arrays["test"]
    np.testing.assert_allclose(ds.x_test, test_images / 255.0, rtol=1e-6)
    assert ds.x_test.min() == 0.0
    assert ds.x_test.max() == 1.0
    np.testing.assert_array_equal(ds.y_test, test_labels)
    # Each drawn training example keeps its own label: pixel [0, 0] encodes its index.
    train_images, train_labels = arrays["train"]
    index = np.rint(ds.x_train[:, 0, 0] * 255).astype(int)
    np.testing.assert_allclose(ds.x_train, train_images[index] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, train_labels[index])
    assert len(set(index.tolist())) == 25


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_training_subset_is_seeded(tmp_path: Path, files: SimpleNamespace, seed: int) -> None:
    directory = tmp_path / "mnist"
    if not directory.exists():
        files.write_mnist_dir(directory, n_train=200, n_test=5)
    a = load_mnist(seed=seed, data_dir=directory, n_train=30)
    b = load_mnist(seed=seed, data_dir=directory, n_train=30)
    c = load_mnist(seed=seed + 1, data_dir=directory, n_train=30)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, c.y_train) or not np.array_equal(a.x_train, c.x_train)


def test_default_subset_is_1000(tmp_path: Path, files: SimpleNamespace) -> None:
    files.write_mnist_dir(tmp_path, n_train=1200, n_test=3)
    ds = load_dataset("mnist", seed=0, data_dir=tmp_path)
    assert ds.x_train.shape == (1000, 28, 28)
    with pytest.raises(ValueError, match="n_subset"):
        load_dataset("mnist", seed=0, data_dir=tmp_path, n_train=1201)


def test_environment_variable_names_the_directory(
    tmp_path: Path, files: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.write_mnist_dir(tmp_path / "env", n_train=10, n_test=4)
    monkeypatch.setenv("MANIFOLDWALK_MNIST_DIR", str(tmp_path / "env"))
    assert load_mnist(seed=0, n_train=5).x_test.shape == (4, 28, 28)
    # The argument wins over the environment variable.
    with pytest.raises(DatasetError, match="elsewhere"):
        load_mnist(seed=0, n_train=5, data_dir=tmp_path / "elsewhere")


def test_fashion_mnist_defaults_to_debians_directory(
    tmp_path: Path, files: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Path("/usr/share/datasets/fashion-mnist") == idx.DEBIAN_FASHION_MNIST_DIR
    files.write_mnist_dir(tmp_path, n_train=12, n_test=6)
    monkeypatch.setattr(idx, "DEBIAN_FASHION_MNIST_DIR", tmp_path)
    ds = load_fashion_mnist(seed=0, n_train=4)
    assert ds.name == "fashion-mnist"
    assert ds.x_test.shape == (6, 28, 28)
    assert str(tmp_path) in ds.source
    files.write_mnist_dir(tmp_path / "env", n_train=12, n_test=3)
    monkeypatch.setenv("MANIFOLDWALK_FASHION_MNIST_DIR", str(tmp_path / "env"))
    assert load_dataset("fashion-mnist", seed=0, n_train=4).x_test.shape == (3, 28, 28)


def test_missing_directory_names_files_source_and_how_to_pass_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idx, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "absent")
    for name, env, url in (
        ("mnist", "MANIFOLDWALK_MNIST_DIR", "yann.lecun.com"),
        (
            "fashion-mnist",
            "MANIFOLDWALK_FASHION_MNIST_DIR",
            "zalandoresearch/fashion-mnist",
        ),
    ):
        with pytest.raises(DatasetError) as info:
            load_dataset(name, seed=0)
        message = str(info.value)
        for needle in (*EXPECTED_NAMES, env, url, "data_dir"):
            assert needle in message
    assert "dataset-fashion-mnist" in message
    assert str(tmp_path / "absent") in message


def test_missing_file_is_named(tmp_path: Path, files: SimpleNamespace) -> None:
    files.write_mnist_dir(tmp_path, n_train=10, n_test=4)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DatasetError, match=r"no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz"
    ):
        load_mnist(seed=0, data_dir=tmp_path, n_train=5)


def test_loader_refuses_wrong_magic_in_a_dataset_file(
    tmp_path: Path, files: SimpleNamespace
) -> None:
    files.write_mnist_dir(tmp_path, n_train=10, n_test=4, gz=False)
    labels_path = tmp_path / "train-labels-idx1-ubyte"
    data = bytearray(labels_path.read_bytes())
    data[3] = 3  # 2051: an image magic number where labels belong
    labels_path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte.*wrong magic number 2051"):
        load_mnist(seed=0, data_dir=tmp_path, n_train=5)


def test_loader_refuses_truncated_dataset_file(tmp_path: Path, files: SimpleNamespace) -> None:
    files.write_mnist_dir(tmp_path, n_train=10, n_test=4, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.*truncated"):
        load_mnist(seed=0, data_dir=tmp_path, n_train=5)


def test_inconsistent_files_are_refused(tmp_path: Path, files: SimpleNamespace) -> None:
    files.write_mnist_dir(tmp_path, n_train=10, n_test=4, gz=False)
    lab = tmp_path / "train-labels-idx1-ubyte"
    lab.write_bytes(files.idx_bytes(np.zeros(9, np.uint8)))
    with pytest.raises(DatasetError, match=r"10 images but .* 9 labels"):
        load_mnist(seed=0, data_dir=tmp_path, n_train=5)
    lab.write_bytes(files.idx_bytes(np.full(10, 10, np.uint8)))
    with pytest.raises(DatasetError, match="label 10 outside"):
        load_mnist(seed=0, data_dir=tmp_path, n_train=5)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(files.idx_bytes(np.zeros((10, 32, 32))))
    with pytest.raises(DatasetError, match=r"\(32, 32\), expected \(28, 28\)"):
        load_mnist(seed=0, data_dir=tmp_path, n_train=5)


@functools.cache
def _gzip_zeros(n_bytes: int) -> bytes:
    """One gzip member holding ``n_bytes`` zeros (about a thousandth of that on disk)."""
    return gzip.compress(bytes(n_bytes), compresslevel=9)


_BOMB = 32 << 20  # decompressed bytes of the bombs below; their files are about 32 KB


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        # A small header followed by 32 MiB that it does not declare.
        ((1, 28, 28), r"at least \d+ bytes beyond the \(1, 28, 28\) data"),
        # A header declaring more than the limit, followed by 32 MiB of zeros.
        ((3000, 1000, 1000), r"needing 3000000000 bytes, more than the limit"),
        # A header declaring less than the limit but more than 32 KB of gzip can hold.
        ((100, 1000, 1000), r"truncated IDX file: .* decompress to at most"),
    ],
)
def test_gzip_bomb_is_refused_without_decompressing_it(
    tmp_path: Path, files: SimpleNamespace, dims: tuple[int, ...], message: str
) -> None:
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    payload = bytes(784) if dims == (1, 28, 28) else b""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(header + payload) + _gzip_zeros(_BOMB))
    outcome, peak = files.probe(tmp_path, lambda: read_idx(path, magic=idx.IDX_IMAGES_MAGIC))
    assert isinstance(outcome, DatasetError)
    assert peak < 2 << 20, f"peak {peak} bytes"
    assert re.search(rf"train-images-idx3-ubyte\.gz: .*{message}", str(outcome))


@pytest.mark.parametrize("gz", [False, True])
def test_payload_over_max_bytes_is_refused_before_allocating(
    tmp_path: Path, files: SimpleNamespace, gz: bool
) -> None:
    images, _ = files.make_idx_arrays(3, seed=0)  # 2352 payload bytes
    path = files.write_bytes(tmp_path / "img", files.idx_bytes(images), gz=gz)
    np.testing.assert_array_equal(read_idx(path, max_bytes=2352), images)
    outcome, peak = files.probe(tmp_path, lambda: read_idx(path, max_bytes=2351))
    assert isinstance(outcome, DatasetError)
    assert re.search(
        r"img(\.gz)?: header says \(3, 28, 28\) needing 2352 bytes, more than", str(outcome)
    )
    assert peak < 1 << 20
    with pytest.raises(TypeError, match="max_bytes"):
        read_idx(path, max_bytes=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_bytes"):
        read_idx(path, max_bytes=-1)


def test_header_declaring_terabytes_is_refused_by_the_default_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge"
    path.write_bytes(bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3)
    assert idx.IDX_MAX_BYTES == 1 << 30
    with pytest.raises(
        DatasetError, match=r"huge: header says .* more than the limit of 1073741824"
    ):
        read_idx(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_non_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "train-images-idx3-ubyte"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            read_idx(fifo)
            outcome.append(None)
        except BaseException as exc:  # handed to the main thread
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():  # blocked waiting for a writer: release it, then fail
        with open(fifo, "wb"):
            pass
        thread.join(timeout=10)
        pytest.fail("read_idx blocked on a FIFO")
    assert isinstance(outcome[0], DatasetError)
    assert "train-images-idx3-ubyte: not a regular file" in str(outcome[0])


@pytest.mark.parametrize("part", ["train", "t10k"])
def test_images_file_with_no_images_is_refused_by_name(
    tmp_path: Path, files: SimpleNamespace, part: str
) -> None:
    files.write_mnist_dir(tmp_path, n_train=10, n_test=4)
    name = f"{part}-images-idx3-ubyte"
    (tmp_path / f"{name}.gz").unlink()
    (tmp_path / f"{part}-labels-idx1-ubyte.gz").unlink()
    files.write_bytes(tmp_path / name, files.idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    files.write_bytes(
        tmp_path / f"{part}-labels-idx1-ubyte", files.idx_bytes(np.zeros(0, np.uint8))
    )
    with pytest.raises(DatasetError, match=rf"{name}: holds no images"):
        load_mnist(seed=0, data_dir=tmp_path, n_train=1)
