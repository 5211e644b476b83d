"""MNIST-format (IDX) files: a checked reader, and the MNIST and Fashion-MNIST loaders.

An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions, then
one 32-bit size per dimension) followed by the data. MNIST images have magic number 2051
(``0x00000803``: unsigned bytes, 3 dimensions) and labels 2049 (``0x00000801``: 1 dimension).
Files may be gzip-compressed; compression is recognised from the content, not the name.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._base import Dataset, DatasetError, resolve_data_dir
from ._images import image_dataset
from ._split import make_rng

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "IDX_FILES",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "N_TRAIN_DEFAULT",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
]

IDX_IMAGES_MAGIC = 2051
"""Magic number of an IDX file of unsigned-byte images (3 dimensions: n, rows, cols)."""

IDX_LABELS_MAGIC = 2049
"""Magic number of an IDX file of unsigned-byte labels (1 dimension: n)."""

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's package ``dataset-fashion-mnist`` installs the four gzip-compressed files."""

N_TRAIN_DEFAULT = 1000
"""Training examples drawn per seed, as in the paper."""

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four files of an MNIST-format dataset; each may also end in ``.gz``."""

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_SIDE = 28
_N_CLASSES = 10

_SPECS = {
    "mnist": {
        "title": "MNIST",
        "env": "MANIFOLDWALK_MNIST_DIR",
        "url": "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
        "default": None,
        "licence": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0",
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST",
        "env": "MANIFOLDWALK_FASHION_MNIST_DIR",
        "url": "https://github.com/zalandoresearch/fashion-mnist "
        "(on Debian/Ubuntu: apt-get install dataset-fashion-mnist)",
        "default": "debian",
        "licence": "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, Zalando SE), MIT licence",
    },
}


def _read_bytes(path: Path) -> bytes:
    """Return the content of ``path``, decompressed if it is gzip.

    Raises:
        DatasetError: If the file cannot be read or its gzip stream is truncated or corrupt.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetError(f"{path}: truncated or corrupt gzip file ({exc})") from exc


