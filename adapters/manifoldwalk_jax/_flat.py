"""Flattening a parameter pytree into one flat θ and back, with an optional trainable mask."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from manifoldwalk.adapter_api import ProblemError

PyTree = Any
"""A JAX pytree: nested dicts, lists, tuples, dataclasses registered as pytrees, arrays."""


class FlatParams:
    """The trainable leaves of a parameter pytree as one flat θ, and the way back.

    Frozen leaves (``False`` in the ``trainable`` mask) are kept aside, never part of θ, and
    put back in their place by :meth:`assemble`.

    Args:
        params: the parameter pytree.
        trainable: None (every leaf is trainable) or a pytree of bools with the structure of
            ``params`` or a prefix of it (``{"params": True, "batch_stats": False}``).

    Raises:
        ProblemError: no trainable leaves, a trainable leaf that is not a floating-point
            array (integer, complex, a function...), or a mask of the wrong structure.
        TypeError: a mask leaf that is not a bool.
    """

    def __init__(self, params: PyTree, trainable: PyTree | None = None) -> None:
        with_paths, self._treedef = jax.tree_util.tree_flatten_with_path(params)
        paths = [jax.tree_util.keystr(path) for path, _ in with_paths]
        leaves = [leaf for _, leaf in with_paths]
        self._mask = _mask_of(params, trainable, self._treedef)
        train = [
            _check_leaf(path, leaf)
            for path, leaf, m in zip(paths, leaves, self._mask, strict=True)
            if m
        ]
        if not train:
            raise ProblemError(
                "the model has no trainable parameters: params has no array leaves"
                + (" marked trainable" if trainable is not None else "")
                + ", so there is nothing to walk over."
            )
        self.frozen: list[Any] = [leaf for leaf, m in zip(leaves, self._mask, strict=True) if not m]
        # the trainable leaves' dtypes (θ takes their promotion; the adapter wants one)
        self.leaf_dtypes: list[str] = sorted({str(leaf.dtype) for leaf in train})
        self.theta0, self._unravel = ravel_pytree(train)
        sizes = [int(leaf.size) for leaf in train]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        # (start, leaf index), largest leaf first: the order :meth:`join` writes in place.
        self._writes = sorted(
            zip(starts, range(len(sizes)), strict=True), key=lambda w: -sizes[w[1]]
        )
        # the trainable leaves' shapes, in θ's order
        self.shapes: list[tuple[int, ...]] = [tuple(leaf.shape) for leaf in train]

    def assemble(self, theta: jax.Array, frozen: list[Any]) -> PyTree:
        """The full pytree from flat trainable θ and the frozen leaves (traceable under jit)."""
        return self._assemble_leaves(self._unravel(theta), frozen)

    def _assemble_leaves(self, train: list[jax.Array], frozen: list[Any]) -> PyTree:
        """The full pytree from the trainable leaves (in θ's order) and the frozen ones."""
        train_it, rest = iter(train), iter(frozen)
        return self._treedef.unflatten([next(train_it) if m else next(rest) for m in self._mask])

    def join(self, leaves: list[jax.Array], dtype: Any, in_place: bool) -> jax.Array:
        """One flat vector of ``dtype`` from arrays shaped as the trainable leaves (in θ's order;
        their gradients, say): the inverse of splitting θ (traceable under jit).

        Args:
            leaves: one array per trainable leaf, of that leaf's shape.
            dtype: the flat vector's dtype (θ's).
            in_place: write each part into a zero vector with ``dynamic_update_slice``,
                largest first, instead of one ``concatenate``. On XLA:CPU a concatenate (or a
                pad, which is what an update of a zero vector at one end becomes) fuses the
                cheap reductions that produce bias gradients and then re-evaluates them for
                every element of the P-long output, many times the floor on small data
                (measured: benchmarks/grad_join.py, docs/performance.md).
                An update loop visits only its own part, and the largest part (a kernel's
                gradient, a matmul's output) goes first, into the pad. On GPUs one
                concatenate is one kernel, so adapters use it there.

        Returns:
            The flat vector, θ's layout.
        """
        parts = [jnp.ravel(leaf).astype(dtype) for leaf in leaves]
        if not in_place:
            return jnp.concatenate(parts)
        flat = jnp.zeros(self.theta0.shape, dtype)
        for start, i in self._writes:
            flat = lax.dynamic_update_slice(flat, parts[i], (start,))
        return flat

    def value_and_grad(
        self, fun: Callable[..., jax.Array], in_place: bool
    ) -> Callable[..., tuple[jax.Array, jax.Array]]:
        """``(θ, frozen, *args) -> (fun(params, *args), its gradient in θ)``, where ``params`` is
        the pytree :meth:`assemble` builds: differentiated leaf by leaf, the gradient joined by
        :meth:`join` (``in_place`` as there), the value cast to θ's dtype.

        Args:
            fun: ``fun(params, *args)``, a scalar (traced).
            in_place: how :meth:`join` builds the flat gradient.
        """

        def value_and_grad(theta: jax.Array, frozen: list[Any], *args: Any) -> Any:
            def of_leaves(train: list[jax.Array]) -> jax.Array:
                value = fun(self._assemble_leaves(train, frozen), *args)
                return jnp.asarray(value, dtype=theta.dtype)

            value, grads = jax.value_and_grad(of_leaves)(self._unravel(theta))
            return value, self.join(grads, theta.dtype, in_place)

        return value_and_grad

    def flatten(self, params: PyTree) -> jax.Array:
        """The flat θ of the trainable leaves of ``params`` (a pytree like the original).

        Raises:
            ProblemError: if ``params`` does not have the original structure.
        """
        try:
            leaves = self._treedef.flatten_up_to(params)
        except (ValueError, TypeError) as err:
            raise ProblemError(
                f"flatten: params does not have the model's pytree structure: {err}"
            ) from err
        train = [jnp.asarray(leaf) for leaf, m in zip(leaves, self._mask, strict=True) if m]
        return self.join(train, self.theta0.dtype, in_place=False)


def _mask_of(params: PyTree, trainable: PyTree | None, treedef: Any) -> list[bool]:
    """One bool per leaf of ``params``: True where the leaf is trainable."""
    if trainable is None:
        return [True] * treedef.num_leaves
    try:
        full = jax.tree_util.tree_map(
            lambda m, sub: jax.tree_util.tree_map(lambda _: m, sub), trainable, params
        )
        mask = treedef.flatten_up_to(full)
    except (ValueError, TypeError) as err:
        raise ProblemError(
            "trainable must be a pytree of bools with the structure of params (or a prefix "
            f"of it, e.g. {{'params': True, 'batch_stats': False}}): {err}"
        ) from err
    for m in mask:
        if not isinstance(m, bool):
            raise TypeError(f"trainable must hold bools, got a {type(m).__name__}: {m!r}.")
    return mask


def _check_leaf(path: str, leaf: Any) -> jax.Array:
    """``leaf`` as a jax array, if it is a real floating-point array."""
    try:
        dtype = jnp.result_type(leaf)
    except TypeError as err:
        raise ProblemError(
            f"params{path} is a {type(leaf).__name__}, not an array: close over it in "
            "apply_fn, or mark it frozen with trainable=."
        ) from err
    if not jnp.issubdtype(dtype, jnp.floating):
        kind = "an integer" if jnp.issubdtype(dtype, jnp.integer) else f"a {dtype}"
        raise ProblemError(
            f"params{path} is {kind} array (dtype {dtype}); the walk needs floating-point "
            "parameters. Cast it (leaf.astype(jnp.float32)), or mark it frozen with trainable=."
        )
    return jnp.asarray(leaf)
