"""The paper's convolutional nets in PyTorch: channels-last convolutions against plain ``Conv2d``.

The walk hands a PyTorch model its parameters as views of one flat θ, so every convolution weight
is NCHW-contiguous at every call. ``manifoldwalk_torch.paper.nets.ChannelsLastConv2d`` converts
the weight to channels-last inside ``forward``, which makes the convolution's output and every
tanh and pool after it channels-last. This times, interleaved round by round in one process, one
full-batch ``problem.loss_and_grad(θ)`` of the wrapped MNIST-CNV net (1,000 random 28×28 images,
float32, one intra-op thread) and of CIFAR10-CNV (250 random 32×32×3 images) with

- ``channels_last``: the net as ``manifoldwalk_torch.paper`` builds it;
- ``plain``: the same weights in ``torch.nn.Conv2d`` layers.

It checks that both give the same loss and gradient (to float32 rounding) and prints the medians
and the paired ratio plain / channels_last (the speed-up).

    python benchmarks/conv_layout.py [--reps 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adapter_overhead import time_interleaved  # noqa: E402
from perf import paired_ratios  # noqa: E402

NETS = {"mnist-cnv": ((28, 28), 1000), "cifar10-cnv": ((32, 32, 3), 250)}


def plain_copy(net):
    """``net`` with every ``ChannelsLastConv2d`` replaced by an ``nn.Conv2d`` of the same
    weights (a new module; ``net`` is untouched)."""
    import copy

    from manifoldwalk_torch.paper.nets import ChannelsLastConv2d
    from torch import nn

    plain = copy.deepcopy(net)
    for i, layer in enumerate(plain):
        if isinstance(layer, ChannelsLastConv2d):
            conv = nn.Conv2d(
                layer.in_channels, layer.out_channels, layer.kernel_size, dtype=layer.weight.dtype
            )
            conv.load_state_dict(layer.state_dict())
            plain[i] = conv
    return plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()

    import numpy as np
    import torch
    from manifoldwalk_torch.paper import build_net, make_problem

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.reps} rounds")
    print("| net | channels_last ms | plain ms | plain / channels_last (paired) |")
    print("|---|---|---|---|")
    for name, (shape, n) in NETS.items():
        rng = np.random.default_rng(0)
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        y = rng.integers(0, 10, n)
        net = build_net(name, shape, 10, seed=0)
        with warnings.catch_warnings():  # an untrained net: the walk would warn, timing need not
            warnings.simplefilter("ignore")
            fast = make_problem(net, x, y, task="classification")
            plain = make_problem(plain_copy(net), x, y, task="classification")
        theta = fast.theta0
        (loss_f, grad_f), (loss_p, grad_p) = fast.loss_and_grad(theta), plain.loss_and_grad(theta)
        torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad_f, grad_p, rtol=1e-4, atol=1e-6)
        times = time_interleaved(
            {
                "channels_last": functools.partial(fast.loss_and_grad, theta),
                "plain": functools.partial(plain.loss_and_grad, theta),
            },
            args.reps,
            warmup=2,
        )
        ratio = paired_ratios(times, floor="channels_last")["plain"]
        ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"| {name} | {ms['channels_last']:.1f} | {ms['plain']:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
