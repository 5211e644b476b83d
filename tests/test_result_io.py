"""Results save to and load from npz/JSON without pickle, and walks resume exactly."""

from __future__ import annotations

import re

import numpy as np
import pytest

import manifoldwalk as mw
from manifoldwalk.problems import Circle, Sphere

TOP = np.array([0.0, 1.0])


def test_save_and_load_round_trip(tmp_path):
    r = mw.walk(
        Circle(),
        TOP.copy(),
        scheme="paper",
        stop=mw.Stop(max_steps=200),
        record=mw.Record(trajectory_every=10),
    )
    r.save(tmp_path / "walk.npz")
    back = mw.WalkResult.load(tmp_path / "walk.npz")
    assert back.stop_reason == r.stop_reason and back.message == r.message
    assert np.array_equal(back.theta, r.theta)
    assert np.array_equal(back.trajectory, r.trajectory)
    for key, column in r.history.items():
        assert np.array_equal(back.history[key], column)
    assert back.options == r.options
    with np.load(tmp_path / "walk.npz", allow_pickle=False) as data:  # no object arrays inside
        assert all(data[k].dtype != object for k in data.files)


def test_an_interrupted_save_leaves_the_earlier_file_whole(tmp_path, monkeypatch):
    first = mw.walk(Circle(), TOP.copy(), stop=mw.Stop(max_steps=20))
    second = mw.walk(Circle(), TOP.copy(), stop=mw.Stop(max_steps=40))
    path = tmp_path / "walk.npz"
    first.save(path)

    def savez_then_fail(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(KeyboardInterrupt):
        second.save(path)
    monkeypatch.undo()
    back = mw.WalkResult.load(path)
    assert np.array_equal(back.theta, first.theta) and back.n_predictor == first.n_predictor
    assert [p.name for p in tmp_path.iterdir()] == ["walk.npz"], "no temporary file left"
    second.save(path)  # a save that finishes replaces it
    assert mw.WalkResult.load(path).n_predictor == second.n_predictor != first.n_predictor


@pytest.mark.parametrize(("scheme", "split"), [("paper", 150), ("compensated", 20)])
def test_a_resumed_walk_takes_the_same_path_as_an_uninterrupted_one(tmp_path, scheme, split):
    options = {"scheme": scheme, "record": mw.Record(trajectory_every=5)}
    whole = mw.walk(Circle(), TOP.copy(), **options, stop=mw.Stop(max_steps=400))
    first = mw.walk(Circle(), TOP.copy(), **options, stop=mw.Stop(max_steps=split))
    assert first.stop_reason == "max_steps" and whole.n_predictor > split
    first.save(tmp_path / "part.npz")
    rest = mw.walk(
        Circle(),
        TOP.copy(),
        resume_from=mw.WalkResult.load(tmp_path / "part.npz"),
        **options,
        stop=mw.Stop(max_steps=400),
    )
    assert rest.n_predictor == whole.n_predictor and rest.n_corrector == whole.n_corrector
    assert np.array_equal(rest.theta, whole.theta)
    for key in ("n_predictor", "n_corrector", "loss", "reg", "eta_p"):
        assert np.array_equal(rest.history[key], whole.history[key]), key
    assert np.array_equal(rest.trajectory, whole.trajectory)


def _as_flat_file(src, dst) -> None:
    """Rewrite a saved result as the engine wrote it while its state was one flat record
    (``state/eta_p``, ``state/dir_p``, ...; no ``state/cos_p``, an extra ``state/reg_grad``)."""
    import json

    with np.load(src, allow_pickle=False) as data:
        files = {k: data[k] for k in data.files}
    meta = json.loads(str(files["meta"]))
    meta.pop("state_layout")
    flat = {
        "predictor/eta": "eta_p",
        "predictor/direction": "dir_p",
        "predictor/started": "has_p",
        "predictor/n_stall": "n_stall",
        "corrector/eta": "eta_c",
        "corrector/direction": "dir_c",
        "corrector/started": "has_c",
        "n_grad_evals": "n_evals",
    }
    old = {"meta": np.array(json.dumps(meta))}
    for key, value in files.items():
        if key.startswith("state/"):
            name = key[6:]
            if name != "predictor/cos":
                old["state/" + flat.get(name, name)] = value
        elif key != "meta":
            old[key] = value
    old["state/reg_grad"] = 2 * old["state/theta"]
    np.savez(dst, **old)


def test_files_saved_with_a_flat_state_without_cos_p_resume_the_same_path(tmp_path):
    """A file whose state is one flat record without ``cos_p`` and with ``reg_grad`` (as the
    engine once wrote them) loads with the cosine formed from its pred and dir_p, and resumes
    exactly as the new file does."""
    first = mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=60))
    first.save(tmp_path / "new.npz")
    _as_flat_file(tmp_path / "new.npz", tmp_path / "old.npz")
    new_state = mw.WalkResult.load(tmp_path / "new.npz").state
    old_state = mw.WalkResult.load(tmp_path / "old.npz").state
    assert float(new_state.predictor.cos) > 0.9  # a walk along the circle turns a little each step
    np.testing.assert_allclose(
        float(old_state.predictor.cos), float(new_state.predictor.cos), rtol=1e-12
    )
    a, b = (
        mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=120), resume_from=r)
        for r in (mw.WalkResult.load(tmp_path / n) for n in ("new.npz", "old.npz"))
    )
    assert np.array_equal(a.theta, b.theta) and a.n_corrector == b.n_corrector


