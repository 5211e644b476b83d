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
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from ._base import Dataset, DatasetError, resolve_data_dir
from ._bounded import CHUNK_BYTES, check_limit, open_regular, read_array
from ._images import image_dataset
from ._split import make_rng

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "IDX_FILES",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "IDX_MAX_BYTES",
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

IDX_MAX_BYTES = 1 << 30
"""Largest payload :func:`read_idx` accepts by default: 1 GiB (MNIST's largest file is 47 MB)."""

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
# Deflate codes at most 258 bytes in 2 bits, so no gzip file expands more than 1032-fold.
_DEFLATE_MAX_RATIO = 1032
_MAX_NDIM = 32  # numpy 1's limit (numpy 2 allows 64); MNIST-format files have 1 or 3
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


def _header_dims(
    path: Path, stream: BinaryIO, magic: int | None
) -> tuple[np.dtype, tuple[int, ...]]:
    """Read and check an IDX header from ``stream``; return the element dtype and dimensions.

    Raises:
        DatasetError: On a short header, an unexpected or unknown magic number.
    """
    head = stream.read(4)
    if len(head) < 4:
        raise DatasetError(f"{path}: truncated IDX file ({len(head)} bytes, no header)")
    found = int.from_bytes(head, "big")
    if magic is not None and found != magic:
        raise DatasetError(
            f"{path}: wrong magic number {found} (0x{found:08x}), expected {magic} "
            f"(0x{magic:08x}); not an IDX {'image' if magic == IDX_IMAGES_MAGIC else 'label'} file"
        )
    if head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or head[3] == 0:
        raise DatasetError(f"{path}: wrong magic number {found} (0x{found:08x}), not an IDX file")
    ndim = head[3]
    if ndim > _MAX_NDIM:
        raise DatasetError(f"{path}: header declares {ndim} dimensions, more than {_MAX_NDIM}")
    sizes = stream.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header ({4 + len(sizes)} bytes)")
    dims = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return _IDX_DTYPES[head[2]], dims


def _read_payload(
    path: Path, stream: BinaryIO, magic: int | None, max_bytes: int, size: int, gz: bool
) -> np.ndarray:
    """Read an IDX header and exactly the payload it declares from ``stream``.

    Nothing is allocated for the payload until its declared size has passed every check
    that can be made without reading it: the limit ``max_bytes``, and the most that the
    ``size``-byte file can hold (its size for a raw file, ``1032 * size`` for gzip).

    Raises:
        DatasetError: If the header is invalid, the payload is over the limit, or the
            payload is shorter or longer than the header says.
    """
    dtype, dims = _header_dims(path, stream, magic)
    header = 4 + 4 * len(dims)
    count = math.prod(dims)
    nbytes = count * dtype.itemsize
    expected = header + nbytes
    if nbytes > max_bytes:
        raise DatasetError(
            f"{path}: header says {dims} needing {nbytes} bytes, more than the limit of "
            f"{max_bytes} bytes (raise it with read_idx(..., max_bytes=...) if the file is real)"
        )
    if not gz and size != expected:
        if size < expected:
            raise DatasetError(
                f"{path}: truncated IDX file: header says {dims} needing {expected} bytes, "
                f"found {size}"
            )
        raise DatasetError(f"{path}: {size - expected} bytes beyond the {dims} data")
    if gz and expected > _DEFLATE_MAX_RATIO * size:
        raise DatasetError(
            f"{path}: truncated IDX file: header says {dims} needing {expected} bytes, but "
            f"{size} bytes of gzip decompress to at most {_DEFLATE_MAX_RATIO * size}"
        )
    try:
        array, n_read = read_array(stream, dtype, count)
    except MemoryError as exc:
        raise DatasetError(f"{path}: not enough memory for its {nbytes}-byte payload") from exc
    if n_read < nbytes:
        raise DatasetError(
            f"{path}: truncated IDX file: header says {dims} needing {expected} bytes, "
            f"found {header + n_read}"
        )
    if stream.read(1):  # read(n) reserves n bytes, so probe with one, then count a chunk
        extra = 1 + len(stream.read(CHUNK_BYTES))
        at_least = "at least " if extra > CHUNK_BYTES else ""
        raise DatasetError(f"{path}: {at_least}{extra} bytes beyond the {dims} data")
    if not dtype.isnative:
        array.byteswap(inplace=True)  # in place: no second copy of the payload
        array = array.view(dtype.newbyteorder("="))
    return array.reshape(dims)


