"""``manifoldwalk._batches``: leaves of nested batches, one batch or many, weighted means."""

from __future__ import annotations

from collections import UserDict, namedtuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifoldwalk._batches import Batches, default_batch_size, first_array_leaf, weighted_mean
from manifoldwalk.problem import ProblemError

Pair = namedtuple("Pair", "inputs labels")

# --- nested structures built together with their leaf arrays in order ----------------------

_arrays = st.builds(
    lambda n, cols, fill: np.full((n, *cols), fill),
    st.integers(1, 5),
    st.lists(st.integers(1, 3), max_size=2),
    st.floats(-5, 5),
)
# values that are not leaf arrays: a scalar, a 0-d array, a string
_non_leaves = st.one_of(st.integers(), st.builds(np.float64, st.floats(-1, 1)), st.text(max_size=3))


def _leaf():
    return st.one_of(
        _arrays.map(lambda a: (a, [a])),
        _non_leaves.map(lambda v: (v, [])),
    )


def _combine(children):
    """A container of several (structure, leaves) children: a dict, tuple, list or
    namedtuple, with its leaves in the children's order (insertion order for the dict)."""

    def build(kind, kids):
        leaves = [leaf for _, sub in kids for leaf in sub]
        parts = [structure for structure, _ in kids]
        if kind == "dict":
            return {f"k{9 - i}": p for i, p in enumerate(parts)}, leaves  # keys not sorted
        if kind == "tuple":
            return tuple(parts), leaves
        if kind == "pair":
            return Pair(parts[0], parts[-1]), kids[0][1] + kids[-1][1]
        return list(parts), leaves

    return st.builds(
        build,
        st.sampled_from(["dict", "tuple", "list", "pair"]),
        st.lists(children, min_size=1, max_size=4),
    )


_nested = st.recursive(_leaf(), _combine, max_leaves=12)


@given(_nested)
def test_first_array_leaf_is_the_first_array_in_the_structures_order(built):
    structure, leaves = built
    if leaves:
        assert first_array_leaf(structure) is leaves[0]
        assert default_batch_size(structure) == leaves[0].shape[0]
    else:
        with pytest.raises(TypeError, match="holds no array"):
            first_array_leaf(structure)


def test_first_array_leaf_follows_mapping_insertion_order_and_userdicts():
    a, b = np.zeros((3, 2)), np.zeros(7)
    assert first_array_leaf({"z": a, "a": b}) is a
    assert first_array_leaf({"a": b, "z": a}) is b
    assert default_batch_size(UserDict(labels=b, inputs=a)) == 7


def test_zero_d_arrays_and_scalars_are_not_leaves():
    assert default_batch_size((np.float64(2.0), np.array(1.0), 3, np.zeros((4, 1)))) == 4
    with pytest.raises(TypeError, match=r"\{'x': int, 'y': ndarray\(\)\}"):
        first_array_leaf({"x": 1, "y": np.array(2.0)})


# --- one batch or many -----------------------------------------------------------------------

_one_batch = st.one_of(
    st.dictionaries(st.text(min_size=1, max_size=3), _nested.map(lambda b: b[0]), min_size=1),
    st.tuples(_arrays, _nested.map(lambda b: b[0])),
    st.tuples(_nested.map(lambda b: b[0]), _arrays).map(list),
    st.builds(Pair, _nested.map(lambda b: b[0]), _nested.map(lambda b: b[0])),
    _arrays,
)


@given(_one_batch)
def test_a_dict_namedtuple_array_or_sequence_holding_an_array_is_one_batch(batch):
    batches = Batches(batch)
    assert batches.single
    got = list(batches)
    assert len(got) == 1 and got[0] is batch


@given(st.lists(st.dictionaries(st.sampled_from("abc"), _arrays, min_size=1), min_size=1))
def test_a_list_of_dicts_is_many_batches_and_can_be_passed_again(batch_list):
    batches = Batches(batch_list)
    assert not batches.single
    for _ in range(2):  # re-iterable
        got = list(batches)
        assert len(got) == len(batch_list) and all(
            g is b for g, b in zip(got, batch_list, strict=True)
        )


