"""The studies' figures, and ``manifoldwalk plot`` on a study's run directory.

A study's directory is recognised by the ``"study"`` marker of its ``config.json``
(:data:`STUDIES`); only finished, intact studies are read, and only the files their ``DONE``
lists, each checked against its SHA-256 as it is read
(:func:`~manifoldwalk.experiments.rundir.read_listed`). For each, :func:`plot_study` writes
into ``OUT/<experiment>/<study>/``::

    connect.<fmt>    per ordered pair, the training loss along the straight line and along the
                     walk's path (then the straight gap to the target), against the progress
                     toward the target; the level c as a line
    connect.csv      one row per pair: its numbers (remaining distance, barriers, stop reason)
    ensemble.<fmt>   per quantity (R, test loss, test metric, sharpness), the random walks' end
                     points against θ0, the −∇R walk's end and the weight-decay nets
    ensemble.csv     one row per point: its numbers
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.experiments import rundir
from manifoldwalk.plots.style import WALK, WD, figure_bytes, require_matplotlib

__all__ = [
    "STUDIES",
    "StudyData",
    "connectivity_figure",
    "ensemble_figure",
    "load_study",
    "plot_studies",
    "plot_study",
    "study_dirs",
]

STUDIES = ("connect", "ensemble")
"""The studies' names: the ``"study"`` marker of their ``config.json`` and their directory's."""

_PANELS = (
    ("reg", "R = ‖θ‖²"),
    ("test_loss", "test loss"),
    ("test_metric", "test {metric}"),
    ("sharpness", "sharpness (largest Hessian eigenvalue)"),
)


@dataclass
class StudyData:
    """A finished study read back from its run directory.

    Attributes:
        directory: The run directory.
        config: Its ``config.json``.
        summary: Its ``summary.json``.
        listing: What its ``DONE`` lists (name → size and SHA-256).
    """

    directory: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    listing: dict[str, Any]

    @property
    def study(self) -> str:
        """The study's name (``"connect"`` or ``"ensemble"``)."""
        return str(self.config["study"])

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of one of its ``.npz`` files, checked against ``DONE`` as read.

        Args:
            name: The file's path relative to the directory (``"pairs/00-01.npz"``).

        Returns:
            Name → array.

        Raises:
            RunDirError: The file is not listed or not as listed.
        """
        data = rundir.read_listed(self.directory, name, self.listing)
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}


def _marker(d: Path) -> str | None:
    """The ``"study"`` marker of a directory's ``config.json`` (None: no study's)."""
    try:
        record = json.loads((d / "config.json").read_bytes())
    except (OSError, ValueError):
        return None
    study = record.get("study") if isinstance(record, dict) else None
    return study if study in STUDIES else None


def study_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """The study directories at or under ``root`` (finished or not), sorted.

    Args:
        root: A study directory, an experiment directory or an output root.

    Returns:
        Every directory named as a study (:data:`STUDIES`) whose ``config.json`` carries that
        study's marker (a symbolic link is not followed).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [root] if _marker(root) else []
    for name in STUDIES:
        found += [
            p for p in root.rglob(name) if p.is_dir() and not p.is_symlink() and _marker(p) == name
        ]
    return sorted(set(found))


def load_study(d: str | os.PathLike[str]) -> StudyData:
    """Read a finished study.

    Args:
        d: Its run directory.

    Returns:
        Its :class:`StudyData`.

    Raises:
        FileNotFoundError: The study is not finished (or not intact).
        RunDirError: Its config or summary is not as ``DONE`` lists.
    """
    d = Path(d)
    listing = rundir.finished_files(d)
    if listing is None:
        raise FileNotFoundError(
            f"{d} holds no finished study (no intact DONE); run its command again to finish it"
        )
    config = json.loads(rundir.read_listed(d, "config.json", listing))
    summary = json.loads(rundir.read_listed(d, "summary.json", listing))
    return StudyData(d, config, summary, listing)


