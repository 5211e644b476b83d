"""The layout of a run directory, crash-safe writes into it, and its integrity records.

One seed of one experiment writes ``OUT/<experiment>/seed-<k>/`` (``k`` in at least 3 digits)::

    config.json          the full configuration (experiment, options, seed)
    provenance.json      what each session that ran the seed ran with (no option of the run)
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
    index.json           the size and SHA-256 of every file above, recorded as it is written
    DONE                 written last: the size and SHA-256 of every file of the finished run

Beside the seed directories, ``OUT/<experiment>/`` holds the table and the tidy histories of
its finished seeds (``table.md``/``.csv``/``.json``, ``history.csv``, ``wd.csv``): outputs,
never read back (:mod:`manifoldwalk.experiments.table`). Every field of every file, with its
unit, is in docs/run_format.md. JSON is strict: a number that is not finite is ``null`` with a
``<key>_note`` beside it (:func:`atomic_write_json`, :func:`read_json`).

Every file is written to a temporary name in the same directory, flushed to disk and then
renamed over the target (:func:`os.replace`, atomic on POSIX), so a killed run never leaves a
half-written file under a final name. The run records each file it writes in ``index.json``
(:class:`RunFiles`): a resumed run reuses a saved file only when it still has the recorded size
and SHA-256, so a file changed, truncated or added by anything but the run is recomputed, never
trusted. A run counts as finished only when ``DONE`` exists and every file it lists still has
the recorded size and hash (:func:`is_finished`); readers read only the files ``DONE`` lists
(:func:`finished_files`, :func:`read_listed`). A file that does not load is never listed in
``DONE`` (:func:`mark_done` refuses it).

The index is kept by :class:`RunFiles` (``_index``) and the low-level checks live in
``_integrity``; both are re-exported here, so this module is the one to import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk import _json
from manifoldwalk._atomic import atomic_write_bytes
from manifoldwalk.experiments._index import INDEX, RunFiles
from manifoldwalk.experiments._integrity import (
    RunDirError,
    csv_bytes,
    csv_columns,
    entry_ok,
    file_sha256,
    inside,
    json_bytes,
    npz_array_bounded,
    npz_bytes,
    sha256,
)

__all__ = [
    "DONE",
    "INDEX",
    "RunDirError",
    "RunFiles",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_npz",
    "check_listed",
    "clean_temporary_files",
    "csv_columns",
    "done_listing",
    "finished_files",
    "is_finished",
    "is_temporary",
    "mark_done",
    "npz_array_bounded",
    "npz_error",
    "read_csv",
    "read_json",
    "read_listed",
    "seed_dir",
    "seed_dirs",
    "seed_of",
    "stray_seed_dirs",
]

DONE = "DONE"
"""The name of the completion marker, written last."""

_SEED_NAME = re.compile(r"seed-([0-9]+)")
_TEMPORARY = re.compile(r"\..+\.tmp(\.npz)?")  # ours: ".<name>.<random>.tmp"


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


def seed_of(path: str | os.PathLike[str]) -> int | None:
    """Return the seed a directory's name gives, or None when it is not a seed directory's name.

    Only the names :func:`seed_dir` gives count (``seed-000``, ``seed-1234``): a copy named
    ``seed-000.bak`` or ``seed-0`` is no seed directory.

    Args:
        path: The directory.

    Returns:
        The seed, or None.
    """
    m = _SEED_NAME.fullmatch(Path(path).name)
    if m is None or Path(path).name != f"seed-{int(m[1]):03d}":
        return None
    return int(m[1])


def _named_seed_dirs(root: Path) -> list[Path]:
    """Directories named ``seed-*`` at or under ``root``, not inside another such directory
    (a copy inside a seed directory is part of that run's directory, not a run of its own)."""
    if root.name.startswith("seed-"):
        return [root] if root.is_dir() else []
    found = sorted(p for p in root.rglob("seed-*") if p.is_dir() and not p.is_symlink())
    return [
        p
        for p in found
        if not any(q.name.startswith("seed-") for q in p.relative_to(root).parents if q.parts)
    ]


def seed_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """Return the seed directories under ``root`` (itself one, or ``root/seed-<k>``, or deeper).

    Args:
        root: A seed directory, an experiment directory or an output root.

    Returns:
        Every directory at or under ``root`` named as :func:`seed_dir` names them and not
        inside another ``seed-*`` directory, sorted (a symbolic link to a directory is not
        followed).
    """
    return [p for p in _named_seed_dirs(Path(root)) if seed_of(p) is not None]


def stray_seed_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """Return the directories at or under ``root`` named ``seed-*`` that are no seed directory.

    A copy such as ``seed-000.bak`` is never read as a run; this lists such copies so that a
    table can say it left them out.

    Args:
        root: A seed directory, an experiment directory or an output root.

    Returns:
        Those directories, sorted.
    """
    return [p for p in _named_seed_dirs(Path(root)) if seed_of(p) is None]


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON atomically.

    Args:
        path: The target file.
        obj: A JSON-serialisable object; a non-finite float is written as ``null`` with a
            ``<key>_note`` beside it saying what it was (:mod:`manifoldwalk._json`).

    Raises:
        ValueError: A non-finite float with no key to note it beside.
    """
    atomic_write_bytes(path, json_bytes(obj))


def atomic_write_npz(path: str | os.PathLike[str], **arrays: Any) -> None:
    """Write numpy arrays to an uncompressed ``.npz`` atomically (no pickled objects).

    Args:
        path: The target file.
        **arrays: Name → array; object arrays are refused.

    Raises:
        ValueError: If an array has object dtype (it would need pickle).
    """
    atomic_write_bytes(path, npz_bytes(arrays))


def atomic_write_csv(
    path: str | os.PathLike[str], columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Write a CSV with a header row atomically; floats are written with ``repr`` precision.

    Args:
        path: The target file.
        columns: The header.
        rows: The rows, each as long as ``columns``.
    """
    atomic_write_bytes(path, csv_bytes(columns, rows))


def read_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a CSV written by :func:`atomic_write_csv` into float columns.

    Args:
        path: The file.

    Returns:
        Column name → float64 array (empty arrays for a header-only file).

    Raises:
        RunDirError: The file is empty, a row's length differs from the header's, or a cell is
            no number.
    """
    with open(path, newline="") as f:
        return csv_columns(f.read(), path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, turning each noted ``null`` back into the number it was.

    Args:
        path: The file.

    Returns:
        The decoded object (a ``null`` with a ``<key>_note`` is NaN or ±inf again; see
        :mod:`manifoldwalk._json`).

    Raises:
        ValueError: The file is not JSON.
    """
    with open(path, "rb") as f:
        return _json.loads(f.read())


def _files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file()
        and p.name not in (DONE, INDEX)
        and not p.name.endswith(".tmp")
        and not is_temporary(p.name)
    )


