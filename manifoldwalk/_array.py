"""Array-API helpers shared by the engine.

Every function here works on numpy, torch and jax arrays alike through
`array-api-compat`, never copies an array to the host (except :func:`to_host`
and :func:`to_numpy`, which exist to do so), and never branches in Python on an
array's value, so the walk step stays a pure, traceable function. The vector
helpers take the namespace ``xp`` as their first argument: looking it up costs
more than the arithmetic on small problems, so callers look it up once.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import array_api_compat.numpy
import numpy as np

from manifoldwalk._numpy_namespace import NUMPY

Array = Any
"""Any array-API array (numpy.ndarray, torch.Tensor, jax.Array)."""


_EXTRA_NAMESPACES: list[tuple[type | tuple[type, ...], Any]] = []
"""``(array types, namespace)`` pairs registered by adapters for arrays array-api-compat lacks."""

_BY_TYPE: dict[type, Any] = {}
"""The namespace :func:`namespace` found for one array, by its type."""


def register_namespace(types: type | tuple[type, ...], xp: Any) -> None:
    """Teach :func:`namespace` an array type that ``array-api-compat`` does not know.

    Adapters call this (the TensorFlow adapter registers ``tf.Tensor``); the core itself never
    imports a framework. Types, not a predicate, so that tracers (``torch.compile``) can
    follow the lookup.

    Args:
        types: the array class (or classes) ``xp`` handles, for an ``isinstance`` check.
        xp: an object with the array-API functions the engine uses on those arrays. Registering
            the same ``types`` again replaces the earlier namespace.
    """
    _EXTRA_NAMESPACES[:] = [(known, ns) for known, ns in _EXTRA_NAMESPACES if known != types]
    _EXTRA_NAMESPACES.append((types, xp))
    _BY_TYPE.clear()


def namespace(*arrays: Array) -> Any:
    """Return the array-API namespace of ``arrays`` (e.g. ``array_api_compat.torch``).

    numpy arrays and scalars get :data:`~manifoldwalk._numpy_namespace.NUMPY` (0-d fast
    paths). The answer for one array is remembered by its type: the lookup cost more than
    the arithmetic of a small problem's step.
    """
    if len(arrays) == 1:
        xp = _BY_TYPE.get(type(arrays[0]))
        if xp is not None:
            return xp
    for types, xp in _EXTRA_NAMESPACES:
        if isinstance(arrays[0], types):
            return xp
    xp = array_api_compat.array_namespace(*arrays)
    if xp is array_api_compat.numpy:
        xp = NUMPY
    if len(arrays) == 1:
        _BY_TYPE[type(arrays[0])] = xp
    return xp


def device_of(x: Array) -> Any:
    """Return the device of ``x``, or None where it has none (a traced jax value)."""
    try:
        return array_api_compat.device(x)
    except Exception:  # jax tracers under jit have no committed device
        return None


def scalar_like(value: float | int | bool, like: Array, dtype: Any = None) -> Array:
    """A 0-d array holding ``value`` with the namespace and device of ``like``."""
    xp = namespace(like)
    dtype = like.dtype if dtype is None else dtype
    dev = device_of(like)
    if dev is None:
        return xp.asarray(value, dtype=dtype)
    return xp.asarray(value, dtype=dtype, device=dev)


def default_dtype(xp: Any, kind: str) -> Any:
    """The namespace's default dtype of a kind (``"integral"``, ``"real floating"``).

    JAX without ``jax_enable_x64`` defaults to 32-bit types; asking it for int64 would
    warn and truncate.
    """
    return xp.__array_namespace_info__().default_dtypes()[kind]


def zero_count(like: Array) -> Array:
    """A 0-d integer zero (a step counter) in ``like``'s namespace and device."""
    xp = namespace(like)
    return scalar_like(0, like, dtype=default_dtype(xp, "integral"))


def dot(xp: Any, a: Array, b: Array) -> Array:
    """Inner product of two 1-D arrays, as a 0-d array (one fused pass, no temporary)."""
    return xp.matmul(a, b)


def norm(xp: Any, a: Array) -> Array:
    """Euclidean norm of a 1-D array, as a 0-d array."""
    return xp.sqrt(xp.matmul(a, a))


def inverse(xp: Any, x: Array) -> Array:
    """``1 / x`` for a 0-d ``x``, or 0 where ``x == 0`` (scale vectors by it: one pass, not two)."""
    nonzero = x != 0
    return xp.where(nonzero, 1.0 / xp.where(nonzero, x, 1.0), 0.0)


def safe_divide(xp: Any, num: Array, den: Array) -> Array:
    """``num / den`` where ``den != 0``, else 0; never produces inf or NaN from ``den == 0``."""
    nonzero = den != 0
    return xp.where(nonzero, num / xp.where(nonzero, den, 1.0), 0.0)


