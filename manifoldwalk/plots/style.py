"""What every figure shares: matplotlib imported on demand, colours, labels, file bytes.

matplotlib is imported when a figure is drawn, not when this module is imported, so the rest of
the package works without it; a missing matplotlib raises an ImportError naming the extra to
install. Figures are drawn with matplotlib's object API on the Agg canvas (no display, no
pyplot). Colours: the walk is blue and solid, weight decay red and dashed (the line styles keep
them apart in grayscale); points and surfaces use viridis, whose lightness rises monotonically.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

__all__ = [
    "FORMATS",
    "WALK",
    "WD",
    "figure_bytes",
    "format_lambda",
    "percent",
    "png_bytes",
    "require_matplotlib",
    "save_figure",
    "seeds_text",
]

FORMATS = ("png", "pdf", "svg")
"""The file formats :func:`figure_bytes` and :func:`save_figure` write."""

WALK, WD = "#1f5fa8", "#c0392b"
"""The walk's colour and weight decay's."""

DPI = 110
"""Resolution of the figure files (PNG)."""

_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


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


def percent(v: float) -> str:
    """A fraction as ``"12.3%"`` (``"0.004%"`` below 0.1 %: a small share is not shown as 0).

    Args:
        v: The fraction.

    Returns:
        The text.
    """
    return f"{100 * v:.1f}%" if abs(v) >= 1e-3 or v == 0 else f"{100 * v:.1g}%"


def figure_bytes(fig: Any, fmt: str = "png", dpi: int = DPI) -> bytes:
    """A figure's file contents as PNG, PDF or SVG, without dates (same figure, same bytes).

    Args:
        fig: The figure.
        fmt: One of :data:`FORMATS`.
        dpi: Resolution (PNG).

    Returns:
        The file's contents.

    Raises:
        ValueError: For an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    return buf.getvalue()


def png_bytes(fig: Any, dpi: int = 90) -> bytes:
    """The figure as PNG bytes (for embedding in the HTML report).

    Args:
        fig: The figure.
        dpi: Resolution.

    Returns:
        The PNG file's contents.
    """
    return figure_bytes(fig, "png", dpi)


def save_figure(fig: Any, path: str | os.PathLike[str], fmt: str = "png", dpi: int = DPI) -> Path:
    """Write a figure as PNG, PDF or SVG, never through a link (a link at the path is replaced).

    Args:
        fig: The figure.
        path: The file, without or with the suffix (it is set to ``fmt``); its directory is
            created if needed.
        fmt: One of :data:`FORMATS`.
        dpi: Resolution (PNG).

    Returns:
        The path written.

    Raises:
        ValueError: For an unknown format.
    """
    from manifoldwalk.plots.output import OutputDir

    path = Path(path).with_suffix(f".{fmt}")
    return OutputDir(path.parent).write_bytes(path.name, figure_bytes(fig, fmt, dpi))
