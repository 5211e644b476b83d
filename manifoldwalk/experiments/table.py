"""Table I from run directories: walk against weight decay, mean ± sample std over seeds, with
paired statistics (walk − weight decay per seed), in Markdown, CSV or JSON.

The weight-decay λ is chosen twice from the same per-seed sweeps: on the test set, as the paper
did (which flatters the baseline), and on a validation split carved from the training data (the
honest choice). Each λ is trained on the full training set (its test metric is what is reported)
and on the remaining fit split (its validation metric is what chooses λ): select on validation,
then report the full-training-set net at that λ, the usual "select, then retrain" protocol.

Each experiment directory is its own row: runs of one experiment found in several directories
under the root (``runs/fashion-ff`` and ``runs/grid14/fashion-ff``, say) are never merged, and
their rows are labelled by their paths (:func:`experiment_groups`).

A row counts only finished, intact seed directories named ``seed-<k>``, reads only the files
their ``DONE`` marker lists (each checked against its SHA-256 as it is read), and counts them
only when they hold seed ``k``'s run of that experiment with the options of the row's other
seeds. A copy such as ``seed-000.bak`` is not read; a seed directory whose files say otherwise
is not counted; each is named in the row's notes, as is every weight-decay result left out of
the choice of λ because it is not a number. An experiment directory whose seeds were run with
different options is refused (:class:`~manifoldwalk.experiments.rundir.RunDirError`).

:func:`rebuild` also writes the table and the tidy histories beside each experiment's seed
directories (``table.md``/``.csv``/``.json``, ``history.csv``, ``wd.csv``; see
docs/run_format.md); they are outputs, never read back. The pieces live in ``_run_groups``
(finding and checking seed directories), ``_rows`` (the rows), ``_table_text`` (the formats)
and ``_outputs`` (the files beside the runs); this module is the one to import.
"""

from __future__ import annotations

from manifoldwalk.experiments._outputs import OUTPUT_FILES, rebuild, write_outputs
from manifoldwalk.experiments._rows import (
    Choice,
    Paired,
    TableRow,
    build_table,
    experiment_table,
    mean_std,
    table_row,
)
from manifoldwalk.experiments._run_groups import (
    RunGroup,
    experiment_groups,
    load_finished,
    no_finished_runs,
)
from manifoldwalk.experiments._table_text import (
    COLUMNS,
    FORMATS,
    format_csv,
    format_json,
    format_table,
    table_records,
)

__all__ = [
    "COLUMNS",
    "FORMATS",
    "OUTPUT_FILES",
    "Choice",
    "Paired",
    "RunGroup",
    "TableRow",
    "build_table",
    "experiment_groups",
    "experiment_table",
    "format_csv",
    "format_json",
    "format_table",
    "load_finished",
    "mean_std",
    "no_finished_runs",
    "rebuild",
    "table_records",
    "table_row",
    "write_outputs",
]
