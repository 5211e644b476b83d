"""``from_loss``: a JAX loss of a parameter pytree and a batch of any structure as a Problem.

Where :func:`~manifoldwalk_jax.from_apply` takes ``apply_fn(params, x)``, ``loss_fn(outputs,
targets)`` and ``(x, y)`` data, :func:`from_loss` takes ``loss_fn(params, batch)`` and batches of
any nesting of dicts, tuples and lists (a model of several inputs, a dict of token ids, a model
that computes its own loss). Both take the same path
(:class:`~manifoldwalk_jax._base.JaxBase`): θ unflattened into the pytree, the loss of each
batch differentiated leaf by leaf, the example-weighted mean over the batches, jitted.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from manifoldwalk._batches import Batches, BatchSizeFn, describe_structure
from manifoldwalk.adapter_api import ProblemError, check_callable, loss_entry
from manifoldwalk_jax._base import JaxBase
from manifoldwalk_jax._device_data import DeviceBatches, split, split_hashable, to_device
from manifoldwalk_jax._flat import PyTree
from manifoldwalk_jax._inputs import _first_line, _to_float64
from manifoldwalk_jax._reg import RegFn

BatchLoss = Callable[[PyTree, Any], jax.Array]
"""``loss_fn(params, batch) -> scalar``: the batch's mean loss (a pure JAX function)."""

MetricFn = Callable[[PyTree, Any], Any]
"""``metric(params, batch) -> scalar``: the batch's mean of a metric (a pure JAX function)."""

_EVAL_CACHE = 8
"""How many compiled evaluations (one per set of metric functions) a problem keeps."""