def _parse_header(path: Path, data: bytes, magic: int | None) -> tuple[np.dtype, tuple[int, ...]]:
    """Read and check an IDX header; return the element dtype and the dimensions.

    Raises:
        DatasetError: On a short header, an unexpected or unknown magic number.
    """
    if len(data) < 4:
        raise DatasetError(f"{path}: truncated IDX file ({len(data)} bytes, no header)")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise DatasetError(
            f"{path}: wrong magic number {found} (0x{found:08x}), expected {magic} "
            f"(0x{magic:08x}); not an IDX {'image' if magic == IDX_IMAGES_MAGIC else 'label'} file"
        )
    if data[:2] != b"\0\0" or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DatasetError(f"{path}: wrong magic number {found} (0x{found:08x}), not an IDX file")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header ({len(data)} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return _IDX_DTYPES[data[2]], dims


def read_idx(path: str | os.PathLike[str], *, magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array, checking it thoroughly.

    Args:
        path: The file.
        magic: The magic number required (e.g. :data:`IDX_IMAGES_MAGIC`), or None for any valid
            IDX magic number.

    Returns:
        A new, writable array with the dimensions stated in the header, in native byte order
        (uint8 for MNIST files).

    Raises:
        DatasetError: Naming the file, if it cannot be read, its magic number is wrong, or it is
            truncated or longer than its header says.
    """
    path = Path(path)
    data = _read_bytes(path)
    dtype, dims = _parse_header(path, data, magic)
    offset = 4 + 4 * len(dims)
    count = math.prod(dims)
    expected = offset + count * dtype.itemsize
    if len(data) < expected:
        raise DatasetError(
            f"{path}: truncated IDX file: header says {dims} needing {expected} bytes, "
            f"found {len(data)}"
        )
    if len(data) > expected:
        raise DatasetError(f"{path}: {len(data) - expected} bytes beyond the {dims} data")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def _expected_files_text() -> str:
    """Describe the expected files for an error message."""
    return ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())


def _missing_message(name: str, problem: str) -> str:
    """Build the message for a missing directory or file of dataset ``name``."""
    spec = _SPECS[name]
    return (
        f"{spec['title']} not found: {problem}. Expected the files {_expected_files_text()} "
        f"(from {spec['url']}). Pass the directory as load_dataset({name!r}, data_dir=...) "
        f"or set the environment variable {spec['env']}."
    )


def _dataset_dir(name: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """Find the directory of dataset ``name`` (argument, environment, Debian default).

    Raises:
        DatasetError: If no directory is named and there is no default, or it does not exist.
    """
    spec = _SPECS[name]
    default = DEBIAN_FASHION_MNIST_DIR if spec["default"] == "debian" else None
    directory = resolve_data_dir(data_dir, spec["env"], default)
    if directory is None:
        where = f" and {default} does not exist" if default is not None else ""
        problem = f"no directory given (data_dir is None, {spec['env']} is unset){where}"
        raise DatasetError(_missing_message(name, problem))
    if not directory.is_dir():
        raise DatasetError(_missing_message(name, f"{directory} is not a directory"))
    return directory


def _find_file(name: str, directory: Path, stem: str) -> Path:
    """Return ``directory/stem`` or ``directory/stem.gz``, whichever exists (raw first).

    Raises:
        DatasetError: If neither exists.
    """
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(_missing_message(name, f"{directory} has no {stem} or {stem}.gz"))


def _read_pair(name: str, directory: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check the images and labels of one part (``"train"`` or ``"test"``).

    Raises:
        DatasetError: If a file is missing or invalid, the images are not 28x28, the counts
            differ, or a label is not in 0..9.
    """
    images_path = _find_file(name, directory, IDX_FILES[f"{part}_images"])
    labels_path = _find_file(name, directory, IDX_FILES[f"{part}_labels"])
    images = read_idx(images_path, magic=IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, magic=IDX_LABELS_MAGIC)
    if images.shape[1:] != (_SIDE, _SIDE):
        raise DatasetError(f"{images_path}: images are {images.shape[1:]}, expected (28, 28)")
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels"
        )
    if len(labels) and labels.max() >= _N_CLASSES:
        raise DatasetError(f"{labels_path}: label {labels.max()} outside 0..{_N_CLASSES - 1}")
    return images, labels.astype(np.int64)


def _load(
    name: str,
    seed: int,
    data_dir: str | os.PathLike[str] | None,
    n_train: int,
    dtype: npt.DTypeLike,
) -> Dataset:
    """Load MNIST-format dataset ``name``: a seeded training subset and the full test set."""
    rng = make_rng(seed)
    directory = _dataset_dir(name, data_dir)
    return image_dataset(
        _read_pair(name, directory, "train"),
        _read_pair(name, directory, "test"),
        n_train=n_train,
        rng=rng,
        dtype=dtype,
        n_classes=_N_CLASSES,
        name=name,
        source=f"{_SPECS[name]['licence']}; read from {directory}",
    )


def load_mnist(
    *,
    seed: int,
    data_dir: str | os.PathLike[str] | None = None,
    n_train: int = N_TRAIN_DEFAULT,
    dtype: npt.DTypeLike = np.float32,
) -> Dataset:
    """Load MNIST from IDX files: a random training subset per seed and the full test set.

    The directory must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or gzip-compressed
    (``.gz``).

    Args:
        seed: Seed of the training subset; equal seeds give equal subsets.
        data_dir: Directory of the files; if None, the environment variable
            ``MANIFOLDWALK_MNIST_DIR``.
        n_train: Training examples drawn without replacement (1000 by default, as in the paper).
        dtype: Floating dtype of the pixels (float32 by default).

    Returns:
        A classification :class:`Dataset`: images of shape ``(n, 28, 28)`` (not flattened) with
        pixels in ``[0, 1]``, int64 labels in 0..9, ``n_classes=10``.

    Raises:
        DatasetError: If the directory or a file is missing (the message names the files and
            where to get them) or a file is invalid (wrong magic number, truncated, ...).
        TypeError, ValueError: If ``seed`` or ``n_train`` is invalid.
    """
    return _load("mnist", seed, data_dir, n_train, dtype)


def load_fashion_mnist(
    *,
    seed: int,
    data_dir: str | os.PathLike[str] | None = None,
    n_train: int = N_TRAIN_DEFAULT,
    dtype: npt.DTypeLike = np.float32,
) -> Dataset:
    """Load Fashion-MNIST from IDX files: a random training subset per seed, full test set.

    The files are named as MNIST's (see :func:`load_mnist`). Without ``data_dir`` and the
    environment variable ``MANIFOLDWALK_FASHION_MNIST_DIR``, the directory where Debian's
    package ``dataset-fashion-mnist`` installs them, :data:`DEBIAN_FASHION_MNIST_DIR`, is used.

    Args:
        seed: Seed of the training subset, as for :func:`load_mnist`.
        data_dir: Directory of the files; if None, ``MANIFOLDWALK_FASHION_MNIST_DIR``, then
            ``/usr/share/datasets/fashion-mnist``.
        n_train: Size of the training subset (1000 by default).
        dtype: Floating dtype of the pixels (float32 by default).

    Returns:
        A classification :class:`Dataset` laid out as :func:`load_mnist`'s: ``(n, 28, 28)``
        images in ``[0, 1]``, int64 labels in 0..9 (the ten clothing classes).

    Raises:
        DatasetError: As :func:`load_mnist`: a missing directory or file (named in the
            message, with where to get it) or an invalid file.
        TypeError, ValueError: For an invalid ``seed`` or ``n_train``.
    """
    return _load("fashion-mnist", seed, data_dir, n_train, dtype)
