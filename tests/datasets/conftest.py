"""Writers of small files in the real dataset formats (IDX, CIFAR10 binary and python batches)."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

ENV_VARS = (
    "MANIFOLDWALK_MNIST_DIR",
    "MANIFOLDWALK_FASHION_MNIST_DIR",
    "MANIFOLDWALK_CIFAR10_DIR",
)


@pytest.fixture(autouse=True)
def _no_dataset_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's dataset environment variables out of every test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0800 | ndim unless given)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 | array.ndim if magic is None else magic)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_bytes(path: Path, data: bytes, *, gz: bool = False) -> Path:
    """Write ``data`` to ``path`` (gzip-compressed, with ``.gz`` appended, if ``gz``)."""
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_idx_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random 28x28 uint8 images (row i starts with pixel i % 256) and labels i % 10."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    images[0, 0, 1], images[0, 0, 2] = 0, 255
    return images, (np.arange(n) % 10).astype(np.uint8)


def write_mnist_dir(
    directory: Path, *, n_train: int = 60, n_test: int = 20, gz: bool = True
) -> dict:
    """Write the four MNIST-format files; return the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        images, labels = make_idx_arrays(n, seed)
        write_bytes(directory / IDX_NAMES[f"{part}_images"], idx_bytes(images), gz=gz)
        write_bytes(directory / IDX_NAMES[f"{part}_labels"], idx_bytes(labels), gz=gz)
        arrays[part] = (images, labels)
    return arrays


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Pickle as Python 2 did: ``str`` and ``bytes`` both as 8-bit strings (CIFAR's originals)."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_py2_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_string
    dispatch[bytes] = _save_py2_string


def py2_pickle(obj: object) -> bytes:
    """Pickle like Python 2's cPickle, protocol 2, with numpy 1's module names."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def make_cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random CIFAR rows (n, 3072) channel-major, labels (seed + i) % 10.

    Row 0 is flat (R=255, G=0, B=seed) so that the channel layout can be checked.
    """
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    rows[0, :1024], rows[0, 1024:2048], rows[0, 2048:] = 255, 0, seed
    return rows, ((seed + np.arange(n)) % 10).astype(np.uint8)


def cifar_binary_bytes(rows: np.ndarray, labels: np.ndarray) -> bytes:
    """Encode rows and labels as CIFAR10 binary records (label byte + 3072 pixel bytes)."""
    return np.concatenate([labels[:, None], rows], axis=1).astype(np.uint8).tobytes()


def cifar_python_bytes(rows: np.ndarray, labels: np.ndarray, style: str) -> bytes:
    """Encode a CIFAR10 python batch: ``"py2"`` like the originals, ``"py3"`` protocol 4."""
    batch = {
        "batch_label": "batch",
        "labels": [int(v) for v in labels],
        "data": rows,
        "filenames": [f"img_{i}.png" for i in range(len(rows))],
    }
    if style == "py2":
        return py2_pickle(batch)
    return pickle.dumps(batch, protocol=4)


def write_cifar_dir(directory: Path, *, fmt: str, n_per_batch: int = 6, style: str = "py2") -> dict:
    """Write the five training batches and the test batch; return the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    stems = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    arrays = {}
    for seed, stem in enumerate(stems):
        rows, labels = make_cifar_arrays(n_per_batch, seed)
        if fmt == "binary":
            (directory / f"{stem}.bin").write_bytes(cifar_binary_bytes(rows, labels))
        else:
            (directory / stem).write_bytes(cifar_python_bytes(rows, labels, style))
        arrays[stem] = (rows, labels)
    return arrays


@pytest.fixture(scope="session")
def files() -> SimpleNamespace:
    """Give tests the writers above, to build datasets in the real formats."""
    return SimpleNamespace(
        IDX_NAMES=IDX_NAMES,
        idx_bytes=idx_bytes,
        write_bytes=write_bytes,
        make_idx_arrays=make_idx_arrays,
        write_mnist_dir=write_mnist_dir,
        py2_pickle=py2_pickle,
        make_cifar_arrays=make_cifar_arrays,
        cifar_binary_bytes=cifar_binary_bytes,
        cifar_python_bytes=cifar_python_bytes,
        write_cifar_dir=write_cifar_dir,
    )
