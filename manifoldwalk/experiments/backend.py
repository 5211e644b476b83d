"""Where the experiment layer meets a framework: the paper backend, loaded by name.

The frameworks are reached only through a *paper backend*: the ``paper`` subpackage of an
adapter (``manifoldwalk_torch.paper`` and its JAX / Keras twins), imported by name at run time,
so that ``import manifoldwalk`` stays light and a missing framework is one clear error.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["BACKENDS", "load_backend"]

BACKENDS = ("torch", "jax", "tensorflow")
"""Backend names accepted by :func:`load_backend` and ``--backend``."""


def load_backend(name: str) -> ModuleType:
    """Import the experiment backend of a framework (``<adapter>.experiment``).

    Args:
        name: ``"torch"``, ``"jax"`` or ``"tensorflow"``.

    Returns:
        The module with ``configure``, ``build_net``, ``train``, ``make_problem``,
        ``held_out`` and ``from_numpy``.

    Raises:
        ValueError: For an unknown name (the valid ones are listed).
        ImportError: When the framework is missing (the message names the extra to install).
    """
    from manifoldwalk._load_adapter import load_adapter

    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    package = load_adapter(name)
    return importlib.import_module(f"{package.__name__}.experiment")
