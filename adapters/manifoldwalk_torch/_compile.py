"""The walk step compiled with ``torch.compile`` (``from_model(..., compile=...)``).

Eagerly, every walk step is one autograd forward/backward plus about fifteen separate passes
over θ (dot products, the rejection from ∇L, the update), each a kernel launch and a fresh
temporary. Compiled, the whole step (the loss and gradient through :mod:`torch.func`, the
engine's vector algebra and the ``where`` selections) is one graph: Inductor fuses the vector
passes into a few loops on the CPU and a few kernels on a GPU, and the ``"reduce-overhead"``
mode replays it as a CUDA graph, with no launch overhead and no host synchronisation inside
the step. Compiling costs tens of seconds once per problem (cached for later walks of the same
problem), so it pays off on walks of thousands of steps.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

import torch

from manifoldwalk.adapter_api import Carry, DeviceLoop, ProblemError, put_by_mask

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""The ``torch.compile`` modes ``from_model(compile=...)`` accepts (``True`` is ``"default"``)."""


def check_compile(compile: bool | str) -> str | None:
    """The ``torch.compile`` mode asked for, or None for an eager step.

    Raises:
        ValueError: ``compile`` is neither a bool nor one of :data:`COMPILE_MODES`.
    """
    if compile is False or compile is None:
        return None
    if compile is True:
        return "default"
    if isinstance(compile, str) and compile in COMPILE_MODES:
        return compile
    raise ValueError(
        f"compile must be False, True or one of {', '.join(COMPILE_MODES)}; got {compile!r}."
    )


