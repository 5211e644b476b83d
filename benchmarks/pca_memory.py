"""Peak memory and time of the plots' exact PCA on run files larger than the Gram matrix.

Writes synthetic walk files like a run directory's ``walk/thetas-*.npz`` (float32, ``seeds``
files of ``points`` rows each, ``params`` columns), then, in a fresh process, runs the PCA the
plots use (memory-mapped files, Gram matrix over parameter blocks, top 6 components) and prints
its wall time and peak allocated memory (tracemalloc, which numpy reports to) beside the size
of the points as one float64 matrix.

    PYTHONPATH=. python benchmarks/pca_memory.py --seeds 10 --points 200 --params 200000

CIFAR10-CNV at full size is ``--seeds 10 --points 400 --params 685450`` (11 GB of files).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _make(directory: Path, seeds: int, points: int, params: int) -> None:
    from manifoldwalk.experiments.rundir import atomic_write_npz

    rng = np.random.default_rng(0)
    for s in range(seeds):
        start = rng.normal(size=params).astype(np.float32)
        drift = rng.normal(size=params) / np.sqrt(params)
        t = np.linspace(0, 1, points)[:, None]
        theta = (start + 40 * t * drift).astype(np.float32)
        atomic_write_npz(directory / f"seed-{s:03d}.npz", steps=np.arange(points), theta=theta)


def _pca(directory: Path, block: int | None) -> None:
    import tracemalloc

    from manifoldwalk.plots.pca import PointSet, exact_pca, npz_array

    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    files = sorted(directory.glob("seed-*.npz"))
    parts = []
    for f in files:
        arr = npz_array(f, "theta")
        parts.append((arr, np.arange(arr.shape[0])))
    t0 = time.perf_counter()
    pca = exact_pca(PointSet(parts), n_components=6, block=block)
    wall = time.perf_counter() - t0
    heap = tracemalloc.get_traced_memory()[1] / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB (Linux)
    print(
        f"pca {wall:.1f} s; peak allocated (numpy + Python) {heap:.0f} MiB; peak RSS {rss:.0f} MiB "
        "(RSS also counts the memory-mapped file pages read, which the kernel can drop)"
    )
    print(f"top-6 explained variance ratio {np.round(pca.explained_variance_ratio, 4)}")


def main() -> None:
    """Make the files, run the PCA in a child process, print time and memory."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--params", type=int, default=200_000)
    p.add_argument("--block", type=int, default=None, help="parameters per block")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _pca(Path(args.child), args.block)
        return
    n = args.seeds * args.points
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _make(d, args.seeds, args.points, args.params)
        size = sum(f.stat().st_size for f in d.glob("*.npz")) / 2**20
        print(
            f"{n} points x {args.params:,} parameters: files {size:.0f} MiB (float32); as one "
            f"float64 matrix {n * args.params * 8 / 2**20:.0f} MiB; Gram matrix "
            f"{n * n * 8 / 2**20:.0f} MiB"
        )
        cmd = [sys.executable, __file__, "--child", str(d)]
        if args.block:
            cmd += ["--block", str(args.block)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
