"""Studies beyond the paper, on the paper's nets: level-set connectivity and ensembles.

- :mod:`~manifoldwalk.studies.connectivity` (``manifoldwalk connect``): train several nets on
  one training set, bring them to one training loss, and walk each toward each other on that
  level set; the remaining distance and the largest loss along the walk's path against the
  barrier on the straight line between them.
- :mod:`~manifoldwalk.studies.ensembles` (``manifoldwalk ensemble``): random walks on the level
  set of one trained net; R, test metric and sharpness over the points reached, against the
  −∇R walk's end point and weight decay.
- :mod:`~manifoldwalk.studies.figures`: their figures (``manifoldwalk plot`` on a study's
  directory).

Each study writes one resumable run directory, ``OUT/<experiment>/<study>/``, with the
experiment layer's writers and checks (:mod:`manifoldwalk.experiments.rundir`): a killed
study resumes, and a directory of other options is refused, naming them. Nothing here imports
a framework at module level.
"""

from manifoldwalk.studies.connectivity import ConnectConfig, run_connectivity
from manifoldwalk.studies.ensembles import EnsembleConfig, run_ensemble
from manifoldwalk.studies.figures import (
    STUDIES,
    StudyData,
    connectivity_figure,
    ensemble_figure,
    load_study,
    plot_studies,
)

__all__ = [
    "STUDIES",
    "ConnectConfig",
    "EnsembleConfig",
    "StudyData",
    "connectivity_figure",
    "ensemble_figure",
    "load_study",
    "plot_studies",
    "run_connectivity",
    "run_ensemble",
]
