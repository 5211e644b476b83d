"""The plotting API over WalkResults on analytic problems: the arrays drawn equal values computed
here independently, and the figures hold the panels they should."""

from __future__ import annotations

import dataclasses
import sys
import types

import numpy as np
import pytest
from sklearn.decomposition import PCA

import manifoldwalk as mw
from manifoldwalk.plots import loss_surface, pca_trajectories, walk_curves
from manifoldwalk.plots.curves import curves_data, series_of
from manifoldwalk.plots.figures import curves_figure
from manifoldwalk.plots.progress import progress_bar
from manifoldwalk.problems import Quadric, Sphere

EVERY = 4
A5 = np.diag([1.0, 2.0, 3.0, 5.0, 8.0])


def _walks(problem, n: int, steps: int = 40, metrics=None) -> list[mw.WalkResult]:
    rng = np.random.default_rng(3)
    record = mw.Record(every=EVERY, trajectory_every=EVERY, metrics=metrics or {})
    return [
        mw.walk(
            problem,
            problem.point_on_level(rng.normal(size=problem.dim)),
            record=record,
            stop=mw.Stop(max_steps=steps),
        )
        for _ in range(n)
    ]


@pytest.fixture(scope="module")
def ellipsoid():
    q = Quadric(A5)
    return q, _walks(q, 3, metrics={"x0": lambda t: float(t[0])})


def _kept(result) -> dict[int, np.ndarray]:
    """Predictor step → kept θ."""
    return {i * EVERY: t for i, t in enumerate(np.asarray(result.trajectory))}


def test_walk_curves_hold_each_walks_deviation_r_and_angle(ellipsoid):
    q, results = ellipsoid
    data = walk_curves(results).data
    for i, r in enumerate(results):
        steps = data[f"x/{i}"]
        kept = _kept(r)
        rows = [j for j, s in enumerate(steps) if int(s) in kept]
        assert len(rows) >= 5
        for j in rows:
            theta = kept[int(steps[j])]
            assert data[f"deviation/{i}"][j] == pytest.approx(
                abs(q.loss(theta) - r.level), abs=1e-15
            )
            assert data[f"reg/{i}"][j] == pytest.approx(q.reg(theta), rel=1e-12)
            g, c = q.grad(theta), q.reg_grad(theta)
            cos = g @ c / np.linalg.norm(g) / np.linalg.norm(c)
            angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
            assert data[f"angle/{i}"][j] == pytest.approx(angle, abs=1e-5)
            assert data[f"x0/{i}"][j] == theta[0]  # the metric column, drawn by default
    np.testing.assert_array_equal(data["tolerance"], [r.tolerance for r in results])


def test_walk_curves_bands_are_mean_and_sample_std_over_walks_running(ellipsoid):
    _, results = ellipsoid
    data = walk_curves(results, metrics=()).data
    assert "x0_mean" not in data
    for k, x in enumerate(data["x"]):
        vals = [
            data[f"reg/{i}"][list(data[f"x/{i}"]).index(x)] for i in range(3) if x in data[f"x/{i}"]
        ]
        assert data["running"][k] == len(vals)
        assert data["reg_mean"][k] == pytest.approx(np.mean(vals), rel=1e-12)
        if len(vals) > 1:
            assert data["reg_std"][k] == pytest.approx(np.std(vals, ddof=1), rel=1e-9, abs=1e-15)


def test_walk_curves_refuse_a_result_without_rows_and_name_missing_columns(ellipsoid):
    q, results = ellipsoid
    bare = mw.walk(q, np.asarray(results[0].theta), record=mw.Record(every=None))
    bare.history = {}
    with pytest.raises(ValueError, match=r"Record\(every=k\)"):
        walk_curves(bare)
    with pytest.raises(ValueError, match="no history column 'test_acc'"):
        walk_curves(results, metrics=["test_acc"])


def test_the_walk_is_drawn_above_the_reference_line_and_legends_are_off_the_axes(ellipsoid):
    _, results = ellipsoid
    curves = curves_data([series_of(r) for r in results], ["reg", "deviation"])
    fig = curves_figure(curves, title="t", reference={"reg": (-1.0, "weight decay")})
    ax = fig.axes[0]
    walk = next(line for line in ax.lines if line.get_label().startswith("mean of"))
    wd = next(line for line in ax.lines if line.get_label() == "weight decay")
    assert walk.get_zorder() > wd.get_zorder()
    assert all(a.get_legend() is None for a in fig.axes) and len(fig.legends) == 1
    assert fig.axes[1].get_yscale() == "log"  # |L − L0|


def test_a_column_equal_to_another_is_one_panel(ellipsoid):
    _, results = ellipsoid
    walks = [series_of(r) for r in results]
    for w in walks:
        w.history["test_mse"] = w.history["reg"].copy()  # a regression's test loss and MSE
    curves = curves_data(walks, ["reg", "deviation", "test_mse"], labels={"reg": "R"})
    fig = curves_figure(curves, title="t")
    assert len(fig.axes) == 2
    assert fig.axes[0].get_ylabel() == "R (= test_mse)"


