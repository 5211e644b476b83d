"""The PyTorch adapter's model side: trainable parameters, eval mode, the loss's checks.

What :class:`~manifoldwalk_torch.TorchProblem` asks of the user's ``nn.Module`` and loss: one
floating dtype and one device over the trainable parameters, eval mode while the loss is taken
(with a warning where that changes the model), a scalar loss, and the regulariser as a
function of the flat θ.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from manifoldwalk.adapter_api import (
    ProblemError,
    half_precision_error,
    reg_not_differentiable,
    stochastic_layers_message,
)
from manifoldwalk_torch._data import Data

RegFn = Callable[[torch.Tensor], torch.Tensor]

_STOCHASTIC_LAYERS = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable parameters by name, after checking dtypes and devices.

    Args:
        model: the user's module.

    Returns:
        ``{name: parameter}`` of the parameters with ``requires_grad``, in
        ``named_parameters()`` order.

    Raises:
        TypeError: a non-floating parameter, trainable parameters of mixed dtypes, or
            half-precision (float16, bfloat16) ones.
        ProblemError: no trainable parameters, trainable parameters on several devices, or
            on the meta device (no values).
    """
    for name, p in model.named_parameters():
        if not p.is_floating_point():
            raise TypeError(
                f"parameter {name!r} has non-floating (integer) dtype {p.dtype}; the walk needs "
                "floating-point parameters. Register integer state with register_buffer, or "
                "cast the parameter to float if it is meant to change."
            )
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ProblemError(
            f"{type(model).__name__} has no trainable parameters (all have "
            "requires_grad=False); unfreeze the ones to walk over."
        )
    dtypes = {p.dtype for p in params.values()}
    if len(dtypes) > 1:
        raise TypeError(
            f"the trainable parameters mix dtypes {sorted(map(str, dtypes))}; θ needs one: "
            "cast the model with model.to(torch.float32) or model.double()."
        )
    devices = {p.device for p in params.values()}
    if len(devices) > 1:
        raise ProblemError(
            f"the trainable parameters sit on several devices {sorted(map(str, devices))}; "
            "θ is one tensor on one device: move the model with model.to(device)."
        )
    (dtype,), (device,) = dtypes, devices
    if device.type == "meta":
        raise ProblemError(
            "the model's parameters are on the meta device and hold no values; materialise "
            "them first with model.to_empty(device=...) and load the weights "
            "(model.load_state_dict(...)), then wrap the model."
        )
    if dtype in (torch.float16, torch.bfloat16):
        raise half_precision_error(dtype, "model.float() (or model.double())")
    return params


def _mode_dependent(module: nn.Module) -> bool:
    """Whether ``module`` behaves differently in training mode (dropout, batch statistics)."""
    if isinstance(module, _STOCHASTIC_LAYERS):
        return True
    # recurrent layers and attention take a dropout rate rather than a Dropout submodule
    with_rate = isinstance(module, nn.RNNBase | nn.MultiheadAttention)
    return with_rate and float(getattr(module, "dropout", 0.0)) > 0


