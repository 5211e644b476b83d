"""Walk a small net's level set with its training set spread over ``torch.distributed`` ranks.

Every rank holds a slice of the training set; each loss-and-gradient is one all_reduce of the
slices' sums, so every rank walks the same path as one process holding all the data would.

    # two processes on this machine, gloo on the CPU
    torchrun --nproc_per_node 2 examples/distributed_torch.py --out /tmp/dist
    # one process per GPU, NCCL
    torchrun --nproc_per_node 4 examples/distributed_torch.py --device cuda --out /tmp/dist
    # the same walk in one process on the whole training set, for comparison
    python examples/distributed_torch.py --single --out /tmp/dist [--device cuda]

Each rank writes its :class:`manifoldwalk.WalkResult` to ``OUT/rank{r}.npz`` and its held-out
metrics and the walk's wall time to ``OUT/rank{r}.json`` (the single run: ``OUT/single.*``).
:func:`launch` runs the torchrun command on 127.0.0.1 from Python (the agreement benchmark and
the tests use it).

The net is a 4-16-3 tanh MLP in float64 on a synthetic 3-class problem of 301 examples (an odd
number, so the two shards differ in size). Every rank initialises its model from a different
seed on purpose: ``manifoldwalk_torch.distributed.from_model`` broadcasts rank 0's parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import manifoldwalk_torch
import numpy as np
import torch
import torch.distributed as dist
from manifoldwalk_torch import distributed
from torch import nn

import manifoldwalk

N_TRAIN = 301
"""Training examples (odd, so that two ranks hold 151 and 150)."""
N_TEST = 101
SIZES = (4, 16, 3)
SEED = 0


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples of a 3-class problem in 4 dimensions: Gaussian blobs, float64 inputs.

    The blobs' centres are fixed; ``seed`` draws the examples (training and held-out sets
    come from different seeds).
    """
    centres = np.random.default_rng(12345).normal(size=(SIZES[-1], SIZES[0]))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, SIZES[-1], size=n)
    x = centres[y] + rng.normal(size=(n, SIZES[0]))
    return x, y.astype(np.int64)


def make_model(seed: int) -> nn.Module:
    """The 4-16-3 tanh MLP in float64, initialised from ``seed``."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(SIZES[0], SIZES[1]), nn.Tanh(), nn.Linear(SIZES[1], SIZES[2])
    ).double()


def train(problem: Any, steps: int, lr: float = 0.5) -> torch.Tensor:
    """Phase 1: ``steps`` of full-batch gradient descent from ``problem.theta0``; the end θ.

    On a distributed problem each gradient is already the all-reduced full-batch one, so this
    is distributed training, and θ stays the same on every rank.
    """
    theta = problem.theta0
    for _ in range(steps):
        theta = theta - lr * problem.loss_and_grad(theta)[1]
    return theta


def walk_options(steps: int) -> dict[str, Any]:
    """The walk's options, the same for the distributed and the single-process run."""
    return {
        "stop": manifoldwalk.Stop(max_steps=steps),
        "record": manifoldwalk.Record(every=1, trajectory_every=10),
    }


def run(
    steps: int, shard: str, single: bool, train_steps: int = 300, device: str = "cpu"
) -> tuple[manifoldwalk.WalkResult, dict[str, float]]:
    """Train, walk and evaluate, in one process on all the data or as this rank of a group.

    Args:
        steps: the walk's predictor-step budget.
        shard: ``"contiguous"`` or ``"strided"``: how the ranks split the training set.
        single: one process holding the whole training set (no process group).
        train_steps: phase-1 gradient-descent steps before the walk.
        device: ``"cpu"`` or ``"cuda"`` (each rank on GPU ``LOCAL_RANK`` modulo the count).

    Returns:
        The walk's result, and the held-out metrics at its end with the walk's wall time
        (``"walk_seconds"``).
    """
    x, y = make_data(N_TRAIN, SEED)
    x_test, y_test = make_data(N_TEST, SEED + 1)
    loss_fn = nn.CrossEntropyLoss()
    if single:
        model = make_model(SEED).to(_device(device))
        problem = manifoldwalk_torch.from_model(model, loss_fn, (x, y))
    else:
        # a different initialisation on every rank: from_model broadcasts rank 0's
        model = make_model(SEED + dist.get_rank()).to(_device(device))
        problem = distributed.from_model(model, loss_fn, (x, y), shard=shard)
    theta = train(problem, train_steps)
    start = time.perf_counter()
    result = manifoldwalk.walk(problem, theta, **walk_options(steps))
    seconds = time.perf_counter() - start
    return result, {**problem.evaluate(result.theta, x_test, y_test), "walk_seconds": seconds}


def _device(kind: str) -> torch.device:
    if kind == "cpu":
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


def main(argv: list[str] | None = None) -> None:
    """Run the walk (see the module's docstring for the command lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--steps", type=int, default=150, help="predictor-step budget")
    parser.add_argument("--train-steps", type=int, default=300, help="phase-1 steps")
    parser.add_argument("--shard", choices=("contiguous", "strided"), default="contiguous")
    parser.add_argument("--single", action="store_true", help="one process, all the data")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--backend", default=None, help="gloo or nccl (default: by --device)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.single:
        result, metrics = run(args.steps, args.shard, True, args.train_steps, args.device)
        name = "single"
    else:
        owner = not dist.is_initialized()  # a caller may have set up the group already
        if owner:
            dist.init_process_group(args.backend or ("nccl" if args.device == "cuda" else "gloo"))
        try:
            result, metrics = run(args.steps, args.shard, False, args.train_steps, args.device)
            name = f"rank{dist.get_rank()}"
        finally:
            if owner:
                dist.destroy_process_group()
    result.save(args.out / f"{name}.npz")
    (args.out / f"{name}.json").write_text(json.dumps(metrics))
    print(f"{name}: {result}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env() -> dict[str, str]:
    """This process's environment for a child that imports manifoldwalk as this one does.

    ``PYTHONPATH`` gains the folders holding ``manifoldwalk`` and ``manifoldwalk_torch``;
    gloo is told to use the loopback interface (unless ``GLOO_SOCKET_IFNAME`` is set) and
    OpenMP one thread per process.
    """
    roots = {str(Path(m.__file__).resolve().parents[1]) for m in (manifoldwalk, manifoldwalk_torch)}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*sorted(roots), env.get("PYTHONPATH", "")])
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env["OMP_NUM_THREADS"] = "1"
    return env


def launch(
    script: str | Path, args: list[str], *, nprocs: int = 2, timeout: float = 120.0
) -> subprocess.CompletedProcess:
    """Run ``script`` under ``torchrun`` with ``nprocs`` processes on 127.0.0.1 (gloo-ready).

    The children find ``manifoldwalk`` and ``manifoldwalk_torch`` where this process does.

    Args:
        script: the script torchrun runs on every rank.
        args: its command-line arguments.
        nprocs: the number of processes.
        timeout: seconds before the whole run is killed.

    Returns:
        The finished process (stdout and stderr captured as text).

    Raises:
        subprocess.CalledProcessError: a rank failed (the output is in the exception).
        subprocess.TimeoutExpired: the run took longer than ``timeout``.
    """
    env = child_env()
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nprocs}",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(script),
        *args,
    ]
    # torchrun's ranks are its children: run it in a session of its own so that a timeout
    # kills the whole group (killing torchrun alone would leave the ranks running).
    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise subprocess.TimeoutExpired(command, timeout, out, err) from None
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, command, out, err)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


if __name__ == "__main__":
    main()
