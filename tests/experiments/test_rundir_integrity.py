"""Run directories that cannot mix or lie: options, records, checksums, indexed reads, cleanup.

Every test starts from a copy of one finished 2-seed iris-ff run (100 walk steps, 2 epochs,
2 λ) and changes it as a user, a crash or a stray copy would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from _runs_helpers import TINY, run_files

import manifoldwalk as mw
from manifoldwalk.cli import main
from manifoldwalk.experiments import RunConfig, build_table, format_table, run_experiment, run_seed
from manifoldwalk.experiments._walk_stage import checkpoint_problem
from manifoldwalk.experiments.rundir import (
    RunDirError,
    RunFiles,
    is_finished,
    mark_done,
    seed_dir,
)
from manifoldwalk.plots import load_runs
from manifoldwalk.problems import Circle

CONFIG = dict(max_steps=100, **TINY)
#: The command line of CONFIG.
ARGS = ["--steps", "100", "--epochs", "2", "--wd-epochs", "2", "--wd-lambdas", "0,1e-3"]
ARGS += ["--record-every", "50", "--quiet"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An output root holding seeds 0 and 1 of iris-ff, finished (never changed by a test).

    Its weight-decay runs train one by one (``sweep="sequential"``), so that one recomputed
    alone equals the first bit for bit (trained in a batch: up to rounding).
    """
    out = tmp_path_factory.mktemp("finished")
    config = RunConfig("iris-ff", out=str(out), seeds=(0, 1), **CONFIG)
    run_experiment(config, show_progress=False, sweep="sequential")
    return out


@pytest.fixture
def runs(finished: Path, tmp_path: Path) -> Path:
    """A copy of ``finished`` for one test to change."""
    out = tmp_path / "runs"
    shutil.copytree(finished, out)
    return out


def _config(out: Path, **changes) -> RunConfig:
    return RunConfig("iris-ff", out=str(out), **{**CONFIG, **changes})


def _reproduce(out: Path, *argv: str) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["reproduce", "iris-ff", "--out", str(out), *ARGS, *argv]) == 0
    return buf.getvalue()


# --- 1. an --out holding runs of other options -----------------------------------------------


def test_an_unasked_seed_of_other_options_is_refused_before_any_work(tmp_path):
    run_experiment(_config(tmp_path, seeds=(1,)), show_progress=False)
    with pytest.raises(ValueError, match=r"seed-001 holds a run made with other options.*steps"):
        run_experiment(_config(tmp_path, seeds=(0,), max_steps=60), show_progress=False)
    assert not seed_dir(tmp_path, "iris-ff", 0).exists()  # refused before seed 0 started


def test_fewer_seeds_than_the_directory_holds_print_a_table_of_exactly_those(runs, capsys):
    printed = _reproduce(runs, "--seeds", "1")
    assert "| iris-ff | 1 |" in printed
    assert "also holds finished seed 1, not asked for here and not counted" in printed
    printed = _reproduce(runs, "--seeds", "1", "--first-seed", "1")
    assert "| iris-ff | 1 |" in printed and "also holds finished seed 0" in printed
    assert main(["table", str(runs)]) == 0  # the table command counts every finished seed
    assert "| iris-ff | 2 |" in capsys.readouterr().out


def test_a_table_refuses_a_directory_mixing_options(runs):
    d = seed_dir(runs, "iris-ff", 1)
    config = json.loads((d / "config.json").read_text())
    config["options"]["max_steps"] = 60  # as if seed 1 had been copied in from another run
    (d / "config.json").write_text(json.dumps(config))
    mark_done(d)
    with pytest.raises(RunDirError, match=r"different options.*max_steps \(--steps\): 60 seed-001"):
        build_table(runs)
    with pytest.raises(RunDirError, match="different options"):
        load_runs(runs)


def test_defaults_spelled_out_and_a_data_dir_for_iris_are_the_same_run(runs, tmp_path):
    before = run_files(seed_dir(runs, "iris-ff", 0))
    printed = _reproduce(runs, "--seeds", "2", "--dtype", "float64", "--data-dir", str(tmp_path))
    assert "| iris-ff | 2 |" in printed
    run_experiment(_config(runs, seeds=(0, 1), dtype="float64", wd_lambdas=(0.0, 1e-3)))
    assert run_files(seed_dir(runs, "iris-ff", 0)) == before  # reused, not redone


