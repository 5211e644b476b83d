"""Paired statistics against scipy's own tests and exact small-sample values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from manifoldwalk.experiments.paired import paired_comparison

finite = st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=3, max_size=12))
def test_interval_covers_the_mean_and_matches_the_t_distribution(pairs):
    a, b = (np.array(v) for v in zip(*pairs, strict=True))
    c = paired_comparison(a, b, "a − b")
    d = a - b
    assert c.n == len(d) and c.mean == pytest.approx(d.mean(), abs=1e-12)
    if np.all(d == 0) or d.std(ddof=1) == 0:
        return
    lo, hi = c.ci95
    assert lo <= c.mean <= hi
    # the half-width is t(0.975, n−1)·s/√n
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert hi - lo == pytest.approx(2 * half, rel=1e-9)
    assert c.t_pvalue == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-9)


def test_wilcoxon_exact_small_sample_minimum():
    # all five differences positive: the exact two-sided p-value is 2/2⁵
    c = paired_comparison([1.0, 2.0, 3.0, 4.0, 5.0], [0.5, 1.0, 1.5, 2.0, 2.5], "a − b")
    assert c.wilcoxon_pvalue == pytest.approx(2 / 2**5)
    assert not c.significant  # Wilcoxon cannot reject with 5 seeds at 0.05
    assert c.verdict() == "not significant"


def test_a_clear_difference_over_ten_seeds_is_significant():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.8, 0.9, 10)
    c = paired_comparison(b + 0.05 + rng.normal(0, 0.005, 10), b, "walk − WD")
    assert c.significant and c.verdict() == "significant (a > b)"
    assert c.ci95[0] > 0


def test_degenerate_cases():
    same = paired_comparison([0.9, 0.8], [0.9, 0.8], "x")
    assert same.t_pvalue == 1.0 and same.wilcoxon_pvalue == 1.0 and not same.significant
    one = paired_comparison([0.9], [0.8], "x")
    assert one.mean == pytest.approx(0.1) and math.isnan(one.t_pvalue)
    assert one.verdict() == "one seed: no test"
    const = paired_comparison([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], "x")
    assert math.isnan(const.t_pvalue) and const.ci95 == (1.0, 1.0)
    with pytest.raises(ValueError, match="equal-length"):
        paired_comparison([1.0], [1.0, 2.0], "x")
    with pytest.raises(ValueError, match="non-finite"):
        paired_comparison([math.nan, 1.0], [1.0, 2.0], "x")
