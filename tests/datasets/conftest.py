"""Writers of small files in the real dataset formats (IDX, CIFAR10 binary and python batches),
and a probe that runs a reader while measuring its peak memory and watching for writes."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_MUTATING_EVENTS = frozenset(
    {
        "os.chmod",
        "os.chown",
        "os.link",
        "os.mkdir",
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.symlink",
        "os.truncate",
        "os.utime",
        "shutil.copyfile",
        "shutil.copymode",
        "shutil.copystat",
        "shutil.move",
        "shutil.rmtree",
        "tempfile.mkdtemp",
        "tempfile.mkstemp",
    }
)
_RECORDING: list[list[tuple[str, tuple[Any, ...]]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Record file-system writes (any process-wide open for writing, rename, ...) while probing."""
    if not _RECORDING:
        return
    if event == "open":
        _, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writes:
            _RECORDING[-1].append((event, args))
    elif event in _MUTATING_EVENTS:
        _RECORDING[-1].append((event, args))


sys.addaudithook(_audit)  # cannot be removed; does nothing unless a probe is recording


def _listing(directory: Path) -> list[tuple[str, int, int, int]]:
    """Every entry under ``directory``: relative path, size, mode and modification time."""
    out = []
    for entry in sorted(directory.rglob("*")):
        info = entry.lstat()
        out.append(
            (str(entry.relative_to(directory)), info.st_size, info.st_mode, info.st_mtime_ns)
        )
    return out


def probe(directory: Path, call: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``call``; return its result (or the DatasetError it raised) and its peak memory.

    Peak memory is what tracemalloc saw allocated during the call, in bytes. Fails the test
    if the call raised anything but DatasetError, wrote or renamed any file anywhere (an
    audit hook watches every open for writing), or changed the listing of ``directory``.
    """
    from manifoldwalk.datasets import DatasetError

    before = _listing(directory)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    writes: list[tuple[str, tuple[Any, ...]]] = []
    _RECORDING.append(writes)
    try:
        outcome = call()
    except DatasetError as exc:
        outcome = exc
    finally:
        _RECORDING.pop()
        peak = tracemalloc.get_traced_memory()[1] - base
        if not was_tracing:
            tracemalloc.stop()
    assert writes == [], f"the reader wrote: {writes}"
    assert _listing(directory) == before, "the reader changed its directory"
    return outcome, peak


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
        probe=probe,
    )
