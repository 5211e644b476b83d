"""``manifoldwalk plot``: every figure, its numbers and the report of each experiment.

For each experiment directory found under the directory, :func:`plot_experiment` writes into
``OUT/<experiment>/`` (``OUT/<path>/``, the directory's path from above the one plotted, when
one experiment appears in several directories: ``OUT/runs/grid14/fashion-ff``)::

    phase2.<fmt>        phase-2 curves (angle, R, train loss, test loss, test metric)
    phase2.csv          their bands: step, seeds running, mean and std of each quantity
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
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.experiments import rundir
from manifoldwalk.experiments.table import format_table
from manifoldwalk.plots import figures as figs
from manifoldwalk.plots.bands import Band
from manifoldwalk.plots.endpoints import EndpointRow, endpoint_average, format_endpoints
from manifoldwalk.plots.evaluate import SeedProblem, rebuild
from manifoldwalk.plots.pca import PointSet, gram_matrix, pca_from_gram, project
from manifoldwalk.plots.report import Block, ReportFigure, config_text, environment, write_report
from manifoldwalk.plots.runs import ExperimentRuns, load_runs
from manifoldwalk.plots.series import BUDGET_STOPS, compute_series, phase2_bands, wd_reference
from manifoldwalk.plots.surface import grid_axes, loss_surface

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
        if self.fmt not in figs.FORMATS:
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


def _band_csv(path: Path, x_name: str, bands: dict[str, Band]) -> None:
    names = list(bands)
    first = bands[names[0]]
    cols = [x_name, "seeds_running"]
    for n in names:
        cols += [f"{n}_mean", f"{n}_std"]
    rows = []
    for i in range(len(first.x)):
        row: list[Any] = [float(first.x[i]), int(first.count[i])]
        for n in names:
            row += [float(bands[n].mean[i]), float(bands[n].std[i])]
        rows.append(row)
    rundir.atomic_write_csv(path, cols, rows)


class _Evaluators:
    """Each seed's rebuilt problem, made on first use."""

    def __init__(self, exp: ExperimentRuns, options: PlotOptions) -> None:
        self.exp, self.options = exp, options
        self.cache: dict[int, SeedProblem] = {}

    def __call__(self, i: int) -> SeedProblem:
        if i not in self.cache:
            self.cache[i] = rebuild(
                self.exp.seeds[i], device=self.options.device, threads=self.options.threads
            )
        return self.cache[i]


def _figure(
    result: PlotResult, blocks: list, fig: Any, stem: str, title: str, caption: str, fmt: str
) -> None:
    path = figs.save_figure(fig, result.directory / stem, fmt)
    result.files.append(path)
    blocks.append(Block("figure", ReportFigure(title, caption, path.name, figs.png_bytes(fig))))


