"""Where the same walk on PyTorch and on JAX parts, on a trained net (not a test).

The paper's Iris net (4 hidden layers of 100, float64) is trained once in PyTorch (phase 1 as
the paper trains it); JAX gets the same weights. Both walk from there with each scheme,
recording every predictor step, and the script prints the first record where R (or L) differs
by more than 1e-8 relatively, and how far apart the two final points are (the largest weight
difference). Their loss and gradient at the start agree to rounding (printed too).

    PYTHONPATH=.:adapters python benchmarks/backend_parting.py [--steps 300] [--seeds 2]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--schemes", nargs="+", default=["paper", "default", "compensated"])
    args = ap.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    import torch
    from manifoldwalk_jax.paper import nets as jnets
    from manifoldwalk_torch.paper import nets as tnets

    import manifoldwalk as mw
    from manifoldwalk._array import to_host, to_numpy
    from manifoldwalk.datasets import load_dataset
    from manifoldwalk.experiments.backend import load_backend

    torch.set_num_threads(1)
    tb, jb = load_backend("torch"), load_backend("jax")
    print(
        "| seed | scheme | ΔL, Δ∇L at the start | records | first record parted | final max Δweight |"
    )
    print("|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        ds = load_dataset("iris", seed=seed, dtype=np.dtype("float64"))
        hidden = (100, 100, 100, 100)
        model = tb.build_net("ff", (4,), 3, hidden=hidden, seed=seed, dtype="float64")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _ = tb.train(
                model, ds.x_train, ds.y_train, task="classification", epochs=100, seed=seed
            )
            apply_fn, _params = jb.build_net(
                "ff", (4,), 3, hidden=hidden, seed=seed, dtype="float64"
            )
            params = jnets.set_weights(_params, tnets.get_weights(model))
            tp = tb.make_problem(model, ds.x_train, ds.y_train, task="classification")
            jp = jb.make_problem((apply_fn, params), ds.x_train, ds.y_train, task="classification")
        starts = {id(tp): tp.theta0.clone(), id(jp): jp.theta0}  # (tp.theta0 reads the model)
        lt, gt = tp.loss_and_grad(tp.theta0)
        lj, gj = jp.loss_and_grad(jp.theta0)
        dl = abs(float(to_host(lt)[0]) - float(to_host(lj)[0]))
        dg = abs(np.linalg.norm(to_numpy(gt)) - np.linalg.norm(np.asarray(gj)))
        for scheme in args.schemes:
            runs = []
            for p in (tp, jp):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    runs.append(
                        mw.walk(p, starts[id(p)], scheme=scheme, stop=mw.Stop(max_steps=args.steps))
                    )
            rt, rj = runs
            n = min(len(rt.history["reg"]), len(rj.history["reg"]))
            both = [(rt.history[k][:n], rj.history[k][:n]) for k in ("reg", "loss")]
            apart = np.zeros(n, dtype=bool)
            for a, b in both:
                apart |= np.abs(a - b) > 1e-8 * np.maximum(np.abs(a), 1e-300)
            first = int(np.argmax(apart)) if apart.any() else None
            parted = (
                "none"
                if first is None
                else f"{first} (predictor step {int(rt.history['n_predictor'][first])})"
            )
            tp.assign(rt.theta)
            w_t = tnets.get_weights(tp.model)
            w_j = jnets.get_weights(jp.unflatten(rj.theta))
            dw = max(float(np.max(np.abs(a - b))) for a, b in zip(w_t, w_j, strict=True))
            print(
                f"| {seed} | {scheme} | {dl:.1e}, {dg:.1e} | {n} | {parted} | {dw:.1e} |",
                flush=True,
            )
            tp.assign(starts[id(tp)])


if __name__ == "__main__":
    main()
