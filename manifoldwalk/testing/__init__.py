"""Property-based testing tools for walks (needs the ``testing`` extra: hypothesis).

Strategies draw analytic problems with known optima and starting points on their
level sets; checks are reusable properties (level kept, R decreasing, stationarity
reached, backends agree) that a user can point at their own Problem, direction or
corrector.
"""

from manifoldwalk.testing.checks import (
    check_backends_agree,
    check_level_kept,
    check_reaches,
    check_reg_decreasing,
    check_stationary,
    level_bound,
    reg_slack,
)
from manifoldwalk.testing.strategies import AnalyticCase, ellipsoid_cases, sphere_distance_cases

__all__ = [
    "AnalyticCase",
    "check_backends_agree",
    "check_level_kept",
    "check_reaches",
    "check_reg_decreasing",
    "check_stationary",
    "ellipsoid_cases",
    "level_bound",
    "reg_slack",
    "sphere_distance_cases",
]
