"""Framework-free parts that the paper backends (``manifoldwalk_*.paper``) share.

The PyTorch, JAX and Keras backends build the same nets, train them with the same loop and
hand the experiment layer the same things; what does not depend on the framework lives here,
in numpy only, so that the three check, name and count alike: the net kinds and dtypes, the
layer sizes of the feed-forward and convolutional nets, the backends' ``train`` and the check
of a held-out set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from manifoldwalk import ProblemError

__all__ = [
    "DTYPES",
    "NETS",
    "BackendTrain",
    "check_dtype",
    "check_held_out",
    "check_net",
    "cnv_sizes",
    "ff_widths",
    "paper_train",
]

NETS = ("ff", "mnist-cnv", "cifar10-cnv")
"""The net kinds of the paper: the feed-forward net and the two convolutional nets."""

DTYPES = ("float32", "float64")
"""The parameter dtypes the backends build nets in."""

BackendTrain = Callable[..., tuple[Any, int]]
"""A backend's ``train``: ``train(model, x, y, *, task, epochs, ...) -> (model, n_example_grads)``."""


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` after checking that it is one of :data:`DTYPES`.

    Args:
        dtype: The name asked for.

    Returns:
        The name.

    Raises:
        ValueError: For any other name.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose 'float32' or 'float64'")
    return dtype


def check_net(net: str, known: Sequence[str] = NETS) -> str:
    """Return ``net`` after checking that the backend builds it.

    Args:
        net: The net kind asked for.
        known: The kinds the backend builds.

    Returns:
        The net kind.

    Raises:
        ValueError: For a kind not in ``known`` (they are listed).
    """
    if net not in known:
        raise ValueError(f"unknown net {net!r}; choose one of {', '.join(known)}")
    return net


def ff_widths(n_in: int | Sequence[int], hidden: Sequence[int], n_out: int) -> list[int]:
    """Return the layer widths of the feed-forward net: inputs, hidden layers, outputs.

    Args:
        n_in: The number of input features, or the shape of one input (flattened row-major).
        hidden: The hidden widths.
        n_out: The number of outputs.

    Returns:
        ``[features, *hidden, n_out]``.

    Raises:
        ValueError: If the input has no feature or a width is not positive.
    """
    n = int(n_in) if isinstance(n_in, int | np.integer) else math.prod(int(d) for d in n_in)
    if n < 1:
        raise ValueError(f"the input must have at least one feature, got {n_in!r}")
    widths = [n, *(int(h) for h in hidden), int(n_out)]
    if min(widths) < 1:
        raise ValueError(f"layer widths must be positive, got {widths}")
    return widths


def cnv_sizes(
    input_shape: Sequence[int], n_out: int, filters: int, dense: int
) -> tuple[int, int, int]:
    """Return the sizes of the convolutional net for channel-last images of ``input_shape``.

    Two stages of a 3×3 valid convolution and a 2×2 average pooling of stride 2 take an image
    of ``H × W`` to ``(H - 2) // 2`` then ``((H - 2) // 2 - 2) // 2`` rows (likewise columns).

    Args:
        input_shape: The shape of one image, ``(H, W)`` or ``(H, W, C)``.
        n_out: The number of class logits.
        filters: Filters per convolution.
        dense: The width of the hidden dense layer.

    Returns:
        ``(height, width, channels)``: the last feature map's rows and columns, and the
        image's channels (1 for ``(H, W)``).

    Raises:
        ValueError: If the shape is neither ``(H, W)`` nor ``(H, W, C)``, the image is too small
            for two conv/pool stages or a size is not positive.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"input_shape must be (H, W) or (H, W, C), got {input_shape!r}")
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    for _ in range(2):
        height, width = (height - 2) // 2, (width - 2) // 2
    if min(height, width) < 1 or min(channels, filters, dense, n_out) < 1:
        raise ValueError(f"input_shape {input_shape!r} too small or a layer size is not positive")
    return height, width, channels


def paper_train(loop: Callable[..., Any]) -> BackendTrain:
    """Return a backend's ``train`` around its framework's training loop.

    Args:
        loop: ``loop(model, (x, y), *, task, epochs, weight_decay, reg, seed, progress)``
            returning a :class:`manifoldwalk._training_result.TrainResult` whose ``model`` is
            what the backend calls a model (``manifoldwalk_torch.paper.training.train`` and its
            twins, or a wrapper of one).

    Returns:
        The backend's ``train`` (see :attr:`manifoldwalk.experiments.backend.PaperBackend.train`).
    """

    def train(
        model: Any,
        x: np.ndarray,
        y: np.ndarray,
        *,
        task: str,
        epochs: int,
        weight_decay: float = 0.0,
        reg: str = "l2",
        seed: int = 0,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> tuple[Any, int]:
        """Train with Adam(1e-3), minibatches of 32, on ``L + weight_decay · R``.

        Args:
            model: From the backend's ``build_net`` (PyTorch and Keras: trained in place).
            x: The training inputs.
            y: The training targets.
            task: ``"classification"`` or ``"regression"``.
            epochs: Passes over the data.
            weight_decay: λ.
            reg: ``"l2"`` (all parameters) or ``"l2-weights"`` (kernels only).
            seed: Seeds the shuffling.
            progress: Called after every epoch as ``progress(epoch, epochs, loss)``.

        Returns:
            ``(model, n_example_grads)``: the trained model and the example-wise gradient count.
        """
        result = loop(
            model,
            (x, y),
            task=task,
            epochs=epochs,
            weight_decay=weight_decay,
            reg=reg,
            seed=seed,
            progress=progress,
        )
        return result.model, int(result.n_example_grads)

    return train


def check_held_out(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return a held-out set as numpy arrays, checked to be of equal, non-zero length.

    Args:
        x: The held-out inputs.
        y: The held-out targets.

    Returns:
        ``(x, y)`` as numpy arrays.

    Raises:
        ProblemError: A scalar input or target, different lengths, or no examples.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0:
        raise ProblemError("held_out: x and y must have a leading example axis.")
    if len(x) != len(y):
        raise ProblemError(
            f"held_out: inputs and targets must have the same number of examples, got "
            f"{len(x)} inputs and {len(y)} targets."
        )
    if len(x) == 0:
        raise ProblemError("held_out: there are no examples.")
    return x, y