def plot_experiment(
    exp: ExperimentRuns, out: str | os.PathLike[str], options: PlotOptions | None = None
) -> PlotResult:
    """Draw every figure of one experiment and write its numbers and report.

    Args:
        exp: The experiment's runs (:func:`~manifoldwalk.plots.runs.load_runs`).
        out: The output root; files go to ``out/<experiment>/`` (list in the module docstring).
        options: What to draw (None: the defaults).

    Returns:
        The :class:`PlotResult`.

    Raises:
        ImportError: matplotlib or the runs' framework is missing.
    """
    options = options or PlotOptions()
    figs.require_matplotlib()
    d = Path(out) / exp.label
    d.mkdir(parents=True, exist_ok=True)
    result = PlotResult(exp.label, d)
    name = exp.label
    n = len(exp.seeds)
    lam = exp.best_lambda
    fmt = options.fmt
    early = [s.seed for s in exp.seeds if s.stop_reason not in BUDGET_STOPS]
    fig_blocks: list[Block] = []

    _say(options, f"{name}: phase-2 curves and compute ({figs.seeds_text(n)})")
    bands = phase2_bands(exp)
    wd = wd_reference(exp)
    _band_csv(d / "phase2.csv", "predictor_steps", bands)
    result.files.append(d / "phase2.csv")
    metric_name = "test accuracy" if exp.metric == "accuracy" else "test MSE"
    over_seeds = (
        f"mean over {n} seeds with a ±1 sample-std band"
        if n > 1
        else f"seed {exp.seeds[0].seed} alone (one seed: no band)"
    )
    stop_note = (
        f" Seeds {', '.join(map(str, early))} stopped before their step budget; the mean and "
        "band are over the seeds still running, and dotted lines mark where that number changes."
        if early
        else ""
    )
    _figure(
        result,
        fig_blocks,
        figs.phase2_figure(
            name, bands, wd, metric=exp.metric, lam=lam, n_seeds=n, n_early=len(early)
        ),
        "phase2",
        "Phase-2 curves",
        f"Angle between ∇L and ∇R, R = ‖θ‖², training loss, test loss and {metric_name} "
        f"against predictor steps: {over_seeds}. Dashed red: weight decay at the λ with the "
        f"best mean test metric (λ = {figs.format_lambda(lam)})"
        f"{', mean over seeds' if n > 1 else ''}.{stop_note}",
        fmt,
    )
    comp = compute_series(exp)
    _band_csv(d / "compute.csv", "example_grads", {"test_metric": comp.walk})
    rundir.atomic_write_json(
        d / "compute.json",
        {
            "metric": exp.metric,
            "phase1_example_grads": comp.phase1_grads,
            "wd_lambda": comp.lam,
            "wd_example_grads": comp.wd_grads,
            "wd_test_metric_mean": comp.wd_metric[0],
            "wd_test_metric_std": comp.wd_metric[1],
            "seeds": n,
        },
    )
    result.files += [d / "compute.csv", d / "compute.json"]
    _figure(
        result,
        fig_blocks,
        figs.compute_figure(name, comp, n_seeds=n),
        "compute",
        "Compute against performance",
        f"{metric_name[0].upper() + metric_name[1:]} against example-wise gradient evaluations (phase 1's "
        f"{comp.phase1_grads:,.0f} included), "
        + (f"mean ± 1 std over {n} seeds" if n > 1 else "one seed")
        + ". Weight decay at "
        f"λ = {figs.format_lambda(lam)}: its final test metric after {comp.wd_grads:,.0f} "
        "example-wise gradients (the runs record only their end).",
        fmt,
    )

    _say(options, f"{name}: PCA of the saved trajectories")
    owners, steps, parts = [], [], []
    for i, s in enumerate(exp.seeds):
        st, pa = s.trajectory(options.pca_every)
        owners.append(np.full(len(st), i))
        steps.append(st)
        parts += pa
    owner, step = np.concatenate(owners), np.concatenate(steps)
    points = PointSet(parts)
    gram = gram_matrix(points, block=options.block)
    pca = pca_from_gram(points, gram, n_components=6, block=options.block)
    walk_end = project(pca, np.mean([s.final_theta() for s in exp.seeds], axis=0))
    wd_mean = np.mean([s.wd_theta(lam, "full") for s in exp.seeds], axis=0)
    wd_end = project(pca, wd_mean)
    rundir.atomic_write_json(
        d / "pca.json",
        {
            "experiment": name,
            "seeds": [s.seed for s in exp.seeds],
            "n_points": pca.n_points,
            "n_params": points.n_params,
            "every": options.pca_every,
            "explained_variance": pca.explained_variance.tolist(),
            "explained_variance_ratio": pca.explained_variance_ratio.tolist(),
            "total_variance": pca.total_variance,
            "walk_endpoints_mean": walk_end.tolist(),
            "wd_endpoints_mean": wd_end.tolist(),
            "wd_lambda": lam,
        },
    )
    result.files.append(d / "pca.json")
    ratio = pca.explained_variance_ratio
    every = "every saved point" if options.pca_every == 1 else f"every {options.pca_every}th"
    _figure(
        result,
        fig_blocks,
        figs.pca_figure(name, pca, step, n_seeds=n, walk_end=walk_end, wd_end=wd_end, lam=lam),
        "pca",
        "Trajectories in the top principal components",
        f"PCA of {pca.n_points} walk points ({every} of {figs.seeds_text(n)}, "
        f"{points.n_params:,} parameters each), coloured by predictor step. Blue cross: mean "
        f"of the walks' final θ; red star: mean of weight decay's final θ at "
        f"λ = {figs.format_lambda(lam)}. The top {min(6, pca.n_components)} components explain "
        f"{100 * ratio[:6].sum():.1f}% of the variance.",
        fmt,
    )

    evaluators = _Evaluators(exp, options)
    chunk = options.chunk
    for k in _surfaces_left_out(options.surfaces, n):
        _note(
            result,
            f"no {k}-walk loss surface: only {figs.seeds_text(n)} finished",
        )
    for label, k in surface_counts(options.surfaces, n):
        _say(options, f"{name}: loss surface with {k} walk(s), {options.grid}² points")
        rows_k = np.flatnonzero(owner < k)
        sub = pca if k == n else pca_from_gram(points, gram, rows=rows_k, block=options.block)
        if sub.n_components < 2:
            _note(
                result,
                f"no {k}-walk loss surface: its points have fewer than 2 principal components",
            )
            continue
        a, b = grid_axes(sub.scores[:, :2], options.grid)
        ev = evaluators(0)
        size = chunk or (256 if ev.net == "ff" else 8)
        surf = loss_surface(
            ev,
            sub,
            a,
            b,
            chunk=size,
            show_progress=options.show_progress,
            label=f"{name} surface ({k} walks)",
        )
        sub_owner = owner[rows_k]
        trajectories = [sub.scores[sub_owner == i, :2] for i in range(k)]
        level = float(exp.seeds[0].summary["walk"]["level"])
        rundir.atomic_write_npz(
            d / f"surface-{label}.npz",
            a=surf.a,
            b=surf.b,
            loss=surf.loss,
            scores=sub.scores[:, :2],
            seed_index=sub_owner,
            steps=step[rows_k],
            explained_variance_ratio=sub.explained_variance_ratio,
            level=level,
        )
        result.files.append(d / f"surface-{label}.npz")
        seeds = [s.seed for s in exp.seeds[:k]]
        _figure(
            result,
            fig_blocks,
            figs.surface_figure(name, sub, surf, trajectories, level=level, seeds=seeds),
            f"surface-{label}",
            f"Loss surface, {k} walk{'s' if k > 1 else ''}",
            f"Training loss (seed {surf.seed}'s training set) over a {options.grid}×"
            f"{options.grid} grid in the plane of the top two principal components of the "
            f"points of seed{'s' if k > 1 else ''} {', '.join(map(str, seeds))}, mapped back to "
            "weight space as "
            f"mean + a·PC1 + b·PC2; the walks projected on top. The plane explains "
            f"{100 * sub.explained_variance_ratio[:2].sum():.1f}% of these points' variance.",
            fmt,
        )

    if options.endpoints and n < 2:  # the average of one seed's final θ is that θ
        _note(result, f"no endpoint averaging: only {figs.seeds_text(n)} finished")
    elif options.endpoints:
        _say(options, f"{name}: endpoint averaging")
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
        rundir.atomic_write_csv(
            d / "endpoints.csv",
            cols,
            [[getattr(r, c) for c in cols] for r in result.endpoints],
        )
        rundir.atomic_write_bytes(d / "endpoints.md", (result.endpoints_table + "\n").encode())
        result.files += [d / "endpoints.csv", d / "endpoints.md"]

    # files of an earlier call (another format, more seeds) stay: they are the user's to
    # delete, but the report says they are not its own
    own = {p.name for p in result.files} | {"report.md", "report.html"}
    result.stale = sorted(
        p for p in d.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in own
    )
    blocks = _report_blocks(exp, result, fig_blocks, options)
    result.files += list(write_report(d, name, blocks))
    _readable(result.files)
    return result


