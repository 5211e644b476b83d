"""One rank of the 2-process test in ``test_distributed.py`` (launched there with torchrun).

    _distributed_worker.py EXAMPLE OUT STEPS

On every rank: runs the example script's walk with contiguous and with strided shards (each
a WalkResult in OUT/{shard}/rank{r}.npz), then checks, within this process group, what only a
group can show, and writes the figures to OUT/checks_rank{r}.json for the test to assert on:
the loss and gradient against the whole data set evaluated on this rank alone, the sharded
evaluation against a local one, and that a θ that differs between the ranks is refused on
every rank.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import manifoldwalk_torch
import torch
import torch.distributed as dist
from manifoldwalk_torch import distributed
from torch import nn

from manifoldwalk.problem import ProblemError


def load_example(path: str):
    """The example script as a module."""
    spec = importlib.util.spec_from_file_location("distributed_torch_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checks(example) -> dict:
    """Figures of the problem's collectives on this rank (see the module docstring)."""
    x, y = example.make_data(example.N_TRAIN, example.SEED)
    x_test, y_test = example.make_data(example.N_TEST, example.SEED + 1)
    rank = dist.get_rank()
    problem = distributed.from_model(
        example.make_model(example.SEED + rank), nn.CrossEntropyLoss(), (x, y)
    )
    whole = manifoldwalk_torch.from_model(
        example.make_model(example.SEED), nn.CrossEntropyLoss(), (x, y)
    )
    theta = problem.theta0
    loss, grad = problem.loss_and_grad(theta)
    loss_ref, grad_ref = whole.loss_and_grad(theta)
    sharded = problem.evaluate(theta, x_test, y_test, task="classification")
    local = whole.evaluate(theta, x_test, y_test, task="classification")
    out = {
        "rank": rank,
        "n_local": problem.n_local,
        "n_total": problem.n_total,
        "n_counts": list(problem.n_counts),
        "theta0_equals_rank0_model": bool(torch.equal(theta, whole.theta0)),
        "loss": loss.item(),
        "loss_ref": loss_ref.item(),
        "loss_only": problem.loss(theta).item(),
        "grad_max_abs_diff": (grad - grad_ref).abs().max().item(),
        "grad_max_abs": grad_ref.abs().max().item(),
        "eval_sharded": sharded,
        "eval_local": local,
    }
    skewed = theta + rank * 1e-3
    try:
        problem.check_replicated(skewed)
        out["skew_refused"] = False
    except ProblemError as err:
        out["skew_refused"] = True
        out["skew_message"] = str(err)
    return out


def main() -> None:
    """Run the walks and the checks on this rank."""
    example_path, out, steps = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    example = load_example(example_path)
    torch.set_num_threads(1)
    dist.init_process_group("gloo")  # one group for everything: gloo is not re-initialised
    try:
        for shard in ("contiguous", "strided"):
            example.main(["--out", str(out / shard), "--steps", steps, "--shard", shard])
        figures = checks(example)
    finally:
        dist.destroy_process_group()
    (out / f"checks_rank{figures['rank']}.json").write_text(json.dumps(figures))


if __name__ == "__main__":
    main()
