"""The figures of run directories, one function per figure, each writing its files and its
report block.

The numbers come from the same code as the figures of walks in memory
(:mod:`manifoldwalk.plots.walks`): the phase-2 curves from
:func:`~manifoldwalk.plots.curves.curves_data`, the PCA from
:func:`~manifoldwalk.plots.trajectories.trajectory_pca` over the memory-mapped run files, the
surfaces from a :func:`~manifoldwalk.plots.planes.pca_plane` evaluated by
:func:`~manifoldwalk.plots.surface.surface_losses` through the seed's rebuilt problem. Every
file goes through :class:`~manifoldwalk.plots.output.OutputDir`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.plots.bands import Band
from manifoldwalk.plots.curves import duplicate_columns
from manifoldwalk.plots.evaluate import SeedProblem, rebuild
from manifoldwalk.plots.figures import compute_figure, curves_figure
from manifoldwalk.plots.figures_space import pca_figure, surface_figure
from manifoldwalk.plots.output import OutputDir
from manifoldwalk.plots.pca import project
from manifoldwalk.plots.planes import pca_plane, square_axes
from manifoldwalk.plots.report import Block, ReportFigure
from manifoldwalk.plots.runs import ExperimentRuns
from manifoldwalk.plots.series import (
    BUDGET_STOPS,
    PHASE2_PANELS,
    compute_series,
    phase2_curves,
    wd_reference,
)
from manifoldwalk.plots.style import (
    WALK,
    WD,
    figure_bytes,
    format_lambda,
    percent,
    png_bytes,
    seeds_text,
)
from manifoldwalk.plots.surface import surface_losses
from manifoldwalk.plots.trajectories import TrajectoryPCA, trajectory_pca

__all__ = ["Evaluators", "Sink", "compute", "pca", "phase2", "surface"]


@dataclass
class Sink:
    """Where one experiment's files and report blocks go.

    Attributes:
        out: Its output directory.
        fmt: The figures' format.
        files: Every file written, in order.
        blocks: The figures' report blocks, in order.
    """

    out: OutputDir
    fmt: str
    files: list[Path] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)

    def figure(self, fig: Any, stem: str, title: str, caption: str) -> None:
        """Write a figure as ``<stem>.<fmt>`` and add its report block."""
        path = self.out.write_bytes(f"{stem}.{self.fmt}", figure_bytes(fig, self.fmt))
        self.files.append(path)
        self.blocks.append(Block("figure", ReportFigure(title, caption, path.name, png_bytes(fig))))

    def json(self, name: str, obj: Any) -> None:
        """Write a JSON file."""
        self.files.append(self.out.write_json(name, obj))

    def npz(self, name: str, **arrays: Any) -> None:
        """Write an ``.npz`` file."""
        self.files.append(self.out.write_npz(name, **arrays))

    def bands(self, name: str, x_name: str, bands: dict[str, Band]) -> None:
        """Write bands as a CSV: x, walks running, mean and std of each."""
        names = list(bands)
        first = bands[names[0]]
        cols = [x_name, "seeds_running"] + [f"{n}_{s}" for n in names for s in ("mean", "std")]
        rows = []
        for i in range(len(first.x)):
            row: list[Any] = [float(first.x[i]), int(first.count[i])]
            for n in names:
                row += [float(bands[n].mean[i]), float(bands[n].std[i])]
            rows.append(row)
        self.files.append(self.out.write_csv(name, cols, rows))


class Evaluators:
    """Each seed's rebuilt problem, made on first use.

    Args:
        exp: The experiment.
        device: Where losses are evaluated.
        threads: CPU threads for the framework (None: its default).
    """

    def __init__(self, exp: ExperimentRuns, device: str, threads: int | None) -> None:
        self.exp, self.device, self.threads = exp, device, threads
        self.cache: dict[int, SeedProblem] = {}

    def __call__(self, i: int) -> SeedProblem:
        """The problem of the ``i``-th seed of the experiment."""
        if i not in self.cache:
            self.cache[i] = rebuild(self.exp.seeds[i], device=self.device, threads=self.threads)
        return self.cache[i]


def _file_units(bands: dict[str, Band], metric: str) -> dict[str, Band]:
    """The bands as the files hold them: accuracy as a fraction (the figures show percent)."""
    if metric != "accuracy" or "test_metric" not in bands:
        return bands
    b = bands["test_metric"]
    return {**bands, "test_metric": Band(b.x, b.mean / 100.0, b.std / 100.0, b.count)}


def _metric_name(exp: ExperimentRuns) -> str:
    return "test accuracy" if exp.metric == "accuracy" else "test MSE"


def phase2(exp: ExperimentRuns, sink: Sink) -> None:
    """``phase2.csv`` (every quantity's band) and the phase-2 figure.

    Args:
        exp: The experiment.
        sink: Where its files go.
    """
    n, lam = len(exp.seeds), exp.best_lambda
    sink.bands("phase2.csv", "predictor_steps", _file_units(phase2_curves(exp).bands, exp.metric))
    curves = phase2_curves(exp, PHASE2_PANELS)
    wd = wd_reference(exp)
    text = f"weight decay, λ = {format_lambda(lam)}" + (" (mean)" if n > 1 else "")
    reference = {q: (wd[q][0], text) for q in ("reg", "test_loss", "test_metric") if q in wd}
    early = [s.seed for s in exp.seeds if s.stop_reason not in BUDGET_STOPS]
    over = "1 seed" if n == 1 else f"mean ± 1 std over {n} seeds"
    fig = curves_figure(
        curves,
        title=f"{exp.label}: phase-2 curves, {over}"
        + (f"; {len(early)} stopped early" if early else ""),
        walk_label="walk" if n == 1 else f"walk, mean of {n} seeds",
        reference=reference,
    )
    metric = _metric_name(exp)
    seeds = (
        f"mean over {n} seeds with a ±1 sample-std band"
        if n > 1
        else f"seed {exp.seeds[0].seed} alone (one seed: no band)"
    )
    same = " The test MSE is the test loss: one panel." if duplicate_columns(curves) else ""
    stop = (
        f" Seeds {', '.join(map(str, early))} stopped before their step budget; the mean and "
        "band are over the seeds still running, and dotted lines mark where that number changes."
        if early
        else ""
    )
    sink.figure(
        fig,
        "phase2",
        "Phase-2 curves",
        f"Angle between ∇L and ∇R, R = ‖θ‖², |L − L0| (each seed's distance from its own "
        f"level, log scale, against the tolerance the walk held), test loss and {metric} "
        f"against predictor steps: {seeds}. Dashed red: weight decay at the λ with the best "
        f"mean test metric (λ = {format_lambda(lam)}){', mean over seeds' if n > 1 else ''}."
        f"{same}{stop}",
    )


def compute(exp: ExperimentRuns, sink: Sink) -> None:
    """``compute.csv``, ``compute.json`` and the compute-against-performance figure.

    Args:
        exp: The experiment.
        sink: Where its files go.
    """
    n, lam = len(exp.seeds), exp.best_lambda
    comp = compute_series(exp)
    sink.bands("compute.csv", "example_grads", _file_units({"test_metric": comp.walk}, exp.metric))
    unit = 100.0 if exp.metric == "accuracy" else 1.0  # files hold accuracy as a fraction
    sink.json(
        "compute.json",
        {
            "metric": exp.metric,
            "phase1_example_grads": comp.phase1_grads,
            "wd_lambda": comp.lam,
            "wd_example_grads": comp.wd_grads,
            "wd_test_metric_mean": comp.wd_metric[0] / unit,
            "wd_test_metric_std": comp.wd_metric[1] / unit,
            "seeds": n,
        },
    )
    metric = _metric_name(exp)
    sink.figure(
        compute_figure(exp.label, comp, n_seeds=n),
        "compute",
        "Compute against performance",
        f"{metric[0].upper() + metric[1:]} against example-wise gradient evaluations (phase 1's "
        f"{comp.phase1_grads:,.0f} included), "
        + (f"mean ± 1 std over {n} seeds" if n > 1 else "one seed")
        + f". Weight decay at λ = {format_lambda(lam)}: its final test metric after "
        f"{comp.wd_grads:,.0f} example-wise gradients (the runs record only their end).",
    )


def pca(exp: ExperimentRuns, sink: Sink, *, every: int, block: int | None) -> TrajectoryPCA:
    """``pca.json`` and the PCA figure of every seed's saved points.

    Args:
        exp: The experiment.
        sink: Where its files go.
        every: Use every ``every``-th saved point.
        block: Parameters per block (None: 64 MiB).

    Returns:
        The analysis (the surfaces use it).
    """
    n, lam = len(exp.seeds), exp.best_lambda
    parts, steps = [], []
    for s in exp.seeds:
        st, pa = s.trajectory(every)
        parts.append(pa)
        steps.append(st)
    tp = trajectory_pca(parts, steps, n_components=6, block=block)
    res = tp.pca
    walk_end = project(res, np.mean([s.final_theta() for s in exp.seeds], axis=0))
    wd_end = project(res, np.mean([s.wd_theta(lam, "full") for s in exp.seeds], axis=0))
    sink.json(
        "pca.json",
        {
            "experiment": exp.label,
            "seeds": [s.seed for s in exp.seeds],
            "n_points": res.n_points,
            "n_params": tp.points.n_params,
            "every": every,
            "explained_variance": res.explained_variance.tolist(),
            "explained_variance_ratio": res.explained_variance_ratio.tolist(),
            "total_variance": res.total_variance,
            "walk_endpoints_mean": walk_end.tolist(),
            "wd_endpoints_mean": wd_end.tolist(),
            "wd_lambda": lam,
        },
    )
    markers = [
        (walk_end, {"marker": "X", "s": 160, "color": WALK, "zorder": 3}, "mean of the walks' endpoints"),
        (wd_end, {"marker": "*", "s": 260, "color": WD, "zorder": 4},
         f"mean of weight decay's endpoints (λ = {format_lambda(lam)})"),
    ]  # fmt: skip
    fig = pca_figure(
        res.scores,
        res.explained_variance_ratio,
        tp.steps,
        title=f"{exp.label}: PCA of {res.n_points} saved walk points of {seeds_text(n)}",
        markers=markers,
    )
    ratio = res.explained_variance_ratio
    which = "every saved point" if every == 1 else f"every {every}th"
    sink.figure(
        fig,
        "pca",
        "Trajectories in the top principal components",
        f"PCA of {res.n_points} walk points ({which} of {seeds_text(n)}, "
        f"{tp.points.n_params:,} parameters each), coloured by predictor step. Blue cross: mean "
        f"of the walks' final θ; red star: mean of weight decay's final θ at "
        f"λ = {format_lambda(lam)}. The top {min(6, res.n_components)} components explain "
        f"{100 * ratio[:6].sum():.1f}% of the variance.",
    )
    return tp


def surface(
    exp: ExperimentRuns,
    sink: Sink,
    tp: TrajectoryPCA,
    evaluator: SeedProblem,
    label: str,
    k: int,
    *,
    grid: int,
    chunk: int,
    show_progress: bool,
    note: Callable[[str], None],
) -> None:
    """``surface-<label>.npz`` and the loss surface in the top-2 PCA plane of ``k`` walks.

    Args:
        exp: The experiment.
        sink: Where its files go.
        tp: The PCA of every seed's points.
        evaluator: The problem whose training loss is drawn (seed 0's).
        label: ``"1"``, ``"3"``, ``"all"``…
        k: The number of walks.
        grid: Grid points per axis.
        chunk: Weight vectors evaluated together.
        show_progress: A progress bar.
        note: Called with the reason when the surface cannot be drawn.
    """
    sub = tp.first_walks(k)
    if sub.n_components < 2:
        note(f"no {k}-walk loss surface: its points have fewer than 2 principal components")
        return
    plane = pca_plane(sub)
    scores = sub.scores[:, :2]
    a, b = square_axes(scores, grid)
    loss = surface_losses(
        evaluator,
        plane,
        a,
        b,
        chunk=chunk,
        show_progress=show_progress,
        label=f"{exp.label} surface ({k} walks)",
    )
    owner = tp.walk_index[sub.rows]
    level = float(exp.seeds[0].summary["walk"]["level"])
    sink.npz(
        f"surface-{label}.npz",
        a=a,
        b=b,
        loss=loss,
        scores=scores,
        seed_index=owner,
        steps=tp.steps[sub.rows],
        explained_variance_ratio=sub.explained_variance_ratio,
        level=level,
    )
    seeds = [s.seed for s in exp.seeds[:k]]
    walks = f"{k} walk" + ("s" if k != 1 else "")
    ratio = sub.explained_variance_ratio
    fig = surface_figure(
        a,
        b,
        loss,
        [scores[owner == i] for i in range(k)],
        title=f"{exp.label}: training loss in the top-2 PCA plane, {walks}\nPC1+PC2 explain "
        f"{percent(float(ratio[:2].sum()))} of the variance; {grid}×{grid} grid; loss on seed "
        f"{evaluator.seed}'s training set",
        axis_labels=(
            f"PC1 ({percent(float(ratio[0]))} of the variance)",
            f"PC2 ({percent(float(ratio[1]))} of the variance)",
        ),
        level=level,
    )
    sink.figure(
        fig,
        f"surface-{label}",
        f"Loss surface, {walks}",
        f"Training loss (seed {evaluator.seed}'s training set) over a {grid}×{grid} grid in the "
        f"plane of the top two principal components of the points of "
        f"seed{'s' if k > 1 else ''} {', '.join(map(str, seeds))}, mapped back to weight space "
        "as mean + a·PC1 + b·PC2 (equal scales on both axes); the walks projected on top. The "
        f"plane explains {100 * ratio[:2].sum():.1f}% of these points' variance.",
    )
