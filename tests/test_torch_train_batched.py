"""``manifoldwalk_torch.paper.train_batched``: M members trained at once end as ``train`` leaves
each member trained alone, up to rounding.

The comparison is member by member on the flat parameter vector θ: ``max|θ_batched − θ_alone|``
relative to ``max|θ_alone|``. Measured on tiny ff and convolutional nets after 4 epochs of 70
examples (12 steps; 96 runs over tasks, regs, λ's and seeds): at most 1.5e-16 in float64 and
1.1e-7 in float32. The tolerances below leave room for longer runs and other data; swapping two
members' λ or seeds moves θ by more than 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from manifoldwalk_torch import paper  # noqa: E402
from manifoldwalk_torch.paper import nets  # noqa: E402
from torch import nn  # noqa: E402

TOL = {"float64": 1e-10, "float32": 1e-5}
"""Largest relative difference of θ allowed between batched and sequential training."""


class _Tanh(nn.Tanh):
    """tanh under another type: a net the direct batched path does not know (so: vmap)."""


def _data(task: str, shape: tuple[int, ...], n: int, members: int, seed: int) -> tuple:
    """Different random training sets of equal length, one per member."""
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(n, *shape)) for _ in range(members)]
    if task == "classification":
        ys = [rng.integers(0, 3, n) for _ in range(members)]
    else:
        ys = [rng.normal(size=(n, 1)) for _ in range(members)]
    return xs, ys


def _net(kind: str, task: str, dtype: str, seed: int) -> nn.Module:
    """A tiny net of ``kind`` (``"ff"``, ``"ff-vmap"`` or ``"cnv"``) for 5 features or 14×14."""
    dt, n_out = getattr(torch, dtype), 3 if task == "classification" else 1
    if kind == "cnv":
        return nets.cnv_net((14, 14), n_out, filters=3, dense=8, dtype=dt, seed=seed)
    model = nets.ff_net(5, n_out, (8, 8), dtype=dt, seed=seed)
    if kind == "ff-vmap":
        model[2] = _Tanh()
    return model


def _theta(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _worst(batched: list[nn.Module], alone: list[nn.Module]) -> float:
    """The largest member's ``max|θ_b − θ_a| / max|θ_a|``."""
    out = 0.0
    for a, b in zip(batched, alone, strict=True):
        ta, tb = _theta(a), _theta(b)
        out = max(out, float((ta - tb).abs().max() / tb.abs().max()))
    return out


def _both(
    kind: str,
    task: str,
    dtype: str,
    reg: str,
    lams: list[float],
    seeds: list[int],
    *,
    n: int = 40,
    epochs: int = 3,
    data_seed: int = 0,
    shared: bool = False,
) -> tuple[list[nn.Module], list[nn.Module], list[int], list[int]]:
    """Train the same members batched and one by one; return both and their gradient counts."""
    members = len(lams)
    shape = (14, 14) if kind == "cnv" else (5,)
    xs, ys = _data(task, shape, n, 1 if shared else members, data_seed)
    if shared:  # a sweep: one training set for every member
        xs, ys = xs * members, ys * members
    batched = [_net(kind, task, dtype, 10 + m) for m in range(members)]
    alone = [_net(kind, task, dtype, 10 + m) for m in range(members)]
    out, counts = paper.train_batched(
        batched, xs, ys, task=task, epochs=epochs, weight_decays=lams, seeds=seeds, reg=reg
    )
    assert all(a is b for a, b in zip(out, batched, strict=True))
    counts_alone = []
    for m in range(members):
        _, c = paper.train(
            alone[m],
            xs[m],
            ys[m],
            task=task,
            epochs=epochs,
            weight_decay=lams[m],
            reg=reg,
            seed=seeds[m],
        )
        counts_alone.append(c)
    return batched, alone, counts, counts_alone


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("reg", ["l2", "l2-weights"])
def test_ff_members_end_as_trained_alone(dtype: str, task: str, reg: str) -> None:
    batched, alone, counts, counts_alone = _both(
        "ff", task, dtype, reg, [0.0, 1e-2, 1.0], [3, 4, 3]
    )
    assert _worst(batched, alone) <= TOL[dtype]
    assert counts == counts_alone == [3 * 40] * 3


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["cnv", "ff-vmap"])
def test_vmapped_nets_end_as_trained_alone(kind: str, dtype: str) -> None:
    """Nets outside the direct path (convolutions, an unknown layer) go through vmap."""
    batched, alone, counts, counts_alone = _both(
        kind, "classification", dtype, "l2-weights", [1e-1, 0.0], [1, 2], n=40, epochs=2
    )
    assert _worst(batched, alone) <= TOL[dtype]
    assert counts == counts_alone


