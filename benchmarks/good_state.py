"""What finding the last good state costs a compiled JAX chunk: replayed against kept (not a test).

A walk that stops off the level set returns its last good state (on the level set, finite).
A chunk keeps only that state's step number, and the host replays the chunk up to it when a
walk stops off the level set (``ChunkHost.replay``); the alternative timed here, "kept", selects
the state into a copy at every step (thinned to θ, the last predictor direction
and the scalars) and stacks the stop rules' look at every step. This times both, in one
process, interleaved with the while-loop floor (K value-and-gradient evaluations with no walk
logic), on MNIST-FF (784-100-100-100-10 tanh, 1000 random examples, float32), and prints per
step the median time and the median over rounds of step / floor of the same round. Each variant
is compiled twice (two separate chunks), so that their spread shows the noise.

    python benchmarks/good_state.py [--threads 1] [--reps 30] [--k 48] [--scheme default]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import random_data, set_threads, time_interleaved  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Time the floor and both ways of keeping the good state; print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, help="intra-op threads (set before jax is imported)")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--k", type=int, default=48, help="steps per chunk")
    ap.add_argument("--scheme", default="default")
    args = ap.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    import jax
    import jax.numpy as jnp
    from jax import lax
    from manifoldwalk_jax import paper as backend
    from manifoldwalk_jax.loop import run_chunk

    from manifoldwalk import Record, Stop
    from manifoldwalk._chunked import DeviceLoop
    from manifoldwalk.driver import prepare_walk
    from manifoldwalk.step import state_leaves

    k = args.k
    model = backend.build_net("ff", (784,), 10, seed=0, dtype="float32")
    x, y = random_data(0, (784,))
    p = backend.make_problem(model, x, y, task="classification")

    @jax.jit
    def floor_chunk(theta, c):
        def body(it):
            i, th = it
            _, g = p._loss_and_grad(th, p._frozen, *p._data)
            return i + 1, th - c * g

        return lax.while_loop(lambda it: it[0] < k, body, (0, theta))[1]

    def thin(state):
        """``state`` with ∇L, pred, the corrector's direction and the drift (where the
        pieces have them) as 0-d zeros: the vectors the good state need not keep."""
        zero = jnp.zeros_like(state.loss)
        corrector, predictor = state.corrector, state.predictor
        if "direction" in corrector._fields:
            corrector = corrector._replace(direction=zero)
        if "drift" in predictor._fields:
            predictor = predictor._replace(drift=zero)
        return state._replace(grad=zero, pred=zero, corrector=corrector, predictor=predictor)

    class KeptGoodState(DeviceLoop):
        """The loop as it was: the thinned last good state selected, and the look stacked,
        at every step (its sum goes into the look, so that it is not optimised away)."""

        def run(self, c, put, while_loop):
            def body(pair):
                c, good = pair
                c = self.finish(self.iteration(c, put))
                v = self.rules.look(c.state, self.direction)
                here = v[0] & ~v[1]  # "on" and "nonfinite" (LOOK_KEYS order)
                pick = lambda a, b: jnp.where(here, a, b)  # noqa: E731
                return c, jax.tree_util.tree_map(pick, thin(c.state), good)

            c, good = while_loop(lambda pair: self.cond(pair[0]), body, (c, thin(c.state)))
            total = sum(jnp.sum(jnp.astype(a, c.look.dtype)) for a in state_leaves(good))
            return c._replace(look=c.look.at[-1].set(total))

    zero = jnp.zeros((), p.theta0.dtype)
    fns = {"floor": lambda: floor_chunk(p.theta0, zero).block_until_ready()}
    options = dict(
        stop=Stop(max_steps=10**9, kkt_tol=0.0, stall_patience=10**9), record=Record(every=None)
    )
    for name, cls in (("replayed", DeviceLoop), ("kept", KeptGoodState)):
        for copy in ("a", "b"):
            prepared = prepare_walk(p, p.theta0, scheme=args.scheme, **options)
            host = prepared.host(k)
            base = host.loop
            loop = cls(
                base.problem,
                base.direction,
                base.scheme,
                base.rules,
                base.record_every,
                base.trajectory_every,
                base.host_records,
                k,
            )
            chunk = jax.jit(lambda c, loop=loop: run_chunk(loop, c))
            fns[f"{name} ({copy})"] = lambda chunk=chunk, c=host.carry: float(chunk(c).look[0])
    times = time_interleaved(fns, args.reps, warmup=2)
    floor = times["floor"]
    print(f"MNIST-FF, scheme={args.scheme}, K={k}, {args.reps} rounds\n")
    print("| chunk | ms/step | / floor, paired |")
    print("|---|---|---|")
    for name, ts in times.items():
        paired = statistics.median(t / f for t, f in zip(ts, floor, strict=True))
        print(f"| {name} | {statistics.median(ts) / k * 1e3:.3f} | {paired:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
