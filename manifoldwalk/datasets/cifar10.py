"""CIFAR10 (Krizhevsky 2009) from the binary or the python batches in a directory you name.

The binary version (``cifar-10-batches-bin``) is read without pickle: each record is one label
byte then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, rows of 32). The python version
(``cifar-10-batches-py``) is a set of pickled dicts; they are read with
:class:`~manifoldwalk.datasets._restricted_pickle.RestrictedUnpickler`, which accepts only plain
containers and numpy arrays.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._base import Dataset, DatasetError, resolve_data_dir
from ._bounded import open_regular, read_array
from ._images import image_dataset
from ._restricted_pickle import restricted_load
from ._split import make_rng

__all__ = [
    "CIFAR10_BATCH_SIZE",
    "CIFAR10_BINARY_FILES",
    "CIFAR10_ENV",
    "CIFAR10_PYTHON_FILES",
    "CIFAR10_URL",
    "load_cifar10",
    "read_cifar10_binary_batch",
    "read_cifar10_python_batch",
]

CIFAR10_ENV = "MANIFOLDWALK_CIFAR10_DIR"
"""Environment variable naming the CIFAR10 directory when ``data_dir`` is not given."""

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
"""Official source of the CIFAR10 archives (binary and python versions)."""

_TRAIN_STEMS = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_BINARY_FILES = (*(f"{s}.bin" for s in _TRAIN_STEMS), "test_batch.bin")
"""Files of the binary version (``cifar-10-binary.tar.gz`` → ``cifar-10-batches-bin``)."""

CIFAR10_PYTHON_FILES = (*_TRAIN_STEMS, "test_batch")
"""Files of the python version (``cifar-10-python.tar.gz`` → ``cifar-10-batches-py``)."""

CIFAR10_BATCH_SIZE = 10_000
"""Images in each CIFAR10 batch; the readers refuse a batch holding more."""

_DIRS = {"binary": "cifar-10-batches-bin", "python": "cifar-10-batches-py"}
_FILES = {"binary": CIFAR10_BINARY_FILES, "python": CIFAR10_PYTHON_FILES}
_PIXELS = 32 * 32 * 3
_RECORD = 1 + _PIXELS
_N_CLASSES = 10
_N_TRAIN_DEFAULT = 1000
# A python batch is ~31 MB: 30,720,000 pixel bytes, then labels, file names and pickle framing.
_PYTHON_BATCH_MAX_BYTES = 1 << 25

Format = Literal["auto", "binary", "python"]


def _to_images(pixels: np.ndarray) -> np.ndarray:
    """Turn rows of 3072 channel-major bytes into ``(n, 32, 32, 3)`` channel-last uint8."""
    return pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def _check_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    """Return labels as int64, refusing any outside 0..9 (naming ``path``)."""
    if len(labels) and (labels.min() < 0 or labels.max() >= _N_CLASSES):
        raise DatasetError(f"{path}: labels outside 0..9 (not a CIFAR10 batch?)")
    return labels.astype(np.int64)


def read_cifar10_binary_batch(
    path: str | os.PathLike[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch of CIFAR10's binary version.

    The file's size is checked against the format before anything is read: a positive
    multiple of the 3073-byte record, at most :data:`CIFAR10_BATCH_SIZE` records (30.7 MB).
    Exactly that many bytes are then read into one array.

    Args:
        path: A ``*.bin`` batch: records of 1 label byte and 3072 pixel bytes.

    Returns:
        ``(images, labels)``: uint8 images of shape ``(n, 32, 32, 3)`` (channel-last) and int64
        labels of shape ``(n,)``, ``1 <= n <= 10000``.

    Raises:
        DatasetError: (a ``ValueError``) Naming the file, if it cannot be read or is not a
            regular file, is empty, is not a whole number of 3073-byte records (truncated),
            holds more than 10,000 records, or has a label outside 0..9.
    """
    path = Path(path)
    with open_regular(path) as (file, size):
        if size == 0 or size % _RECORD:
            raise DatasetError(
                f"{path}: truncated or not a CIFAR10 binary batch: {size} bytes is not a "
                f"positive multiple of the {_RECORD}-byte record"
            )
        if size > CIFAR10_BATCH_SIZE * _RECORD:
            raise DatasetError(
                f"{path}: {size // _RECORD} records, more than the {CIFAR10_BATCH_SIZE} of a "
                "CIFAR10 batch (not a CIFAR10 binary batch?)"
            )
        try:
            data, n_read = read_array(file, np.uint8, size)
            grew = bool(file.read(1))
        except OSError as exc:
            raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    if n_read != size or grew:
        raise DatasetError(f"{path}: changed size while being read")
    records = data.reshape(-1, _RECORD)
    return _to_images(records[:, 1:]), _check_labels(path, records[:, 0])