# --- 2. work without a readable record of its options ---------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda p: p.unlink(), "but no config.json: the options it was made with are unknown"),
        (lambda p: p.write_text('{"seed": 0, "opt'), "config.json does not load"),
        (lambda p: p.write_text("[]"), "config.json does not load"),
        # a record rewritten to claim the options asked now
        (lambda p: p.write_text(p.read_text() + " "), "config.json was changed after the work"),
    ],
    ids=["missing", "truncated", "not-a-record", "rewritten"],
)
def test_work_whose_options_are_unknown_is_refused_not_reused(runs, change, words):
    d = seed_dir(runs, "iris-ff", 0)
    (d / "DONE").unlink()
    change(d / "config.json")
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    for config in (_config(runs), _config(runs, max_steps=60)):
        with pytest.raises(ValueError, match=words):
            run_seed(config, 0, show_progress=False)
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
    assert not is_finished(d)


# --- 3. result files carry a checksum ---------------------------------------------------------


@pytest.mark.parametrize("name", ["wd/full-01.json", "wd/val-00.json"])
def test_an_edited_weight_decay_record_that_parses_is_recomputed(runs, capsys, name):
    d = seed_dir(runs, "iris-ff", 0)
    before = run_files(d)
    record = json.loads((d / name).read_text())
    record["test_metric"], record["val_metric"] = 0.123, 0.456
    (d / name).write_text(json.dumps(record))
    assert not is_finished(d)  # DONE's hashes see the change
    run_seed(_config(runs), 0, show_progress=False, sweep="sequential")
    err = capsys.readouterr().err
    assert f"{d / name} is damaged (its contents differ from what the run wrote" in err
    assert is_finished(d) and run_files(d) == before
    summary = json.loads((d / "summary.json").read_text())
    assert 0.123 not in [r["test_metric"] for r in summary["wd"]]


def test_the_done_marker_lists_exactly_what_the_run_recorded(runs):
    d = seed_dir(runs, "iris-ff", 0)
    listed = set(json.loads((d / "DONE").read_text())["files"])
    assert listed == set(RunFiles(d).names)
    assert {"config.json", "summary.json", "metrics.csv", "wd/full-00.json"} <= listed
    assert "index.json" not in listed and "DONE" not in listed


# --- 4. non-finite or wrong-shaped θ, ragged history ------------------------------------------


def _nan_theta(r: mw.WalkResult) -> None:
    r.theta = np.full_like(r.theta, np.nan)
    r.state = r.state._replace(theta=np.full_like(r.state.theta, np.nan))


def _short_theta(r: mw.WalkResult) -> None:
    r.theta = r.theta[:-1]
    r.state = r.state._replace(theta=r.state.theta[:-1])


def _ragged(r: mw.WalkResult) -> None:
    r.history["angle"] = r.history["angle"][:-1]


_BAD_CHECKPOINTS = [
    # (change, what the checker says, what the message says whichever layer refuses the file)
    (_nan_theta, "its θ holds 21003 non-finite values", r"non-finite|NaN"),
    (_short_theta, "its θ has shape (21002,)", r"shape"),
    (_ragged, "its history columns have different lengths", r"different lengths"),
]


@pytest.mark.parametrize(
    ("change", "words", "said"), _BAD_CHECKPOINTS, ids=["nan", "short", "ragged"]
)
def test_a_bad_checkpoint_is_named_and_the_walk_recomputed(runs, capsys, change, words, said):
    d = seed_dir(runs, "iris-ff", 0)
    before = run_files(d)
    (d / "DONE").unlink()
    ckpt = mw.WalkResult.load(d / "walk" / "checkpoint.npz")
    assert checkpoint_problem(ckpt, 21003, "accuracy") is None
    change(ckpt)
    assert checkpoint_problem(ckpt, 21003, "accuracy").startswith(words)
    # recorded as the run's own write, so that only a check of its content can catch it
    RunFiles(d).write_with("walk/checkpoint.npz", ckpt.save)
    run_seed(_config(runs), 0, show_progress=False)
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "checkpoint.npz is damaged" in x)
    assert line.startswith(f"manifoldwalk: {d / 'walk' / 'checkpoint.npz'} is damaged (")
    assert re.search(said, line) and line.endswith("walking again from phase 1's θ0"), line
    assert is_finished(d) and run_files(d) == before
    assert np.isfinite(np.load(d / "final.npz")["theta"]).all()


