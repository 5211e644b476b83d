"""What an adapter (``manifoldwalk_torch``, ``manifoldwalk_jax``, ``manifoldwalk_tf``) takes from the core.

An adapter wraps a framework's model as a manifoldwalk Problem. It subclasses
:class:`ModelProblem` (the framework-free plumbing: θ checks, the regulariser's choice,
``evaluate``'s loop) and implements its framework hooks; it checks its inputs with the
shared checks below; and, to offer the compiled driver (``walk(..., driver=Chunked(K))``) or a
batched walk of several seeds, it runs the engine's :class:`DeviceLoop` in its framework's
loop and keeps the compiled chunks in a :class:`CompileCache`. This module is the one place
adapters import those pieces from; the modules they live in are the core's internals.
"""

from __future__ import annotations

from manifoldwalk._adapter_checks import (
    EVAL_TASKS,
    accuracy_shape_error,
    check_batch_size,
    check_callable,
    check_eval_task,
    check_examples,
    check_pair,
    check_plain_pair,
    eval_metrics,
    half_precision_error,
    loss_entry,
    reg_not_differentiable,
    stochastic_layers_message,
    trivial_loss,
    warn_if_untrained,
)
from manifoldwalk._array import register_namespace
from manifoldwalk._batched import (
    LaneProblem,
    check_lane_agrees,
    drive_hosts,
    prepare_hosts,
    same_function,
)
from manifoldwalk._chunked import Carry, DeviceLoop, put_by_mask
from manifoldwalk._compile_cache import CompileCache
from manifoldwalk._history import describe_vector
from manifoldwalk._model_problem import REG_NAMES, ModelProblem, RegPair, weight_mask
from manifoldwalk.problem import ProblemError
from manifoldwalk.result import WalkResult

__all__ = [
    "EVAL_TASKS",
    "REG_NAMES",
    "Carry",
    "CompileCache",
    "DeviceLoop",
    "LaneProblem",
    "ModelProblem",
    "ProblemError",
    "RegPair",
    "WalkResult",
    "accuracy_shape_error",
    "check_batch_size",
    "check_callable",
    "check_eval_task",
    "check_examples",
    "check_lane_agrees",
    "check_pair",
    "check_plain_pair",
    "describe_vector",
    "drive_hosts",
    "eval_metrics",
    "half_precision_error",
    "loss_entry",
    "prepare_hosts",
    "put_by_mask",
    "reg_not_differentiable",
    "register_namespace",
    "same_function",
    "stochastic_layers_message",
    "trivial_loss",
    "warn_if_untrained",
    "weight_mask",
]