def test_mnist_cnv_from_build_net() -> None:
    """The paper's MNIST-CNV itself (28×28 inputs), one short epoch, in float64.

    Not in float32: Adam's first steps move every weight by about ±lr whatever the size of its
    gradient, so a gradient entry within float32 rounding of zero (the convolutions hold many;
    their rounding depends on the thread count) can flip sign between the two paths and move
    that weight by 2·lr; in float64 such entries are 10⁹ times rarer.
    """
    rng = np.random.default_rng(1)
    xs = [rng.random((33, 28, 28)) for _ in range(2)]
    ys = [rng.integers(0, 10, 33) for _ in range(2)]

    def build(seed: int) -> nn.Module:
        return paper.build_net("mnist-cnv", (28, 28), 10, seed=seed, dtype="float64")

    batched, alone = [build(0), build(1)], [build(0), build(1)]
    paper.train_batched(
        batched, xs, ys, task="classification", epochs=1, weight_decays=[1e-3, 0.0], seeds=[5, 6]
    )
    for m, lam in enumerate([1e-3, 0.0]):
        paper.train(alone[m], xs[m], ys[m], task="classification", epochs=1,
                    weight_decay=lam, seed=5 + m)  # fmt: skip
    assert _worst(batched, alone) <= TOL["float64"]


@settings(max_examples=15)
@given(
    lams=st.lists(st.sampled_from([0.0, 1e-3, 0.1, 1.0, 10.0]), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 45),
    task=st.sampled_from(["classification", "regression"]),
    shared=st.booleans(),
)
def test_property_any_members_end_as_trained_alone(
    lams: list[float], seed: int, n: int, task: str, shared: bool
) -> None:
    seeds = [seed + m for m in range(len(lams))]
    batched, alone, counts, counts_alone = _both(
        "ff", task, "float64", "l2", lams, seeds, n=n, epochs=2, data_seed=seed, shared=shared
    )
    assert _worst(batched, alone) <= TOL["float64"]
    assert counts == counts_alone == [2 * n] * len(lams)


@pytest.mark.parametrize("swap", ["weight_decays", "seeds"])
def test_comparison_catches_swapped_members(swap: str) -> None:
    """The comparison above can fail: two members' λ (or seeds) swapped move θ far off."""
    task, members = "classification", 2
    xs, ys = _data(task, (5,), 70, 1, 0)
    xs, ys = xs * members, ys * members
    lams, seeds = [0.0, 1.0], [3, 4]
    options = {"weight_decays": lams, "seeds": seeds}
    options[swap] = options[swap][::-1]
    batched = [_net("ff", task, "float64", 10 + m) for m in range(members)]
    alone = [_net("ff", task, "float64", 10 + m) for m in range(members)]
    paper.train_batched(batched, xs, ys, task=task, epochs=4, **options)
    for m in range(members):
        paper.train(alone[m], xs[m], ys[m], task=task, epochs=4, weight_decay=lams[m],
                    seed=seeds[m])  # fmt: skip
    assert _worst(batched, alone) > 100 * TOL["float32"]


