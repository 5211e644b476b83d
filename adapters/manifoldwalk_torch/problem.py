"""``TorchProblem``: a PyTorch model, loss and data as a manifoldwalk Problem on flat θ.

θ is one flat tensor holding the model's trainable parameters, on the model's device and in
its dtype. A loss-and-gradient call splits θ into views shaped like the parameters (no copy),
swaps them into the parameters' places for the call (what :func:`torch.func.functional_call`
does, with the places found once: ``_slots.py``), runs the model's loss on each batch and
differentiates with autograd with respect to the views, joining their gradients into one flat
tensor: one forward and one backward pass per batch, no host synchronisation, nothing copied off
the device. The model is always evaluated in eval mode, so that the loss is a deterministic
function of θ.

Every PyTorch problem runs one function of the model and a batch, ``(model, batch) -> loss``:
``from_model``'s is ``loss_fn(model(x), y)`` on ``(x, y)`` batches, ``from_loss``'s
(``loss_problem.py``) the user's own on batches of any structure. The data's batching and
moves to the device are ``_data.py``'s (``_loss_data.py``'s for ``from_loss``); the model's
checks ``_model.py``'s.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from manifoldwalk._groups import build_warning_at_caller, refuse_group_options
from manifoldwalk.adapter_api import (
    EVAL_TASKS,
    DeviceLoop,
    ModelProblem,
    ProblemError,
    RegPair,
    check_callable,
    trivial_loss,
    warn_if_untrained,
)
from manifoldwalk_torch._compile import (
    check_compile,
    chunk_runner,
    compiled,
    functional_loss_and_grad,
)
from manifoldwalk_torch._data import Data, check_batch_size
from manifoldwalk_torch._model import (
    BufferSnapshot,
    RegFn,
    callable_reg,
    check_order,
    check_reg_differentiable,
    correct,
    eval_mode,
    probe,
    scalar_loss,
    squared_error,
    trainable_parameters,
    warn_if_stochastic,
)
from manifoldwalk_torch._slots import ParameterSlots

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss_fn(outputs, targets) -> 0-d tensor``: the mean loss of a batch (an ``nn.Module`` loss)."""

REG_NAMES = ("l2", "l2-weights")
"""The named regularisers: θᵀθ over all trainable parameters, or over the weights (rank ≥ 2)."""

TASKS = EVAL_TASKS
"""The tasks :meth:`TorchProblem.evaluate` knows: accuracy or mean squared error."""


