"""The weight-decay sweep and phase 1 trained in batches (``--sweep batched``, ``--batch-seeds``).

Batched and sequential training give the same λ choices and metrics up to rounding (iris-ff
and mpg-ff, float64, through each backend's ``train_batched``); a killed batch loses only
itself; a directory of either path (or of no recorded path) resumes with the other; with
``--batch-seeds`` phase 1 and the sweep of all seeds train as a few batched calls; a backend
without ``train_batched`` trains member by member with the same results as the sequential path.
The plumbing is checked with a fake backend whose ``train_batched`` trains each member through
the real ``train`` (so its runs equal the sequential ones bit for bit) and records its calls.
"""

from __future__ import annotations

import json
import math
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifoldwalk.cli import build_parser
from manifoldwalk.experiments import RunConfig, run_experiment, run_seed
from manifoldwalk.experiments import _weight_decay as wd_mod
from manifoldwalk.experiments import runner as runner_mod
from manifoldwalk.experiments._batched_train import (
    BATCH_SIZE,
    members_per_batch,
    plan_batches,
    train_members,
)
from manifoldwalk.experiments._seed import Stage, load_data
from manifoldwalk.experiments._weight_decay import SweepSeed, run_sweeps
from manifoldwalk.experiments.backend import OPTIONAL, load_backend
from manifoldwalk.experiments.rundir import RunFiles, is_finished, seed_dir

#: A run of seconds: 2 epochs of phase 1 and of each weight-decay run, 3 λ, a short walk.
TINY = dict(
    phase1_epochs=2, wd_epochs=2, wd_lambdas=(0.0, 1e-3, 1.0), record_every=50, max_steps=60
)

#: Measured between the batched and the sequential sweep (float64, 5 epochs, λ 0, 1e-4, 1e-2,
#: 1, 100, seed 0, this CPU): at most 2.7e-16 relative in any loss or metric (torch and JAX
#: alike; 5.7e-14 absolute on mpg-ff's MSE of about 200); asserted with margin for other BLAS
#: builds.
RTOL, ATOL = 1e-12, 1e-14

QUIET = Stage(False, False)


# --- the plan: batches of one training-set length, capped by memory ----------------------------


@given(
    lengths=st.lists(st.sampled_from([96, 120, 314]), min_size=1, max_size=60),
    cap=st.integers(1, 25),
)
def test_batches_hold_one_length_at_most_cap_members_of_nearly_equal_size(lengths, cap):
    batches = plan_batches(lengths, cap)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # each once
    for length in set(lengths):
        mine = [b for b in batches if lengths[b[0]] == length]
        members = [i for i, n in enumerate(lengths) if n == length]
        assert [i for b in mine for i in b] == members  # in order, one length per batch
        assert len(mine) == math.ceil(len(members) / cap)  # the fewest batches
        sizes = [len(b) for b in mine]
        assert max(sizes) <= cap and max(sizes) - min(sizes) <= 1


@given(
    n_params=st.integers(1, 10**7),
    input_size=st.integers(1, 4000),
    itemsize=st.sampled_from([4, 8]),
    budget=st.integers(1, 2**36),
)
def test_members_per_batch_is_the_most_that_fit_the_budget(n_params, input_size, itemsize, budget):
    cap = members_per_batch(n_params, input_size, itemsize, budget)
    member = itemsize * (5 * n_params + 3 * BATCH_SIZE * 32 * input_size)
    assert cap >= 1
    assert cap * member <= budget or cap == 1
    assert (cap + 1) * member > budget


def test_a_big_net_is_split_and_bad_input_is_refused():
    # MNIST-CNV in float32, 280 runs (10 seeds × 14 λ × 2 splits) do not all fit in 2 GiB
    cap = members_per_batch(54_930, 784, 4, 2 * 2**30)
    assert 1 < cap < 280
    assert len(plan_batches([1000] * 280, cap)) == 2
    with pytest.raises(ValueError, match="n_params must be at least 1"):
        members_per_batch(0, 784, 4)
    with pytest.raises(ValueError, match="members per batch must be at least 1"):
        plan_batches([1], 0)
    with pytest.raises(ValueError, match="no members to train"):
        train_members(types.ModuleType("empty"), [], task="classification", epochs=1)


