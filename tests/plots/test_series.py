"""Phase-2 and compute series from per-seed records, with a seed that stopped early."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from manifoldwalk.plots.runs import ExperimentRuns, SeedRun
from manifoldwalk.plots.series import compute_series, phase2_bands


def _seed(seed: int, steps: np.ndarray, grads: np.ndarray, stop: str, rng) -> SeedRun:
    n = len(steps)
    metrics = {
        "n_predictor": steps.astype(float),
        "example_grads": grads.astype(float),
        "angle": rng.uniform(90, 180, n),
        "reg": rng.uniform(10, 100, n),
        "train_loss": np.full(n, 0.05 + 0.01 * seed),
        "test_loss": rng.uniform(0, 1, n),
        "test_accuracy": rng.uniform(0.8, 1, n),
    }
    wd = [{"lam": 1e-3, "split": "full", "example_grads": 600, "test_metric": 0.9 + 0.01 * seed}]
    summary = {
        "metric": "accuracy",
        "walk": {"stop_reason": stop},
        "phase1": {"example_grads": 1000.0},
        "wd": wd,
    }
    return SeedRun(seed, Path(f"seed-{seed:03d}"), {"wd_lambdas": [1e-3]}, summary, metrics)


@pytest.fixture
def exp() -> ExperimentRuns:
    rng = np.random.default_rng(0)
    steps = np.arange(0, 1050, 50)
    seeds = [
        _seed(0, steps, 10 * steps + 10, "max_steps", rng),
        _seed(1, steps[:9], 10 * steps[:9] + 10, "stalled", rng),  # stopped at step 400
        _seed(2, steps, 12 * steps + 10, "max_steps", rng),  # more corrector work
    ]
    row = SimpleNamespace(by_test=SimpleNamespace(lam=1e-3))
    return ExperimentRuns("toy", seeds, row)  # type: ignore[arg-type]


def test_phase2_bands_over_the_seeds_still_running(exp):
    bands = phase2_bands(exp)
    acc = bands["test_metric"]
    np.testing.assert_array_equal(acc.x, np.arange(0, 1050, 50))
    assert list(acc.count) == [3] * 9 + [2] * 12
    for i, step in enumerate(acc.x):
        running = [s for s in exp.seeds if s.metrics["n_predictor"][-1] >= step]
        vals = [100 * s.metrics["test_accuracy"][i] for s in running]
        assert acc.mean[i] == pytest.approx(np.mean(vals))
        assert acc.std[i] == pytest.approx(np.std(vals, ddof=1))
    reg = [s.metrics["reg"][:9] for s in exp.seeds]
    np.testing.assert_allclose(bands["reg"].mean[:9], np.mean(reg, axis=0))


def test_compute_band_ends_where_the_first_full_budget_ends(exp):
    comp = compute_series(exp)
    # seed 0 ends at 1000 + 10 + 10,000 gradients; seed 2 goes on to 12,000
    assert comp.walk.x[0] == 1010 and comp.walk.x[-1] == 1000 + 10 * 1000 + 10
    assert comp.phase1_grads == 1000 and comp.wd_grads == 600 and comp.lam == 1e-3
    assert comp.wd_metric[0] == pytest.approx(100 * np.mean([0.90, 0.91, 0.92]))
    assert comp.wd_metric[1] == pytest.approx(100 * np.std([0.90, 0.91, 0.92], ddof=1))
    # at seed 1's last record, all three seeds run; just beyond it only two do
    last1 = 1000 + 10 * 400 + 10
    i = int(np.searchsorted(comp.walk.x, last1))
    assert comp.walk.count[i] == 3 and comp.walk.count[i + 1] == 2
