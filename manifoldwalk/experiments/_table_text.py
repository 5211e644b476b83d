"""Table I in three formats: Markdown for reading, CSV and JSON for analysis.

The Markdown table shows accuracy in percent; CSV and JSON hold the same columns as numbers,
accuracy as a fraction in [0, 1] (the unit of every file the project writes), the paper's
figures converted to the same unit, and the paired statistics of each row (walk − weight decay
per seed, for λ by test and λ by validation), and the sharpness (the largest Hessian eigenvalue
at the walk's start and end and at weight decay's net at λ by validation). JSON is strict: a
number that is not finite is ``null`` with a ``<column>_note`` beside it saying why
(:mod:`manifoldwalk._json`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from manifoldwalk import _json
from manifoldwalk.experiments._integrity import csv_bytes
from manifoldwalk.experiments._rows import SHARPNESS_KEYS, Paired, TableRow, lambda_text
from manifoldwalk.experiments._sharpness import TOL as SHARPNESS_TOL
from manifoldwalk.experiments.paired import ALPHA, MIN_SEEDS_WILCOXON

__all__ = ["COLUMNS", "FORMATS", "format_csv", "format_json", "format_table", "table_records"]

FORMATS = ("md", "csv", "json")
"""The formats of ``manifoldwalk table --format``."""

_PAIRED_FIELDS = (
    "lambda",
    "n",
    "mean",
    "ci95_low",
    "ci95_high",
    "t_pvalue",
    "wilcoxon_pvalue",
    "significant",
    "verdict",
)

COLUMNS: tuple[str, ...] = (
    "experiment",
    "label",
    "directory",
    "metric",
    "seeds",
    "seed_list",
    "unfinished",
    "phase1_mean",
    "phase1_std",
    "walk_mean",
    "walk_std",
    "wd_by_test_mean",
    "wd_by_test_std",
    "wd_by_test_lambda",
    "wd_by_val_mean",
    "wd_by_val_std",
    "wd_by_val_lambda",
    "paper_walk_mean",
    "paper_walk_std",
    "paper_wd_mean",
    "paper_wd_std",
    "paper_lambda",
    "wd_reg",
    "level_held",
    *(f"paired_by_{by}_{f}" for by in ("test", "val") for f in _PAIRED_FIELDS),
    *(f"sharpness_{k}_{s}" for k in SHARPNESS_KEYS for s in ("mean", "std")),
)
"""The columns of the CSV and JSON tables, in order (documented in docs/run_format.md)."""

_NO_SPREAD = "nan: one seed (no sample standard deviation)"
_NO_TEST = "nan: no test (fewer than two seeds, or every difference equal and non-zero)"
_NO_SHARPNESS = "nan: no seed has it as a number (see the notes)"


def _paired_fields(p: Paired | None, metric: str) -> dict[str, Any]:
    if p is None:
        return dict.fromkeys(_PAIRED_FIELDS)
    c = p.comparison
    return {
        "lambda": p.lam,
        "n": c.n,
        "mean": c.mean,
        "ci95_low": c.ci95[0],
        "ci95_high": c.ci95[1],
        "t_pvalue": c.t_pvalue,
        "wilcoxon_pvalue": c.wilcoxon_pvalue,
        "significant": c.significant,
        "verdict": c.verdict_words("walk", "weight decay", higher_is_better=metric == "accuracy"),
    }


def _row_record(r: TableRow, *, json_extras: bool) -> dict[str, Any]:
    """One row's columns (accuracy as a fraction); with ``json_extras`` also the per-seed
    differences, the seeds compared, the notes and the reasons for NaN values."""
    scale = 0.01 if r.metric == "accuracy" else 1.0  # the paper's accuracy is in percent
    p = r.paper
    rec: dict[str, Any] = {
        "experiment": r.experiment,
        "label": r.label,
        "directory": None if r.directory is None else str(r.directory),
        "metric": r.metric,
        "seeds": len(r.seeds),
        "seed_list": list(r.seeds) if json_extras else " ".join(map(str, r.seeds)),
        "unfinished": r.unfinished,
        "phase1_mean": r.phase1[0],
        "phase1_std": r.phase1[1],
        "walk_mean": r.walk[0],
        "walk_std": r.walk[1],
        "wd_by_test_mean": r.by_test.mean,
        "wd_by_test_std": r.by_test.std,
        "wd_by_test_lambda": r.by_test.lam,
        "wd_by_val_mean": r.by_val.mean,
        "wd_by_val_std": r.by_val.std,
        "wd_by_val_lambda": r.by_val.lam,
        "paper_walk_mean": p.walk * scale if p else None,
        "paper_walk_std": p.walk_std * scale if p else None,
        "paper_wd_mean": p.wd * scale if p else None,
        "paper_wd_std": p.wd_std * scale if p else None,
        "paper_lambda": p.best_lambda if p else None,
        "wd_reg": r.wd_reg,
        "level_held": r.level_held,
    }
    by = {q.chosen_by: q for q in r.paired}
    for which in ("test", "val"):
        fields = _paired_fields(by.get(which), r.metric)
        rec.update({f"paired_by_{which}_{k}": v for k, v in fields.items()})
        if json_extras and which in by:
            rec[f"paired_by_{which}_seeds"] = list(by[which].seeds)
            rec[f"paired_by_{which}_differences"] = by[which].comparison.differences.tolist()
    for key in SHARPNESS_KEYS:
        mean, std = r.sharpness.get(key, (math.nan, math.nan))
        rec[f"sharpness_{key}_mean"], rec[f"sharpness_{key}_std"] = mean, std
    if json_extras:
        rec["notes"] = list(r.notes)
        for k, v in list(rec.items()):  # why a value is NaN, where that is known
            if isinstance(v, float) and math.isnan(v) and len(r.seeds) == 1:
                if k.endswith("_std"):
                    rec[f"{k}_note"] = _NO_SPREAD
            if isinstance(v, float) and math.isnan(v) and k.startswith("paired_"):
                rec[f"{k}_note"] = _NO_TEST
        for key in SHARPNESS_KEYS:  # no seed has it (not "one seed": the cause is that)
            if math.isnan(rec[f"sharpness_{key}_mean"]):
                rec[f"sharpness_{key}_mean_note"] = _NO_SHARPNESS
                rec[f"sharpness_{key}_std_note"] = _NO_SHARPNESS
    return rec


def table_records(rows: list[TableRow]) -> list[dict[str, Any]]:
    """The rows as records of :data:`COLUMNS` (what ``--format csv`` writes), one per row.

    Args:
        rows: From :func:`~manifoldwalk.experiments.table.build_table`.

    Returns:
        One dict per row, keys in the order of :data:`COLUMNS`; accuracy as a fraction.
    """
    return [_row_record(r, json_extras=False) for r in rows]


def format_csv(rows: list[TableRow]) -> str:
    """Table I as CSV: a header of :data:`COLUMNS`, one line per row.

    Numbers are written with full precision (accuracy as a fraction); a value that does not
    apply (no paper row) is an empty cell, one that is not a number is ``nan``.

    Args:
        rows: From :func:`~manifoldwalk.experiments.table.build_table`.

    Returns:
        The CSV text.
    """
    records = table_records(rows)
    return csv_bytes(COLUMNS, [[rec[c] for c in COLUMNS] for rec in records]).decode()


def format_json(rows: list[TableRow]) -> str:
    """Table I as strict JSON: a list of row objects with the columns of :data:`COLUMNS`, the
    seeds as a list, each comparison's ``paired_by_<test|val>_seeds`` and
    ``..._differences`` (walk − weight decay per seed), and the row's ``notes``.

    Args:
        rows: From :func:`~manifoldwalk.experiments.table.build_table`.

    Returns:
        The JSON text (a NaN is ``null`` with a ``<key>_note`` saying why).
    """
    return _json.dumps([_row_record(r, json_extras=True) for r in rows], indent=2) + "\n"


def _fmt(metric: str, mean: float, std: float) -> str:
    scale, unit = (100.0, "%") if metric == "accuracy" else (1.0, "")
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(std):  # one seed: there is no spread to show
        return f"{mean * scale:.2f}{unit}"
    return f"{mean * scale:.2f} ± {std * scale:.2f}{unit}"


def _number(value: float) -> str:
    """Three significant digits, without an exponent between 0.001 and 100,000."""
    if value == 0 or not 1e-3 <= abs(value) < 1e5:
        return f"{value:.3g}"
    return f"{value:.{max(0, 2 - math.floor(math.log10(abs(value))))}f}"


def _sharp(spread: tuple[float, float]) -> str:
    """A sharpness as mean ± std (the mean alone for one seed; — where none was recorded)."""
    mean, std = spread
    if not math.isfinite(mean):
        return "—"
    return _number(mean) if not math.isfinite(std) else f"{_number(mean)} ± {_number(std)}"


def _sharpness_cells(r: TableRow) -> list[str]:
    """The two sharpness cells of a row: start → end of the walk, and weight decay's."""
    nan = (math.nan, math.nan)
    start, end = r.sharpness.get("start", nan), r.sharpness.get("end", nan)
    walk = "—" if not (math.isfinite(start[0]) or math.isfinite(end[0])) else None
    return [walk or f"{_sharp(start)} → {_sharp(end)}", _sharp(r.sharpness.get("wd_by_val", nan))]


