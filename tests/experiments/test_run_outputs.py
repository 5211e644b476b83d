"""Analysis-ready run outputs, on one tiny 2-seed iris-ff run made by the command line: strict
JSON, accuracy as a fraction, the table in three formats, the tidy histories beside the runs,
provenance per session, and docs/run_format.md against the files (both directions)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from _runs_helpers import TINY

from manifoldwalk.cli import main
from manifoldwalk.experiments import RunConfig, build_table, run_seed
from manifoldwalk.experiments._provenance import git_state
from manifoldwalk.experiments.rundir import DONE, RunFiles, finished_files
from manifoldwalk.experiments.table import COLUMNS
from manifoldwalk.plots import load_runs

ARGS = ["--steps", "100", "--epochs", "2", "--wd-epochs", "2", "--wd-lambdas", "0,1e-3"]
ARGS += ["--record-every", "50", "--quiet"]
PAGE = Path(__file__).resolve().parents[2] / "docs" / "run_format.md"
OUTPUTS = ("table.md", "table.csv", "table.json", "history.csv", "wd.csv")


def _cli(*argv: str) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(list(argv)) == 0
    return buf.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``manifoldwalk reproduce iris-ff --seeds 2`` (tiny); returns OUT/iris-ff."""
    out = tmp_path_factory.mktemp("out")
    _cli("reproduce", "iris-ff", "--seeds", "2", "--out", str(out), *ARGS)
    return out / "iris-ff"


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    """A copy of the run's output root for one test to change; returns its OUT/iris-ff."""
    shutil.copytree(run.parent, tmp_path / "out")
    return tmp_path / "out" / "iris-ff"


def _refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


def _json_files(exp: Path) -> list[Path]:
    return sorted(p for p in exp.rglob("*") if p.suffix == ".json" or p.name == DONE)


def test_every_json_file_is_strict_json_that_pandas_reads(run):
    pd = pytest.importorskip("pandas")
    files = _json_files(run)
    assert {p.name for p in files} >= {"config.json", "summary.json", "provenance.json", "DONE"}
    assert {"table.json", "index.json", "full-00.json"} <= {p.name for p in files}
    for p in files:
        data = json.loads(p.read_text(), parse_constant=_refuse)
        frame = pd.read_json(
            io.StringIO(p.read_text()), typ="frame" if isinstance(data, list) else "series"
        )
        assert len(frame) > 0, p
    # a full-training-set run has no validation split: null, with why beside it
    record = json.loads((run / "seed-000" / "wd" / "full-00.json").read_text())
    assert record["val_loss"] is None and record["val_metric"] is None
    assert record["val_metric_note"].startswith("nan: not measured")
    # the walk checkpoint's metadata is JSON too
    with np.load(run / "seed-000" / "walk" / "checkpoint.npz", allow_pickle=False) as f:
        json.loads(str(f["meta"]), parse_constant=_refuse)


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_accuracy_is_a_fraction_in_every_file(run):
    values: list[float] = []
    for s in ("seed-000", "seed-001"):
        d = run / s
        summary = json.loads((d / "summary.json").read_text())
        values += [summary["phase1"]["test_metric"], summary["walk"]["test_metric"]]
        for r in summary["wd"]:
            values += [r["test_metric"]] + ([r["val_metric"]] if r["split"] == "val" else [])
        for p in (d / "wd").glob("*.json"):
            values.append(json.loads(p.read_text())["test_metric"])
        with np.load(d / "phase1.npz", allow_pickle=False) as f:
            values.append(float(f["test_metric"]))
        with np.load(d / "walk" / "checkpoint.npz", allow_pickle=False) as f:
            values += f["history/test_accuracy"].tolist()
        values += [float(r["test_accuracy"]) for r in _csv(d / "metrics.csv")]
        values += [float(r["test_metric"]) for r in _csv(d / "wd.csv")]
    values += [float(r["test_accuracy"]) for r in _csv(run / "history.csv")]
    values += [float(r["test_metric"]) for r in _csv(run / "wd.csv")]
    (row,) = _csv(run / "table.csv")
    (obj,) = json.loads((run / "table.json").read_text())
    for col in ("phase1", "walk", "wd_by_test", "wd_by_val", "paper_walk", "paper_wd"):
        values += [float(row[f"{col}_mean"]), obj[f"{col}_mean"]]
    assert len(values) > 60 and all(0.0 <= v <= 1.0 for v in values), sorted(values)[-3:]
    # the paper's 96.67 % is written as a fraction; the printed table keeps percent
    assert float(row["paper_walk_mean"]) == pytest.approx(0.9667)
    assert "96.67 ± 0.00%" in (run / "table.md").read_text()


