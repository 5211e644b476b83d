"""Reading dataset files without trusting the sizes they claim.

Files are opened read-only and must be regular files (a FIFO or device has no size to check
against, and opening one could block). Payloads are read in chunks into an array allocated
once, after the caller has checked the size it asks for.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from ._base import DatasetError

__all__ = ["CHUNK_BYTES", "check_limit", "open_regular", "read_array"]

CHUNK_BYTES = 1 << 16
"""Bytes read (or decompressed) per call, so that no temporary buffer is larger than this."""


def check_limit(name: str, value: object) -> int:
    """Return ``value`` if it is a non-negative int, the size limit argument ``name``.

    Raises:
        TypeError: If ``value`` is not an int (bool is refused).
        ValueError: If it is negative.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (a number of bytes), got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


@contextmanager
def open_regular(path: Path) -> Iterator[tuple[BinaryIO, int]]:
    """Open ``path`` read-only and yield the file and its size in bytes.

    Args:
        path: The file.

    Yields:
        ``(file, size)``: a buffered binary file positioned at the start, and its size.

    Raises:
        DatasetError: Naming the file, if it cannot be opened or is not a regular file.
    """
    # O_NONBLOCK (POSIX): opening a FIFO must not wait for a writer; it is refused below.
    nonblock = getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DatasetError(f"{path}: not a regular file; point the loader at the data file")
        if nonblock:
            os.set_blocking(fd, True)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file, info.st_size


def read_array(file: BinaryIO, dtype: npt.DTypeLike, count: int) -> tuple[np.ndarray, int]:
    """Read up to ``count`` items of ``dtype`` from ``file`` into one new array.

    The caller checks ``count`` against its limits first: this allocates exactly
    ``count * itemsize`` bytes, plus at most :data:`CHUNK_BYTES` of transient buffers.

    Args:
        file: A binary stream (a file, or a decompressing reader).
        dtype: Element type, byte order included.
        count: Number of items the header or format promises.

    Returns:
        ``(array, n_read)``: the array of ``count`` items and how many bytes were actually
        read; fewer than ``count * itemsize`` means the stream ended early.

    Raises:
        MemoryError: If the array cannot be allocated.
        OSError, EOFError: As raised by the stream.
    """
    out = np.empty(count, dtype)
    view = memoryview(out.view(np.uint8))
    filled = 0
    while filled < len(view):
        n = file.readinto(view[filled : filled + CHUNK_BYTES])
        if not n:
            break
        filled += n
    return out, filled