def test_train_batched_is_an_optional_backend_member():
    assert "train_batched" in OPTIONAL


def test_the_sweep_option_defaults_to_batched_and_lists_its_choices():
    args = build_parser().parse_args(["reproduce", "iris-ff"])
    assert args.sweep == "batched"
    args = build_parser().parse_args(["reproduce", "iris-ff", "--sweep", "sequential"])
    assert args.sweep == "sequential"
    with pytest.raises(ValueError, match="unknown sweep 'fast'; choose one of: batched"):
        run_experiment(RunConfig("iris-ff"), sweep="fast")


# --- a fake backend: the real one, with a train_batched that records its calls ----------------


def _fake(
    real: types.ModuleType,
    calls: list[int],
    *,
    batched: bool = True,
    fail_on: int = 0,
    real_batched: bool = False,
):
    """``real`` as a new module; with ``batched`` a ``train_batched`` that appends each call's
    member count to ``calls`` and trains each member through ``real.train`` (``real_batched``:
    all through ``real.train_batched``), raising KeyboardInterrupt on call number ``fail_on``
    (a kill in the middle of a batch)."""
    fake = types.ModuleType("fake_paper")
    for name in dir(real):
        if not name.startswith("__") and name != "train_batched":
            setattr(fake, name, getattr(real, name))
    trained: list[int] = []

    def train(*args, **kwargs):
        trained.append(1)
        return real.train(*args, **kwargs)

    fake.train = train
    fake.trained = trained  # every member trained through train
    if batched:

        def train_batched(models, xs, ys, *, task, epochs, weight_decays, seeds, **kw):
            calls.append(len(models))
            assert len({len(x) for x in xs}) == 1, "members of different lengths batched"
            if len(calls) == fail_on:
                raise KeyboardInterrupt("simulated kill in a batch")
            if real_batched:
                return real.train_batched(
                    models,
                    xs,
                    ys,
                    task=task,
                    epochs=epochs,
                    weight_decays=weight_decays,
                    seeds=seeds,
                    **kw,
                )
            out = [
                real.train(m, x, y, task=task, epochs=epochs, weight_decay=w, seed=s, **kw)
                for m, x, y, w, s in zip(models, xs, ys, weight_decays, seeds, strict=True)
            ]
            return [m for m, _ in out], [n for _, n in out]

        fake.train_batched = train_batched
    return fake


@pytest.fixture
def torch_backend(torch_one_thread):
    pytest.importorskip("torch")
    return load_backend("torch")


@pytest.fixture
def torch_one_thread():
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _use(monkeypatch, backend) -> None:
    monkeypatch.setattr(runner_mod, "load_backend", lambda name: backend)


def _records(d: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((d / "wd").glob("*.json"))}


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("wall_time", "batched")}


def test_the_sweep_trains_each_split_as_one_batch_and_saves_every_run(
    tmp_path, monkeypatch, torch_backend
):
    calls: list[int] = []
    _use(monkeypatch, _fake(torch_backend, calls))
    config = RunConfig("iris-ff", out=str(tmp_path / "b"), **TINY)
    run_seed(config, 0, show_progress=False)
    assert calls == [3, 3]  # the full runs (n = 120), then the val runs (n = 96)
    d = seed_dir(config.out, "iris-ff", 0)
    batched = _records(d)
    assert len(batched) == 6 and {r["batched"] for r in batched.values()} == {3}
    # the same runs as the sequential path (the fake trains each member exactly as train)
    seq = RunConfig("iris-ff", out=str(tmp_path / "s"), **TINY)
    run_seed(seq, 0, show_progress=False, sweep="sequential")
    assert calls == [3, 3]  # sequential: never train_batched
    sequential = _records(seed_dir(seq.out, "iris-ff", 0))
    assert {r["batched"] for r in sequential.values()} == {1}
    assert {k: _strip(r) for k, r in batched.items()} == {
        k: _strip(r) for k, r in sequential.items()
    }
    sessions = json.loads((d / "provenance.json").read_text())["sessions"]
    assert [s["sweep"] for s in sessions] == ["batched"]