def test_the_table_command_prints_md_csv_and_json_of_the_same_numbers(run):
    (row,) = build_table(run)
    md = _cli("table", str(run), "--format", "md", "--no-files")
    assert md == _cli("table", str(run), "--no-files")  # md is the default
    assert md.rstrip("\n") == (run / "table.md").read_text().rstrip("\n")
    assert "| iris-ff | test |" in md and "Significant differences: none." in md
    printed = _cli("table", str(run), "--format", "csv", "--no-files")
    assert printed == (run / "table.csv").read_text()
    (rec,) = csv.DictReader(io.StringIO(printed))
    assert list(rec) == list(COLUMNS)
    assert float(rec["walk_mean"]) == row.walk[0] and float(rec["walk_std"]) == row.walk[1]
    assert float(rec["wd_by_val_lambda"]) == row.by_val.lam and rec["seed_list"] == "0 1"
    (obj,) = json.loads(_cli("table", str(run), "--format", "json", "--no-files"))
    assert [obj] == json.loads((run / "table.json").read_text())
    for k in COLUMNS:  # the JSON row holds the CSV row's values
        v, o = rec[k], obj[k]
        if k == "seed_list":
            assert o == [int(x) for x in v.split()]
        elif v in ("True", "False"):
            assert o is (v == "True"), k
        elif v in ("", "nan"):
            assert o is None, k
        elif k in ("experiment", "label", "directory", "metric", "wd_reg") or "verdict" in k:
            assert o == v, k
        else:
            assert o == float(v), k
    # paired: walk − weight decay per seed at the λ chosen, recomputed from the summaries
    lam = obj["paired_by_test_lambda"]
    diffs = []
    for s in (0, 1):
        summary = json.loads((run / f"seed-00{s}" / "summary.json").read_text())
        (wd,) = [r for r in summary["wd"] if r["split"] == "full" and r["lam"] == lam]
        diffs.append(summary["walk"]["test_metric"] - wd["test_metric"])
    assert obj["paired_by_test_differences"] == pytest.approx(diffs)
    assert obj["paired_by_test_mean"] == pytest.approx(np.mean(diffs))


def test_a_format_that_does_not_exist_is_a_one_line_error(run):
    done = subprocess.run(
        [sys.executable, "-m", "manifoldwalk", "table", str(run), "--format", "xml"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "invalid choice: 'xml'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_tidy_histories_hold_every_seeds_rows(run):
    pd = pytest.importorskip("pandas")
    history = pd.read_csv(run / "history.csv")  # the one-liner of docs/run_format.md
    wd = pd.read_csv(run / "wd.csv")
    for seed in (0, 1):
        d = run / f"seed-{seed:03d}"
        mine = pd.read_csv(d / "metrics.csv")
        theirs = history[history["seed"] == seed].drop(columns="seed").reset_index(drop=True)
        pd.testing.assert_frame_equal(theirs, mine)
        own_wd = pd.read_csv(d / "wd.csv")
        got = wd[wd["seed"] == seed].drop(columns="seed").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, own_wd)
    assert list(history.columns) == ["seed", *pd.read_csv(run / "seed-000" / "metrics.csv")]
    assert sorted(history["seed"].unique()) == [0, 1] and len(wd) == 8
    assert wd["val_loss"].isna().sum() == 4  # the full-training-set runs
    parquet = run / "history.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert not parquet.exists()  # written only with pyarrow
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(parquet), history)


def _numbers(rows) -> list:
    return [(r.seeds, r.phase1, r.walk, r.by_test, r.by_val) for r in rows]


