"""Load a framework adapter by name, at run time, with a clear error when it is missing.

The engine never imports a framework; the experiment layer (and users who pick a framework
by name, e.g. from a configuration file) call :func:`load_adapter`, which imports the
adapter package only when asked.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import NamedTuple


class _Adapter(NamedTuple):
    module: str
    framework: str
    extra: str


ADAPTERS: dict[str, _Adapter] = {
    "torch": _Adapter("manifoldwalk_torch", "PyTorch", "torch"),
    "jax": _Adapter("manifoldwalk_jax", "JAX", "jax"),
    "tensorflow": _Adapter("manifoldwalk_tf", "Keras / TensorFlow", "tensorflow"),
}
"""Adapter names accepted by :func:`load_adapter`: import package, framework, pip extra."""


def load_adapter(name: str) -> ModuleType:
    """Import the adapter package for a framework.

    Args:
        name: ``"torch"``, ``"jax"`` or ``"tensorflow"``.

    Returns:
        The adapter's module (``manifoldwalk_torch``, ``manifoldwalk_jax`` or
        ``manifoldwalk_tf``), whose ``from_model`` / ``from_apply`` builds a Problem.

    Raises:
        ValueError: ``name`` is not one of the valid names (they are listed).
        ImportError: the framework (or the adapter package) is not installed; the message
            names the extra to install, e.g. ``pip install manifoldwalk[torch]``.
    """
    try:
        adapter = ADAPTERS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown adapter {name!r}; choose one of {', '.join(repr(k) for k in ADAPTERS)}."
        ) from None
    hint = f"pip install manifoldwalk[{adapter.extra}]"
    try:
        return importlib.import_module(adapter.module)
    except ImportError as err:
        if hint in str(err):
            raise
        raise ImportError(
            f"the {name!r} adapter ({adapter.module}) needs {adapter.framework}, which could "
            f"not be imported ({err}): {hint}"
        ) from err
