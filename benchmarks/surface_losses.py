"""Loss-surface evaluation: batched (vmap, ``plane_losses``) against one ``problem.loss`` per point.

The loss surface of ``manifoldwalk plot`` evaluates the training loss at ``grid²`` weight
vectors (10,000 for the paper's 100 × 100). This times both ways on the paper's nets with
random data of the experiments' sizes (Iris FF: 120 examples, 21,003 parameters; CIFAR10-CNV:
1,000 examples, 685,450 parameters), on the CPU or a CUDA device, and prints the median time
per point over repeats, the points per second and the ratio, all measured in this one run.

    PYTHONPATH=.:adapters python benchmarks/surface_losses.py --net ff --points 512
    PYTHONPATH=.:adapters python benchmarks/surface_losses.py --net cifar10-cnv --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _setup(net: str, device: str, threads: int | None):
    from manifoldwalk_torch import paper as backend

    backend.configure(device=device, threads=threads)
    rng = np.random.default_rng(0)
    if net == "ff":
        x = rng.normal(size=(120, 4)).astype(np.float64)
        y = rng.integers(0, 3, size=120)
        model = backend.build_net("ff", (4,), 3, seed=0, dtype="float64")
    else:
        x = rng.normal(size=(1000, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, 10, size=1000)
        model = backend.build_net("cifar10-cnv", (32, 32, 3), 10, seed=0, dtype="float32")
    problem = backend.make_problem(model, x, y, task="classification")
    return backend, problem, x, y


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def main() -> None:
    """Parse the options, time both ways, print medians and the ratio."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--net", choices=["ff", "cifar10-cnv"], default="ff")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--points", type=int, default=512, help="grid points per timing")
    p.add_argument("--chunks", default="1,16,64,256", help="vmap chunk sizes to time")
    p.add_argument("--loop-points", type=int, default=64, help="points for the one-by-one loop")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    backend, problem, x, y = _setup(args.net, args.device, args.threads)
    n = problem.n_params
    rng = np.random.default_rng(1)
    origin = np.asarray(problem.theta0.detach().cpu().numpy(), dtype=np.float64)
    basis = rng.normal(size=(2, n)) / np.sqrt(n)
    coords = rng.normal(size=(args.points, 2))

    def per_point(fn, m: int) -> float:
        times = []
        for _ in range(args.repeats):
            _sync(args.device)
            t0 = time.perf_counter()
            fn()
            _sync(args.device)
            times.append((time.perf_counter() - t0) / m)
        return statistics.median(times)

    def loop() -> None:
        for c in coords[: args.loop_points]:
            float(problem.loss(backend.from_numpy(origin + c @ basis, problem.theta0)))

    loop()  # warm-up
    t_loop = per_point(loop, args.loop_points)
    print(f"{args.net} on {args.device}: {n:,} parameters, {len(x)} examples")
    print(f"one problem.loss per point: median {1e3 * t_loop:.3f} ms/point ({1 / t_loop:.0f}/s)")
    for chunk in (int(c) for c in args.chunks.split(",")):

        def batched(chunk: int = chunk) -> None:
            backend.plane_losses(
                problem,
                x,
                y,
                task="classification",
                origin=origin,
                basis=basis,
                coords=coords,
                chunk=chunk,
            )

        try:
            batched()  # warm-up
            t = per_point(batched, args.points)
        except RuntimeError as err:  # e.g. CUDA out of memory for a large chunk
            print(f"plane_losses chunk {chunk}: failed ({str(err).splitlines()[0]})")
            continue
        print(
            f"plane_losses chunk {chunk:4d}: median {1e3 * t:.3f} ms/point ({1 / t:.0f}/s), "
            f"{t_loop / t:.1f}x the loop; 100x100 grid in {1e4 * t:.1f} s"
        )


if __name__ == "__main__":
    main()
