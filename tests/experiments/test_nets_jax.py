"""The paper's nets and the phase-1 / weight-decay loop in JAX."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _nets_helpers import BAD_TRAIN_OPTIONS, param_count_cases
from manifoldwalk_jax.paper.nets import (
    apply_cnv,
    apply_ff,
    count_params,
    get_weights,
    init_cifar10_cnv,
    init_cnv,
    init_ff,
    init_mnist_cnv,
    set_weights,
)
from manifoldwalk_jax.paper.training import (
    ADAM_EPS,
    TrainResult,
    adam_init,
    adam_update,
    data_loss,
    penalty,
    train,
)


# Parameter counts (the sums are spelled out in test_nets_torch.py):
# MNIST-FF 99,710; MNIST-CNV 54,930; CIFAR10-CNV 685,450; Iris with 4 hidden layers 31,103.
# ``jax.eval_shape`` traces the initialisers without compiling them.
@pytest.mark.parametrize(
    ("build", "expected"),
    param_count_cases(
        partial(init_ff, 0), partial(init_mnist_cnv, 0), partial(init_cifar10_cnv, 0)
    ),
)
def test_parameter_counts(build, expected: int) -> None:
    assert count_params(jax.eval_shape(build)) == expected


def _small_cnv(seed: int):
    """A small CNV (12x12 in, 4 filters, dense 8, 10 out), one compiled initialiser for all tests."""
    return init_cnv(seed, (12, 12), 10, filters=4, dense=8)


def _out_shape(init, apply, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The output shape of ``apply(init(), zeros(x_shape))``, traced, not run."""
    return jax.eval_shape(lambda: apply(init(), jnp.zeros(x_shape))).shape


def test_output_shapes_and_channel_last_inputs() -> None:
    assert _out_shape(lambda: init_ff(0, (28, 28), 10), apply_ff, (5, 28, 28)) == (5, 10)
    assert _out_shape(lambda: init_ff(0, 9, 1), apply_ff, (7, 9)) == (7, 1)
    assert _out_shape(lambda: init_cifar10_cnv(0), apply_cnv, (2, 32, 32, 3)) == (2, 10)
    assert _out_shape(lambda: init_mnist_cnv(0), apply_cnv, (2, 28, 28)) == (2, 10)
    params = _small_cnv(3)
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 12, 12))
    apply = jax.jit(apply_cnv)
    out = apply(params, x)
    assert out.shape == (4, 10)
    np.testing.assert_array_equal(apply(params, x[..., None]), out)  # (n,H,W) == (n,H,W,1)
    with pytest.raises(ValueError, match="too small"):
        init_cnv(0, (5, 5))
    with pytest.raises(ValueError, match="expected images"):
        apply_cnv(params, jnp.zeros((2, 144)))


def test_glorot_normal_init_and_zero_biases(assert_glorot) -> None:
    weights = get_weights(init_cifar10_cnv(1))
    assert [w.shape for w in weights[::2]] == [
        (3, 3, 3, 60),
        (3, 3, 60, 60),
        (2160, 300),
        (300, 10),
    ]
    for kernel, bias in zip(weights[::2], weights[1::2], strict=True):
        assert_glorot(kernel)
        assert not bias.any()
    ff = get_weights(init_ff(2, 4, 3))
    for kernel in ff[2:6:2]:  # the two 100x100 kernels (the others are too small to judge)
        assert_glorot(kernel)
    assert not any(b.any() for b in ff[1::2])


def test_init_is_seeded_and_dtype_is_checked() -> None:
    a, b = get_weights(init_ff(0, 4, 3)), get_weights(init_ff(jax.random.PRNGKey(0), 4, 3))
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)  # an int seed is the key PRNGKey(seed)
    assert not np.array_equal(a[0], get_weights(init_ff(1, 4, 3))[0])
    with jax.enable_x64(False), pytest.raises(ValueError, match="jax_enable_x64"):
        init_ff(0, 4, 3, dtype=jnp.float64)  # other test modules turn x64 on globally
    with pytest.raises(ValueError, match="floating"):
        init_ff(0, 4, 3, dtype=jnp.int32)
    with jax.enable_x64(True):
        params = init_ff(0, 4, 3, hidden=(5,), dtype=jnp.float64)
        assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype("float64")}
        assert apply_ff(params, jnp.zeros((1, 4), jnp.float64)).dtype == jnp.float64