def test_a_sweep_over_the_memory_budget_is_split(monkeypatch, torch_backend, tmp_path):
    calls: list[int] = []
    fake = _fake(torch_backend, calls)
    config = RunConfig(
        "iris-ff", out=str(tmp_path), **dict(TINY, wd_lambdas=(0.0, 1e-3, 1e-2, 1.0, 10.0))
    )
    parts = []
    for seed in (0, 1):
        files = RunFiles(tmp_path / f"s{seed}")
        files.directory.mkdir()
        parts.append(SweepSeed(seed, load_data(config, config.spec, seed), files))
    n_params = 4 * 100 + 100 + 2 * (100 * 100 + 100) + 100 * 3 + 3
    member = 8 * (5 * n_params + 3 * BATCH_SIZE * 32 * 4)
    out = run_sweeps(config, fake, config.spec, parts, QUIET, budget=4 * member)
    # 2 seeds × 5 λ = 10 runs of each length, at most 4 a batch: 3 batches of 4, 3, 3 each
    assert calls == [4, 3, 3, 4, 3, 3]
    assert [len(r) for r in out] == [10, 10]
    assert [r["batched"] for r in out[0]] == [4] * 8 + [3, 3]


def test_a_killed_batch_loses_only_itself_and_the_resume_trains_only_it(
    tmp_path, monkeypatch, torch_backend
):
    """Through the real PyTorch ``train_batched``: the resumed run equals the uninterrupted
    one up to rounding."""
    calls: list[int] = []
    config = RunConfig("iris-ff", out=str(tmp_path / "k"), **TINY)
    d = seed_dir(config.out, "iris-ff", 0)
    _use(monkeypatch, _fake(torch_backend, calls, fail_on=2, real_batched=True))  # val batch
    with pytest.raises(KeyboardInterrupt):
        run_seed(config, 0, show_progress=False)
    assert sorted(_records(d)) == ["full-00.json", "full-01.json", "full-02.json"]
    kept = {n: (d / "wd" / n).read_bytes() for n in _records(d)}
    calls.clear()
    _use(monkeypatch, _fake(torch_backend, calls, real_batched=True))
    run_seed(config, 0, show_progress=False)
    assert calls == [3] and is_finished(d)  # the val batch only
    assert all((d / "wd" / n).read_bytes() == b for n, b in kept.items())
    whole = RunConfig("iris-ff", out=str(tmp_path / "w"), **TINY)
    run_seed(whole, 0, show_progress=False)
    a, b = _records(seed_dir(whole.out, "iris-ff", 0)), _records(d)
    assert sorted(a) == sorted(b)
    for name, ra in a.items():
        rb = b[name]
        assert ra["batched"] == rb["batched"] == 3
        for k in ("train_loss", "test_loss", "test_metric"):
            np.testing.assert_allclose(ra[k], rb[k], rtol=RTOL, atol=ATOL, err_msg=name)


