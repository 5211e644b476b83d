"""``report.md`` and a self-contained ``report.html`` for one experiment.

The report holds the experiment's Table I row, every figure with its caption, the endpoint
averaging table, the configuration and the environment (versions, machine, devices). The
Markdown links the figure files written beside it; the HTML embeds PNG renderings as base64
``data:`` URIs, so the one file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import importlib.metadata
import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk.plots.output import OutputDir

__all__ = [
    "Block",
    "ReportFigure",
    "config_text",
    "environment",
    "render_html",
    "render_markdown",
    "write_report",
]


@dataclass
class ReportFigure:
    """A figure of the report.

    Attributes:
        title: A short heading.
        caption: What it shows.
        file: The figure's file name, relative to the report.
        png: A PNG rendering for the HTML page.
    """

    title: str
    caption: str
    file: str
    png: bytes


@dataclass
class Block:
    """One block of the report.

    Attributes:
        kind: ``"h1"``, ``"h2"``, ``"p"`` (a paragraph), ``"table"`` (a Markdown pipe table,
            possibly followed by paragraphs), ``"code"`` (preformatted) or ``"figure"``.
        content: The text, or a :class:`ReportFigure` for ``"figure"``.
    """

    kind: str
    content: Any


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment(
    runs_versions: dict[str, Any], run_devices: Sequence[str], plot_device: str
) -> dict:
    """The environment of the runs and of the plotting, without importing any framework.

    Args:
        runs_versions: The versions the runs recorded (``summary.json``'s ``versions``).
        run_devices: The devices the seeds ran on (``config.json``).
        plot_device: The device the plots evaluated losses on.

    Returns:
        A JSON-serialisable dict.
    """
    dists = ["manifoldwalk", "numpy", "scipy", "matplotlib", "torch", "jax", "tensorflow-cpu"]
    dists += ["tensorflow", "keras"]
    return {
        "runs": {"versions": runs_versions, "devices": sorted(set(run_devices))},
        "plots": {
            "python": platform.python_version(),
            "packages": {d: v for d in dists if (v := _version(d)) is not None},
            "device": plot_device,
            "machine": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
        },
    }


def render_markdown(blocks: Sequence[Block]) -> str:
    """The report as Markdown (figures as image links).

    Args:
        blocks: The content.

    Returns:
        The page.
    """
    out = []
    for b in blocks:
        if b.kind == "h1":
            out.append(f"# {b.content}")
        elif b.kind == "h2":
            out.append(f"## {b.content}")
        elif b.kind in ("p", "table"):
            out.append(str(b.content))
        elif b.kind == "code":
            out.append(f"```\n{b.content}\n```")
        elif b.kind == "figure":
            f: ReportFigure = b.content
            out.append(f"### {f.title}\n\n![{f.title}]({f.file})\n\n{f.caption}")
        else:
            raise ValueError(f"unknown block kind {b.kind!r}")
    return "\n\n".join(out).rstrip() + "\n"


def _inline(text: str) -> str:
    """Escape text for HTML, keeping ``code`` spans."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(
        f"<code>{html.escape(p[1:-1])}</code>"
        if p.startswith("`") and p.endswith("`")
        else html.escape(p)
        for p in parts
    )


def _table_html(text: str) -> str:
    rows, rest = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                continue
            rows.append(cells)
        elif line.strip():
            rest.append(line)
    parts = ["<table>"]
    for i, cells in enumerate(rows):
        tag = "th" if i == 0 else "td"
        parts.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
    parts.append("</table>")
    parts += [f"<p>{_inline(p)}</p>" for p in rest]
    return "\n".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def render_html(blocks: Sequence[Block], title: str) -> str:
    """The report as one self-contained HTML page (figures embedded as base64 PNG).

    Args:
        blocks: The content.
        title: The page title.

    Returns:
        The page.
    """
    body = []
    for b in blocks:
        if b.kind in ("h1", "h2"):
            body.append(f"<{b.kind}>{_inline(str(b.content))}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(str(b.content))}</p>")
        elif b.kind == "table":
            body.append(_table_html(str(b.content)))
        elif b.kind == "code":
            body.append(f"<pre>{html.escape(str(b.content))}</pre>")
        elif b.kind == "figure":
            f: ReportFigure = b.content
            data = base64.b64encode(f.png).decode("ascii")
            body.append(
                f"<figure><h3>{_inline(f.title)}</h3>"
                f'<img alt="{html.escape(f.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(f.caption)}</figcaption></figure>"
            )
        else:
            raise ValueError(f"unknown block kind {b.kind!r}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_report(
    directory: str | os.PathLike[str] | OutputDir,
    name: str,
    blocks: Sequence[Block],
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` into ``directory``, never through a link (a
    link at either name is replaced, its target untouched; see
    :mod:`~manifoldwalk.plots.output`).

    Args:
        directory: The experiment's plot directory (the figures' files are there).
        name: The experiment (the HTML title).
        blocks: The content.

    Returns:
        The two paths.

    Raises:
        LinkError: A directory on the way is a link.
    """
    out = directory if isinstance(directory, OutputDir) else OutputDir(directory)
    md = out.write_text("report.md", render_markdown(blocks))
    page = out.write_text("report.html", render_html(blocks, f"manifoldwalk: {name}"))
    return md, page


def config_text(config: dict[str, Any]) -> str:
    """A seed's ``config.json`` as indented JSON (for the report's configuration block).

    Args:
        config: The configuration.

    Returns:
        The text.
    """
    return json.dumps(config, indent=2, sort_keys=True, default=_json_default)