def test_resuming_a_result_of_another_length_names_the_shapes():
    first = mw.walk(Circle(), TOP.copy(), stop=mw.Stop(max_steps=5))
    sphere = Sphere(np.ones(3))
    with pytest.raises(ValueError, match=r"θ has shape \(2,\) but θ0 has shape \(3,\)"):
        mw.walk(sphere, np.array([1.0, 0.0, 0.0]), resume_from=first)


def test_resuming_with_another_scheme_warns_and_the_same_does_not(recwarn):
    first = mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=5))
    mw.walk(Circle(), TOP.copy(), scheme="paper", resume_from=first, stop=mw.Stop(max_steps=10))
    assert not [w for w in recwarn if "resume_from" in str(w.message)]
    with pytest.warns(UserWarning, match="scheme='paper' -> 'default'.*not take the path"):
        mw.walk(Circle(), TOP.copy(), resume_from=first, stop=mw.Stop(max_steps=10))


def test_a_resumed_history_keeps_integer_counts():
    first = mw.walk(Circle(), TOP.copy(), stop=mw.Stop(max_steps=5))
    rest = mw.walk(Circle(), TOP.copy(), resume_from=first, stop=mw.Stop(max_steps=10))
    for key in ("step", "n_predictor", "n_corrector", "n_grad_evals"):
        assert first.history[key].dtype.kind == "i"
        assert rest.history[key].dtype.kind == "i", key


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"tolerance": mw.Tolerance(tau=1e-6)}, "tau=1e-06 (kept: 1e-10)"),
        ({"level": 0.5}, "level=0.5 (kept: L0 = 1)"),
    ],
)
def test_a_resumed_walk_keeps_the_saved_level_set_and_threshold(changed, named):
    """A walk resumed with another τ or L0 walks by the saved state's (so it continues the
    saved walk), says so, and records the values it walked by."""
    whole = mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=40))
    first = mw.walk(Circle(), TOP.copy(), scheme="paper", stop=mw.Stop(max_steps=20))
    with pytest.warns(UserWarning, match=re.escape(named)):
        rest = mw.walk(
            Circle(),
            TOP.copy(),
            scheme="paper",
            resume_from=first,
            **changed,
            stop=mw.Stop(max_steps=40),
        )
    assert np.array_equal(rest.theta, whole.theta)
    assert rest.options["tau"] == first.options["tau"]
    assert rest.options["level"] == first.options["level"]


def test_a_resumed_walk_with_a_relative_tolerance_records_it(recwarn):
    first = mw.walk(
        Circle(), TOP.copy(), tolerance=mw.Tolerance(rtol=1e-3), stop=mw.Stop(max_steps=5)
    )
    rest = mw.walk(
        Circle(),
        TOP.copy(),
        resume_from=first,
        tolerance=mw.Tolerance(tau=1e-3),
        stop=mw.Stop(max_steps=10),
    )
    assert rest.options["rtol"] == 1e-3 and rest.options["tau"] is None
    assert rest.tolerance == first.tolerance
    assert [w for w in recwarn if "tau=0.001 (kept: None)" in str(w.message)]
    mw.walk(
        Circle(),
        TOP.copy(),
        resume_from=first,
        tolerance=mw.Tolerance(rtol=1e-3),
        stop=mw.Stop(max_steps=10),
    )
    assert len([w for w in recwarn if "resume_from" in str(w.message)]) == 1
