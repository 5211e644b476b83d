"""The files written beside an experiment's seed directories: the table and tidy histories.

``OUT/<experiment>/`` gains, from the verified files of its finished seeds only:

- ``table.md``, ``table.csv``, ``table.json``: its Table I row with the paired statistics
  (:mod:`manifoldwalk.experiments._table_text`), counting every finished seed of the directory;
- ``history.csv``: every finished seed's walk history (the rows of its ``metrics.csv``, a step
  recorded twice by a resumed walk kept once), with a ``seed`` column first;
  ``history.parquet`` holds the same when pyarrow is importable;
- ``wd.csv``: every finished seed's weight-decay runs (the rows of its ``wd.csv``) with a
  ``seed`` column first.

They are outputs, never inputs: nothing reads them back (the table and the figures read the seed
directories), and the checks of a run directory look only inside ``seed-<k>`` directories. Each
is written atomically (temporary file, fsync, rename), so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from manifoldwalk.experiments import rundir
from manifoldwalk.experiments._integrity import csv_bytes
from manifoldwalk.experiments._rows import TableRow, table_row
from manifoldwalk.experiments._run_groups import RunGroup, experiment_groups, no_finished_runs
from manifoldwalk.experiments._sharpness import COLUMNS as SHARPNESS_COLUMNS
from manifoldwalk.experiments._table_text import format_csv, format_json, format_table
from manifoldwalk.experiments.rundir import RunDirError

__all__ = [
    "HISTORY_PARQUET",
    "METRICS_COLUMNS",
    "OPTIONAL_METRICS",
    "OUTPUT_FILES",
    "metrics_rows",
    "read_metrics",
    "rebuild",
    "write_outputs",
]

HISTORY_PARQUET = "history.parquet"
"""The Parquet copy of ``history.csv`` (written only when pyarrow is importable)."""

OUTPUT_FILES = ("table.md", "table.csv", "table.json", "history.csv", HISTORY_PARQUET, "wd.csv")
"""The files written beside the seed directories of an experiment."""

METRICS_COLUMNS = (
    "step",
    "n_predictor",
    "n_corrector",
    "n_grad_evals",
    "example_grads",
    "train_loss",
    "deviation",
    "reg",
    "angle",
    "kkt",
    "eta_p",
    "test_loss",
)
"""The columns every ``metrics.csv`` has (then ``test_accuracy`` or ``test_mse``)."""

OPTIONAL_METRICS = SHARPNESS_COLUMNS
"""The last columns of a ``metrics.csv``, NaN where not measured; a file of an older run
lacks them and is read as if they were there, all NaN (so that its seed fits a tidy file)."""


def _listed_text(d: Path, name: str, listing: Mapping) -> str:
    data = rundir.read_listed(d, name, listing)
    try:
        return data.decode()
    except UnicodeDecodeError as err:
        raise RunDirError(d / name, f"it is not text ({err})") from None


def metrics_rows(
    d: Path, listing: Mapping, metric: str
) -> tuple[list[str], list[list[str]], dict[str, np.ndarray]]:
    """A finished seed's ``metrics.csv``, checked against ``DONE`` and its columns, one row per
    recorded predictor step (a resumed walk records the step it resumed from again: the last
    record of a step is kept). The sharpness columns of a file written before they existed are
    added, all NaN.

    Args:
        d: The seed directory.
        listing: Its ``DONE`` listing.
        metric: ``"accuracy"`` or ``"mse"``.

    Returns:
        ``(header, rows, columns)``: the header, the kept rows as the file's text cells, and
        the kept rows as float columns.

    Raises:
        RunDirError: The file is not listed or changed, is not a CSV of numbers, lacks a column
            or holds no record.
    """
    path = d / "metrics.csv"
    text = _listed_text(d, "metrics.csv", listing)
    cols = rundir.csv_columns(text, path)
    missing = [c for c in (*METRICS_COLUMNS, f"test_{metric}") if c not in cols]
    if missing:
        raise RunDirError(path, f"it lacks the columns {missing}")
    if len(cols["step"]) == 0:
        raise RunDirError(path, "it holds no record")
    _, last = np.unique(cols["n_predictor"][::-1], return_index=True)
    keep = np.sort(len(cols["n_predictor"]) - 1 - last)
    header, *body = list(csv.reader(io.StringIO(text)))
    absent = [c for c in OPTIONAL_METRICS if c not in cols]
    if absent:  # an older run's file: not measured
        header += absent
        body = [[*r, *(["nan"] * len(absent))] for r in body]
        cols.update({c: np.full(len(cols["step"]), np.nan) for c in absent})
    return header, [body[i] for i in keep], {k: v[keep] for k, v in cols.items()}


def read_metrics(d: Path, listing: Mapping, metric: str) -> dict[str, np.ndarray]:
    """A finished seed's ``metrics.csv`` as float columns (see :func:`metrics_rows`).

    Args:
        d: The seed directory.
        listing: Its ``DONE`` listing.
        metric: ``"accuracy"`` or ``"mse"``.

    Returns:
        Column → float64 array, one entry per recorded predictor step.

    Raises:
        RunDirError: As :func:`metrics_rows`.
    """
    return metrics_rows(d, listing, metric)[2]


def _tidy(group: RunGroup, name: str, rows_of) -> bytes:
    """One CSV of every finished seed's rows of the file ``name``, a ``seed`` column first;
    every seed's header must be the first's."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    for d in group.finished:
        seed = rundir.seed_of(d)
        head, body = rows_of(d, rundir.done_listing(d))
        if header is None:
            header = head
        elif head != header:
            raise RunDirError(d / name, f"its columns {head} differ from the others' {header}")
        rows += [[str(seed), *r] for r in body]
    return csv_bytes(["seed", *(header or [])], rows)


