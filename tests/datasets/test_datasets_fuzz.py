"""Fuzzing the IDX and CIFAR10 readers and the restricted unpickler.

Each generated file either loads as valid data (checked against an independent decoding of
what was written) or is refused with DatasetError, the only error the readers document; the
reader's peak memory (tracemalloc) stays within the bound its docstring states; and nothing
is written anywhere (an audit hook watches every open for writing, and the directory
listing must not change). See ``probe`` in conftest.py.
"""

from __future__ import annotations

import functools
import gzip
import math
import pickle
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from manifoldwalk.datasets import (
    DatasetError,
    read_cifar10_binary_batch,
    read_cifar10_python_batch,
    read_idx,
    restricted_load,
)
from manifoldwalk.datasets.idx import IDX_MAX_BYTES

MIB = 1 << 20
OVERHEAD = MIB  # chunk buffers, zlib state, small objects: what a reader uses beyond its data
ABSOLUTE = 4 * MIB  # every file below is at most a few KB on disk or 2 MiB decompressed
DEFLATE_MAX_RATIO = 1032


def fuzz(max_examples: int) -> settings:
    """Hypothesis settings for a bounded fuzz run: ``max_examples`` tiny files, no deadline."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@functools.cache
def _gzip_zeros(n_bytes: int) -> bytes:
    """One gzip member of ``n_bytes`` zeros: a bomb of ratio ~1000 when ``n_bytes`` is large."""
    return gzip.compress(bytes(n_bytes), compresslevel=9)


def _report(outcome: object, peak: int) -> None:
    """Label the example for ``--hypothesis-show-statistics``: refused or loaded, and its peak."""
    event("refused" if isinstance(outcome, DatasetError) else "loaded")
    event(f"peak < {next(k for k in (64, 256, 1024, 4096, 1 << 30) if peak < k << 10)} KiB")


def _fresh_dir(tmp_path: Path) -> Path:
    """A new empty directory for one example (hypothesis reuses the function's tmp_path)."""
    n = sum(1 for _ in tmp_path.iterdir())
    directory = tmp_path / f"ex{n}"
    directory.mkdir()
    return directory


def _decode_idx(content: bytes | None, max_bytes: int) -> np.ndarray | None:
    """Decode IDX bytes independently of the reader; None where the reader must refuse."""
    if content is None or len(content) < 4 or content[:2] != b"\0\0":
        return None
    code, ndim = content[2], content[3]
    if code not in _IDX_DTYPES or not 1 <= ndim <= 32 or len(content) < 4 + 4 * ndim:
        return None
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes > max_bytes or len(content) != 4 + 4 * ndim + nbytes:
        return None
    return np.frombuffer(content, dtype, offset=4 + 4 * ndim).reshape(dims)


@st.composite
def idx_files(draw: st.DrawFn) -> dict[str, Any]:
    """An IDX file as bytes on disk: random headers, payloads, truncations, gzip bombs.

    Half the examples are well-formed files (small dimensions, exact payload, no damage), so
    that loading is exercised as much as refusing.
    """
    sound = draw(st.booleans())
    valid_code = st.sampled_from(sorted(_IDX_DTYPES))
    small = st.integers(0, 4)
    if sound:
        zeros, code, ndim = b"\0\0", draw(valid_code), draw(st.integers(1, 3))
        dims = draw(st.lists(small, min_size=ndim, max_size=ndim))
    else:
        zeros = draw(st.one_of(st.just(b"\0\0"), st.binary(min_size=2, max_size=2)))
        code = draw(st.one_of(valid_code, st.integers(0, 255)))
        ndim = draw(st.one_of(st.integers(1, 3), st.sampled_from([0, 4, 32, 33, 65, 255])))
        if ndim <= 4:
            sizes = st.one_of(small, st.integers(0, 2**32 - 1))
            dims = draw(st.lists(sizes, min_size=ndim, max_size=ndim))
        else:  # many dimensions: one small size repeated keeps generation cheap
            dims = [draw(st.integers(0, 2))] * ndim
    header = zeros + bytes([code, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    itemsize = np.dtype(_IDX_DTYPES.get(code, ">u1")).itemsize
    declared = math.prod(dims) * itemsize
    kind = "exact" if sound else draw(st.sampled_from(["exact", "random", "zeros"]))
    if kind == "exact" and declared <= 2048:
        payload = draw(st.binary(min_size=declared, max_size=declared))
    elif kind == "zeros":  # as gzip: a bomb of up to 2 MiB in about 2 KB
        payload = bytes(draw(st.sampled_from([0, 1, 1000, 256 * 1024 + 1, 2 * MIB])))
    else:
        payload = draw(st.binary(max_size=64))
    gz = draw(st.booleans())
    if gz and kind == "zeros":  # two gzip members: the header, then the cached zeros
        data = gzip.compress(header) + _gzip_zeros(len(payload))
    elif gz:
        data = gzip.compress(header + payload)
    else:
        data = header + payload
    if not sound:
        cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
        data = data[:cut] + draw(st.one_of(st.just(b""), st.binary(max_size=8)))
    max_bytes = draw(st.one_of(st.just(IDX_MAX_BYTES), st.integers(0, 5000)))
    magic = None if sound else draw(st.sampled_from([None, 2049, 2051]))
    return {"data": data, "gz": gz, "max_bytes": max_bytes, "magic": magic}


@fuzz(150)
@given(case=idx_files())
def test_read_idx_loads_valid_data_or_refuses_within_bounds(
    tmp_path: Path, files: SimpleNamespace, case: dict[str, Any]
) -> None:
    directory = _fresh_dir(tmp_path)
    path = directory / "t10k-images-idx3-ubyte"
    path.write_bytes(case["data"])
    outcome, peak = files.probe(
        directory, lambda: read_idx(path, magic=case["magic"], max_bytes=case["max_bytes"])
    )
    _report(outcome, peak)
    content: bytes | None = case["data"]
    if case["data"][:2] == b"\x1f\x8b":
        try:
            content = gzip.decompress(case["data"])
        except (EOFError, OSError, zlib.error):
            content = None
    expected = _decode_idx(content, case["max_bytes"])
    if expected is not None and case["magic"] is not None:
        if int.from_bytes(content[:4], "big") != case["magic"]:
            expected = None
    if expected is None:
        assert isinstance(outcome, DatasetError), outcome
        assert str(path) in str(outcome)
    else:
        assert isinstance(outcome, np.ndarray), outcome
        assert outcome.dtype.isnative
        assert outcome.shape == expected.shape
        np.testing.assert_array_equal(
            outcome.view(np.uint8), expected.astype(outcome.dtype).view(np.uint8)
        )
    # The bound read_idx states: the declared payload, allocated only if it passes the limit
    # and fits what the file can hold, plus buffers.
    declared = _declared_bytes(_idx_head(case["data"]))
    fits = declared is not None and declared <= min(
        case["max_bytes"], DEFLATE_MAX_RATIO * len(case["data"])
    )
    assert peak <= OVERHEAD + (declared if fits else 0), f"peak {peak} bytes"
    assert peak < ABSOLUTE


def _idx_head(data: bytes) -> bytes:
    """The first bytes of an IDX file as a reader sees them (decompressed as far as possible)."""
    if data[:2] != b"\x1f\x8b":
        return data[:1028]
    decompressor = zlib.decompressobj(wbits=31)
    try:
        return decompressor.decompress(data, 1028)
    except zlib.error:
        return b""


def _declared_bytes(content: bytes) -> int | None:
    """The payload size a (possibly invalid) IDX header declares, or None without one."""
    if len(content) < 4 or content[2] not in _IDX_DTYPES or len(content) < 4 + 4 * content[3]:
        return None
    dims = [int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(content[3])]
    return math.prod(dims) * np.dtype(_IDX_DTYPES[content[2]]).itemsize


@fuzz(60)
@given(
    n_records=st.integers(0, 3),
    labels=st.lists(st.integers(0, 12), min_size=3, max_size=3),
    pixel_seed=st.integers(0, 255),
    adjust=st.one_of(st.just(0), st.integers(-3073, 5)),
    sparse=st.sampled_from([None, None, None, 10_001 * 3073, 2**34]),
)
def test_cifar_binary_batch_loads_valid_data_or_refuses_within_bounds(
    tmp_path: Path,
    files: SimpleNamespace,
    n_records: int,
    labels: list[int],
    pixel_seed: int,
    adjust: int,
    sparse: int | None,
) -> None:
    directory = _fresh_dir(tmp_path)
    path = directory / "data_batch_1.bin"
    rows, _ = files.make_cifar_arrays(max(n_records, 1), pixel_seed)
    record_labels = np.array(labels[:n_records], np.uint8)
    data = files.cifar_binary_bytes(rows[:n_records], record_labels)
    data = data[: len(data) + adjust] if adjust < 0 else data + bytes(adjust)
    path.write_bytes(data)
    if sparse is not None:
        with path.open("r+b") as file:
            file.truncate(sparse)  # a large size without writing the data
    size = path.stat().st_size
    outcome, peak = files.probe(directory, lambda: read_cifar10_binary_batch(path))
    _report(outcome, peak)
    valid = sparse is None and adjust == 0 and n_records > 0 and max(labels[:n_records]) < 10
    if valid:
        images, out_labels = outcome
        assert images.shape == (n_records, 32, 32, 3)
        np.testing.assert_array_equal(
            images.transpose(0, 3, 1, 2).reshape(n_records, -1), rows[:n_records]
        )
        np.testing.assert_array_equal(out_labels, record_labels)
    else:
        assert isinstance(outcome, DatasetError), outcome
        assert str(path) in str(outcome)
    readable = size <= 10_000 * 3073 and size % 3073 == 0
    assert peak <= OVERHEAD + (2 * size if readable else 0), f"peak {peak} bytes"
    assert peak < ABSOLUTE


_SMALL_SHAPE = st.integers(0, 4)
_ANY_SHAPE = st.one_of(_SMALL_SHAPE, st.integers(0, 2**40), st.integers(-3, -1))


class _Reduce:
    """Pickles as ``func(*args)``, then ``BUILD state`` if a state is given."""

    def __init__(self, func: object, args: tuple, state: object = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> tuple:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _reconstruct() -> object:
    from numpy._core.multiarray import _reconstruct as func

    return func


@st.composite
def numpy_payloads(draw: st.DrawFn) -> object:
    """What a pickle may ask numpy to build: right and wrong calls, dtypes, states and bytes."""
    spec = draw(st.sampled_from(["u1", "u1", "<i4", ">f8", "b1", "O", "V8", "S3", "u1,u1"]))
    dtype_state = draw(
        st.one_of(
            st.just((3, "|" if spec in ("u1", "b1") else spec[0], None, None, None, -1, -1, 0)),
            st.tuples(
                st.integers(2, 5),
                st.sampled_from("<>|=x"),
                st.none(),
                st.none(),
                st.none(),
                st.integers(-1, 2**40),
                st.integers(-1, 8),
                st.integers(0, 63),
            ),
            st.just((3, "|", (np.dtype("u1"), (2**20, 2**20)), None, None, -1, -1, 0)),
        )
    )
    dtype = _Reduce(np.dtype, (spec, False, True), dtype_state)
    shape = tuple(draw(st.lists(st.one_of(st.just(3072), _ANY_SHAPE), max_size=3)))
    itemsize = {"u1": 1, "b1": 1, "<i4": 4, ">f8": 8}.get(spec, 1)
    exact = math.prod(shape) * itemsize if all(d >= 0 for d in shape) else 0
    n_raw = draw(st.one_of(st.just(exact), st.integers(0, 64))) if exact <= 4 * 3072 else 8
    raw = bytes(n_raw)
    state = draw(
        st.one_of(
            st.just((1, shape, dtype, False, raw)),
            st.just((shape, dtype, True, raw)),
            st.just((1, shape, dtype, False, [0] * min(n_raw, 8))),
            st.just((2, shape, dtype, False, raw)),
        )
    )
    call = draw(st.sampled_from(["reconstruct", "reconstruct_shape", "ndarray", "dtype"]))
    if call == "reconstruct":
        return _Reduce(_reconstruct(), (np.ndarray, (0,), b"b"), state)
    if call == "reconstruct_shape":
        return _Reduce(_reconstruct(), (np.ndarray, shape, b"u1"), state)
    if call == "ndarray":
        return _Reduce(np.ndarray, (shape, dtype))
    return dtype


_TOKENS = st.one_of(
    st.sampled_from(
        [b"\x80\x02", b"\x80\x04", b"(", b"]", b"}", b"\x8f", b")", b"N", b"\x88", b"\x89"]
        + [b"t", b"l", b"d", b"e", b"u", b"s", b"a", b"\x85", b"\x86", b"\x87", b"R", b"b"]
        + [b"2", b"0", b"1", b"\x94", b"\x93", b"\x90", b"\x91", b"."]
        + [b"cnumpy\nndarray\n", b"cnumpy\ndtype\n", b"cnumpy.core.multiarray\n_reconstruct\n"]
        + [b"cos\nsystem\n", b"cbuiltins\neval\n", b"\x82\x01"]
    ),
    st.integers(0, 255).map(lambda i: b"K" + bytes([i])),
    st.integers(-(2**31), 2**31 - 1).map(lambda i: b"J" + i.to_bytes(4, "little", signed=True)),
    st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=16)).map(
        lambda t: b"B" + t[0].to_bytes(4, "little") + t[1]
    ),
    st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=16)).map(
        lambda t: b"\x8e" + t[0].to_bytes(8, "little") + t[1]
    ),
    st.integers(0, 2**64 - 1).map(lambda n: b"\x95" + n.to_bytes(8, "little")),
    st.integers(0, 255).map(lambda i: b"q" + bytes([i])),
    st.integers(0, 2**32 - 1).map(lambda i: b"r" + i.to_bytes(4, "little")),
    st.integers(0, 255).map(lambda i: b"h" + bytes([i])),
    st.integers(0, 2**32 - 1).map(lambda i: b"j" + i.to_bytes(4, "little")),
    st.sampled_from(["numpy", "ndarray", "dtype", "numpy._core.multiarray", "_reconstruct"]).map(
        lambda s: b"\x8c" + bytes([len(s)]) + s.encode()
    ),
    st.sampled_from(["u1", "O", "|", "data", "labels", "os", "system"]).map(
        lambda s: b"\x8c" + bytes([len(s)]) + s.encode()
    ),
    st.binary(min_size=1, max_size=3),
)


