"""The figures, drawn with matplotlib's object API on the Agg canvas (no display, no pyplot).

matplotlib is imported when a figure is drawn, not when this module is imported, so the rest of
the package works without it; a missing matplotlib raises an ImportError naming the extra to
install. Each function takes the numbers computed elsewhere (:mod:`~manifoldwalk.plots.series`,
:mod:`~manifoldwalk.plots.pca`, :mod:`~manifoldwalk.plots.surface`) and returns a
``matplotlib.figure.Figure``; :func:`save_figure` writes it.

Colours: the walk is blue and solid, weight decay red and dashed (the line styles keep them
apart in grayscale); the PCA points and the loss surface use viridis, whose lightness rises
monotonically, so both survive grayscale printing.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.plots.bands import Band, count_changes
from manifoldwalk.plots.pca import PCAResult
from manifoldwalk.plots.series import PHASE2_QUANTITIES, ComputeSeries, quantity_label
from manifoldwalk.plots.surface import Surface

__all__ = [
    "FORMATS",
    "compute_figure",
    "format_lambda",
    "pca_figure",
    "phase2_figure",
    "png_bytes",
    "require_matplotlib",
    "save_figure",
    "seeds_text",
    "surface_figure",
]

FORMATS = ("png", "pdf", "svg")
"""The file formats :func:`save_figure` writes."""

WALK, WD = "#1f5fa8", "#c0392b"
_DPI = 110


def require_matplotlib() -> Any:
    """Import matplotlib (and its 3-D axes), or explain how to install it.

    Returns:
        The ``matplotlib.figure.Figure`` class.

    Raises:
        ImportError: When matplotlib is missing; the message names ``manifoldwalk[plot]``.
    """
    try:
        import matplotlib
        import mpl_toolkits.mplot3d  # noqa: F401  (registers the "3d" projection)
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "the figures need matplotlib, which is not installed: "
            "pip install 'manifoldwalk[plot]' (or pip install matplotlib)"
        ) from err
    matplotlib.rcParams["svg.fonttype"] = "none"
    return Figure


def seeds_text(n: int) -> str:
    """``"1 seed"`` or ``"n seeds"``.

    Args:
        n: The number of seeds.

    Returns:
        The phrase.
    """
    return f"{n} seed" + ("" if n == 1 else "s")


def format_lambda(lam: float) -> str:
    """λ as ``0`` or ``1e-3``.

    Args:
        lam: The value.

    Returns:
        A short string.
    """
    if lam == 0:
        return "0"
    e = math.log10(abs(lam))
    return f"1e{int(round(e))}" if abs(e - round(e)) < 1e-9 and lam > 0 else f"{lam:g}"


def _band(ax: Any, band: Band, label: str, color: str = WALK) -> None:
    ax.plot(band.x, band.mean, color=color, lw=1.6, label=label)
    ok = np.isfinite(band.std)
    if ok.any():
        ax.fill_between(
            band.x,
            band.mean - band.std,
            band.mean + band.std,
            where=ok,
            color=color,
            alpha=0.25,
            lw=0,
            label="±1 std over the seeds running",
        )


def _mark_counts(axes: Sequence[Any], band: Band, log: bool = False) -> None:
    """Dotted lines where the number of running seeds changes, labelled on the top axes.

    Changes closer together than 4% of the axis are drawn as one line, labelled with the
    count after the last of them.
    """
    changes = count_changes(band)
    if not changes:
        return
    x = np.log10(np.maximum(band.x, 1e-300)) if log else band.x
    span = float(x[-1] - x[0]) or 1.0
    pos = {float(v): float(t) for v, t in zip(band.x, x, strict=True)}
    groups: list[list[tuple[float, int]]] = []
    for change in changes:
        if groups and pos[change[0]] - pos[groups[-1][0][0]] < 0.04 * span:
            groups[-1].append(change)
        else:
            groups.append([change])
    for group in groups:
        x0, count = group[0][0], group[-1][1]
        for ax in axes:
            ax.axvline(x0, color="0.35", ls=":", lw=1.0)
        axes[0].annotate(
            f"{count} running",
            xy=(x0, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color="0.25",
        )


def phase2_figure(
    name: str,
    bands: dict[str, Band],
    wd: dict[str, tuple[float, float]] | None,
    *,
    metric: str,
    lam: float | None,
    n_seeds: int,
    n_early: int = 0,
) -> Any:
    """The phase-2 curves: one panel per quantity against predictor steps (Figs. 2–6).

    Args:
        name: The experiment.
        bands: Quantity → band (:func:`~manifoldwalk.plots.series.phase2_bands`).
        wd: Quantity → weight decay's ``(mean, std)`` at the best λ, drawn as a dashed line
            (None: none).
        metric: ``"accuracy"`` or ``"mse"``.
        lam: The best λ (for the legend).
        n_seeds: Seeds averaged.
        n_early: Seeds that stopped before their step budget.

    Returns:
        The figure.
    """
    Figure = require_matplotlib()
    fig = Figure(figsize=(7.5, 12.5), layout="constrained")
    axes = fig.subplots(len(PHASE2_QUANTITIES), 1, sharex=True)
    for ax, q in zip(axes, PHASE2_QUANTITIES, strict=True):
        band = bands[q]
        _band(ax, band, "walk" if n_seeds == 1 else f"walk, mean of {n_seeds} seeds")
        if q == "angle":
            ax.axhline(180.0, color="0.5", lw=0.8, ls="-.", label="180°")
        if wd is not None and q in wd and np.isfinite(wd[q][0]):
            ax.axhline(
                wd[q][0],
                color=WD,
                ls="--",
                lw=1.5,
                label=f"weight decay, λ = {format_lambda(lam or 0)} (mean)",
            )
        ax.set_ylabel(quantity_label(q, metric))
        ax.grid(True, alpha=0.3)
    handles, labels = {}, {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
            labels.setdefault(lab, lab)
    fig.legend(
        list(handles.values()), list(labels), loc="outside lower center", ncols=2, fontsize=9
    )
    _mark_counts(axes, bands[PHASE2_QUANTITIES[0]])
    axes[-1].set_xlabel("predictor steps")
    early = f"; {n_early} stopped early" if n_early else ""
    over = "1 seed" if n_seeds == 1 else f"mean ± 1 std over {n_seeds} seeds"
    fig.suptitle(
        f"{name}: phase-2 curves, {over}{early}",
        fontsize=12,
    )
    return fig


def compute_figure(name: str, series: ComputeSeries, *, n_seeds: int) -> Any:
    """Test accuracy (or MSE) against example-wise gradient evaluations (Fig. 7).

    Args:
        name: The experiment.
        series: From :func:`~manifoldwalk.plots.series.compute_series`.
        n_seeds: Seeds averaged.

    Returns:
        The figure.
    """
    Figure = require_matplotlib()
    fig = Figure(figsize=(7.5, 5.0), layout="constrained")
    ax = fig.subplots()
    _band(
        ax,
        series.walk,
        "phase 1 + walk" if n_seeds == 1 else f"phase 1 + walk, mean of {n_seeds} seeds",
    )
    ax.axvline(series.phase1_grads, color="0.4", ls=":", lw=1.2, label="end of phase 1")
    m, sd = series.wd_metric
    lam = format_lambda(series.lam)
    ax.errorbar(
        [series.wd_grads],
        [m],
        yerr=[[sd if np.isfinite(sd) else 0.0]] * 2,
        fmt="s",
        ms=7,
        color=WD,
        capsize=4,
        label=f"weight decay, λ = {lam}: end of training (mean ± std)",
    )
    ax.axhline(m, color=WD, ls="--", lw=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("example-wise gradient evaluations (phase 1 + walk; log scale)")
    ax.set_ylabel("test accuracy (%)" if series.metric == "accuracy" else "test MSE")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _mark_counts([ax], series.walk, log=True)
    ax.set_title(f"{name}: test performance against gradient evaluations ({seeds_text(n_seeds)})")
    return fig


def _percent(v: float) -> str:
    return f"{100 * v:.1f}%"


def pca_figure(
    name: str,
    pca: PCAResult,
    steps: np.ndarray,
    *,
    n_seeds: int,
    walk_end: np.ndarray,
    wd_end: np.ndarray | None,
    lam: float | None,
) -> Any:
    """The walks' points in the top 6 principal components, as two 3-D scatters (Fig. 8).

    Args:
        name: The experiment.
        pca: The analysis of every seed's saved points.
        steps: Each point's predictor step (colours from first to last).
        n_seeds: Seeds in the analysis.
        walk_end: Coordinates of the mean of the walks' final θ.
        wd_end: Coordinates of the mean of the weight-decay final θ at the best λ (or None).
        lam: The best λ.

    Returns:
        The figure.
    """
    Figure = require_matplotlib()
    k = pca.n_components
    scores = np.zeros((pca.n_points, 6))
    scores[:, : min(k, 6)] = pca.scores[:, :6]

    def pad(v: np.ndarray | None) -> np.ndarray | None:
        if v is None:
            return None
        out = np.zeros(6)
        out[: min(k, 6)] = np.asarray(v)[:6]
        return out

    walk_end, wd_end = pad(walk_end), pad(wd_end)
    ratio = np.zeros(6)
    ratio[: min(k, 6)] = pca.explained_variance_ratio[:6]
    # The mean endpoints (point, marker style, legend label), drawn over the walks' points.
    ends = [
        (walk_end, dict(marker="X", s=160, color=WALK, zorder=3), "mean of the walks' endpoints")
    ]
    if wd_end is not None:
        label = f"mean of weight decay's endpoints (λ = {format_lambda(lam or 0)})"
        ends.append((wd_end, dict(marker="*", s=260, color=WD, zorder=4), label))
    fig = Figure(figsize=(13.5, 6.4), layout="constrained")
    axes = [fig.add_subplot(1, 2, i + 1, projection="3d") for i in range(2)]
    scatter = None
    for ax, first in zip(axes, (0, 3), strict=True):
        cols = slice(first, first + 3)
        s = scores[:, cols]
        ax.computed_zorder = False  # the endpoint markers stay on top of the points
        scatter = ax.scatter(
            s[:, 0],
            s[:, 1],
            s[:, 2],
            c=steps,
            cmap="viridis",
            s=4,
            alpha=0.7,
            depthshade=False,
            zorder=1,
        )
        for point, style, label in ends:
            ax.scatter(
                *point[cols],
                edgecolors="black",
                linewidths=0.8,
                label=label,
                depthshade=False,
                **style,
            )
        for setter, j in zip((ax.set_xlabel, ax.set_ylabel, ax.set_zlabel), range(3), strict=True):
            c = first + j
            text = f"PC{c + 1} ({_percent(ratio[c])})" if c < k else f"PC{c + 1} (none)"
            setter(text, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_box_aspect(None, zoom=0.88)
        ax.set_title(f"PC{first + 1}–PC{first + 3}", fontsize=10)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.colorbar(scatter, ax=axes, shrink=0.6, label="predictor step")
    shares = ", ".join(f"PC{i + 1} {_percent(r)}" for i, r in enumerate(ratio[: min(k, 6)]))
    fig.suptitle(
        f"{name}: PCA of {pca.n_points} saved walk points of {seeds_text(n_seeds)}\n"
        f"explained variance: {shares}; top {min(k, 6)} together "
        f"{_percent(float(ratio.sum()))}",
        fontsize=11,
    )
    return fig


def surface_figure(
    name: str,
    pca: PCAResult,
    surface: Surface,
    trajectories: Sequence[np.ndarray],
    *,
    level: float | None,
    seeds: Sequence[int],
) -> Any:
    """The training loss over the PC1–PC2 grid with the projected walks on top (Figs. 9–11).

    Args:
        name: The experiment.
        pca: The analysis of these walks' points.
        surface: The evaluated grid.
        trajectories: Per walk, its points' ``(m, 2)`` coordinates in the plane, in step order.
        level: The walk's loss level on the surface's training set (drawn as a dashed contour).
        seeds: The walks' seeds.

    Returns:
        The figure.
    """
    Figure = require_matplotlib()
    from matplotlib import colors, patheffects

    fig = Figure(figsize=(7.8, 6.4), layout="constrained")
    ax = fig.subplots()
    loss = np.asarray(surface.loss)
    finite = loss[np.isfinite(loss)]
    log = finite.size and finite.min() > 0 and finite.max() / finite.min() > 3
    if log:
        lo, hi = np.log10(finite.min()), np.log10(finite.max())
        levels = np.logspace(lo, hi, 25)
        norm = colors.LogNorm(vmin=10**lo, vmax=10**hi)
    else:
        levels, norm = 25, None
    filled = ax.contourf(surface.a, surface.b, loss, levels=levels, norm=norm, cmap="viridis")
    cbar = fig.colorbar(filled, ax=ax)
    if log:
        from matplotlib.ticker import FixedLocator, FormatStrFormatter

        cbar.ax.yaxis.set_major_locator(FixedLocator(np.logspace(lo, hi, 7)))
        cbar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        cbar.ax.yaxis.set_minor_locator(FixedLocator([]))
    cbar.set_label("training loss" + (" (log scale)" if log else ""))
    if level is not None and finite.size and finite.min() < level < finite.max():
        ax.contour(surface.a, surface.b, loss, levels=[level], colors="#ff7f0e", linestyles="--")
        ax.plot([], [], color="#ff7f0e", ls="--", label=f"L = walk level ({level:.4g})")
    outline = [patheffects.Stroke(linewidth=2.6, foreground="black"), patheffects.Normal()]
    for i, t in enumerate(trajectories):
        ax.plot(
            t[:, 0],
            t[:, 1],
            color="white",
            lw=1.3,
            path_effects=outline,
            label="walks (projected)" if i == 0 else None,
        )
        ax.plot(
            t[0, 0],
            t[0, 1],
            "o",
            ms=6,
            mfc="white",
            mec="black",
            label="start (end of phase 1)" if i == 0 else None,
        )
        ax.plot(
            t[-1, 0],
            t[-1, 1],
            "X",
            ms=8,
            mfc="white",
            mec="black",
            label="end of walk" if i == 0 else None,
        )
    ratio = pca.explained_variance_ratio
    r2 = float(ratio[:2].sum())
    ax.set_xlabel(f"PC1 ({_percent(float(ratio[0]))} of the variance)")
    ax.set_ylabel(f"PC2 ({_percent(float(ratio[1]))} of the variance)")
    ax.legend(fontsize=8, loc="best", framealpha=0.85)
    walks = f"{len(seeds)} walk" + ("s" if len(seeds) != 1 else "")
    n = f"{len(surface.a)}×{len(surface.b)}"
    ax.set_title(
        f"{name}: training loss in the top-2 PCA plane, {walks}\n"
        f"PC1+PC2 explain {_percent(r2)} of the variance; {n} grid; "
        f"loss on seed {surface.seed}'s training set",
        fontsize=10,
    )
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str], fmt: str = "png") -> Path:
    """Write a figure as PNG, PDF or SVG.

    Args:
        fig: The figure.
        path: The file, without or with the suffix (it is set to ``fmt``).
        fmt: One of :data:`FORMATS`.

    Returns:
        The path written.

    Raises:
        ValueError: For an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    path = Path(path).with_suffix(f".{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
    fig.savefig(path, format=fmt, dpi=_DPI, metadata=meta[fmt])
    return path


def png_bytes(fig: Any, dpi: int = 90) -> bytes:
    """The figure as PNG bytes (for embedding in the HTML report).

    Args:
        fig: The figure.
        dpi: Resolution.

    Returns:
        The PNG file's contents.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
