"""Paired statistics: the walk against weight decay on the same seeds.

Both are measured on each seed's own data split and phase-1 net, so the per-seed difference
(walk − weight decay) removes the variation between seeds that the ± std columns of Table I
carry. For each row the difference gets its mean, a 95 % t-interval, and two paired tests from
scipy.stats: the paired t-test (``ttest_rel``; assumes roughly normal differences) and the
Wilcoxon signed-rank test (``wilcoxon``; no normality, but with few seeds its smallest possible
p-value is large: 2/2ⁿ two-sided, 0.0625 for 5 seeds, 0.002 for 10). A difference is called
significant only when both tests reject at :data:`ALPHA`, so never below 6 seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ALPHA", "MIN_SEEDS_WILCOXON", "PairedComparison", "paired_comparison"]

ALPHA = 0.05
"""The significance level the verdicts use (both tests must reject)."""

MIN_SEEDS_WILCOXON = 6
"""The fewest seeds for which the two-sided Wilcoxon signed-rank test can give p < 0.05
(its smallest p-value is 2/2ⁿ: 0.0625 for 5 seeds, 0.03125 for 6)."""


@dataclass(frozen=True)
class PairedComparison:
    """The per-seed differences a − b of one metric and what they say.

    Attributes:
        label: What is compared (e.g. ``"walk − WD (λ by val)"``).
        differences: a − b per seed, in the order given.
        mean: Their mean (NaN for none).
        ci95: The 95 % t-interval of the mean (NaNs for fewer than two seeds; the point itself
            when every difference is equal).
        t_pvalue: The paired t-test's two-sided p-value (NaN for fewer than two seeds or
            equal non-zero differences, where the test is undefined; 1 when all are 0).
        wilcoxon_pvalue: The Wilcoxon signed-rank test's two-sided p-value (exact for small
            samples; 1 when every difference is 0; NaN for none).
    """

    label: str
    differences: np.ndarray
    mean: float
    ci95: tuple[float, float]
    t_pvalue: float
    wilcoxon_pvalue: float

    @property
    def n(self) -> int:
        """The number of seeds."""
        return int(self.differences.size)

    @property
    def significant(self) -> bool:
        """Whether both tests reject "no difference" at :data:`ALPHA`."""
        return bool(self.t_pvalue < ALPHA and self.wilcoxon_pvalue < ALPHA)

    def verdict(self) -> str:
        """One phrase: which way the difference goes and whether it is significant."""
        if self.n < 2:
            return "one seed: no test"
        if self.significant:
            return f"significant ({'a > b' if self.mean > 0 else 'a < b'})"
        return "not significant"

    def verdict_words(self, a: str, b: str, *, higher_is_better: bool) -> str:
        """The verdict naming the methods, and which is better where the difference is
        significant.

        Args:
            a: The first method's name (``"walk"``).
            b: The second's (``"weight decay"``).
            higher_is_better: True for a metric such as accuracy; False for an error such as
                the MSE (then the lower one is named better).

        Returns:
            ``"significant (walk higher)"`` / ``"significant (weight decay higher)"`` for a
            metric where higher is better, ``"significant (walk lower: walk better)"`` and
            the like where lower is better, ``"not significant"``, or for fewer than two seeds
            ``"one seed: no test"`` / ``"no seed: no test"``.
        """
        if self.n < 2:
            return "no seed: no test" if self.n == 0 else "one seed: no test"
        if not self.significant:
            return "not significant"
        first = self.mean > 0
        if higher_is_better:
            return f"significant ({a if first else b} higher)"
        lower = b if first else a
        return f"significant ({lower} lower: {lower} better)"


def paired_comparison(a: Sequence[float], b: Sequence[float], label: str) -> PairedComparison:
    """Compare two metrics measured on the same seeds.

    Args:
        a: The first method's metric per seed (the walk).
        b: The second's on the same seeds, in the same order (weight decay).
        label: What is compared, for reports.

    Returns:
        A :class:`PairedComparison`.

    Raises:
        ValueError: ``a`` and ``b`` differ in length, or hold a non-finite value.
        ImportError: scipy is missing (``pip install 'manifoldwalk[data]'`` brings it).
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired values must be two equal-length lists, got {x.shape}, {y.shape}")
    d = x - y
    if not np.all(np.isfinite(d)):
        raise ValueError(f"{label}: a non-finite per-seed value ({d.tolist()}); no paired test")
    try:
        from scipy import stats
    except ImportError as err:  # pragma: no cover - scipy comes with the data extra
        raise ImportError("paired statistics need scipy: pip install 'manifoldwalk[data]'") from err
    n = d.size
    nan = math.nan
    if n == 0:
        return PairedComparison(label, d, nan, (nan, nan), nan, nan)
    mean = float(d.mean())
    if n < 2:
        return PairedComparison(label, d, mean, (nan, nan), nan, nan)
    if np.all(d == 0):
        return PairedComparison(label, d, 0.0, (0.0, 0.0), 1.0, 1.0)
    sem = float(d.std(ddof=1)) / math.sqrt(n)
    if sem == 0.0:  # every difference equal and non-zero: no spread to test against
        return PairedComparison(label, d, mean, (mean, mean), nan, _wilcoxon(stats, d))
    half = float(stats.t.ppf(0.975, n - 1)) * sem
    t_p = float(stats.ttest_rel(x, y).pvalue)
    return PairedComparison(label, d, mean, (mean - half, mean + half), t_p, _wilcoxon(stats, d))


def _wilcoxon(stats, d: np.ndarray) -> float:
    """The two-sided Wilcoxon signed-rank p-value of ``d`` (zeros dropped, as Wilcoxon did)."""
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0
    return float(stats.wilcoxon(nonzero, alternative="two-sided").pvalue)