def _signed(metric: str, value: float) -> str:
    """A difference: percentage points for accuracy, the metric's unit for MSE."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value * 100:+.2f} pp" if metric == "accuracy" else f"{value:+.3g}"


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3g}"


def _paired_lines(rows: list[TableRow]) -> list[str]:
    """The paired-statistics table under Table I, and what it says in words."""
    rows = [r for r in rows if r.paired]
    if not rows:
        return []
    lines = [
        "",
        "Paired differences, walk − weight decay, seed by seed: each seed's walk against the "
        "full-training-set weight-decay net of the same seed at the chosen λ (test accuracy in "
        "percentage points, or test MSE).",
        "",
        "| experiment | λ chosen by | λ | seeds | mean difference | 95 % interval | "
        "paired t p | Wilcoxon p | verdict |",
        "|" + "---|" * 9,
    ]
    significant = []
    for r in rows:
        name = r.label + (" (MSE)" if r.metric == "mse" else "")
        for q in r.paired:
            c = q.comparison
            lo, hi = c.ci95
            interval = (
                f"{_signed(r.metric, lo)} to {_signed(r.metric, hi)}"
                if math.isfinite(lo)
                else "n/a"
            )
            verdict = c.verdict_words(
                "walk", "weight decay", higher_is_better=r.metric == "accuracy"
            )
            if c.significant:
                significant.append(f"{r.label} (λ by {q.chosen_by}): {verdict}")
            lines.append(
                f"| {name} | {q.chosen_by} | {lambda_text(q.lam)} | {c.n} | "
                f"{_signed(r.metric, c.mean)} | {interval} | {_p(c.t_pvalue)} | "
                f"{_p(c.wilcoxon_pvalue)} | {verdict} |"
            )
    lines += [
        "",
        f"A difference is called significant when both the paired t-test and the Wilcoxon "
        f"signed-rank test give p < {ALPHA:g}; higher accuracy is better, lower MSE is better. "
        f"With fewer than {MIN_SEEDS_WILCOXON} seeds the Wilcoxon test cannot reach "
        f"p < {ALPHA:g}: its smallest two-sided p-value is 2/2ⁿ for n seeds, 0.0625 for 5. "
        f"So no difference over fewer than {MIN_SEEDS_WILCOXON} seeds is called significant.",
        "Significant differences: " + ("; ".join(significant) if significant else "none") + ".",
    ]
    return lines


def format_table(rows: list[TableRow]) -> str:
    """Format Table I as Markdown, with the paper's figures and the sharpness beside ours and,
    under it, the paired statistics of every row.

    Args:
        rows: From :func:`~manifoldwalk.experiments.table.build_table`.

    Returns:
        The table, a note on what each column means, the paired-statistics table and the
        rows' notes.
    """
    head = (
        "| experiment | seeds | phase 1 | walk | WD, λ by test | λ (test) | WD, λ by val | "
        "λ (val) | paper walk | paper WD | paper λ | sharpness, start → end | sharpness, WD λ "
        "by val |"
    )
    lines = [head, "|" + "---|" * 13]
    regs = set()
    for r in rows:
        regs.add(r.wd_reg)
        p = r.paper
        unit = "%" if r.metric == "accuracy" else ""
        paper = (
            [
                f"{p.walk:.2f} ± {p.walk_std:.2f}{unit}",
                f"{p.wd:.2f} ± {p.wd_std:.2f}{unit}",
                lambda_text(p.best_lambda),
            ]
            if p
            else ["–", "–", "–"]
        )
        name = r.label + (" (MSE)" if r.metric == "mse" else "")
        seeds = f"{len(r.seeds)}" + (f" (+{r.unfinished} unfinished)" if r.unfinished else "")
        cells = [
            name,
            seeds,
            _fmt(r.metric, *r.phase1),
            _fmt(r.metric, *r.walk),
            _fmt(r.metric, r.by_test.mean, r.by_test.std),
            lambda_text(r.by_test.lam),
            _fmt(r.metric, r.by_val.mean, r.by_val.std),
            lambda_text(r.by_val.lam),
            *paper,
            *_sharpness_cells(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    reg_note = ", ".join(
        "l2 (all parameters, biases included: the same R as the walk)"
        if g == "l2"
        else "l2-weights (kernels only, as the authors' Keras baseline)"
        for g in sorted(regs)
    )
    lines += [
        "",
        "Test accuracy (%) or test MSE, mean ± sample std over seeds (the mean alone for one "
        "seed). 'λ by test': λ chosen by "
        "the mean test metric (the paper's choice, optimistic); 'λ by val': chosen by the mean "
        "metric on a validation split carved from the training data, reported for nets trained "
        f"on the full training set at that λ. Weight-decay regulariser: {reg_note}.",
    ]
    lines.append(
        "Sharpness: the largest eigenvalue of the training loss's Hessian (Lanczos, to a "
        f"relative {lambda_text(SHARPNESS_TOL)}), at phase 1's θ0 → at the walk's end, and at "
        "weight decay's full-training-set net at λ by val; mean ± sample std over seeds, — "
        "where not recorded. On the level set's tangent space (the curvature the walk sees) in "
        "table.csv and table.json."
    )
    held = [f"{r.label} {r.level_held:.2g}" for r in rows if r.level_held is not None]
    if held:
        lines.append(
            "Level held by the walks (the largest |L − L0|/|L0| at an on-level point of any "
            "seed): " + ", ".join(held) + "."
        )
    lines += _paired_lines(rows)
    lines += [f"Note, {r.label}: {note}" for r in rows for note in r.notes]
    return "\n".join(lines)
