"""Test cases shared by ``test_nets_{torch,jax,tf}.py`` (the same nets and loops per framework)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: ``(kwargs, match)``: options that make every framework's ``train`` raise ValueError.
BAD_TRAIN_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"task": "ranking"}, "task must be"),
    ({"reg": "l1"}, "reg must be"),
    ({"epochs": -1}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"weight_decay": -1.0}, "weight_decay"),
]


def param_count_cases(
    ff: Callable[..., Any], mnist_cnv: Callable[[], Any], cifar10_cnv: Callable[[], Any]
) -> list[tuple[Callable[[], Any], int]]:
    """``(build, expected)`` pairs: the paper's nets and their parameter counts.

    Args:
        ff: ``ff(input_shape, n_out, hidden=...)`` builds a feed-forward net.
        mnist_cnv: Builds MNIST-CNV.
        cifar10_cnv: Builds CIFAR10-CNV.

    Returns:
        MNIST-FF (flat and 28x28 input) 99,710; MNIST-CNV 54,930; CIFAR10-CNV 685,450; Iris with
        four hidden layers of 100 31,103 (the sums are spelled out in test_nets_torch.py).
    """
    return [
        (lambda: ff(784, 10), 99_710),
        (lambda: ff((28, 28), 10), 99_710),
        (mnist_cnv, 54_930),
        (cifar10_cnv, 685_450),
        (lambda: ff(4, 3, hidden=(100,) * 4), 31_103),
    ]