def read_idx(
    path: str | os.PathLike[str], *, magic: int | None = None, max_bytes: int = IDX_MAX_BYTES
) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array, checking it thoroughly.

    The header is read from the (decompressing) stream first; the payload it declares is
    then checked before anything is allocated for it: it must be at most ``max_bytes``, and
    at most what the file can hold (its own size for a raw file; 1032 times the compressed
    size for gzip, the most deflate can expand). Exactly the declared payload is then read
    into one array, and at most one more 64 KiB chunk to detect extra data, so a gzip bomb
    is never decompressed beyond that. Memory used is the declared payload plus less than
    1 MiB of buffers (tests/datasets/test_datasets_fuzz.py measures it).

    Args:
        path: The file; it must be a regular file.
        magic: The magic number required (e.g. :data:`IDX_IMAGES_MAGIC`), or None for any valid
            IDX magic number.
        max_bytes: The largest payload (decompressed, header excluded) accepted, in bytes;
            :data:`IDX_MAX_BYTES` (1 GiB) by default.

    Returns:
        A new, writable array with the dimensions stated in the header, in native byte order
        (uint8 for MNIST files).

    Raises:
        DatasetError: (a ``ValueError``) Naming the file, if it cannot be read or is not a
            regular file, its magic number is wrong, its gzip stream is corrupt, its header
            declares more than 32 dimensions or more than ``max_bytes`` (or more than the
            file can hold), or its
            payload is shorter or longer than its header says.
        TypeError, ValueError: If ``max_bytes`` is not a non-negative int.
    """
    path = Path(path)
    max_bytes = check_limit("max_bytes", max_bytes)
    with open_regular(path) as (file, size):
        try:
            gz = file.read(2) == _GZIP_MAGIC
            file.seek(0)
            if not gz:
                return _read_payload(path, file, magic, max_bytes, size, gz=False)
            with gzip.GzipFile(fileobj=file, mode="rb") as stream:
                return _read_payload(path, stream, magic, max_bytes, size, gz=True)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise DatasetError(f"{path}: truncated or corrupt gzip file ({exc})") from exc
        except OSError as exc:
            raise DatasetError(f"{path}: cannot be read ({exc})") from exc


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
        DatasetError: If a file is missing or invalid, holds no images, the images are not
            28x28, the counts differ, or a label is not in 0..9.
    """
    images_path = _find_file(name, directory, IDX_FILES[f"{part}_images"])
    labels_path = _find_file(name, directory, IDX_FILES[f"{part}_labels"])
    images = read_idx(images_path, magic=IDX_IMAGES_MAGIC)
    if len(images) == 0:
        raise DatasetError(
            f"{images_path}: holds no images (its header says {images.shape}); an "
            "MNIST-format images file needs at least one"
        )
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

    Each file is read by :func:`read_idx` with its default limit: a payload above
    :data:`IDX_MAX_BYTES` (1 GiB) or above what the file can hold is refused before anything
    is allocated for it, and a gzip file is decompressed only as far as its header declares.

    Raises:
        DatasetError: (a ``ValueError``) If the directory or a file is missing (the message
            names the files and where to get them), or a file is invalid: wrong magic number,
            truncated or longer than its header says, over the size limit, corrupt gzip, no
            images, images not 28x28, image and label counts differing, a label outside 0..9.
            The message names the file.
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

    Files are read with the same bounds as :func:`load_mnist`'s.

    Raises:
        DatasetError: (a ``ValueError``) As :func:`load_mnist`: a missing directory or file
            (named in the message, with where to get it) or an invalid file (named).
        TypeError, ValueError: For an invalid ``seed`` or ``n_train``.
    """
    return _load("fashion-mnist", seed, data_dir, n_train, dtype)