def test_the_files_beside_the_runs_are_never_read_back_as_data(copy):
    before = _numbers(build_table(copy))
    history = (copy / "history.csv").read_bytes()
    for name in (*OUTPUTS, "history.parquet"):
        (copy / name).write_text("seed,junk\nnot,a number\n")
    assert _numbers(build_table(copy)) == before
    (exp,) = load_runs(copy)
    assert [s.seed for s in exp.seeds] == [0, 1]
    # --no-files and a seed directory write nothing
    _cli("table", str(copy.parent), "--no-files")
    _cli("table", str(copy / "seed-000"))
    assert (copy / "history.csv").read_text() == "seed,junk\nnot,a number\n"
    # a finished run asked again is no run of other options: the files are made again
    _cli("reproduce", "iris-ff", "--seeds", "2", "--out", str(copy.parent), *ARGS)
    assert (copy / "history.csv").read_bytes() == history
    for name in OUTPUTS:
        assert "junk" not in (copy / name).read_text()
    assert not (copy / "history.parquet").exists() or _has_pyarrow()
    _cli("table", str(copy.parent))  # and `table` rebuilds them too
    assert (copy / "history.csv").read_bytes() == history


def _has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def test_each_session_is_recorded_in_provenance_and_never_refuses_a_resume(copy, capsys):
    d0, d1 = copy / "seed-000", copy / "seed-001"
    (record,) = json.loads((d0 / "provenance.json").read_text())["sessions"]
    assert record["framework"] == "torch" and record["dtype"] == "float64"
    assert record["threads"] == 1 and record["argv"] == sys.argv  # the command line
    assert record["git"] == git_state()
    assert "provenance.json" in finished_files(d0) and "provenance.json" in RunFiles(d0).names
    config = RunConfig("iris-ff", out=str(copy.parent), seeds=(0, 1), max_steps=100, **TINY)
    # resumed (DONE lost): a second session is recorded, the work is reused
    (d0 / DONE).unlink()
    run_seed(config, 0, show_progress=False)
    first, second = json.loads((d0 / "provenance.json").read_text())["sessions"]
    assert first == record and second["started"] >= first["started"]
    # a record of another commit is no other option: the resume goes ahead
    text = (d1 / "provenance.json").read_text()
    (d1 / "provenance.json").write_text(text.replace(str(record["git"]["commit"]), "0" * 40))
    (d1 / DONE).unlink()
    run_seed(config, 1, show_progress=False)
    assert "provenance.json is damaged" in capsys.readouterr().err
    assert len(json.loads((d1 / "provenance.json").read_text())["sessions"]) == 1
    assert finished_files(d1) is not None


def test_the_git_commit_is_recorded_only_from_a_checkout_of_manifoldwalk(tmp_path):
    import manifoldwalk

    package = Path(manifoldwalk.__file__).resolve().parent
    assert git_state(tmp_path / "manifoldwalk") == {"commit": None, "dirty": None}
    head = subprocess.run(
        ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    state = git_state(package)
    if head.returncode == 0 and (package.parent / ".git").exists():
        assert state["commit"] == head.stdout.strip() and isinstance(state["dirty"], bool)
    else:
        assert state == {"commit": None, "dirty": None}
    # a package inside some other repository's tree (a venv in a project) gives no commit
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "venv" / "manifoldwalk").mkdir(parents=True)
    assert git_state(tmp_path / "venv" / "manifoldwalk") == {"commit": None, "dirty": None}


# --- docs/run_format.md against the files ------------------------------------------------------


def _tables(section: str) -> list[str]:
    """The backticked first cells of a Markdown section's table rows."""
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def _pattern(documented: str, slots: dict[str, str] | None = None) -> re.Pattern:
    out, pos = "", 0
    for m in re.finditer(r"<([^>]+)>", documented):
        out += re.escape(documented[pos : m.start()]) + (slots or {}).get(m[1], ".+")
        pos = m.end()
    return re.compile(out + re.escape(documented[pos:]))


_FILE_SLOTS = {"k": "[0-9]{3,}", "n": "[0-9]{8}", "split": "(full|val)", "i": "[0-9]{2}"}


