"""``walk(..., driver=Chunked(K, M))`` on the PyTorch and TensorFlow chunks.

The JAX driver's M masked steps per ``lax.while_loop`` iteration are tested in
``test_jax_driver.py``. The engine's device loop is shared: TensorFlow's ``tf.while_loop`` runs
the same M masked steps per iteration, and the PyTorch chunk (K masked steps, unrolled) runs K
steps whatever M is. Both must still take the eager driver's path.
"""

from __future__ import annotations

import numpy as np
import pytest
from backend_suite import SIZES, assert_same_walk, init_layers, small_data

import manifoldwalk as mw

KW = {"stop": mw.Stop(max_steps=120), "record": mw.Record(every=5, trajectory_every=10)}


def test_torch_chunk_with_masked_iterations():
    pytest.importorskip("torch")
    import torch
    from test_torch_adapter import small_problem

    eager, _ = small_problem()
    chunked, _ = small_problem()
    a = mw.walk(eager, eager.theta0, **KW)
    b = mw.walk(
        chunked, chunked.theta0, **KW, driver=mw.Chunked(steps_per_sync=7, steps_per_iteration=3)
    )
    assert_same_walk(a, b, a.theta.numpy(), b.theta.numpy())
    assert list(b.history["step"]) == list(a.history["step"])
    torch.testing.assert_close(b.trajectory, a.trajectory, rtol=1e-9, atol=1e-11)


def test_tf_chunk_with_masked_iterations():
    pytest.importorskip("tensorflow")
    import manifoldwalk_tf
    from test_tf_adapter import cross_entropy, make_mlp

    x, y = small_data("classification")
    model = make_mlp(init_layers(SIZES, seed=0), "float64")
    eager = manifoldwalk_tf.from_model(model, cross_entropy, (x, y))
    fast = manifoldwalk_tf.from_model(model, cross_entropy, (x, y), compile=True)
    a = mw.walk(eager, eager.theta0, **KW)
    b = mw.walk(
        fast, fast.theta0, **KW, driver=mw.Chunked(steps_per_sync=16, steps_per_iteration=3)
    )
    assert_same_walk(a, b, a.theta, b.theta.numpy())
    assert list(b.history["step"]) == list(a.history["step"])
    np.testing.assert_allclose(np.asarray(b.trajectory), a.trajectory, rtol=1e-9, atol=1e-12)