class JaxLossProblem(JaxBase):
    """A JAX loss of a parameter pytree and a batch of any structure as a Problem on flat θ.

    Build it with :func:`from_loss`, which documents the arguments. Its members are those of
    :class:`~manifoldwalk_jax.JaxProblem` (the Problem protocol, ``theta0``, ``n_params``,
    ``unflatten``, ``flatten``, ``assign``, ``compile_step``, ``compile_loop``,
    ``as_float64``), except :meth:`evaluate`, which takes batches and metric functions of the
    parameters and a batch. ``manifoldwalk_jax.walk_batch`` does not take it.

    Attributes:
        streamed: True when the batches are moved to the device as they are used (data given
            as a re-iterable other than a tuple or list); False when they are held there.
    """

    def __init__(
        self,
        loss_fn: BatchLoss,
        params: PyTree,
        data: Any,
        *,
        reg: str | RegFn = "l2",
        batch_size: BatchSizeFn | None = None,
        trainable: PyTree | None = None,
    ) -> None:
        _check_order(loss_fn, params)
        self._loss_fn = loss_fn
        self._batch_size_fn = batch_size
        self._float64_args = (loss_fn, params, data, reg, batch_size, trainable)
        self._init_params(params, trainable, reg)
        batches = Batches(data, batch_size)
        self.streamed = not (batches.single or isinstance(data, tuple | list))
        self._eval_fns: dict[tuple[Any, ...], Callable[..., Any]] = {}
        if self.streamed:
            spec, arrays = split_hashable(batches.first())
            self._check_first_batch(spec.rebuild(to_device(arrays, self._on_params, self.dtype)))
            self._set_stream(loss_fn, batches)
        else:
            held = DeviceBatches.gather(batches.with_sizes(), self._on_params, self.dtype)
            self._check_first_batch(held.first())
            self._set_batches(loss_fn, held)

    def evaluate(  # type: ignore[override]
        self,
        theta: jax.Array,
        data: Any,
        *,
        metrics: Mapping[str, MetricFn] | None = None,
        batch_size: BatchSizeFn | None = None,
    ) -> dict[str, float]:
        """The loss and metrics of θ on held-out batches: example-weighted means over them.

        Meant for the walk's metric callables, e.g.
        ``metrics={"test_loss": lambda t: problem.evaluate(t, test_batches)["loss"]}``.
        Batches are read as the training data (one batch, or a re-iterable of batches) and
        moved to the device one at a time (floating arrays cast to θ's dtype); each runs
        through one jitted function of θ and the batch (compiled once per batch structure and
        set of metric functions: pass the same function objects at every call). One host
        synchronisation per call.

        Args:
            theta: flat θ (any array of length ``n_params``).
            data: one held-out batch or a re-iterable of them, structured as ``loss_fn``
                takes.
            metrics: ``{name: metric(params, batch)}``, each a pure JAX function returning the
                batch's *mean* of the metric as a scalar (e.g. accuracy:
                ``lambda p, b: jnp.mean(jnp.argmax(apply(p, b["x"]), -1) == b["y"])``).
            batch_size: ``batch -> number of examples``, the weights (None: the problem's own,
                by default the first array's leading dimension).

        Returns:
            ``{"loss": float, name: float, ...}``: ``loss_fn`` and each metric averaged over
            the examples.

        Raises:
            ValueError: a metric named ``"loss"``.
            TypeError: a metric that is not callable, or data as :func:`from_loss` refuses it.
            ProblemError: a metric that does not return a scalar (named), or no batches.
        """
        metrics = dict(metrics or {})
        if "loss" in metrics:
            raise ValueError('evaluate: "loss" is always reported; name the metric otherwise.')
        for name, fn in metrics.items():
            check_callable(f"metrics[{name!r}]", fn)
        theta = self._eval_theta(theta)
        self._check_shape(theta.shape)
        run = self._eval_fn(("loss", *metrics), (self._loss_fn, *metrics.values()))
        sizes = self._batch_size_fn if batch_size is None else batch_size
        total, count = None, 0
        for batch, n in Batches(data, sizes).with_sizes():
            spec, arrays = split_hashable(batch)
            row = run(
                theta, self._eval_frozen, to_device(arrays, self._on_params, self.dtype), spec=spec
            )
            total = row * n if total is None else total + row * n
            count += n
        values = np.asarray(total, dtype=np.float64) / count
        return dict(zip(["loss", *metrics], values.tolist(), strict=True))

    # --- internals ------------------------------------------------------------------------

    def _float64_copy(self) -> JaxLossProblem:
        """The parameters' floating leaves cast to float64 (the batches' floating arrays
        follow θ's dtype), with the same loss, data, regulariser, weights and mask."""
        loss_fn, params, data, reg, batch_size, trainable = self._float64_args
        return JaxLossProblem(
            loss_fn,
            jax.tree_util.tree_map(_to_float64, params),
            data,
            reg=reg,
            batch_size=batch_size,
            trainable=trainable,
        )

    def _eval_fn(self, names: tuple[str, ...], fns: tuple[Any, ...]) -> Callable[..., Any]:
        """The jitted ``(θ, frozen, arrays, *, spec) -> [loss, metric, ...]`` for these
        functions (kept for later calls with the same function objects)."""
        key = (names, fns)
        if key not in self._eval_fns:
            if len(self._eval_fns) >= _EVAL_CACHE:
                self._eval_fns.pop(next(iter(self._eval_fns)))
            values = functools.partial(self._eval_values, names=names, fns=fns)
            self._eval_fns[key] = jax.jit(values, static_argnames="spec")
        return self._eval_fns[key]

    def _eval_values(
        self,
        theta: jax.Array,
        frozen: list[Any],
        arrays: list[Any],
        *,
        spec: Any,
        names: tuple[str, ...],
        fns: tuple[Any, ...],
    ) -> jax.Array:
        """``[loss, metric, ...]`` of one batch at θ, in θ's dtype (traced)."""
        params = self._flat.assemble(theta, frozen)
        batch = spec.rebuild(arrays)
        row = []
        for name, fn in zip(names, fns, strict=True):
            value = fn(params, batch)
            shape = getattr(value, "shape", ())
            if not isinstance(value, int | float | jax.Array | np.ndarray) or shape != ():
                raise ProblemError(
                    f"evaluate: metric {name!r} must return the batch's mean as a scalar, got "
                    f"{describe_structure(value)}."
                )
            row.append(jnp.asarray(value).astype(theta.dtype))
        return jnp.stack(row)

    def _check_first_batch(self, batch: Any) -> None:
        """Trace ``loss_fn`` on the first batch at θ0 (shapes only; nothing runs), so that a
        loss the walk cannot use is refused here, naming what it returned.

        Raises:
            ProblemError: ``loss_fn`` fails (JAX's error as the cause), or returns something
                other than a real floating scalar.
        """
        spec, arrays = split(batch)  # strings and numbers stay constants, as in the walk
        try:
            out = jax.eval_shape(
                lambda p, a: self._loss_fn(p, spec.rebuild(a)), self.unflatten(self.theta0), arrays
            )
        except Exception as err:
            raise ProblemError(
                f"loss_fn(params, batch) fails on the first batch ({describe_structure(batch)}): "
                f"{_first_line(err)}. loss_fn takes the parameter pytree first, then one batch "
                "as the data holds it, and returns the batch's mean loss as a scalar."
            ) from err
        if not isinstance(out, jax.ShapeDtypeStruct):
            found = loss_entry(out, _is_scalar_loss)
            hint = "" if found is None else f" It holds the loss as {found[0]}: return that."
            raise ProblemError(
                "loss_fn(params, batch) must return the batch's mean loss as a scalar, got "
                f"{_describe_shapes(out)} on the first batch.{hint}"
            )
        if out.shape != ():
            raise ProblemError(
                "loss_fn(params, batch) must return the batch's mean loss as a scalar, got an "
                f"array of shape {out.shape} on the first batch; reduce it, e.g. with .mean()."
            )
        if not jnp.issubdtype(out.dtype, jnp.floating):
            kind = "complex" if jnp.issubdtype(out.dtype, jnp.complexfloating) else "integer"
            kind = "boolean" if out.dtype == jnp.bool_ else kind
            article = "an" if kind == "integer" else "a"
            raise ProblemError(
                f"loss_fn(params, batch) returned {article} {kind} scalar (dtype {out.dtype}) on the "
                "first batch; the walk needs a real floating-point loss: compute it in floats "
                "(no rounding to integers, no complex parts)."
            )


