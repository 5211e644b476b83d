"""Low-level pieces of run directories' integrity: the error naming a file, hashes, the bytes
of the files a run writes, bounded reading of an array, and the checks on listed names.

Imported by :mod:`manifoldwalk.experiments.rundir` (which re-exports the public names) and by
the run's index (:mod:`manifoldwalk.experiments._index`); it imports neither.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from manifoldwalk import _json

__all__ = [
    "RunDirError",
    "csv_bytes",
    "csv_columns",
    "entry_ok",
    "file_sha256",
    "inside",
    "json_bytes",
    "npz_array_bounded",
    "npz_bytes",
    "sha256",
    "write_temporary",
]


class RunDirError(ValueError):
    """A file of a run directory is not what the run wrote, or not what a run writes.

    Args:
        path: The file (or directory) at fault.
        problem: What is wrong with it.

    Attributes:
        path: The file at fault.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the indented, key-sorted, strict JSON a run writes (with a final newline):
    a non-finite number is ``null`` with a note beside it (:mod:`manifoldwalk._json`)."""
    return (_json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    """Arrays as an uncompressed ``.npz`` file's bytes.

    Raises:
        ValueError: If an array has object dtype (it would need pickle).
    """
    buf = io.BytesIO()
    clean = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in clean.items():
        if v.dtype == object:
            raise ValueError(f"array {k!r} has object dtype; refusing to pickle it")
    np.savez(buf, **clean)
    return buf.getvalue()


def csv_bytes(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A CSV file's bytes: the header, then the rows, floats with ``repr`` precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])
    return buf.getvalue().encode()


def csv_columns(text: str, path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Parse the text of a CSV written by :func:`atomic_write_csv` into float columns.

    Args:
        text: The file's text.
        path: The file, for the error message.

    Returns:
        Column name → float64 array.

    Raises:
        RunDirError: No header, a row's length differs from the header's, or a cell is no
            number.
    """
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RunDirError(path, "it is empty (no header row)")
    header, body = rows[0], rows[1:]
    if len(set(header)) != len(header):
        raise RunDirError(path, f"its header names a column twice: {header}")
    for i, r in enumerate(body):
        if len(r) != len(header):
            raise RunDirError(
                path, f"row {i + 1} has {len(r)} cells, the header {len(header)} columns"
            )
    try:
        return {name: np.array([float(r[i]) for r in body]) for i, name in enumerate(header)}
    except ValueError as err:
        raise RunDirError(path, f"a cell is no number ({err})") from None


def sha256(data: bytes) -> str:
    """The SHA-256 of ``data``, in hex."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's contents, in hex (read in blocks, never whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def npz_array_bounded(data: bytes | None, key: str, path: str | os.PathLike[str]) -> np.ndarray:
    """Read one array of an uncompressed ``.npz`` file, allocating no more than it holds.

    The array's header is checked against the bytes that follow it before anything is
    allocated, so a header claiming a huge shape cannot ask for memory the file does not hold.

    Args:
        data: The file's bytes (None: read the member from ``path``).
        key: The array's name (``"theta"``).
        path: The file, for the error message.

    Returns:
        The array (a copy, in the header's dtype and shape).

    Raises:
        RunDirError: The bytes are no zip, the member is missing or compressed, its header does
            not parse or holds Python objects, or its size disagrees with the bytes there.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data) if data is not None else path) as zf:
            info = zf.getinfo(f"{key}.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"its {key!r} array is compressed (the runs write none)")
            raw = zf.read(info)  # stored: no more than the file's own bytes
        f = io.BytesIO(raw)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"its {key!r} array has format version {version}")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise RunDirError(path, f"it does not load ({type(err).__name__}: {err})") from None
    if dtype.hasobject:
        raise RunDirError(path, f"its {key!r} array holds Python objects; refusing to unpickle")
    count = 1
    for n in shape:
        count *= int(n)
    body = memoryview(raw)[f.tell() :]
    if count * dtype.itemsize != len(body):
        raise RunDirError(
            path,
            f"its {key!r} array claims shape {shape} ({count * dtype.itemsize} bytes) but "
            f"holds {len(body)} bytes",
        )
    array = np.frombuffer(body, dtype=dtype, count=count)
    return array.reshape(shape, order="F" if fortran else "C").copy()


def entry_ok(info: Any) -> bool:
    """Whether an index or DONE entry is ``{"size": int, "sha256": 64 hex digits, ...}``."""
    return (
        isinstance(info, dict)
        and isinstance(info.get("size"), int)
        and not isinstance(info.get("size"), bool)
        and isinstance(info.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", info["sha256"]) is not None
    )


def inside(directory: Path, name: Any) -> Path | None:
    """``directory / name`` for a relative POSIX name that stays inside ``directory`` and
    passes through no symbolic link; None otherwise (a listing naming ``../x`` or a link out
    is never followed)."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        return None
    pure = PurePosixPath(name)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in pure.parts):
        return None
    path = directory
    for part in pure.parts:
        path = path / part
        if path.is_symlink():
            return None
    return path


def write_temporary(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` and flush it to disk.

    Args:
        path: The file the temporary one is to replace (its directory is created if needed).
        data: The contents.

    Returns:
        The temporary file (``.<name>.<random>.tmp``); the caller renames or deletes it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)
