"""A k-constraint walk's step against its floor, and the ways to take k group gradients (not a
test).

The paper's MNIST-FF net (784-100-100-100-10 tanh, 99,710 parameters, float32) on 1000 random
examples split into k equal groups (contiguous); the walk holds the k groups' losses fixed and
lowers ‖θ‖². Two tables, each timed interleaved repetition by repetition (so that machine noise
hits every column alike), medians:

``step`` (PyTorch), per k, two problems holding the same k losses:

- ``stacked``: one ``manifoldwalk_torch.from_model`` problem per group, ``manifoldwalk.stack``
  of them; its floor is the k problems' ``loss_and_grad(θ)``, one after the other;
- ``groups``: ``from_model(model, loss_fn, (x, y), groups=ids)`` (``jacobian="split"``); its
  floor is its own ``losses_and_jacobian(θ)`` (the same k losses and gradients, written
  straight into the (k, P) Jacobian);

and the step, one step of the k-constraint walk (``prepare_constrained``, then ``run.advance``
and its stop test): one ``losses_and_jacobian`` at the point it moves to, the Gram matrix
J Jᵀ, the predictor's or the corrector's algebra. The ratio step / floor is given as the
ratio of the medians and, "paired", as the median of the per-round ratios (target ≤ 1.10).

``pieces`` (PyTorch, the ``groups=`` problem), per k: where one predictor step's time goes
(:func:`time_pieces`).

``jacobian`` (each framework asked for), per k: ``losses_and_jacobian(θ)`` of a ``groups=``
problem taken each way (``split``: a forward and a reverse pass per group over its own
examples; ``passes``: one forward pass over every example and k reverse passes through it;
``batched``: that forward pass and one batched reverse pass) against ``separate``, the stack of
k single-group problems (the way before ``groups=``).

    python benchmarks/multi_constraint.py [--ks 2 5 10] [--reps 60] [--threads 1] \
        [--clock cpu] [--tables step pieces jacobian] [--frameworks torch jax tensorflow]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

WARMUP = 5
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]


def group_ids(n: int, k: int) -> np.ndarray:
    """k contiguous groups of n examples, as ``numpy.array_split`` cuts them (one id each)."""
    return np.concatenate([np.full(len(p), i) for i, p in enumerate(np.array_split(range(n), k))])


# --- each framework's MNIST-FF net: make(x, y, **options) -> problem ---------------------------


def torch_maker() -> Callable[..., Any]:
    """``from_model`` on the MNIST-FF net (the weights as adapter_overhead's)."""
    import manifoldwalk_torch
    import torch
    from adapter_overhead import mnist_ff_weights
    from torch import nn

    modules: list[nn.Module] = []
    layers = mnist_ff_weights()
    for i, (w, b) in enumerate(layers):
        linear = nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(w.T))
            linear.bias.copy_(torch.as_tensor(b))
        modules += [linear] + ([nn.Tanh()] if i < len(layers) - 1 else [])
    model = nn.Sequential(*modules)

    def make(x: np.ndarray, y: np.ndarray, **options: Any) -> Any:
        data = (torch.as_tensor(x), torch.as_tensor(y))
        return manifoldwalk_torch.from_model(model, nn.CrossEntropyLoss(), data, **options)

    return make