@given(st.lists(st.tuples(_arrays, _arrays), min_size=1, max_size=5), st.booleans())
def test_a_sequence_of_tuples_is_many_batches(pairs, as_tuple):
    data = tuple(pairs) if as_tuple else pairs
    batches = Batches(data)
    assert not batches.single
    assert [n for _, n in batches.with_sizes()] == [x.shape[0] for x, _ in pairs]


def test_a_wrapped_tuple_of_tuples_is_one_batch_of_them():
    x, y = np.zeros((2, 3)), np.zeros((2, 1))
    assert not Batches(((x, x), (y, y))).single  # read as two batches
    batches = Batches([((x, x), (y, y))])
    assert not batches.single and len(list(batches)) == 1


def test_a_generator_function_is_called_for_each_pass_and_a_generator_object_refused():
    calls = []

    def gen():
        calls.append(1)
        yield {"x": np.zeros((2, 1))}
        yield {"x": np.zeros((3, 1))}

    batches = Batches(gen)
    assert [n for _, n in batches.with_sizes()] == [2, 3]
    assert [n for _, n in batches.with_sizes()] == [2, 3]
    assert len(calls) == 2
    with pytest.raises(TypeError, match="one-shot iterator.*list of batches"):
        Batches(gen())
    with pytest.raises(TypeError, match="one-shot iterator"):
        Batches(iter([{"x": np.zeros(2)}]))


def test_a_re_iterable_object_is_many_batches():
    class Loader:
        def __iter__(self):
            return iter([(np.zeros((4, 1)), np.zeros(4)), (np.zeros((1, 1)), np.zeros(1))])

    assert [n for _, n in Batches(Loader()).with_sizes()] == [4, 1]


def test_bad_data_is_refused_by_name():
    with pytest.raises(ProblemError, match="empty"):
        Batches([])
    with pytest.raises(TypeError, match="leading example axis"):
        Batches(np.array(3.0))
    with pytest.raises(TypeError, match="got str"):
        Batches("text")
    with pytest.raises(TypeError, match="got int"):
        Batches(3)
    with pytest.raises(TypeError, match="batch_size must be a function"):
        Batches({"x": np.zeros(2)}, batch_size=4)
    with pytest.raises(ProblemError, match="no batches"):
        list(Batches(lambda: []))
    with pytest.raises(TypeError, match="must return an iterable"):
        list(Batches(lambda: 3))


def test_batch_size_callable_weights_and_its_checks():
    data = [
        {"ids": np.zeros((2, 5), dtype=int), "n": 7},
        {"ids": np.zeros((3, 5), dtype=int), "n": 1},
    ]
    assert [n for _, n in Batches(data, batch_size=lambda b: b["n"]).with_sizes()] == [7, 1]
    assert [n for _, n in Batches(data).with_sizes()] == [2, 3]
    with pytest.raises(TypeError, match=r"as an int, got float"):
        list(Batches(data, batch_size=lambda b: 2.0).with_sizes())
    with pytest.raises(ProblemError, match="returned 0"):
        list(Batches(data, batch_size=lambda b: 0).with_sizes())
    with pytest.raises(TypeError, match="holds no array"):
        list(Batches([{"t": "a"}, {"t": "b"}]).with_sizes())
    # one batch without arrays: its weight does not matter
    assert list(Batches({"t": "a"}).with_sizes()) == [({"t": "a"}, 1)]


@given(
    st.lists(
        st.tuples(st.floats(-1e3, 1e3, allow_subnormal=False), st.integers(1, 50)),
        min_size=1,
        max_size=8,
    )
)
def test_weighted_mean_is_the_example_weighted_mean(terms):
    values = np.array([v for v, _ in terms])
    weights = np.array([n for _, n in terms])
    expected = np.repeat(values, weights).mean()
    got = weighted_mean(terms)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-9)
    if len(terms) == 1:
        assert got == terms[0][0]


def test_weighted_mean_of_arrays_and_of_nothing():
    got = weighted_mean([(np.array([1.0, 2.0]), 1), (np.array([4.0, 5.0]), 2)])
    np.testing.assert_allclose(got, [3.0, 4.0])
    with pytest.raises(ProblemError, match="no batches"):
        weighted_mean([])
