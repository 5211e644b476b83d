"""Drift compensation takes the eager numpy walk's path on torch arrays and in the compiled
JAX driver (the PyTorch and TensorFlow compiled drivers: their adapter tests, scheme
"compensated")."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from manifoldwalk_jax import compiled

import manifoldwalk as mw
from manifoldwalk.problems import Quadric

A = np.diag([1.0, 4.0, 9.0])
C = np.array([1.0, 1.0, 1.0])
START = np.array([1.0, 0.0, 0.0])
OPTIONS = {"scheme": "compensated", "stop": mw.Stop(max_steps=300), "record": mw.Record(every=1)}


def _same_path(result: mw.WalkResult, eager: mw.WalkResult) -> None:
    assert result.stop_reason == eager.stop_reason
    assert (result.n_predictor, result.n_corrector) == (eager.n_predictor, eager.n_corrector)
    np.testing.assert_array_equal(result.history["n_corrector"], eager.history["n_corrector"])
    np.testing.assert_allclose(np.asarray(result.theta), eager.theta, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def eager() -> mw.WalkResult:
    result = mw.walk(Quadric(A, None, C), START.copy(), **OPTIONS)
    assert result.n_corrector > 0 and result.converged  # the drift is learnt and used
    return result


@pytest.mark.parametrize("k", [1, 7])
def test_jax_chunked_driver(eager, k):
    with jax.enable_x64(True):
        problem = compiled(Quadric(A, None, C))
        result = mw.walk(
            problem, jnp.asarray(START), **OPTIONS, driver=mw.Chunked(steps_per_sync=k)
        )
    _same_path(result, eager)


def test_torch_arrays(eager):
    _same_path(mw.walk(Quadric(A, None, C), torch.tensor(START), **OPTIONS), eager)
