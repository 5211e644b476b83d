"""The engine's numpy namespace answers as ``array_api_compat.numpy`` does: the same values and
dtypes from its 0-d fast paths, for every mix of numpy scalars, 0-d arrays and Python scalars."""

from __future__ import annotations

import array_api_compat.numpy as base
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifoldwalk._array import namespace
from manifoldwalk._numpy_namespace import NUMPY

NUMPY_TYPES = [np.bool_, np.int32, np.int64, np.float32, np.float64]


@st.composite
def scalars(draw):
    """A numpy scalar, a 0-d array or a Python scalar, of any kind the engine meets."""
    value = draw(st.floats(width=32) | st.integers(-9, 9))
    whole = int(np.clip(value, -100, 100)) if np.isfinite(value) else 0  # for integer kinds
    form = draw(st.sampled_from(["numpy", "0-d", "python"]))
    if form == "python":
        kind = draw(st.sampled_from([bool, int, float]))
        return float(value) if kind is float else kind(whole)
    t = draw(st.sampled_from(NUMPY_TYPES))
    v = t(value) if issubclass(t, np.floating) else t(whole)
    return np.asarray(v) if form == "0-d" else v


def _same(ours, theirs) -> None:
    a, b = np.asarray(ours), np.asarray(theirs)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


@given(condition=scalars(), x1=scalars(), x2=scalars())
def test_where_matches_array_api_compat(condition, x1, x2):
    c = np.asarray(condition).astype(bool)[()] if not isinstance(condition, bool) else condition
    _same(NUMPY.where(c, x1, x2), base.where(c, x1, x2))


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # both cast alike
@given(x=scalars(), dtype=st.sampled_from(NUMPY_TYPES))
def test_astype_matches_array_api_compat(x, dtype):
    if isinstance(x, bool | int | float):
        x = np.asarray(x)
    _same(NUMPY.astype(x, np.dtype(dtype)), base.astype(x, np.dtype(dtype)))


@given(x=scalars(), fill=st.floats(-10, 10) | st.integers(-3, 3) | st.booleans())
def test_constructors_match_array_api_compat(x, fill):
    if isinstance(x, bool | int | float):
        x = np.asarray(x)
    _same(NUMPY.zeros_like(x), base.zeros_like(x))
    _same(NUMPY.ones_like(x), base.ones_like(x))
    _same(NUMPY.full_like(x, fill), base.full_like(x, fill))


@given(x=scalars(), shape=st.sampled_from([(), (1,), (1, 1)]))
def test_reshape_matches_array_api_compat(x, shape):
    if isinstance(x, bool | int | float):
        x = np.asarray(x)
    _same(NUMPY.reshape(x, shape), base.reshape(x, shape))


@given(
    n=st.integers(0, 6),
    dtypes=st.tuples(st.sampled_from(NUMPY_TYPES[1:]), st.sampled_from(NUMPY_TYPES[1:])),
)
def test_matmul_and_vectors_match_array_api_compat(n, dtypes):
    rng = np.random.default_rng(n)
    a, b = (rng.normal(size=n).astype(d) for d in dtypes)
    _same(NUMPY.matmul(a, b), base.matmul(a, b))
    _same(NUMPY.where(a > 0, a, b), base.where(a > 0, a, b))
    _same(NUMPY.zeros_like(a), base.zeros_like(a))


def test_numpy_arrays_and_scalars_get_the_namespace():
    for x in (np.ones(3), np.float32(1.0), np.asarray(2.0), np.True_, np.int64(3)):
        assert namespace(x) is NUMPY
