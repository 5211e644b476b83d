"""The record a run keeps of every file it writes (``index.json``), and its writes.

See :class:`RunFiles`; the layout of a run directory is in
:mod:`manifoldwalk.experiments.rundir`, which re-exports :class:`RunFiles` and :data:`INDEX`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from manifoldwalk.experiments._integrity import (
    RunDirError,
    csv_bytes,
    entry_ok,
    file_sha256,
    inside,
    json_bytes,
    npz_bytes,
    sha256,
    write_temporary,
)

__all__ = ["INDEX", "RunFiles"]

INDEX = "index.json"
"""The name of the record of every file a run wrote (size and SHA-256), kept as it writes."""


class RunFiles:
    """The files one seed's run has written, with the size and SHA-256 of each (``index.json``).

    Every write goes through this object: the file is written to a temporary name and
    flushed, the index records its new hash (and, until the rename is done, the hash of the
    file it replaces), the file is renamed into place and the index is rewritten. A killed run
    thus leaves every indexed file either as it was or as it was to become, and a file that the
    index does not vouch for is never reused (:meth:`problem`).

    Args:
        directory: The seed's run directory (created on the first write).

    Attributes:
        directory: The run directory.
        unreadable: Why ``index.json`` could not be read (None when it could, or is absent):
            then nothing in the directory is vouched for and everything is recomputed.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._entries: dict[str, dict[str, Any]] = {}
        self.unreadable: str | None = None
        path = self.directory / INDEX
        if not path.exists():
            return
        try:
            entries = json.loads(path.read_bytes())["files"]
            if not isinstance(entries, dict) or not all(
                entry_ok(v) and (v.get("was") is None or entry_ok(v["was"]))
                for v in entries.values()
            ):
                raise ValueError("its entries are not {size, sha256} records")
            self._entries = entries
        except (OSError, ValueError, KeyError, TypeError) as err:
            self.unreadable = f"{path} does not load ({type(err).__name__}: {err})"

    @property
    def names(self) -> list[str]:
        """The names (relative to the directory) of the files the index records, sorted."""
        return sorted(self._entries)

    def _save(self) -> None:
        path = self.directory / INDEX
        tmp = write_temporary(path, json_bytes({"files": self._entries}))
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _commit(self, tmp: Path, name: str, size: int, sha256: str) -> None:
        """Rename the flushed temporary file ``tmp`` over ``name``, recording it first."""
        old = self._entries.get(name)
        if old is not None:
            old = {"size": old["size"], "sha256": old["sha256"]}
        self._entries[name] = {"size": size, "sha256": sha256, "was": old}
        self._save()
        os.replace(tmp, self.directory / name)
        self._entries[name] = {"size": size, "sha256": sha256}
        self._save()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write the file ``name`` (relative to the directory) atomically and record it.

        Args:
            name: The file's path relative to the run directory (``"wd/full-00.json"``).
            data: Its contents.
        """
        tmp = write_temporary(self.directory / name, data)
        try:
            self._commit(tmp, name, len(data), sha256(data))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``obj`` as indented JSON to ``name`` and record it (see :meth:`write_bytes`).

        Args:
            name: The file's path relative to the run directory.
            obj: A JSON-serialisable object.
        """
        self.write_bytes(name, json_bytes(obj))

    def write_npz(self, name: str, **arrays: Any) -> None:
        """Write arrays to the uncompressed ``.npz`` ``name`` and record it.

        Args:
            name: The file's path relative to the run directory.
            **arrays: Name → array; object arrays are refused.

        Raises:
            ValueError: If an array has object dtype (it would need pickle).
        """
        self.write_bytes(name, npz_bytes(arrays))

    def write_csv(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Write a CSV with a header row to ``name`` and record it.

        Args:
            name: The file's path relative to the run directory.
            columns: The header.
            rows: The rows, each as long as ``columns``.
        """
        self.write_bytes(name, csv_bytes(columns, rows))

    def write_with(self, name: str, write: Callable[[Path], object]) -> None:
        """Write ``name`` by calling ``write(path)`` on a temporary path, then fsync, record
        and rename it (for writers that take a path, such as ``WalkResult.save``).

        Args:
            name: The file's path relative to the run directory.
            write: Called with the temporary path; it must write the whole file there.
        """
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            write(Path(tmp))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            self._commit(Path(tmp), name, Path(tmp).stat().st_size, file_sha256(Path(tmp)))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _verify(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """The recorded entry the file matches (None) and otherwise why it matches none."""
        if self.unreadable is not None:
            return None, f"the run's index cannot vouch for it: {self.unreadable}"
        entry = self._entries.get(name)
        if entry is None:
            return None, (
                f"it is not recorded in {self.directory / INDEX} (written by hand, by an "
                "older version, or cut off before it was recorded)"
            )
        path = inside(self.directory, name)
        if path is None:
            return None, "it lies outside the run directory or behind a symbolic link"
        try:
            size, digest = path.stat().st_size, None
            for accepted in (entry, entry.get("was")):
                if accepted is not None and accepted["size"] == size:
                    digest = digest or file_sha256(path)
                    if digest == accepted["sha256"]:
                        return {"size": size, "sha256": digest}, None
        except OSError as err:
            return None, f"it cannot be read ({err.strerror or err})"
        return None, (
            f"its contents differ from what the run wrote (size and SHA-256 recorded in "
            f"{self.directory / INDEX})"
        )

    def problem(self, name: str) -> str | None:
        """Why the file ``name`` cannot be trusted, or None when it is as the run wrote it.

        Args:
            name: The file's path relative to the run directory.

        Returns:
            None when the file exists with the size and SHA-256 the index records (or those of
            the file it was replacing when a write was cut off); otherwise the reason, in words.
        """
        return self._verify(name)[1]

    def read_bytes(self, name: str) -> bytes:
        """The contents of ``name``, checked against the index.

        Args:
            name: The file's path relative to the run directory.

        Returns:
            The bytes.

        Raises:
            RunDirError: The file is missing or not as the run wrote it (see :meth:`problem`).
        """
        why = self.problem(name)
        if why is not None:
            raise RunDirError(self.directory / name, why)
        data = (self.directory / name).read_bytes()
        entry = self._entries[name]
        if sha256(data) not in (entry["sha256"], (entry.get("was") or {}).get("sha256")):
            raise RunDirError(self.directory / name, "it changed while it was read")
        return data

    def listing(self) -> dict[str, dict[str, Any]]:
        """Every recorded file that exists as the run wrote it, with its size and SHA-256.

        Returns:
            Name → ``{"size", "sha256"}`` of the file as it is now.

        Raises:
            RunDirError: A recorded file is missing or changed.
        """
        out = {}
        for name in self.names:
            matched, why = self._verify(name)
            if matched is None:
                raise RunDirError(self.directory / name, str(why))
            out[name] = matched
        return out
