"""The layout of a run directory and crash-safe writes into it.

One seed of one experiment writes ``OUT/<experiment>/seed-<k>/``::

    config.json          the full configuration (experiment, options, seed, versions)
    phase1.npz           θ0 after phase 1 (float32) and its train/test metrics
    walk/checkpoint.npz  the walk so far (a WalkResult without trajectory; for resuming)
    walk/thetas-<n>.npz  θ every ``save_every`` predictor steps up to step n (float32)
    metrics.csv          the walk's metrics every ``record_every`` predictor steps
    final.npz            the walk's final θ (float32)
    wd/<split>-<i>.json  one weight-decay run: λ, epochs, metrics (split "full" or "val";
                         i: the λ's position in the λ list, so a directory serves one list)
    wd/<split>-<i>.npz   its final θ (float32)
    wd.csv               every weight-decay run, one row each
    summary.json         the seed's headline numbers
    DONE                 written last: the size and SHA-256 of every other file

Every file is written to a temporary name in the same directory and then renamed over the
target (:func:`os.replace`, atomic on POSIX), so a killed run never leaves a half-written file
under a final name. A run counts as finished only when ``DONE`` exists and every file it lists
still has the recorded size and hash (:func:`is_finished`); anything else is redone. A file
that does not load is never listed in ``DONE`` (:func:`mark_done` refuses it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DONE",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_npz",
    "is_finished",
    "mark_done",
    "npz_error",
    "read_csv",
    "read_json",
    "seed_dir",
    "seed_dirs",
]

DONE = "DONE"
"""The name of the completion marker, written last."""


def seed_dir(out: str | os.PathLike[str], experiment: str, seed: int) -> Path:
    """Return the run directory of one seed: ``out/experiment/seed-<seed, 3 digits>``.

    Args:
        out: The output root (``--out``).
        experiment: The experiment's name.
        seed: The seed.

    Returns:
        The path (not created).
    """
    return Path(out) / experiment / f"seed-{seed:03d}"


def seed_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """Return the seed directories under ``root`` (itself one, or ``root/seed-*``, or deeper).

    Args:
        root: A seed directory, an experiment directory or an output root.

    Returns:
        Every directory named ``seed-*`` at or under ``root``, sorted.
    """
    root = Path(root)
    if root.name.startswith("seed-"):
        return [root]
    return sorted(p for p in root.rglob("seed-*") if p.is_dir())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, then rename).

    Args:
        path: The target; its directory is created if needed.
        data: The contents.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically.

    Args:
        path: The target file.
        obj: A JSON-serialisable object (non-finite floats are written as ``NaN``/``Infinity``).
    """
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def atomic_write_npz(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Write numpy arrays to an uncompressed ``.npz`` atomically (no pickled objects).

    Args:
        path: The target file.
        **arrays: Name → array; object arrays are refused.

    Raises:
        ValueError: If an array has object dtype (it would need pickle).
    """
    buf = io.BytesIO()
    clean = {k: np.asarray(v) for k, v in arrays.items()}
    for k, v in clean.items():
        if v.dtype == object:
            raise ValueError(f"array {k!r} has object dtype; refusing to pickle it")
    np.savez(buf, **clean)
    atomic_write_bytes(path, buf.getvalue())


def atomic_write_csv(
    path: str | os.PathLike[str], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Write a CSV with a header row atomically; floats are written with ``repr`` precision.

    Args:
        path: The target file.
        columns: The header.
        rows: The rows, each as long as ``columns``.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])
    atomic_write_bytes(path, buf.getvalue().encode())


def read_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a CSV written by :func:`atomic_write_csv` into float columns.

    Args:
        path: The file.

    Returns:
        Column name → float64 array (empty arrays for a header-only file).
    """
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {name: np.array([float(r[i]) for r in body]) for i, name in enumerate(header)}


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file.

    Args:
        path: The file.

    Returns:
        The decoded object.
    """
    with open(path) as f:
        return json.load(f)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.name != DONE and not p.name.endswith(".tmp")
    )


def npz_error(path: str | os.PathLike[str]) -> Exception | None:
    """Return why an ``.npz`` file does not load (every array read), or None when it does.

    Args:
        path: The file.

    Returns:
        The error (a truncated file gives ``BadZipFile``, ``EOFError``, ``ValueError``…), or
        None for a sound file.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            for k in f.files:
                f[k]
    except Exception as err:  # noqa: BLE001 (any failure to load means damaged)
        return err
    return None


def mark_done(directory: str | os.PathLike[str], extra: Mapping[str, Any] | None = None) -> None:
    """Write the ``DONE`` marker listing the size and SHA-256 of every file of the run.

    Args:
        directory: The seed's run directory.
        extra: More JSON fields to store in the marker.

    Raises:
        ValueError: A ``.npz`` or ``.json`` file of the run does not load.
    """
    directory = Path(directory)
    files = _files(directory)
    for p in files:  # never bless a file that does not load
        err = npz_error(p) if p.suffix == ".npz" else None
        if p.suffix == ".json":
            try:
                read_json(p)
            except (OSError, ValueError) as exc:
                err = exc
        if err is not None:
            raise ValueError(f"{p} does not load ({type(err).__name__}: {err}); not marking done")
    listing = {
        str(p.relative_to(directory)): {"size": p.stat().st_size, "sha256": _digest(p)}
        for p in files
    }
    atomic_write_json(directory / DONE, {"files": listing, **(extra or {})})


def is_finished(directory: str | os.PathLike[str]) -> bool:
    """Return True when the run in ``directory`` finished and is intact.

    A run is finished when its ``DONE`` marker exists, parses, and every file it lists exists
    with the recorded size and SHA-256 (so a file truncated or rewritten afterwards makes the
    run unfinished).

    Args:
        directory: The seed's run directory.

    Returns:
        Whether the run can be skipped.
    """
    directory = Path(directory)
    try:
        listing = read_json(directory / DONE)["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for name, info in listing.items():
        p = directory / name
        try:
            if p.stat().st_size != info["size"] or _digest(p) != info["sha256"]:
                return False
        except OSError:
            return False
    return "summary.json" in listing
