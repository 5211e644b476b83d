"""The figures in weight space: the walks' points in principal components, and loss surfaces.

Each function takes arrays (:mod:`~manifoldwalk.plots.trajectories`,
:mod:`~manifoldwalk.plots.planes`, :mod:`~manifoldwalk.plots.surface`) and returns a
``matplotlib.figure.Figure``. Components that explain less than 10⁻⁶ of the variance get no
panel (the title says so); surfaces are drawn with equal scales on both axes; the projected
walks are drawn over the surface; legends sit outside the axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from manifoldwalk.plots.style import WALK, percent, require_matplotlib
from manifoldwalk.plots.trajectories import MIN_VARIANCE_RATIO, significant_components

__all__ = ["Marker", "pca_figure", "surface_figure"]

Marker = tuple[np.ndarray, dict[str, Any], str]
"""A point drawn over the PCA scatter: its coordinates, matplotlib style, legend text."""


def _axis_label(c: int, ratio: np.ndarray) -> str:
    return f"PC{c + 1} ({percent(float(ratio[c]))})"


def pca_figure(
    scores: np.ndarray,
    ratio: np.ndarray,
    steps: np.ndarray,
    *,
    title: str,
    markers: Sequence[Marker] = (),
    wanted: int = 6,
) -> Any:
    """The points in their top principal components: 3-D scatters of PC1–3 and PC4–6 (Fig. 8),
    or one 2-D scatter when fewer than 3 components carry variance.

    A group of three components gets a panel only if its first component explains at least
    :data:`~manifoldwalk.plots.trajectories.MIN_VARIANCE_RATIO` of the variance; the title
    names the components left out.

    Args:
        scores: ``(n, k)`` the points' coordinates.
        ratio: ``(k,)`` each component's share of the variance.
        steps: ``(n,)`` each point's predictor step (the colour).
        title: The first line of the title.
        markers: Points drawn on top (e.g. mean endpoints), coordinates ``(k,)``.
        wanted: The number of components asked for (those missing are named).

    Returns:
        The figure.
    """
    Figure = require_matplotlib()
    k = significant_components(ratio)
    scores = np.asarray(scores)[:, :k]
    flat = k < 3

    def pad(v: np.ndarray, width: int) -> np.ndarray:
        out = np.zeros(v.shape[:-1] + (width,))
        m = min(v.shape[-1], width)
        out[..., :m] = v[..., :m]
        return out

    groups = [(0, 2)] if flat else [(g, 3) for g in (0, 3) if g < k]
    fig = Figure(figsize=(6.8 * len(groups), 6.4), layout="constrained")
    scatter = None
    for n, (first, width) in enumerate(groups):
        ax = fig.add_subplot(1, len(groups), n + 1, **({} if flat else {"projection": "3d"}))
        s = pad(scores[:, first:], width)
        extra = {} if flat else {"depthshade": False}
        if not flat:
            ax.computed_zorder = False  # the markers stay on top of the points
        scatter = ax.scatter(
            *s.T, c=steps, cmap="viridis", s=6 if flat else 4, alpha=0.7, zorder=1, **extra
        )
        for point, style, label in markers:
            p = pad(np.asarray(point, float)[first:k], width)
            ax.scatter(*p, edgecolors="black", linewidths=0.8, label=label, **style, **extra)
        setters = (ax.set_xlabel, ax.set_ylabel) + (() if flat else (ax.set_zlabel,))
        for j, setter in enumerate(setters):
            c = first + j
            setter(_axis_label(c, ratio) if c < k else f"PC{c + 1} (no variance)", fontsize=9)
        ax.tick_params(labelsize=7)
        if flat:
            ax.grid(True, alpha=0.3)
        else:
            ax.set_box_aspect(None, zoom=0.88)
            ax.set_title(f"PC{first + 1}–PC{first + 3}", fontsize=10)
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(
            list(handles.values()), list(handles), loc="outside lower center", ncols=2, fontsize=8
        )
    fig.colorbar(scatter, ax=fig.axes, shrink=0.6, label="predictor step")
    shown = min(k, 6)
    shares = ", ".join(f"PC{i + 1} {percent(r)}" for i, r in enumerate(ratio[:shown]))
    left = f"PC{k + 1}" + (f"–PC{wanted}" if wanted > k + 1 else "")
    note = (
        f"\n{left} not drawn: each explains < {MIN_VARIANCE_RATIO:g} of the variance"
        if k < wanted
        else ""
    )
    fig.suptitle(
        f"{title}\nexplained variance: {shares}; together {percent(float(ratio[:shown].sum()))}"
        f"{note}",
        fontsize=10,
    )
    return fig


def _contour(fig: Any, ax: Any, a: np.ndarray, b: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Filled contours of the loss (log colours when it spans more than a factor 3)."""
    from matplotlib import colors
    from matplotlib.ticker import FixedLocator, FormatStrFormatter

    finite = loss[np.isfinite(loss)]
    log = bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 3)
    if log:
        lo, hi = np.log10(finite.min()), np.log10(finite.max())
        levels, norm = np.logspace(lo, hi, 25), colors.LogNorm(vmin=10**lo, vmax=10**hi)
    elif finite.size and finite.max() > finite.min():
        levels, norm = np.linspace(finite.min(), finite.max(), 25), None
    else:
        levels, norm = 25, None
    filled = ax.contourf(a, b, loss, levels=levels, norm=norm, cmap="viridis", zorder=0)
    cbar = fig.colorbar(filled, ax=ax)
    if log:
        cbar.ax.yaxis.set_major_locator(FixedLocator(np.logspace(lo, hi, 7)))
        cbar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        cbar.ax.yaxis.set_minor_locator(FixedLocator([]))
    cbar.set_label("training loss" + (" (log scale)" if log else ""))
    return finite


