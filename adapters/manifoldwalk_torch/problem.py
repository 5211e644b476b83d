"""``TorchProblem``: a PyTorch model, loss and data as a manifoldwalk Problem on flat θ.

θ is one flat tensor holding the model's trainable parameters, on the model's device and in
its dtype. A loss-and-gradient call splits θ into views shaped like the parameters (no copy),
swaps them into the parameters' places for the call (what :func:`torch.func.functional_call`
does, with the places found once: ``_slots.py``), runs the model and differentiates with
autograd with respect to the views, joining their gradients into one flat tensor: one forward
and one backward pass, no host synchronisation, nothing copied off the device. The model is
always evaluated in eval mode, so that the loss is a deterministic function of θ.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from manifoldwalk._adapter_checks import EVAL_TASKS, check_eval_task, eval_metrics
from manifoldwalk._chunked import DeviceLoop
from manifoldwalk._compile_cache import CompileCache
from manifoldwalk.problem import ProblemError
from manifoldwalk_torch._compile import (
    check_compile,
    chunk_runner,
    compiled,
    functional_loss_and_grad,
)
from manifoldwalk_torch._slots import ParameterSlots

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RegFn = Callable[[torch.Tensor], torch.Tensor]

REG_NAMES = ("l2", "l2-weights")
"""The named regularisers: θᵀθ over all trainable parameters, or over the weights (rank ≥ 2)."""

TASKS = EVAL_TASKS
"""The tasks :meth:`TorchProblem.evaluate` knows: accuracy or mean squared error."""

_STOCHASTIC_LAYERS = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


class TorchProblem:
    """A PyTorch model's training loss as a manifoldwalk Problem on the flat trainable θ.

    Build it with :func:`from_model`, which documents the arguments. Besides the Problem
    protocol (``loss``, ``grad``, ``loss_and_grad``, ``reg``, ``reg_grad`` on flat θ) it has
    ``theta0``, ``n_params``, ``unflatten``, ``assign`` and ``evaluate``.

    Attributes:
        model: the wrapped module (its parameters change only through :meth:`assign`).
        names: the trainable parameters' names, in θ's order.
        n_params: the length of θ.
        dtype, device: θ's dtype and device (the model's).
        loop_cache: the chunks of earlier walks
            (:class:`~manifoldwalk._compile_cache.CompileCache`; ``loop_cache.clear()`` frees them).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Any,
        *,
        reg: str | RegFn = "l2",
        batch_size: int | None = None,
        compile: bool | str = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}.")
        if isinstance(loss_fn, type) and issubclass(loss_fn, nn.Module):
            raise TypeError(
                f"loss_fn is the class {loss_fn.__name__}, not a loss: pass an instance, "
                f"e.g. {loss_fn.__name__}()."
            )
        self.model = model
        self._loss_fn = loss_fn
        self._params = _trainable_parameters(model)
        self.names: tuple[str, ...] = tuple(self._params)
        first = next(iter(self._params.values()))
        self.dtype: torch.dtype = first.dtype
        self.device: torch.device = first.device
        # tuples: view() parses them faster than torch.Size
        self._shapes = [tuple(p.shape) for p in self._params.values()]
        self._sizes = [p.numel() for p in self._params.values()]
        self._slots = ParameterSlots(model, list(self._params.values()))
        self.n_params: int = sum(self._sizes)
        self._data = _Data.build(data, self.dtype, self.device, batch_size)
        self._reg, self._reg_grad = self._make_reg(reg)
        self._compile_mode = check_compile(compile)
        self.loop_cache = CompileCache()
        if self._compile_mode is not None and self._data.is_loader:
            raise ProblemError(
                "compile needs the training data as (x, y) tensors (optionally with "
                "batch_size), not a DataLoader: the compiled step bakes the batches in."
            )
        self._traced_loss_and_grad = None
        _warn_if_stochastic(model)
        self._probe()

    # --- θ and the model ------------------------------------------------------------------

    @property
    def theta0(self) -> torch.Tensor:
        """The model's current trainable parameters as one flat tensor (a copy)."""
        with torch.no_grad():
            return torch.cat([p.detach().reshape(-1) for p in self._params.values()])

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The trainable parameters for θ, name ↦ tensor (views into θ, no copy).

        The dict is what :func:`torch.func.functional_call` takes alongside the model.

        Raises:
            ValueError, TypeError: θ has the wrong shape or dtype.
        """
        return dict(zip(self.names, self._views(theta), strict=True))

    def assign(self, theta: torch.Tensor) -> nn.Module:
        """Write θ into the model's trainable parameters (in place, on their device).

        Returns:
            The model, for chaining (e.g. ``problem.assign(result.theta).eval()``).

        Raises:
            ValueError, TypeError: θ has the wrong shape or dtype.
        """
        with torch.no_grad():
            for param, value in zip(
                self._params.values(), self.unflatten(theta).values(), strict=True
            ):
                param.copy_(value)
        return self.model

    # --- the Problem protocol -------------------------------------------------------------

    def loss_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The full-batch mean loss L(θ) and its gradient ∇L(θ): one forward and one backward.

        With ``batch_size`` or a DataLoader, one pass per batch, accumulated as
        Σ_b (n_b/N)·L_b so that the result is the full-batch mean exactly.

        Args:
            theta: flat θ, a tensor of length ``n_params`` in the model's dtype and device.

        Returns:
            ``(L, ∇L)``: a 0-d tensor and a flat tensor like θ (both detached).

        Raises:
            ValueError: the loss function returns a non-scalar, or θ is not flat of length
                ``n_params``.
            TypeError: θ is not a ``torch.Tensor`` (a numpy θ, e.g. a loaded WalkResult's:
                pass ``torch.as_tensor(theta, dtype=problem.dtype, device=problem.device)``)
                or not in the model's dtype.
        """
        if torch.compiler.is_compiling():  # inside compile_step's graph: the traceable path
            return self._traced_loss_and_grad(theta)
        # each piece its own autograd leaf, the gradient joined after: the same values as
        # differentiating the flat θ, without autograd's split and view nodes
        params = [v.requires_grad_(True) for v in self._views(theta, detach=True)]
        total, grad, n = None, None, 0
        with torch.enable_grad(), _eval_mode(self.model):
            for x, y in self._data.batches():
                loss = self._batch_loss(params, x, y)
                pieces = torch.autograd.grad(loss, params, materialize_grads=True)
                g = torch.cat([piece.reshape(-1) for piece in pieces])
                loss = loss.detach()
                if self._data.single:
                    return loss, g
                m = x.shape[0]
                total = loss * m if total is None else total + loss * m
                grad = g * m if grad is None else grad + g * m
                n += m
        return total / n, grad / n

    def compile_step(self, step: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The walk's pure step, compiled whole with ``torch.compile`` if ``compile`` was asked.

        ``manifoldwalk.walk`` calls this (unless ``compile_step=False``). Without
        ``from_model(..., compile=...)`` the step is returned as it is (eager). With it, the
        loss and gradient are taken through :mod:`torch.func` inside one graph with the
        engine's vector algebra; ``"reduce-overhead"`` replays it as a CUDA graph on a GPU.
        The first call compiles (tens of seconds).
        """
        if self._compile_mode is None:
            return step
        self._trace_loss_and_grad()
        return compiled(step, self._compile_mode, lambda: _eval_mode(self.model))

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Any], Any]:
        """Up to K walk steps per host synchronisation (``walk(..., steps_per_sync=K)``).

        The K steps run masked (each kept only while no stop rule fired), queued on the device
        without a sync when eager, or as one compiled graph (a CUDA graph in
        ``"reduce-overhead"`` mode) with ``from_model(..., compile=...)``; see
        ``manifoldwalk_torch._compile.chunk_runner``. The path is the eager driver's. Kept in
        :attr:`loop_cache` for later walks with the same options.
        """
        if self._compile_mode is not None:
            self._trace_loss_and_grad()
        return self.loop_cache.get(
            loop, lambda: chunk_runner(loop, self._compile_mode, lambda: _eval_mode(self.model))
        )

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """The full-batch mean training loss L(θ) as a 0-d tensor (forward passes only)."""
        params = self._views(theta, detach=True)
        total, n = None, 0
        with torch.no_grad(), _eval_mode(self.model):
            for x, y in self._data.batches():
                loss = self._batch_loss(params, x, y)
                if self._data.single:
                    return loss
                m = x.shape[0]
                total = loss * m if total is None else total + loss * m
                n += m
        return total / n

    def grad(self, theta: torch.Tensor) -> torch.Tensor:
        """The gradient ∇L(θ), a flat tensor like θ."""
        return self.loss_and_grad(theta)[1]

    def reg(self, theta: torch.Tensor) -> torch.Tensor:
        """The regulariser R(θ) as a 0-d tensor on θ's device."""
        return self._reg(theta)

    def reg_grad(self, theta: torch.Tensor) -> torch.Tensor:
        """The gradient ∇R(θ), a flat tensor like θ."""
        return self._reg_grad(theta)

    # --- evaluation -----------------------------------------------------------------------

    def evaluate(
        self,
        theta: torch.Tensor,
        x: Any,
        y: Any,
        *,
        task: str = "classification",
        batch_size: int = 1024,
    ) -> dict[str, float]:
        """The mean loss and accuracy (or MSE) of θ on held-out ``(x, y)``, in batches.

        Meant for the walk's metric callables, e.g.
        ``metrics={"test_acc": lambda t: problem.evaluate(t, x_te, y_te)["accuracy"]}``.
        Runs without autograd, in eval mode; each batch is moved to the model's device as it
        is used, so held-out data may stay on the host. One host synchronisation per call.

        Args:
            theta: flat θ.
            x, y: inputs and targets (tensors or numpy arrays, the same length). For
                classification ``y`` holds class indices, or one-hot rows like the outputs.
            task: ``"classification"`` (accuracy: the argmax of the outputs' last axis equals
                the label) or ``"regression"`` (mse: the mean squared error over all entries).
            batch_size: examples per forward pass.

        Returns:
            ``{"loss": float, "accuracy": float}`` or ``{"loss": float, "mse": float}``.

        Raises:
            ValueError: an unknown task, a bad batch size or mismatched lengths.
        """
        check_eval_task(task)
        data = _Data.build((x, y), self.dtype, None, _check_batch_size(batch_size))
        params = self._views(theta, detach=True)
        sums = torch.zeros(2, dtype=self.dtype, device=self.device)
        n, size = 0, 0
        with torch.no_grad(), _eval_mode(self.model):
            for xb, yb in data.batches():
                xb, yb = xb.to(self.device), yb.to(self.device)
                out = self._slots.call(params, xb)
                loss = _scalar_loss(self._loss_fn(out, yb))
                if task == "classification":
                    second, count = _correct(out, yb), out.shape[0]
                else:
                    second, count = _squared_error(out, yb), out.numel()
                sums += torch.stack([loss * xb.shape[0], second.to(self.dtype)])
                n, size = n + xb.shape[0], size + count
        loss_sum, second_sum = sums.tolist()
        return eval_metrics(task, loss_sum, second_sum, n, size)

    # --- internals ------------------------------------------------------------------------

    def _trace_loss_and_grad(self) -> None:
        """Build the :mod:`torch.func` loss and gradient a compiled graph calls (once)."""
        if self._traced_loss_and_grad is None:
            self._traced_loss_and_grad = functional_loss_and_grad(
                # functional_call, not the slots: torch.func and torch.compile trace it
                lambda t, x, y: _scalar_loss(
                    self._loss_fn(functional_call(self.model, self.unflatten(t), (x,)), y)
                ),
                list(self._data.batches()),
            )

    def _probe(self, n: int = 8) -> None:
        """Run the model and the loss on the first ``n`` examples (no gradient), so that data
        the model cannot take or a loss that cannot read its outputs is reported here, by
        name, rather than at the first walk step. Draws from no random stream (a shuffling
        DataLoader's first batch is drawn with torch's generator state restored after).

        Raises:
            ProblemError: the model or the loss fails on those examples (the framework's
                error is the cause), the loss is not a scalar, or a DataLoader is empty.
        """
        with torch.random.fork_rng(devices=[]):
            x, y = next(self._data.batches())
        x, y = x[:n], y[:n]
        with torch.no_grad(), _eval_mode(self.model):
            try:
                out = self.model(x)
            except Exception as err:
                hint = (
                    f" x has dtype {x.dtype}: features must be floating-point (cast x with "
                    f"x.to({self.dtype}))."
                    if not x.is_floating_point()
                    else " Check that x's shape (examples first) is what the model takes."
                )
                raise ProblemError(
                    f"the model fails on the first {x.shape[0]} training examples (x of shape "
                    f"{tuple(x.shape)}, dtype {x.dtype}): {_first_line(err)}.{hint}"
                ) from err
            try:
                loss = self._loss_fn(out, y)
            except Exception as err:
                kind = (
                    f"shape {tuple(out.shape)}"
                    if isinstance(out, torch.Tensor)
                    else "a " + type(out).__name__
                )
                raise ProblemError(
                    f"loss_fn(outputs, targets) fails on the model's outputs ({kind}) and "
                    f"targets (shape {tuple(y.shape)}, dtype {y.dtype}) of the first "
                    f"{x.shape[0]} training examples: {_first_line(err)}. loss_fn takes the "
                    "outputs first, then the targets, and returns the batch's mean loss."
                ) from err
        _scalar_loss(loss)

    def _views(self, theta: torch.Tensor, detach: bool = False) -> list[torch.Tensor]:
        """θ (detached, if asked) split into views shaped like the trainable parameters, in
        θ's order (no copy); θ is checked first."""
        self._check_theta(theta)
        if detach:
            theta = theta.detach()
        pieces = theta.split_with_sizes(self._sizes)
        return [piece.view(shape) for piece, shape in zip(pieces, self._shapes, strict=True)]

    def _batch_loss(
        self, views: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        return _scalar_loss(self._loss_fn(self._slots.call(views, x), y))

    def _check_theta(self, theta: Any) -> None:
        if not isinstance(theta, torch.Tensor):
            raise TypeError(
                f"θ must be a torch.Tensor, got {type(theta).__module__}."
                f"{type(theta).__name__}; convert it with torch.as_tensor(theta, "
                f"dtype={self.dtype}, device='{self.device}') first (a loaded WalkResult's θ "
                "is numpy)."
            )
        if tuple(theta.shape) != (self.n_params,):
            raise ValueError(
                f"θ must be a flat tensor of length {self.n_params}, got shape "
                f"{tuple(theta.shape)}."
            )
        if theta.dtype != self.dtype:
            raise TypeError(
                f"θ has dtype {theta.dtype} but the model is {self.dtype}; cast θ with "
                f"theta.to({self.dtype}) (or the model with model.to(...)) first."
            )

    def _make_reg(self, reg: str | RegFn) -> tuple[RegFn, RegFn]:
        if callable(reg):
            return _callable_reg(reg)
        if reg == "l2":
            return (lambda t: torch.dot(t, t)), (lambda t: 2 * t)
        if reg == "l2-weights":
            mask = torch.cat(
                [
                    torch.full((n,), float(len(s) >= 2), dtype=self.dtype, device=self.device)
                    for n, s in zip(self._sizes, self._shapes, strict=True)
                ]
            )

            def reg_fn(t: torch.Tensor) -> torch.Tensor:
                w = t * mask
                return torch.dot(w, w)

            return reg_fn, (lambda t: 2 * (t * mask))
        raise ValueError(
            f"reg must be 'l2', 'l2-weights' or a differentiable function of the flat θ, "
            f"got {reg!r}."
        )


def from_model(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    reg: str | RegFn = "l2",
    batch_size: int | None = None,
    compile: bool | str = False,
) -> TorchProblem:
    """Wrap a PyTorch model, a loss function and training data as a manifoldwalk Problem.

    Example::

        problem = manifoldwalk_torch.from_model(model, nn.CrossEntropyLoss(), (x, y))
        result = manifoldwalk.walk(problem, problem.theta0)
        problem.assign(result.theta)

    Args:
        model: an ``nn.Module`` mapping a batch of inputs to outputs. Its trainable parameters
            (``requires_grad=True``) make up θ, in ``named_parameters()`` order; frozen
            parameters and buffers stay as they are. All trainable parameters must share one
            floating dtype and one device, which θ takes.
        loss_fn: ``loss_fn(outputs, targets)`` returning the mean loss over a batch as a 0-d
            tensor (e.g. ``nn.CrossEntropyLoss()``, ``nn.MSELoss()``).
        data: the training data, either ``(x, y)`` (tensors or numpy arrays of equal length;
            moved to the model's device once, floating ones cast to the model's dtype) or a
            ``torch.utils.data.DataLoader`` (or any re-iterable of ``(x, y)`` batches) for
            data that does not fit one batch; batches are moved to the device as they are used.
        reg: the regulariser R: ``"l2"`` (θᵀθ over every trainable parameter, the paper's
            walk), ``"l2-weights"`` (θᵀθ over the parameters of rank ≥ 2 only: dense and
            convolution kernels, as Keras' ``kernel_regularizer``; biases and normalisation
            scales excluded) or any differentiable function of the flat θ returning a 0-d
            tensor (its gradient is taken with autograd).
        batch_size: for ``(x, y)`` data, evaluate the loss in batches of this many examples
            (to bound memory); the full-batch mean is accumulated exactly.
        compile: compile the walk step whole with ``torch.compile`` (see
            :meth:`TorchProblem.compile_step`): ``True`` (mode ``"default"``), a mode name
            (``"reduce-overhead"`` adds CUDA graphs on a GPU), or ``False`` (eager; the
            default). Worth it for long walks: the first step compiles for tens of seconds,
            then each step costs about one fused loss-and-gradient
            (``benchmarks/adapter_overhead.py``). Needs ``(x, y)`` data, not a DataLoader.

    Returns:
        A :class:`TorchProblem`.

    Raises:
        ValueError: no trainable parameters, parameters on several devices, inputs and
            targets of different lengths, an unknown ``reg`` name, a bad ``batch_size``, a
            DataLoader that drops its last batch or yields none, or a model or loss that fails
            on the first few training examples (the model and the loss are run once on up to 8
            of them while building; the framework's error is the cause) or a loss that is not
            a scalar there.
        TypeError: a non-floating (e.g. integer) parameter, trainable parameters of mixed
            dtypes, a loss class where an instance is needed, ``data`` of more than two
            arrays, or arguments of the wrong type.

    Warns:
        UserWarning: the model holds dropout or batch-norm layers; the problem evaluates the
            model in eval mode (dropout off, batch norm on its running statistics).
    """
    return TorchProblem(model, loss_fn, data, reg=reg, batch_size=batch_size, compile=compile)


# --- helpers --------------------------------------------------------------------------------


def _trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable parameters by name, after checking dtypes and devices."""
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
    return params


def _mode_dependent(module: nn.Module) -> bool:
    """Whether ``module`` behaves differently in training mode (dropout, batch statistics)."""
    if isinstance(module, _STOCHASTIC_LAYERS):
        return True
    # recurrent layers and attention take a dropout rate rather than a Dropout submodule
    with_rate = isinstance(module, nn.RNNBase | nn.MultiheadAttention)
    return with_rate and float(getattr(module, "dropout", 0.0)) > 0


def _warn_if_stochastic(model: nn.Module) -> None:
    found = [
        f"{name or '<model>'} ({type(m).__name__})"
        for name, m in model.named_modules()
        if _mode_dependent(m)
    ]
    if found:
        warnings.warn(
            f"the model holds dropout or batch-norm layers: {', '.join(found)}. The walk needs "
            "the loss to be a deterministic function of θ, so manifoldwalk_torch evaluates the "
            "model in eval mode (dropout off, batch norm on its running statistics): the level "
            "set walked is that of the eval-mode loss.",
            UserWarning,
            stacklevel=4,
        )


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put the model in eval mode for the block (if it is not already) and restore it after.

    Where no module overrides ``train``, only the modules that were training have their flag
    set, directly (all ``Module.train`` does then), and set back after: a submodule the user
    froze in eval mode stays so. ``Module.eval()`` and ``Module.train()`` walk the tree
    through ``Module.__setattr__``, about 0.1 ms for a 9-module net at every
    loss-and-gradient evaluation (``benchmarks/eval_switch.py``). A module with its own
    ``train`` gets them, as before.
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


def _first_line(err: Exception) -> str:
    """An exception's message, first line only, without a trailing full stop."""
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__).rstrip(".")


def _scalar_loss(loss: Any) -> torch.Tensor:
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ProblemError(
            f"loss_fn must return a scalar (0-d tensor, the mean loss over the batch), got "
            f"{shape}; use a reducing loss (e.g. nn.CrossEntropyLoss(reduction='mean')) or "
            "take .mean()."
        )
    return loss


def _callable_reg(fn: RegFn) -> tuple[RegFn, RegFn]:
    """``(R, ∇R)`` for a user's function of the flat θ, differentiated with autograd."""

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


def _reg_value(fn: RegFn, theta: torch.Tensor) -> torch.Tensor:
    value = fn(theta)
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        raise ProblemError(
            "a callable reg must return a 0-d tensor (a differentiable function of the flat θ), "
            f"got {type(value).__name__} of shape {tuple(getattr(value, 'shape', ()))}."
        )
    return value


def _correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pred = out.argmax(dim=-1)
    labels = y.argmax(dim=-1) if y.shape == out.shape and out.dim() > 1 else y
    return (pred == labels.reshape(pred.shape)).sum()


def _squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    diff = out - y.reshape(out.shape)
    return (diff * diff).sum()


def _check_batch_size(batch_size: Any) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be None or a positive integer, got {batch_size!r}.")
    return batch_size


class _Data:
    """Training or held-out data, handed out as ``(x, y)`` batches.

    ``single`` is True when there is exactly one batch, the whole data set (no accumulation).
    """

    def __init__(
        self,
        arrays: tuple[torch.Tensor, torch.Tensor] | None = None,
        batch_size: int | None = None,
        loader: Any = None,
        dtype: torch.dtype | None = None,
        device: torch.device | None = None,
    ) -> None:
        self._arrays = arrays
        self._batch_size = batch_size
        self._loader = loader
        self._dtype, self._device = dtype, device
        self.single = loader is None and batch_size is None
        self.is_loader = loader is not None

    @classmethod
    def build(
        cls, data: Any, dtype: torch.dtype, device: torch.device | None, batch_size: int | None
    ) -> _Data:
        """Arrays moved to ``device`` (if given), or a loader; see :func:`from_model`."""
        batch_size = _check_batch_size(batch_size)
        if isinstance(data, tuple | list) and len(data) == 2 and not _is_batch_list(data):
            x, y = (_as_tensor(a, dtype, device, name) for a, name in zip(data, "xy", strict=True))
            _check_lengths(x, y)
            if x.shape[0] == 0:
                raise ProblemError("the data hold no examples.")
            if batch_size is not None and batch_size >= x.shape[0]:
                batch_size = None
            return cls((x, y), batch_size)
        if isinstance(data, tuple | list) and data and all(map(_is_array, data)):
            raise TypeError(
                f"data must be (x, y), two arrays; got a {type(data).__name__} of {len(data)} "
                "arrays. Pass the inputs and the targets only (extra targets go in a loss_fn "
                "that closes over them)."
            )
        if isinstance(data, Iterable) and not isinstance(data, torch.Tensor | str | bytes):
            if batch_size is not None:
                raise ValueError("batch_size applies to (x, y) data; a DataLoader has its own.")
            if getattr(data, "drop_last", False):
                raise ProblemError(
                    "the DataLoader drops its last batch (drop_last=True), so it does not cover "
                    "the training set: build it with drop_last=False."
                )
            return cls(loader=data, dtype=dtype, device=device)
        raise TypeError(
            "data must be (x, y) (tensors or numpy arrays) or a DataLoader of (x, y) batches, "
            f"got {type(data).__name__}."
        )

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The ``(x, y)`` batches, each on the device (loader batches are moved as they come)."""
        if self._loader is None:
            x, y = self._arrays
            if self._batch_size is None:
                yield x, y
            else:
                yield from zip(x.split(self._batch_size), y.split(self._batch_size), strict=True)
            return
        empty = True
        for batch in self._loader:
            if not (isinstance(batch, tuple | list) and len(batch) == 2):
                raise TypeError("each DataLoader batch must be an (x, y) pair.")
            x, y = (
                _as_tensor(a, self._dtype, self._device, n)
                for a, n in zip(batch, "xy", strict=True)
            )
            _check_lengths(x, y)
            empty = False
            yield x, y
        if empty:
            raise ProblemError("the DataLoader yielded no batches.")


def _is_batch_list(data: tuple | list) -> bool:
    """``data`` is a sequence of ``(x, y)`` batches, each a pair of arrays (two batches, read as
    one ``(x, y)``, would take the first batch for the inputs and the second for the targets)."""
    return all(isinstance(b, tuple | list) and len(b) == 2 and all(map(_is_array, b)) for b in data)


def _is_array(value: Any) -> bool:
    """A tensor or an array (not a pair of them, as a list of loader batches holds)."""
    return isinstance(value, torch.Tensor) or (
        hasattr(value, "__array__") and not isinstance(value, tuple | list)
    )


def _as_tensor(
    value: Any, dtype: torch.dtype | None, device: torch.device | None, name: str
) -> torch.Tensor:
    """A tensor on ``device``; floating values cast to ``dtype`` (integer labels kept)."""
    # Through numpy: torch.as_tensor makes Python floats float32 (its default dtype), so a
    # float64 model's nested-list data would lose digits before the cast below.
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    target = dtype if tensor.is_floating_point() and dtype is not None else tensor.dtype
    if tensor.dim() == 0:
        raise ValueError(f"{name} must have a leading example axis, got a scalar.")
    return tensor.to(device=device or tensor.device, dtype=target, non_blocking=True)


def _check_lengths(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape[0] != y.shape[0]:
        raise ProblemError(
            f"inputs and targets must have the same number of examples, got {x.shape[0]} "
            f"inputs and {y.shape[0]} targets."
        )
