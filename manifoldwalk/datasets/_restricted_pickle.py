"""Unpickling limited to plain containers and numpy arrays, for CIFAR10's python batches.

A pickle can name any importable callable and have it called while loading, so loading an
untrusted pickle is running untrusted code. :class:`RestrictedUnpickler` resolves no global
except the three that a pickled numpy array needs (the array reconstructor, ``numpy.ndarray``
and ``numpy.dtype``); everything else, ``os.system`` and custom classes included, is refused
before it could be called. Plain containers and scalars (dict, list, tuple, set, str, bytes,
int, float, bool, None) use pickle opcodes, not globals, and load as usual.

Even the three numpy names are never handed to numpy as the pickle states them: calling
``numpy.ndarray((n, 3072), ...)`` or the reconstructor with a large shape would reserve
uninitialised memory of any size from a few bytes of pickle. Instead they build inert
placeholders that record the array's state; each array is then made from the bytes the
pickle actually holds, after its shape, a plain numeric dtype and its byte count have been
checked, and all arrays together may hold at most as many bytes as the pickle.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ._base import DatasetError
from ._bounded import check_limit, open_regular

__all__ = [
    "ALLOWED_GLOBALS",
    "RESTRICTED_MAX_BYTES",
    "RESTRICTED_MAX_OPCODES",
    "RestrictedUnpickler",
    "restricted_load",
]

ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)
"""The only ``(module, name)`` globals a restricted pickle may reference.

Both module spellings of the array reconstructor are accepted, so that pickles written under
numpy 1 and numpy 2 load alike. Nothing is imported while unpickling, and none of these names
reaches numpy itself: each maps to a checked stand-in (see the module docstring).
"""

RESTRICTED_MAX_BYTES = 1 << 26
"""Largest file :func:`restricted_load` reads by default: 64 MiB."""

RESTRICTED_MAX_OPCODES = 1 << 18
"""Most pickle opcodes :func:`restricted_load` accepts by default (a CIFAR10 batch has ~30,000)."""

_MAX_NDIM = 32
# Plain numeric dtypes only: no object arrays (they hold arbitrary objects), no structured or
# flexible types (their state could describe items of any size).
_NUMERIC_DTYPES = frozenset(
    {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"}
)
# The state numpy pickles for a plain dtype after its byte order: no subarray, names or
# fields; elsize and alignment -1 (fixed by the type); no flags.
_PLAIN_DTYPE_STATE = (None, None, None, -1, -1, 0)


class _Refused(Exception):
    """A pickle asked for something the restricted unpickler does not build."""


def _is_int(value: object) -> bool:
    """Whether ``value`` is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_flag(value: object) -> bool:
    """Whether ``value`` is a boolean as pickles spell it (True/False, or 1/0 from Python 2)."""
    return isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))


class _Global:
    """An allowed global as the pickle sees it: callable, but its state cannot be set."""

    __slots__ = ("_call", "_name")

    def __init__(self, name: str, call: Callable[..., Any]) -> None:
        self._name = name
        self._call = call

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"refused to set the state of the global {self._name}")

    def __repr__(self) -> str:
        return f"<restricted {self._name}>"


class _DtypeSpec:
    """What ``numpy.dtype(spec, align, copy)`` and its state asked for, checked when used."""

    __slots__ = ("_args", "_state")

    def __init__(self, *args: Any) -> None:
        self._args = args
        self._state: tuple[Any, ...] | None = None

    def __setstate__(self, state: Any) -> None:
        if self._state is not None:
            raise _Refused("refused a dtype whose state is set twice")
        self._state = state if isinstance(state, tuple) else (state,)

    def resolve(self) -> np.dtype:
        """Return the plain numeric dtype described, or raise _Refused."""
        spec = self._args[0] if self._args else None
        if isinstance(spec, bytes):
            spec = spec.decode("latin-1")
        plain = isinstance(spec, str) and spec in _NUMERIC_DTYPES
        if not plain or len(self._args) > 3 or not all(_is_flag(a) for a in self._args[1:]):
            raise _Refused(
                f"refused the array dtype {self._args!r}: only plain numeric dtypes "
                f"({', '.join(sorted(_NUMERIC_DTYPES))}) are allowed"
            )
        dtype = np.dtype(spec)
        if self._state is None:
            return dtype
        version = self._state[0]
        order = self._state[1] if len(self._state) > 1 else None
        rest: tuple[Any, ...] | None = self._state[2:]
        if version == 4 and len(rest) == 7 and rest[-1] is None:
            rest = rest[:-1]  # version 4 adds metadata; None is the plain case
        elif version != 3 or isinstance(version, bool):
            rest = None
        if isinstance(order, bytes):
            order = order.decode("latin-1")
        if rest != _PLAIN_DTYPE_STATE or order not in ("<", ">", "|", "="):
            raise _Refused(f"refused the state {self._state!r} of dtype {spec!r}")
        return dtype.newbyteorder(order) if order in ("<", ">") else dtype


