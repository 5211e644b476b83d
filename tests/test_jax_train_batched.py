"""``manifoldwalk_jax.paper.train_batched``: M trainings in one batched computation end where M
``train`` calls would, up to rounding.

Tolerances on the largest parameter difference from ``train``: float64 1e-13, float32 2e-5.
Measured: 0 on the tiny nets here (the batched products round alike) and at most 8e-17 (float64)
and 1e-7 (float32) on iris-ff after 20 epochs; the stated values leave room for other BLAS
kernels. Swapping two members' λ moves them by about 1e-2 (checked), so the comparison can fail.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from manifoldwalk_jax.paper import build_net, train, train_batched

TOL = {"float64": 1e-13, "float32": 2e-5}
N = 37  # one minibatch of 32 and a last one of 5
EPOCHS = 3
HIDDEN = (6, 5)


def _data(seed: int, task: str, n: int = N, features: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A small random training set: 3 classes, or one regression target per row."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    if task == "classification":
        return x, rng.integers(0, 3, size=n)
    return x, rng.normal(size=(n, 1))


def _net(seed: int, dtype: str, task: str, hidden: tuple[int, ...] = HIDDEN):
    """A tiny feed-forward net for the ``_data`` sets."""
    return build_net(
        "ff", (3,), 3 if task == "classification" else 1, hidden=hidden, seed=seed, dtype=dtype
    )


def _max_diff(a, b) -> float:
    """The largest absolute difference between two parameter pytrees of one structure."""
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    return max(
        float(np.max(np.abs(np.asarray(p) - np.asarray(q)))) for p, q in zip(la, lb, strict=True)
    )


def _sequential(models, xs, ys, lams, seeds, *, task, epochs, reg="l2", progress=None):
    """The reference: one ``train`` call per member."""
    return [
        train(
            model,
            x,
            y,
            task=task,
            epochs=epochs,
            weight_decay=lam,
            reg=reg,
            seed=seed,
            progress=None if progress is None else progress[m],
        )
        for m, (model, x, y, lam, seed) in enumerate(zip(models, xs, ys, lams, seeds, strict=True))
    ]


def _diffs(batched, reference) -> list[float]:
    """Per member, the largest parameter difference between the two results."""
    return [_max_diff(b[1], r[0][1]) for b, r in zip(batched, reference, strict=True)]


# Each dtype, task and regulariser twice, in pairs that cover all four combinations of any two.
CASES = [
    ("float64", "classification", "l2"),
    ("float32", "classification", "l2-weights"),
    ("float64", "regression", "l2-weights"),
    ("float32", "regression", "l2"),
]


@pytest.mark.parametrize(("dtype", "task", "reg"), CASES)
def test_members_end_as_train_leaves_them(dtype: str, task: str, reg: str) -> None:
    lams, seeds = [0.0, 0.3, 2.0], [5, 0, 11]
    models = [_net(s, dtype, task) for s in (1, 2, 3)]
    data = [_data(s, task) for s in (10, 20, 30)]  # each member its own set, equal lengths
    xs, ys = [d[0] for d in data], [d[1] for d in data]
    options = {"task": task, "epochs": EPOCHS, "reg": reg}
    trained, counts = train_batched(models, xs, ys, weight_decays=lams, seeds=seeds, **options)
    reference = _sequential(models, xs, ys, lams, seeds, **options)
    assert max(_diffs(trained, reference)) <= TOL[dtype]
    assert counts == [r[1] for r in reference] == [EPOCHS * N] * 3
    assert all(t[0] is models[0][0] for t in trained)
    for (_, new), (_, old) in zip(trained, models, strict=True):
        assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(old)
        shapes = [(a.shape, a.dtype) for a in jax.tree_util.tree_leaves(new)]
        assert shapes == [(a.shape, a.dtype) for a in jax.tree_util.tree_leaves(old)]

    # The comparison can fail: the same call with the first two members' λ swapped.
    swapped, _ = train_batched(
        models, xs, ys, weight_decays=[lams[1], lams[0], lams[2]], seeds=seeds, **options
    )
    assert min(_diffs(swapped, reference)[:2]) > 100 * TOL[dtype]


def test_shared_data_and_progress_match_train() -> None:
    # One training set for every member (a weight-decay sweep), given once by the same arrays
    # and once by an equal copy; progress reports the mean over members of train's epoch loss.
    x, y = _data(4, "classification")
    lams, seeds = [1e-2, 0.0, 5.0], [3, 3, 8]
    models = [_net(0, "float64", "classification")] * 3
    per_member: list[list[float]] = [[] for _ in lams]
    hooks = [lambda e, n, loss, m=m: per_member[m].append(loss) for m in range(3)]
    options = {"task": "classification", "epochs": EPOCHS}
    reference = _sequential(models, [x] * 3, [y] * 3, lams, seeds, progress=hooks, **options)
    calls: list[tuple[int, int, float]] = []
    trained, counts = train_batched(
        models,
        [x, x.copy(), x],
        [y, y, y.copy()],
        weight_decays=lams,
        seeds=seeds,
        progress=lambda *a: calls.append(a),
        **options,
    )
    assert max(_diffs(trained, reference)) <= TOL["float64"]
    assert counts == [EPOCHS * N] * 3
    assert [c[:2] for c in calls] == [(e, EPOCHS) for e in range(1, EPOCHS + 1)]
    expected = np.mean(np.asarray(per_member), axis=0)
    np.testing.assert_allclose([c[2] for c in calls], expected, rtol=1e-12)


def test_mnist_cnv_members_end_as_train_leaves_them() -> None:
    # The smallest valid MNIST-CNV input: 28x28 images (channel axis left out), 5 of them.
    rng = np.random.default_rng(0)
    xs = [rng.uniform(size=(5, 28, 28)) for _ in range(2)]
    ys = [rng.integers(0, 10, size=5) for _ in range(2)]
    models = [build_net("mnist-cnv", (28, 28), 10, seed=s, dtype="float32") for s in (0, 1)]
    options = {"task": "classification", "epochs": 2, "reg": "l2-weights"}
    lams, seeds = [0.0, 0.5], [2, 9]
    trained, counts = train_batched(models, xs, ys, weight_decays=lams, seeds=seeds, **options)
    reference = _sequential(models, xs, ys, lams, seeds, **options)
    assert max(_diffs(trained, reference)) <= TOL["float32"]
    assert counts == [r[1] for r in reference] == [10, 10]


@settings(max_examples=15)
@given(
    members=st.lists(
        st.tuples(
            st.sampled_from([0.0, 1e-4, 1e-2, 0.5, 3.0]),
            st.integers(0, 2**31 - 1),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_any_members_end_as_train_leaves_them(members: list[tuple[float, int, int]]) -> None:
    lams = [m[0] for m in members]
    seeds = [m[1] for m in members]
    models = [_net(m[2], "float64", "regression") for m in members]
    data = [_data(m[2] + 100, "regression") for m in members]
    xs, ys = [d[0] for d in data], [d[1] for d in data]
    options = {"task": "regression", "epochs": EPOCHS, "reg": "l2-weights"}
    trained, counts = train_batched(models, xs, ys, weight_decays=lams, seeds=seeds, **options)
    reference = _sequential(models, xs, ys, lams, seeds, **options)
    assert max(_diffs(trained, reference)) <= TOL["float64"]
    assert counts == [EPOCHS * N] * len(members)


def test_no_epochs_and_the_callers_models_stay_usable() -> None:
    model = _net(0, "float32", "classification")
    before = [np.asarray(leaf).copy() for leaf in jax.tree_util.tree_leaves(model[1])]
    x, y = _data(0, "classification")
    same, counts = train_batched(
        [model], [x], [y], task="classification", epochs=0, weight_decays=[1.0], seeds=[0]
    )
    assert counts == [0] and _max_diff(same[0][1], model[1]) == 0.0
    # Training donates only its own stacked copies: the caller's parameters are intact.
    train_batched(
        [model], [x], [y], task="classification", epochs=1, weight_decays=[1.0], seeds=[0]
    )
    after = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(model[1])]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def _call(**changes):
    """``train_batched`` on two tiny classification members, with some arguments replaced."""
    x, y = _data(0, "classification")
    args = {
        "models": [_net(0, "float64", "classification")] * 2,
        "xs": [x, x],
        "ys": [y, y],
        "task": "classification",
        "epochs": 1,
        "weight_decays": [0.0, 1.0],
        "seeds": [0, 1],
        "reg": "l2",
    }
    args.update(changes)
    models, xs, ys = args.pop("models"), args.pop("xs"), args.pop("ys")
    return train_batched(models, xs, ys, **args)


def _two_nets(**second) -> dict:
    """Changes giving the members a float64 net and a second, different one."""
    options = {"seed": 0, "dtype": "float64", "task": "classification", **second}
    return {"models": [_net(0, "float64", "classification"), _net(**options)]}


X, Y = _data(0, "classification")
# Each case: a function returning the changed arguments (nets are built only when the case runs)
# and the message the error must carry.
BAD = [
    (lambda: {"models": [], "xs": [], "ys": [], "weight_decays": [], "seeds": []}, "no members"),
    (lambda: {"seeds": [0]}, "one entry per member"),
    (lambda: {"weight_decays": [0.0, 1.0, 2.0]}, "one entry per member"),
    (lambda: {"xs": [X]}, "one entry per member"),
    (lambda: {"xs": [X, X[:-1]], "ys": [Y, Y[:-1]]}, "group members by training-set length"),
    (lambda: {"xs": [X, X[:, :2]]}, "same kind"),
    (lambda: _two_nets(hidden=(6, 4)), "not the same net"),
    (lambda: _two_nets(dtype="float32"), "not the same net"),
    (lambda: {"models": [_net(0, "float64", "classification"), "net"]}, "not an .apply_fn"),
    (lambda: {"task": "ranking"}, "task must be one of"),
    (lambda: {"reg": "l1"}, "reg must be one of"),
    (lambda: {"epochs": -1}, "epochs must be >= 0"),
    (lambda: {"weight_decays": [0.0, -1.0]}, "member 1: weight_decay must be >= 0"),
    (lambda: {"weight_decays": [float("nan"), 1.0]}, "member 0: weight_decay must be >= 0"),
    (lambda: {"xs": [X, X[:0]], "ys": [Y, Y[:0]]}, "member 1: need a non-empty training set"),
    (lambda: {"ys": [Y, Y[:-1]]}, "member 1: need a non-empty training set with as many"),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_input_is_refused(changes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _call(**changes())


def test_exported_by_the_backend() -> None:
    import manifoldwalk_jax.paper as backend

    assert "train_batched" in backend.__all__
    assert getattr(backend, "train_batched", None) is train_batched
