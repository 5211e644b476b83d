"""Unpickling limited to plain containers and numpy arrays, for CIFAR10's python batches.

A pickle can name any importable callable and have it called while loading, so loading an
untrusted pickle is running untrusted code. :class:`RestrictedUnpickler` resolves no global
except the three that a pickled numpy array needs (the array reconstructor, ``numpy.ndarray``
and ``numpy.dtype``); everything else, ``os.system`` and custom classes included, is refused
before it could be called. Plain containers and scalars (dict, list, tuple, str, bytes, int,
float, bool, None) use pickle opcodes, not globals, and load as usual.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._base import DatasetError

__all__ = ["ALLOWED_GLOBALS", "RestrictedUnpickler", "restricted_load"]


def _array_reconstructor() -> Any:
    """Return numpy's array reconstructor (``numpy._core`` since numpy 2, else ``numpy.core``)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_RECONSTRUCT = _array_reconstructor()

ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
"""The only ``(module, name)`` globals a restricted pickle may reference, and what they map to.

Both module spellings of the array reconstructor are accepted, so that pickles written under
numpy 1 and numpy 2 load alike. Nothing is imported while unpickling: names map to objects
resolved when this module was imported.
"""


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` only resolves :data:`ALLOWED_GLOBALS`.

    Args:
        file: Binary file object to read the pickle from.
        source: Name of the file, quoted in errors.
        encoding: How to decode Python 2 ``str`` objects (``"bytes"`` keeps them as bytes,
            as CIFAR10's python batches need).
    """

    def __init__(self, file: IO[bytes], *, source: str, encoding: str = "bytes") -> None:
        """Create an unpickler reading ``file``; see the class docstring for the arguments."""
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed global; refuse any other without importing or calling it.

        Args:
            module: Module named by the pickle.
            name: Qualified name within the module.

        Returns:
            The object :data:`ALLOWED_GLOBALS` maps ``(module, name)`` to.

        Raises:
            DatasetError: Naming the file and the refused global, for anything not allowed.
        """
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(
                f"{self._source}: refused to unpickle the global {module}.{name}; only plain "
                "containers and numpy arrays are allowed (the file may be unsafe or not a "
                "CIFAR10 python batch)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids, which plain data never uses.

        Raises:
            DatasetError: Always, naming the file.
        """
        raise DatasetError(f"{self._source}: refused a persistent id in the pickle")


def restricted_load(path: str | os.PathLike[str], *, encoding: str = "bytes") -> Any:
    """Unpickle a file with :class:`RestrictedUnpickler`.

    Args:
        path: The pickle file.
        encoding: Decoding of Python 2 ``str`` objects (``"bytes"`` by default).

    Returns:
        The unpickled object, made only of plain containers, scalars and numpy arrays.

    Raises:
        DatasetError: Naming the file, if it references a disallowed global, is truncated, is
            not a pickle, or cannot be read.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            return RestrictedUnpickler(file, source=str(path), encoding=encoding).load()
    except DatasetError:
        raise
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    except EOFError as exc:
        raise DatasetError(f"{path}: truncated pickle (ran out of input)") from exc
    except Exception as exc:
        raise DatasetError(f"{path}: not a valid pickle ({type(exc).__name__}: {exc})") from exc
