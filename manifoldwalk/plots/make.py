"""``manifoldwalk plot``: every figure, its numbers and the report of each experiment.

For each experiment directory found under the directory, :func:`plot_experiment` writes into
``OUT/<experiment>/`` (``OUT/<path>/``, the directory's path from above the one plotted, when
one experiment appears in several directories: ``OUT/runs/grid14/fashion-ff``)::

    phase2.<fmt>        phase-2 curves (angle, R, |L − L0| per seed, test loss, test metric)
    phase2.csv          the bands: step, seeds running, mean and std of each quantity
                        (angle, R, |L − L0|, training loss, test loss, test metric)
    compute.<fmt>       test metric against example-wise gradient evaluations
    compute.csv         the walk's band: gradients, seeds running, mean and std of the metric
    compute.json        phase 1's gradients and weight decay's point at the best λ
    pca.<fmt>           the walks' points in the top 6 principal components
    pca.json            explained variance, point counts, endpoint coordinates
    surface-<k>.<fmt>   training loss in the top-2 PCA plane, with k = 1, 3, all walks
    surface-<k>.npz     its grid (a, b), losses and projected trajectories
    endpoints.csv       endpoint averaging: each seed's final θ against the average final θ
    endpoints.md        the same as a table
    report.md           the Table I row, the figures, the configuration, the environment
    report.html         the same page, self-contained (figures embedded)

The figures are drawn by the same code as those of walks in memory
(:mod:`manifoldwalk.plots.walks`; the sections are :mod:`~manifoldwalk.plots.run_figures`).
Every file is written through :class:`~manifoldwalk.plots.output.OutputDir`: a link at a file's
name is replaced, never written through; a link where a directory goes is refused.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from manifoldwalk.plots import run_figures as sections
from manifoldwalk.plots.endpoints import EndpointRow, endpoint_average, format_endpoints
from manifoldwalk.plots.output import OutputDir
from manifoldwalk.plots.report import write_report
from manifoldwalk.plots.run_report import report_blocks
from manifoldwalk.plots.runs import ExperimentRuns, load_runs
from manifoldwalk.plots.style import FORMATS, require_matplotlib, seeds_text

__all__ = ["PlotOptions", "PlotResult", "plot_experiment", "plot_runs", "surface_counts"]


@dataclass
class PlotOptions:
    """What ``manifoldwalk plot`` draws and how.

    Attributes:
        fmt: ``"png"``, ``"pdf"`` or ``"svg"``.
        grid: Grid points per axis of the loss surface (``grid²`` evaluations per surface).
        surfaces: The numbers of walks per loss surface, ``"1"``, ``"3"`` and ``"all"``
            (counts above the number of seeds are skipped, repeats are drawn once).
        pca_every: Use every ``pca_every``-th saved point of each walk (1: all of them).
        block: Parameters per block of the PCA (None: 64 MiB per block).
        device: Where losses are evaluated (``"cpu"`` or ``"cuda"``).
        chunk: Weight vectors evaluated together (None: 256 for feed-forward nets, 8 for
            convolutional ones).
        threads: CPU threads for the framework (None: its default).
        endpoints: Evaluate the average of the final θ's (with two seeds or more).
        show_progress: Progress on stderr.
    """

    fmt: str = "png"
    grid: int = 100
    surfaces: tuple[str, ...] = ("1", "3", "all")
    pca_every: int = 1
    block: int | None = None
    device: str = "cpu"
    chunk: int | None = None
    threads: int | None = None
    endpoints: bool = True
    show_progress: bool = True

    def __post_init__(self) -> None:
        """Check the options; raises ValueError naming the valid choices."""
        if self.fmt not in FORMATS:
            raise ValueError(f"unknown format {self.fmt!r}; choose one of: png, pdf, svg")
        if self.grid < 2:
            raise ValueError(f"the grid needs at least 2 points per axis, got {self.grid}")
        for s in self.surfaces:
            if s != "all" and not (s.isdigit() and int(s) >= 1):
                raise ValueError(f"surface walk counts are positive numbers or 'all', got {s!r}")
        if self.pca_every < 1:
            raise ValueError(f"pca_every must be at least 1, got {self.pca_every}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r}; choose 'cpu' or 'cuda'")
        if self.chunk is not None and self.chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {self.chunk}")


@dataclass
class PlotResult:
    """What :func:`plot_experiment` wrote and found.

    Attributes:
        experiment: Its label: the experiment's name, or its directory's path where the
            experiment appears in several directories
            (:attr:`~manifoldwalk.plots.runs.ExperimentRuns.label`).
        directory: Where the files are.
        files: Every file written, in order.
        endpoints: The endpoint-averaging rows (empty when not computed).
        endpoints_table: Them as Markdown.
        notes: What was asked for and not drawn (each also a warning and a line of the report).
        stale: Files in ``directory`` this call did not write (left from an earlier call; not
            deleted, and named as such in the report).
    """

    experiment: str
    directory: Path
    files: list[Path] = field(default_factory=list)
    endpoints: list[EndpointRow] = field(default_factory=list)
    endpoints_table: str = ""
    notes: list[str] = field(default_factory=list)
    stale: list[Path] = field(default_factory=list)


def surface_counts(requested: tuple[str, ...], n_seeds: int) -> list[tuple[str, int]]:
    """The loss surfaces to draw: ``(label, number of walks)``, counts distinct and possible.

    Args:
        requested: ``"1"``, ``"3"``, ``"all"`` … as in :class:`PlotOptions`.
        n_seeds: Seeds available.

    Returns:
        Pairs in increasing count; ``"all"`` is labelled ``all``, counts above ``n_seeds``
        are dropped, and a count equal to ``n_seeds`` is labelled ``all``.
    """
    counts = set()
    for s in requested:
        k = n_seeds if s == "all" else int(s)
        if k <= n_seeds:
            counts.add(k)
    return [("all" if k == n_seeds else str(k), k) for k in sorted(counts)]


def _surfaces_left_out(requested: tuple[str, ...], n_seeds: int) -> list[int]:
    """The requested walk counts that exceed the seeds available, distinct and increasing."""
    return sorted({int(s) for s in requested if s != "all" and int(s) > n_seeds})


def _note(result: PlotResult, text: str) -> None:
    """Record something asked for and not done: a warning now, a line of the report later."""
    result.notes.append(text)
    warnings.warn(f"{result.experiment}: {text}", UserWarning, stacklevel=3)


def _say(options: PlotOptions, text: str) -> None:
    if options.show_progress:
        print(text, file=sys.stderr, flush=True)


def _endpoints(
    exp: ExperimentRuns, sink: sections.Sink, evaluators: sections.Evaluators, result: PlotResult
) -> None:
    """Endpoint averaging: ``endpoints.csv`` and ``endpoints.md``."""
    result.endpoints = endpoint_average(exp, evaluators)
    result.endpoints_table = format_endpoints(result.endpoints, exp.metric)
    cols = [
        "seed",
        "own_train_loss",
        "avg_train_loss",
        "own_test_loss",
        "avg_test_loss",
        "own_test_metric",
        "avg_test_metric",
    ]
    rows = [[getattr(r, c) for c in cols] for r in result.endpoints]
    sink.files.append(sink.out.write_csv("endpoints.csv", cols, rows))
    sink.files.append(sink.out.write_text("endpoints.md", result.endpoints_table + "\n"))


def plot_experiment(
    exp: ExperimentRuns, out: str | os.PathLike[str], options: PlotOptions | None = None
) -> PlotResult:
    """Draw every figure of one experiment and write its numbers and report.

    Every file is written into ``out`` without following a link: a link (or special file) at
    a file's name is replaced by the new file, its target left as it was; a link where a
    directory goes is refused (:mod:`~manifoldwalk.plots.output`).

    Args:
        exp: The experiment's runs (:func:`~manifoldwalk.plots.runs.load_runs`).
        out: The output root; files go to ``out/<experiment>/`` (list in the module docstring).
        options: What to draw (None: the defaults).

    Returns:
        The :class:`PlotResult`.

    Raises:
        ImportError: matplotlib or the runs' framework is missing.
        LinkError: A directory below ``out`` on the way to the files is a link.
    """
    options = options or PlotOptions()
    require_matplotlib()
    target = OutputDir(out).sub(exp.label)
    result = PlotResult(exp.label, target.make())
    sink = sections.Sink(target, options.fmt, result.files)
    name, n = exp.label, len(exp.seeds)

    _say(options, f"{name}: phase-2 curves and compute ({seeds_text(n)})")
    sections.phase2(exp, sink)
    sections.compute(exp, sink)
    _say(options, f"{name}: PCA of the saved trajectories")
    tp = sections.pca(exp, sink, every=options.pca_every, block=options.block)

    evaluators = sections.Evaluators(exp, options.device, options.threads)
    for k in _surfaces_left_out(options.surfaces, n):
        _note(result, f"no {k}-walk loss surface: only {seeds_text(n)} finished")
    for label, k in surface_counts(options.surfaces, n):
        _say(options, f"{name}: loss surface with {k} walk(s), {options.grid}² points")
        ev = evaluators(0)
        sections.surface(
            exp,
            sink,
            tp,
            ev,
            label,
            k,
            grid=options.grid,
            chunk=options.chunk or (256 if ev.net == "ff" else 8),
            show_progress=options.show_progress,
            note=lambda text: _note(result, text),
        )

    if options.endpoints and n < 2:  # the average of one seed's final θ is that θ
        _note(result, f"no endpoint averaging: only {seeds_text(n)} finished")
    elif options.endpoints:
        _say(options, f"{name}: endpoint averaging")
        _endpoints(exp, sink, evaluators, result)

    # files of an earlier call (another format, more seeds) stay: they are the user's to
    # delete, but the report says they are not its own
    d = result.directory
    own = {p.name for p in result.files} | {"report.md", "report.html"}
    result.stale = sorted(
        p
        for p in d.iterdir()
        if not p.name.startswith(".") and p.name not in own and (p.is_file() or p.is_symlink())
    )
    blocks = report_blocks(exp, result, sink.blocks, options.device)
    result.files += list(write_report(target, name, blocks))
    return result


def plot_runs(
    directory: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    options: PlotOptions | None = None,
) -> list[PlotResult]:
    """Plot every experiment with finished runs, and every finished study, under ``directory``.

    Args:
        directory: An output root, an experiment directory, a seed directory or a study's
            directory (:mod:`manifoldwalk.studies.figures`).
        out: The output root (None: ``plots`` in the current directory).
        options: What to draw.

    Returns:
        One :class:`PlotResult` per study, then one per experiment.

    Raises:
        FileNotFoundError: ``directory`` holds no finished run and no finished study.
        ImportError: matplotlib or the runs' framework is missing.
        LinkError: A directory below ``out`` on the way to the files is a link.
    """
    from manifoldwalk.studies.figures import plot_studies  # by the "study" mark of config.json

    require_matplotlib()
    out = Path("plots") if out is None else Path(out)
    studies = plot_studies(directory, out, (options or PlotOptions()).fmt)
    try:
        experiments = load_runs(directory)
    except FileNotFoundError:
        if not studies:
            raise
        experiments = []
    return studies + [plot_experiment(exp, out, options) for exp in experiments]