def warn_if_stochastic(model: nn.Module) -> None:
    """Warn that the loss is taken in eval mode, where the model behaves differently in training.

    The warning points at the caller of ``from_model`` (``stacklevel=4``: ``from_model``,
    ``TorchProblem.__init__`` and this function lie between).

    Args:
        model: the user's module.

    Warns:
        UserWarning: the model holds dropout or batch-norm layers (or a recurrent or
            attention layer with a dropout rate).
    """
    found = [
        f"{name or '<model>'} ({type(m).__name__})"
        for name, m in model.named_modules()
        if _mode_dependent(m)
    ]
    if found:
        warnings.warn(
            stochastic_layers_message(found, "manifoldwalk_torch"), UserWarning, stacklevel=4
        )


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put the model in eval mode for the block (if it is not already) and restore it after.

    Where no module overrides ``train``, only the modules that were training have their flag
    set, directly (all ``Module.train`` does then), and set back after: a submodule the user
    froze in eval mode stays so. ``Module.eval()`` and ``Module.train()`` walk the tree
    through ``Module.__setattr__``, a cost paid at every loss-and-gradient evaluation
    (measured: ``benchmarks/eval_switch.py``). Where a module has its own
    ``train``, ``model.eval()`` and ``model.train()`` run instead, so that its override does.

    Args:
        model: the module.

    Yields:
        None, with the model in eval mode.
    """
    if not model.training:
        yield
        return
    training = [m for m in model.modules() if m.training]
    if any(type(m).train is not nn.Module.train for m in training):
        # a module with its own train() (e.g. one that keeps a part frozen): let it run
        model.eval()
        try:
            yield
        finally:
            model.train()
        return
    for m in training:
        m.__dict__["training"] = False
    try:
        yield
    finally:
        for m in training:
            m.__dict__["training"] = True


def first_line(err: Exception) -> str:
    """An exception's message, first line only, without a trailing full stop.

    Args:
        err: the exception.

    Returns:
        The line (the exception's type name when it has no message).
    """
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__).rstrip(".")


def scalar_loss(loss: Any) -> torch.Tensor:
    """``loss`` itself, after checking it is a 0-d tensor (the batch's mean loss).

    Args:
        loss: what the user's ``loss_fn`` returned.

    Returns:
        ``loss``.

    Raises:
        ProblemError: anything but a 0-d tensor.
    """
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ProblemError(
            f"loss_fn must return a scalar (0-d tensor, the mean loss over the batch), got "
            f"{shape}; use a reducing loss (e.g. nn.CrossEntropyLoss(reduction='mean')) or "
            "take .mean()."
        )
    return loss


def callable_reg(fn: RegFn) -> tuple[RegFn, RegFn]:
    """``(R, ∇R)`` for a user's function of the flat θ, differentiated with autograd.

    Args:
        fn: a differentiable function of the flat θ returning a 0-d tensor.

    Returns:
        ``(R, ∇R)``; each raises ProblemError when ``fn`` does not return a 0-d tensor.
    """

    def reg(theta: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return _reg_value(fn, theta)

    def reg_grad(theta: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # autograd.grad does not trace; torch.func does
            return torch.func.grad(fn)(theta)
        leaf = theta.detach().requires_grad_(True)
        with torch.enable_grad():
            value = _reg_value(fn, leaf)
            (g,) = torch.autograd.grad(value, leaf, allow_unused=True)
        return torch.zeros_like(theta) if g is None else g

    return reg, reg_grad


def check_reg_differentiable(fn: RegFn, theta0: torch.Tensor) -> None:
    """Take ``fn``'s gradient once at θ0 with autograd, so that a regulariser autograd cannot
    differentiate (one that detaches θ, calls ``.item()`` or numpy) is refused when the
    problem is built, not met as a zero or failing gradient during the walk.

    Args:
        fn: the user's callable ``reg``.
        theta0: the starting θ.

    Raises:
        ProblemError: ``fn`` fails, does not return a 0-d tensor connected to θ, or has a
            non-finite gradient at θ0.
    """
    leaf = theta0.detach().requires_grad_(True)
    try:
        with torch.enable_grad():
            value = _reg_value(fn, leaf)
            if not value.requires_grad:
                raise reg_not_differentiable(
                    fn, "PyTorch (torch operations)", "its value does not depend on θ in autograd"
                )
            (g,) = torch.autograd.grad(value, leaf, allow_unused=True)
    except ProblemError:
        raise
    except Exception as err:
        raise reg_not_differentiable(fn, "PyTorch (torch operations)", first_line(err)) from err
    if g is None:
        raise reg_not_differentiable(
            fn, "PyTorch (torch operations)", "its value does not depend on θ in autograd"
        )
    if not bool(torch.isfinite(g).all()):
        raise reg_not_differentiable(fn, "PyTorch (torch operations)", "a non-finite gradient")


class BufferSnapshot:
    """The model's buffers when it was wrapped, to tell when they change afterwards.

    The loss depends on the buffers (batch norm's running statistics above all), so a change
    after wrapping (a forward pass in training mode, ``load_state_dict``, a buffer replaced)
    silently changes the function whose level set the walk follows. Each buffer's identity
    and autograd version counter are kept, and compared at each evaluation: Python attribute
    reads only, no host synchronisation. A training-mode batch-norm pass bumps
    ``num_batches_tracked``'s counter; in-place writes (``copy_``, ``fill_``) bump the
    written buffer's.

    Args:
        model: the user's module.
    """

    def __init__(self, model: nn.Module) -> None:
        # each buffer's owning table, resolved once: a check then reads a dict entry per buffer
        # instead of walking the module tree at every evaluation
        self._entries = []
        for name, b in model.named_buffers():
            owner, _, attr = name.rpartition(".")
            table = model.get_submodule(owner)._buffers
            self._entries.append((name, table, attr, b, _version(b)))

    def check(self) -> None:
        """Raise if a buffer changed since the snapshot.

        Raises:
            ProblemError: a buffer was modified in place or replaced (named in the message).
        """
        for name, table, attr, buffer, version in self._entries:
            current = table.get(attr)
            if current is not buffer or _version(current) != version:
                raise ProblemError(
                    f"the model's buffer {name!r} changed after the model was wrapped (e.g. a "
                    "forward pass in training mode updated batch norm's running statistics, "
                    "or weights were loaded): the loss is no longer the function the problem "
                    "was built on. Wrap the model again after changing it, or run it in eval "
                    "mode (model.eval()) outside the problem."
                )


def _version(t: torch.Tensor) -> int | None:
    """A tensor's in-place version counter (None for an inference tensor, which has none)."""
    try:
        return t._version
    except RuntimeError:
        return None


def _reg_value(fn: RegFn, theta: torch.Tensor) -> torch.Tensor:
    value = fn(theta)
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        hint = (
            " It returned a numpy value: compute R with torch operations on θ (numpy cuts the "
            "autograd graph), e.g. lambda theta: theta.square().sum()."
            if type(value).__module__ == "numpy"
            else ""
        )
        raise ProblemError(
            "a callable reg must return a 0-d tensor (a differentiable function of the flat θ), "
            f"got {type(value).__name__} of shape {tuple(getattr(value, 'shape', ()))}.{hint}"
        )
    return value


def correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The number of correct predictions (a 0-d tensor): the argmax of the outputs' last axis
    against class indices, or against the argmax of one-hot rows like the outputs."""
    pred = out.argmax(dim=-1)
    labels = y.argmax(dim=-1) if y.shape == out.shape and out.dim() > 1 else y
    return (pred == labels.reshape(pred.shape)).sum()


def squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The sum of squared errors over all entries (a 0-d tensor; ``y`` reshaped as the outputs)."""
    diff = out - y.reshape(out.shape)
    return (diff * diff).sum()


def probe(
    model: nn.Module, loss_fn: Any, data: Data, dtype: torch.dtype, n: int = 8
) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """Run the model and the loss on the first ``n`` examples (no gradient), so that data
    the model cannot take or a loss that cannot read its outputs is reported here, by
    name, rather than at the first walk step. Draws from no random stream (a shuffling
    DataLoader's first batch is drawn with torch's generator state restored after).

    Args:
        model: the user's module.
        loss_fn: the user's loss, ``loss_fn(outputs, targets)``.
        data: the training data.
        dtype: θ's dtype (named in the hint for integer inputs).
        n: how many examples to run.

    Returns:
        ``(outputs, targets, loss)`` on those examples.

    Raises:
        ProblemError: the model or the loss fails on those examples (the framework's
            error is the cause), the loss is not a scalar, or a DataLoader is empty.
    """
    with torch.random.fork_rng(devices=[]):
        x, y = next(data.batches())
    x, y = x[:n], y[:n]
    with torch.no_grad(), eval_mode(model):
        try:
            out = model(x)
        except Exception as err:
            hint = (
                f" x has dtype {x.dtype}: features must be floating-point (cast x with "
                f"x.to({dtype}))."
                if not x.is_floating_point()
                else " Check that x's shape (examples first) is what the model takes."
            )
            raise ProblemError(
                f"the model fails on the first {x.shape[0]} training examples (x of shape "
                f"{tuple(x.shape)}, dtype {x.dtype}): {first_line(err)}.{hint}"
            ) from err
        try:
            loss = loss_fn(out, y)
        except Exception as err:
            kind = (
                f"shape {tuple(out.shape)}"
                if isinstance(out, torch.Tensor)
                else "a " + type(out).__name__
            )
            raise ProblemError(
                f"loss_fn(outputs, targets) fails on the model's outputs ({kind}) and "
                f"targets (shape {tuple(y.shape)}, dtype {y.dtype}) of the first "
                f"{x.shape[0]} training examples: {first_line(err)}. loss_fn takes the "
                "outputs first, then the targets, and returns the batch's mean loss."
            ) from err
    return out, y, scalar_loss(loss)


def check_order(model: Any, loss_fn: Any) -> None:
    """Raise unless ``model`` is a module that is not a loss, naming swapped arguments.

    Raises:
        TypeError: ``model`` is a loss, or not an ``nn.Module``.
    """
    is_loss = isinstance(model, nn.modules.loss._Loss)
    if isinstance(model, nn.Module) and not is_loss:
        return
    swapped = is_loss or (
        isinstance(loss_fn, nn.Module) and not isinstance(loss_fn, nn.modules.loss._Loss)
    )
    if swapped:
        raise TypeError(
            f"model is the loss {type(model).__name__} and loss_fn a "
            f"{type(loss_fn).__name__}: the arguments are swapped. The order is "
            "from_model(model, loss_fn, data)."
        )
    raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
