"""``from_loss``: a PyTorch model's loss on batches of any structure as a Problem.

Where :func:`~manifoldwalk_torch.from_model` takes ``loss_fn(outputs, targets)`` and ``(x, y)``
data, :func:`from_loss` takes ``loss_fn(model, batch)`` and batches of any nesting of dicts,
tuples and lists (a Hugging Face model's ``lambda m, b: m(**b).loss`` on dicts of token ids,
a model of several inputs, a model that computes its own loss). Both run the same evaluation
(:class:`~manifoldwalk_torch.TorchProblem`'s): θ's views swapped into the model's parameter
places for the call of ``loss_fn(model, batch)``, eval mode, autograd with respect to the
views, the example-weighted mean over batches. ``from_model(model, loss, (x, y))`` is this with
``loss_fn = lambda m, b: loss(m(b[0]), b[1])`` on one ``(x, y)`` batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from manifoldwalk._batches import BatchSizeFn, describe_structure
from manifoldwalk.adapter_api import ProblemError, check_callable, loss_entry
from manifoldwalk_torch._loss_data import LossData
from manifoldwalk_torch._model import (
    BufferSnapshot,
    RegFn,
    eval_mode,
    first_line,
    warn_if_stochastic,
)
from manifoldwalk_torch.problem import ModuleLoss, TorchProblem

MetricFn = Callable[[nn.Module, Any], Any]
"""``metric(model, batch) -> 0-d tensor or number``: the batch's mean of a metric."""


class TorchLossProblem(TorchProblem):
    """A PyTorch model's loss on batches of any structure as a Problem on the flat θ.

    Build it with :func:`from_loss`, which documents the arguments. It is a
    :class:`~manifoldwalk_torch.TorchProblem` (θ, ``assign``, ``unflatten``, the Problem
    protocol, ``compile_step``, ``as_float64``), with the loss ``loss_fn(model, batch)``, and
    its own :meth:`evaluate`, which takes batches and metric functions of the model and a batch.
    ``manifoldwalk_torch.walk_batch`` does not take it.
    """

    _compile_data_error = (
        "compile needs the training data as one batch or a list (or tuple) of batches, not a "
        "DataLoader or a generator function: the compiled step bakes the batches in."
    )

    def __init__(
        self,
        model: nn.Module,
        loss_fn: ModuleLoss,
        data: Any,
        *,
        reg: str | RegFn = "l2",
        batch_size: BatchSizeFn | None = None,
        compile: bool | str = False,
    ) -> None:
        _check_arguments(model, loss_fn)
        self._loss_fn = loss_fn
        self._batch_size_fn = batch_size
        self._float64_args = (loss_fn, data, reg, batch_size)
        self._setup(
            model,
            loss_fn,
            lambda dtype, device: LossData(data, dtype, device, batch_size),
            reg,
            compile,
        )
        warn_if_stochastic(model)
        self._check_first_batch()
        # the buffers (batch norm's running statistics) as wrapped; each evaluation checks them
        self._buffer_snapshot = BufferSnapshot(model)

    @classmethod
    def _build_like(cls, model: nn.Module, *args: Any, **kwargs: Any) -> TorchLossProblem:
        return TorchLossProblem(model, *args, **kwargs)

    def evaluate(  # type: ignore[override]
        self,
        theta: torch.Tensor,
        data: Any,
        *,
        metrics: Mapping[str, MetricFn] | None = None,
        batch_size: BatchSizeFn | None = None,
    ) -> dict[str, float]:
        """The loss and metrics of θ on held-out batches: example-weighted means over them.

        Meant for the walk's metric callables, e.g.
        ``metrics={"test_loss": lambda t: problem.evaluate(t, test_batches)["loss"]}``.
        Batches are read as the training data (one batch, or a re-iterable of batches) and
        moved to the device one at a time; the model runs in eval mode without autograd.
        One host synchronisation per call.

        Args:
            theta: flat θ.
            data: one held-out batch or a re-iterable of them, structured as ``loss_fn`` takes.
            metrics: ``{name: metric(model, batch)}``, each returning the batch's *mean* of the
                metric as a 0-d tensor or a number (e.g. accuracy:
                ``lambda m, b: (m(**b).logits.argmax(-1) == b["labels"]).double().mean()``).
            batch_size: ``batch -> number of examples``, the weights (None: the problem's own,
                by default the first array's leading dimension).

        Returns:
            ``{"loss": float, name: float, ...}``: ``loss_fn`` and each metric averaged over
            the examples.

        Raises:
            ValueError: a metric named ``"loss"``.
            TypeError: a metric that is not callable, θ of the wrong type or dtype, or data
                as :func:`from_loss` refuses it.
            ProblemError: a metric that does not return a 0-d tensor or a number (named), or
                no batches.
        """
        metrics = dict(metrics or {})
        if "loss" in metrics:
            raise ValueError('evaluate: "loss" is always reported; name the metric otherwise.')
        for name, fn in metrics.items():
            check_callable(f"metrics[{name!r}]", fn)
        views = self._eval_theta(theta)
        sizes = self._batch_size_fn if batch_size is None else batch_size
        total, count = None, 0
        with torch.no_grad(), eval_mode(self.model):
            for batch, n in self._data.evaluation(data, sizes):
                values = [self._batch_loss(views, batch)]
                values += [self._metric(views, name, fn, batch) for name, fn in metrics.items()]
                row = torch.stack(values) * n
                total = row if total is None else total + row
                count += n
        return {
            name: value / count
            for name, value in zip(["loss", *metrics], total.tolist(), strict=True)
        }

    # --- internals ------------------------------------------------------------------------

    def _metric(self, views: list[torch.Tensor], name: str, fn: MetricFn, batch: Any) -> Any:
        """One metric's batch mean as a 0-d tensor in θ's dtype, the parameters swapped."""
        value = self._slots.run(views, fn, self.model, batch)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = torch.tensor(float(value), device=self.device)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            got = describe_structure(value)
            raise ProblemError(
                f"evaluate: metric {name!r} must return the batch's mean as a 0-d tensor or a "
                f"number, got {got}."
            )
        return value.to(device=self.device, dtype=self.dtype)

    def _check_first_batch(self) -> None:
        """Run ``loss_fn`` on the first batch at θ0 with autograd, so that a loss the walk
        cannot use is refused here, naming what it returned.

        Raises:
            ProblemError: ``loss_fn`` fails, returns something other than a 0-d floating
                tensor, or a value that does not depend on the parameters through autograd.
        """
        with torch.random.fork_rng(devices=[]):  # a shuffling DataLoader draws its order
            batch = self._data.first()
        views = [v.requires_grad_(True) for v in self._views(self.theta0, detach=True)]
        with torch.enable_grad(), eval_mode(self.model):
            try:
                value = self._slots.run(views, self._run_loss, batch)
            except Exception as err:
                raise ProblemError(
                    f"loss_fn(model, batch) fails on the first batch ({describe_structure(batch)}): "
                    f"{first_line(err)}. loss_fn takes the model first, then one batch as the "
                    "data holds it, and returns the batch's mean loss as a 0-d tensor."
                ) from err
            _check_loss_value(value)
            grads = (
                torch.autograd.grad(value, views, allow_unused=True)
                if value.requires_grad
                else None
            )
        if grads is None or all(g is None for g in grads):
            raise ProblemError(
                "loss_fn(model, batch) returned a loss that does not depend on the model's "
                "trainable parameters through autograd: compute it from the model passed as "
                "the first argument (not a copy or tensors taken from the model beforehand), "
                "with torch operations (no .item(), .detach(), numpy or torch.no_grad())."
            )


