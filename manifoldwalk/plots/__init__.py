"""Figures of walks: of your own WalkResults, and of run directories (``manifoldwalk plot``).

For walks in memory (any problem: analytic, or a PyTorch / JAX / Keras model problem), each
function returns a :class:`FigureData` (the matplotlib figure and the arrays drawn in it):

- :func:`walk_curves`: angle(∇L, ∇R), R, |L − L0| against the tolerance, metric columns;
- :func:`pca_trajectories`: the kept θ in their top principal components;
- :func:`loss_surface`: the loss on a PCA, random or filter-normalised plane, walks on top.

For run directories, :func:`plot_runs` draws the paper's figures with the same code and writes
their numbers and a report. The numbers are computed with numpy alone
(:mod:`~manifoldwalk.plots.curves`, :mod:`~manifoldwalk.plots.trajectories` with the exact
Gram-matrix PCA of :mod:`~manifoldwalk.plots.pca`, :mod:`~manifoldwalk.plots.planes`,
:mod:`~manifoldwalk.plots.surface`); matplotlib is imported only to draw, and every file is
written without following links (:mod:`~manifoldwalk.plots.output`).

Example::

    from manifoldwalk.plots import PlotOptions, loss_surface, plot_runs, walk_curves

    walk_curves([r1, r2]).save("curves.png")
    surf = loss_surface(problem, r1.theta, results=[r1, r2], plane="filter")
    for result in plot_runs("runs/iris-ff", out="plots", options=PlotOptions(grid=60)):
        print(result.files)
"""

from manifoldwalk.plots.make import PlotOptions, PlotResult, plot_experiment, plot_runs
from manifoldwalk.plots.output import LinkError
from manifoldwalk.plots.runs import ExperimentRuns, SeedRun, load_runs
from manifoldwalk.plots.walks import FigureData, loss_surface, pca_trajectories, walk_curves

__all__ = [
    "ExperimentRuns",
    "FigureData",
    "LinkError",
    "PlotOptions",
    "PlotResult",
    "SeedRun",
    "load_runs",
    "loss_surface",
    "pca_trajectories",
    "plot_experiment",
    "plot_runs",
    "walk_curves",
]
