"""manifoldwalk_torch.distributed: 2 gloo processes on 127.0.0.1 walk the single-process path.

One torchrun launch (``_distributed_worker.py``) runs the example script's walk on 2 ranks,
with contiguous and strided shards of 301 examples (151 + 150), plus checks of the problem's
collectives; the tests compare what the ranks wrote with the same walk in this process on the
whole training set. The rest runs here, in a one-process gloo group.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st
from manifoldwalk_torch import distributed
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from manifoldwalk import WalkResult
from manifoldwalk.problem import ProblemError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "distributed_torch.py"
WORKER = Path(__file__).with_name("_distributed_worker.py")
STEPS = 120
SHARDS = ("contiguous", "strided")
LAUNCH_TIMEOUT_S = 150


def load_example():
    spec = importlib.util.spec_from_file_location("distributed_torch_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return load_example()


@pytest.fixture(scope="module")
def launched(example, tmp_path_factory):
    """The folder the two ranks wrote to (one torchrun launch for the module)."""
    out = tmp_path_factory.mktemp("distributed")
    try:
        example.launch(WORKER, [str(EXAMPLE), str(out), str(STEPS)], timeout=LAUNCH_TIMEOUT_S)
    except subprocess.CalledProcessError as err:
        pytest.fail(f"the torchrun launch failed:\n{err.stdout[-4000:]}\n{err.stderr[-4000:]}")
    return out


@pytest.fixture(scope="module")
def single(example):
    """The same walk in this process, on the whole training set."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result, metrics = example.run(STEPS, "contiguous", single=True)
    finally:
        torch.set_num_threads(threads)
    return result, metrics


@pytest.fixture(scope="module")
def reordering_noise(example, single):
    """How far θ moves when only the order of the training set's sum changes: the same
    single-process walk on the examples in reverse order (max |Δθ|; 1.0e-12 on this CPU). The
    ranks' all-reduce reorders the sum too, so their θ may differ from the single walk's by
    about as much, never by what a wrong gradient gives."""
    make_data = example.make_data

    def reversed_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = make_data(n, seed)
        return x[::-1].copy(), y[::-1].copy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    example.make_data = reversed_data
    try:
        result, _ = example.run(STEPS, "contiguous", single=True)
    finally:
        example.make_data = make_data
        torch.set_num_threads(threads)
    noise = float(np.max(np.abs(result.theta.numpy() - single[0].theta.numpy())))
    assert 0 < noise < 1e-9, noise  # a sum's order matters in float64, but only in its last bits
    return noise


def ranks(folder: Path) -> list[WalkResult]:
    return [WalkResult.load(folder / f"rank{r}.npz") for r in range(2)]


@pytest.mark.parametrize("shard", SHARDS)
def test_every_rank_walks_the_single_process_path(launched, single, reordering_noise, shard):
    reference, _ = single
    atol = 10 * reordering_noise
    assert reference.n_predictor > 20 and reference.n_corrector > 5, "too short to compare"
    for result in ranks(launched / shard):
        assert result.stop_reason == reference.stop_reason
        assert result.n_predictor == reference.n_predictor
        assert result.n_corrector == reference.n_corrector
        assert result.n_grad_evals == reference.n_grad_evals
        for column in ("step", "n_predictor", "n_corrector"):
            np.testing.assert_array_equal(result.history[column], reference.history[column])
        ref_theta = reference.theta.numpy()
        np.testing.assert_allclose(result.theta, ref_theta, rtol=0, atol=atol)
        np.testing.assert_allclose(
            result.trajectory, reference.trajectory.numpy(), rtol=0, atol=atol
        )
        np.testing.assert_allclose(
            result.history["reg"], reference.history["reg"], rtol=1e-10, atol=0
        )


@pytest.mark.parametrize("shard", SHARDS)
def test_ranks_agree_bit_for_bit(launched, shard):
    first, second = ranks(launched / shard)
    np.testing.assert_array_equal(first.theta, second.theta)
    np.testing.assert_array_equal(first.history["loss"], second.history["loss"])


def test_held_out_metrics_match(launched, single):
    _, reference = single
    for r in range(2):
        metrics = json.loads((launched / "contiguous" / f"rank{r}.json").read_text())
        assert metrics.keys() == reference.keys()
        for key in ("loss", "accuracy"):
            value = reference[key]
            assert metrics[key] == pytest.approx(value, rel=1e-12)