@st.composite
def python_batches(draw: st.DrawFn) -> dict[str, Any]:
    """A would-be CIFAR10 python batch: a valid one (maybe damaged), opcode soup, or numpy tricks.

    Valid batches are described, not built (the writers are a fixture): see :func:`_build`.
    """
    kind = draw(st.sampled_from(["valid", "damaged", "soup", "numpy"]))
    case: dict[str, Any] = {"kind": kind}
    if kind in ("valid", "damaged"):
        case["n"] = draw(st.integers(1, 2))
        case["seed"] = draw(st.integers(0, 9))
        case["style"] = draw(st.sampled_from(["py2", "py3"]))
        case["damage"] = draw(st.sampled_from(["cut", "overwrite", "insert"]))
        case["where"] = draw(st.floats(0, 1))
        case["junk"] = draw(st.binary(min_size=1, max_size=9))
    elif kind == "soup":
        case["data"] = b"".join(draw(st.lists(_TOKENS, max_size=60)))
    else:
        labels = draw(st.sampled_from([[0], [0] * 3, [1.5], [True], [12], "x"]))
        batch = {b"data": draw(numpy_payloads()), b"labels": labels}
        case["data"] = pickle.dumps(batch, protocol=draw(st.sampled_from([2, 3, 4, 5])))
    return case