def test_a_sequential_directory_and_one_of_no_recorded_path_resume_batched(
    tmp_path, monkeypatch, torch_backend
):
    calls: list[int] = []
    config = RunConfig("iris-ff", out=str(tmp_path), **TINY)
    d = seed_dir(config.out, "iris-ff", 0)
    real_members = wd_mod.train_members
    count = {"n": 0}

    def killed_on_third(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt("simulated kill in the sweep")
        return real_members(*args, **kwargs)

    _use(monkeypatch, _fake(torch_backend, calls))
    with monkeypatch.context() as m:
        m.setattr(wd_mod, "train_members", killed_on_third)
        with pytest.raises(KeyboardInterrupt):
            run_seed(config, 0, show_progress=False, sweep="sequential")
    assert sorted(_records(d)) == ["full-00.json", "val-00.json"] and calls == []
    # written before runs recorded how they trained: no "batched", no "sweep" in provenance
    files = RunFiles(d)
    for name, record in _records(d).items():
        files.write_json(f"wd/{name}", {k: v for k, v in record.items() if k != "batched"})
    prov = json.loads((d / "provenance.json").read_text())
    for s in prov["sessions"]:
        del s["sweep"]
    files.write_json("provenance.json", prov)
    run_seed(config, 0, show_progress=False)  # batched: not refused, the saved runs reused
    assert calls == [2, 2] and is_finished(d)
    records = _records(d)
    assert "batched" not in records["full-00.json"] and records["full-01.json"]["batched"] == 2
    sessions = json.loads((d / "provenance.json").read_text())["sessions"]
    assert [s.get("sweep") for s in sessions] == [None, "batched"]


def test_batch_seeds_trains_phase1_and_the_sweeps_of_all_seeds_together(
    tmp_path, monkeypatch, torch_backend
):
    """Through the real PyTorch ``train_batched``, spied on: the seeds end as seeds run alone
    (sequential), up to rounding."""
    calls: list[int] = []
    fake = _fake(torch_backend, calls, real_batched=True)
    _use(monkeypatch, fake)
    options = dict(TINY, seeds=(0, 1, 2))
    alone = RunConfig("iris-ff", out=str(tmp_path / "alone"), **options)
    run_experiment(alone, show_progress=False, sweep="sequential")
    assert calls == [] and len(fake.trained) == 3 * (1 + 6)  # phase 1 + 6 runs a seed
    # seed 1's phase 1 is saved already (with the record that vouches for it): not retrained
    together = RunConfig("iris-ff", out=str(tmp_path / "together"), **options)
    a1, b1 = seed_dir(alone.out, "iris-ff", 1), seed_dir(together.out, "iris-ff", 1)
    b1.mkdir(parents=True)
    for name in ("phase1.npz", "config.json", "index.json"):
        shutil.copy(a1 / name, b1 / name)
    calls.clear()
    summaries = run_experiment(together, show_progress=False, batch_seeds=True)
    # phase 1 of seeds 0 and 2 in one call; then 9 full and 9 val runs, one call each
    assert calls == [2, 9, 9]
    assert [s["seed"] for s in summaries] == [0, 1, 2]
    for seed in (0, 1, 2):
        a = json.loads((seed_dir(alone.out, "iris-ff", seed) / "summary.json").read_text())
        s = json.loads((seed_dir(together.out, "iris-ff", seed) / "summary.json").read_text())
        for k in ("train_loss", "test_loss", "test_metric", "example_grads"):
            np.testing.assert_allclose(s["phase1"][k], a["phase1"][k], rtol=RTOL, atol=ATOL)
        assert [(r["lam"], r["split"]) for r in s["wd"]] == [
            (r["lam"], r["split"]) for r in a["wd"]
        ]
        for rs, ra in zip(s["wd"], a["wd"], strict=True):
            for k in ("train_loss", "test_loss", "test_metric", "val_loss", "val_metric"):
                if ra[k] is not None:  # null: a full run's validation numbers
                    np.testing.assert_allclose(rs[k], ra[k], rtol=RTOL, atol=ATOL, err_msg=k)
        # the walks ran batched (walk_batch) from phase-1 θ equal up to rounding
        for k in ("train_loss", "reg", "test_metric", "test_loss"):
            np.testing.assert_allclose(s["walk"][k], a["walk"][k], rtol=1e-7, atol=1e-10)
    p1 = np.load(seed_dir(together.out, "iris-ff", 0) / "phase1.npz")
    assert float(p1["batched"]) == 2.0


def test_a_backend_without_train_batched_trains_member_by_member_as_the_sequential_path(
    tmp_path, monkeypatch, torch_backend
):
    fake = _fake(torch_backend, [], batched=False)
    _use(monkeypatch, fake)
    batched = RunConfig("iris-ff", out=str(tmp_path / "b"), **dict(TINY, seeds=(0, 1)))
    run_experiment(batched, show_progress=False, batch_seeds=True)
    assert len(fake.trained) == 2 * (1 + 6)  # every phase 1 and run through train
    seq = RunConfig("iris-ff", out=str(tmp_path / "s"), **dict(TINY, seeds=(0, 1)))
    run_experiment(seq, show_progress=False, sweep="sequential")
    for seed in (0, 1):
        a = _records(seed_dir(batched.out, "iris-ff", seed))
        b = _records(seed_dir(seq.out, "iris-ff", seed))
        assert {r["batched"] for r in a.values()} == {1}
        assert {k: _strip(r) for k, r in a.items()} == {k: _strip(r) for k, r in b.items()}


# --- the real backends: batched and sequential sweeps agree up to rounding --------------------


def _choice(records: list[dict], split: str, key: str, higher: bool) -> float:
    runs = [r for r in records if r["split"] == split]
    scores = [r[key] if higher else -r[key] for r in runs]
    return runs[int(np.argmax(scores))]["lam"]


@pytest.mark.parametrize("backend_name", ["torch", "jax"])
@pytest.mark.parametrize("experiment", ["iris-ff", "mpg-ff"])
def test_batched_and_sequential_sweeps_choose_the_same_lambda_and_agree_to_rounding(
    tmp_path, backend_name, experiment, torch_one_thread
):
    pytest.importorskip(backend_name)
    backend = load_backend(backend_name)
    assert callable(getattr(backend, "train_batched", None)), f"{backend_name}: no train_batched"
    config = RunConfig(
        experiment,
        out=str(tmp_path),
        backend=backend_name,
        wd_epochs=5,
        wd_lambdas=(0.0, 1e-2, 1.0),
    )
    spec = config.spec
    ds = load_data(config, spec, 0)
    got = {}
    for way in ("batched", "sequential"):
        files = RunFiles(tmp_path / way)
        files.directory.mkdir()
        (got[way],) = run_sweeps(
            config, backend, spec, [SweepSeed(0, ds, files)], QUIET, batched=way == "batched"
        )
    b, s = got["batched"], got["sequential"]
    assert [r["batched"] for r in b] == [3] * 6 and [r["batched"] for r in s] == [1] * 6
    higher = spec.metric == "accuracy"
    assert _choice(b, "full", "test_metric", higher) == _choice(s, "full", "test_metric", higher)
    assert _choice(b, "val", "val_metric", higher) == _choice(s, "val", "val_metric", higher)
    for x, y in zip(b, s, strict=True):
        assert (x["lam"], x["split"], x["example_grads"]) == (
            y["lam"],
            y["split"],
            y["example_grads"],
        )
        for k in ("train_loss", "test_loss", "test_metric", "val_loss", "val_metric"):
            np.testing.assert_allclose(x[k], y[k], rtol=RTOL, atol=ATOL, err_msg=f"{x['lam']} {k}")
    theta_b = np.load(tmp_path / "batched" / "wd" / "val-02.npz")["theta"]
    theta_s = np.load(tmp_path / "sequential" / "wd" / "val-02.npz")["theta"]
    np.testing.assert_allclose(theta_b, theta_s, rtol=1e-6, atol=1e-7)  # stored as float32


def test_a_sweep_does_not_warn_that_a_net_ruined_by_a_large_lambda_looks_untrained(
    tmp_path, torch_backend
):
    import warnings

    # λ = 1e6 for 2 epochs leaves the net at chance: scoring it must not tell the user to
    # train the model first (the warning is for nets wrapped to be walked)
    config = RunConfig("iris-ff", out=str(tmp_path), **{**TINY, "wd_lambdas": (1e6,)})
    ds = load_data(config, config.spec, 0)
    d = seed_dir(config.out, "iris-ff", 0)
    d.mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wd_mod.run_weight_decay(config, torch_backend, config.spec, ds, 0, d, QUIET)
    untrained = [w for w in caught if "looks untrained" in str(w.message)]
    assert untrained == []
    # the net is one the adapter's check calls untrained (L0 near the trivial ln 3 = 1.0986)
    assert json.loads((d / "wd" / "full-00.json").read_text())["train_loss"] > 1.0
