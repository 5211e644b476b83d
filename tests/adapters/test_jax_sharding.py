"""manifoldwalk_jax.sharding: the training data split over 2 devices, the unsharded path.

JAX reads ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` only when it is imported, so
the 2-device checks run ``_sharding_worker.py`` in a subprocess (once for the module) and
assert on the JSON it prints. The argument checks run here, on this process's devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from manifoldwalk_jax import sharding

from manifoldwalk.problem import ProblemError

WORKER = Path(__file__).with_name("_sharding_worker.py")
STEPS = 60
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def figures() -> dict:
    """What the worker measured in a process with 2 CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([*sys.path, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(WORKER), str(STEPS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_data_is_split_over_two_devices_and_theta_replicated(figures):
    assert figures["n_devices"] == 2
    assert figures["x_devices"] == 2
    assert figures["x_spec"] == ["batch"]
    # 101 examples: 50 on each device, the one left over replicated
    assert figures["x_shard_shapes"] == [[50, 4], [50, 4]]
    assert figures["y_shard_shapes"] == [[50], [50]]
    assert figures["rest_shape"] == [1, 4]
    assert figures["theta_fully_replicated"] and figures["theta_devices"] == 2
    assert figures["grad_fully_replicated"]


def test_the_compiled_step_takes_the_shards_as_arguments_and_all_reduces_once(figures):
    assert figures["step_data_args"] == [
        [[100, 4], ["batch"]],
        [[100], ["batch"]],
        [[1, 4], []],
        [[1], []],
    ]
    # the step evaluates the loss and gradient once: one (combined) all-reduce
    assert figures["step_all_reduces"] == 1


def test_sharded_loss_and_gradient_are_the_full_batch_values(figures):
    assert figures["loss_rel_diff"] <= 1e-14
    assert figures["grad_max_abs_diff"] <= 1e-13 * figures["grad_max_abs"]
    assert figures["numpy_theta_loss_diff"] <= 1e-14


@pytest.mark.parametrize("driver", ["sharded", "sharded_compiled"])
def test_the_sharded_walk_takes_the_unsharded_path(figures, driver):
    """Eager driver, and the compiled one (16 steps per host sync), against the eager walk on
    one device."""
    sharded, plain = figures[driver], figures["plain"]
    assert plain["n_predictor"] == STEPS and plain["n_corrector"] > 5, "too short to compare"
    for key in ("stop_reason", "n_predictor", "n_corrector", "n_grad_evals"):
        assert sharded[key] == plain[key], key
    assert sharded["history_n_predictor"] == plain["history_n_predictor"]
    assert sharded["history_n_corrector"] == plain["history_n_corrector"]
    np.testing.assert_allclose(sharded["history_reg"], plain["history_reg"], rtol=1e-10)
    np.testing.assert_allclose(sharded["theta"], plain["theta"], rtol=1e-10, atol=1e-12)
    assert sharded["theta_fully_replicated"] and sharded["theta_devices"] == 2
    for key, value in plain["evaluate"].items():
        assert sharded["evaluate"][key] == pytest.approx(value, rel=1e-12)


def test_theta_on_one_device_is_refused_with_what_to_do(figures):
    message = figures["single_device_theta_refused"]
    assert "problem.replicate(theta)" in message and "cpu:1" in message


def test_l2_weights_counts_the_kernels_only(figures):
    assert figures["l2_weights_reg"] == pytest.approx(figures["l2_weights_expected"], rel=1e-12)


# --- in this process ------------------------------------------------------------------------


def linear_problem(**kwargs):
    params = {"w": jnp.ones((3, 2)) * 0.1, "b": jnp.zeros(2)}
    x = np.arange(15.0).reshape(5, 3) / 10
    y = np.array([0, 1, 0, 1, 1])

    def apply_fn(p, xb):
        return xb @ p["w"] + p["b"]

    def loss_fn(out, yb):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), yb[:, None], axis=1))

    return sharding.from_apply(apply_fn, params, loss_fn, (x, y), **kwargs)


def test_one_device_is_allowed_and_nothing_is_left_over():
    problem = linear_problem(devices=jax.devices()[:1])
    assert (problem.n_examples, problem.n_sharded) == (5, 5)
    loss, grad = problem.loss_and_grad(problem.theta0)
    assert grad.shape == (problem.n_params,) and np.isfinite(float(loss))


def test_an_empty_device_list_is_refused():
    with pytest.raises(ProblemError, match="devices is empty"):
        linear_problem(devices=[])


def test_a_repeated_device_is_refused():
    device = jax.devices()[0]
    with pytest.raises(ProblemError, match="more than once"):
        linear_problem(devices=[device, device])