def _flatten(obj, prefix: str = "") -> set[str]:
    if isinstance(obj, dict):
        out: set[str] = set()
        for k, v in obj.items():
            out |= _flatten(v, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(obj, list) and obj and all(isinstance(e, dict) for e in obj):
        return set().union(*(_flatten(e, f"{prefix}[]" if prefix else "") for e in obj))
    return {prefix}


def _fields(path: Path) -> set[str]:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return set(f.files)
    if path.suffix == ".csv":
        return set(next(csv.reader(path.open())))
    return _flatten(json.loads(path.read_text()))


def test_the_page_lists_every_file_and_field_a_run_writes_and_nothing_else(run):
    text = PAGE.read_text(encoding="utf-8")
    files_part = text.split("\n## Files\n", 1)[1].split("\n## ", 1)[0]
    documented = _tables(files_part)
    written = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())
    patterns = {doc: _pattern(doc, _FILE_SLOTS) for doc in documented}
    for name in written:  # every file written is documented
        assert any(p.fullmatch(name) for p in patterns.values()), name
    optional = {"history.parquet"} if not _has_pyarrow() else set()
    for doc, p in patterns.items():  # every documented file is written
        assert doc in optional or any(p.fullmatch(n) for n in written), doc
    sections = dict(re.findall(r"^### `([^`]+)`\n(.*?)(?=^### |^## |\Z)", text, flags=re.M | re.S))
    sections["table.json"] += sections["table.csv"]  # the JSON holds the CSV's columns too
    for doc, p in patterns.items():
        if doc in ("table.md", "history.parquet", ".reproduce.lock"):
            continue  # Markdown for reading; the Parquet copy of history.csv; a lock's one line
        assert doc in sections, f"docs/run_format.md has no field table for {doc}"
        fields = [_pattern(f) for f in _tables(sections[doc])]
        found: set[str] = set()
        for name in (n for n in written if p.fullmatch(n)):
            found |= _fields(run / name)
        for f in found:  # every field written is documented
            # (a <field>_note beside a null number is the page's strict-JSON convention)
            base = f.removesuffix("_note")
            assert any(q.fullmatch(f) or q.fullmatch(base) for q in fields), f"{doc}: {f}"
        for q in fields:  # every documented field is written
            assert any(q.fullmatch(f) for f in found), f"{doc}: {q.pattern}"


def test_seeds_that_do_not_fit_one_tidy_file_are_named_and_the_table_still_printed(copy, capsys):
    from manifoldwalk.experiments.rundir import mark_done

    d = copy / "seed-001"
    rows = list(csv.reader((d / "metrics.csv").open()))
    (d / "metrics.csv").write_text("\n".join(",".join([*r, "9"]) for r in rows) + "\n")
    mark_done(d)  # blessed again: a finished seed whose records have another column
    before = (copy / "history.csv").read_bytes()
    assert main(["table", str(copy)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("| experiment | seeds |") and "| iris-ff | 2 |" in out
    assert "the files beside the runs were not written" in err
    assert str(d / "metrics.csv") in err and "differ from the others'" in err
    assert (copy / "history.csv").read_bytes() == before  # never half a rebuild


def test_files_of_older_runs_are_read_as_the_same_run(copy):
    """Older runs wrote the paper's figures into config.json and bare NaN into summary.json."""
    from manifoldwalk.experiments.config import check_config
    from manifoldwalk.experiments.rundir import mark_done

    d = copy / "seed-000"
    old = json.loads((d / "config.json").read_text())
    old["experiment"]["paper"] = {"walk": 96.67, "walk_std": 0.0, "wd": 96.67, "wd_std": 0.0}
    RunFiles(d).write_json("config.json", old)  # recorded, as the older run recorded it
    summary = (d / "summary.json").read_text()
    (d / "summary.json").write_text(summary.replace("null", "NaN"))
    mark_done(d)
    config = RunConfig("iris-ff", out=str(copy.parent), seeds=(0, 1), max_steps=100, **TINY)
    check_config(d, config.for_seed(0))  # no other options: it would be resumed, not refused
    (row,) = build_table(copy)  # and counted with seed 1, whose config.json is new
    assert row.seeds == [0, 1] and not row.notes
    assert "paper" not in json.loads((copy / "seed-001" / "config.json").read_text())["experiment"]
