"""The paper's networks in PyTorch: the feed-forward net and the two convolutional nets.

Every builder returns an :class:`torch.nn.Sequential` whose weights are Glorot-normal
initialised (Keras' ``GlorotNormal``: a normal of standard deviation
``sqrt(2 / (fan_in + fan_out))``, truncated at two standard deviations and rescaled so that the
truncated distribution keeps that standard deviation — the initialiser of the authors' Keras code
and of ``jax.nn.initializers.glorot_normal``) and whose biases are zero.

Inputs arrive channel-last, as :mod:`manifoldwalk.datasets` delivers them: ``(n, features)``,
``(n, H, W)`` or ``(n, H, W, C)``. The feed-forward net flattens whatever it gets (row-major, so
the same as NumPy, JAX and Keras). The convolutional nets permute to NCHW for the convolutions and
permute back to NHWC before flattening (:class:`FlattenNHWC`), so that the first dense layer sees
features in the order Keras and JAX use: the weights of these nets are interchangeable with the
JAX and Keras versions (:func:`get_weights` / :func:`set_weights` convert to and from that common
layout).

Parameter counts (checked in the tests):

- MNIST-FF, ``ff_net(784, 10)``: 784·100+100 + 100·100+100 + 100·100+100 + 100·10+10 = 99,710.
- MNIST-CNV, :func:`mnist_cnv`: conv 1·9·20+20 = 200, conv 20·9·20+20 = 3,620,
  dense 5·5·20·100+100 = 50,100, dense 100·10+10 = 1,010; total 54,930.
- CIFAR10-CNV, :func:`cifar10_cnv`: conv 3·9·60+60 = 1,680, conv 60·9·60+60 = 32,460,
  dense 6·6·60·300+300 = 648,300, dense 300·10+10 = 3,010; total 685,450.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from manifoldwalk.experiments._paper_parts import cnv_sizes, ff_widths
from manifoldwalk_torch._namespace import _is_batched

__all__ = [
    "GLOROT_TRUNCATION_STD",
    "ChannelsFirst",
    "ChannelsLastConv2d",
    "FlattenNHWC",
    "cifar10_cnv",
    "cnv_net",
    "count_params",
    "ff_net",
    "get_weights",
    "glorot_normal_",
    "mnist_cnv",
    "set_weights",
]

GLOROT_TRUNCATION_STD = 0.87962566103423978
"""Standard deviation of a standard normal truncated to [-2, 2]; Keras divides by it."""


class ChannelsFirst(nn.Module):
    """Turn a channel-last image batch into NCHW: ``(n, H, W)`` or ``(n, H, W, C)`` in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` as ``(n, C, H, W)``.

        Args:
            x: A batch ``(n, H, W)`` (one channel) or ``(n, H, W, C)``.

        Returns:
            The same values laid out ``(n, C, H, W)``.

        Raises:
            ValueError: If ``x`` has neither 3 nor 4 dimensions.
        """
        if x.ndim == 3:
            return x.unsqueeze(1)
        if x.ndim == 4:
            return x.permute(0, 3, 1, 2)
        raise ValueError(f"expected images (n, H, W) or (n, H, W, C), got shape {tuple(x.shape)}")


class FlattenNHWC(nn.Module):
    """Flatten an NCHW feature map in NHWC order (as Keras' and JAX's ``reshape`` do)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` of shape ``(n, C, H, W)`` as ``(n, H·W·C)``, channel varying fastest.

        Args:
            x: A feature map ``(n, C, H, W)``.

        Returns:
            The flattened features ``(n, H*W*C)`` in (H, W, C) row-major order.
        """
        return x.permute(0, 2, 3, 1).flatten(1)


class ChannelsLastConv2d(nn.Conv2d):
    """A ``Conv2d`` that computes in channels-last memory layout, whatever its weight's layout.

    The walk's adapters hand the model its parameters as views of one flat vector, so the weight
    is always in the default (NCHW-contiguous) layout; converting it to channels-last at each call
    makes the convolution's output, and every tanh and pool after it, channels-last too. On a
    CPU a full-batch loss and gradient of the paper's MNIST net is about 1.7× faster (oneDNN's
    NHWC kernels; no gain on the CIFAR10 net, ``benchmarks/conv_layout.py``); the values are
    those of ``nn.Conv2d`` to rounding. ``.to(memory_format=...)`` rather than
    ``.contiguous(memory_format=...)`` because only the former also restrides a one-channel
    weight, whose two layouts are otherwise the same tensor.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` (``(n, C, H, W)``, any layout) with the channels-last weight.

        Args:
            x: The input feature map.

        Returns:
            The output feature map ``(n, out_channels, H', W')`` in channels-last layout.
        """
        weight = self.weight
        if not _is_batched(weight):  # a vmap lane's weight has no layout of its own to change
            weight = weight.to(memory_format=torch.channels_last)
        return self._conv_forward(x, weight, self.bias)


def glorot_normal_(weight: torch.Tensor, *, generator: torch.Generator | None = None) -> None:
    """Fill a ``Linear`` or ``Conv2d`` weight in place with Keras' Glorot-normal initialiser.

    The fans follow Keras: ``fan_in = in_features · kh · kw``, ``fan_out = out_features · kh · kw``
    (torch's own convention for these layers too). Values are drawn from a normal of standard
    deviation ``sqrt(2 / (fan_in + fan_out)) / 0.8796…`` truncated at two of those deviations, so
    that the resulting standard deviation is ``sqrt(2 / (fan_in + fan_out))``.

    Args:
        weight: A tensor of shape ``(out, in)`` or ``(out, in, kh, kw)``.
        generator: The random generator to draw from (the global one when ``None``).

    Raises:
        ValueError: If ``weight`` has fewer than 2 dimensions.
    """
    if weight.ndim < 2:
        raise ValueError(f"Glorot initialisation needs a weight of rank >= 2, got {weight.ndim}")
    receptive = math.prod(weight.shape[2:])
    fan_in = weight.shape[1] * receptive
    fan_out = weight.shape[0] * receptive
    std = math.sqrt(2.0 / (fan_in + fan_out)) / GLOROT_TRUNCATION_STD
    with torch.no_grad():
        nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std, generator=generator)


def _init(model: nn.Module, seed: int) -> None:
    """Glorot-normal weights and zero biases for every Linear/Conv2d of ``model``, in order."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            glorot_normal_(module.weight, generator=generator)
            if module.bias is not None:
                with torch.no_grad():
                    module.bias.zero_()


def ff_net(
    n_in: int | Sequence[int],
    n_out: int,
    hidden: Sequence[int] = (100, 100, 100),
    *,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> nn.Sequential:
    """Build the paper's feed-forward net: flatten → (dense, tanh) per hidden layer → dense.

    Args:
        n_in: The number of input features, or the shape of one input (flattened row-major).
        n_out: The number of outputs: class logits, or 1 for Auto-MPG's regression.
        hidden: The widths of the hidden tanh layers; the paper's default is three of 100, the
            authors' Iris and Auto-MPG nets used four.
        dtype: The parameters' floating dtype.
        seed: Seeds the initialisation (a private ``torch.Generator``; global state untouched).

    Returns:
        An ``nn.Sequential`` mapping ``(n, *input_shape)`` to ``(n, n_out)`` (linear output).

    Raises:
        ValueError: If a width is not positive.
    """
    widths = ff_widths(n_in, hidden, n_out)
    layers: list[nn.Module] = [nn.Flatten(1)]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(nn.Tanh())
    model = nn.Sequential(*layers)
    _init(model, seed)
    return model


def cnv_net(
    input_shape: Sequence[int],
    n_out: int = 10,
    *,
    filters: int = 20,
    dense: int = 100,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> nn.Sequential:
    """Build the paper's convolutional net for channel-last images.

    conv ``filters``×3×3 tanh → avgpool 2 → conv ``filters``×3×3 tanh → avgpool 2 → flatten (NHWC
    order) → dense ``dense`` tanh → dense ``n_out``; valid padding, stride 1, pools of stride 2
    (the Keras defaults). The input is permuted to NCHW inside the net.

    Args:
        input_shape: The shape of one image, ``(H, W)`` or ``(H, W, C)``.
        n_out: The number of class logits.
        filters: The number of filters of each convolution.
        dense: The width of the hidden dense layer.
        dtype: The parameters' floating dtype.
        seed: Seeds the initialisation.

    Returns:
        An ``nn.Sequential`` mapping ``(n, *input_shape)`` to ``(n, n_out)`` logits.

    Raises:
        ValueError: If the image is too small for two conv/pool stages or a size is not positive.
    """
    height, width, channels = cnv_sizes(input_shape, n_out, filters, dense)
    model = nn.Sequential(
        ChannelsFirst(),
        ChannelsLastConv2d(channels, filters, 3, dtype=dtype),
        nn.Tanh(),
        nn.AvgPool2d(2),
        ChannelsLastConv2d(filters, filters, 3, dtype=dtype),
        nn.Tanh(),
        nn.AvgPool2d(2),
        FlattenNHWC(),
        nn.Linear(height * width * filters, dense, dtype=dtype),
        nn.Tanh(),
        nn.Linear(dense, n_out, dtype=dtype),
    )
    _init(model, seed)
    return model


def mnist_cnv(
    n_out: int = 10, *, dtype: torch.dtype = torch.float32, seed: int = 0
) -> nn.Sequential:
    """Build MNIST-CNV (28×28×1 in, 20 filters, dense 100; 54,930 parameters).

    Args:
        n_out: The number of class logits.
        dtype: The parameters' floating dtype.
        seed: Seeds the initialisation.

    Returns:
        The net of :func:`cnv_net` for ``(n, 28, 28)`` or ``(n, 28, 28, 1)`` inputs.
    """
    return cnv_net((28, 28, 1), n_out, filters=20, dense=100, dtype=dtype, seed=seed)


def cifar10_cnv(
    n_out: int = 10, *, dtype: torch.dtype = torch.float32, seed: int = 0
) -> nn.Sequential:
    """Build CIFAR10-CNV (32×32×3 in, 60 filters, dense 300; 685,450 parameters).

    Args:
        n_out, dtype, seed: As for :func:`mnist_cnv`.

    Returns:
        The net of :func:`cnv_net` for ``(n, 32, 32, 3)`` inputs.
    """
    return cnv_net((32, 32, 3), n_out, filters=60, dense=300, dtype=dtype, seed=seed)


def count_params(model: nn.Module) -> int:
    """Return the number of trainable scalars of ``model``.

    Args:
        model: Any module.

    Returns:
        The total number of elements of the parameters that require a gradient.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _layers(model: nn.Module) -> list[nn.Linear | nn.Conv2d]:
    """The Linear and Conv2d layers of ``model`` in registration order."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def get_weights(model: nn.Module) -> list[np.ndarray]:
    """Return the weights of a net built here in the framework-neutral (Keras) layout.

    Per layer, in order: the kernel — ``(in, out)`` for dense layers (the transpose of torch's
    ``(out, in)``), ``(kh, kw, in, out)`` (HWIO) for convolutions (torch's is OIHW) — then the
    bias. This is the order and layout of Keras' ``model.get_weights()`` and of
    ``manifoldwalk_jax.paper.nets.get_weights``, so weights move between frameworks unchanged.

    Args:
        model: A net whose parametrised layers are ``nn.Linear`` / ``nn.Conv2d`` with biases.

    Returns:
        A list of NumPy copies, two per layer.
    """
    out: list[np.ndarray] = []
    for layer in _layers(model):
        w = layer.weight.detach().cpu()
        w = w.permute(2, 3, 1, 0) if w.ndim == 4 else w.T
        out += [w.numpy().copy(), layer.bias.detach().cpu().numpy().copy()]
    return out


def set_weights(model: nn.Module, weights: Sequence[np.ndarray]) -> None:
    """Load weights in the layout of :func:`get_weights` into ``model``, in place.

    Args:
        model: A net whose parametrised layers are ``nn.Linear`` / ``nn.Conv2d`` with biases.
        weights: Kernel and bias per layer, Keras layout (dense ``(in, out)``, conv HWIO).

    Raises:
        ValueError: If the number of arrays or a shape does not fit ``model``.
    """
    layers = _layers(model)
    if len(weights) != 2 * len(layers):
        raise ValueError(f"expected {2 * len(layers)} arrays, got {len(weights)}")
    with torch.no_grad():
        for i, layer in enumerate(layers):
            w = torch.as_tensor(np.asarray(weights[2 * i]))
            w = w.permute(3, 2, 0, 1) if w.ndim == 4 else w.T
            b = torch.as_tensor(np.asarray(weights[2 * i + 1]))
            for name, dst, src in (("weight", layer.weight, w), ("bias", layer.bias, b)):
                if tuple(src.shape) != tuple(dst.shape):
                    raise ValueError(
                        f"layer {i} {name}: shape {tuple(src.shape)} (torch layout) does not "
                        f"fit {tuple(dst.shape)}"
                    )
                dst.copy_(src.to(dtype=dst.dtype, device=dst.device))