def test_pca_reproduces_the_trajectories_in_their_span(ellipsoid):
    _, results = ellipsoid
    data = pca_trajectories(results).data
    x = np.vstack([np.asarray(r.trajectory) for r in results])
    np.testing.assert_allclose(data["mean"] + data["scores"] @ data["components"], x, atol=1e-10)
    ref = PCA(n_components=data["components"].shape[0]).fit(x)
    np.testing.assert_allclose(
        data["explained_variance_ratio"], ref.explained_variance_ratio_, atol=1e-12
    )
    sizes = [len(r.trajectory) for r in results]
    np.testing.assert_array_equal(data["walk_index"], np.repeat(np.arange(3), sizes))
    np.testing.assert_array_equal(
        data["steps"], np.concatenate([np.arange(m) * EVERY for m in sizes])
    )
    finals = np.stack([r.theta for r in results])
    np.testing.assert_allclose(
        data["endpoints"], (finals - data["mean"]) @ data["components"].T, atol=1e-12
    )


def test_components_without_variance_get_no_panel():
    # a walk on a sphere stays in the plane of θ0 and c: 2 components in 6 dimensions
    s = Sphere([1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    theta0 = np.array([0.0, 0.6, 0.8, 0.0, 0.0, 0.0])
    r = mw.walk(s, theta0, record=mw.Record(every=EVERY, trajectory_every=EVERY))
    # and a third direction of rounding-sized spread: a component, but not one to draw
    traj = np.asarray(r.trajectory).copy()
    traj[:, 3] += 3e-5 * np.random.default_rng(0).standard_normal(len(traj))
    out = pca_trajectories(dataclasses.replace(r, trajectory=traj))
    ratio = out.data["explained_variance_ratio"]
    assert ratio.size >= 3 and 0 < ratio[2] < 1e-6
    assert not any(a.name == "3d" for a in out.figure.axes)
    assert "PC3–PC6 not drawn" in out.figure.get_suptitle()
    q = Quadric(A5)
    full = pca_trajectories(_walks(q, 3))
    assert sum(a.name == "3d" for a in full.figure.axes) == 2


def test_pca_needs_a_trajectory(ellipsoid):
    q, results = ellipsoid
    r = mw.walk(q, np.asarray(results[0].theta), stop=mw.Stop(max_steps=3))
    with pytest.raises(ValueError, match=r"Record\(trajectory_every=k\)"):
        pca_trajectories([r])


def _check_grid(q, data, points=((0, 0), (2, 7), (10, 3), (5, 5))):
    a, b, d, c = data["a"], data["b"], data["directions"], data["center"]
    for i, j in points:
        theta = c + a[i] * d[0] + b[j] * d[1]
        assert data["loss"][j, i] == pytest.approx(q.loss(theta), rel=1e-12)


def test_random_plane_losses_directions_and_projected_walks(ellipsoid):
    q, results = ellipsoid
    center = np.asarray(results[1].theta)
    data = loss_surface(
        q, center, results=results, plane="random", resolution=11, show_progress=False
    ).data
    assert data["loss"].shape == (11, 11) and data["a"][5] == 0 == data["b"][5]
    assert data["loss"][5, 5] == pytest.approx(q.loss(center), rel=1e-14)
    _check_grid(q, data)
    d = data["directions"]
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), np.linalg.norm(center), rtol=1e-12)
    assert abs(d[0] @ d[1]) < 1e-12 * (d[0] @ d[0])
    traj = np.asarray(results[0].trajectory)
    np.testing.assert_allclose(
        data["walk/0"][: len(traj)], (traj - center) @ d.T / (d[0] @ d[0]), atol=1e-12
    )
    again = loss_surface(q, center, plane="random", resolution=3, show_progress=False).data
    np.testing.assert_array_equal(again["directions"], d)  # same seed, same plane


def test_pca_plane_is_the_top_two_components_through_the_centre(ellipsoid):
    q, results = ellipsoid
    center = np.asarray(results[0].theta)
    out = loss_surface(q, center, results=results, resolution=11, show_progress=False)
    data = out.data
    x = np.vstack([np.asarray(r.trajectory) for r in results])
    ref = PCA(n_components=2).fit(x)
    for k in range(2):
        assert abs(data["directions"][k] @ ref.components_[k]) == pytest.approx(1.0, abs=1e-10)
    _check_grid(q, data)
    traj = np.asarray(results[2].trajectory)
    np.testing.assert_allclose(
        data["walk/2"][: len(traj)], (traj - center) @ data["directions"].T, atol=1e-12
    )
    # the square grid covers every projected point and the centre, with equal axis scales
    pts = np.vstack([data[f"walk/{i}"] for i in range(3)] + [np.zeros((1, 2))])
    assert data["a"][0] < pts[:, 0].min() and data["a"][-1] > pts[:, 0].max()
    assert data["b"][0] < pts[:, 1].min() and data["b"][-1] > pts[:, 1].max()
    assert np.ptp(data["a"]) == pytest.approx(np.ptp(data["b"]))
    assert out.figure.axes[0].get_aspect() == 1.0