def _is_loss(value: Any) -> bool:
    """Whether ``value`` is a loss the walk can use: a 0-d floating tensor."""
    return isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point()


def _check_loss_value(value: Any) -> None:
    """Raise unless ``value`` is a 0-d floating tensor, naming what it is.

    Raises:
        ProblemError: anything else; a model output holding the loss (a ``.loss`` field, a
            ``"loss"`` entry, or first in a tuple) gets a hint.
    """
    if _is_loss(value):
        return
    if isinstance(value, torch.Tensor):
        what = f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    else:
        what = f"a {type(value).__name__}"
    hint = " Return the batch's mean loss, e.g. loss.mean(), as a floating tensor."
    found = None if isinstance(value, torch.Tensor) else loss_entry(value, _is_loss)
    if found is not None:
        path, item = found
        hint = f" It holds the loss as {path}: return that instead."
        if path == ".loss":  # a model output, as Hugging Face models return
            hint = (
                " It has a .loss: return that (lambda m, b: m(**b).loss); Hugging Face models "
                "compute the loss only when the batch holds labels."
            )
        if item is None:
            hint = (
                f" Its {path} is None: Hugging Face models compute the loss only when the batch "
                'holds the targets (e.g. a "labels" entry).'
            )
    raise ProblemError(
        f"loss_fn(model, batch) must return a 0-d floating tensor (the batch's mean loss), "
        f"got {what} on the first batch.{hint}"
    )


def _check_arguments(model: Any, loss_fn: Any) -> None:
    """Raise unless ``model`` is a module and ``loss_fn`` a function of the model and a batch.

    Raises:
        TypeError: arguments swapped, a model that is not a module, a loss that is not
            callable, or a loss of outputs and targets (an ``nn`` loss module or class).
    """
    if not isinstance(model, nn.Module) or isinstance(model, nn.modules.loss._Loss):
        if isinstance(loss_fn, nn.Module) and not isinstance(loss_fn, nn.modules.loss._Loss):
            raise TypeError(
                f"model is a {type(model).__name__} and loss_fn the module "
                f"{type(loss_fn).__name__}: the arguments are swapped. The order is "
                "from_loss(model, loss_fn, data)."
            )
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    check_callable("loss_fn", loss_fn)
    is_loss_class = isinstance(loss_fn, type) and issubclass(loss_fn, nn.modules.loss._Loss)
    if is_loss_class or isinstance(loss_fn, nn.modules.loss._Loss):
        name = loss_fn.__name__ if is_loss_class else type(loss_fn).__name__
        raise TypeError(
            f"loss_fn is the loss {name}, a function of outputs and targets; from_loss takes "
            "loss_fn(model, batch). Use from_model(model, loss, (x, y)), or "
            f"from_loss(model, lambda m, b: loss(m(b[0]), b[1]), data)."
        )


