"""Fixtures shared by the tests of the paper's nets and training loops in every framework."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest

# Keep TensorFlow's start-up chatter out of the test log (must precede its first import).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from manifoldwalk.datasets import Dataset, load_dataset  # noqa: E402

#: Standard deviation of a standard normal truncated to [-2, 2] (Keras' GlorotNormal divides by it).
TRUNCATION_STD = 0.87962566103423978


@pytest.fixture(scope="session")
def iris() -> Dataset:
    """Iris, 120 training and 30 test examples (the paper's split), seed 0."""
    return load_dataset("iris", seed=0)


@pytest.fixture(scope="session")
def auto_mpg() -> Dataset:
    """Auto-MPG, 314 training rows, z-scored features, targets (n, 1)."""
    return load_dataset("auto-mpg", seed=0)


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for the module, then restore the previous count.

    The nets under test are tiny; on a small CPU shared with other work, torch's default of one
    thread per core spends far longer synchronising its threads than computing (measured: 40-60 ms
    a step with 2 threads on a busy 2-core machine, under 1 ms with 1).
    """
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _assert_glorot(kernel: np.ndarray) -> None:
    """Assert that a kernel looks like Keras' GlorotNormal draw: mean 0, the Glorot standard
    deviation (within 4 standard errors of its estimate), nothing beyond the truncation at two
    (pre-scaling) deviations, and for large kernels the kurtosis of a truncated normal.

    Fans are Keras': for a kernel ``(..., in, out)``, ``fan_in = in · receptive`` and
    ``fan_out = out · receptive`` with ``receptive`` the product of the leading axes.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    receptive = math.prod(kernel.shape[:-2])
    fan_in, fan_out = kernel.shape[-2] * receptive, kernel.shape[-1] * receptive
    std = math.sqrt(2.0 / (fan_in + fan_out))
    # relative standard error of a sample std: sqrt((kurtosis - 1) / n) / 2, kurtosis 2.37
    rel_tol = 4 * 0.5 * math.sqrt(1.37 / kernel.size)
    assert abs(kernel.std() / std - 1) < rel_tol, (kernel.std(), std, rel_tol)
    assert abs(kernel.mean()) < 4 * std / math.sqrt(kernel.size)
    assert np.abs(kernel).max() <= 2 * std / TRUNCATION_STD * (1 + 1e-6)
    if kernel.size >= 10_000:
        # The shape, not just the scale: the kurtosis of a normal truncated at +-2 sd is 2.366
        # (a plain normal's is 3, a uniform's 1.8); its standard error here is below 0.03.
        kurtosis = np.mean(kernel**4) / np.mean(kernel**2) ** 2
        assert abs(kurtosis - 2.366) < 0.12, kurtosis


@pytest.fixture(scope="session")
def assert_glorot() -> Callable[..., None]:
    """The Glorot-normal statistics check, as a fixture (test modules do not import conftest)."""
    return _assert_glorot