def test_filter_plane_matches_each_filters_norm(ellipsoid):
    shapes = [(3, 4), (3,), (2, 3), (2,)]  # two dense layers: weights and biases
    q = Quadric(np.diag(np.linspace(1, 3, 23)))
    center = q.point_on_level(np.random.default_rng(1).normal(size=23))
    for axis in (0, -1):
        data = loss_surface(
            q,
            center,
            plane="filter",
            param_shapes=shapes,
            filter_axis=axis,
            resolution=11,
            span=0.5,
            show_progress=False,
        ).data
        _check_grid(q, data)
        for d in data["directions"]:
            start = 0
            for shape in shapes:
                size = int(np.prod(shape))
                dp, wp = d[start : start + size].reshape(shape), center[start : start + size]
                if len(shape) == 1:
                    assert not dp.any()  # biases: direction 0
                else:
                    wp = wp.reshape(shape)
                    np.testing.assert_allclose(
                        np.linalg.norm(np.moveaxis(dp, axis, 0).reshape(shape[axis], -1), axis=1),
                        np.linalg.norm(np.moveaxis(wp, axis, 0).reshape(shape[axis], -1), axis=1),
                        rtol=1e-12,
                    )
                start += size


def test_surface_errors_name_the_problem(ellipsoid):
    q, results = ellipsoid
    center = np.asarray(results[0].theta)
    with pytest.raises(ValueError, match="param_shapes"):
        loss_surface(q, center, plane="filter")
    with pytest.raises(ValueError, match="unknown plane 'hessian'"):
        loss_surface(q, center, plane="hessian")
    with pytest.raises(ValueError, match="pass results"):
        loss_surface(q, center, plane="pca")
    with pytest.raises(ValueError, match="center must be a flat θ of length 5"):
        loss_surface(q, center[:3], results=results)
    with pytest.raises(ValueError, match="walk 0 has θ of length 5, the centre 3"):
        loss_surface(object(), center[:3], results=results, plane="random")
    with pytest.raises(ValueError, match="rank ≥ 2"):
        loss_surface(q, center, plane="filter", param_shapes=[(5,)])


def test_a_problem_with_batched_losses_is_evaluated_through_them(ellipsoid):
    q, results = ellipsoid

    class Batched:
        calls = 0

        def loss(self, theta):
            raise AssertionError("the batched path must be used")

        def plane_losses(self, origin, basis, coords, *, chunk, progress):
            Batched.calls += 1
            progress(len(coords), len(coords))
            return np.array([q.loss(origin + c @ basis) for c in coords])

    center = np.asarray(results[0].theta)
    data = loss_surface(Batched(), center, plane="random", resolution=5, show_progress=False).data
    assert Batched.calls == 1
    _check_grid(q, data, points=((0, 4), (2, 2)))


def test_progress_is_a_tqdm_widget_inside_jupyter_and_text_elsewhere(monkeypatch):
    from manifoldwalk.experiments.progress import ProgressBar

    assert isinstance(progress_bar(10, "x", enabled=True), ProgressBar)
    made = []

    class FakeTqdm:
        def __init__(self, total, desc, unit):
            self.n, self.steps = 0, []
            made.append(self)

        def update(self, k):
            self.n += k
            self.steps.append(k)

        def set_postfix_str(self, s, refresh):
            pass

        def close(self):
            self.closed = True

    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    monkeypatch.setitem(sys.modules, "tqdm", types.ModuleType("tqdm"))
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    bar = progress_bar(10, "x")
    bar.update(4)
    bar.update(10)
    bar.close()
    assert made[0].steps == [4, 6] and made[0].closed
    assert isinstance(progress_bar(10, "x", enabled=False), ProgressBar)


def test_jax_and_keras_kernels_are_normalised_along_their_last_axis():
    q = Quadric(np.diag(np.linspace(1, 2, 8)))
    # a Keras-like problem: a (3, 2) kernel (in, out) and a bias, the filters are its columns
    keras_like = type(
        "TFProblem",
        (),
        {
            "__module__": "manifoldwalk_tf.problem",
            "param_shapes": ((3, 2), (2,)),
            "n_params": 8,
            "loss": staticmethod(q.loss),
        },
    )()
    center = np.arange(1.0, 9.0)
    data = loss_surface(keras_like, center, plane="filter", resolution=3, show_progress=False).data
    kernel = center[:6].reshape(3, 2)
    for d in data["directions"]:
        np.testing.assert_allclose(
            np.linalg.norm(d[:6].reshape(3, 2), axis=0), np.linalg.norm(kernel, axis=0), rtol=1e-12
        )
        assert not d[6:].any()
    _check_grid(q, data, points=((0, 2), (1, 1)))