def test_the_checkpoint_checker_names_each_problem():
    rng = np.random.default_rng(0)
    r = mw.walk(Circle(), np.array([0.0, 1.0]), stop=mw.Stop(max_steps=5), record=mw.Record())
    cols = ("step", "n_predictor", "n_corrector", "n_grad_evals", "loss", "deviation", "reg")
    cols += ("angle", "kkt", "eta_p", "test_loss", "test_accuracy")
    r.history = {c: rng.normal(size=3) for c in cols}
    assert checkpoint_problem(r, 2, "accuracy") is None
    assert "the net has 3 parameters" in checkpoint_problem(r, 3, "accuracy")
    r.state = r.state._replace(level=np.asarray(np.inf))
    assert "its state's level" in checkpoint_problem(r, 2, "accuracy")
    r.state = None
    assert "no walk state" in checkpoint_problem(r, 2, "accuracy")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda t: np.full_like(t, np.nan), "its theta holds 21003 non-finite values"),
        (lambda t: t[:-1], "its theta has 21002 values; the net has 21003"),
        (lambda t: t.reshape(1, -1), "its theta has shape (1, 21003)"),
    ],
    ids=["nan", "short", "2-d"],
)
def test_a_bad_phase1_theta_is_named_and_phase1_trained_again(runs, capsys, change, words):
    d = seed_dir(runs, "iris-ff", 0)
    before = run_files(d)
    (d / "DONE").unlink()
    with np.load(d / "phase1.npz") as f:
        saved = {k: f[k] for k in f.files}
    saved["theta"] = change(saved["theta"])
    RunFiles(d).write_npz("phase1.npz", **saved)
    run_seed(_config(runs), 0, show_progress=False)
    err = capsys.readouterr().err
    assert f"{d / 'phase1.npz'} is damaged ({words}" in err, err
    assert is_finished(d) and run_files(d) == before


def test_an_unrecorded_theta_file_before_the_checkpoint_redoes_the_walk(runs, capsys):
    d = seed_dir(runs, "iris-ff", 0)
    before = run_files(d)
    (d / "DONE").unlink()
    path = d / "walk" / "thetas-00000100.npz"
    with np.load(path) as f:
        steps, theta = f["steps"], f["theta"]
    np.savez(path, steps=steps, theta=theta * 2)  # a valid file, not the one the run wrote
    run_seed(_config(runs), 0, show_progress=False)
    assert f"{path} is damaged (its contents differ" in capsys.readouterr().err
    assert run_files(d) == before


# --- 5. readers read only what the run's index lists ------------------------------------------


def test_copies_of_seed_directories_are_not_counted_and_are_named(runs):
    exp = runs / "iris-ff"
    shutil.copytree(exp / "seed-000", exp / "seed-000.bak")
    shutil.copytree(exp / "seed-000", exp / "seed-005")  # seed 0's run under seed 5's name
    (row,) = build_table(runs)
    assert row.seeds == [0, 1]
    notes = format_table([row])
    assert f"not read: {exp / 'seed-000.bak'} (not a seed directory's name" in notes
    assert f"not counted: {exp / 'seed-005' / 'config.json'}: it holds the run of seed 0" in notes
    (exp_runs,) = load_runs(runs)
    assert [s.seed for s in exp_runs.seeds] == [0, 1]


def test_a_theta_file_added_after_the_run_is_not_part_of_its_trajectory(runs):
    (before,) = load_runs(runs)
    steps0 = before.seeds[0].trajectory()[0]
    d = seed_dir(runs, "iris-ff", 0)
    rng = np.random.default_rng(0)
    np.savez(
        d / "walk" / "thetas-00000150.npz",
        steps=np.array([150]),
        theta=rng.normal(size=(1, 21003)).astype(np.float32),
    )
    assert is_finished(d)
    (after,) = load_runs(runs)
    steps, parts = after.seeds[0].trajectory()
    np.testing.assert_array_equal(steps, steps0)
    assert list(steps) == [0, 50, 100]
    assert all("thetas-00000150" not in str(getattr(a, "filename", "")) for a, _ in parts)