def surface_figure(
    a: np.ndarray,
    b: np.ndarray,
    loss: np.ndarray,
    walks: Sequence[np.ndarray],
    *,
    title: str,
    axis_labels: tuple[str, str],
    level: float | None = None,
    center_label: str | None = None,
) -> Any:
    """The loss over a grid of a plane with the projected walks on top (Figs. 9–11).

    Args:
        a: The grid's first axis.
        b: Its second axis.
        loss: ``(len(b), len(a))`` losses.
        walks: Per walk, its points' ``(m, 2)`` coordinates in the plane, in step order.
        title: The title.
        axis_labels: The two axes' labels.
        level: The walks' loss level (drawn as a dashed contour where inside the grid).
        center_label: If given, the plane's centre (0, 0) is marked with this legend.

    Returns:
        The figure.
    """
    Figure = require_matplotlib()
    from matplotlib import patheffects

    fig = Figure(figsize=(7.4, 7.2), layout="constrained")
    ax = fig.subplots()
    loss = np.asarray(loss)
    finite = _contour(fig, ax, a, b, loss)
    if level is not None and finite.size and finite.min() < level < finite.max():
        ax.contour(a, b, loss, levels=[level], colors="#ff7f0e", linestyles="--", zorder=1)
        ax.plot([], [], color="#ff7f0e", ls="--", label=f"L = walk level ({level:.4g})")
    if center_label:
        ax.plot(0, 0, "P", ms=11, mfc="#ff7f0e", mec="black", label=center_label, zorder=2)
    outline = [patheffects.Stroke(linewidth=2.6, foreground="black"), patheffects.Normal()]
    for i, t in enumerate(walks):
        first = i == 0
        ax.plot(*t.T, color="white", lw=1.3, path_effects=outline, zorder=3,
                label="walks (projected)" if first else None)  # fmt: skip
        ax.plot(*t[0], "o", ms=6, mfc="white", mec="black", zorder=4,
                label="start" if first else None)  # fmt: skip
        ax.plot(*t[-1], "X", ms=8, mfc=WALK, mec="black", zorder=4,
                label="end of walk" if first else None)  # fmt: skip
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlim(a[0], a[-1])
    ax.set_ylim(b[0], b[-1])
    ax.set_xlabel(axis_labels[0])
    ax.set_ylabel(axis_labels[1])
    if ax.get_legend_handles_labels()[0]:
        fig.legend(loc="outside lower center", ncols=3, fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig
