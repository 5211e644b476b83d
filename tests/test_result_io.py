"""Results save to and load from npz/JSON without pickle, and walks resume exactly."""

from __future__ import annotations

import numpy as np
import pytest

import manifoldwalk as mw
from manifoldwalk.problems import Circle

TOP = np.array([0.0, 1.0])


def test_save_and_load_round_trip(tmp_path):
    r = mw.walk(Circle(), TOP.copy(), scheme="paper", max_steps=200, trajectory_every=10)
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


@pytest.mark.parametrize(("scheme", "split"), [("paper", 150), ("compensated", 20)])
def test_a_resumed_walk_takes_the_same_path_as_an_uninterrupted_one(tmp_path, scheme, split):
    options = {"scheme": scheme, "trajectory_every": 5}
    whole = mw.walk(Circle(), TOP.copy(), max_steps=400, **options)
    first = mw.walk(Circle(), TOP.copy(), max_steps=split, **options)
    assert first.stop_reason == "max_steps" and whole.n_predictor > split
    first.save(tmp_path / "part.npz")
    rest = mw.walk(
        Circle(),
        TOP.copy(),
        max_steps=400,
        resume_from=mw.WalkResult.load(tmp_path / "part.npz"),
        **options,
    )
    assert rest.n_predictor == whole.n_predictor and rest.n_corrector == whole.n_corrector
    assert np.array_equal(rest.theta, whole.theta)
    for key in ("n_predictor", "n_corrector", "loss", "reg", "eta_p"):
        assert np.array_equal(rest.history[key], whole.history[key]), key
    assert np.array_equal(rest.trajectory, whole.trajectory)
