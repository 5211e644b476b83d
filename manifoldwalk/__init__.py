"""manifoldwalk: walk the level sets of a training loss.

Re-exports the public names; see the submodules for the pieces.
"""

from manifoldwalk.correctors import GradientCorrector, NewtonCorrector, authors_corrector
from manifoldwalk.diagnostics import GradientCheck, check_gradient
from manifoldwalk.directions import FunctionDirection, MinimiseReg, RandomWalk, TowardTarget
from manifoldwalk.driver import walk
from manifoldwalk.problem import Problem, ProblemError, make_problem
from manifoldwalk.result import STOP_REASONS, WalkResult
from manifoldwalk.schemes import SCHEMES, Scheme, get_scheme
from manifoldwalk.step import WalkState, init_state, make_step
from manifoldwalk.step_sizes import AngleRule, ConstantStep

__all__ = [
    "STOP_REASONS",
    "SCHEMES",
    "AngleRule",
    "ConstantStep",
    "FunctionDirection",
    "GradientCheck",
    "GradientCorrector",
    "MinimiseReg",
    "NewtonCorrector",
    "Problem",
    "ProblemError",
    "RandomWalk",
    "Scheme",
    "TowardTarget",
    "WalkResult",
    "WalkState",
    "authors_corrector",
    "check_gradient",
    "get_scheme",
    "init_state",
    "make_problem",
    "make_step",
    "walk",
]

__version__ = "0.1.0"