def reject(xp: Any, v: Array, g: Array, gg: Array, vg: Array | None = None) -> Array:
    """The rejection of ``v`` from ``g``: ``v - (v·g / g·g) g`` (``gg`` is ``g·g``; ``vg``,
    where the caller has it, ``v·g``)."""
    vg = dot(xp, v, g) if vg is None else vg
    return v - safe_divide(xp, vg, gg) * g


def angle_from_rejection(xp: Any, rejection_norm: Array, uu: Array, uv: Array) -> Array:
    """The angle in radians between ``u`` and ``v`` from the norm of ``v``'s rejection from
    ``u``, ``u·u`` and ``u·v``: ``atan2(‖r‖·‖u‖, u·v)`` (‖r‖‖u‖ = ‖u‖‖v‖ sin, u·v = ‖u‖‖v‖ cos).

    The rejection is formed as a difference of vectors, so the sine keeps full precision
    near 0 and near π, where ``acos`` of the cosine loses half the digits; a caller that has
    the rejection already (the KKT residual) gets the angle for no further pass over θ.
    0 where ``u`` or ``v`` is zero (atan2(0, 0)).
    """
    return xp.atan2(rejection_norm * xp.sqrt(uu), uv)


def angle_between(xp: Any, u: Array, v: Array) -> Array:
    """Angle in radians between two 1-D arrays, accurate near 0 and near π; 0 where either
    is zero. See :func:`angle_from_rejection` (about half the passes over the vectors of
    ``2·atan2(‖û − v̂‖, ‖û + v̂‖)``, and as accurate: ``tests/test_pieces.py``)."""
    uu, uv = dot(xp, u, u), dot(xp, u, v)
    return angle_from_rejection(xp, norm(xp, reject(xp, v, u, uu, uv)), uu, uv)


def to_host(*scalars: Array) -> list[float]:
    """Copy several 0-d arrays to the host as floats with a single synchronisation.

    On a device they are packed into one array in the first floating dtype among them (θ's
    precision; counts stay exact below 2**24) and copied at once; numpy values and CPU
    tensors are read one by one (no copy to wait for). The eager driver calls this, or
    :func:`host_list` on a vector packed inside its compiled step, once per step; they are
    the only places the engine waits for the device.
    """
    first = scalars[0]
    # Already on the host: read one by one, which is cheaper than packing a dozen small CPU
    # tensors into one array (measured:
    # docs/measurements/performance_history_2026-11-27_to_2026-12-03.md, "The eager step").
    if array_api_compat.is_numpy_array(first) or (
        array_api_compat.is_torch_array(first) and first.device.type == "cpu"
    ):
        return [float(s) for s in scalars]
    return host_list(pack_scalars(*scalars))


def pack_scalars(*scalars: Array) -> Array:
    """Several 0-d arrays as one 1-D array on their device, in the first floating dtype among
    them (traceable: a compiled step packs its values so that the host copies one array)."""
    xp = namespace(*scalars)
    floats = [s.dtype for s in scalars if xp.isdtype(s.dtype, "real floating")]
    dtype = floats[0] if floats else default_dtype(xp, "real floating")
    return xp.stack([xp.astype(s, dtype) for s in scalars])


def host_list(packed: Array) -> list[float]:
    """A 1-D array copied to the host as a list of floats (one synchronisation)."""
    if array_api_compat.is_torch_array(packed):
        return packed.tolist()
    return np.asarray(packed).tolist()


def copy_array(x: Array) -> Array:
    """A copy of ``x`` in its own namespace and device, in its own memory (numpy scalars, which
    cannot change, as they are): what a caller keeps of an array it hands to a function that
    consumes its argument's buffers (a donating ``compile_step``)."""
    if not hasattr(x, "shape") or isinstance(x, np.generic):
        return x
    return namespace(x).asarray(x, copy=True)


def to_numpy(x: Array) -> Any:
    """Copy an array to a host numpy array (for saving and reporting only)."""
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


DEG = 180.0 / math.pi
"""Degrees per radian."""


def to_like(xp: Any, value: Any, like: Array, dtype: Any = None) -> Array:
    """``value`` (any array) copied into ``like``'s namespace and device, in ``dtype`` (None:
    bool stays bool, other non-floats become the namespace's default integer)."""
    host = to_numpy(value)
    if dtype is None:
        dtype = xp.bool if host.dtype == np.dtype(bool) else default_dtype(xp, "integral")
    dev = device_of(like)
    return (
        xp.asarray(host, dtype=dtype) if dev is None else xp.asarray(host, dtype=dtype, device=dev)
    )
