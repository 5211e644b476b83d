"""Flattening a parameter pytree into one flat θ and back, with an optional trainable mask."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from manifoldwalk.problem import ProblemError

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
        self.theta0, self._unravel = ravel_pytree(train)
        # 1 where θ's entry belongs to a leaf of rank ≥ 2 (a kernel), else 0.
        self.weight_mask = ravel_pytree(
            [jnp.full(leaf.shape, leaf.ndim >= 2, self.theta0.dtype) for leaf in train]
        )[0]

    def assemble(self, theta: jax.Array, frozen: list[Any]) -> PyTree:
        """The full pytree from flat trainable θ and the frozen leaves (traceable under jit)."""
        train = iter(self._unravel(theta))
        rest = iter(frozen)
        return self._treedef.unflatten([next(train) if m else next(rest) for m in self._mask])

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
        parts = [
            jnp.ravel(jnp.asarray(leaf)).astype(self.theta0.dtype)
            for leaf, m in zip(leaves, self._mask, strict=True)
            if m
        ]
        return jnp.concatenate(parts)


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