def checks(folder: Path) -> list[dict]:
    return [json.loads((folder / f"checks_rank{r}.json").read_text()) for r in range(2)]


def test_all_reduce_gives_the_whole_data_loss_and_gradient(launched):
    for figures in checks(launched):
        assert figures["n_counts"] == [151, 150]
        assert figures["n_total"] == 301
        assert figures["theta0_equals_rank0_model"]
        assert figures["loss"] == pytest.approx(figures["loss_ref"], rel=1e-14)
        assert figures["loss_only"] == pytest.approx(figures["loss_ref"], rel=1e-14)
        assert figures["grad_max_abs_diff"] <= 1e-14 * figures["grad_max_abs"]


def test_sharded_evaluation_matches_one_process(launched):
    for figures in checks(launched):
        for key, value in figures["eval_local"].items():
            assert figures["eval_sharded"][key] == pytest.approx(value, rel=1e-12)


def test_theta_differing_between_ranks_is_refused_on_every_rank(launched):
    for figures in checks(launched):
        assert figures["skew_refused"], figures["rank"]
        assert "ranks [1]" in figures["skew_message"]


# --- in this process ------------------------------------------------------------------------


@given(n=st.integers(0, 1000), world=st.integers(1, 17))
def test_shard_bounds_cover_the_data_once_in_near_equal_blocks(n, world):
    bounds = [distributed.shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    for (_, stop), (start, _) in zip(bounds, bounds[1:], strict=False):
        assert stop == start
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("n, rank, world", [(-1, 0, 1), (5, 2, 2), (5, 0, 0), (5, -1, 2)])
def test_shard_bounds_refuses_bad_arguments(n, rank, world):
    with pytest.raises(ValueError, match="shard_bounds"):
        distributed.shard_bounds(n, rank, world)


def tiny(n: int = 7):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(n, 3, dtype=torch.float64)
    y = torch.arange(n) % 2
    return model, x, y


def test_needs_an_initialised_process_group():
    assert not dist.is_initialized()
    model, x, y = tiny()
    with pytest.raises(RuntimeError, match="init_process_group"):
        distributed.from_model(model, nn.CrossEntropyLoss(), (x, y))


@pytest.fixture
def group_of_one(example):
    """A one-process gloo group on 127.0.0.1 for the duration of a test."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{example.free_port()}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def test_a_group_of_one_is_the_plain_problem(group_of_one):
    import manifoldwalk_torch

    model, x, y = tiny()
    plain = manifoldwalk_torch.from_model(model, nn.CrossEntropyLoss(), (x, y))
    problem = distributed.from_model(model, nn.CrossEntropyLoss(), (x, y), shard="strided")
    theta = problem.theta0 + 0.1
    loss, grad = problem.loss_and_grad(theta)
    loss_ref, grad_ref = plain.loss_and_grad(theta)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-15, atol=0)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-15, atol=1e-17)
    assert (problem.n_local, problem.n_total) == (7, 7)


def test_local_shards_from_a_data_loader_are_counted(group_of_one):
    model, x, y = tiny()
    loader = DataLoader(TensorDataset(x, y), batch_size=3)
    problem = distributed.from_model(model, nn.CrossEntropyLoss(), loader, shard="local")
    assert problem.n_local == 7
    loss, _ = problem.loss_and_grad(problem.theta0)
    expected = nn.CrossEntropyLoss()(model(x), y)
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-14, atol=0)


def test_a_distributed_sampler_is_refused(group_of_one):
    model, x, y = tiny()
    data = TensorDataset(x, y)
    loader = DataLoader(data, batch_size=3, sampler=DistributedSampler(data, 1, 0))
    with pytest.raises(ProblemError, match="DistributedSampler"):
        distributed.from_model(model, nn.CrossEntropyLoss(), loader, shard="local")


def test_an_unknown_shard_is_refused(group_of_one):
    model, x, y = tiny()
    with pytest.raises(ValueError, match="shard must be one of"):
        distributed.from_model(model, nn.CrossEntropyLoss(), (x, y), shard="blocks")


def test_a_data_loader_needs_shard_local(group_of_one):
    model, x, y = tiny()
    loader = DataLoader(TensorDataset(x, y), batch_size=3)
    with pytest.raises(TypeError, match='shard="local"'):
        distributed.from_model(model, nn.CrossEntropyLoss(), loader)
