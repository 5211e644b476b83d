"""The plotting API on a small PyTorch net: the filter-normalised plane uses the model's
parameter structure, and the losses drawn are the problem's at the plane's points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from manifoldwalk_torch import from_model
from torch import nn

import manifoldwalk as mw
from manifoldwalk.plots import loss_surface, pca_trajectories, walk_curves


@pytest.fixture(scope="module")
def net():
    """A 4-8-3 tanh net (float64) trained for 150 Adam steps on 60 examples, walked 30 steps."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits
    torch.manual_seed(0)
    x = torch.randn(60, 4, dtype=torch.float64)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    problem = from_model(model, nn.CrossEntropyLoss(), (x, y))
    record = mw.Record(every=5, trajectory_every=5)
    result = mw.walk(problem, problem.theta0, record=record, stop=mw.Stop(max_steps=30))
    yield model, problem, result
    torch.set_num_threads(before)


def test_the_problem_knows_its_parameter_shapes(net):
    model, problem, _ = net
    assert problem.param_shapes == tuple(tuple(p.shape) for p in model.parameters())
    assert sum(int(np.prod(s)) for s in problem.param_shapes) == problem.n_params


def test_filter_plane_scales_each_output_unit_to_the_trained_weights(net):
    model, problem, result = net
    center = result.theta  # a torch tensor
    out = loss_surface(
        problem, center, results=[result], plane="filter", resolution=5, show_progress=False
    )
    data = out.data
    c = center.detach().numpy()
    np.testing.assert_array_equal(data["center"], c)
    for d in data["directions"]:
        start = 0
        for p in model.parameters():
            size = p.numel()
            dp, wp = d[start : start + size], c[start : start + size]
            if p.ndim == 1:
                assert not dp.any()  # biases: direction 0
            else:  # nn.Linear's weight is (out, in): one filter per row
                rows = p.shape[0]
                np.testing.assert_allclose(
                    np.linalg.norm(dp.reshape(rows, -1), axis=1),
                    np.linalg.norm(wp.reshape(rows, -1), axis=1),
                    rtol=1e-12,
                )
            start += size
    for i, j in [(2, 2), (0, 4), (3, 1)]:
        theta = c + data["a"][i] * data["directions"][0] + data["b"][j] * data["directions"][1]
        expected = float(problem.loss(torch.as_tensor(theta)))
        assert data["loss"][j, i] == pytest.approx(expected, rel=1e-12)
    assert data["loss"][2, 2] == pytest.approx(float(problem.loss(center)), rel=1e-14)


def test_curves_and_pca_of_a_torch_walk(net):
    _, problem, result = net
    curves = walk_curves(result).data
    traj = result.trajectory.detach().numpy()
    first = float(problem.loss(torch.as_tensor(traj[1])))
    assert curves["deviation/0"][1] == pytest.approx(abs(first - result.level), abs=1e-15)
    pcs = pca_trajectories(result).data
    np.testing.assert_allclose(pcs["mean"] + pcs["scores"] @ pcs["components"], traj, atol=1e-10)
