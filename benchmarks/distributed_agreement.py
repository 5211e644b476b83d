"""Distributed agreement: a walk on 2 gloo processes against the same walk in one process.

Runs ``examples/distributed_torch.py`` (a 4-16-3 tanh MLP in float64 on 301 examples, 300
phase-1 gradient-descent steps, then the walk) twice: under ``torchrun`` with ``--nprocs``
processes on 127.0.0.1 (gloo; each rank holds its slice of the training set and every
loss-and-gradient is one all-reduce of P + 1 numbers), and as one process holding all the
data. It prints, for each shard layout, whether every rank took the same sequence of
predictor and corrector steps as the single process (step counts per record, stop reason,
gradient evaluations), the largest difference in the final θ (absolute and relative to
max|θ|), whether the ranks agree bit for bit, and the walks' milliseconds per gradient
evaluation (on 2 processes sharing a small net, communication dominates: this is a check of
exactness, not of speed). Last, it times one gloo all_reduce of P + 1 float32 numbers, the
communication a distributed evaluation adds, for the example's P and the paper's nets.

    python benchmarks/distributed_agreement.py [--steps 150] [--nprocs 2]

``benchmarks/perf.py`` calls :func:`agreement`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from manifoldwalk import WalkResult

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "distributed_torch.py"
COUNT_COLUMNS = ("step", "n_predictor", "n_corrector")


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("distributed_torch_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_steps(a: WalkResult, b: WalkResult) -> bool:
    """Whether two walks took the same sequence of predictor and corrector steps."""
    scalars = ("stop_reason", "n_predictor", "n_corrector", "n_grad_evals")
    if any(getattr(a, k) != getattr(b, k) for k in scalars):
        return False
    return all(np.array_equal(a.history[c], b.history[c]) for c in COUNT_COLUMNS)


def agreement(
    steps: int = 150, nprocs: int = 2, shard: str = "contiguous", timeout: float = 300.0
) -> dict[str, Any]:
    """Run the distributed and the single-process walk and compare them.

    Args:
        steps: the walk's predictor-step budget.
        nprocs: the number of torchrun processes.
        shard: ``"contiguous"`` or ``"strided"``.
        timeout: seconds before a run is killed.

    Returns:
        ``steps_match`` (every rank took the single process's steps), ``ranks_identical``
        (the ranks' final θ agree bit for bit), ``max_abs_theta_diff`` and
        ``max_rel_theta_diff`` (largest |θ_rank − θ_single|, and that over max|θ_single|),
        ``n_predictor``, ``n_corrector``, ``n_grad_evals`` (of the single walk),
        ``ms_per_eval_single`` and ``ms_per_eval_distributed`` (the walk's wall time per
        gradient evaluation; the slowest rank).

    Raises:
        subprocess.CalledProcessError, subprocess.TimeoutExpired: a run failed or hung.
    """
    example = _example()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        args = ["--out", str(out), "--steps", str(steps), "--shard", shard]
        example.launch(EXAMPLE, args, nprocs=nprocs, timeout=timeout)
        subprocess.run(
            [sys.executable, str(EXAMPLE), *args, "--single"],
            env=example.child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        single = WalkResult.load(out / "single.npz")
        ranks = [WalkResult.load(out / f"rank{r}.npz") for r in range(nprocs)]
        seconds_single = json.loads((out / "single.json").read_text())["walk_seconds"]
        seconds_ranks = [
            json.loads((out / f"rank{r}.json").read_text())["walk_seconds"] for r in range(nprocs)
        ]
    diffs = [float(np.max(np.abs(r.theta - single.theta))) for r in ranks]
    scale = float(np.max(np.abs(single.theta)))
    return {
        "shard": shard,
        "nprocs": nprocs,
        "steps_match": all(_same_steps(r, single) for r in ranks),
        "ranks_identical": all(np.array_equal(r.theta, ranks[0].theta) for r in ranks),
        "max_abs_theta_diff": max(diffs),
        "max_rel_theta_diff": max(diffs) / scale,
        "n_predictor": single.n_predictor,
        "n_corrector": single.n_corrector,
        "n_grad_evals": single.n_grad_evals,
        "ms_per_eval_single": 1e3 * seconds_single / single.n_grad_evals,
        "ms_per_eval_distributed": 1e3 * max(seconds_ranks) / single.n_grad_evals,
    }


_ALLREDUCE_SCRIPT = """
import json, statistics, sys, time
import torch, torch.distributed as dist
torch.set_num_threads(1)
dist.init_process_group("gloo")
size, reps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
buffer = torch.ones(size, dtype=torch.float32)
times = []
for _ in range(reps + 5):
    dist.barrier()
    start = time.perf_counter()
    dist.all_reduce(buffer)
    times.append(time.perf_counter() - start)
if dist.get_rank() == 0:
    open(out, "w").write(json.dumps(statistics.median(times[5:])))
dist.destroy_process_group()
"""


def allreduce_ms(n_floats: int, nprocs: int = 2, reps: int = 50, timeout: float = 300.0) -> float:
    """The median time of one gloo all_reduce of ``n_floats`` float32 numbers, in ms.

    Each repetition starts after a barrier, so this is the collective's own latency on this
    machine (loopback TCP between processes), as a walk step pays it once.
    """
    example = _example()
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "allreduce.py", Path(tmp) / "ms.json"
        script.write_text(_ALLREDUCE_SCRIPT)
        example.launch(script, [str(n_floats), str(reps), str(out)], nprocs=nprocs, timeout=timeout)
        return 1e3 * json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    """Print the agreement for contiguous and strided shards."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--nprocs", type=int, default=2)
    args = parser.parse_args(argv)
    print(
        f"{'shard':<11} {'procs':>5} {'steps match':>11} {'ranks equal':>11} "
        f"{'max|Δθ|':>9} {'rel':>9} {'pred+corr':>9} {'ms/eval 1p':>10} {'ms/eval Np':>10}"
    )
    for shard in ("contiguous", "strided"):
        a = agreement(args.steps, args.nprocs, shard)
        print(
            f"{a['shard']:<11} {a['nprocs']:>5} {str(a['steps_match']):>11} "
            f"{str(a['ranks_identical']):>11} {a['max_abs_theta_diff']:>9.2e} "
            f"{a['max_rel_theta_diff']:>9.2e} {a['n_predictor']:>4}+{a['n_corrector']:<4} "
            f"{a['ms_per_eval_single']:>10.3f} {a['ms_per_eval_distributed']:>10.3f}"
        )
    print("\none gloo all_reduce of P + 1 float32 numbers, median over 50 (loopback):")
    for name, n_params in (("example MLP", 131), ("MNIST-FF", 99_710), ("CIFAR10-CNV", 685_450)):
        ms = allreduce_ms(n_params + 1, args.nprocs)
        print(f"  {name:<12} P = {n_params:>7,}: {ms:8.3f} ms")


if __name__ == "__main__":
    main()