def _build(case: dict[str, Any], files: SimpleNamespace) -> tuple[bytes, Any]:
    """The bytes of a :func:`python_batches` case, and ``(rows, labels)`` if it is valid."""
    if case["kind"] not in ("valid", "damaged"):
        return case["data"], None
    rows, labels = files.make_cifar_arrays(case["n"], case["seed"])
    data = files.cifar_python_bytes(rows, labels, case["style"])
    if case["kind"] == "valid":
        return data, (rows, labels)
    pos, junk = int(case["where"] * len(data)), case["junk"]
    if case["damage"] == "cut":
        return data[:pos], None
    if case["damage"] == "overwrite":
        return data[:pos] + junk + data[pos + len(junk) :], None
    return data[:pos] + junk + data[pos:], None


def _python_batch_bound(size: int) -> int:
    """The memory bound restricted_load states: a few times the file plus ~300 B per opcode."""
    return OVERHEAD + 300 * size


@fuzz(200)
@given(case=python_batches())
def test_cifar_python_batch_loads_valid_data_or_refuses_within_bounds(
    tmp_path: Path, files: SimpleNamespace, case: dict[str, Any]
) -> None:
    directory = _fresh_dir(tmp_path)
    path = directory / "data_batch_1"
    data, expected = _build(case, files)
    path.write_bytes(data)
    outcome, peak = files.probe(directory, lambda: read_cifar10_python_batch(path))
    _report(outcome, peak)
    if isinstance(outcome, DatasetError):
        assert expected is None, outcome
        assert str(path) in str(outcome)
    else:
        images, labels = outcome
        assert images.dtype == np.uint8
        assert images.ndim == 4
        assert images.shape[1:] == (32, 32, 3)
        assert 1 <= len(images) <= 10_000
        assert labels.dtype == np.int64
        assert labels.shape == (len(images),)
        assert labels.min() >= 0
        assert labels.max() <= 9
        if expected is not None:
            rows, expected_labels = expected
            flat = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
            np.testing.assert_array_equal(flat, rows)
            np.testing.assert_array_equal(labels, expected_labels)
    assert peak <= _python_batch_bound(len(data)), f"peak {peak} bytes"
    assert peak < ABSOLUTE