def _history(group: RunGroup, metric: str) -> bytes:
    return _tidy(group, "metrics.csv", lambda d, ls: metrics_rows(d, ls, metric)[:2])


def _wd_rows(d: Path, listing: Mapping) -> tuple[list[str], list[list[str]]]:
    """A finished seed's ``wd.csv`` (checked against ``DONE``): its header and rows."""
    path = d / "wd.csv"
    rows = list(csv.reader(io.StringIO(_listed_text(d, "wd.csv", listing))))
    if not rows or not {"lam", "split"} <= set(rows[0]):
        raise RunDirError(path, "it has no header naming the columns lam and split")
    header, *body = rows
    if any(len(r) != len(header) for r in body):
        raise RunDirError(path, f"a row's length differs from its header's ({len(header)})")
    return header, body


def _parquet(csv_data: bytes) -> bytes | None:
    """The CSV as Parquet bytes (None: pyarrow is not importable)."""
    try:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError:
        return None
    table = pa_csv.read_csv(io.BytesIO(csv_data))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_outputs(group: RunGroup, row: TableRow | None = None) -> list[Path]:
    """Write the table and the tidy files beside a group's seed directories.

    Args:
        group: An experiment directory's seeds (:func:`experiment_groups`), every finished
            seed of which is counted.
        row: Its table row (None: built here).

    Returns:
        The files written, in :data:`OUTPUT_FILES` order.

    Raises:
        RunDirError: A seed's files are not what a run writes (naming the file).
        OSError: A file cannot be written.
    """
    row = row if row is not None else table_row(group)
    out = group.directory
    history = _history(group, row.metric)
    files = {
        "table.md": (format_table([row]) + "\n").encode(),
        "table.csv": format_csv([row]).encode(),
        "table.json": format_json([row]).encode(),
        "history.csv": history,
        HISTORY_PARQUET: _parquet(history),
        "wd.csv": _tidy(group, "wd.csv", _wd_rows),
    }
    written = []
    for name in OUTPUT_FILES:
        data = files[name]
        if data is None:  # no pyarrow: a Parquet file of an earlier run would be stale
            stale = out / name
            if stale.is_file() or stale.is_symlink():
                stale.unlink()
            continue
        rundir.atomic_write_bytes(out / name, data)
        written.append(out / name)
    return written


def rebuild(
    root: str | os.PathLike[str], *, write: bool = True
) -> tuple[list[TableRow], list[Path], list[str]]:
    """Build Table I under ``root`` and rewrite the files beside each experiment directory.

    Args:
        root: An output root, an experiment directory or one seed directory (then nothing is
            written: the files describe every seed of a directory).
        write: Write the files (False: only build the rows).

    Returns:
        ``(rows, written, problems)``: the rows (as
        :func:`~manifoldwalk.experiments.table.build_table`), the files written, and for each
        directory whose files could not be written, why (a file that cannot be written, or
        seeds whose records cannot be put in one tidy file).

    Raises:
        FileNotFoundError: If ``root`` does not exist or holds no finished run.
        RunDirError: As :func:`~manifoldwalk.experiments.table.build_table`.
    """
    groups = experiment_groups(root)
    done = [(g, table_row(g)) for g in groups if g.finished]
    if not done:
        raise no_finished_runs(root, groups)
    written: list[Path] = []
    problems: list[str] = []
    if write and not Path(root).name.startswith("seed-"):
        for g, row in done:
            try:
                written += write_outputs(g, row)
            except RunDirError as err:  # the table is still good: the row read what it counts
                problems.append(str(err))
            except OSError as err:
                problems.append(f"{g.directory}: {err.strerror or err}")
    return [row for _, row in done], written, problems