class TorchProblem(ModelProblem):
    """A PyTorch model's training loss as a manifoldwalk Problem on the flat trainable θ.

    Build it with :func:`from_model`, which documents the arguments; θ is a flat
    ``torch.Tensor``. Its members are those of :class:`~manifoldwalk._model_problem.ModelProblem`.

    Attributes:
        model: the wrapped module (its parameters change only through :meth:`assign`).
        names: the trainable parameters' names, in θ's order.
        n_params: the length of θ.
        dtype, device: θ's dtype and device (the model's).
        loop_cache: the chunks of earlier walks
            (:class:`~manifoldwalk.adapter_api.CompileCache`; ``loop_cache.clear()`` frees them).
    """

    _theta_type = "torch.Tensor"
    _theta_kind = "tensor"
    _dtype_owner = "the model is"
    _dtype_remedy = "or the model with model.to(...)"

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
        check_order(model, loss_fn)
        check_callable("loss_fn", loss_fn)
        if isinstance(loss_fn, type) and issubclass(loss_fn, nn.Module):
            raise TypeError(
                f"loss_fn is the class {loss_fn.__name__}, not a loss: pass an instance, "
                f"e.g. {loss_fn.__name__}()."
            )
        self._loss_fn = loss_fn
        # what as_float64 builds its copy from
        self._float64_args = (loss_fn, data, reg, batch_size)
        self._setup(
            model,
            _outputs_loss(loss_fn),
            lambda dtype, device: Data.build(data, dtype, device, batch_size),
            reg,
            compile,
        )
        warn_if_stochastic(model)
        outputs, targets, loss = probe(model, self._loss_fn, self._data, self.dtype)
        # the buffers (batch norm's running statistics) as wrapped; each evaluation checks them
        self._buffer_snapshot = BufferSnapshot(model)
        self._warn_if_untrained(outputs, targets, loss)

    _compile_data_error: ClassVar[str] = (
        "compile needs the training data as (x, y) tensors (optionally with batch_size), not a "
        "DataLoader: the compiled step bakes the batches in."
    )

    def _setup(
        self,
        model: nn.Module,
        module_loss: ModuleLoss,
        build_data: Callable[[torch.dtype, torch.device], Any],
        reg: str | RegFn,
        compile: bool | str,
    ) -> None:
        """What every PyTorch problem builds: θ's pieces, the parameter slots, the data,
        the regulariser and the compile mode (checked).

        Args:
            model: the user's module.
            module_loss: ``(model, batch) -> the batch's mean loss``, the one function every
                evaluation runs (with the parameters swapped for θ's views).
            build_data: ``(dtype, device) -> data`` with ``single``, ``is_loader`` and
                ``sized_batches()`` (``_data.Data`` or ``_loss_data.LossData``).
            reg, compile: as :func:`from_model`.
        """
        self.model = model
        self._module_loss = module_loss
        self._params = trainable_parameters(model)
        self.names: tuple[str, ...] = tuple(self._params)
        first = next(iter(self._params.values()))
        self.device: torch.device = first.device
        # tuples: view() parses them faster than torch.Size
        self._shapes = [tuple(p.shape) for p in self._params.values()]
        self._sizes = [p.numel() for p in self._params.values()]
        self._slots = ParameterSlots(model, list(self._params.values()))
        # the model bound once: each batch's loss is one call of this with the slots filled
        self._run_loss = functools.partial(module_loss, model)
        self._data = build_data(first.dtype, self.device)
        super().__init__(self._shapes, first.dtype, reg)
        self._compile_mode = check_compile(compile)
        if self._compile_mode is not None and self._data.is_loader:
            raise ProblemError(self._compile_data_error)
        self._traced_loss_and_grad = None
        if callable(reg) and not isinstance(reg, str):
            check_reg_differentiable(reg, self.theta0)

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
        return dict(zip(self.names, self._views(self._checked(theta)), strict=True))

    def assign(self, theta: torch.Tensor | np.ndarray) -> nn.Module:
        """Write θ into the model's trainable parameters (in place, on their device).

        Args:
            theta: flat θ, a tensor, or a numpy array in the model's dtype (a loaded
                ``WalkResult``'s θ), copied to the model's device.

        Returns:
            The model, for chaining (e.g. ``problem.assign(result.theta).eval()``).

        Raises:
            ValueError, TypeError: θ has the wrong shape or dtype.
        """
        if isinstance(theta, np.ndarray):  # the dtype is kept, so a mismatch is still refused
            theta = torch.as_tensor(theta, device=self.device)
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
        return super().loss_and_grad(theta)

    def loss_and_grad_into(self, theta: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """L(θ), with ∇L(θ) written into ``out`` rather than a new tensor.

        What :func:`manifoldwalk.stack` calls where every stacked problem has it: each
        gradient lands in its row of the Jacobian, with no copy to stack them. The values are
        :meth:`loss_and_grad`'s.

        Args:
            theta: flat θ, as for :meth:`loss_and_grad`.
            out: a tensor of θ's length, dtype and device (a row of a (k, P) tensor, say).

        Returns:
            L, a 0-d tensor (detached).

        Raises:
            ValueError: ``out`` is not a flat tensor of θ's length, dtype and device; and as
                :meth:`loss_and_grad`.
            TypeError: as :meth:`loss_and_grad`.
        """
        theta = self._checked(theta)
        if (
            not isinstance(out, torch.Tensor)
            or tuple(out.shape) != (self.n_params,)
            or out.dtype != theta.dtype
            or out.device != theta.device
        ):
            got = (
                f"shape {tuple(out.shape)}, dtype {out.dtype}, device {out.device}"
                if isinstance(out, torch.Tensor)
                else f"a {type(out).__name__}"
            )
            raise ValueError(
                f"out must be a flat tensor of θ's length {self.n_params}, dtype {theta.dtype} "
                f"and device {theta.device}, got {got}."
            )
        if type(self).loss_and_grad is not TorchProblem.loss_and_grad:
            # a subclass with its own gradient (the distributed problem's all-reduce): its
            # values, copied
            loss, grad = self.loss_and_grad(theta)
            out.copy_(grad)
            return loss
        return self._loss_and_grad_flat(theta, out)[0]

    def compile_step(self, step: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """The walk's pure step, compiled whole with ``torch.compile`` if ``compile`` was asked.

        ``manifoldwalk.walk`` calls this (unless ``driver=Eager(compile_step=False)``). Without
        ``from_model(..., compile=...)`` the step is returned as it is (eager). With it, the
        loss and gradient are taken through :mod:`torch.func` inside one graph with the
        engine's vector algebra; ``"reduce-overhead"`` replays it as a CUDA graph on a GPU.
        The first call compiles (tens of seconds).

        Args:
            step: the walk's pure step, ``state -> state``.

        Returns:
            The step to run (compiled, or ``step`` itself).
        """
        if self._compile_mode is None:
            return step
        self._trace_loss_and_grad()
        return compiled(step, self._compile_mode, lambda: eval_mode(self.model))

    def compile_loop(self, loop: DeviceLoop) -> Callable[[Any], Any]:
        """Up to K walk steps per host synchronisation (``walk(..., driver=Chunked(K))``).

        The K steps run masked (each kept only while no stop rule fired), queued on the device
        without a sync when eager, or as one compiled graph (a CUDA graph in
        ``"reduce-overhead"`` mode) with ``from_model(..., compile=...)``; see
        ``manifoldwalk_torch._compile.chunk_runner``. The path is the eager driver's. Kept in
        :attr:`loop_cache` for later walks with the same options.

        Args:
            loop: the engine's device loop.

        Returns:
            The chunk, ``carry -> carry``.
        """
        if self._compile_mode is not None:
            self._trace_loss_and_grad()
        return self.loop_cache.get(
            loop, lambda: chunk_runner(loop, self._compile_mode, lambda: eval_mode(self.model))
        )

    def as_float64(self) -> TorchProblem | None:
        """The same problem in float64, for :func:`manifoldwalk.check_gradient`.

        A deep copy of the model cast with ``.double()``, on the same data (its floating
        tensors cast to float64 as they are used) with the same loss, regulariser and batch
        size; never compiled. Building it warns nothing (the warnings were this problem's).

        Returns:
            This problem if it is already float64; the copy; or None on an Apple GPU (MPS),
            which has no float64.
        """
        if self.dtype == torch.float64:
            return self
        if self.device.type == "mps":
            return None
        loss_fn, data, reg, batch_size = self._float64_args
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._build_like(
                copy.deepcopy(self.model).double(), loss_fn, data, reg=reg, batch_size=batch_size
            )

    @classmethod
    def _build_like(cls, model: nn.Module, *args: Any, **kwargs: Any) -> TorchProblem:
        """A problem of this kind on another model (``as_float64``'s copy)."""
        return TorchProblem(model, *args, **kwargs)

    # --- ModelProblem's hooks -------------------------------------------------------------

    def _loss_and_grad_flat(
        self, theta: torch.Tensor, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L, ∇L)`` at a checked θ, batch by batch (∇L written into ``out`` if given)."""
        self._buffer_snapshot.check()
        # each piece its own autograd leaf, the gradient joined after: the same values as
        # differentiating the flat θ, without autograd's split and view nodes
        params = [v.requires_grad_(True) for v in self._views(theta, detach=True)]
        total, grad, n = None, None, 0
        with torch.enable_grad(), eval_mode(self.model):
            for batch, m in self._data.sized_batches():
                loss = self._batch_loss(params, batch)
                pieces = torch.autograd.grad(loss, params, materialize_grads=True)
                flat = [piece.reshape(-1) for piece in pieces]
                loss = loss.detach()
                if self._data.single:
                    return loss, (torch.cat(flat) if out is None else torch.cat(flat, out=out))
                g = torch.cat(flat)
                total = loss * m if total is None else total + loss * m
                grad = g * m if grad is None else grad + g * m
                n += m
        return total / n, (grad / n if out is None else torch.div(grad, n, out=out))

    def _hvp_flat(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """∇²L(θ)·v by double backward (reverse over reverse, as PyHessian), batch by batch."""
        self._buffer_snapshot.check()
        params = [p.requires_grad_(True) for p in self._views(theta, detach=True)]
        directions = self._views(v, detach=True)
        total, n = None, 0
        with torch.enable_grad(), eval_mode(self.model):
            for batch, m in self._data.sized_batches():
                loss = self._batch_loss(params, batch)
                grads = torch.autograd.grad(loss, params, create_graph=True, materialize_grads=True)
                slope = sum((g * d).sum() for g, d in zip(grads, directions, strict=True))
                pieces = torch.autograd.grad(slope, params, materialize_grads=True)
                hv = torch.cat([piece.reshape(-1) for piece in pieces])
                if self._data.single:
                    return hv
                total = hv * m if total is None else total + hv * m
                n += m
        return total / n

    def _loss_flat(self, theta: torch.Tensor) -> torch.Tensor:
        """L at a checked θ, forward passes only."""
        self._buffer_snapshot.check()
        params = self._views(theta, detach=True)
        total, n = None, 0
        with torch.no_grad(), eval_mode(self.model):
            for batch, m in self._data.sized_batches():
                loss = self._batch_loss(params, batch)
                if self._data.single:
                    return loss
                total = loss * m if total is None else total + loss * m
                n += m
        return total / n

    def _is_theta(self, theta: Any) -> bool:
        return isinstance(theta, torch.Tensor)

    def _theta_conversion(self) -> str:
        return f"torch.as_tensor(theta, dtype={self.dtype}, device='{self.device}')"

    def _cast_hint(self, theta: Any) -> str:
        return f"theta.to({self.dtype})"

    def _reg_error(self, reg: Any) -> Exception:
        return ValueError(
            f"reg must be 'l2', 'l2-weights' or a differentiable function of the flat θ, "
            f"got {reg!r}."
        )

    def _l2_reg(self) -> RegPair:
        return (lambda t: torch.dot(t, t)), (lambda t: 2 * t)

    def _weights_reg(self, mask: np.ndarray) -> RegPair:
        on_device = torch.as_tensor(mask, dtype=self.dtype, device=self.device)

        def reg_fn(t: torch.Tensor) -> torch.Tensor:
            w = t * on_device
            return torch.dot(w, w)

        return reg_fn, (lambda t: 2 * (t * on_device))

    def _callable_reg(self, fn: RegFn) -> RegPair:
        return callable_reg(fn)

    def _check_eval_batch_size(self, batch_size: Any) -> int | None:
        return check_batch_size(batch_size)

    def _eval_theta(self, theta: Any) -> list[torch.Tensor]:
        self._buffer_snapshot.check()
        # the views, taken once for all batches
        return self._views(self._checked(theta), detach=True)

    def _eval_data(self, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        # held-out data stays where it is; each batch moves to the device as it is used
        data = Data.build((x, y), self.dtype, None, None, what="evaluate")
        return next(data.batches())

    @contextlib.contextmanager
    def _eval_context(self) -> Iterator[None]:
        with torch.no_grad(), eval_mode(self.model):
            yield

    def _eval_batch_sums(
        self, views: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor, task: str
    ) -> tuple[torch.Tensor, int]:
        xb, yb = xb.to(self.device), yb.to(self.device)
        out = self._slots.call(views, xb)
        loss = scalar_loss(self._loss_fn(out, yb))
        if task == "classification":
            second, count = correct(out, yb), out.shape[0]
        else:
            second, count = squared_error(out, yb), out.numel()
        return torch.stack([loss * xb.shape[0], second.to(self.dtype)]), count

    def _to_host(self, total: torch.Tensor) -> list[float]:
        return total.tolist()

    # --- internals ------------------------------------------------------------------------

    def _warn_if_untrained(self, outputs: Any, targets: torch.Tensor, loss: torch.Tensor) -> None:
        """Warn when L0 is no better than the trivial loss (a recognised cross-entropy or MSE
        on ``(x, y)`` data only; one full loss evaluation at θ0, only then)."""
        y_all = self._data.targets
        if y_all is None or not isinstance(outputs, torch.Tensor):
            return
        trivial = trivial_loss(
            outputs.detach().cpu().double().numpy(),
            targets.cpu().numpy(),
            loss.item(),
            y_all.cpu().numpy(),
        )
        if trivial is not None:
            # from_model, __init__, this method lie between the user's call and the warning
            warn_if_untrained(self._loss_flat(self.theta0).item(), trivial, stacklevel=4)

    def _trace_loss_and_grad(self) -> None:
        """Build the :mod:`torch.func` loss and gradient a compiled graph calls (once)."""
        if self._traced_loss_and_grad is None:
            # functional_call, not the slots: torch.func and torch.compile trace it. The
            # wrapper makes "the loss of the model on a batch" one module's forward, so that
            # functional_call swaps the parameters around all of it.
            wrapper = _LossModule(self.model, self._module_loss)
            self._traced_loss_and_grad = functional_loss_and_grad(
                lambda t, batch: scalar_loss(
                    functional_call(
                        wrapper,
                        {f"model.{k}": v for k, v in self.unflatten(t).items()},
                        (batch,),
                    )
                ),
                list(self._data.sized_batches()),
            )

    def _views(self, theta: torch.Tensor, detach: bool = False) -> list[torch.Tensor]:
        """A checked θ (detached, if asked) split into views shaped like the trainable
        parameters, in θ's order (no copy)."""
        if detach:
            theta = theta.detach()
        pieces = theta.split_with_sizes(self._sizes)
        return [piece.view(shape) for piece, shape in zip(pieces, self._shapes, strict=True)]

    def _batch_loss(self, views: list[torch.Tensor], batch: Any) -> torch.Tensor:
        """The mean loss over one batch, the parameters swapped for ``views``."""
        return scalar_loss(self._slots.run(views, self._run_loss, batch))


ModuleLoss = Callable[[nn.Module, Any], torch.Tensor]
"""``(model, batch) -> 0-d tensor``: the mean loss of the model over one batch."""


def _outputs_loss(loss_fn: LossFn) -> ModuleLoss:
    """``from_model``'s loss as a loss of the model on one ``(x, y)`` batch."""

    def module_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return loss_fn(model(x), y)

    return module_loss


class _LossModule(nn.Module):
    """A model and its loss on a batch as one module, ``forward(batch) = loss(model, batch)``,
    for :func:`torch.func.functional_call` (the model is its submodule ``model``; nothing of
    the model is changed or copied)."""

    def __init__(self, model: nn.Module, module_loss: ModuleLoss) -> None:
        super().__init__()
        self.model = model
        self._module_loss = module_loss

    def forward(self, batch: Any) -> torch.Tensor:
        return self._module_loss(self.model, batch)


def from_model(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    reg: str | RegFn = "l2",
    batch_size: int | None = None,
    compile: bool | str = False,
    groups: Any = None,
    n_groups: int | None = None,
    jacobian: str = "split",
) -> TorchProblem:
    """Wrap a PyTorch model, a loss function and training data as a manifoldwalk Problem.

    Example::

        problem = manifoldwalk_torch.from_model(model, nn.CrossEntropyLoss(), (x, y))
        result = manifoldwalk.walk(problem, problem.theta0)
        problem.assign(result.theta)

    For a model that takes a dict batch or several inputs, or computes its own loss (a Hugging
    Face model), use :func:`~manifoldwalk_torch.from_loss` with a loss of the model and a batch.

    Args:
        model: an ``nn.Module`` mapping a batch of inputs to outputs. Its trainable parameters
            (``requires_grad=True``) make up θ, in ``named_parameters()`` order; frozen
            parameters and buffers stay as they are. All trainable parameters must share one
            floating dtype, float32 or float64 (convert a half-precision model with
            ``model.float()`` first), and one device, which θ takes. The buffers (batch
            norm's running statistics) are part of the loss: they are recorded when the
            model is wrapped, and an evaluation after one of them changed (a training-mode
            forward pass, ``load_state_dict``) raises ProblemError rather than walk another
            function; wrap the model again after changing it.
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
            tensor (its gradient is taken with autograd, once at θ0 while building, to check
            that autograd can: one that detaches θ or goes through numpy is refused).
        batch_size: for ``(x, y)`` data, evaluate the loss in batches of this many examples
            (to bound memory); the full-batch mean is accumulated exactly.
        compile: compile the walk step whole with ``torch.compile`` (see
            :meth:`TorchProblem.compile_step`): ``True`` (mode ``"default"``), a mode name
            (``"reduce-overhead"`` adds CUDA graphs on a GPU), or ``False`` (eager; the
            default). Worth it for long walks: the first step compiles for tens of seconds,
            then each step costs about one fused loss-and-gradient
            (``benchmarks/adapter_overhead.py``). Needs ``(x, y)`` data, not a DataLoader.
        groups: None (one constraint, the mean loss over every example), or one integer group
            id per example, 0..k−1 (a numpy array, list or tensor; e.g. ``groups=y`` for
            integer class labels): the problem is then a k-constraint problem
            (:class:`~manifoldwalk_torch.groups.TorchGroupsProblem`) whose k losses are
            ``loss_fn`` over each group's examples, its mean loss for a mean-reducing loss,
            evaluated from one copy of the data (reordered group by group once, each group a
            view). ``walk`` holds every group's loss at its level. Needs ``(x, y)`` data and
            ``compile=False``; every group needs an example (a group of one warns).
        n_groups: with ``groups``: k, when the ids need not reach k − 1 (an id of k or more is
            refused, and so is an empty group); None: the largest id plus one.
        jacobian: with ``groups``: how the k gradients are taken, ``"split"`` (a forward and
            a reverse pass per group over its own examples: about one full-batch gradient in
            all, the fastest measured), ``"passes"`` (one forward pass over every example,
            then k reverse passes through it) or ``"batched"`` (the same forward pass, one
            batched reverse pass, ``is_grads_batched``). ``batch_size`` applies to
            ``"split"`` only.

    Returns:
        A :class:`TorchProblem`; with ``groups``, a
        :class:`~manifoldwalk_torch.groups.TorchGroupsProblem`.

    Raises:
        ValueError: no trainable parameters, parameters on several devices or on the meta
            device, a callable ``reg`` that autograd cannot differentiate, inputs and
            targets of different lengths, an unknown ``reg`` name, a bad ``batch_size``, a
            DataLoader that drops its last batch or yields none, or a model or loss that fails
            on the first few training examples (the model and the loss are run once on up to 8
            of them while building; the framework's error is the cause) or a loss that is not
            a scalar there. With ``groups``: ids not one per example, out of range (named
            with their examples) or leaving a group empty; a DataLoader; ``compile``;
            ``batch_size`` with a ``jacobian`` other than ``"split"``; an unknown
            ``jacobian``. Without: ``n_groups`` or ``jacobian`` given.
        TypeError: a non-floating (e.g. integer) or half-precision parameter, trainable
            parameters of mixed dtypes, a loss class where an instance is needed, ``model``
            and ``loss_fn`` swapped, ``data`` of more than two arrays, group ids that are not
            integers, or arguments of the wrong type.

    Warns:
        UserWarning: the model holds dropout or batch-norm layers; the problem evaluates the
            model in eval mode (dropout off, batch norm on its running statistics). Also: the
            model looks untrained, its loss at θ0 no better than the trivial loss (that of
            predicting the class frequencies, or the targets' mean), for a cross-entropy or
            MSE loss on ``(x, y)`` data (one full loss evaluation at θ0 decides).
    """
    if groups is None:
        refuse_group_options(n_groups, jacobian)
        return TorchProblem(model, loss_fn, data, reg=reg, batch_size=batch_size, compile=compile)
    if compile is not False:
        raise ProblemError(
            "compile applies to single-constraint walks; a groups= problem is walked by "
            "manifoldwalk.walk_constrained, which runs eagerly: leave compile out."
        )
    from manifoldwalk_torch.groups import TorchGroupsProblem  # (imports this module)

    return build_warning_at_caller(
        lambda: TorchGroupsProblem(
            model,
            loss_fn,
            data,
            groups=groups,
            n_groups=n_groups,
            jacobian=jacobian,
            reg=reg,
            batch_size=batch_size,
        )
    )