def test_get_set_weights_round_trip() -> None:
    src, template = _small_cnv(0), _small_cnv(1)
    copy = set_weights(template, get_weights(src))
    assert jax.tree_util.tree_structure(copy) == jax.tree_util.tree_structure(src)
    for a, b in zip(jax.tree_util.tree_leaves(src), jax.tree_util.tree_leaves(copy), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected 8 arrays"):
        set_weights(template, get_weights(src)[:-1])
    with pytest.raises(ValueError, match="does not fit"):
        set_weights(template, [w.T for w in get_weights(src)])


def test_penalty_and_losses() -> None:
    params = jax.tree_util.tree_map(jnp.ones_like, init_ff(0, 4, 3, hidden=(5,)))
    params["dense"][0]["kernel"] = 2 * params["dense"][0]["kernel"]
    # kernels: 20 entries of 2 and 15 of 1; biases: 8 entries of 1
    assert float(penalty(params, "l2")) == 20 * 4 + 15 + 8
    assert float(penalty(params, "l2-weights")) == 20 * 4 + 15
    with pytest.raises(ValueError, match="reg must be"):
        penalty(params, "l1")
    logits = jnp.array([[0.0, 0.0], [2.0, 0.0]])
    expected = (np.log(2) + np.log1p(np.exp(-2.0))) / 2
    assert float(data_loss(logits, jnp.array([1, 0]), "classification")) == pytest.approx(expected)
    assert float(data_loss(jnp.array([[1.0], [3.0]]), jnp.array([[0.0], [0.0]]), "regression")) == 5


def test_adam_matches_the_textbook_step() -> None:
    with jax.enable_x64(True):
        params = {"w": jnp.array([1.0, -2.0], jnp.float64)}
        state = adam_init(params)
        grads = {"w": jnp.array([0.5, 0.0], jnp.float64)}
        new, state = adam_update(grads, state, params, lr=0.1)
        # first step: m̂ = g and v̂ = g², so the step is lr·g/(|g| + ε) (0 where g = 0)
        first = 1.0 - 0.1 * 0.5 / (0.5 + ADAM_EPS)
        np.testing.assert_allclose(new["w"], [first, -2.0], rtol=1e-14)
        assert int(state.count) == 1
        new, state = adam_update(grads, state, new, lr=0.1)
        m, v = 0.1 * 0.5 * 0.9 + 0.1 * 0.5, 0.001 * 0.25 * 0.999 + 0.001 * 0.25
        step = 0.1 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + ADAM_EPS)
        np.testing.assert_allclose(new["w"][0], first - step, rtol=1e-14)


def test_phase1_lowers_loss_and_counts(iris) -> None:
    params = init_ff(0, 4, 3)
    before = float(data_loss(apply_ff(params, iris.x_train), iris.y_train, "classification"))
    seen = []
    result = train(params, iris, epochs=5, progress=lambda *a: seen.append(a))
    assert isinstance(result, TrainResult)
    assert result.params is result.model
    assert result.epochs == 5 and len(result.losses) == 5
    assert result.n_example_grads == 5 * 120 and result.n_train == 120
    assert result.losses[-1] < result.losses[0]
    assert result.final_loss < 0.5 * before
    assert [s[:2] for s in seen] == [(e, 5) for e in range(1, 6)]
    assert [s[2] for s in seen] == result.losses
    # the input pytree is not modified
    np.testing.assert_array_equal(
        params["dense"][0]["kernel"], init_ff(0, 4, 3)["dense"][0]["kernel"]
    )


def test_seeded_training_is_reproducible(iris) -> None:
    runs = [train(init_ff(0, 4, 3), iris, epochs=3, seed=7) for _ in range(2)]
    assert runs[0].losses == runs[1].losses
    assert train(init_ff(0, 4, 3), iris, epochs=3, seed=8).losses != runs[0].losses


def test_huge_weight_decay_drives_norm_to_zero(iris) -> None:
    params = init_ff(0, 4, 3)
    before = float(penalty(params))
    result = train(params, iris, epochs=30, lr=1e-2, weight_decay=1e3)
    assert float(penalty(result.params)) < 1e-3 * before
    assert result.final_loss == pytest.approx(np.log(3), abs=1e-2)


def test_l2_weights_leaves_biases_free(iris) -> None:
    params = init_ff(0, 4, 3, hidden=(20,))
    for layer in params["dense"]:
        layer["bias"] = jnp.ones_like(layer["bias"])
    kernels, biases = float(penalty(params, "l2-weights")), 23.0
    result = train(params, iris, epochs=30, lr=1e-2, weight_decay=1e3, reg="l2-weights")
    assert float(penalty(result.params, "l2-weights")) < 1e-2 * kernels
    decayed = float(penalty(result.params)) - float(penalty(result.params, "l2-weights"))
    assert decayed > 0.5 * biases  # biases are not decayed


def test_callback_stops_early(iris) -> None:
    calls = []

    def callback(epoch: int, params, loss: float) -> bool:
        calls.append((epoch, loss))
        return epoch == 2

    result = train(init_ff(0, 4, 3), iris, epochs=10, callback=callback)
    assert result.epochs == 2 and result.n_example_grads == 240
    assert calls == list(enumerate(result.losses, start=1))


def test_regression_on_auto_mpg(auto_mpg) -> None:
    params = init_ff(0, auto_mpg.x_train.shape[1], 1)
    result = train(params, (auto_mpg.x_train, auto_mpg.y_train), task="regression", epochs=3)
    assert result.n_example_grads == 3 * 314
    assert result.losses[-1] < result.losses[0]
    pred = np.asarray(apply_ff(result.params, auto_mpg.x_train))
    assert result.final_loss == pytest.approx(np.mean((pred - auto_mpg.y_train) ** 2), rel=1e-5)


def test_cnv_trains_with_the_default_apply() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((40, 12, 12), dtype=np.float32)
    y = (x.mean(axis=(1, 2)) > 0.5).astype(np.int64)
    params = _small_cnv(0)
    result = train(params, (x, y), task="classification", epochs=2, batch_size=20)
    assert result.n_example_grads == 80
    assert np.isfinite(result.final_loss)


@pytest.mark.parametrize(("kwargs", "match"), BAD_TRAIN_OPTIONS)
def test_bad_options_raise(iris, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        train(init_ff(0, 4, 3), iris, **{"epochs": 1, **kwargs})