def _field(path: Path, batch: dict[Any, Any], key: str) -> Any:
    """Return ``batch[key]`` whether keys are bytes (python 2 pickles) or str."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DatasetError(f"{path}: no {key!r} entry (not a CIFAR10 python batch)")


def _python_labels(path: Path, raw: Any, n: int) -> np.ndarray:
    """Return the ``n`` labels of a python batch as int64, checked to be ints in 0..9.

    Raises:
        DatasetError: Naming ``path``, if the labels are not ``n`` integers in 0..9.
    """
    if isinstance(raw, np.ndarray):
        if raw.dtype.kind not in "iu":
            raise DatasetError(f"{path}: 'labels' are not integers (an array of {raw.dtype})")
        values = raw
    elif isinstance(raw, (list, tuple)):
        bad = next((v for v in raw if isinstance(v, bool) or not isinstance(v, int)), None)
        if bad is not None:
            raise DatasetError(f"{path}: 'labels' are not integers (found {bad!r})")
        if raw and (min(raw) < 0 or max(raw) >= _N_CLASSES):
            raise DatasetError(f"{path}: labels outside 0..9 (not a CIFAR10 batch?)")
        values = np.array(raw, dtype=np.int64)
    else:
        raise DatasetError(f"{path}: 'labels' are not integers (a {type(raw).__name__})")
    if values.shape != (n,):
        raise DatasetError(f"{path}: {n} images but labels of shape {values.shape}")
    return _check_labels(path, values)


def read_cifar10_python_batch(
    path: str | os.PathLike[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch of CIFAR10's python version through the restricted unpickler.

    The file is read by :func:`~manifoldwalk.datasets.restricted_load` with a limit of 32 MiB
    (a batch is about 31 MB): no global other than what numpy arrays need is resolved, and
    arrays are built only from bytes the file holds, after their shape, dtype and byte count
    are checked, so a small file cannot reserve a large array. The batch is then checked
    against the format: ``data`` a uint8 array of ``n`` rows of 3072 bytes with
    ``1 <= n <= 10000``, ``labels`` ``n`` ints in 0..9.

    Args:
        path: A pickled dict with ``data`` (uint8 array ``(n, 3072)``) and ``labels`` (n ints),
            keys as bytes (the original files, loaded with ``encoding="bytes"``) or str.

    Returns:
        ``(images, labels)``: uint8 images of shape ``(n, 32, 32, 3)`` (channel-last) and int64
        labels of shape ``(n,)``.

    Raises:
        DatasetError: (a ``ValueError``) Naming the file and what is wrong, if it is over
            32 MiB, the pickle references any global other than what numpy arrays need (it
            is refused before anything is called), describes an array it does not hold, is
            truncated, or does not hold a CIFAR10 batch as described above.
    """
    path = Path(path)
    batch = restricted_load(path, encoding="bytes", max_bytes=_PYTHON_BATCH_MAX_BYTES)
    if not isinstance(batch, dict):
        raise DatasetError(f"{path}: holds a {type(batch).__name__}, not a CIFAR10 batch dict")
    data = _field(path, batch, "data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DatasetError(f"{path}: 'data' is not a 2-d uint8 array")
    if data.shape[1] != _PIXELS:
        raise DatasetError(f"{path}: 'data' rows have {data.shape[1]} values, expected {_PIXELS}")
    if not 1 <= len(data) <= CIFAR10_BATCH_SIZE:
        what = "holds no images" if len(data) == 0 else f"holds {len(data)} images"
        raise DatasetError(
            f"{path}: {what}; a CIFAR10 batch holds 1 to {CIFAR10_BATCH_SIZE} rows of {_PIXELS}"
        )
    labels = _python_labels(path, _field(path, batch, "labels"), len(data))
    return _to_images(data), labels


def _missing_message(problem: str) -> str:
    """Build the message for a missing CIFAR10 directory or file."""
    return (
        f"CIFAR10 not found: {problem}. Expected either the binary version "
        f"({', '.join(CIFAR10_BINARY_FILES)}; directory {_DIRS['binary']}) or the python "
        f"version ({', '.join(CIFAR10_PYTHON_FILES)}; directory {_DIRS['python']}), from "
        f"{CIFAR10_URL}. Pass the directory holding them (or its parent) as "
        f"load_dataset('cifar10', data_dir=...) or set the environment variable {CIFAR10_ENV}."
    )


def _has_all(directory: Path, fmt: str) -> bool:
    """Whether ``directory`` holds every file of format ``fmt``."""
    return all((directory / name).is_file() for name in _FILES[fmt])


def _locate(directory: Path, fmt: Format) -> tuple[Path, str]:
    """Find the batch directory and format: ``directory`` itself or its standard subdirectory.

    The binary version is preferred when both are present and ``fmt`` is ``"auto"``.

    Raises:
        DatasetError: If no complete set of batches is found, naming the files expected.
    """
    formats = ("binary", "python") if fmt == "auto" else (fmt,)
    for candidate_fmt in formats:
        for candidate in (directory, directory / _DIRS[candidate_fmt]):
            if _has_all(candidate, candidate_fmt):
                return candidate, candidate_fmt
    raise DatasetError(_missing_message(f"{directory} does not hold a complete set of batches"))


def _find_batches(data_dir: str | os.PathLike[str] | None, fmt: Format) -> tuple[Path, str]:
    """Resolve the directory (argument, then environment) and locate the batches in it.

    Raises:
        DatasetError: If no directory is named, it does not exist, or the batches are missing.
        ValueError: If ``fmt`` is not ``"auto"``, ``"binary"`` or ``"python"``.
    """
    if fmt not in ("auto", "binary", "python"):
        raise ValueError(f"fmt must be 'auto', 'binary' or 'python', got {fmt!r}")
    directory = resolve_data_dir(data_dir, CIFAR10_ENV)
    if directory is None:
        raise DatasetError(
            _missing_message(f"no directory given (data_dir is None, {CIFAR10_ENV} is unset)")
        )
    if not directory.is_dir():
        raise DatasetError(_missing_message(f"{directory} is not a directory"))
    return _locate(directory, fmt)


def _read_all(directory: Path, fmt: str, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Read and concatenate the batches ``names`` of format ``fmt`` in ``directory``."""
    reader = read_cifar10_binary_batch if fmt == "binary" else read_cifar10_python_batch
    parts = [reader(directory / name) for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(
    *,
    seed: int,
    data_dir: str | os.PathLike[str] | None = None,
    n_train: int = _N_TRAIN_DEFAULT,
    dtype: npt.DTypeLike = np.float32,
    fmt: Format = "auto",
) -> Dataset:
    """Load CIFAR10: a random training subset per seed and the full test set.

    ``data_dir`` (or ``$MANIFOLDWALK_CIFAR10_DIR``) may be the batch directory itself or the
    directory the archive was unpacked in (holding ``cifar-10-batches-bin`` or
    ``cifar-10-batches-py``). With ``fmt="auto"`` the binary version is used when present,
    else the python version (through the restricted unpickler).

    Args:
        seed: Seed of the training subset; equal seeds give equal subsets.
        data_dir: Directory of the batches; if None, the environment variable
            ``MANIFOLDWALK_CIFAR10_DIR``.
        n_train: Training examples drawn without replacement from all five training batches
            (1000 by default, as in the paper).
        dtype: Floating dtype of the pixels (float32 by default).
        fmt: ``"auto"``, ``"binary"`` or ``"python"``.

    Returns:
        A classification :class:`Dataset`: images of shape ``(n, 32, 32, 3)``, channel-last,
        not flattened, pixels in ``[0, 1]``; int64 labels in 0..9; ``n_classes=10``.

    Each batch is checked against the format before anything large is allocated (see
    :func:`read_cifar10_binary_batch` and :func:`read_cifar10_python_batch`): at most 10,000
    images of 3072 bytes, int labels in 0..9; a python batch of at most 32 MiB whose arrays
    are built only from bytes it holds.

    Raises:
        DatasetError: (a ``ValueError``) If the directory or a batch is missing (the message
            names the files expected and where they come from), or a batch is refused, named
            with what is wrong: truncated, malformed, over the size of a batch, labels that
            are not ints in 0..9, or a pickle referencing a disallowed global or describing
            an array it does not hold.
        TypeError, ValueError: If ``seed``, ``n_train`` or ``fmt`` is invalid.
    """
    rng = make_rng(seed)
    directory, found_fmt = _find_batches(data_dir, fmt)
    names = _FILES[found_fmt]
    return image_dataset(
        _read_all(directory, found_fmt, names[:-1]),
        _read_all(directory, found_fmt, names[-1:]),
        n_train=n_train,
        rng=rng,
        dtype=dtype,
        n_classes=_N_CLASSES,
        name="cifar10",
        source=f"CIFAR10 (Krizhevsky 2009, {CIFAR10_URL}), {found_fmt} version from {directory}",
    )
