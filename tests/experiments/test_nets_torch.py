"""The paper's nets and the phase-1 / weight-decay loop in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _nets_helpers import BAD_TRAIN_OPTIONS, param_count_cases
from manifoldwalk_torch.paper.nets import (
    ChannelsLastConv2d,
    FlattenNHWC,
    cifar10_cnv,
    cnv_net,
    count_params,
    ff_net,
    get_weights,
    mnist_cnv,
    set_weights,
)
from manifoldwalk_torch.paper.training import ADAM_EPS, TrainResult, penalty, train

pytestmark = pytest.mark.usefixtures("torch_one_thread")


# Parameter counts, by hand (kernel + bias per layer):
#   MNIST-FF    784*100+100 + 100*100+100 + 100*100+100 + 100*10+10            = 99,710
#   MNIST-CNV   conv 1*3*3*20+20 = 200; conv 20*3*3*20+20 = 3,620;
#               28 -conv-> 26 -pool-> 13 -conv-> 11 -pool-> 5: dense 5*5*20*100+100 = 50,100;
#               dense 100*10+10 = 1,010                                        = 54,930
#   CIFAR10-CNV conv 3*3*3*60+60 = 1,680; conv 60*3*3*60+60 = 32,460;
#               32 -> 30 -> 15 -> 13 -> 6: dense 6*6*60*300+300 = 648,300;
#               dense 300*10+10 = 3,010                                        = 685,450
#   Iris, 4 hidden (the authors'): 4*100+100 + 3*(100*100+100) + 100*3+3       = 31,103
@pytest.mark.parametrize(
    ("build", "expected"),
    param_count_cases(ff_net, mnist_cnv, cifar10_cnv),
)
def test_parameter_counts(build, expected: int) -> None:
    assert count_params(build()) == expected


def test_output_shapes_and_channel_last_inputs() -> None:
    assert ff_net((28, 28), 10)(torch.zeros(5, 28, 28)).shape == (5, 10)
    assert ff_net(9, 1)(torch.zeros(7, 9)).shape == (7, 1)
    cnv = mnist_cnv(seed=3)
    x = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0))
    out = cnv(x)
    assert out.shape == (4, 10)
    torch.testing.assert_close(cnv(x[..., None]), out)  # (n, H, W) and (n, H, W, 1) agree
    assert cifar10_cnv()(torch.zeros(2, 32, 32, 3)).shape == (2, 10)
    with pytest.raises(ValueError, match="too small"):
        cnv_net((5, 5), 10)


def test_flatten_is_nhwc_order() -> None:
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)  # NCHW
    flat = FlattenNHWC()(x)
    expected = x.numpy().transpose(0, 2, 3, 1).reshape(2, -1)
    np.testing.assert_array_equal(flat.numpy(), expected)
    assert flat[0, 1] == x[0, 1, 0, 0]  # channel varies fastest


@pytest.mark.parametrize("in_channels", [1, 3])
def test_channels_last_conv_matches_conv2d_in_values_and_gradients(in_channels: int) -> None:
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(in_channels, 5, 3, dtype=torch.float64)
    fast = ChannelsLastConv2d(in_channels, 5, 3, dtype=torch.float64)
    fast.load_state_dict(plain.state_dict())
    x = torch.rand(4, in_channels, 9, 9, dtype=torch.float64)
    out_plain, out_fast = plain(x), fast(x)
    # the point of the layer: its output is channels-last even for a one-channel weight
    assert out_fast.is_contiguous(memory_format=torch.channels_last)
    assert not out_fast.is_contiguous()
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-13, atol=1e-13)
    out_plain.square().sum().backward()
    out_fast.square().sum().backward()
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-12, atol=1e-12)
    assert fast.weight.grad.shape == plain.weight.grad.shape


def test_glorot_normal_init_and_zero_biases(assert_glorot) -> None:
    model = cifar10_cnv(seed=1)
    weights = get_weights(model)
    for kernel, bias in zip(weights[::2], weights[1::2], strict=True):
        assert_glorot(kernel)
        assert not bias.any()
    for kernel in get_weights(ff_net(784, 10, seed=2))[::2]:
        assert_glorot(kernel)


def test_init_is_seeded_and_dtype_is_honoured() -> None:
    a, b, c = (get_weights(ff_net(4, 3, seed=s)) for s in (0, 0, 1))
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a[0], c[0])
    model = mnist_cnv(dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model(torch.zeros(1, 28, 28, dtype=torch.float64)).dtype == torch.float64


def test_get_set_weights_round_trip_and_layout() -> None:
    src, dst = mnist_cnv(seed=0), mnist_cnv(seed=1)
    weights = get_weights(src)
    assert [w.shape for w in weights[:2]] == [(3, 3, 1, 20), (20,)]  # HWIO kernel, then bias
    assert weights[4].shape == (500, 100)  # dense kernels are (in, out)
    set_weights(dst, weights)
    for p, q in zip(src.parameters(), dst.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected 8 arrays"):
        set_weights(dst, weights[:-1])
    with pytest.raises(ValueError, match="does not fit"):
        set_weights(dst, [w.T for w in weights])


def test_penalty_with_and_without_biases() -> None:
    model = ff_net(4, 3, hidden=(5,))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if name.endswith("bias") else 2.0)
    # kernels 4*5 + 5*3 = 35 entries of 2; biases 5 + 3 = 8 entries of 1
    assert _r(model, "l2") == 35 * 4 + 8
    assert _r(model, "l2-weights") == 35 * 4
    with pytest.raises(ValueError, match="reg must be"):
        penalty(model, "l1")


def test_phase1_lowers_loss_and_counts(iris) -> None:
    model = ff_net(4, 3, seed=0)
    x, y = torch.as_tensor(iris.x_train), torch.as_tensor(iris.y_train)
    with torch.no_grad():
        before = float(torch.nn.functional.cross_entropy(model(x), y))
    seen = []
    result = train(model, iris, epochs=5, progress=lambda *a: seen.append(a))
    assert isinstance(result, TrainResult)
    assert result.model is model
    assert result.epochs == 5 and len(result.losses) == 5
    assert result.n_example_grads == 5 * 120 and result.n_train == 120
    assert result.losses[-1] < result.losses[0]
    assert result.final_loss < 0.5 * before
    assert result.wall_time > 0
    assert [s[:2] for s in seen] == [(e, 5) for e in range(1, 6)]
    assert [s[2] for s in seen] == result.losses


def test_seeded_training_is_reproducible(iris) -> None:
    runs = [train(ff_net(4, 3, seed=0), iris, epochs=3, seed=7) for _ in range(2)]
    assert runs[0].losses == runs[1].losses
    other = train(ff_net(4, 3, seed=0), iris, epochs=3, seed=8)
    assert other.losses != runs[0].losses  # the seed drives the shuffling


def _r(model: torch.nn.Module, reg: str = "l2") -> float:
    """R of the model as a float."""
    with torch.no_grad():
        return float(penalty(model, reg))


def test_huge_weight_decay_drives_norm_to_zero(iris) -> None:
    model = ff_net(4, 3, seed=0)
    before = _r(model)  # about 210
    result = train(model, iris, epochs=30, lr=1e-2, weight_decay=1e3)
    assert _r(model) < 1e-3 * before  # measured: 2e-6 of it
    assert result.final_loss == pytest.approx(np.log(3), abs=1e-2)  # a constant predictor


def _backprop_penalty_train(model, x, y, *, epochs, weight_decay, reg, seed) -> None:
    """The weight-decay loop as it was written before: backward through ``loss + λ·penalty``
    (``train`` must match it bit for bit: the same Adam, shuffling and batches)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=ADAM_EPS, foreach=True)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = torch.as_tensor(rng.permutation(len(x)))
        for lo in range(0, len(x), 32):
            idx = order[lo : lo + 32]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            (loss + weight_decay * penalty(model, reg)).backward()
            opt.step()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("reg", ["l2", "l2-weights"])
