"""``JaxGroupsProblem``: the mean losses of k groups of training examples as one k-constraint
problem (``from_apply(..., groups=ids)``).

The examples are reordered once, group by group (``manifoldwalk._groups``), so that each group
is one contiguous slice of the data on the device. ``losses_and_jacobian(θ)`` is one jitted
function returning the k group losses and their gradients as the rows of a (k, P) array. Three
ways to take them (``jacobian=``), measured in ``benchmarks/multi_constraint.py``:

- ``"split"`` (the default): the loss and gradient of each group over its own examples (k
  value-and-gradient passes that together cost about one full-batch pass);
- ``"passes"``: one forward pass over all the examples (``jax.vjp``), then k pullbacks through
  it, each over every example;
- ``"batched"``: the same forward pass and the k pullbacks as one ``jax.vmap`` (``jacrev``).

The problem is a :class:`~manifoldwalk_jax.JaxProblem` besides: ``loss``, ``loss_and_grad``
and ``evaluate`` are the full-batch mean over every example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk._groups import GroupedLosses, GroupLayout, check_jacobian, layout_groups
from manifoldwalk.adapter_api import check_plain_pair
from manifoldwalk_jax._flat import PyTree
from manifoldwalk_jax._inputs import FROM_LOSS, _as_data
from manifoldwalk_jax._reg import RegFn
from manifoldwalk_jax.problem import ApplyFn, JaxProblem, LossFn

__all__ = ["JaxGroupsProblem"]


class JaxGroupsProblem(GroupedLosses, JaxProblem):
    """The mean training loss of each of k groups of examples, as one k-constraint problem.

    Build it with ``manifoldwalk_jax.from_apply(apply_fn, params, loss_fn, (x, y),
    groups=ids)``, which documents the arguments; walk it with
    ``manifoldwalk.walk(problem, problem.theta0)``.

    Its attributes ``n_constraints`` (k), ``dim``, ``group_sizes``, ``loss_weights``,
    ``jacobian`` and ``layout`` are those of :class:`~manifoldwalk._groups.GroupedLosses`.
    """

    def __init__(
        self,
        apply_fn: ApplyFn,
        params: PyTree,
        loss_fn: LossFn,
        data: tuple[Any, Any],
        *,
        groups: Any,
        n_groups: int | None = None,
        jacobian: str = "split",
        reg: str | RegFn = "l2",
        trainable: PyTree | None = None,
    ) -> None:
        self.jacobian = check_jacobian(jacobian)
        check_plain_pair(data, "data", FROM_LOSS)
        x, y = (a if hasattr(a, "shape") else np.asarray(a) for a in data)
        layout = layout_groups(groups, int(x.shape[0]) if x.ndim else 0, n_groups)
        if layout.order is not None:  # group by group, once
            x, y = x[layout.order], y[layout.order]
        super().__init__(apply_fn, params, loss_fn, (x, y), reg=reg, trainable=trainable)
        self.layout: GroupLayout = layout
        # on the parameters' device already (from_apply's move): the same arrays
        self._x, self._y = _as_data((x, y), self._device, "data")
        self._slices = layout.slices()
        self._jit_losses_and_jacobian = jax.jit(self._jacobian_fn())
        self._jit_losses = jax.jit(self._losses_fn())

    # --- the k-constraint protocol --------------------------------------------------------

    def losses_and_jacobian(self, theta: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The k group losses and their gradients, the rows of the Jacobian (one jitted call).

        Args:
            theta: flat θ, a ``jax.Array`` of length ``n_params`` in θ's dtype.

        Returns:
            ``(L, J)``: a (k,) array and a (k, P) array, θ's dtype and device.

        Raises:
            TypeError, ValueError: θ of the wrong kind, dtype or shape (as
                :meth:`loss_and_grad`).
        """
        return self._jit_losses_and_jacobian(self._checked(theta), self._frozen, self._x, self._y)

    def losses(self, theta: jax.Array) -> jax.Array:
        """The k group losses at θ, forward passes only (one jitted call).

        Raises:
            TypeError, ValueError: as :meth:`losses_and_jacobian`.
        """
        return self._jit_losses(self._checked(theta), self._frozen, self._x, self._y)

    # --- traced pieces --------------------------------------------------------------------

    def _one_pass(self, theta: jax.Array, frozen: list[Any], x: Any, y: Any) -> jax.Array:
        """The k group losses from one forward pass over every example (traced)."""
        outputs = self._apply_fn(self._flat.assemble(theta, frozen), x)
        return jnp.stack(
            [jnp.asarray(self._loss_fn(outputs[s], y[s]), theta.dtype) for s in self._slices]
        )

    def _losses_fn(self) -> Callable[..., jax.Array]:
        """``(θ, frozen, x, y) -> L`` (traced): per group, or from one forward pass."""
        if self.jacobian != "split":
            return self._one_pass

        def losses(theta: jax.Array, frozen: list[Any], x: Any, y: Any) -> jax.Array:
            return jnp.stack([self._loss_at(theta, frozen, x[s], y[s]) for s in self._slices])

        return losses

    def _jacobian_fn(self) -> Callable[..., tuple[jax.Array, jax.Array]]:
        """``(θ, frozen, x, y) -> (L, J)`` (traced), the way ``jacobian`` names."""
        k = self.n_constraints
        if self.jacobian == "split":
            in_place = self._device.platform == "cpu"  # as the single-constraint gradient
            value_and_grad = self._flat.value_and_grad(self._loss_of, in_place)

            def split(theta: jax.Array, frozen: list[Any], x: Any, y: Any) -> Any:
                pairs = [value_and_grad(theta, frozen, x[s], y[s]) for s in self._slices]
                return jnp.stack([v for v, _ in pairs]), jnp.stack([g for _, g in pairs])

            return split

        def one_pass(theta: jax.Array, frozen: list[Any], x: Any, y: Any) -> Any:
            losses, pullback = jax.vjp(lambda t: self._one_pass(t, frozen, x, y), theta)
            eye = jnp.eye(k, dtype=theta.dtype)
            if self.jacobian == "passes":
                rows = [pullback(eye[i])[0] for i in range(k)]
                return losses, jnp.stack(rows)
            return losses, jax.vmap(pullback)(eye)[0]

        return one_pass
