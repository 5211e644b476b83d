"""Small argument checks shared by the engine's entry points."""

from __future__ import annotations

from typing import Any

import numpy as np

LARGEST_COUNT = 2**31 - 1
"""The largest step count a walk keeps (a 32-bit count: JAX's default integer). Larger budgets,
patiences and intervals mean "never" within any walk and are held at this, so that a compiled
loop can take them as counts (a Python int beyond it overflowed there)."""


def is_count(value: Any) -> bool:
    """Whether ``value`` is a positive integer (a Python or numpy int; not a bool, which
    Python counts as an int, nor a float such as ``1e3``)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1