def _is_scalar_loss(out: Any) -> bool:
    """Whether a traced output is a real floating scalar, the loss the walk needs."""
    return (
        isinstance(out, jax.ShapeDtypeStruct)
        and out.shape == ()
        and jnp.issubdtype(out.dtype, jnp.floating)
    )


def _describe_shapes(out: Any) -> str:
    """What ``jax.eval_shape`` returned, in words."""
    leaves = jax.tree_util.tree_leaves(out)
    if not leaves:
        return f"a {type(out).__name__} without arrays"
    shapes = ", ".join(str(tuple(leaf.shape)) for leaf in leaves[:4])
    return f"a {type(out).__name__} of arrays of shapes {shapes}"


def _check_order(loss_fn: Any, params: Any) -> None:
    """Raise where the arguments are plainly out of order: ``from_loss(loss_fn, params, data)``.

    Raises:
        TypeError: ``loss_fn`` not callable, or ``params`` a function.
    """
    is_function = inspect.isroutine(params) or isinstance(params, functools.partial)
    if is_function and not callable(loss_fn):
        raise TypeError(
            f"from_loss got loss_fn=a {type(loss_fn).__name__} and params=a function: the "
            "arguments are swapped. The order is from_loss(loss_fn, params, data)."
        )
    check_callable("loss_fn", loss_fn)
    if is_function:
        raise TypeError(
            "params is a function; from_loss(loss_fn, params, data) takes the parameter pytree "
            "as params."
        )
    if len(_positional(loss_fn)) == 1:
        raise TypeError(
            "loss_fn takes one argument; from_loss calls loss_fn(params, batch). "
            "For a loss of the parameters alone, ignore the batch: lambda p, _: loss(p)."
        )


