"""The paper's nets and the phase-1 / weight-decay loop in Keras 3 (TensorFlow backend)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from _nets_helpers import BAD_TRAIN_OPTIONS, param_count_cases  # noqa: E402
from manifoldwalk_tf.paper.nets import (  # noqa: E402
    cifar10_cnv,
    cnv_net,
    count_params,
    ff_net,
    get_weights,
    mnist_cnv,
    set_weights,
)
from manifoldwalk_tf.paper.training import TrainResult, penalty, train  # noqa: E402


# Parameter counts (the sums are spelled out in test_nets_torch.py).
@pytest.mark.parametrize(
    ("build", "expected"),
    param_count_cases(ff_net, mnist_cnv, cifar10_cnv),
)
def test_parameter_counts(build, expected: int) -> None:
    model = build()
    assert count_params(model) == expected == model.count_params()


def test_output_shapes_and_channel_last_inputs() -> None:
    assert ff_net((28, 28), 10).output_shape == (None, 10)
    assert ff_net(9, 1)(np.zeros((7, 9), np.float32)).shape == (7, 1)
    assert mnist_cnv().output_shape == (None, 10)
    assert cifar10_cnv().output_shape == (None, 10)
    model = cnv_net((12, 12, 1), 10, filters=4, dense=8)
    x = np.random.default_rng(0).random((3, 12, 12, 1), dtype=np.float32)
    single = cnv_net((12, 12), 10, filters=4, dense=8)
    set_weights(single, get_weights(model))
    np.testing.assert_array_equal(single(x[..., 0]), model(x))  # (n,H,W) == (n,H,W,1)
    with pytest.raises(ValueError, match="too small"):
        cnv_net((5, 5), 10)


def test_glorot_normal_init_and_zero_biases(assert_glorot) -> None:
    weights = get_weights(cifar10_cnv(seed=1))
    assert [w.shape for w in weights[::2]] == [
        (3, 3, 3, 60),
        (3, 3, 60, 60),
        (2160, 300),
        (300, 10),
    ]
    for kernel, bias in zip(weights[::2], weights[1::2], strict=True):
        assert_glorot(kernel)
        assert not bias.any()


def test_init_is_seeded_and_dtype_is_honoured() -> None:
    a, b, c = (get_weights(ff_net(4, 3, seed=s)) for s in (0, 0, 1))
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[2], a[4])  # layers of one shape still get different draws
    model = ff_net(4, 3, hidden=(5,), dtype="float64")
    assert {v.dtype for v in model.weights} == {"float64"}
    assert model(np.zeros((1, 4))).dtype == "float64"


def test_set_weights_checks_shapes() -> None:
    model = ff_net(4, 3, hidden=(5,))
    with pytest.raises(ValueError, match="expected 4 arrays"):
        set_weights(model, get_weights(model)[:-1])
    with pytest.raises(ValueError, match="does not fit"):
        set_weights(model, [w.T for w in get_weights(model)])


def test_penalty_with_and_without_biases() -> None:
    model = ff_net(4, 3, hidden=(5,))
    set_weights(model, [np.full(w.shape, 2.0 if w.ndim == 2 else 1.0) for w in get_weights(model)])
    assert float(penalty(model, "l2")) == 35 * 4 + 8
    assert float(penalty(model, "l2-weights")) == 35 * 4
    with pytest.raises(ValueError, match="reg must be"):
        penalty(model, "l1")


def test_phase1_lowers_loss_and_counts_and_stops_early(iris) -> None:
    model = ff_net(4, 3, seed=0)
    logits = np.asarray(model(iris.x_train))
    before = float(np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(120), iris.y_train]))
    seen = []
    result = train(model, iris, epochs=5, progress=lambda *a: seen.append(a))
    assert isinstance(result, TrainResult) and result.model is model
    assert result.epochs == 5 and len(result.losses) == 5
    assert result.n_example_grads == 5 * 120 and result.n_train == 120
    assert result.losses[-1] < result.losses[0]
    assert result.final_loss < 0.5 * before
    assert [s[:2] for s in seen] == [(e, 5) for e in range(1, 6)]
    stopped = train(model, iris, epochs=10, callback=lambda epoch, m, loss: epoch == 2)
    assert stopped.epochs == 2 and stopped.n_example_grads == 240


def test_seeded_training_is_reproducible(iris) -> None:
    runs = [train(ff_net(4, 3, seed=0), iris, epochs=2, seed=7) for _ in range(2)]
    assert runs[0].losses == runs[1].losses


def test_huge_weight_decay_drives_norm_to_zero(iris) -> None:
    model = ff_net(4, 3, hidden=(20,), seed=0)
    set_weights(model, [w if w.ndim == 2 else np.ones_like(w) for w in get_weights(model)])
    kernels, biases = float(penalty(model, "l2-weights")), 23.0
    train(model, iris, epochs=30, lr=1e-2, weight_decay=1e3, reg="l2-weights")
    assert float(penalty(model, "l2-weights")) < 1e-2 * kernels
    assert float(penalty(model, "l2")) - float(penalty(model, "l2-weights")) > 0.5 * biases
    train(model, iris, epochs=60, lr=1e-2, weight_decay=1e3, reg="l2")  # now the biases go too
    assert float(penalty(model, "l2")) < 1e-3 * (kernels + biases)


def test_regression_on_auto_mpg(auto_mpg) -> None:
    model = ff_net(auto_mpg.x_train.shape[1], 1, seed=0)
    result = train(model, (auto_mpg.x_train, auto_mpg.y_train), task="regression", epochs=2)
    assert result.n_example_grads == 2 * 314
    assert result.losses[-1] < result.losses[0]
    pred = np.asarray(model(auto_mpg.x_train))
    assert result.final_loss == pytest.approx(np.mean((pred - auto_mpg.y_train) ** 2), rel=1e-5)


@pytest.mark.parametrize(("kwargs", "match"), BAD_TRAIN_OPTIONS)
def test_bad_options_raise(iris, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        train(ff_net(4, 3, hidden=(5,)), iris, **{"epochs": 1, **kwargs})


def test_backend_is_tensorflow() -> None:
    import keras

    assert keras.backend.backend() == "tensorflow"