def npz_error(path: str | os.PathLike[str]) -> Exception | None:
    """Return why an ``.npz`` file does not load (every array read), or None when it does.

    Args:
        path: The file (or an open binary file object).

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


def is_temporary(name: str) -> bool:
    """Whether a file name is one the writers here give their temporary files.

    Args:
        name: The file's name (no directory).

    Returns:
        True for ``.<name>.<random>.tmp`` (and the older ``.checkpoint.tmp.npz``).
    """
    return _TEMPORARY.fullmatch(name) is not None


def clean_temporary_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes left in a run directory.

    Only names that the writers here give their temporary files (``.<name>.<random>.tmp``,
    and ``.checkpoint.tmp.npz``) are removed, and only regular files.

    Args:
        directory: The seed's run directory (it need not exist).

    Returns:
        The files deleted.
    """
    directory = Path(directory)
    gone = []
    if not directory.is_dir():
        return gone
    for p in sorted(directory.rglob(".*")):
        if is_temporary(p.name) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def _check_loads(p: Path) -> None:
    """Raise ValueError when ``p`` is a ``.npz`` or ``.json`` file that does not load."""
    err: Exception | None = npz_error(p) if p.suffix == ".npz" else None
    if p.suffix == ".json":
        try:
            read_json(p)
        except (OSError, ValueError) as exc:
            err = exc
    if err is not None:
        raise ValueError(f"{p} does not load ({type(err).__name__}: {err}); not marking done")


def mark_done(
    directory: str | os.PathLike[str],
    extra: Mapping[str, Any] | None = None,
    *,
    files: RunFiles | None = None,
) -> None:
    """Write the ``DONE`` marker listing the size and SHA-256 of every file of the run.

    Args:
        directory: The seed's run directory.
        extra: More JSON fields to store in the marker.
        files: The run's record of what it wrote: then exactly the files it records are
            listed, each checked against its recorded hash (a stray file left in the directory
            is not listed, so no reader sees it). None: every file in the directory is listed.

    Raises:
        ValueError: A ``.npz`` or ``.json`` file of the run does not load, or (with ``files``)
            a recorded file is missing or changed (:class:`RunDirError`).
    """
    directory = Path(directory)
    if files is not None:
        listing = files.listing()
        for name in listing:
            _check_loads(directory / name)
    else:
        paths = _files(directory)
        for p in paths:  # never bless a file that does not load
            _check_loads(p)
        listing = {
            p.relative_to(directory).as_posix(): {
                "size": p.stat().st_size,
                "sha256": file_sha256(p),
            }
            for p in paths
        }
    atomic_write_json(directory / DONE, {"files": listing, **(extra or {})})