def _check_plain(obj: Any, seen: set[int]) -> int:
    """Assert ``obj`` holds only plain containers, scalars and numeric arrays; return array bytes."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        assert obj.dtype.kind in "biufc"
        assert obj.dtype.names is None
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_check_plain(k, seen) + _check_plain(v, seen) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(_check_plain(item, seen) for item in obj)
    assert isinstance(obj, (str, bytes, bytearray, int, float, bool, type(None))), type(obj)
    return 0


@fuzz(150)
@given(case=python_batches())
def test_restricted_load_returns_plain_data_or_refuses_within_bounds(
    tmp_path: Path, files: SimpleNamespace, case: dict[str, Any]
) -> None:
    directory = _fresh_dir(tmp_path)
    path = directory / "anything.pkl"
    data, expected = _build(case, files)
    path.write_bytes(data)
    outcome, peak = files.probe(directory, lambda: restricted_load(path))
    _report(outcome, peak)
    if isinstance(outcome, DatasetError):
        assert expected is None, outcome
        assert str(path) in str(outcome)
    else:
        assert _check_plain(outcome, set()) <= len(data)
    assert peak <= _python_batch_bound(len(data)), f"peak {peak} bytes"
    assert peak < ABSOLUTE


@pytest.mark.parametrize("reader", [read_idx, read_cifar10_binary_batch, read_cifar10_python_batch])
def test_readers_refuse_a_directory_and_a_missing_file(
    tmp_path: Path, files: SimpleNamespace, reader: Any
) -> None:
    (tmp_path / "sub").mkdir()
    for target, message in (
        (tmp_path / "sub", "not a regular file"),
        (tmp_path / "absent", "cannot be read"),
    ):
        outcome, _ = files.probe(tmp_path, lambda target=target: reader(target))
        assert isinstance(outcome, DatasetError)
        assert f"{target}: {message}" in str(outcome)
