"""manifoldwalk: walk the level sets of a training loss.

The public surface, re-exported from the submodules: :func:`walk` and its option groups
(:class:`Stop`, :class:`Record`, :class:`Tolerance`) and drivers (:class:`Eager`,
:class:`Chunked`); :func:`walk_constrained` for several constraints at once, with :func:`stack`
and :func:`is_multi_constraint`; the pieces a scheme is made of (predictors, correctors, step-size rules,
directions); the :class:`Problem` protocol; the result. Modules whose names start with ``_`` are
internal; adapter authors import from :mod:`manifoldwalk.adapter_api`.
"""

from manifoldwalk.correctors import GradientCorrector, NewtonCorrector, authors_corrector
from manifoldwalk.diagnostics import GradientCheck, check_gradient
from manifoldwalk.directions import FunctionDirection, MinimiseReg, RandomWalk, TowardTarget
from manifoldwalk.driver import walk
from manifoldwalk.drivers import Chunked, Eager
from manifoldwalk.multi import MultiConstraintProblem, is_multi_constraint, walk_constrained
from manifoldwalk.options import Record, Stop, Tolerance
from manifoldwalk.predictors import DriftCompensated, TangentPredictor
from manifoldwalk.problem import Problem, ProblemError, make_problem
from manifoldwalk.result import STOP_REASONS, WalkResult
from manifoldwalk.schemes import SCHEMES, Scheme, get_scheme
from manifoldwalk.stacking import stack
from manifoldwalk.step import WalkState, init_state, make_step
from manifoldwalk.step_sizes import AngleRule, ConstantStep

__all__ = [
    "STOP_REASONS",
    "SCHEMES",
    "AngleRule",
    "Chunked",
    "ConstantStep",
    "DriftCompensated",
    "Eager",
    "FunctionDirection",
    "GradientCheck",
    "GradientCorrector",
    "MultiConstraintProblem",
    "MinimiseReg",
    "NewtonCorrector",
    "Problem",
    "ProblemError",
    "RandomWalk",
    "Record",
    "Scheme",
    "Stop",
    "TangentPredictor",
    "Tolerance",
    "TowardTarget",
    "WalkResult",
    "WalkState",
    "authors_corrector",
    "check_gradient",
    "get_scheme",
    "init_state",
    "is_multi_constraint",
    "make_problem",
    "make_step",
    "stack",
    "walk",
    "walk_constrained",
]

__version__ = "0.2.0"
"""The package version (the only place it is written; pyproject.toml reads it)."""
