"""Writing into an output directory without ever writing through a link out of it.

Every file ``manifoldwalk plot`` writes (figures, CSV, JSON, ``.npz``, ``report.md``,
``report.html``) goes through :class:`OutputDir`:

- a file is written to a new temporary file in its directory (created exclusively, never
  through an existing name), flushed to disk, then renamed over its name. A symbolic link, hard
  link or special file already at that name is therefore *replaced* by the new file: the link
  itself goes, and whatever it pointed to is left exactly as it was (content and permissions);
- a directory below the output root that is a symbolic link (or not a directory) is refused
  with a :class:`LinkError` naming it, before anything is written there; the root itself is
  the caller's choice and may be a link;
- new files get the permissions of any new file, ``0666`` less the umask; nothing is chmod-ed.

On POSIX systems the directories are walked with ``O_NOFOLLOW`` file descriptors and the file
is created and renamed relative to its directory's descriptor, so a link swapped in between
the check and the write is not followed either; elsewhere the checks are made on the paths.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from manifoldwalk import _json

__all__ = ["LinkError", "OutputDir"]

_AT = (
    os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")
)
"""Whether files can be created and renamed relative to a directory descriptor (POSIX)."""


class LinkError(ValueError):
    """A directory below the output root is a link (or not a directory): nothing is written."""


def _check_part(part: str, rel: str) -> None:
    if part in ("", ".", "..") or "/" in part or os.sep in part:
        raise ValueError(
            f"{rel!r} is not a plain relative path inside the output directory "
            f"(component {part!r}); name files and folders without '..' or absolute parts."
        )


class OutputDir:
    """A directory below an output root, written to only through real directories.

    Args:
        root: The output root (``--out``); created if missing. It may itself be a link.
        parts: The sub-directories below ``root``, one name each (created on first write).

    Raises:
        ValueError: A part that is empty, ``.``, ``..`` or holds a separator.
    """

    def __init__(self, root: str | os.PathLike[str], parts: Sequence[str] = ()) -> None:
        self.root = Path(root)
        self.parts = tuple(str(p) for p in parts)
        for p in self.parts:
            _check_part(p, "/".join(self.parts))

    @property
    def path(self) -> Path:
        """The directory's path."""
        return self.root.joinpath(*self.parts)

    def sub(self, relative: str | os.PathLike[str]) -> OutputDir:
        """The directory ``relative`` below this one (e.g. an experiment's label).

        Args:
            relative: A relative path without ``..``.

        Returns:
            The :class:`OutputDir`.

        Raises:
            ValueError: An absolute path or one with ``..``.
        """
        rel = PurePath(relative)
        if rel.is_absolute():
            raise ValueError(f"{str(relative)!r} is absolute; give a path inside the output")
        return OutputDir(self.root, self.parts + rel.parts)

    def make(self) -> Path:
        """Create the directory (and those above it up to the root) and check it.

        Returns:
            Its path.

        Raises:
            LinkError: A directory on the way is a link or not a directory.
        """
        with self._directory():
            pass
        return self.path

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write ``data`` to the file ``name`` in this directory, atomically and never through
        a link (a link or special file at ``name`` is replaced, its target untouched).

        Args:
            name: The file's name (no directory part).
            data: The contents.

        Returns:
            The file's path.

        Raises:
            LinkError: A directory on the way is a link or not a directory.
            IsADirectoryError: ``name`` is a directory.
        """
        _check_part(name, name)
        with self._directory() as fd:
            try:
                if fd is None:
                    self._write_by_path(name, data)
                else:
                    self._write_at(fd, name, data)
            except IsADirectoryError:
                raise IsADirectoryError(
                    f"{self.path / name} is a directory where a file is written; remove it or "
                    "choose another --out"
                ) from None
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        """Write UTF-8 text (see :meth:`write_bytes`)."""
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as indented, strict JSON with sorted keys (see :meth:`write_bytes`):
        a non-finite number is ``null`` with a ``<key>_note`` beside it saying what it was."""
        return self.write_text(name, _json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def write_csv(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
        """Write a CSV with a header row; floats with ``repr`` precision (see :meth:`write_bytes`).

        Args:
            name: The file's name.
            columns: The header.
            rows: The rows, each as long as ``columns``.

        Returns:
            The file's path.
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])
        return self.write_text(name, buf.getvalue())

    def write_npz(self, name: str, **arrays: Any) -> Path:
        """Write arrays to an uncompressed ``.npz`` (no pickled objects; see :meth:`write_bytes`).

        Raises:
            ValueError: An array of object dtype (it would need pickle).
        """
        clean = {k: np.asarray(v) for k, v in arrays.items()}
        for k, v in clean.items():
            if v.dtype == object:
                raise ValueError(f"array {k!r} has object dtype; refusing to pickle it")
        buf = io.BytesIO()
        np.savez(buf, **clean)
        return self.write_bytes(name, buf.getvalue())

    # --- the walk down from the root --------------------------------------------------------

    def _refuse(self, depth: int, why: str) -> LinkError:
        where = self.root.joinpath(*self.parts[: depth + 1])
        return LinkError(
            f"{where} {why}; refusing to write through it (it would lead out of the output "
            f"directory {self.root}). Remove it or choose another --out."
        )

    @contextmanager
    def _directory(self) -> Iterator[int | None]:
        """This directory, created as needed: an ``O_NOFOLLOW`` descriptor (POSIX) or None."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not _AT:
            self._check_by_path()
            yield None
            return
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.root, flags)
        try:
            for depth, part in enumerate(self.parts):
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                try:
                    child = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as err:
                    info = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    why = "is a link" if stat.S_ISLNK(info.st_mode) else "is not a directory"
                    raise self._refuse(depth, why) from err
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _check_by_path(self) -> None:
        here = self.root
        for depth, part in enumerate(self.parts):
            here = here / part
            if not os.path.lexists(here):
                here.mkdir()
            if here.is_symlink() or getattr(os.path, "isjunction", lambda _: False)(here):
                raise self._refuse(depth, "is a link")
            if not here.is_dir():
                raise self._refuse(depth, "is not a directory")

    # --- one file ---------------------------------------------------------------------------

    def _write_at(self, fd: int, name: str, data: bytes) -> None:
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        out = os.open(tmp, flags, 0o666, dir_fd=fd)
        try:
            with os.fdopen(out, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=fd)
            except FileNotFoundError:
                pass
            raise

    def _write_by_path(self, name: str, data: bytes) -> None:
        directory = self.path
        handle, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(handle, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # our own new file, not a target
            os.replace(tmp, directory / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