def from_loss(
    model: nn.Module,
    loss_fn: ModuleLoss,
    data: Any,
    *,
    reg: str | RegFn = "l2",
    batch_size: BatchSizeFn | None = None,
    compile: bool | str = False,
    groups: Any = None,
) -> TorchLossProblem:
    """Wrap a PyTorch model and its loss on batches of any structure as a manifoldwalk Problem.

    Example (a Hugging Face model, batches of token ids with labels)::

        problem = manifoldwalk_torch.from_loss(model, lambda m, b: m(**b).loss, batches)
        result = manifoldwalk.walk(problem, problem.theta0)

    The loss is evaluated at any θ without changing the model: θ's views take the trainable
    parameters' places only while ``loss_fn`` runs, in eval mode (dropout off, batch norm on
    its running statistics; Hugging Face models' dropout included).

    Args:
        model: an ``nn.Module``; its trainable parameters make up θ, as in
            :func:`~manifoldwalk_torch.from_model` (one floating dtype, float32 or float64, and
            one device; frozen parameters and buffers stay as they are, and a change of a
            buffer after wrapping is refused at the next evaluation).
        loss_fn: ``loss_fn(model, batch)`` returning the mean loss over the batch as a 0-d
            floating tensor, computed from ``model`` with torch operations (e.g.
            ``lambda m, b: m(**b).loss``, or
            ``lambda m, b: F.cross_entropy(m(b["x"], b["mask"]), b["y"])``).
        data: one batch, or a re-iterable of batches (a list, a DataLoader, a function
            returning a fresh iterable). A batch is any nesting of dicts, tuples, lists and
            namedtuples of tensors, numpy arrays and other values. A dict, a namedtuple, an
            array, or a tuple or list with an array among its items is one batch; another
            tuple or list (of dicts, of tuples) is a list of batches; a generator object or
            other one-shot iterator is refused (the loss is evaluated many times). Tensors and
            numeric numpy arrays are moved to the model's device, floating ones cast to the
            parameters' dtype, integer and boolean ones (token ids, masks, labels) kept; one
            batch is moved once when the problem is built, several as each is used.
        reg: the regulariser, as for :func:`~manifoldwalk_torch.from_model`: ``"l2"``,
            ``"l2-weights"`` or a differentiable function of the flat θ.
        batch_size: ``batch -> number of examples``, each batch's weight: the full-batch loss
            is ``Σ_b n_b·L_b / Σ_b n_b``. None: the leading dimension of the batch's first
            array (dicts in insertion order, depth first); give it when that array is not
            one row per example.
        compile: compile the walk step whole with ``torch.compile``, as for
            :func:`~manifoldwalk_torch.from_model`; needs one batch or a list of batches, and
            a ``loss_fn`` that ``torch.compile(fullgraph=True)`` can trace (no data-dependent
            Python control flow, no ``.item()``, no calls it cannot follow); where it cannot,
            the first compiled step raises a ProblemError that says so, with torch's reason:
            use ``compile=False`` then.
        groups: must be None. A loss of the model and a batch of any structure is one number
            per batch, which cannot be split by example: for per-group losses build one
            problem per group's batches and ``manifoldwalk.stack`` them, or use
            :func:`~manifoldwalk_torch.from_model` with ``groups=``.

    Returns:
        A :class:`TorchLossProblem`.

    Raises:
        TypeError: ``model`` not a module, ``loss_fn`` not callable or a loss of outputs and
            targets (use :func:`~manifoldwalk_torch.from_model`), a one-shot iterator or a
            structure that is no batch, an integer ``batch_size``; the parameter errors of
            :func:`~manifoldwalk_torch.from_model`.
        ValueError: (ProblemError) ``groups`` given, empty data, a DataLoader that drops its
            last batch, a
            batch without an array when there are several (give ``batch_size``), or a
            ``loss_fn`` that fails on the first batch or returns something other than a 0-d
            floating tensor that depends on the parameters through autograd (it is run once,
            with autograd, on the first batch while building; the message names what it
            returned); the parameter errors of :func:`~manifoldwalk_torch.from_model`.

    Warns:
        UserWarning: the model holds dropout or batch-norm layers (evaluated in eval mode).
    """
    if groups is not None:
        raise ProblemError(
            "from_loss cannot take groups=: its loss_fn(model, batch) gives one number per batch "
            "of any structure, which the adapter cannot split by example. Build one from_loss "
            "problem per group's batches and stack them, manifoldwalk.stack([p0, p1, ...]), or "
            "use from_model(model, loss_fn, (x, y), groups=ids) for (x, y) data."
        )
    return TorchLossProblem(model, loss_fn, data, reg=reg, batch_size=batch_size, compile=compile)