class _Budget:
    """Bytes that the arrays of one pickle may still take."""

    __slots__ = ("remaining",)

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining


class _ArrayBuilder:
    """An array the pickle announced; made from its state's bytes once they are checked."""

    __slots__ = ("_budget", "array")

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise _Refused("refused an array whose state is set twice")
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Refused("refused an array state that is not numpy's (shape, dtype, order, data)")
        shape, dtype_spec, fortran, raw = state
        if (
            not isinstance(shape, tuple)
            or len(shape) > _MAX_NDIM
            or not all(_is_int(d) and d >= 0 for d in shape)
        ):
            raise _Refused(f"refused an array shape {shape!r}")
        if not isinstance(dtype_spec, _DtypeSpec) or not _is_flag(fortran):
            raise _Refused("refused an array state that is not numpy's (shape, dtype, order, data)")
        dtype = dtype_spec.resolve()
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if not isinstance(raw, (bytes, bytearray, str)) or len(raw) != nbytes:
            found = f"{len(raw)} bytes" if isinstance(raw, (bytes, bytearray, str)) else "no bytes"
            raise _Refused(
                f"refused an array of shape {shape} and dtype {dtype}: it needs {nbytes} bytes, "
                f"the pickle holds {found}"
            )
        if nbytes > self._budget.remaining:
            raise _Refused("refused arrays holding more bytes than the pickle itself")
        self._budget.remaining -= nbytes
        if isinstance(raw, str):  # Python 2 strings unpickled with encoding="latin1"
            try:
                raw = raw.encode("latin-1")
            except UnicodeEncodeError:
                raise _Refused("refused array data that is not a byte string") from None
        array = np.empty(count, dtype)
        array.view(np.uint8)[:] = np.frombuffer(raw, np.uint8)
        if not dtype.isnative:  # native byte order, as numpy's own unpickling gives
            array.byteswap(inplace=True)
            array = array.view(dtype.newbyteorder("="))
        self.array = array.reshape(shape, order="F" if fortran else "C")


def _reconstruct(budget: _Budget, ndarray: _Global) -> Callable[..., _ArrayBuilder]:
    """The stand-in for numpy's ``_reconstruct``: it accepts only what numpy writes."""

    def call(subtype: Any = None, shape: Any = None, code: Any = None, *extra: Any) -> Any:
        empty = isinstance(shape, tuple) and all(_is_int(d) and d >= 0 for d in shape)
        if subtype is not ndarray or not empty or math.prod(shape) != 0 or extra:
            raise _Refused(
                "refused numpy's array reconstructor called with anything but "
                "(numpy.ndarray, (0,), b'b'), which is what numpy writes"
            )
        del code  # the placeholder type code numpy writes; the dtype comes with the state
        return _ArrayBuilder(budget)

    return call


def _refuse_ndarray(*args: Any) -> Any:
    """Refuse ``numpy.ndarray(...)``: it would reserve memory for any shape asked."""
    raise _Refused("refused a call of numpy.ndarray (numpy pickles never call it)")


_ATOMS = (str, bytes, bytearray, int, float, bool, complex, type(None), np.ndarray)


