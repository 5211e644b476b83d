"""Figures of your own walks: curves, the PCA of trajectories and loss surfaces from WalkResults.

Each function takes :class:`~manifoldwalk.WalkResult` s of any problem (analytic, or an
adapter's model problem with θ a torch, JAX or numpy array) and returns a :class:`FigureData`:
the matplotlib figure and the arrays drawn in it, so that the numbers can be checked, saved or
drawn again another way. ``manifoldwalk plot`` draws its figures of run directories with the
same code (:mod:`~manifoldwalk.plots.curves`, :mod:`~manifoldwalk.plots.trajectories`,
:mod:`~manifoldwalk.plots.planes`, :mod:`~manifoldwalk.plots.surface`).

Example::

    result = mw.walk(problem, problem.theta0, record=mw.Record(every=10, trajectory_every=10))
    curves = walk_curves(result)                    # R, angle, |L − L0|, metric columns
    pcs = pca_trajectories([result])
    surf = loss_surface(problem, result.theta, results=[result], plane="filter")
    surf.save("surface.png"); surf.data["loss"]  # the figure; the grid's losses
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk._array import to_numpy
from manifoldwalk._history import HISTORY_COLUMNS
from manifoldwalk.plots.curves import CURVE_COLUMNS, curves_data, series_of
from manifoldwalk.plots.figures import curves_figure
from manifoldwalk.plots.figures_space import pca_figure, surface_figure
from manifoldwalk.plots.losses import plane_evaluator
from manifoldwalk.plots.planes import (
    PLANES,
    Plane,
    filter_plane,
    pca_plane,
    random_plane,
    square_axes,
)
from manifoldwalk.plots.style import percent, require_matplotlib, save_figure
from manifoldwalk.plots.surface import surface_losses
from manifoldwalk.plots.trajectories import result_points, trajectory_pca

__all__ = ["FigureData", "loss_surface", "pca_trajectories", "walk_curves"]

_LABELS = {"angle": "angle(∇L, ∇R) (degrees)", "reg": "R", "deviation": "|L − L0|"}
_X_LABELS = {
    "n_predictor": "predictor steps",
    "n_grad_evals": "gradient evaluations",
    "step": "steps (predictor + corrector)",
}


@dataclass(frozen=True)
class FigureData:
    """A figure and the arrays drawn in it.

    Attributes:
        figure: The ``matplotlib.figure.Figure`` (Agg canvas; ``figure.savefig(path)`` writes
            it, and in Jupyter it displays as the cell's value).
        data: Name → numpy array, as each function documents.
    """

    figure: Any
    data: dict[str, np.ndarray]

    def save(self, path: str | os.PathLike[str], fmt: str = "png", dpi: int = 110) -> Path:
        """Write the figure (never through a link at ``path``: a link there is replaced).

        Args:
            path: The file; its suffix is set to ``fmt``.
            fmt: ``"png"``, ``"pdf"`` or ``"svg"``.
            dpi: Resolution (PNG).

        Returns:
            The path written.
        """
        return save_figure(self.figure, path, fmt, dpi)

    def _repr_png_(self) -> bytes:
        from manifoldwalk.plots.style import png_bytes

        return png_bytes(self.figure)


def _as_list(results: Any) -> list[Any]:
    if hasattr(results, "history") and hasattr(results, "level"):
        return [results]
    return list(results)


def walk_curves(
    results: Any,
    *,
    metrics: Sequence[str] | None = None,
    x: str = "n_predictor",
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> FigureData:
    """The walk curves: angle(∇L, ∇R), R, |L − L0| and metric columns against x.

    With several results each panel shows the mean over the walks running at each x with a
    ±1 sample-std band (:mod:`~manifoldwalk.plots.bands`); |L − L0| is drawn for each walk,
    on a log scale, against the tolerance each walk held (the quantity the walk keeps small,
    not the spread of the walks' levels). A column equal to an earlier one in every walk is
    drawn once.

    Args:
        results: A :class:`~manifoldwalk.WalkResult` or several (each with history rows:
            ``Record(every=k)``).
        metrics: History columns beyond the built-in ones to draw (None: every such column
            all the results hold, e.g. those of ``Record(metrics=...)``; ``()``: none).
        x: The x column: ``"n_predictor"`` (default), ``"n_grad_evals"`` or ``"step"``.
        labels: Column → axis label, overriding the defaults.
        title: The figure's title (None: a description).

    Returns:
        :class:`FigureData` with ``x`` and ``running`` (the band's grid and the number of walks
        running there), ``<column>_mean`` and ``<column>_std`` for each column, per walk ``i``
        ``x/<i>`` and ``<column>/<i>`` (its own records), and ``tolerance`` (per walk).

    Raises:
        ValueError: No results, a result without history rows, or a column some result lacks.
        ImportError: matplotlib is missing.
    """
    require_matplotlib()
    walks = [series_of(r) for r in _as_list(results)]
    if not walks:
        raise ValueError("no walks to draw: pass at least one WalkResult")
    if metrics is None:
        common = set.intersection(*(set(w.history) for w in walks))
        metrics = [c for c in walks[0].history if c in common and c not in HISTORY_COLUMNS]
    columns = list(CURVE_COLUMNS) + [m for m in metrics if m not in CURVE_COLUMNS]
    names = {**_LABELS, **(labels or {})}
    curves = curves_data(walks, columns, x=x, labels=names)
    n = len(walks)
    fig = curves_figure(
        curves,
        title=title
        or f"walk curves, {n} walk{'s' if n != 1 else ''}" + (" (mean ± 1 std)" if n > 1 else ""),
        x_label=_X_LABELS.get(x, x),
    )
    return FigureData(fig, curves.arrays())


def pca_trajectories(
    results: Any,
    *,
    n_components: int = 6,
    every: int = 1,
    block: int | None = None,
    title: str | None = None,
) -> FigureData:
    """The walks' kept θ in their top principal components (the exact Gram-matrix PCA).

    Drawn as 3-D scatters of PC1–3 and PC4–6 coloured by predictor step, each walk's final θ
    marked; components explaining less than 10⁻⁶ of the variance get no panel (the title
    says so), and with fewer than 3 such components the scatter is 2-D.

    Args:
        results: :class:`~manifoldwalk.WalkResult` s with trajectories
            (``Record(trajectory_every=k)``).
        n_components: Components wanted.
        every: Use every ``every``-th kept point.
        block: Parameters per block of the passes over the points (None: 64 MiB).
        title: The title's first line (None: a description).

    Returns:
        :class:`FigureData` with ``scores`` ``(n, k)``, ``walk_index`` and ``steps`` ``(n,)``,
        ``explained_variance`` and ``explained_variance_ratio`` ``(k,)``, ``mean`` ``(P,)``,
        ``components`` ``(k, P)`` and ``endpoints`` (each walk's final θ projected, ``(w, k)``).

    Raises:
        ValueError: No results, a result without a trajectory, or fewer than 2 points.
        ImportError: matplotlib is missing.
    """
    require_matplotlib()
    results = _as_list(results)
    parts, steps = result_points(results, every)
    tp = trajectory_pca(parts, steps, n_components=n_components, block=block)
    pca = tp.pca
    finals = np.stack([np.asarray(to_numpy(r.theta), np.float64) for r in results])
    ends = (finals - pca.mean) @ pca.components.T
    markers = [
        (
            e,
            {"marker": "X", "s": 110, "color": "#ff7f0e", "zorder": 3},
            "final θ" if i == 0 else "_nolegend_",
        )
        for i, e in enumerate(ends)
    ]
    n = len(results)
    fig = pca_figure(
        pca.scores,
        pca.explained_variance_ratio,
        tp.steps,
        title=title or f"PCA of {pca.n_points} kept points of {n} walk{'s' if n != 1 else ''}",
        markers=markers,
        wanted=n_components,
    )
    data = {
        "scores": pca.scores,
        "walk_index": tp.walk_index,
        "steps": tp.steps,
        "explained_variance": pca.explained_variance,
        "explained_variance_ratio": pca.explained_variance_ratio,
        "mean": pca.mean,
        "components": pca.components,
        "endpoints": ends,
    }
    return FigureData(fig, data)


def _filter_axis(problem: Any) -> int:
    """The output-unit axis of a problem's parameters: −1 for JAX and Keras kernels
    ``(…, in, out)``, 0 otherwise (PyTorch's ``(out, in, …)``)."""
    package = type(problem).__module__.split(".")[0]
    return -1 if package in ("manifoldwalk_jax", "manifoldwalk_tf") else 0


def _plane(
    kind: str,
    problem: Any,
    center: np.ndarray,
    results: list[Any],
    rng: np.random.Generator,
    param_shapes: Sequence[tuple[int, ...]] | None,
    filter_axis: int | None,
) -> Plane:
    if kind == "pca":
        if not results:
            raise ValueError(
                "plane='pca' is the PCA of walks: pass results=[...] with trajectories"
            )
        parts, steps = result_points(results)
        return pca_plane(trajectory_pca(parts, steps, n_components=2).pca, center)
    if kind == "random":
        return random_plane(center, rng)
    shapes = param_shapes if param_shapes is not None else getattr(problem, "param_shapes", None)
    if shapes is None:
        raise ValueError(
            f"plane='filter' needs the parameters' shapes, and {type(problem).__name__} has no "
            "param_shapes (an adapter's model problem has): pass param_shapes=[...] in θ's "
            "order, or use plane='random'"
        )
    axis = _filter_axis(problem) if filter_axis is None else filter_axis
    return filter_plane(center, [tuple(s) for s in shapes], rng, axis)


def _walk_points(result: Any) -> np.ndarray:
    """A walk's kept θ, then its final θ where that is not the last kept one."""
    final = np.asarray(to_numpy(result.theta), np.float64)[None]
    if result.trajectory is None or len(result.trajectory) == 0:
        return final
    traj = np.asarray(to_numpy(result.trajectory), np.float64)
    return traj if np.array_equal(traj[-1], final[0]) else np.vstack([traj, final])


def loss_surface(
    problem: Any,
    center: Any,
    *,
    results: Any = (),
    plane: str = "pca",
    resolution: int = 51,
    span: float | None = None,
    seed: int = 0,
    param_shapes: Sequence[tuple[int, ...]] | None = None,
    filter_axis: int | None = None,
    chunk: int = 64,
    show_progress: bool = True,
    title: str | None = None,
) -> FigureData:
    """The loss over a 2-D plane through ``center``, with the walks projected onto it.

    Grid point ``(a, b)`` is ``center + a·d1 + b·d2``; the directions (:mod:`~manifoldwalk.plots.planes`):

    - ``"pca"``: the top two principal components of the results' kept θ (unit, orthogonal);
    - ``"random"``: two orthogonal Gaussian directions, each as long as ``center``;
    - ``"filter"``: filter-normalised Gaussian directions (Li et al., 2018): each filter (an
      output unit's slice of a parameter of rank ≥ 2) scaled to that filter's norm in
      ``center``; biases and other parameters of rank ≤ 1 get direction 0. Needs the
      parameters' shapes: an adapter's problem has them (``param_shapes``); give
      ``param_shapes`` for any other problem.

    A walk is drawn as its kept θ and final θ, projected orthogonally onto the plane. The losses
    are evaluated by the problem's batched ``plane_losses(origin, basis, coords, *, chunk,
    progress)`` where it has one, else one ``problem.loss`` per point, with θ converted to the
    problem's array type, dtype and device (its ``theta0``'s, or ``center``'s).

    Args:
        problem: The Problem whose loss is drawn.
        center: The plane's origin θc (e.g. a walk's final θ), of the problem's length; any
            array type.
        results: :class:`~manifoldwalk.WalkResult` s to project (needed for ``"pca"``).
        plane: ``"pca"``, ``"random"`` or ``"filter"``.
        resolution: Grid points per axis (``resolution²`` loss evaluations).
        span: The grid covers ``[−span, span]`` on both axes (None: ±1 for random and filter
            planes, Li et al.'s range; for the PCA plane a square covering the projected walks
            and the centre with a 15 % margin).
        seed: The random directions' seed.
        param_shapes: The trainable parameters' shapes in θ's order (None: the problem's
            ``param_shapes``).
        filter_axis: The output-unit axis of each parameter (None: 0 for PyTorch problems,
            −1 for JAX and Keras problems, whose kernels are ``(…, in, out)``).
        chunk: Weight vectors per batched call (or between progress reports).
        show_progress: A progress bar (a tqdm widget inside Jupyter when tqdm is installed).
        title: The title (None: a description).

    Returns:
        :class:`FigureData` with ``a`` and ``b`` (the grid's axes), ``loss``
        ``(len(b), len(a))``, ``center`` ``(P,)``, ``directions`` ``(2, P)``, per walk ``i``
        ``walk/<i>`` ``(m, 2)`` (its points' coordinates) and, for a PCA plane,
        ``explained_variance_ratio`` of the two directions.

    Raises:
        ValueError: An unknown plane, a bad resolution or span, a centre or walk of another
            length than the problem's θ, ``"pca"`` without walks that kept θ, or ``"filter"``
            without parameter shapes.
        ImportError: matplotlib is missing.
    """
    require_matplotlib()
    if plane not in PLANES:
        raise ValueError(f"unknown plane {plane!r}; choose one of: {', '.join(PLANES)}")
    if not (isinstance(resolution, int) and resolution >= 2):
        raise ValueError(f"resolution must be an integer of at least 2, got {resolution!r}")
    if span is not None and not (np.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive number, got {span!r}")
    results = _as_list(results)
    c = np.asarray(to_numpy(center), np.float64)
    n = getattr(problem, "n_params", None) or getattr(problem, "dim", None) or c.size
    if c.ndim != 1 or c.size != n:
        raise ValueError(f"center must be a flat θ of length {n}, got shape {c.shape}")
    walks_theta = [_walk_points(r) for r in results]
    for i, w in enumerate(walks_theta):
        if w.shape[1] != c.size:
            raise ValueError(f"walk {i} has θ of length {w.shape[1]}, the centre {c.size}")
    pl = _plane(plane, problem, c, results, np.random.default_rng(seed), param_shapes, filter_axis)
    coords = [pl.project(w) for w in walks_theta]
    if span is None and plane == "pca":
        a, b = square_axes(np.vstack([*coords, np.zeros((1, 2))]), resolution)
    else:
        half = 1.0 if span is None else float(span)
        a = b = np.linspace(-half, half, resolution)
    like = getattr(problem, "theta0", None)
    evaluator = plane_evaluator(problem, center if like is None else like)
    loss = surface_losses(
        evaluator, pl, a, b, chunk=chunk, show_progress=show_progress, label=f"{plane} plane"
    )
    if plane == "pca":
        ratio = pl.explained_variance_ratio
        labels = (f"PC1 ({percent(ratio[0])} of the walks' variance)", f"PC2 ({percent(ratio[1])})")
    elif plane == "random":
        labels = ("d1 (random, ‖d1‖ = ‖θc‖)", "d2 (random, ‖d2‖ = ‖θc‖, orthogonal to d1)")
    else:
        labels = ("d1 (random, filter-normalised)", "d2 (random, filter-normalised)")
    level = float(results[0].level) if results else None
    fig = surface_figure(
        a,
        b,
        loss,
        coords,
        title=title or f"loss on the {plane} plane through θc, {resolution}×{resolution} grid",
        axis_labels=labels,
        level=level,
        center_label="θc (the plane's centre)",
    )
    data = {"a": np.asarray(a), "b": np.asarray(b), "loss": loss, "center": pl.center}
    data["directions"] = pl.directions
    data.update({f"walk/{i}": w for i, w in enumerate(coords)})
    if pl.explained_variance_ratio is not None:
        data["explained_variance_ratio"] = np.asarray(pl.explained_variance_ratio)
    return FigureData(fig, data)
