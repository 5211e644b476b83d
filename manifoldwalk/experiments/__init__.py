"""The paper's experiments: definitions, runs with resumable run directories, Table I.

Nothing here imports a framework at module level; runs load a backend by name
(:func:`~manifoldwalk.experiments.backend.load_backend`).
"""

from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.experiments.definitions import (
    EXPERIMENTS,
    WD_LAMBDAS,
    Experiment,
    PaperRow,
    get_experiment,
)
from manifoldwalk.experiments.runner import run_experiment, run_seed
from manifoldwalk.experiments.table import build_table, format_table

__all__ = [
    "EXPERIMENTS",
    "WD_LAMBDAS",
    "Experiment",
    "PaperRow",
    "RunConfig",
    "build_table",
    "format_table",
    "get_experiment",
    "run_experiment",
    "run_seed",
]