def _materialise(obj: Any, memo: dict[int, Any]) -> Any:
    """Replace the array placeholders in ``obj`` by their arrays; refuse any other stand-in.

    Lists, dicts and sets are updated in place, so that shared and self-referencing
    containers keep their shape; tuples and frozensets are rebuilt.
    """
    if isinstance(obj, _ATOMS):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    kind = type(obj)
    if kind is list:
        memo[key] = obj
        obj[:] = [_materialise(item, memo) for item in obj]
        return obj
    if kind is dict:
        memo[key] = obj
        items = [(_materialise(k, memo), _materialise(v, memo)) for k, v in obj.items()]
        obj.clear()
        obj.update(items)
        return obj
    if kind is set:
        memo[key] = obj
        members = [_materialise(item, memo) for item in obj]
        obj.clear()
        obj.update(members)
        return obj
    if kind is tuple or kind is frozenset:
        result = kind(_materialise(item, memo) for item in obj)
    elif kind is _ArrayBuilder:
        if obj.array is None:
            raise _Refused("refused an array announced without its data")
        result = obj.array
    elif kind is _DtypeSpec:
        raise _Refused("refused a numpy dtype outside an array; only data is loaded")
    elif kind is _Global:
        raise _Refused(f"refused the bare global {obj._name}; only data is loaded")
    else:
        raise _Refused(f"refused an object of type {kind.__name__}")
    memo[key] = result
    return result


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` whose ``find_class`` only resolves :data:`ALLOWED_GLOBALS`.

    Numpy arrays are rebuilt from the bytes in the pickle after their shape, dtype (plain
    numeric only) and byte count are checked; their total size is bounded by
    ``max_array_bytes``. Reading a file directly with this class does not bound the memory
    that pickle's own opcodes may claim (a length field, a memo index): use
    :func:`restricted_load`, which checks those first.

    Args:
        file: Binary file object to read the pickle from.
        source: Name of the file, quoted in errors.
        encoding: How to decode Python 2 ``str`` objects (``"bytes"`` keeps them as bytes,
            as CIFAR10's python batches need).
        max_array_bytes: Most bytes that all arrays of the pickle may take together
            (:data:`RESTRICTED_MAX_BYTES` by default).

    Raises:
        TypeError, ValueError: If ``max_array_bytes`` is not a non-negative int.
    """

    def __init__(
        self,
        file: IO[bytes],
        *,
        source: str,
        encoding: str = "bytes",
        max_array_bytes: int = RESTRICTED_MAX_BYTES,
    ) -> None:
        """Create an unpickler reading ``file``; see the class docstring for the arguments."""
        super().__init__(file, encoding=encoding)
        self._source = source
        budget = _Budget(check_limit("max_array_bytes", max_array_bytes))
        ndarray = _Global("numpy.ndarray", _refuse_ndarray)
        reconstruct = _Global("numpy._core.multiarray._reconstruct", _reconstruct(budget, ndarray))
        self._globals = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy", "ndarray"): ndarray,
            ("numpy", "dtype"): _Global("numpy.dtype", _DtypeSpec),
        }

    def find_class(self, module: str, name: str) -> Any:
        """Return the checked stand-in of an allowed global; refuse any other.

        Nothing is imported or called.

        Args:
            module: Module named by the pickle.
            name: Qualified name within the module.

        Returns:
            The stand-in for ``(module, name)``, one of :data:`ALLOWED_GLOBALS`.

        Raises:
            DatasetError: Naming the file and the refused global, for anything not allowed.
        """
        try:
            return self._globals[(module, name)]
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

    def load(self) -> Any:
        """Unpickle one object and turn its array placeholders into numpy arrays.

        Returns:
            The object, made only of plain containers, scalars and numpy arrays.

        Raises:
            DatasetError: Naming the file, for a refused global, array, dtype or object.
            Exception: Whatever ``pickle.Unpickler.load`` raises for a malformed pickle.
        """
        try:
            return _materialise(super().load(), {})
        except _Refused as exc:
            raise DatasetError(f"{self._source}: {exc}") from None
        except RecursionError:
            raise DatasetError(f"{self._source}: refused a pickle nested too deeply") from None


def _check_opcodes(source: Path, data: bytes, max_opcodes: int) -> None:
    """Walk the opcodes of ``data`` without building anything, checking what they claim.

    Every length field must fit in the data (pickletools reads what is there, never more),
    frames must fit, memo indices must not exceed the number of opcodes (the C unpickler
    sizes its memo by the largest index), and there may be at most ``max_opcodes`` opcodes.

    Raises:
        DatasetError: Naming the file, if the pickle is malformed, truncated or over a bound.
    """
    count = 0
    largest_memo = -1
    try:
        for opcode, arg, pos in pickletools.genops(data):
            count += 1
            if count > max_opcodes:
                raise DatasetError(
                    f"{source}: refused a pickle of more than {max_opcodes} opcodes "
                    "(max_opcodes=...)"
                )
            if opcode.name == "FRAME" and arg > len(data) - pos - 9:
                raise DatasetError(f"{source}: truncated pickle (a frame runs past the end)")
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                largest_memo = max(largest_memo, arg)
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{source}: not a valid pickle ({exc})") from exc
    if largest_memo >= count:
        raise DatasetError(f"{source}: refused a memo index {largest_memo} beyond its opcodes")


def restricted_load(
    path: str | os.PathLike[str],
    *,
    encoding: str = "bytes",
    max_bytes: int = RESTRICTED_MAX_BYTES,
    max_opcodes: int = RESTRICTED_MAX_OPCODES,
) -> Any:
    """Unpickle a file with :class:`RestrictedUnpickler`, within stated memory bounds.

    The file (at most ``max_bytes``) is read once; its opcodes are then walked without
    building anything, refusing a length, frame or memo index that claims more than the file
    holds, and more than ``max_opcodes`` opcodes. Only then is it unpickled, and arrays are
    built from the bytes it holds (all together at most the file's size). Memory used is
    thus at most a few times the file's size plus a few hundred bytes per opcode: a small
    file cannot reserve a large array.

    Args:
        path: The pickle file; it must be a regular file.
        encoding: Decoding of Python 2 ``str`` objects (``"bytes"`` by default).
        max_bytes: Largest file read, in bytes (:data:`RESTRICTED_MAX_BYTES`, 64 MiB).
        max_opcodes: Most opcodes accepted (:data:`RESTRICTED_MAX_OPCODES`).

    Returns:
        The unpickled object, made only of plain containers, scalars and numpy arrays of
        plain numeric dtypes.

    Raises:
        DatasetError: (a ``ValueError``) Naming the file, if it cannot be read, is not a
            regular file, is larger than ``max_bytes``, references a disallowed global,
            describes an array whose shape, dtype or byte count is refused, claims more than
            it holds, is truncated or is not a pickle.
        TypeError, ValueError: If ``max_bytes`` or ``max_opcodes`` is not a non-negative int.
    """
    path = Path(path)
    max_bytes = check_limit("max_bytes", max_bytes)
    max_opcodes = check_limit("max_opcodes", max_opcodes)
    with open_regular(path) as (file, size):
        if size > max_bytes:
            raise DatasetError(
                f"{path}: {size} bytes, more than the limit of {max_bytes} bytes for a pickle"
            )
        try:
            data = file.read(size + 1)  # read(n) reserves n bytes: ask for no more than is there
        except OSError as exc:
            raise DatasetError(f"{path}: cannot be read ({exc})") from exc
    if len(data) != size:
        raise DatasetError(f"{path}: changed size while being read")
    _check_opcodes(path, data, max_opcodes)
    unpickler = RestrictedUnpickler(
        io.BytesIO(data), source=str(path), encoding=encoding, max_array_bytes=len(data)
    )
    try:
        return unpickler.load()
    except DatasetError:
        raise
    except EOFError as exc:
        raise DatasetError(f"{path}: truncated pickle (ran out of input)") from exc
    except Exception as exc:
        raise DatasetError(f"{path}: not a valid pickle ({type(exc).__name__}: {exc})") from exc