def jax_maker() -> Callable[..., Any]:
    """``from_apply`` on the MNIST-FF net."""
    import jax
    import jax.numpy as jnp
    import manifoldwalk_jax
    from adapter_overhead import mnist_ff_weights

    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    params = [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in mnist_ff_weights()]

    def apply_fn(p: Any, xb: Any) -> Any:
        h = xb
        for i, layer in enumerate(p):
            h = h @ layer["w"] + layer["b"]
            if i < len(p) - 1:
                h = jnp.tanh(h)
        return h

    def loss_fn(out: Any, t: Any) -> Any:
        picked = jnp.take_along_axis(out, t[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(out, axis=-1) - picked)

    def make(x: np.ndarray, y: np.ndarray, **options: Any) -> Any:
        return manifoldwalk_jax.from_apply(apply_fn, params, loss_fn, (x, y), **options)

    return make


def tf_maker() -> Callable[..., Any]:
    """``manifoldwalk_tf.from_model`` on the MNIST-FF net (Keras, numpy seam)."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import manifoldwalk_tf
    from adapter_overhead import SIZES, mnist_ff_weights

    layers = mnist_ff_weights()
    model = keras.Sequential(
        [keras.Input((SIZES[0],))]
        + [
            keras.layers.Dense(w.shape[1], activation="tanh" if i < len(layers) - 1 else None)
            for i, (w, _) in enumerate(layers)
        ]
    )
    for layer, (w, b) in zip(model.layers, layers, strict=True):
        layer.set_weights([w, b])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def make(x: np.ndarray, y: np.ndarray, **options: Any) -> Any:
        return manifoldwalk_tf.from_model(model, loss_fn, (x, y), **options)

    return make


MAKERS = {"torch": torch_maker, "jax": jax_maker, "tensorflow": tf_maker}


def problems(make: Callable[..., Any], k: int, jacobians: tuple[str, ...] = ("split",)):
    """The k single-group problems, their stack, and one ``groups=`` problem per way of
    taking the Jacobian, on the same 1000 examples and k contiguous groups."""
    from adapter_overhead import random_data

    import manifoldwalk as mw

    x, y = random_data()
    ids = group_ids(len(x), k)
    with warnings.catch_warnings():  # random weights: "the model looks untrained"
        warnings.simplefilter("ignore", UserWarning)
        singles = [make(x[ids == i], y[ids == i]) for i in range(k)]
        grouped = {j: make(x, y, groups=ids, jacobian=j) for j in jacobians}
    return singles, mw.stack(singles), grouped


def time_interleaved(fns: dict[str, Callable[[], Any]], reps: int, clock: Callable[[], float]):
    """``adapter_overhead.time_interleaved`` with a choice of clock: each function ``warmup``
    times, then ``reps`` rounds of one call each, the order rotating from round to round."""
    for fn in fns.values():
        for _ in range(WARMUP):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = clock()
            fns[name]()
            times[name].append(clock() - start)
    return times


def stepper(problem: Any, theta: Any) -> tuple[Callable[[], None], dict[str, Any]]:
    """One walk step of ``problem`` per call (from θ, on), and the box holding its state."""
    import manifoldwalk as mw
    from manifoldwalk.multi import prepare_constrained

    run, state = prepare_constrained(problem, theta, record=mw.Record(every=None))
    box = {"state": state}

    def step() -> None:
        s = run.advance(box["state"])
        run.reason(s)
        box["state"] = s

    return step, box


def time_steps(k: int, reps: int, clock: Callable[[], float]) -> dict[str, dict[str, Any]]:
    """Median floor and step times (seconds) of the stacked and the groups= problem for k
    groups, and the paired ratios."""
    singles, stacked, grouped = problems(torch_maker(), k)
    groups = grouped["split"]
    theta = singles[0].theta0
    step_stacked, box_stacked = stepper(stacked, theta)
    step_groups, box_groups = stepper(groups, theta)

    def floor_stacked() -> None:
        for p in singles:
            p.loss_and_grad(theta)

    fns = {
        "stacked floor": floor_stacked,
        "stacked step": step_stacked,
        "groups floor": lambda: groups.losses_and_jacobian(theta),
        "groups step": step_groups,
    }
    times = time_interleaved(fns, reps, clock)
    out = {}
    for name, box in (("stacked", box_stacked), ("groups", box_groups)):
        floor, step = times[f"{name} floor"], times[f"{name} step"]
        s = box["state"]
        out[name] = {
            "floor": statistics.median(floor),
            "step": statistics.median(step),
            "paired": statistics.median(a / b for a, b in zip(step, floor, strict=True)),
            "steps": f"{s.n_pred} predictor + {s.n_corr} corrector",
        }
    return out


def time_pieces(k: int, reps: int, clock: Callable[[], float]) -> dict[str, float]:
    """What one predictor step of the ``groups=`` problem spends where (seconds, medians over
    the predictor steps of ``reps`` steps): the k losses and gradients, the Gram product J Jᵀ,
    its host decomposition, the rest of the point's evaluation, the predictor's algebra (∇R,
    J r, the Gram solve, d = r − Jᵀμ, two inner products) and the rest of the step (the
    step-size rule, θ + η_p·d/‖d‖, the stop test). Each piece is timed by wrapping the
    engine's function for it, which adds a few microseconds to each."""
    import manifoldwalk._multi_loop as loop
    import manifoldwalk._multi_point as point

    _, _, grouped = problems(torch_maker(), k)
    problem = grouped["split"]
    spent: dict[str, float] = {}

    def timed(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            out = fn(*args, **kwargs)
            spent[name] = spent.get(name, 0.0) + clock() - start
            return out

        return run

    saved = (loop.evaluate, loop.tangent, point.gram_matrix, point.Gram)
    decompose = point.Gram.of

    class Gram(point.Gram):
        of = staticmethod(timed(decompose, "decomposition"))

    loop.evaluate, loop.tangent = timed(loop.evaluate, "evaluate"), timed(loop.tangent, "predictor")
    point.gram_matrix, point.Gram = timed(point.gram_matrix, "Gram product"), Gram
    problem.losses_and_jacobian = timed(problem.losses_and_jacobian, "losses_and_jacobian")
    try:
        step, box = stepper(problem, problem.theta0)
        for _ in range(WARMUP):
            step()
        rows: dict[str, list[float]] = {}
        for _ in range(reps):
            spent.clear()
            start = clock()
            step()
            total = clock() - start
            s = box["state"]
            if not (s.on and s.n_consec == 0 and spent.get("predictor")):
                continue  # a corrector step, or a step to a point off the level set
            inner = ("losses_and_jacobian", "Gram product", "decomposition")
            spent["evaluate, the rest"] = spent.pop("evaluate") - sum(spent[n] for n in inner)
            spent["step, the rest"] = (
                total - spent["evaluate, the rest"] - sum(spent[n] for n in (*inner, "predictor"))
            )
            spent["step"] = total
            for name, value in spent.items():
                rows.setdefault(name, []).append(value)
    finally:
        loop.evaluate, loop.tangent, point.gram_matrix, point.Gram = saved
    return {name: statistics.median(values) for name, values in rows.items()}


def time_jacobians(framework: str, k: int, reps: int, clock: Callable[[], float]):
    """Median times (seconds) of ``losses_and_jacobian`` taken each way, and of the stack of k
    single-group problems, for k groups."""
    singles, stacked, grouped = problems(MAKERS[framework](), k, ("split", "passes", "batched"))
    theta = singles[0].theta0
    ready = _ready(framework)
    fns = {f"groups {j}": _call(p.losses_and_jacobian, theta, ready) for j, p in grouped.items()}
    fns["separate (stack)"] = _call(stacked.losses_and_jacobian, theta, ready)
    times = time_interleaved(fns, reps, clock)
    return {name: statistics.median(t) for name, t in times.items()}


def _ready(framework: str) -> Callable[[Any], Any]:
    """Wait for a result where the framework runs asynchronously (JAX)."""
    if framework == "jax":
        import jax

        return jax.block_until_ready
    return lambda value: value


def _call(fn: Callable[[Any], Any], theta: Any, ready: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: ready(fn(theta))


def set_threads(n: int) -> None:
    """One thread in every framework (before any is imported; TensorFlow's when it starts)."""
    from adapter_overhead import set_threads as set_env

    set_env(n)
    import torch

    torch.set_num_threads(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: time.perf_counter; cpu: time.process_time, this process's CPU time (with "
        "--threads 1, steadier than wall time on a machine that other jobs share)",
    )
    parser.add_argument(
        "--tables",
        nargs="+",
        choices=("step", "pieces", "jacobian"),
        default=["step", "pieces", "jacobian"],
    )
    parser.add_argument(
        "--frameworks", nargs="+", choices=sorted(MAKERS), default=["torch"],
        help="the frameworks of the jacobian table (the step table is PyTorch's)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
        if "tensorflow" in args.frameworks:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    import torch

    clock = CLOCKS[args.clock]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, reps {args.reps}, "
        f"{args.clock} clock, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    if "step" in args.tables:
        print("\n| k | problem | floor (ms) | step (ms) | step / floor | paired | steps timed |")
        print("|---|---|---|---|---|---|---|")
        for k in args.ks:
            for name, r in time_steps(k, args.reps, clock).items():
                print(
                    f"| {k} | {name} | {1e3 * r['floor']:.2f} | {1e3 * r['step']:.2f} | "
                    f"{r['step'] / r['floor']:.3f} | {r['paired']:.3f} | {r['steps']} |"
                )
    if "pieces" in args.tables:
        names = (
            "losses_and_jacobian", "Gram product", "decomposition", "evaluate, the rest",
            "predictor", "step, the rest", "step",
        )  # fmt: skip
        print(
            "\n| k | " + " | ".join(f"{n} (ms)" for n in names) + " | step − losses_and_jacobian |"
        )
        print("|---" * (len(names) + 2) + "|")
        for k in args.ks:
            t = time_pieces(k, args.reps, clock)
            cells = " | ".join(f"{1e3 * t[n]:.3f}" for n in names)
            print(f"| {k} | {cells} | {1e3 * (t['step'] - t['losses_and_jacobian']):.3f} |")
    if "jacobian" in args.tables:
        print(
            "\n| framework | k | split (ms) | passes (ms) | batched (ms) | separate (ms) | "
            "batched / passes | batched / separate | split / separate |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for framework in args.frameworks:
            for k in args.ks:
                t = time_jacobians(framework, k, args.reps, clock)
                split, passes = t["groups split"], t["groups passes"]
                batched, separate = t["groups batched"], t["separate (stack)"]
                print(
                    f"| {framework} | {k} | {1e3 * split:.2f} | {1e3 * passes:.2f} | "
                    f"{1e3 * batched:.2f} | {1e3 * separate:.2f} | {batched / passes:.2f} | "
                    f"{batched / separate:.2f} | {split / separate:.2f} |"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
