"""The seed directories of each experiment directory, found and checked (what a table reads).

A row counts only finished, intact seed directories named ``seed-<k>``, reads only the files
their ``DONE`` marker lists (each checked against its SHA-256 as it is read), and counts them
only when they hold seed ``k``'s run of that experiment. A copy such as ``seed-000.bak`` is not
read; a seed directory whose files say otherwise is not counted (:class:`RunGroup` keeps why).
Each experiment directory is its own group: runs of one experiment found in several directories
under the root are never merged, and their groups are labelled by their paths.

Only the seed directories are read: the files written beside them (``table.*``, ``history.*``,
``wd.csv`` in the experiment directory) are outputs, never read back as data.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from manifoldwalk import _json
from manifoldwalk.experiments import rundir
from manifoldwalk.experiments.definitions import EXPERIMENTS
from manifoldwalk.experiments.rundir import RunDirError

__all__ = ["RunGroup", "experiment_groups", "load_finished", "no_finished_runs"]


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
        return _json.loads(data)  # a noted null is NaN or ±inf again
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


def no_finished_runs(root: str | os.PathLike[str], groups: list[RunGroup]) -> FileNotFoundError:
    """The error for a root without a finished seed, counting the unfinished ones found."""
    started = sum(len(g.unfinished) for g in groups)
    extra = f" ({started} unfinished seed directories)" if started else ""
    return FileNotFoundError(
        f"no finished run directories (seed-*/DONE) under {Path(root)}{extra}; "
        "make some with `manifoldwalk reproduce EXPERIMENT --out DIR`"
    )