def _positional(fn: Any) -> list[str]:
    """The names of ``fn``'s positional parameters ([] where it has ``*args`` or no
    signature to read)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def from_loss(
    loss_fn: BatchLoss,
    params: PyTree,
    data: Any,
    *,
    reg: str | RegFn = "l2",
    batch_size: BatchSizeFn | None = None,
    trainable: PyTree | None = None,
) -> JaxLossProblem:
    """Wrap a JAX loss of a parameter pytree and a batch of any structure as a Problem.

    Example (a model of a dict batch)::

        def loss_fn(params, batch):
            logits = apply(params, batch["tokens"], batch["mask"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()

        problem = manifoldwalk_jax.from_loss(loss_fn, params, batches)
        result = manifoldwalk.walk(problem, problem.theta0)

    Args:
        loss_fn: ``loss_fn(params, batch)``, a pure JAX function returning the batch's mean
            loss as a real floating scalar. It is traced once on the first batch while
            building (shapes only; nothing runs) and refused with a ProblemError if it fails
            there (JAX's error as the cause) or returns anything else.
        params: the parameter pytree; its trainable leaves, flattened, are θ, as for
            :func:`~manifoldwalk_jax.from_apply` (one floating dtype, float32 or float64; for
            float64 enable x64 yourself).
        data: one batch, or a re-iterable of batches. A batch is any nesting of dicts (other
            mappings, e.g. Hugging Face's ``BatchEncoding``, are read as dicts), tuples,
            lists and namedtuples of numpy or JAX arrays and other values (strings, Python
            numbers: passed to ``loss_fn`` as constants). A dict, a namedtuple, an array, or a
            tuple or list with an array among its items is one batch; another tuple or list
            is a list of batches; a generator object is refused (the loss is evaluated many
            times). Floating arrays are cast to θ's dtype, integer and boolean ones kept.
            One batch or a tuple or list of batches is put on the parameters' device once,
            batches of equal structure, shapes and dtypes stacked and scanned with
            ``lax.scan`` inside one jitted function (compiled once; each differing batch, such
            as a short last one, adds one more body), so the compiled drivers
            (``driver=Chunked(K)``) and ``compile_step`` trace it whole. Any other
            re-iterable (a data loader, a ``tf.data.Dataset``, a function returning a fresh
            iterable) is streamed: each batch moved to the device as it is used and run
            through a jitted per-batch function; then the walk's step is not compiled whole
            and ``driver=Chunked(K)`` is refused.
        reg: ``"l2"``, ``"l2-weights"`` or a differentiable function of the flat θ, as for
            :func:`~manifoldwalk_jax.from_apply`.
        batch_size: ``batch -> number of examples``, each batch's weight: the full-batch loss
            is ``Σ_b n_b·L_b / Σ_b n_b``. None: the leading dimension of the batch's first
            array (dicts in insertion order, depth first); give it when that array is not one
            row per example.
        trainable: the frozen-parameter mask, as for :func:`~manifoldwalk_jax.from_apply`.

    Returns:
        A :class:`JaxLossProblem`; walk it with ``manifoldwalk.walk(problem, problem.theta0)``.

    Raises:
        TypeError: ``loss_fn`` not callable or taking one argument, ``params`` a function
            (arguments swapped), data that is no batch or a one-shot iterator, a
            ``batch_size`` that is not callable; the parameter errors of
            :func:`~manifoldwalk_jax.from_apply`.
        ProblemError: empty data, a batch without an array when there are several (give
            ``batch_size``), a streamed batch holding a value that is neither an array nor
            hashable, or a ``loss_fn`` that fails on the first batch or returns anything but
            a real floating scalar; the parameter errors of
            :func:`~manifoldwalk_jax.from_apply`.
        ValueError: an unknown ``reg`` name.
    """
    return JaxLossProblem(
        loss_fn, params, data, reg=reg, batch_size=batch_size, trainable=trainable
    )
