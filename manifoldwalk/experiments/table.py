"""Table I from run directories: walk against weight decay, mean ± sample std over seeds.

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
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from manifoldwalk.experiments import rundir
from manifoldwalk.experiments.config import option_differences
from manifoldwalk.experiments.definitions import EXPERIMENTS, PaperRow
from manifoldwalk.experiments.rundir import RunDirError

__all__ = [
    "Choice",
    "RunGroup",
    "TableRow",
    "build_table",
    "experiment_groups",
    "experiment_table",
    "load_finished",
    "format_table",
    "mean_std",
    "no_finished_runs",
    "table_row",
]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Return the mean and the sample standard deviation (ddof=1; NaN for one value).

    Args:
        values: The per-seed values.

    Returns:
        ``(mean, std)``; both NaN for no values.
    """
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


@dataclass
class Choice:
    """A chosen λ and the test metric of the full-training-set nets trained with it.

    Attributes:
        lam: The λ.
        mean: The test metric's mean over seeds.
        std: Its sample standard deviation.
        score: The mean of the selection criterion (test or validation metric) at that λ.
    """

    lam: float
    mean: float
    std: float
    score: float


@dataclass
class TableRow:
    """One experiment's row of Table I.

    Attributes:
        experiment: Its name.
        metric: ``"accuracy"`` (shown in %) or ``"mse"``.
        seeds: The finished seeds counted.
        unfinished: Seed directories found but not finished (not counted).
        phase1: Phase 1's test metric, mean and std.
        walk: The walk's final test metric, mean and std.
        by_test: Weight decay with λ chosen on the test set (the paper's choice).
        by_val: Weight decay with λ chosen on the validation split.
        per_lambda: λ → (mean test metric, mean validation metric) over seeds.
        wd_reg: The weight-decay regulariser used.
        paper: The paper's row, if any.
        label: How the row is named: the experiment, or the path of its directory when the
            experiment appears in several directories (:attr:`RunGroup.label`).
        directory: The experiment directory the seeds came from (None: not known).
        level_held: The largest |L − L0|/|L0| at an on-level point of any seed's walk (None:
            not recorded by the runs).
        notes: What the row left out and why, in words, each naming the directory or seed
            and λ concerned (printed under the table).
    """

    experiment: str
    metric: str
    seeds: list[int]
    unfinished: int
    phase1: tuple[float, float]
    walk: tuple[float, float]
    by_test: Choice
    by_val: Choice
    per_lambda: dict[float, tuple[float, float]] = field(default_factory=dict)
    wd_reg: str = "l2"
    paper: PaperRow | None = None
    label: str = ""
    directory: Path | None = None
    level_held: float | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Label the row by its experiment when no label is given."""
        self.label = self.label or self.experiment


@dataclass
class RunGroup:
    """The seed directories of one experiment directory.

    Attributes:
        name: The experiment (the directory's name).
        label: Its name where it is the only directory of that experiment under the root;
            otherwise its path from the root's parent (``runs/grid14/fashion-ff``), so that
            copies of one experiment in several places stay apart.
        directory: The experiment directory.
        finished: Its finished, intact seed directories, sorted (each holding its seed's run
            of the experiment: see :func:`load_finished`).
        unfinished: Its other seed directories (started, broken or still running).
        refused: Finished seed directories that are not counted, with the reason (a file
            that does not hold what a run writes, or the run of another seed or experiment).
        ignored: Directories named ``seed-*`` that are no seed directory (``seed-000.bak``).
        not_asked: Finished seed directories left out because they were not asked for
            (:func:`experiment_table`).
        records: Each finished directory's ``config.json`` and ``summary.json``, as read and
            checked.
    """

    name: str
    label: str
    directory: Path
    finished: list[Path] = field(default_factory=list)
    unfinished: list[Path] = field(default_factory=list)
    refused: dict[Path, str] = field(default_factory=dict)
    ignored: list[Path] = field(default_factory=list)
    not_asked: list[Path] = field(default_factory=list)
    records: dict[Path, tuple[dict, dict]] = field(default_factory=dict)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _config_problem(config: object) -> str | None:
    """Why a decoded ``config.json`` is not what a run writes (None: it is)."""
    if not isinstance(config, dict):
        return "it holds no record"
    seed = config.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"its seed is {seed!r}, not a seed"
    if not isinstance(config.get("options"), dict):
        return "it holds no options record"
    lams = config.get("wd_lambdas", [])
    if not isinstance(lams, list) or not all(_is_number(v) for v in lams):
        return f"its wd_lambdas is {lams!r}, not a list of numbers"
    return None


def _summary_problem(summary: object) -> str | None:
    """Why a decoded ``summary.json`` lacks what a table reads (None: it has it)."""
    if not isinstance(summary, dict):
        return "it holds no record"
    seed = summary.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"its seed is {seed!r}, not a seed"
    if summary.get("metric") not in ("accuracy", "mse"):
        return f"its metric is {summary.get('metric')!r}, not 'accuracy' or 'mse'"
    for part in ("phase1", "walk"):
        block = summary.get(part)
        if not isinstance(block, dict) or not _is_number(block.get("test_metric")):
            return f"its {part} record has no test_metric number"
    level = summary["walk"].get("max_relative_deviation")
    if level is not None and not _is_number(level):
        return f"its walk's max_relative_deviation is {level!r}, not a number"
    wd = summary.get("wd")
    if not isinstance(wd, list):
        return "its wd record is no list"
    for r in wd:
        if not isinstance(r, dict) or r.get("split") not in ("full", "val"):
            return f"its weight-decay record {r!r} has no split 'full' or 'val'"
        lam = r.get("lam")
        if not _is_number(lam) or not 0 <= lam < math.inf:
            return f"its weight-decay record has λ {lam!r}, not a finite number >= 0"
        key = "test_metric" if r["split"] == "full" else "val_metric"
        if not _is_number(r.get(key)):
            return f"its weight-decay record at λ={lam!r} ({r['split']}) has no {key} number"
    return None


def _listed_json(d: Path, name: str, listing: dict) -> object:
    """A JSON file of a finished run, checked against its ``DONE`` listing as it is read."""
    data = rundir.read_listed(d, name, listing)
    try:
        return json.loads(data)
    except ValueError as err:  # UnicodeDecodeError is a ValueError too
        raise RunDirError(d / name, f"it does not load ({err})") from None


def load_finished(directory: str | os.PathLike[str]) -> tuple[dict, dict] | None:
    """Read a finished seed directory's ``config.json`` and ``summary.json``, checked.

    Args:
        directory: A seed directory (named ``seed-<k>``).

    Returns:
        ``(config, summary)``, or None when the run is not finished and intact
        (:func:`~manifoldwalk.experiments.rundir.finished_files`).

    Raises:
        RunDirError: Naming the file: it changed after ``DONE`` was written, does not load,
            lacks what a run writes, or holds the run of another seed than the directory's
            name gives (a copy under another name), or of another experiment than the
            experiment directory's name gives.
    """
    d = Path(directory)
    listing = rundir.finished_files(d)
    if listing is None:
        return None
    config = _listed_json(d, "config.json", listing)
    summary = _listed_json(d, "summary.json", listing)
    for name, value, check in (
        ("config.json", config, _config_problem),
        ("summary.json", summary, _summary_problem),
    ):
        why = check(value)
        if why is not None:
            raise RunDirError(d / name, why)
    assert isinstance(config, dict) and isinstance(summary, dict)
    seed = rundir.seed_of(d)
    for name, value in (("config.json", config), ("summary.json", summary)):
        if value["seed"] != seed:
            raise RunDirError(
                d / name,
                f"it holds the run of seed {value['seed']}, not of seed {seed} as the "
                "directory's name says (a copy under another name?)",
            )
    exp = summary.get("experiment")
    if d.parent.name in EXPERIMENTS and exp is not None and exp != d.parent.name:
        raise RunDirError(
            d / "summary.json", f"it holds a run of {exp!r}, not of {d.parent.name!r}"
        )
    return config, summary


def experiment_groups(root: str | os.PathLike[str]) -> list[RunGroup]:
    """Find the seed directories under ``root``, one group per experiment directory.

    Seeds are grouped by the directory that holds them, never by the experiment's name alone:
    two directories of one experiment (a copy with another λ grid nested inside the output
    root, say) are two groups, labelled by their paths.

    Args:
        root: An output root, an experiment directory or one seed directory.

    Returns:
        The groups in the order of :data:`~manifoldwalk.experiments.EXPERIMENTS`, then the
        shallower directories first, then by label (empty when there is no seed directory).

    Raises:
        FileNotFoundError: If ``root`` does not exist or is not a directory.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(
            f"{root} does not exist; pass an output root, experiment or seed directory "
            "(the --out of `manifoldwalk reproduce`, ./runs by default)"
        )
    if not root.is_dir():
        raise FileNotFoundError(
            f"{root} is not a directory; pass an output root, experiment or seed directory"
        )
    base = root.parent if root.name.startswith("seed-") else root
    # labels are paths from above the root, so the root itself (if it is one of the
    # experiment directories) has a label distinct from any directory nested in it
    top = Path(os.path.abspath(base)).parent
    found: dict[Path, RunGroup] = {}

    def group(d: Path) -> RunGroup:
        return found.setdefault(d.parent, RunGroup(d.parent.name, d.parent.name, d.parent))

    for d in rundir.seed_dirs(root):
        g = group(d)
        try:
            records = load_finished(d)
        except RunDirError as err:
            g.refused[d] = str(err)
            continue
        if records is None:
            g.unfinished.append(d)
        else:
            g.finished.append(d)
            g.records[d] = records
    for d in rundir.stray_seed_dirs(root):
        group(d).ignored.append(d)
    names = Counter(g.name for g in found.values())
    for g in found.values():
        if names[g.name] > 1:
            g.label = Path(os.path.abspath(g.directory)).relative_to(top).as_posix()
    order = {n: i for i, n in enumerate(EXPERIMENTS)}
    return sorted(
        found.values(),
        key=lambda g: (order.get(g.name, len(order)), g.label.count("/"), g.label),
    )


def _best(lams: list[float], scores: list[float], higher: bool) -> int:
    keyed = [(-s if higher else s) if np.isfinite(s) else math.inf for s in scores]
    return int(np.argmin(keyed))


def _check_options(group: RunGroup, configs: list[dict]) -> None:
    """Refuse a group whose finished seeds were run with different options."""
    first = group.finished[0]
    for d, config in zip(group.finished[1:], configs[1:], strict=True):
        diff = option_differences(config, configs[0], (d.name, first.name))
        if diff:
            raise RunDirError(
                group.directory,
                f"it holds runs of different options ({d.name} and {first.name} differ in "
                f"{'; '.join(diff)}); a row counts runs of one set of options: move one set "
                "into a directory of its own",
            )


def _left_out(
    group: RunGroup, summaries: list[dict], metric: str
) -> tuple[dict[tuple[str, float], list[int]], list[str]]:
    """The weight-decay results that are no number, by (split, λ), and the notes naming them
    (a λ with one is left out of that choice)."""
    bad: dict[tuple[str, float], list[int]] = defaultdict(list)
    for s in summaries:
        for r in s["wd"]:
            value = r["test_metric"] if r["split"] == "full" else r["val_metric"]
            if not math.isfinite(float(value)):
                bad[(r["split"], float(r["lam"]))].append(int(s["seed"]))
    notes = []
    for (split, lam), seeds in sorted(bad.items()):
        which, what = ("test", "test") if split == "full" else ("val", "validation")
        notes.append(
            f"λ={_lam(lam)} left out of 'λ by {which}': its {what} {metric} is not a number "
            f"for seed {', '.join(map(str, sorted(seeds)))} ({group.directory})"
        )
    return bad, notes


def _group_notes(group: RunGroup) -> list[str]:
    """The notes naming what a group left out: refused, ignored and not-asked directories."""
    notes = [f"not counted: {why}" for why in group.refused.values()]
    notes += [
        f"not read: {d} (not a seed directory's name; seed directories are named "
        "seed-<k> with k in at least 3 digits)"
        for d in group.ignored
    ]
    if group.not_asked:
        seeds = ", ".join(str(rundir.seed_of(d)) for d in group.not_asked)
        notes.append(
            f"{group.directory} also holds finished seed {seeds}, not asked for here and not "
            f"counted (`manifoldwalk table {group.directory}` counts every finished seed)"
        )
    return notes


def table_row(group: RunGroup) -> TableRow:
    """Build the Table I row of one experiment directory.

    Args:
        group: From :func:`experiment_groups`; it must hold a finished seed.

    Returns:
        The row, labelled as the group, with notes naming what it left out.

    Raises:
        ValueError: If the group has no finished seed.
        RunDirError: A seed's files do not hold what a run writes, or the group's seeds were
            run with different options (naming the directory and the options).
    """
    if not group.finished:
        raise ValueError(f"{group.directory} holds no finished seed (seed-*/DONE)")
    name = group.name
    records = []
    for d in group.finished:
        loaded = group.records.get(d) or load_finished(d)
        if loaded is None:
            raise RunDirError(d, "it is not finished and intact any more (DONE)")
        records.append(loaded)
    configs = [c for c, _ in records]
    summaries = [s for _, s in records]
    _check_options(group, configs)
    metric = summaries[0]["metric"]
    if any(s["metric"] != metric for s in summaries):
        raise RunDirError(group.directory, "its seeds report different metrics")
    higher = metric == "accuracy"
    full: dict[float, list[float]] = defaultdict(list)
    val: dict[float, list[float]] = defaultdict(list)
    for s in summaries:
        for r in s["wd"]:
            (full if r["split"] == "full" else val)[float(r["lam"])].append(
                float(r["test_metric"] if r["split"] == "full" else r["val_metric"])
            )
    if not full:
        raise RunDirError(
            group.finished[0] / "summary.json", "it holds no weight-decay run on the full set"
        )
    _, notes = _left_out(group, summaries, metric)
    lams = sorted(full)
    test_means = [mean_std(full[lam])[0] for lam in lams]
    val_means = [mean_std(val.get(lam, []))[0] for lam in lams]
    choices = []
    for scores in (test_means, val_means):
        i = _best(lams, scores, higher)
        m, sd = mean_std(full[lams[i]])
        choices.append(Choice(lams[i], m, sd, scores[i]))
    exp = EXPERIMENTS.get(name)
    return TableRow(
        experiment=name,
        metric=metric,
        seeds=sorted(int(s["seed"]) for s in summaries),
        unfinished=len(group.unfinished),
        phase1=mean_std(s["phase1"]["test_metric"] for s in summaries),
        walk=mean_std(s["walk"]["test_metric"] for s in summaries),
        by_test=choices[0],
        by_val=choices[1],
        per_lambda={lam: (t, v) for lam, t, v in zip(lams, test_means, val_means, strict=True)},
        wd_reg=str(configs[0]["options"].get("wd_reg", "l2")),
        paper=exp.paper if exp else None,
        label=group.label,
        directory=group.directory,
        level_held=_level_held(summaries),
        notes=_group_notes(group) + notes,
    )


def experiment_table(directory: str | os.PathLike[str], seeds: Iterable[int]) -> TableRow:
    """The Table I row of exactly ``seeds`` of one experiment directory (what ``reproduce``
    prints): other finished seeds in the directory are left out and named in the row's notes.

    Args:
        directory: The experiment directory (``OUT/<experiment>``).
        seeds: The seeds to count; each must be finished there.

    Returns:
        The row.

    Raises:
        FileNotFoundError: If ``directory`` does not exist or holds no seed directory.
        ValueError: A seed asked for is not finished there (naming it and why).
        RunDirError: As :func:`table_row`.
    """
    directory = Path(directory)
    here = os.path.abspath(directory)
    groups = [g for g in experiment_groups(directory) if os.path.abspath(g.directory) == here]
    if not groups:
        raise no_finished_runs(directory, [])
    (g,) = groups
    wanted = set(seeds)
    by_seed = {rundir.seed_of(d): d for d in g.finished}
    missing = sorted(wanted - set(by_seed))
    if missing:
        why = {rundir.seed_of(d): w for d, w in g.refused.items()}
        raise ValueError(
            f"{directory}: seed {', '.join(map(str, missing))} not finished"
            + "".join(f" ({why[s]})" for s in missing if s in why)
        )
    asked = RunGroup(
        g.name,
        g.label,
        g.directory,
        finished=[d for s, d in sorted(by_seed.items()) if s in wanted],  # type: ignore[misc]
        refused=g.refused,
        ignored=g.ignored,
        not_asked=[d for s, d in sorted(by_seed.items()) if s not in wanted],  # type: ignore[misc]
        records=g.records,
    )
    return table_row(asked)


def _level_held(summaries: list[dict]) -> float | None:
    """The largest on-level |L − L0|/|L0| over the seeds' walks (None where not recorded)."""
    values = [s["walk"].get("max_relative_deviation") for s in summaries]
    return None if None in values else max(float(v) for v in values)


def build_table(root: str | os.PathLike[str]) -> list[TableRow]:
    """Build Table I from the run directories under ``root``.

    Only finished, intact seeds count (:func:`~manifoldwalk.experiments.rundir.is_finished`,
    :func:`load_finished`). Each experiment directory gives its own row
    (:func:`experiment_groups`): seeds of one experiment found in several directories are not
    merged.

    Args:
        root: An output root, an experiment directory or one seed directory.

    Returns:
        One row per experiment directory with a finished seed, in the order of
        :func:`experiment_groups`.

    Raises:
        FileNotFoundError: If ``root`` does not exist or holds no finished run.
        RunDirError: An experiment directory holds seeds of different options (see
            :func:`table_row`).
    """
    groups = experiment_groups(root)
    rows = [table_row(g) for g in groups if g.finished]
    if not rows:
        raise no_finished_runs(root, groups)
    return rows


def no_finished_runs(root: str | os.PathLike[str], groups: list[RunGroup]) -> FileNotFoundError:
    """The error for a root without a finished seed, counting the unfinished ones found."""
    started = sum(len(g.unfinished) for g in groups)
    extra = f" ({started} unfinished seed directories)" if started else ""
    return FileNotFoundError(
        f"no finished run directories (seed-*/DONE) under {Path(root)}{extra}; "
        "make some with `manifoldwalk reproduce EXPERIMENT --out DIR`"
    )


def _fmt(metric: str, mean: float, std: float) -> str:
    scale, unit = (100.0, "%") if metric == "accuracy" else (1.0, "")
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(std):  # one seed: there is no spread to show
        return f"{mean * scale:.2f}{unit}"
    return f"{mean * scale:.2f} ± {std * scale:.2f}{unit}"


def _lam(lam: float) -> str:
    """λ in short scientific notation: ``0``, ``1e-2``, ``3e-2``, ``2.5e-3`` (never rounded
    to a power of ten)."""
    if lam == 0:
        return "0"
    mantissa, exponent = f"{lam:.12e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def format_table(rows: list[TableRow]) -> str:
    """Format Table I as Markdown, with the paper's figures beside ours.

    Args:
        rows: From :func:`build_table`.

    Returns:
        The table and a note on what each column means.
    """
    head = (
        "| experiment | seeds | phase 1 | walk | WD, λ by test | λ (test) | WD, λ by val | "
        "λ (val) | paper walk | paper WD | paper λ |"
    )
    lines = [head, "|" + "---|" * 11]
    regs = set()
    for r in rows:
        regs.add(r.wd_reg)
        p = r.paper
        paper = (
            [
                f"{p.walk:.2f} ± {p.walk_std:.2f}{'%' if r.metric == 'accuracy' else ''}",
                f"{p.wd:.2f} ± {p.wd_std:.2f}{'%' if r.metric == 'accuracy' else ''}",
                _lam(p.best_lambda),
            ]
            if p
            else ["–", "–", "–"]
        )
        name = r.label + (" (MSE)" if r.metric == "mse" else "")
        seeds = f"{len(r.seeds)}" + (f" (+{r.unfinished} unfinished)" if r.unfinished else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    seeds,
                    _fmt(r.metric, *r.phase1),
                    _fmt(r.metric, *r.walk),
                    _fmt(r.metric, r.by_test.mean, r.by_test.std),
                    _lam(r.by_test.lam),
                    _fmt(r.metric, r.by_val.mean, r.by_val.std),
                    _lam(r.by_val.lam),
                    *paper,
                ]
            )
            + " |"
        )
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
    held = [f"{r.label} {r.level_held:.2g}" for r in rows if r.level_held is not None]
    if held:
        lines.append(
            "Level held by the walks (the largest |L − L0|/|L0| at an on-level point of any "
            "seed): " + ", ".join(held) + "."
        )
    lines += [f"Note, {r.label}: {note}" for r in rows for note in r.notes]
    return "\n".join(lines)
