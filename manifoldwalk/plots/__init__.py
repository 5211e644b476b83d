"""Figures and reports from run directories: ``manifoldwalk plot`` and its Python functions.

The numbers are computed with numpy alone (:mod:`~manifoldwalk.plots.runs` reads the run
directories, :mod:`~manifoldwalk.plots.bands` averages over seeds, :mod:`~manifoldwalk.plots.pca`
is an exact PCA through the Gram matrix over blocks of parameters,
:mod:`~manifoldwalk.plots.surface` maps a grid of the top-2 PCA plane back to weight space);
losses at new weight vectors go through the run's experiment backend
(:mod:`~manifoldwalk.plots.evaluate`); matplotlib is imported only to draw
(:mod:`~manifoldwalk.plots.figures`), and :mod:`~manifoldwalk.plots.report` writes
``report.md`` and a self-contained ``report.html``.

Example::

    from manifoldwalk.plots import PlotOptions, plot_runs

    for result in plot_runs("runs/iris-ff", out="plots", options=PlotOptions(grid=60)):
        print(result.files)
"""

from manifoldwalk.plots.make import PlotOptions, PlotResult, plot_experiment, plot_runs
from manifoldwalk.plots.runs import ExperimentRuns, SeedRun, load_runs

__all__ = [
    "ExperimentRuns",
    "PlotOptions",
    "PlotResult",
    "SeedRun",
    "load_runs",
    "plot_experiment",
    "plot_runs",
]
