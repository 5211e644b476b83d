"""What walking S seeds at once costs on JAX: the vmapped chunk against its floor (not a test).

``manifoldwalk_jax.walk_batch`` runs S seeds' walks in one ``vmap``-ed compiled chunk. This
times, in one process, interleaved round by round, per step (of one seed, or of all S):

- ``floor``: K value-and-gradient evaluations of one seed in a jitted ``lax.while_loop`` (θ ←
  θ − c·∇L, c = 0 at run time), and ``floor xS``: the same ``vmap``-ed over S seeds, what XLA
  makes of S gradients at once with no walk logic;
- ``walk``: one chunk of one seed's compiled walk (``walk(..., driver=Chunked(K))``);
- ``batch``: one chunk of ``walk_batch``'s loop, whose lanes agree on the loop predicate and on
  history writes (a ``psum`` over the seed axis keeps both branches under ``vmap``);
- ``batch, plain vmap``: the same chunk as ``vmap`` of the single-seed loop (what
  ``default_runner`` runs off a CPU: ``vmap`` turns the loop's per-lane predicate into a
  select of every carry field at every step, and the history record's ``lax.cond`` into a
  select that computes the record at every step).

It prints the medians and the paired ratios (median over rounds of the ratio of the same
round): each walk over its floor, and the batch's speed-up over S walks one after another
(S × walk / batch), next to the floor's (S × floor / floor xS), the most a batch can gain.
Nets: the paper's FF net (3×100 tanh) on 1000 random MNIST-sized examples, float32
(``mnist-ff``), and on 120 random Iris-sized examples, float64 (``iris-ff``, the experiment's
size and precision; there the fixed cost of each compiled operation dominates).

    python benchmarks/batch_seeds.py [--nets mnist-ff iris-ff] [--seeds 4] [--k 48]
        [--reps 20] [--threads 1] [--record-every 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import set_threads, time_interleaved  # noqa: E402

NETS = {
    "mnist-ff": ((784,), 10, 1000, "float32"),
    "iris-ff": ((4,), 3, 120, "float64"),
}
"""``--nets``: (input shape, classes, examples, dtype)."""


def seed_problems(net: str, n_seeds: int, framework: str = "jax") -> list[Any]:
    """One problem per seed: the FF net from that seed on random data of that seed, through
    the experiment backend of ``framework`` (``"jax"`` or ``"torch"``)."""
    import importlib

    import numpy as np

    backend = importlib.import_module(f"manifoldwalk_{framework}.paper")

    shape, n_out, n_examples, dtype = NETS[net]
    problems = []
    for seed in range(n_seeds):
        model = backend.build_net("ff", shape, n_out, seed=seed, dtype=dtype)
        rng = np.random.default_rng(seed)
        x = rng.uniform(size=(n_examples, *shape)).astype(dtype)
        y = rng.integers(0, n_out, size=n_examples)
        problems.append(backend.make_problem(model, x, y, task="classification"))
    return problems


def net_rows(net: str, n_seeds: int, k: int, reps: int, record_every: int) -> dict[str, float]:
    """Time one net's floors, walk and batches; returns the figures printed."""
    import jax
    import jax.numpy as jnp
    from jax import lax
    from manifoldwalk_jax.batch import _batched_chunk, _stack
    from manifoldwalk_jax.loop import run_chunk

    from manifoldwalk import Record, Stop
    from manifoldwalk.driver import prepare_walk

    problems = seed_problems(net, n_seeds)
    p = problems[0]

    def floor_loop(theta, c, frozen, data):
        def body(it):
            i, th = it
            _, g = p._loss_and_grad(th, frozen, *data)
            return i + 1, th - c * g

        return lax.while_loop(lambda it: it[0] < k, body, (0, theta))[1]

    single_floor = jax.jit(floor_loop)
    batch_floor = jax.jit(jax.vmap(floor_loop, in_axes=(0, None, 0, 0)))
    zero = jnp.zeros((), p.theta0.dtype)
    thetas, frozen, data = (_stack([getattr(q, a) for q in problems]) for a in _FIELDS)

    options = dict(
        stop=Stop(max_steps=10**9, kkt_tol=0.0, stall_patience=10**9),
        record=Record(every=record_every),
    )
    hosts = [prepare_walk(q, q.theta0, **options).host(k) for q in problems]
    single = p.compile_loop(hosts[0].loop)
    carries = _stack([h.carry for h in hosts])
    lanes = _batched_chunk(p, hosts[0].loop)
    plain = _batched_chunk(p, hosts[0].loop, runner=run_chunk)

    def block(tree: Any) -> None:
        jax.block_until_ready(tree)

    fns = {
        "floor": lambda: block(single_floor(p.theta0, zero, p._frozen, p._data)),
        "floor xS": lambda: block(batch_floor(thetas, zero, frozen, data)),
        "walk": lambda: block(single(hosts[0].carry).state.theta),
        "batch": lambda: block(lanes(carries, frozen, data).state.theta),
        "batch, plain vmap": lambda: block(plain(carries, frozen, data).state.theta),
    }
    times = time_interleaved(fns, reps, warmup=2)
    med = {key: statistics.median(t) / k * 1e3 for key, t in times.items()}

    def paired(num: str, den: str, scale: float = 1.0) -> float:
        pairs = zip(times[num], times[den], strict=True)
        return statistics.median(scale * a / b for a, b in pairs)

    s = n_seeds
    print(f"\n{net}: {int(p.n_params):,} parameters, S = {s} seeds, K = {k}, {reps} rounds")
    print("| what | ms/step | over its floor (paired) | speed-up over S in turn (paired) |")
    print("|---|---|---|---|")
    print(f"| floor, one seed | {med['floor']:.3f} | 1 | |")
    print(
        f"| floor, S seeds vmapped | {med['floor xS']:.3f} | 1 | "
        f"{paired('floor', 'floor xS', s):.2f}x |"
    )
    print(f"| walk, one seed | {med['walk']:.3f} | {paired('walk', 'floor'):.3f} | |")
    for key in ("batch", "batch, plain vmap"):
        print(
            f"| {key} | {med[key]:.3f} | {paired(key, 'floor xS'):.3f} | "
            f"{paired('walk', key, s):.2f}x |"
        )
    return med


_FIELDS = ("theta0", "_frozen", "_data")


def main(argv: list[str] | None = None) -> int:
    """Time every net asked for and print its table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--seeds", type=int, default=4, help="seeds per batch (S)")
    ap.add_argument("--k", type=int, default=48, help="steps per chunk (K)")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, help="intra-op threads (set before jax is imported)")
    ap.add_argument(
        "--record-every", type=int, default=10, help="history rows every n predictor steps"
    )
    args = ap.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    import os

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import platform

    import jax

    print(f"# batched seeds: {platform.machine()}, {os.cpu_count()} cores, JAX {jax.__version__}")
    for net in args.nets:
        net_rows(net, args.seeds, args.k, args.reps, args.record_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
