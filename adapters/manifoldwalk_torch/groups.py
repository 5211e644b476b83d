"""``TorchGroupsProblem``: the mean losses of k groups of training examples as one k-constraint
problem (``from_model(..., groups=ids)``).

The examples are reordered once, group by group (``manifoldwalk._groups``), so that each group
is one contiguous slice of the data on the device: a group's examples are a view, never a copy
per evaluation. ``losses_and_jacobian(θ)`` returns the k group losses and their gradients as
the rows of a (k, P) tensor, each gradient written straight into its row. Three ways to take
them (``jacobian=``), measured in ``benchmarks/multi_constraint.py``:

- ``"split"`` (the default): a forward and a reverse pass per group over its own examples,
  which together cost about one full-batch loss and gradient;
- ``"passes"``: one forward pass over all the examples, then k reverse passes through it
  (``retain_graph``), each over every example: k times the reverse work;
- ``"batched"``: the same forward pass, then one batched reverse pass
  (``torch.autograd.grad(..., is_grads_batched=True)``, a ``vmap`` over the k passes).

The problem is a :class:`~manifoldwalk_torch.TorchProblem` besides: ``loss``,
``loss_and_grad`` and ``evaluate`` are the full-batch mean over every example; ``theta0``,
``reg``, ``assign`` and the rest are the same.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from manifoldwalk._groups import GroupedLosses, GroupLayout, check_jacobian, layout_groups
from manifoldwalk.adapter_api import ProblemError, check_plain_pair
from manifoldwalk_torch._data import FROM_LOSS, Data, as_tensor, check_lengths
from manifoldwalk_torch._model import RegFn, eval_mode, scalar_loss
from manifoldwalk_torch.problem import LossFn, TorchProblem

__all__ = ["TorchGroupsProblem"]


class TorchGroupsProblem(GroupedLosses, TorchProblem):
    """The mean training loss of each of k groups of examples, as one k-constraint problem.

    Build it with ``manifoldwalk_torch.from_model(model, loss_fn, (x, y), groups=ids)``, which
    documents the arguments; walk it with ``manifoldwalk.walk(problem, problem.theta0)``
    (which hands it to ``manifoldwalk.walk_constrained``).

    Its attributes ``n_constraints`` (k), ``dim``, ``group_sizes``, ``loss_weights``,
    ``jacobian`` and ``layout`` are those of :class:`~manifoldwalk._groups.GroupedLosses`.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Any,
        *,
        groups: Any,
        n_groups: int | None = None,
        jacobian: str = "split",
        reg: str | RegFn = "l2",
        batch_size: int | None = None,
    ) -> None:
        self.jacobian = check_jacobian(jacobian)
        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise ProblemError(
                "groups= needs the training data as (x, y) arrays, one group id per example; "
                f"got {type(data).__name__} (a DataLoader's examples cannot be matched to ids). "
                "Load the data as (x, y), or build one problem per group and stack them with "
                "manifoldwalk.stack."
            )
        if batch_size is not None and jacobian != "split":
            raise ValueError(
                f'batch_size applies to jacobian="split" (each group in batches); '
                f'jacobian="{jacobian}" runs one forward pass over every example.'
            )
        check_plain_pair(data, "data", FROM_LOSS)
        x, y = (as_tensor(a, None, None, name) for a, name in zip(data, "xy", strict=True))
        check_lengths(x, y)
        layout = layout_groups(groups, int(x.shape[0]), n_groups, stacklevel=5)
        if layout.order is not None:  # group by group, once
            index = torch.as_tensor(layout.order, device=x.device)
            x, y = x[index], y[index]
        super().__init__(model, loss_fn, (x, y), reg=reg, batch_size=batch_size)
        self.layout: GroupLayout = layout
        # the reordered data on the device (from_model's cast and move), and each group's view
        self._x, self._y = self._data.inputs, self._data.targets
        self._groups = [
            Data((self._x[s], self._y[s]), _batch(batch_size, s)) for s in layout.slices()
        ]

    # --- the k-constraint protocol --------------------------------------------------------

    def losses_and_jacobian(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The k group losses and their gradients, the rows of the Jacobian.

        Args:
            theta: flat θ, a tensor of length ``n_params`` in the model's dtype and device.

        Returns:
            ``(L, J)``: a (k,) tensor and a (k, P) tensor (both detached), θ's dtype and
            device.

        Raises:
            TypeError, ValueError: θ of the wrong kind, dtype or shape (as
                :meth:`loss_and_grad`).
        """
        theta = self._checked(theta)
        self._buffer_snapshot.check()
        jac = theta.new_empty((self.n_constraints, self.n_params))
        if self.jacobian == "split":
            params = [v.requires_grad_(True) for v in self._views(theta, detach=True)]
            losses = [
                self._group_loss_and_grad(params, data, jac[i])
                for i, data in enumerate(self._groups)
            ]
            return torch.stack(losses), jac
        params = [v.requires_grad_(True) for v in self._views(theta, detach=True)]
        with torch.enable_grad(), eval_mode(self.model):
            losses = self._one_pass_losses(params)
            if self.jacobian == "passes":
                k = self.n_constraints
                for i in range(k):
                    pieces = torch.autograd.grad(
                        losses[i], params, retain_graph=i < k - 1, materialize_grads=True
                    )
                    torch.cat([p.reshape(-1) for p in pieces], out=jac[i])
            else:
                eye = torch.eye(self.n_constraints, dtype=theta.dtype, device=theta.device)
                pieces = torch.autograd.grad(
                    losses, params, grad_outputs=eye, is_grads_batched=True, materialize_grads=True
                )
                torch.cat([p.reshape(self.n_constraints, -1) for p in pieces], dim=1, out=jac)
        return losses.detach(), jac

    def losses(self, theta: torch.Tensor) -> torch.Tensor:
        """The k group losses at θ, forward passes only (one per group; one in all for
        ``jacobian="passes"`` or ``"batched"``).

        Args:
            theta: flat θ, as for :meth:`losses_and_jacobian`.

        Returns:
            A (k,) tensor.

        Raises:
            TypeError, ValueError: as :meth:`losses_and_jacobian`.
        """
        theta = self._checked(theta)
        self._buffer_snapshot.check()
        params = self._views(theta, detach=True)
        with torch.no_grad(), eval_mode(self.model):
            if self.jacobian != "split":
                return self._one_pass_losses(params)
            return torch.stack([self._group_mean(params, data) for data in self._groups])

    # --- internals ------------------------------------------------------------------------

    def _group_loss_and_grad(
        self, params: list[torch.Tensor], data: Data, out: torch.Tensor
    ) -> torch.Tensor:
        """One group's mean loss, its gradient written into ``out`` (batch by batch if
        ``batch_size`` was given, accumulated exactly as the full-batch mean)."""
        total, grad, n = None, None, 0
        with torch.enable_grad(), eval_mode(self.model):
            for batch, m in data.sized_batches():
                loss = self._batch_loss(params, batch)
                pieces = torch.autograd.grad(loss, params, materialize_grads=True)
                flat = [piece.reshape(-1) for piece in pieces]
                loss = loss.detach()
                if data.single:
                    torch.cat(flat, out=out)
                    return loss
                g = torch.cat(flat)
                total = loss * m if total is None else total + loss * m
                grad = g * m if grad is None else grad + g * m
                n += m
        torch.div(grad, n, out=out)
        return total / n

    def _group_mean(self, params: list[torch.Tensor], data: Data) -> torch.Tensor:
        """One group's mean loss (forward only; inside ``no_grad`` and eval mode)."""
        total, n = None, 0
        for batch, m in data.sized_batches():
            loss = self._batch_loss(params, batch)
            if data.single:
                return loss
            total = loss * m if total is None else total + loss * m
            n += m
        return total / n

    def _one_pass_losses(self, params: list[torch.Tensor]) -> torch.Tensor:
        """The k group losses from one forward pass over every example: the loss function
        on each group's slice of the outputs (``loss_fn(outputs[s], y[s])``)."""
        outputs = self._slots.call(params, self._x)
        return torch.stack(
            [scalar_loss(self._loss_fn(outputs[s], self._y[s])) for s in self.layout.slices()]
        )

    def compile_step(self, step: Any) -> Any:
        """The step as it is: a k-constraint walk runs eagerly."""
        return step


def _batch(batch_size: int | None, s: slice) -> int | None:
    """A group's batch size: None where the group fits one batch."""
    if batch_size is None or batch_size >= s.stop - s.start:
        return None
    return batch_size
