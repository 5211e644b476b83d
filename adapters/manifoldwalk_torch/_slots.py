"""Run a module with its trainable parameters replaced by views into flat θ.

:func:`torch.func.functional_call` does this by name at every call: it walks the module tree,
resolves each name to its submodule, checks the keys and unties shared parameters, then swaps
each tensor into the submodule's ``_parameters`` and back. :class:`ParameterSlots` resolves the
names once, when the problem is built, and each call does only the swap, which is the same
dictionary assignment ``functional_call`` ends with
(``torch.nn.utils._named_member_accessor.swap_tensor``), so the forward pass, its hooks and the
gradient are the same bit for bit (``tests/adapters/test_torch_adapter.py``). Unlike
``functional_call`` (torch 2.13), it puts back the parameter of a submodule the model reaches by
two names. The time saved per call is small, within a shared CPU's noise on the nets of
``benchmarks/torch_loss_grad.py``.

:meth:`ParameterSlots.run` runs any function with the parameters swapped (``from_loss``'s
``loss_fn(model, batch)``); :meth:`ParameterSlots.call` runs the module itself.

The compiled paths keep ``functional_call``, which ``torch.compile`` and :mod:`torch.func`
trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


class ParameterSlots:
    """Where each trainable parameter of a module lives, to swap flat-θ views in and out.

    A parameter shared by several submodules (tied weights) has one place in θ and one slot
    per submodule that holds it, all filled with the same view, as
    ``functional_call(..., tie_weights=True)`` does.

    Args:
        model: the module.
        params: its trainable parameters in θ's order (``named_parameters()`` order).
    """

    def __init__(self, model: nn.Module, params: Sequence[nn.Parameter]) -> None:
        self._model = model
        index = {id(p): i for i, p in enumerate(params)}
        self._slots: list[tuple[dict[str, Any], str, int]] = []
        seen = set()
        for name, p in model.named_parameters(remove_duplicate=False):
            i = index.get(id(p))
            owner, _, attr = name.rpartition(".")
            table = model.get_submodule(owner)._parameters
            # frozen parameters stay as they are; a submodule reached by two paths is one slot
            if i is not None and (id(table), attr) not in seen:
                seen.add((id(table), attr))
                self._slots.append((table, attr, i))

    def call(self, values: Sequence[torch.Tensor], *args: Any) -> Any:
        """``model(*args)`` with the trainable parameters replaced by ``values`` for the call.

        Args:
            values: one tensor per trainable parameter, in θ's order, shaped like it.
            args: the module's positional inputs.

        Returns:
            What ``model(*args)`` returns. The parameters are put back also when it raises.
        """
        return self.run(values, self._model, *args)

    def run(self, values: Sequence[torch.Tensor], fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with the model's trainable parameters replaced by ``values`` meanwhile:
        any code that uses the model (e.g. a loss computed from it and a batch).

        Args:
            values: one tensor per trainable parameter, in θ's order, shaped like it.
            fn: what to run.
            args: its positional arguments.

        Returns:
            What ``fn(*args)`` returns. The parameters are put back also when it raises.
        """
        saved = []
        try:
            for table, attr, i in self._slots:
                saved.append(table[attr])
                table[attr] = values[i]
            return fn(*args)
        finally:
            for (table, attr, _), original in zip(self._slots, saved, strict=False):
                table[attr] = original
