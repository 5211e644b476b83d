"""Hold every class's training loss fixed and lower R, against the single-constraint walk.

For each seed: the experiment's data split and phase-1 net (PyTorch backend, the paper's
settings), then two walks from the same θ0 with the default scheme and the same step budget:

* ``single``: the paper's walk, {θ : L(θ) = L(θ0)} with L the mean training loss;
* ``per-class``: {θ : L_c(θ) = L_c(θ0) for every class c}, L_c the mean loss over the training
  examples of class c (``manifoldwalk.stack`` of one problem per class,
  ``manifoldwalk.walk_constrained``).

It prints, per seed and walk, R at the end (and its drop from R(θ0)), the test metric, the test
accuracy per class, the largest relative change of any class's training loss, the stop reason
and the steps taken, then the means over seeds.

    PYTHONPATH=.:adapters python benchmarks/per_class_constraints.py --experiment iris-ff \
        --seeds 5 --steps 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import manifoldwalk as mw
from manifoldwalk.datasets import load_dataset
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.definitions import get_experiment


def per_class_accuracy(problem, theta, x, y, n_classes: int) -> list[float]:
    """Test accuracy on the examples of each class (NaN where a class has none)."""
    out = []
    for c in range(n_classes):
        mask = y == c
        out.append(
            problem.evaluate(theta, x[mask], y[mask])["accuracy"] if mask.any() else float("nan")
        )
    return out


def class_losses(problems, theta) -> np.ndarray:
    return np.array([float(p.loss(theta)) for p in problems])


def run_seed(exp, backend, seed: int, steps: int, n_train: int | None) -> list[dict]:
    data = load_dataset(exp.dataset, seed=seed, n_train=n_train, dtype=np.dtype(exp.dtype))
    model = backend.build_net(
        exp.net,
        data.x_train.shape[1:],
        data.n_classes,
        hidden=exp.hidden,
        seed=seed,
        dtype=exp.dtype,
    )
    model, _ = backend.train(
        model, data.x_train, data.y_train, task=exp.task, epochs=exp.phase1_epochs, seed=seed
    )
    full = backend.make_problem(model, data.x_train, data.y_train, task=exp.task)
    theta0 = full.theta0
    classes = [
        backend.make_problem(
            model, data.x_train[data.y_train == c], data.y_train[data.y_train == c], task=exp.task
        )
        for c in range(data.n_classes)
    ]
    stacked = mw.stack(classes)
    losses0 = class_losses(classes, theta0)
    reg0 = float(full.reg(theta0))
    stop = mw.Stop(max_steps=steps)
    rows = []
    for name in ("single", "per-class"):
        start = time.perf_counter()
        if name == "single":
            result = mw.walk(full, theta0, stop=stop, record=mw.Record(every=steps))
        else:
            result = mw.walk_constrained(stacked, theta0, stop=stop, record=mw.Record(every=steps))
        seconds = time.perf_counter() - start
        theta = result.theta
        test = full.evaluate(theta, data.x_test, data.y_test, task=exp.task)
        drift = np.max(np.abs(class_losses(classes, theta) - losses0) / np.abs(losses0))
        rows.append(
            dict(
                seed=seed,
                walk=name,
                reg0=reg0,
                reg=float(full.reg(theta)),
                test=test["accuracy"],
                per_class=per_class_accuracy(full, theta, data.x_test, data.y_test, data.n_classes),
                class_drift=float(drift),
                stop=result.stop_reason,
                steps=int(result.n_predictor),
                seconds=seconds,
            )
        )
    test0 = full.evaluate(theta0, data.x_test, data.y_test, task=exp.task)["accuracy"]
    for r in rows:
        r["test0"] = test0
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="iris-ff")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--n-train", type=int, default=None)
    args = parser.parse_args()
    exp = get_experiment(args.experiment)
    if exp.task != "classification":
        parser.error("per-class constraints need a classification experiment")
    backend = load_backend("torch")
    backend.configure(device="cpu", threads=1)
    rows = []
    print(
        "| seed | walk | R(θ0) → R | test acc θ0 → end | per-class test acc | "
        "max class-loss change | stop | steps | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        for r in run_seed(exp, backend, seed, args.steps, args.n_train):
            rows.append(r)
            per = ", ".join(f"{a:.2f}" for a in r["per_class"])
            print(
                f"| {r['seed']} | {r['walk']} | {r['reg0']:.1f} → {r['reg']:.1f} | "
                f"{r['test0']:.4f} → {r['test']:.4f} | {per} | {r['class_drift']:.1e} | "
                f"{r['stop']} | {r['steps']} | {r['seconds']:.1f} |",
                flush=True,
            )
    print()
    print("| walk | mean R drop (%) | mean test acc | mean max class-loss change |")
    print("|---|---|---|---|")
    for name in ("single", "per-class"):
        sel = [r for r in rows if r["walk"] == name]
        drop = np.mean([100 * (1 - r["reg"] / r["reg0"]) for r in sel])
        print(
            f"| {name} | {drop:.1f} | {np.mean([r['test'] for r in sel]):.4f} | "
            f"{np.mean([r['class_drift'] for r in sel]):.1e} |"
        )


if __name__ == "__main__":
    main()