def _readable(paths: list[Path]) -> None:
    """Give the written files the usual permissions (the atomic writes create them 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for p in paths:
        os.chmod(p, 0o666 & ~umask)


def _report_blocks(
    exp: ExperimentRuns, result: PlotResult, fig_blocks: list[Block], options: PlotOptions
) -> list[Block]:
    n = len(exp.seeds)
    blocks = [
        Block("h1", f"{exp.label}: report"),
        Block(
            "p",
            f"{n} finished seed{'s' if n != 1 else ''} "
            f"({', '.join(str(s.seed) for s in exp.seeds)})"
            + (
                f"; {len(exp.unfinished)} unfinished seed directories not counted"
                if exp.unfinished
                else ""
            )
            + f". Made by `manifoldwalk plot` from `{exp.seeds[0].path.parent}`.",
        ),
        *[Block("p", f"Not drawn: {note}.") for note in result.notes],
        *(
            [
                Block(
                    "p",
                    "Also in this directory, left from an earlier `manifoldwalk plot` and not "
                    "part of this report: " + ", ".join(f"`{p.name}`" for p in result.stale) + ".",
                )
            ]
            if result.stale
            else []
        ),
        Block("h2", "Table I row"),
        Block("table", format_table([exp.row])),
        Block("h2", "Figures"),
        *fig_blocks,
    ]
    if result.endpoints:
        avg = np.mean([r.avg_test_loss for r in result.endpoints])
        own = np.mean([r.own_test_loss for r in result.endpoints])
        verdict = "lower" if avg < own else "higher" if avg > own else "equal"
        blocks += [
            Block("h2", "Endpoint averaging"),
            Block(
                "p",
                f"The average of the {n} walks' final θ against each seed's own final θ, on that "
                f"seed's training and test sets (§VII of the paper). Mean test loss: "
                f"{avg:.4g} at the average against {own:.4g} at the seeds' own θ ({verdict}).",
            ),
            Block("table", result.endpoints_table),
        ]
    stops: dict[str, int] = {}
    for s in exp.seeds:
        stops[s.stop_reason] = stops.get(s.stop_reason, 0) + 1
    cfg = dict(exp.seeds[0].config)
    cfg["seed"] = [s.seed for s in exp.seeds]
    timing = [s.summary.get("timing", {}) for s in exp.seeds]
    walk_s = [t.get("walk_s_last_session") for t in timing if t.get("walk_s_last_session")]
    blocks += [
        Block("h2", "Configuration"),
        Block(
            "p",
            "Walk stop reasons: "
            + ", ".join(f"{k} ×{v}" for k, v in sorted(stops.items()))
            + (
                f". Walk wall time per seed (last run of the walk): median {np.median(walk_s):.1f} s."
                if walk_s
                else "."
            ),
        ),
        Block("code", config_text(cfg)),
        Block("h2", "Environment"),
        Block(
            "code",
            config_text(
                environment(
                    exp.seeds[0].summary.get("versions", {}),
                    [str(s.config["options"].get("device", "cpu")) for s in exp.seeds],
                    options.device,
                )
            ),
        ),
    ]
    return blocks


def plot_runs(
    directory: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    options: PlotOptions | None = None,
) -> list[PlotResult]:
    """Plot every experiment with finished runs under ``directory``.

    Args:
        directory: An output root, an experiment directory or a seed directory.
        out: The output root (None: ``plots`` in the current directory).
        options: What to draw.

    Returns:
        One :class:`PlotResult` per experiment.

    Raises:
        FileNotFoundError: ``directory`` holds no finished run.
        ImportError: matplotlib or the runs' framework is missing.
    """
    figs.require_matplotlib()
    experiments = load_runs(directory)
    out = Path("plots") if out is None else Path(out)
    return [plot_experiment(exp, out, options) for exp in experiments]
