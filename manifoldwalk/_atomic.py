"""Files written whole or not at all: a temporary file beside the target, fsync, then rename.

An interrupted write (a crash, a full disk, Ctrl-C) leaves the previous file as it was and at
most a ``.<name>.<random>.tmp`` beside it, never half a file under the target's name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "atomic_write_bytes"]


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write; on a clean exit it replaces ``path`` whole.

    Args:
        path: The target; its directory is created if needed.

    Yields:
        The temporary file, open for writing.

    Raises:
        OSError: From the filesystem; the temporary file is removed and ``path`` left as it was
            (also when the body raises).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, then rename).

    Args:
        path: The target; its directory is created if needed.
        data: The contents.
    """
    with atomic_file(path) as f:
        f.write(data)
