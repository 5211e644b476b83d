"""A step told on the host which branch it takes (the eager driver's ``on``) gives the
branch-free step's state bit for bit, for every scheme, on numpy and torch arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

import manifoldwalk as mw
from manifoldwalk._array import to_numpy
from manifoldwalk.directions import MinimiseReg
from manifoldwalk.step import named_leaves
from manifoldwalk.testing import ellipsoid_cases, sphere_distance_cases

SCHEME_CASES = {
    "paper": {"scheme": "paper"},
    "newton": {"scheme": "paper", "corrector": "newton"},
    "default": {"scheme": "default"},
    "compensated": {"scheme": "compensated"},
}
TO_ARRAY = {
    "numpy": lambda a: np.asarray(a, dtype=np.float64),
    "numpy-float32": lambda a: np.asarray(a, dtype=np.float32),
    "torch": lambda a: torch.tensor(a, dtype=torch.float64),
}


def _fields_equal(a: mw.WalkState, b: mw.WalkState) -> list[str]:
    """The fields where two states differ in value (NaN equal to NaN), shape or dtype."""
    differ = []
    for (name, x), (_, y) in zip(named_leaves(a), named_leaves(b), strict=True):
        x, y = np.asarray(to_numpy(x)), np.asarray(to_numpy(y))
        if x.dtype != y.dtype or not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            differ.append(name)
    return differ


def _steps_agree(
    case, options: dict, to_array, n_steps: int, level_offset: float = 0.0
) -> tuple[int, int]:
    """Step from the case's start (on its level set, or off it by ``level_offset`` so that
    the walk opens with corrector steps) and compare the two ways at every step."""
    scheme = mw.get_scheme(options["scheme"], corrector=options.get("corrector"))
    direction = MinimiseReg()
    step = mw.make_step(case.problem, direction, scheme)
    level = float(case.problem.loss(case.x0)) + level_offset
    state = mw.init_state(
        case.problem, direction, scheme, to_array(case.x0), level=level, tau=1e-10
    )
    seen = {True: 0, False: 0}
    for i in range(n_steps):
        dev = float(state.loss - state.level)
        on = dev * dev <= float(state.tau)
        plain, told = step(state), step(state, on)
        differ = _fields_equal(plain, told)
        assert not differ, f"step {i} ({'predictor' if on else 'corrector'}): {differ} differ"
        seen[on] += 1
        state = plain
    return seen[True], seen[False]


@pytest.mark.parametrize("start", ["on", "off"])
@pytest.mark.parametrize("array", TO_ARRAY)
@pytest.mark.parametrize("options", SCHEME_CASES.values(), ids=SCHEME_CASES.keys())
@settings(max_examples=10, deadline=None)
@given(case=ellipsoid_cases(max_dim=8))
def test_a_step_told_its_branch_gives_the_same_state(start, array, options, case):
    _steps_agree(case, options, TO_ARRAY[array], 60, 1e-3 if start == "off" else 0.0)


@pytest.mark.parametrize("options", SCHEME_CASES.values(), ids=SCHEME_CASES.keys())
@settings(max_examples=5, deadline=None)
@given(case=sphere_distance_cases())
def test_both_branches_are_checked(options, case):
    """Walks long enough to take predictor and corrector steps compare both branches."""
    n_pred, n_corr = _steps_agree(case, options, TO_ARRAY["numpy"], 200)
    assert n_pred > 0 and n_corr > 0