def finished_files(directory: str | os.PathLike[str]) -> dict[str, dict[str, Any]] | None:
    """Return what the ``DONE`` marker of a finished, intact run lists; None otherwise.

    A run is finished when its ``DONE`` marker exists, parses, lists ``config.json`` and
    ``summary.json``, and every file it lists lies inside the directory (no ``..``, no link
    out) and exists with the recorded size and SHA-256.

    Args:
        directory: The seed's run directory.

    Returns:
        Name → ``{"size", "sha256"}`` of every file of the run, or None.
    """
    directory = Path(directory)
    try:
        listing = read_json(directory / DONE)["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(listing, dict) or not {"config.json", "summary.json"} <= set(listing):
        return None
    for name, info in listing.items():
        p = inside(directory, name)
        if p is None or not entry_ok(info):
            return None
        try:
            if (
                not p.is_file()
                or p.stat().st_size != info["size"]
                or file_sha256(p) != info["sha256"]
            ):
                return None
        except OSError:
            return None
    return listing


def is_finished(directory: str | os.PathLike[str]) -> bool:
    """Return True when the run in ``directory`` finished and is intact.

    A run is finished when its ``DONE`` marker exists, parses, and every file it lists exists
    with the recorded size and SHA-256 (so a file truncated or rewritten afterwards makes the
    run unfinished); see :func:`finished_files`.

    Args:
        directory: The seed's run directory.

    Returns:
        Whether the run can be skipped.
    """
    return finished_files(directory) is not None


def done_listing(directory: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Return what the ``DONE`` marker of a run lists, its form checked (not the files).

    Args:
        directory: The seed's run directory.

    Returns:
        Name → ``{"size", "sha256"}``.

    Raises:
        RunDirError: ``DONE`` is missing, does not load, or is not a listing of files inside
            the directory.
    """
    directory = Path(directory)
    path = directory / DONE
    try:
        listing = read_json(path)["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunDirError(path, f"it does not load ({type(err).__name__}: {err})") from None
    if not isinstance(listing, dict) or not all(
        entry_ok(v) and inside(directory, k) is not None for k, v in listing.items()
    ):
        raise RunDirError(path, "it is not a listing of the run's files with their hashes")
    return listing


def _listed(directory: Path, name: str, listing: Mapping[str, Any]) -> tuple[Path, Mapping]:
    """The path of a file the ``DONE`` listing names, inside ``directory``, and its entry.

    Raises:
        RunDirError: The listing does not name the file, or its name leads out of the directory.
    """
    info = listing.get(name)
    path = inside(directory, name)
    if info is None or path is None:
        raise RunDirError(directory / name, f"it is not listed in {directory / DONE}")
    return path, info


def check_listed(directory: str | os.PathLike[str], name: str, listing: Mapping[str, Any]) -> Path:
    """Check a file of a finished run against the ``DONE`` listing (streamed, not kept).

    Args:
        directory: The seed's run directory.
        name: The file's path relative to it.
        listing: The run's ``DONE`` listing (:func:`done_listing`, :func:`finished_files`).

    Returns:
        The file's path.

    Raises:
        RunDirError: The listing does not name the file, or the file is not as listed.
    """
    directory = Path(directory)
    path, info = _listed(directory, name, listing)
    try:
        same = path.stat().st_size == info.get("size") and file_sha256(path) == info.get("sha256")
    except OSError as err:
        raise RunDirError(path, f"it cannot be read ({err.strerror or err})") from None
    if not same:
        raise RunDirError(path, f"it changed after {directory / DONE} was written")
    return path


def read_listed(directory: str | os.PathLike[str], name: str, listing: Mapping[str, Any]) -> bytes:
    """Read a file of a finished run, checking it against the ``DONE`` listing as it is read.

    Args:
        directory: The seed's run directory.
        name: The file's path relative to it.
        listing: What :func:`finished_files` returned for the directory.

    Returns:
        The file's bytes.

    Raises:
        RunDirError: The listing does not name the file, or the file is not as listed.
    """
    directory = Path(directory)
    path, info = _listed(directory, name, listing)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RunDirError(path, f"it cannot be read ({err.strerror or err})") from None
    if len(data) != info.get("size") or sha256(data) != info.get("sha256"):
        raise RunDirError(path, f"it changed after {directory / DONE} was written")
    return data