def test_a_listed_file_changed_after_loading_is_refused_when_read(runs):
    (exp,) = load_runs(runs)
    d = seed_dir(runs, "iris-ff", 1)
    final = np.load(d / "final.npz")["theta"]
    np.savez(d / "final.npz", theta=final + 1)
    with pytest.raises(RunDirError, match=r"final.npz: it changed after .*DONE was written"):
        exp.seeds[1].final_theta()
    np.testing.assert_array_equal(exp.seeds[0].wd_theta(1e-3).shape, (21003,))


# --- 7. temporary files of interrupted writes, the checkpoint's fsync -------------------------


def test_temporary_files_are_cleaned_on_resume(runs):
    d = seed_dir(runs, "iris-ff", 0)
    (d / "DONE").unlink()
    left = [d / ".wd.csv.k2j4.tmp", d / "walk" / ".checkpoint.npz.x81q.tmp"]
    left += [d / "walk" / ".checkpoint.tmp.npz", d / "wd" / ".full-00.json.a.tmp"]
    for p in left:
        p.write_bytes(b"half")
    (d / ".keep").write_text("not ours")
    run_seed(_config(runs), 0, show_progress=False)
    assert is_finished(d)
    assert not [p for p in left if p.exists()] and (d / ".keep").exists()


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="names fds through /proc")
def test_the_walk_checkpoint_is_flushed_to_disk_before_it_replaces_the_old(tmp_path, monkeypatch):
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    run_seed(_config(tmp_path, checkpoint_every=50), 0, show_progress=False)
    checkpoints = [n for n in synced if n.startswith(".checkpoint.npz.") and n.endswith(".tmp")]
    assert len(checkpoints) == 2  # one per segment (steps 50 and 100)


# --- 1, 2 together: the runner checks every seed directory of the experiment -----------------


def test_an_unasked_seed_without_a_record_of_its_options_is_refused(runs):
    d = seed_dir(runs, "iris-ff", 1)
    (d / "config.json").unlink()
    with pytest.raises(ValueError, match=r"seed-001 holds work .* but no config.json"):
        run_experiment(replace(_config(runs), seeds=(0,)), show_progress=False)


# --- bounds: a reader allocates no more than a file holds -------------------------------------


def _npz_claiming(shape: tuple[int, ...], body: bytes, compress: bool = False) -> bytes:
    """An .npz whose theta.npy header claims ``shape`` (float64) over ``body``."""
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape}
    )
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        zf.writestr("theta.npy", header.getvalue() + body)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_npz_claiming((10**12,), b"\0" * 8), "claims shape (1000000000000,)"),
        (_npz_claiming((3,), b"\0" * 8), "claims shape (3,) (24 bytes) but holds 8 bytes"),
        (_npz_claiming((1,), b"\0" * 8, compress=True), "compressed"),
        (b"PK\x03\x04 not a zip", "does not load"),
    ],
    ids=["huge", "short", "compressed", "not-a-zip"],
)
def test_a_theta_file_is_checked_against_its_header_before_anything_is_allocated(runs, data, words):
    d = seed_dir(runs, "iris-ff", 0)
    (d / "final.npz").write_bytes(data)
    listing = json.loads((d / "DONE").read_text())
    listing["files"]["final.npz"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (d / "DONE").write_text(json.dumps(listing))  # a marker that vouches for the file
    (exp,) = load_runs(runs)
    with pytest.raises(RunDirError, match=re.escape(words)):
        next(s for s in exp.seeds if s.seed == 0).final_theta()


def test_a_done_listing_never_leads_out_of_the_directory(runs, tmp_path):
    d = seed_dir(runs, "iris-ff", 0)
    outside = tmp_path / "outside.npz"
    shutil.copyfile(d / "final.npz", outside)
    listing = json.loads((d / "DONE").read_text())
    entry = listing["files"]["final.npz"]
    for name in ("../../../outside.npz", str(outside)):
        changed = {**listing, "files": {**listing["files"], name: entry}}
        (d / "DONE").write_text(json.dumps(changed))
        assert not is_finished(d), name
    (d / "DONE").write_text(json.dumps(listing))
    assert is_finished(d)
    (d / "final.npz").unlink()
    (d / "final.npz").symlink_to(outside)  # the same bytes, through a link out
    assert not is_finished(d)
    (row,) = build_table(runs)
    assert row.seeds == [1] and row.unfinished == 1
