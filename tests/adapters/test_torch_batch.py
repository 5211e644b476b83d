"""``manifoldwalk_torch.walk_batch``: seeds walked together end as each seed walked alone."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import manifoldwalk_torch as mt  # noqa: E402
from _same_walk import assert_same_walk  # noqa: E402
from torch import nn  # noqa: E402

import manifoldwalk as mw  # noqa: E402
from manifoldwalk.problems import Circle  # noqa: E402


class _Offset(nn.Module):
    """An MLP with a frozen first layer and a buffer added to its logits: per-seed tensors that
    are not part of θ."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(4, 6)
        self.frozen.requires_grad_(False)
        self.head = nn.Sequential(nn.Tanh(), nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        self.register_buffer("offset", torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frozen(x)) + self.offset


def _problem(seed: int, n: int = 40, batch_size: int | None = None) -> mt.TorchProblem:
    """A small net trained a little on random data of its seed (float64)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    torch.manual_seed(seed)
    model = _Offset().double()
    with torch.no_grad():
        model.offset.copy_(torch.randn(3, generator=g, dtype=torch.float64))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return mt.from_model(model, nn.CrossEntropyLoss(), (x, y), batch_size=batch_size)


def rounding_spread(seed: int, **options) -> float:
    """How far one seed's walk moves when only the rounding of its gradient changes: the
    largest relative difference of θ between the walk and the same walk with the gradient
    summed over batches of 13 examples.

    The batch's gradients round differently from the eager adapter's (batched products), and
    some schemes amplify rounding along the walk: measured on these nets, the default scheme
    (Newton corrector) took relative differences of 1e-16 to 1e-6 over 150 steps, the paper's
    to 2e-14, and the batch moved each seed as much as re-batching the sum did, no more.
    """
    p, q = _problem(seed), _problem(seed, batch_size=13)
    a, b = mw.walk(p, p.theta0, **options), mw.walk(q, q.theta0, **options)
    assert a.n_corrector == b.n_corrector  # the same path, only rounded differently
    return float(((a.theta - b.theta).abs() / (1e-12 + b.theta.abs())).max())


@pytest.mark.parametrize("scheme", ["paper", "default"])
def test_walk_batch_gives_each_seed_its_own_walk(scheme):
    """Seeds stopped by their callbacks at their own steps, the last by its budget; the lanes
    take correctors at different steps (so the batch runs both branches and masked steps)."""
    problems = [_problem(s) for s in range(3)]
    stops = (40, 90, 10**9)

    def stopper(at: int):
        return lambda row: row["n_predictor"] >= at

    options = dict(scheme=scheme, stop=mw.Stop(max_steps=150), tolerance=mw.Tolerance(tau=1e-15))
    record = mw.Record(every=10, trajectory_every=30)
    batch = mt.walk_batch(
        problems,
        **options,
        record=[record.replace(callback=stopper(a)) for a in stops],
        driver=mw.Chunked(steps_per_sync=32),
    )
    alone = [
        mw.walk(p, p.theta0, **options, record=record.replace(callback=stopper(a)))
        for p, a in zip(problems, stops, strict=True)
    ]
    for seed, got, want in zip(range(3), batch, alone, strict=True):
        spread = rounding_spread(
            seed, record=record.replace(callback=stopper(stops[seed])), **options
        )
        assert_same_walk(got, want, rtol=max(1e-9, 10 * spread))
    assert [r.stop_reason for r in batch] == ["callback", "callback", "max_steps"]
    assert [r.n_predictor for r in batch] == [40, 90, 150]
    # the seeds differ, and they corrected at different steps
    assert len({r.n_corrector for r in batch}) > 1
    assert not np.allclose(batch[0].theta.numpy()[:20], batch[1].theta.numpy()[:20])


def test_walk_batch_writes_rows_on_the_device_without_host_records():
    """No metrics or callback: the rows are written by the batch (not at host pauses), and a
    budget that is not a multiple of K ends mid-chunk."""
    problems = [_problem(s, batch_size=15) for s in (3, 4)]
    options = dict(
        scheme="paper",
        stop=mw.Stop(max_steps=77),
        tolerance=mw.Tolerance(tau=1e-15),
        record=mw.Record(every=3, trajectory_every=7),
    )
    batch = mt.walk_batch(problems, **options, driver=mw.Chunked(steps_per_sync=16))
    for p, got in zip(problems, batch, strict=True):
        assert_same_walk(got, mw.walk(p, p.theta0, **options))
    assert all(len(r.history["n_predictor"]) > 20 for r in batch)


def test_walk_batch_seeds_that_fail_to_correct_keep_their_last_good_point():
    """Each seed stops off the level set at its own step: the batch replays that seed's chunk
    and returns what the seed alone would."""
    problems = [_problem(s) for s in range(3)]
    options = dict(
        scheme=mw.get_scheme("authors", max_corrector_steps=3),
        tolerance=mw.Tolerance(tau=1e-22),
        stop=mw.Stop(max_steps=300),
    )
    batch = mt.walk_batch(problems, **options, driver=mw.Chunked(steps_per_sync=8))
    for p, got in zip(problems, batch, strict=True):
        assert_same_walk(got, mw.walk(p, p.theta0, **options))
    assert [r.stop_reason for r in batch] == ["corrector_failed"] * 3


def test_walk_batch_resumes_each_seed():
    problems = [_problem(s) for s in (5, 6)]
    options = dict(scheme="paper", tolerance=mw.Tolerance(tau=1e-15), record=mw.Record(every=5))
    first = mt.walk_batch(problems, **options, stop=mw.Stop(max_steps=30))
    resumed = mt.walk_batch(problems, resume_from=first, **options, stop=mw.Stop(max_steps=60))
    for p, got in zip(problems, resumed, strict=True):
        assert_same_walk(got, mw.walk(p, p.theta0, **options, stop=mw.Stop(max_steps=60)))


def test_walk_batch_refuses_what_it_cannot_stack():
    a, b = _problem(0), _problem(1)
    fewer = _problem(2, n=30)
    with pytest.raises(ValueError, match="other names, shapes or dtypes"):
        mt.walk_batch([a, fewer], stop=mw.Stop(max_steps=3))
    with pytest.raises(ValueError, match="3 entries for 2 problems"):
        mt.walk_batch([a, b], thetas=[a.theta0] * 3, stop=mw.Stop(max_steps=3))
    with pytest.raises(ValueError, match="at least one problem"):
        mt.walk_batch([], stop=mw.Stop(max_steps=3))
    with pytest.raises(TypeError, match="not a TorchProblem"):
        mt.walk_batch([a, Circle()], stop=mw.Stop(max_steps=3))
    other_loss = mt.from_model(a.model, nn.MultiMarginLoss(), a._data._arrays)
    with pytest.raises(ValueError, match="another model class or loss_fn"):
        mt.walk_batch([a, other_loss], stop=mw.Stop(max_steps=3))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*a._data._arrays))
    with pytest.raises(ValueError, match="DataLoader"):
        mt.walk_batch(
            [a, mt.from_model(a.model, nn.CrossEntropyLoss(), loader)], stop=mw.Stop(max_steps=3)
        )
    with pytest.raises(ValueError, match="metrics or a callback to every seed or to none"):
        mt.walk_batch(
            [a, b],
            stop=mw.Stop(max_steps=3),
            record=[mw.Record(), mw.Record(callback=lambda row: False)],
        )


def test_walk_batch_refuses_seeds_the_first_model_does_not_compute():
    """Models of one class and shapes that compute other functions (another activation) or
    another regulariser pass the structural checks; the batch would walk seed 1 with seed 0's
    function, so it refuses, naming the seed, instead of returning wrong numbers."""
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = (x[:, 0] > 0).long()

    def net(act: nn.Module) -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), act, nn.Linear(8, 3)).double()

    lf = nn.CrossEntropyLoss()
    tanh = mt.from_model(net(nn.Tanh()), lf, (x, y))
    relu = mt.from_model(net(nn.ReLU()), lf, (x, y))
    with pytest.raises(ValueError, match=r"problems\[1\] is not the function.*gives loss"):
        mt.walk_batch([tanh, relu], stop=mw.Stop(max_steps=3))
    weights_only = mt.from_model(net(nn.Tanh()), lf, (x + 0.1, y), reg="l2-weights")
    with pytest.raises(ValueError, match=r"problems\[1\].*gives regulariser"):
        mt.walk_batch([tanh, weights_only], stop=mw.Stop(max_steps=3))
    # the same function on other data passes; each seed keeps its own level
    shifted = mt.from_model(net(nn.Tanh()), lf, (x + 0.1, y))
    batch = mt.walk_batch([tanh, shifted], stop=mw.Stop(max_steps=3))
    assert batch[1].level == pytest.approx(float(shifted.loss(shifted.theta0)), rel=1e-12)


def test_walk_batch_refuses_steps_per_iteration():
    a = _problem(0)
    with pytest.raises(ValueError, match="takes no steps_per_iteration"):
        mt.walk_batch(
            [a, a], stop=mw.Stop(max_steps=3), driver=mw.Chunked(64, steps_per_iteration=2)
        )
