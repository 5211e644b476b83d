"""The line figures: walk curves (the paper's phase-2 panels) and compute against performance.

Each function takes numbers computed elsewhere (:mod:`~manifoldwalk.plots.curves`,
:mod:`~manifoldwalk.plots.series`) and returns a ``matplotlib.figure.Figure`` drawn on the Agg
canvas. The walk's lines are drawn above the reference lines (weight decay, 180°, the
tolerance), legends sit outside the axes, and a column that repeats another (a regression's test
loss and its test MSE) is drawn once. The PCA and surface figures are
:mod:`~manifoldwalk.plots.figures_space`'s; the shared style is :mod:`~manifoldwalk.plots.style`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from manifoldwalk.plots.bands import Band, count_changes
from manifoldwalk.plots.curves import Curves, duplicate_columns
from manifoldwalk.plots.series import ComputeSeries
from manifoldwalk.plots.style import (
    FORMATS,
    WALK,
    WD,
    figure_bytes,
    format_lambda,
    png_bytes,
    require_matplotlib,
    save_figure,
    seeds_text,
)

__all__ = [
    "FORMATS",
    "compute_figure",
    "curves_figure",
    "figure_bytes",
    "format_lambda",
    "png_bytes",
    "require_matplotlib",
    "save_figure",
    "seeds_text",
]

_ABOVE, _BELOW = 3, 1
"""zorders: the walk's lines above the reference lines."""


def _band(ax: Any, band: Band, label: str, color: str = WALK) -> None:
    ax.plot(band.x, band.mean, color=color, lw=1.6, label=label, zorder=_ABOVE)
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
            label="±1 std over the walks running",
            zorder=_ABOVE - 1,
        )


def _mark_counts(axes: Sequence[Any], band: Band, log: bool = False) -> None:
    """Dotted lines where the number of running walks changes, labelled on the top axes.

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
            ax.axvline(x0, color="0.35", ls=":", lw=1.0, zorder=_BELOW)
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


def _deviation_panel(ax: Any, curves: Curves) -> None:
    """|L − L0| of each walk (log scale) against the tolerance each walk held."""
    single = len(curves.walks) == 1
    positive = False
    for i, w in enumerate(curves.walks):
        dev = w["deviation"]
        positive |= bool(np.any(dev > 0))
        ax.plot(
            w[curves.x_name],
            dev,
            color=WALK,
            lw=1.2 if single else 0.9,
            alpha=1.0 if single else 0.7,
            label=("|L − L0|" if single else "|L − L0| of each walk") if i == 0 else None,
            zorder=_ABOVE,
        )
    for j, tol in enumerate(sorted({float(t) for t in curves.tolerance if np.isfinite(t)})):
        ax.axhline(
            tol,
            color="0.3",
            ls="--",
            lw=1.2,
            label="tolerance the walk held" if j == 0 else None,
            zorder=_BELOW,
        )
    if positive:
        ax.set_yscale("log", nonpositive="mask")


def curves_figure(
    curves: Curves,
    *,
    title: str,
    x_label: str = "predictor steps",
    walk_label: str | None = None,
    reference: Mapping[str, tuple[float, str]] | None = None,
) -> Any:
    """One panel per column against x: the mean ± std band over the walks (each walk's own
    line when there is one), |L − L0| per walk against the tolerance, reference lines below.

    Args:
        curves: The walks' numbers (:func:`~manifoldwalk.plots.curves.curves_data`).
        title: The figure's title.
        x_label: The x axis's label.
        walk_label: The walk line's legend (None: "walk" or "mean of n walks").
        reference: Column → ``(value, legend)`` drawn as a dashed red line (e.g. weight decay).

    Returns:
        The figure.
    """
    Figure = require_matplotlib()
    dropped = duplicate_columns(curves)
    columns = [c for c in curves.columns if c not in dropped]
    labels = dict(curves.labels)
    for gone, kept in dropped.items():
        labels[kept] = f"{labels[kept]} (= {labels[gone]})"
    n = len(curves.walks)
    label = walk_label or ("walk" if n == 1 else f"mean of {n} walks")
    fig = Figure(figsize=(7.5, 1.2 + 2.25 * len(columns)), layout="constrained")
    axes = fig.subplots(len(columns), 1, sharex=True, squeeze=False)[:, 0]
    for ax, c in zip(axes, columns, strict=True):
        if c == "deviation":
            _deviation_panel(ax, curves)
        else:
            _band(ax, curves.bands[c], label)
        if c == "angle":
            ax.axhline(180.0, color="0.5", lw=0.8, ls="-.", label="180°", zorder=_BELOW)
        if reference and c in reference and np.isfinite(reference[c][0]):
            value, text = reference[c]
            ax.axhline(value, color=WD, ls="--", lw=1.5, label=text, zorder=_BELOW)
        ax.set_ylabel(labels[c], fontsize=9)
        ax.grid(True, alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncols=2, fontsize=8
    )
    _mark_counts(axes, curves.bands[curves.columns[0]])
    axes[-1].set_xlabel(x_label)
    fig.suptitle(title, fontsize=11)
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
    fig = Figure(figsize=(7.5, 5.4), layout="constrained")
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
        zorder=_ABOVE + 1,
    )
    ax.axhline(m, color=WD, ls="--", lw=1.2, zorder=_BELOW)
    ax.set_xscale("log")
    ax.set_xlabel("example-wise gradient evaluations (phase 1 + walk; log scale)")
    ax.set_ylabel("test accuracy (%)" if series.metric == "accuracy" else "test MSE")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    _mark_counts([ax], series.walk, log=True)
    ax.set_title(f"{name}: test performance against gradient evaluations ({seeds_text(n_seeds)})")
    return fig
