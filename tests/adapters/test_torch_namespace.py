"""The torch namespace the adapter registers answers as ``array_api_compat.torch`` does: the
same dtypes and values from its direct torch calls, for every mix of tensors (0-d and vectors,
of every dtype the engine meets) and Python scalars, and the same error where compat raises."""

from __future__ import annotations

import array_api_compat.torch as base
import manifoldwalk_torch  # noqa: F401  (registers the namespace)
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from manifoldwalk_torch._namespace import TORCH

from manifoldwalk._array import namespace

DTYPES = [torch.bool, torch.int32, torch.int64, torch.float32, torch.float64]


@st.composite
def operands(draw, shape=None):
    """A tensor (0-d or of length 3) of any dtype the engine meets, or a Python scalar."""
    if shape is None and draw(st.booleans()):
        kind = draw(st.sampled_from([bool, int, float]))
        value = draw(st.floats(-1e3, 1e3, width=32) | st.just(0.0) | st.just(float("nan")))
        return kind(value) if kind is float or value == value else kind(0)
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.sampled_from([(), (3,)])) if shape is None else shape
    values = draw(st.lists(st.floats(-1e3, 1e3, width=32) | st.just(0.0), min_size=3, max_size=3))
    t = torch.tensor(values[: (shape[0] if shape else 1)], dtype=torch.float64)
    return t.reshape(shape).to(dtype)


def _answer(fn, *args):
    """``fn(*args)``, or the type of the error it raised."""
    try:
        return fn(*args)
    except Exception as err:  # compared with compat's: the same kind of failure
        return type(err)


def _same(ours, theirs) -> None:
    if isinstance(theirs, type):
        assert isinstance(ours, type), (ours, theirs)
        return
    assert isinstance(ours, torch.Tensor), ours
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    assert ours.shape == theirs.shape
    if ours.dtype.is_floating_point:  # bit for bit, NaN where compat has NaN
        nan = ours.isnan()
        assert torch.equal(nan, theirs.isnan())
        assert torch.equal(ours[~nan], theirs[~nan])
    else:
        assert torch.equal(ours, theirs)


def test_the_adapter_registers_it():
    assert namespace(torch.zeros(3)) is TORCH
    assert namespace(torch.zeros((), dtype=torch.int64)) is TORCH


@given(condition=operands(), x1=operands(), x2=operands())
def test_where_matches_array_api_compat(condition, x1, x2):
    if isinstance(condition, torch.Tensor):
        condition = condition != 0  # a bool tensor, as the engine passes
    _same(_answer(TORCH.where, condition, x1, x2), _answer(base.where, condition, x1, x2))


@pytest.mark.parametrize("name", ["maximum", "minimum", "atan2"])
@given(x1=operands(), x2=operands())
def test_binary_functions_match_array_api_compat(name, x1, x2):
    if not (isinstance(x1, torch.Tensor) or isinstance(x2, torch.Tensor)):
        return  # the engine never calls these on two Python scalars
    _same(
        _answer(getattr(TORCH, name), x1, x2),
        _answer(getattr(base, name), x1, x2),
    )


@given(x1=operands(shape=(3,)), x2=operands(shape=(3,)))
def test_matmul_of_vectors_matches_array_api_compat(x1, x2):
    _same(_answer(TORCH.matmul, x1, x2), _answer(base.matmul, x1, x2))


def test_other_names_come_from_compat():
    assert TORCH.sqrt is base.sqrt
    assert TORCH.astype is base.astype


@given(
    st.sampled_from([torch.float32, torch.float64]),
    st.integers(1, 5),
    st.integers(1, 300),
    st.integers(0, 2**32 - 1),
)
def test_inner_products_inside_vmap_are_each_lanes_within_the_dot_error_bound(
    dtype, lanes, n, seed
):
    """Inside ``torch.func.vmap`` (``walk_batch``) the inner product of two vectors is formed as
    the product and sum, not a batched matrix product: each lane's value is its ``torch.dot``
    within the classical bound 2·n·u·Σ|aᵢbᵢ| for two summation orders (u the unit roundoff),
    in the dtype of the operands; a matrix times a vector still goes to ``torch.matmul``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(lanes, n, generator=g, dtype=torch.float64).to(dtype)
    b = torch.randn(lanes, n, generator=g, dtype=torch.float64).to(dtype)
    got = torch.func.vmap(TORCH.matmul)(a, b)
    assert got.dtype == dtype and got.shape == (lanes,)
    assert torch.equal(got, (a * b).sum(-1))  # the product and sum (the batched product differs)
    u = torch.finfo(dtype).eps / 2
    for i in range(lanes):
        want = torch.dot(a[i], b[i])
        bound = 2 * n * u * float((a[i].double() * b[i].double()).abs().sum())
        assert abs(float(got[i]) - float(want)) <= bound
    m = a[:, : min(n, 3)].reshape(lanes, 1, -1).expand(lanes, 2, -1)
    v = b[:, : min(n, 3)]
    torch.testing.assert_close(
        torch.func.vmap(TORCH.matmul)(m, v), torch.bmm(m, v[..., None])[..., 0]
    )