def functional_loss_and_grad(
    batch_loss: Callable[[torch.Tensor, Any], torch.Tensor],
    batches: list[tuple[Any, int]],
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``θ ↦ (L, ∇L)`` through :func:`torch.func.grad_and_value`, which Dynamo can trace.

    Args:
        batch_loss: ``(θ, batch) ↦`` the mean loss over one batch.
        batches: the training data's batches with their numbers of examples, ``(batch, n_b)``
            (fixed tensors; the mean is weighted by ``n_b``).

    Returns:
        The function; its gradient equals autograd's on the same graph.
    """
    n = sum(m for _, m in batches)

    def full_loss(theta: torch.Tensor) -> torch.Tensor:
        if len(batches) == 1:
            return batch_loss(theta, batches[0][0])
        return sum(batch_loss(theta, batch) * (m / n) for batch, m in batches)

    grad_and_value = torch.func.grad_and_value(full_loss)

    def loss_and_grad(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        grad, loss = grad_and_value(theta)
        return loss, grad

    return loss_and_grad


def compiled(step: Callable[[Any], Any], mode: str, around: Callable[[], Any]) -> Callable:
    """``step`` compiled whole (``fullgraph=True``, static shapes) in ``mode``.

    Args:
        step: the engine's pure step ``WalkState -> WalkState``.
        mode: a ``torch.compile`` mode.
        around: a context-manager factory entered around every call (the model's eval mode,
            which the compiled graph is specialised on).

    Returns:
        The compiled step; its first call traces and compiles.
    """
    fast = torch.compile(_own_code(step), fullgraph=True, dynamic=False, mode=mode)
    graphed = mode in ("reduce-overhead", "max-autotune")

    def run(state: Any) -> Any:
        with around(), warnings.catch_warnings():
            # array-api-compat's namespace lookup is lru_cached; Dynamo traces through the
            # cache and says so once per lookup site, which is harmless here.
            warnings.filterwarnings("ignore", message=".*functools.lru_cache.*")
            try:
                if not graphed:
                    return fast(state)
                # A CUDA graph writes every replay's outputs into the same buffers, but the
                # walk keeps the last on-level state while it tries the next: copy the outputs
                # out (a few vectors, cheap next to the graph) and mark each replay as a new
                # step.
                torch.compiler.cudagraph_mark_step_begin()
                return _map(torch.clone, fast(state))
            except (torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError) as err:
                raise untraceable(err) from err

    return run


def untraceable(err: Exception) -> ProblemError:
    """The error for a step ``torch.compile`` cannot trace whole (a graph break, or a guard
    on a tensor's value).

    Args:
        err: Dynamo's ``Unsupported`` or ``UserError``.

    Returns:
        A ProblemError saying what to change, with Dynamo's first line.
    """
    line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ProblemError(
        "compile=True: torch.compile cannot trace the walk step whole (fullgraph=True): "
        f"{line}. The model and the loss (from_loss's loss_fn(model, batch) included) must run "
        "without graph breaks: no .item(), .tolist() or Python branches on tensor values, no "
        "calls Dynamo cannot follow. Build the problem with compile=False to walk eagerly."
    )


MAX_GRAPH_STEPS = 4
"""The most walk steps one compiled chunk graph unrolls when ``steps_per_iteration`` is 1.

Compilation time grows faster than the steps in the graph (tens of seconds for 4 steps of
MNIST-FF on a CPU, minutes for 8; measured:
docs/measurements/performance_history_2026-11-27_to_2026-12-03.md), so a longer chunk
calls a smaller graph several times instead."""


def graph_steps(k: int, m: int) -> int:
    """The steps one compiled chunk graph holds for K steps per sync and M per iteration.

    M if M > 1 (the graph then runs ⌈K/M⌉ times, steps past K masked); else K if K ≤
    :data:`MAX_GRAPH_STEPS`, else the largest divisor of K that is at most that (so that no
    step is computed and masked away).

    Args:
        k: K, the steps per host synchronisation (≥ 1).
        m: M, ``steps_per_iteration`` (≥ 1).

    Returns:
        The steps per graph, between 1 and max(K, M).
    """
    if m > 1:
        return m
    return max(d for d in range(1, min(k, MAX_GRAPH_STEPS) + 1) if k % d == 0)


def chunk_runner(loop: DeviceLoop, mode: str | None, around: Callable[[], Any]) -> Callable:
    """One chunk of ``loop`` (K steps, no host synchronisation) as a function ``carry -> carry``.

    PyTorch has no device-side ``while_loop`` that a CUDA graph can hold, so the chunk runs
    masked steps: each step's result is kept only while the loop's condition holds (``where``
    on a 0-d device bool), so the path is exactly the eager driver's, and the host reads the
    carry once per chunk. Eagerly (``mode`` None) the K steps are queued on the device without
    a sync. Compiled, the steps are unrolled into a graph (replayed as one CUDA graph in
    ``"reduce-overhead"`` mode) called several times per chunk with no sync between: a graph
    of M steps with ``loop.steps_per_iteration`` = M > 1 (called ⌈K/M⌉ times, steps past K
    masked; take K a multiple of M), else of :func:`graph_steps` (all K up to
    :data:`MAX_GRAPH_STEPS`, else the largest divisor of K up to it). Compilation time grows
    faster than the steps in the graph, and one call per few steps costs about as much as
    one graph of K.

    Args:
        loop: the engine's device loop (``manifoldwalk._chunked.DeviceLoop``).
        mode: a ``torch.compile`` mode, or None for eager.
        around: a context-manager factory entered around every call (the model's eval mode).

    Returns:
        The chunk; the walk's host side calls it once per synchronisation.
    """

    def steps(carry: Carry, n: int) -> Carry:
        for _ in range(n):
            carry = loop.masked_body(carry, put_by_mask)
        return carry

    if mode is None:

        def eager(carry: Carry) -> Carry:
            with around():
                return loop.finish(steps(carry, loop.steps))

        return eager
    per_graph = graph_steps(loop.steps, loop.steps_per_iteration)
    graph = compiled(lambda carry: steps(carry, per_graph), mode, around)
    calls = -(-loop.steps // per_graph)

    def run(carry: Carry) -> Carry:
        for _ in range(calls):
            carry = graph(carry)
        with around():
            return loop.finish(carry)

    return run


def _map(fn: Callable, *trees: Any) -> Any:
    """``fn`` over the tensors of equal nested tuples (NamedTuples kept)."""
    first = trees[0]
    if isinstance(first, tuple):
        parts = [_map(fn, *parts) for parts in zip(*trees, strict=True)]
        return type(first)(*parts) if hasattr(first, "_fields") else type(first)(parts)
    return fn(*trees)


def _own_code(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a code object of its own.

    Dynamo keeps compiled graphs and their guards per code object, so closures made by one
    ``def`` share them: the guards of a walk whose predictor state has a ``drift`` field would
    be evaluated against another walk's state without one (and fail with an AttributeError
    instead of recompiling). A fresh code object gives each compiled step its own cache.
    """
    code = fn.__code__.replace()
    return types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
