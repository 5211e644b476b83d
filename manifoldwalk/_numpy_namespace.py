"""numpy's array-API namespace with fast paths for 0-d operands.

The walk step, written once for every backend, spends most of an eager numpy step on scalars
(step sizes, counters, flags): ``np.where`` and ``np.full_like`` on 0-d operands cost tens of
times what numpy-scalar arithmetic costs, so on small problems the scalar selects cost more
than the problem's own gradient (measured: docs/performance.md, "The eager step").
:data:`NUMPY` answers those calls on numpy scalars (and 0-d arrays) in Python, with numpy's
values and dtypes, and hands everything else to ``array_api_compat.numpy``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as _base
import numpy as np

_PY_SCALARS = (bool, int, float)
_SCALARS = (np.generic, *_PY_SCALARS)


def _scalar(x: Any) -> Any:
    """``x`` as a numpy or Python scalar when it is one or a 0-d array, else None."""
    if isinstance(x, _SCALARS):
        return x
    if type(x) is np.ndarray and x.ndim == 0:
        return x[()]
    return None


_COMMON_TYPES: dict[tuple[type, type], type | None] = {}


def _common_type(a: Any, b: Any) -> type | None:
    """The numpy scalar type of ``where(c, a, b)`` for scalars ``a`` and ``b``, where it can be
    read off their types without numpy's promotion (the same type, or a numpy scalar with a
    Python scalar of no wider kind), else None (memoised by the pair of types)."""
    key = (type(a), type(b))
    try:
        return _COMMON_TYPES[key]
    except KeyError:
        pass
    ta, tb = key
    if issubclass(tb, np.generic) and ta is not tb:  # put the numpy scalar first
        ta, tb = tb, ta
    kinds = (np.bool_, np.integer, np.floating)
    kind_a = next((i for i, k in enumerate(kinds) if issubclass(ta, k)), None)
    if kind_a is None:
        common = None
    elif ta is tb:
        common = ta
    else:
        common = ta if tb in _PY_SCALARS and _PY_SCALARS.index(tb) <= kind_a else None
    _COMMON_TYPES[key] = common
    return common


class NumpyNamespace:
    """``array_api_compat.numpy`` with 0-d fast paths for ``where``, ``astype``, ``reshape``
    and the ``*_like`` constructors, and ``matmul`` of two arrays of one dtype without the
    compatibility wrapper. Every other name is ``array_api_compat.numpy``'s."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(_base, name)
        setattr(self, name, value)  # later lookups skip __getattr__
        return value

    def where(self, condition: Any, x1: Any, x2: Any) -> Any:
        """``where`` (array API); a numpy scalar for 0-d operands."""
        c, a, b = _scalar(condition), _scalar(x1), _scalar(x2)
        if c is not None and a is not None and b is not None:
            t = _common_type(a, b)
            if t is not None:
                return t(a if c else b)
        return _base.where(condition, x1, x2)

    def astype(self, x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
        """``astype`` (array API); a numpy scalar for a 0-d ``x``."""
        s = _scalar(x)
        if s is not None and device is None:
            return np.dtype(dtype).type(s)
        return _base.astype(x, dtype, copy=copy, device=device)

    def zeros_like(self, x: Any, /, **kwargs: Any) -> Any:
        """``zeros_like`` (array API); a numpy scalar for a 0-d ``x``."""
        return self.full_like(x, 0, **kwargs)

    def ones_like(self, x: Any, /, **kwargs: Any) -> Any:
        """``ones_like`` (array API); a numpy scalar for a 0-d ``x``."""
        return self.full_like(x, 1, **kwargs)

    def full_like(self, x: Any, /, fill_value: Any, **kwargs: Any) -> Any:
        """``full_like`` (array API); a numpy scalar for a 0-d ``x``."""
        s = _scalar(x)
        if s is not None and isinstance(s, np.generic) and not kwargs:
            return type(s)(fill_value)
        return _base.full_like(x, fill_value, **kwargs)

    def reshape(self, x: Any, /, shape: tuple[int, ...], **kwargs: Any) -> Any:
        """``reshape`` (array API); a numpy scalar, as it is, reshaped to ``()``."""
        if shape == () and isinstance(x, np.generic) and not kwargs:
            return x
        return _base.reshape(x, shape, **kwargs)

    def matmul(self, x1: Any, x2: Any, /) -> Any:
        """``matmul`` (array API); numpy's own where both arrays have one dtype."""
        if type(x1) is np.ndarray and type(x2) is np.ndarray and x1.dtype == x2.dtype:
            return np.matmul(x1, x2)
        return _base.matmul(x1, x2)


NUMPY = NumpyNamespace()
"""The namespace :func:`manifoldwalk._array.namespace` gives numpy arrays and scalars."""
