"""What a seed's weight-decay sweep costs batched: ``train_batched`` against ``train`` in turn
(not a test).

The sweep of one seed trains every λ of the default list (14 values) on the full training set
and on the fit split that the validation carves (80 %): 28 runs from the seed's
initialisation, in two groups of equal training-set length. This times, in one process,
interleaved repeat by repeat (the order alternating):

- ``batched``: the two ``train_batched`` calls of the backend (one per group);
- ``sequential``: the 28 ``train`` calls, one after another.

It prints, per experiment, the medians over repeats and the median of the paired ratios, the
times scaled from ``--epochs`` to the experiment's own epochs (every epoch costs the same, so
the scaling is exact but for the first steps' warm-up), and the largest relative difference of
θ between the two ways (``max|θ_b − θ_s| / max|θ_s|`` over members). Datasets and nets are the
experiments' (``manifoldwalk.experiments.definitions``): ``iris-ff`` (float64, 500 epochs),
``mpg-ff`` (float64, 500), ``mnist5k-ff`` (float32, 200).

    python benchmarks/batched_sweep.py [--backend torch|jax] [--experiments iris-ff mpg-ff]
        [--epochs 50] [--reps 3] [--threads 1] [--lambdas 14]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import set_threads  # noqa: E402

from manifoldwalk._array import to_numpy  # noqa: E402
from manifoldwalk.datasets import load_dataset  # noqa: E402
from manifoldwalk.experiments.definitions import WD_LAMBDAS, get_experiment  # noqa: E402

VAL_FRACTION = 0.2
"""The validation share of the experiments' default configuration."""


def fit_split(n: int, seed: int) -> np.ndarray:
    """The fit indices of the seed's validation split (as the weight-decay sweep carves it)."""
    order = np.random.default_rng([seed, 20240607]).permutation(n)
    return np.sort(order[max(1, int(round(VAL_FRACTION * n))) :])


def groups(name: str, seed: int, n_lambdas: int) -> tuple[Any, list[dict[str, Any]]]:
    """The experiment and its sweep's two groups: λ's, training sets (full, fit split)."""
    spec = get_experiment(name)
    ds = load_dataset(spec.dataset, seed=seed, dtype=np.dtype(spec.dtype))
    lams = list(WD_LAMBDAS[:n_lambdas])
    out = []
    for idx in (np.arange(len(ds.x_train)), fit_split(len(ds.x_train), seed)):
        x, y = ds.x_train[idx], ds.y_train[idx]
        out.append({"x": x, "y": y, "lams": lams})
    return (spec, ds), out


def build(backend: Any, spec: Any, ds: Any, seed: int) -> Any:
    """A fresh net of the experiment, initialised from ``seed``."""
    n_out = ds.n_classes or ds.y_train.shape[1]
    return backend.build_net(
        spec.net, ds.x_train.shape[1:], n_out, hidden=spec.hidden, seed=seed, dtype=spec.dtype
    )


def run_batched(backend: Any, spec: Any, ds: Any, sweep: list, epochs: int, seed: int) -> list:
    """Both groups with ``train_batched``; returns the trained models in order."""
    trained = []
    for g in sweep:
        m = len(g["lams"])
        models = [build(backend, spec, ds, seed) for _ in range(m)]
        out, _ = backend.train_batched(
            models,
            [g["x"]] * m,
            [g["y"]] * m,
            task=spec.task,
            epochs=epochs,
            weight_decays=g["lams"],
            seeds=[seed] * m,
            reg="l2",
        )
        trained += [(model, g) for model in out]
    return trained


def run_sequential(backend: Any, spec: Any, ds: Any, sweep: list, epochs: int, seed: int) -> list:
    """Every run with ``train``, one after another; returns the trained models in order."""
    trained = []
    for g in sweep:
        for lam in g["lams"]:
            model, _ = backend.train(
                build(backend, spec, ds, seed),
                g["x"],
                g["y"],
                task=spec.task,
                epochs=epochs,
                weight_decay=lam,
                reg="l2",
                seed=seed,
            )
            trained.append((model, g))
    return trained


def theta(backend: Any, spec: Any, model: Any, g: dict[str, Any]) -> np.ndarray:
    """The model's flat parameters as numpy."""
    with warnings.catch_warnings():  # large λ leave nets "untrained": no matter here
        warnings.simplefilter("ignore")
        problem = backend.make_problem(model, g["x"], g["y"], task=spec.task)
    return np.asarray(to_numpy(problem.theta0))


def measure(backend: Any, name: str, epochs: int, reps: int, n_lambdas: int) -> None:
    """Time and compare one experiment's sweep both ways; print one row."""
    seed = 0
    (spec, ds), sweep = groups(name, seed, n_lambdas)
    members = sum(len(g["lams"]) for g in sweep)
    # warm-up (first-call costs: compilation, lazy initialisation) with one epoch each way
    run_batched(backend, spec, ds, sweep, 1, seed)
    run_sequential(backend, spec, ds, sweep, 1, seed)
    times: dict[str, list[float]] = {"batched": [], "sequential": []}
    ways = {"batched": run_batched, "sequential": run_sequential}
    last: dict[str, list] = {}
    for rep in range(reps):
        for way in ("batched", "sequential") if rep % 2 == 0 else ("sequential", "batched"):
            start = time.perf_counter()
            last[way] = ways[way](backend, spec, ds, sweep, epochs, seed)
            times[way].append(time.perf_counter() - start)
    scale = spec.wd_epochs / epochs
    worst = 0.0
    for (mb, g), (ms, _) in zip(last["batched"], last["sequential"], strict=True):
        tb, ts = theta(backend, spec, mb, g), theta(backend, spec, ms, g)
        worst = max(worst, float(np.max(np.abs(tb - ts)) / np.max(np.abs(ts))))
    ratios = [s / b for s, b in zip(times["sequential"], times["batched"], strict=True)]
    sizes = "/".join(str(len(g["x"])) for g in sweep)
    print(
        f"{name:11s} {members} runs on {sizes} examples, {epochs} epochs x{scale:g}: "
        f"batched {statistics.median(times['batched']) * scale:8.1f} s  "
        f"sequential {statistics.median(times['sequential']) * scale:8.1f} s  "
        f"speed-up {statistics.median(ratios):.2f}x (paired; {min(ratios):.2f}-{max(ratios):.2f})  "
        f"max rel. diff of theta {worst:.1e}",
        flush=True,
    )


def main() -> None:
    """Parse the options and measure each experiment."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["torch", "jax"], default="torch")
    parser.add_argument("--experiments", nargs="+", default=["iris-ff", "mpg-ff", "mnist5k-ff"])
    parser.add_argument("--epochs", type=int, default=50, help="epochs timed (then scaled)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lambdas", type=int, default=len(WD_LAMBDAS), help="λ's per group")
    args = parser.parse_args()
    set_threads(args.threads)  # before the framework is imported (XLA reads its flags once)
    backend = importlib.import_module(f"manifoldwalk_{args.backend}.paper")
    if getattr(backend, "train_batched", None) is None:
        sys.exit(f"manifoldwalk_{args.backend}.paper has no train_batched")
    if args.backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    backend.configure(threads=args.threads)
    print(f"backend {args.backend}, {args.threads} thread(s), {args.reps} repeats")
    for name in args.experiments:
        measure(backend, name, args.epochs, args.reps, args.lambdas)


if __name__ == "__main__":
    main()
