"""Group ids for ``groups=`` (``manifoldwalk._groups``): the layout of the examples group by
group, and the refusals of bad ids, without any framework."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifoldwalk._groups import JACOBIANS, check_jacobian, layout_groups
from manifoldwalk.problem import ProblemError


@st.composite
def group_ids(draw: st.DrawFn) -> np.ndarray:
    """Ids 0..k−1, every group at least twice, in a drawn order."""
    k = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(2, 7), min_size=k, max_size=k))
    ids = np.repeat(np.arange(k), sizes)
    perm = draw(st.permutations(list(range(len(ids)))))
    return ids[np.asarray(perm, dtype=np.int64)]


@given(group_ids())
def test_layout_puts_each_group_in_one_slice_in_its_original_order(ids: np.ndarray) -> None:
    layout = layout_groups(ids, len(ids))
    k = int(ids.max()) + 1
    assert layout.n_groups == k
    order = np.arange(len(ids)) if layout.order is None else layout.order
    assert sorted(order.tolist()) == list(range(len(ids)))  # a permutation
    for i, s in enumerate(layout.slices()):
        members = order[s]
        # exactly group i's examples, in their original order (a stable sort)
        assert members.tolist() == np.flatnonzero(ids == i).tolist()
        assert layout.sizes[i] == len(members)
    assert layout.bounds[0] == 0 and layout.bounds[-1] == len(ids)
    np.testing.assert_allclose(layout.weights, np.bincount(ids) / len(ids), rtol=0, atol=0)


def test_sorted_ids_need_no_reordering() -> None:
    assert layout_groups(np.array([0, 0, 1, 1, 2, 2]), 6).order is None
    assert layout_groups(np.array([1, 1, 0, 0]), 4).order.tolist() == [2, 3, 0, 1]


def test_ids_from_lists_and_tensors() -> None:
    torch = pytest.importorskip("torch")
    ids = [0, 1, 0, 1]
    for value in (ids, np.array(ids, dtype=np.int32), torch.tensor(ids)):
        assert layout_groups(value, 4).sizes.tolist() == [2, 2]


def test_ids_out_of_range_are_named_with_their_examples() -> None:
    with pytest.raises(ProblemError, match=r"0\.\.2 \(n_groups=3\), got example 3: 7"):
        layout_groups(np.array([0, 1, 2, 7, 0, 1]), 6, n_groups=3)
    with pytest.raises(ProblemError, match="example 1: -1"):
        layout_groups(np.array([0, -1, 1, 1]), 4)


def test_an_empty_group_is_refused() -> None:
    with pytest.raises(ProblemError, match="group 1 has no examples"):
        layout_groups(np.array([0, 0, 2, 2]), 4)
    with pytest.raises(ProblemError, match="group 3 has no examples"):
        layout_groups(np.array([0, 1, 2, 0, 1, 2]), 6, n_groups=4)


def test_a_group_of_one_example_warns() -> None:
    with pytest.warns(UserWarning, match="group 2 holds a single example"):
        layout_groups(np.array([0, 0, 1, 1, 2]), 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layout_groups(np.array([0, 0, 1, 1]), 4)


@pytest.mark.parametrize(
    ("ids", "error", "words"),
    [
        (np.array([0.0, 1.0, 1.0, 0.0]), TypeError, "integer group id"),
        (np.array([True, False, True, False]), TypeError, "integer group id"),
        (np.array(["a", "b", "a", "b"]), TypeError, "integer group id"),
        (np.eye(4, dtype=np.int64), ProblemError, "argmax"),
        (np.array([0, 1, 0]), ProblemError, "one group id per training example \\(4\\)"),
        (None, TypeError, "groups must be an array"),
    ],
)
def test_bad_ids_are_refused(ids, error, words) -> None:
    with pytest.raises(error, match=words):
        layout_groups(ids, 4)


@pytest.mark.parametrize("n_groups", [0, -1, 2.0, True])
def test_bad_n_groups_is_refused(n_groups) -> None:
    with pytest.raises(TypeError, match="n_groups"):
        layout_groups(np.array([0, 1, 0, 1]), 4, n_groups=n_groups)


def test_check_jacobian() -> None:
    for name in JACOBIANS:
        assert check_jacobian(name) == name
    with pytest.raises(ValueError, match="'split', 'passes', 'batched'"):
        check_jacobian("vmap")
