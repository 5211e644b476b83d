"""The body of ``test_jax_sharding.py``, run in a process that sees 2 CPU devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=2`` must be set before JAX is imported, so
the test runs this file in a subprocess and asserts on the JSON it prints: a small tanh MLP on
101 examples (100 sharded over the 2 devices, 1 replicated) walked with the data sharded (by the
eager and by the compiled driver) and unsharded, the shardings of the data, θ and the compiled
step's inputs, and the number of all-reduces in the compiled step.
"""

from __future__ import annotations

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import manifoldwalk_jax  # noqa: E402
import numpy as np  # noqa: E402
from manifoldwalk_jax import sharding  # noqa: E402

import manifoldwalk  # noqa: E402
from manifoldwalk import get_scheme, init_state, make_step  # noqa: E402
from manifoldwalk.directions import as_direction  # noqa: E402
from manifoldwalk.problem import ProblemError  # noqa: E402

N, SIZES = 101, (4, 16, 3)


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    centres = np.random.default_rng(12345).normal(size=(SIZES[-1], SIZES[0]))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, SIZES[-1], size=n)
    return centres[y] * 1.5 + rng.normal(size=(n, SIZES[0])), y


def params0() -> dict:
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return {
        "w1": jax.random.normal(k1, SIZES[:2]) * 0.5,
        "b1": jnp.zeros(SIZES[1]),
        "w2": jax.random.normal(k2, SIZES[1:]) * 0.5,
        "b2": jnp.zeros(SIZES[2]),
    }


def apply_fn(p: dict, x: jax.Array) -> jax.Array:
    return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def loss_fn(out: jax.Array, y: jax.Array) -> jax.Array:
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None], axis=1))


def spec_of(array: jax.Array) -> list:
    return [None if a is None else str(a) for a in array.sharding.spec]


def main(steps: int) -> dict:
    x, y = data(N, 0)
    x_test, y_test = data(31, 1)
    sharded = sharding.from_apply(apply_fn, params0(), loss_fn, (x, y))
    plain = manifoldwalk_jax.from_apply(apply_fn, params0(), loss_fn, (x, y))
    frozen, xs, ys, x_rest, y_rest = sharded._args
    out: dict = {
        "n_devices": len(jax.devices()),
        "x_devices": len(xs.sharding.device_set),
        "x_spec": spec_of(xs),
        "x_shard_shapes": sorted(list(s.data.shape) for s in xs.addressable_shards),
        "y_shard_shapes": sorted(list(s.data.shape) for s in ys.addressable_shards),
        "rest_shape": list(x_rest.shape),
        "theta_fully_replicated": bool(sharded.theta0.sharding.is_fully_replicated),
        "theta_devices": len(sharded.theta0.sharding.device_set),
    }
    # phase 1 on the unsharded problem, then both walks from the same point
    theta = plain.theta0
    for _ in range(200):
        theta = theta - 0.5 * plain.grad(theta)
    loss_s, grad_s = sharded.loss_and_grad(sharded.replicate(theta))
    loss_p, grad_p = plain.loss_and_grad(theta)
    out["loss_rel_diff"] = abs(float(loss_s) - float(loss_p)) / abs(float(loss_p))
    out["grad_max_abs_diff"] = float(np.max(np.abs(np.asarray(grad_s) - np.asarray(grad_p))))
    out["grad_max_abs"] = float(np.max(np.abs(np.asarray(grad_p))))
    out["grad_fully_replicated"] = bool(grad_s.sharding.is_fully_replicated)
    out["numpy_theta_loss_diff"] = abs(float(sharded.loss(np.asarray(theta))) - float(loss_p))

    options = {"stop": manifoldwalk.Stop(max_steps=steps), "record": manifoldwalk.Record(every=1)}
    for name, problem, start, extra in (
        ("sharded", sharded, sharded.replicate(theta), {}),
        (
            "sharded_compiled",
            sharded,
            sharded.replicate(theta),
            {"driver": manifoldwalk.Chunked(16)},
        ),
        ("plain", plain, theta, {}),
    ):
        result = manifoldwalk.walk(problem, start, **options, **extra)
        out[name] = {
            "stop_reason": result.stop_reason,
            "n_predictor": result.n_predictor,
            "n_corrector": result.n_corrector,
            "n_grad_evals": result.n_grad_evals,
            "history_n_predictor": result.history["n_predictor"].tolist(),
            "history_n_corrector": result.history["n_corrector"].tolist(),
            "history_reg": result.history["reg"].tolist(),
            "theta": np.asarray(result.theta).tolist(),
            "theta_fully_replicated": bool(result.theta.sharding.is_fully_replicated),
            "theta_devices": len(result.theta.sharding.device_set),
            "evaluate": problem.evaluate(result.theta, x_test, y_test),
        }

    # the walk's compiled step takes the data as sharded arguments, not as constants
    direction, scheme = as_direction(None), get_scheme("default")
    step = sharded.compile_step(make_step(sharded, direction, scheme))
    lowered = step.lower(init_state(sharded, direction, scheme, sharded.replicate(theta)))
    compiled = lowered.compile()
    # the first argument of the compiled step is the problem's (frozen, xs, ys, x_rest, y_rest)
    data_shardings = compiled.input_shardings[0][0][1:]
    data_shapes = [list(a.shape) for a in lowered.args_info[0][0][1:]]
    out["step_data_args"] = [
        [shape, spec_of_sharding(s)] for shape, s in zip(data_shapes, data_shardings, strict=True)
    ]
    out["step_all_reduces"] = compiled.as_text().count(" all-reduce(")

    # a θ committed to one device only is refused with a message that says what to do
    try:
        sharded.loss_and_grad(jax.device_put(theta, jax.devices()[0]))
        out["single_device_theta_refused"] = ""
    except ProblemError as err:
        out["single_device_theta_refused"] = str(err)
    weights = sharding.from_apply(apply_fn, params0(), loss_fn, (x, y), reg="l2-weights")
    out["l2_weights_reg"] = float(weights.reg(weights.theta0))
    p = params0()
    out["l2_weights_expected"] = float(jnp.sum(p["w1"] ** 2) + jnp.sum(p["w2"] ** 2))
    return out


def spec_of_sharding(s) -> list:
    return [None if a is None else str(a) for a in getattr(s, "spec", ())]


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
