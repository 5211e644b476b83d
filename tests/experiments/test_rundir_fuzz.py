"""Fuzzing the run-directory readers (``build_table``, ``load_runs`` and what a seed reads).

A real 2-seed iris-ff run is damaged, edited, extended with stray files and copies, or has a
file replaced by a link out of it, at random, and sometimes blessed afterwards with a fresh
``DONE`` marker (so that the readers' content checks, not only the checksums, are exercised).
The readers must then either give valid data (exactly the untouched run's numbers when nothing
was blessed) or raise the documented error naming a file or directory of the run, and must
never write anything, inside the run directory or out of it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from _runs_helpers import TINY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifoldwalk.experiments import RunConfig, build_table, run_experiment
from manifoldwalk.experiments.rundir import mark_done
from manifoldwalk.plots import load_runs

SEEDS = ("seed-000", "seed-001")


def _row_numbers(row) -> tuple:
    return (
        tuple(row.seeds),
        row.phase1,
        row.walk,
        row.by_test.lam,
        row.by_test.mean,
        row.by_val.lam,
        row.by_val.mean,
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict, list[str]]:
    """The untouched run, the table's numbers for every subset of its seeds, each seed's
    trajectory steps, and the files of its seed directories."""
    out = tmp_path_factory.mktemp("pristine")
    config = RunConfig("iris-ff", out=str(out), seeds=(0, 1), max_steps=100, **TINY)
    run_experiment(config, show_progress=False)
    expected = {}
    for keep in ((0, 1), (0,), (1,)):
        copy = tmp_path_factory.mktemp("subset")
        for k in keep:
            shutil.copytree(out / "iris-ff" / SEEDS[k], copy / "iris-ff" / SEEDS[k])
        (row,) = build_table(copy)
        expected[keep] = _row_numbers(row)
    (exp,) = load_runs(out)
    steps = {s.seed: s.trajectory()[0].tolist() for s in exp.seeds}
    files = sorted(
        p.relative_to(out).as_posix() for p in (out / "iris-ff").rglob("*") if p.is_file()
    )
    return out, expected, steps, files


_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _edit_json(data: st.DataObject, path: Path) -> None:
    """Replace one value somewhere in a JSON file (or the whole file when it does not load)."""
    try:
        obj = json.loads(path.read_text())
    except (ValueError, OSError):
        path.write_text(json.dumps(data.draw(_JSON_VALUES)))
        return
    holder, key = None, None
    node = obj
    while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        holder, key = node, data.draw(st.sampled_from(keys))
        node = node[key]
    if holder is None:
        obj = data.draw(_JSON_VALUES)
    else:
        holder[key] = data.draw(_JSON_VALUES)
    path.write_text(json.dumps(obj))


#: The changes drawn, the structural ones (stray copies and files, links out, edits that still
#: parse) more often than plain damage, which the checksums catch at once.
_KINDS = ["copy", "copy", "extra", "extra", "link", "json", "json", "json"]
_KINDS += ["truncate", "flip", "append", "delete", "garbage"]


def _mutate(data: st.DataObject, root: Path, outside: Path, files: list[str]) -> None:
    """One random change to the run under ``root``."""
    kind = data.draw(st.sampled_from(_KINDS))
    target = root / data.draw(st.sampled_from(files))
    if kind == "json":
        target = root / data.draw(
            st.sampled_from([f for f in files if f.endswith(("json", "DONE"))])
        )
    if not target.exists() and kind not in ("extra", "copy"):
        return
    if kind == "truncate":
        raw = target.read_bytes()
        target.write_bytes(raw[: data.draw(st.integers(0, max(0, len(raw) - 1)))])
    elif kind == "flip":
        raw = bytearray(target.read_bytes())
        if raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
            target.write_bytes(bytes(raw))
    elif kind == "append":
        with open(target, "ab") as f:
            f.write(data.draw(st.binary(min_size=1, max_size=32)))
    elif kind == "delete":
        target.unlink()
    elif kind == "json":
        _edit_json(data, target)
    elif kind == "garbage":
        target.write_bytes(data.draw(st.binary(max_size=64)))
    elif kind == "link":  # the same bytes, but through a link out of the run directory
        outside.write_bytes(target.read_bytes())
        target.unlink()
        target.symlink_to(outside)
    elif kind == "extra":
        seed = root / "iris-ff" / data.draw(st.sampled_from(SEEDS))
        name = data.draw(
            st.sampled_from(
                ["walk/thetas-00000150.npz", "walk/thetas-00000000.npz", "wd/full-02.npz", "x.csv"]
            )
        )
        source = seed / data.draw(st.sampled_from(["walk/thetas-00000100.npz", "final.npz"]))
        if source.exists():
            (seed / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, seed / name)
    elif kind == "copy":
        source = root / "iris-ff" / data.draw(st.sampled_from(SEEDS))
        name = data.draw(
            st.sampled_from(["seed-000.bak", "seed-002", "seed-0", "seed-001/seed-000"])
        )
        if not (root / "iris-ff" / name).exists():
            shutil.copytree(source, root / "iris-ff" / name, symlinks=True)


def _snapshot(base: Path) -> dict[str, tuple]:
    """Every entry under ``base`` (links not followed) with its kind, size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st_ = p.lstat()
            out[str(p)] = (p.is_symlink(), st_.st_size, st_.st_mtime_ns)
    return out


def _assert_names_the_run(err: BaseException, root: Path) -> None:
    assert str(root) in str(err), f"{type(err).__name__} names no file of the run: {err}"


@settings(
    max_examples=60,
    deadline=20_000,  # ms per example: a copy of the run and two full reads
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_readers_load_valid_data_or_name_the_file_and_never_write(pristine, data):
    source, expected, steps0, files = pristine
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, outside = base / "runs", base / "outside" / "secret.bin"
        outside.parent.mkdir()
        outside.write_bytes(b"not part of any run")
        shutil.copytree(source, root)
        for _ in range(data.draw(st.integers(1, 3))):
            _mutate(data, root, outside, files)
        blessed = data.draw(st.sampled_from([None, *SEEDS]))
        if blessed is not None:
            try:  # bless whatever is there now, as a forged or stale marker would
                mark_done(root / "iris-ff" / blessed)
            except ValueError:
                blessed = None  # a file that does not load is never blessed
        before = _snapshot(base)

        try:
            rows = build_table(root)
        except (FileNotFoundError, ValueError) as err:  # RunDirError is a ValueError
            _assert_names_the_run(err, root)
        else:
            for row in rows:
                assert row.seeds and set(row.seeds) <= {0, 1}
                assert row.seeds == sorted(set(row.seeds))  # no seed counted twice
                assert all(isinstance(v, float) for v in (*row.walk, *row.phase1))
                if blessed is None:
                    assert row.label == "iris-ff"
                    assert _row_numbers(row) == expected[tuple(row.seeds)]

        try:
            for exp in load_runs(root):
                for s in exp.seeds:
                    steps, parts = s.trajectory()
                    final = s.final_theta()
                    thetas = [s.wd_theta(lam) for lam in s.lambdas]
                    assert final.ndim == 1 and all(t.shape == final.shape for t in thetas)
                    assert sum(len(rows_) for _, rows_ in parts) == len(steps)
                    assert len(s.metrics["n_predictor"]) >= 1
                    if blessed is None:
                        assert steps.tolist() == steps0[s.seed]
                        assert np.isfinite(final).all() and not math.isnan(float(final[0]))
        except (FileNotFoundError, ValueError) as err:
            _assert_names_the_run(err, root)

        assert _snapshot(base) == before  # the readers wrote nothing, anywhere