def test_models_left_as_train_leaves_them() -> None:
    """Eval mode, each member's last gradient in ``.grad``, progress as the members' mean."""
    task, lams, seeds = "regression", [0.5, 0.0], [0, 1]
    xs, ys = _data(task, (5,), 50, 2, 7)
    batched = [_net("ff", task, "float64", m) for m in range(2)]
    alone = [_net("ff", task, "float64", m) for m in range(2)]
    seen: list[tuple[int, int, float]] = []
    paper.train_batched(
        batched, xs, ys, task=task, epochs=3, weight_decays=lams, seeds=seeds,
        progress=lambda *a: seen.append(a),
    )  # fmt: skip
    losses = []
    for m in range(2):
        mine: list[float] = []
        paper.train(alone[m], xs[m], ys[m], task=task, epochs=3, weight_decay=lams[m],
                    seed=seeds[m], progress=lambda e, t, loss, mine=mine: mine.append(loss))  # fmt: skip
        losses.append(mine)
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_allclose([s[2] for s in seen], np.mean(losses, axis=0), rtol=1e-12)
    for a, b in zip(batched, alone, strict=True):
        assert not a.training and not b.training
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            assert pa.grad is not None
            torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-9, atol=1e-12)


def test_zero_epochs_leave_the_models_unchanged() -> None:
    models = [_net("ff", "classification", "float32", m) for m in range(2)]
    before = [_theta(m).clone() for m in models]
    xs, ys = _data("classification", (5,), 10, 2, 0)
    _, counts = paper.train_batched(
        models, xs, ys, task="classification", epochs=0, weight_decays=[0, 1], seeds=[0, 1]
    )
    assert counts == [0, 0]
    for m, t in zip(models, before, strict=True):
        assert torch.equal(_theta(m), t)


def _call(**change) -> None:
    """train_batched of two small members, with ``change`` applied to its arguments."""
    xs, ys = _data("classification", (5,), 10, 2, 0)
    args = dict(
        models=[_net("ff", "classification", "float64", m) for m in range(2)],
        xs=xs,
        ys=ys,
        task="classification",
        epochs=1,
        weight_decays=[0.0, 1.0],
        seeds=[0, 1],
    )
    args.update(change)
    paper.train_batched(args.pop("models"), args.pop("xs"), args.pop("ys"), **args)


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Linear(5, 4, dtype=torch.float64), nn.BatchNorm1d(4).double())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"models": [], "xs": [], "ys": [], "weight_decays": [], "seeds": []}, "no models"),
        ({"seeds": [0]}, "one model, input set"),
        ({"weight_decays": [0.0, 1.0, 2.0]}, "one model, input set"),
        (
            {
                "xs": [np.zeros((10, 5)), np.zeros((11, 5))],
                "ys": [np.zeros(10, int), np.zeros(11, int)],
            },
            "group members by training-set length",
        ),
        ({"xs": [np.zeros((10, 5)), np.zeros((10, 4))]}, "inputs have different shapes"),
        ({"ys": [np.zeros(10, int), np.zeros(9, int)]}, "as many targets as inputs"),
        ({"xs": [np.zeros((0, 5))] * 2, "ys": [np.zeros(0, int)] * 2}, "non-empty"),
        (
            {
                "models": [
                    _net("ff", "classification", "float64", 0),
                    _net("cnv", "x", "float64", 0),
                ]
            },
            "differs from model 0",
        ),
        (
            {"models": [_net("ff", "classification", d, 0) for d in ("float64", "float32")]},
            "differs from model 0",
        ),
        ({"models": [_net("ff", "classification", "float64", 0)] * 2}, "more than once"),
        ({"models": [_bn_net(), _bn_net()]}, "normalisation layers"),
        ({"task": "ranking"}, "task must be one of"),
        ({"reg": "l1"}, "reg must be one of"),
        ({"epochs": -1}, "epochs must be >= 0"),
        ({"weight_decays": [0.0, -1.0]}, "weight_decay must be >= 0"),
    ],
)
def test_bad_input_is_refused(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _call(**change)


def test_exported_from_the_backend() -> None:
    assert "train_batched" in paper.__all__
    assert paper.train_batched.__module__ == "manifoldwalk_torch.paper.batched"