@pytest.mark.parametrize("weight_decay", [1e-3, 0.37])
def test_weight_decay_adds_the_penalty_gradient_bit_for_bit(dtype, reg, weight_decay) -> None:
    # train() adds 2λθ to the data gradient instead of backpropagating λ·R: the same steps.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(70, 4))
    y = rng.integers(0, 3, size=70)
    ours, theirs = (ff_net(4, 3, hidden=(30, 30), seed=2, dtype=dtype) for _ in range(2))
    train(ours, (x, y), task="classification", epochs=6, weight_decay=weight_decay, reg=reg, seed=9)
    xt = torch.as_tensor(x, dtype=dtype)
    _backprop_penalty_train(
        theirs, xt, torch.as_tensor(y), epochs=6, weight_decay=weight_decay, reg=reg, seed=9
    )
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
    untrained = ff_net(4, 3, hidden=(30, 30), seed=2, dtype=dtype)
    assert not torch.equal(next(ours.parameters()), next(untrained.parameters()))  # it trained


def test_l2_weights_leaves_biases_free(iris) -> None:
    model = ff_net(4, 3, hidden=(20,), seed=0)
    with torch.no_grad():
        model[1].bias.fill_(1.0)
        model[3].bias.fill_(1.0)
    kernels, biases = _r(model, "l2-weights"), 23.0
    train(model, iris, epochs=30, lr=1e-2, weight_decay=1e3, reg="l2-weights")
    assert _r(model, "l2-weights") < 1e-2 * kernels  # measured: 1e-5 of it
    assert _r(model, "l2") - _r(model, "l2-weights") > 0.5 * biases  # biases are not decayed


def test_callback_stops_early(iris) -> None:
    calls = []

    def callback(epoch: int, model: torch.nn.Module, loss: float) -> bool:
        calls.append((epoch, loss))
        return epoch == 2

    result = train(ff_net(4, 3), iris, epochs=10, callback=callback)
    assert result.epochs == 2 and len(result.losses) == 2
    assert result.n_example_grads == 240
    assert calls == list(enumerate(result.losses, start=1))


def test_regression_on_auto_mpg(auto_mpg) -> None:
    model = ff_net(auto_mpg.x_train.shape[1], 1, seed=0)
    result = train(model, (auto_mpg.x_train, auto_mpg.y_train), task="regression", epochs=3)
    assert result.n_example_grads == 3 * 314
    assert result.losses[-1] < result.losses[0]
    # the final loss is the full-batch MSE of the trained model
    with torch.no_grad():
        pred = model(torch.as_tensor(auto_mpg.x_train)).numpy()
    assert result.final_loss == pytest.approx(np.mean((pred - auto_mpg.y_train) ** 2), rel=1e-5)


def test_adam_uses_keras_epsilon() -> None:
    assert ADAM_EPS == 1e-7


@pytest.mark.parametrize(("kwargs", "match"), BAD_TRAIN_OPTIONS)
def test_bad_options_raise(iris, kwargs: dict, match: str) -> None:
    options = {"epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        train(ff_net(4, 3), iris, **options)


def test_task_is_required_for_bare_arrays(iris) -> None:
    with pytest.raises(ValueError, match="task must be"):
        train(ff_net(4, 3), (iris.x_train, iris.y_train), epochs=1)