def _path_curve(a: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The walk's path in order: recorded points with the midpoints between them."""
    rec_x, rec_y = a["rec_progress"], a["rec_loss"]
    mid_x, mid_y = a["mid_progress"], a["mid_loss"]
    if len(mid_x) != len(rec_x) - 1:
        return rec_x, rec_y
    x = np.empty(len(rec_x) + len(mid_x))
    y = np.empty_like(x)
    x[0::2], y[0::2] = rec_x, rec_y
    x[1::2], y[1::2] = mid_x, mid_y
    return x, y


def connectivity_figure(data: StudyData) -> Any:
    """The connectivity study's figure: one panel per ordered pair of nets.

    Each panel shows the training loss along the straight line from net i to net j (grey,
    dashed; the mode-connectivity baseline), along the walk's path (blue) and along the
    straight gap from the walk's end to net j (blue, dotted), against the progress toward
    net j (1 − |θ − θ_j| / |θ_i − θ_j|), with the level c as a horizontal line; log scale.

    Args:
        data: A finished connectivity study (:func:`load_study`).

    Returns:
        A matplotlib Figure with one axes per pair walked.

    Raises:
        ValueError: ``data`` is not a connectivity study, or it walked no pair.
    """
    if data.study != "connect":
        raise ValueError(f"{data.directory} holds a {data.study!r} study, not a connectivity one")
    pairs = [p for p in data.summary["pairs"] if p["stop_reason"] != "skipped"]
    if not pairs:
        raise ValueError(f"{data.directory}: no pair was walked (no net reached the level)")
    figure = require_matplotlib()
    cols = min(len(pairs), 4)
    rows = -(-len(pairs) // cols)
    fig = figure(figsize=(3.6 * cols, 2.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    level = float(data.summary["level"])
    for ax, p in zip(axes, pairs, strict=False):
        a = data.arrays(f"pairs/{p['i']:02d}-{p['j']:02d}.npz")
        ax.plot(a["line_t"], a["line_loss"], "--", color="0.45", lw=1.2, label="straight line")
        x, y = _path_curve(a)
        ax.plot(x, y, "-", color=WALK, lw=1.4, label="walk")
        gap_x = 1.0 - (1.0 - a["gap_t"]) * float(p["remaining"])
        ax.plot(gap_x, a["gap_loss"], ":", color=WALK, lw=1.4, label="gap to target")
        ax.axhline(level, color="0.2", lw=0.7)
        ax.set_yscale("log")
        ax.set_title(
            f"{p['i']} → {p['j']}: {p['stop_reason']}, remaining {p['remaining']:.2g}",
            fontsize=8.5,
        )
        ax.set_xlabel("progress toward target", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(pairs) :]:
        fig.delaxes(ax)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"{data.summary['experiment']}: level-set connectivity at L = {level:.4g}", fontsize=10
    )
    return fig


def ensemble_figure(data: StudyData) -> Any:
    """The ensemble study's figure: one panel per quantity, the points reached side by side.

    Each panel shows the random walks' end points (jittered dots), θ0 (black), the −∇R walk's
    end (blue star) and each weight-decay net (red diamonds) for R, the test loss, the test
    metric (left out where it is the test loss: MSE) and (when measured) the sharpness. A panel
    whose positive values span more than a factor of 20 has a log axis.

    Args:
        data: A finished ensemble study (:func:`load_study`).

    Returns:
        A matplotlib Figure with one axes per quantity: 4, one fewer without the sharpness or
        for a regression.

    Raises:
        ValueError: ``data`` is not an ensemble study.
    """
    if data.study != "ensemble":
        raise ValueError(f"{data.directory} holds a {data.study!r} study, not an ensemble one")
    points = data.summary["points"]
    metric = data.summary["metric"]
    panels = [(q, label) for q, label in _PANELS if all(q in p for p in points)]
    if all(p["test_metric"] == p["test_loss"] for p in points):  # regression: both are the MSE
        panels = [(q, label) for q, label in panels if q != "test_metric"]
    figure = require_matplotlib()
    fig = figure(figsize=(3.4 * len(panels), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    walks = [p for p in points if p["kind"] == "random"]
    others = [p for p in points if p["kind"] != "random"]
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(walks))
    style = {"start": ("o", "black"), "reg": ("*", WALK), "wd": ("D", WD)}
    for ax, (q, label) in zip(axes, panels, strict=True):
        ax.plot(jitter, [p[q] for p in walks], "o", color=WALK, alpha=0.45, ms=4)
        for x, p in enumerate(others, start=1):
            marker, color = style[p["kind"]]
            ax.plot([x], [p[q]], marker, color=color, ms=9 if marker == "*" else 6)
        ax.set_xticks(
            range(len(others) + 1),
            [f"random\n({len(walks)})"] + [p["label"].replace(" λ=", "\nλ=") for p in others],
            fontsize=7,
        )
        ax.set_title(label.format(metric=metric), fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if _spans_decades([p[q] for p in points]):
            ax.set_yscale("log")  # else one point far above squashes the others to a line
    fig.suptitle(
        f"{data.summary['experiment']}: points of one level set (L = "
        f"{data.summary['level']:.4g}) and the baselines",
        fontsize=10,
    )
    return fig


def _spans_decades(values: list[float], ratio: float = 20.0) -> bool:
    """Whether positive ``values`` span more than ``ratio`` (a log axis shows them better)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) > ratio * min(finite)


_COLUMNS = {
    "connect": (
        "i",
        "j",
        "stop_reason",
        "n_predictor",
        "n_corrector",
        "distance",
        "remaining",
        "path_barrier",
        "line_barrier",
        "gap_barrier",
        "gap_dip",
        "walk_barrier",
        "resolution",
        "max_deviation",
    ),
    "ensemble": (
        "kind",
        "label",
        "train_loss",
        "reg",
        "test_loss",
        "test_metric",
        "distance",
        "sharpness",
        "sharpness_tangent",
    ),
}


def plot_study(
    data: StudyData, out: str | os.PathLike[str], fmt: str = "png"
) -> tuple[Path, list[Path]]:
    """Draw a study's figure and write its table into ``out/<experiment>/<study>/``.

    Args:
        data: A finished study (:func:`load_study`).
        out: The output root.
        fmt: ``"png"``, ``"pdf"`` or ``"svg"``.

    Returns:
        ``(directory, files)``: where the files are, and each file written (no figure, with a
        warning, for a connectivity study that walked no pair).

    Raises:
        ImportError: matplotlib is missing.
        LinkError: A directory below ``out`` on the way to the files is a link.
    """
    from manifoldwalk.plots.output import OutputDir

    study = data.study
    target = OutputDir(out).sub(Path(data.summary["experiment"]) / study)
    draw = connectivity_figure if study == "connect" else ensemble_figure
    files = []
    try:
        fig = draw(data)
    except ValueError as err:  # nothing to draw (no pair walked): the table still says why
        warnings.warn(f"no figure: {err}", UserWarning, stacklevel=2)
    else:
        files.append(target.write_bytes(f"{study}.{fmt}", figure_bytes(fig, fmt)))
    rows = data.summary["pairs"] if study == "connect" else data.summary["points"]
    columns = _COLUMNS[study]
    table = [[r.get(c, "") for c in columns] for r in rows]
    files.append(target.write_csv(f"{study}.csv", columns, table))
    return target.path, files


def plot_studies(directory: str | os.PathLike[str], out: str | os.PathLike[str], fmt: str) -> list:
    """Plot every finished study at or under ``directory`` (``manifoldwalk plot``).

    Args:
        directory: A study directory, an experiment directory or an output root.
        out: The output root.
        fmt: ``"png"``, ``"pdf"`` or ``"svg"``.

    Returns:
        One :class:`~manifoldwalk.plots.PlotResult` per study drawn (its label is
        ``"<experiment> <study>"``); an unfinished study is left out with a warning.
    """
    from manifoldwalk.plots.make import PlotResult

    results = []
    for d in study_dirs(directory):
        try:
            data = load_study(d)
        except FileNotFoundError as err:
            warnings.warn(str(err), UserWarning, stacklevel=2)
            continue
        where, files = plot_study(data, out, fmt)
        label = f"{data.summary['experiment']} {data.study}"
        results.append(PlotResult(label, where, files))
    return results
