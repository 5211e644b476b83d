"""Adapter overhead: one walk step against one raw value-and-gradient (not a timed test).

For each framework, the paper's MNIST-FF net (784-100-100-100-10 tanh, linear output, mean
softmax cross-entropy) on 1000 random examples in float32, with the same weights everywhere.
In one run, interleaved repetition by repetition so that machine noise hits all alike, it times

- ``raw``: one value-and-gradient of the model written the framework's own fast way
  (PyTorch: ``autograd.grad`` of the module's loss; JAX: ``jit(value_and_grad)`` of the
  pytree; TensorFlow: a ``tf.function`` around ``GradientTape``), gradients left unflattened;
- ``loss_and_grad``: the adapter's ``problem.loss_and_grad(θ)`` (flat θ in, flat gradient out);
- ``step``: one step of the engine's pure walk step (``manifoldwalk.make_step``, default
  scheme, minimise ‖θ‖²): one loss-and-gradient plus the predictor/corrector vector algebra;
  for JAX also the same step under ``jax.jit``, for PyTorch the step of a problem built with
  ``compile=True`` (``torch.compile`` of the whole step) and, for reference only, a
  ``torch.compile``-d ``torch.func.grad_and_value`` of the model (not the baseline);

and prints the medians, their ratio to ``raw`` (the target for ``step`` is ≤ 1.10 on CPU),
and the number of repetitions. Frameworks that are not installed are reported as skipped.

    python benchmarks/adapter_overhead.py [--reps 50] [--threads N] [--frameworks torch jax]

``walk K=...`` rows are one chunk of ``walk(..., driver=Chunked(K))`` (K steps per host sync;
JAX: ``lax.while_loop``; PyTorch with ``compile=True``: K masked steps in one compiled graph;
TensorFlow with ``compile=True``: ``tf.while_loop`` in one XLA ``tf.function``)
reported per step.

``--threads N`` sets every framework's intra-op thread count (before it is imported); on a
busy machine with few cores one thread gives far steadier figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

SIZES = (784, 100, 100, 100, 10)
N_EXAMPLES = 1000
THREADS: int | None = None
"""Intra-op threads asked for with ``--threads`` (None: each framework's default)."""


def mnist_ff_weights(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Glorot-normal float32 weights ``(W (n_in, n_out), b)`` for the MNIST-FF net."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:], strict=True):
        w = rng.normal(scale=np.sqrt(2.0 / (n_in + n_out)), size=(n_in, n_out))
        layers.append((w.astype(np.float32), np.zeros(n_out, dtype=np.float32)))
    return layers


def random_data(
    seed: int = 1, shape: tuple[int, ...] = (SIZES[0],)
) -> tuple[np.ndarray, np.ndarray]:
    """1000 random inputs in [0, 1] of ``shape`` (float32; default MNIST-FF's flattened
    'images') and random labels 0–9."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(N_EXAMPLES, *shape)).astype(np.float32)
    return x, rng.integers(0, SIZES[-1], size=N_EXAMPLES).astype(np.int64)


def walk_step(problem: Any) -> tuple[Callable[[Any], Any], Any]:
    """The engine's pure step for ``problem`` (default scheme, minimise R) and its start state."""
    import manifoldwalk as mw

    scheme, direction = mw.get_scheme("default"), mw.MinimiseReg()
    state = mw.init_state(problem, direction, scheme, problem.theta0)
    return mw.make_step(problem, direction, scheme), state


def chunked_walk(problem: Any, k: int, scheme: str = "default", m: int = 1) -> Callable[[], Any]:
    """One chunk of ``walk(problem, θ0, scheme=scheme, driver=Chunked(k, m))`` (k steps, one host sync), timed from the same start each call; the
    function's ``steps`` attribute is k, so that its time is reported per step. No stop rule
    can fire (unbounded budgets)."""
    from manifoldwalk import Record, Stop
    from manifoldwalk.driver import prepare_walk

    options = dict(
        stop=Stop(max_steps=10**9, kkt_tol=0.0, stall_patience=10**9), record=Record(every=None)
    )
    prepared = prepare_walk(problem, problem.theta0, scheme=scheme, **options)
    host = prepared.host(k, steps_per_iteration=m)
    chunk = problem.compile_loop(host.loop)

    def run() -> Any:
        out = chunk(host.carry)
        return float(out.look[0])  # the host's one read per chunk

    run.steps = k
    return run


def time_interleaved(fns: dict[str, Callable[[], Any]], reps: int, warmup: int = 5):
    """Run each function ``warmup`` times, then ``reps`` rounds of one call each; per-call times.

    Each round starts one function further along (a rotation), so that no function always
    runs first after another (on this machine the call after the floor ran a few % slower).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


# --- one set-up per framework: name -> zero-argument callables to time --------------------


def torch_fns(layers, x, y) -> dict[str, Callable[[], Any]]:
    import manifoldwalk_torch
    import torch
    from torch import nn

    modules: list[nn.Module] = []
    for i, (w, b) in enumerate(layers):
        linear = nn.Linear(*w.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(w.T))
            linear.bias.copy_(torch.as_tensor(b))
        modules += [linear] + ([nn.Tanh()] if i < len(layers) - 1 else [])
    model = nn.Sequential(*modules)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    params = list(model.parameters())

    def raw():
        return torch.autograd.grad(loss_fn(model(xt), yt), params)

    problem = manifoldwalk_torch.from_model(model, loss_fn, (xt, yt))
    step, state = walk_step(problem)
    theta = problem.theta0
    # the same problem with compile=True: what walk() runs for it (compile_step hook)
    compiled_problem = manifoldwalk_torch.from_model(model, loss_fn, (xt, yt), compile=True)
    cstep = compiled_problem.compile_step(walk_step(compiled_problem)[0])
    # the fastest compiled raw value-and-gradient, for reference (not the baseline)
    craw = torch.compile(
        torch.func.grad_and_value(
            lambda p: loss_fn(torch.func.functional_call(model, p, (xt,)), yt)
        ),
        fullgraph=True,
    )
    named = {k: v.detach() for k, v in model.named_parameters()}
    box = {"eager": state, "compiled": state}

    def one_step():
        box["eager"] = step(box["eager"])

    def one_compiled_step():
        box["compiled"] = cstep(box["compiled"])

    return {
        "raw": raw,
        "loss_and_grad": lambda: problem.loss_and_grad(theta),
        "step": one_step,
        "step (compiled)": one_compiled_step,
        "walk K=4 (compiled)": chunked_walk(compiled_problem, 4),
        "raw (compiled)": lambda: craw(named),
    }


def jax_fns(layers, x, y) -> dict[str, Callable[[], Any]]:
    import jax
    import jax.numpy as jnp
    import manifoldwalk_jax

    # Without jax_enable_x64 the engine's int64 step counters become int32 with a warning
    # (harmless here: counts stay far below 2**31); keep the table readable.
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")

    params = [{"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in layers]
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def apply_fn(p, xb):
        h = xb
        for i, layer in enumerate(p):
            h = h @ layer["w"] + layer["b"]
            if i < len(p) - 1:
                h = jnp.tanh(h)
        return h

    def loss_fn(out, t):
        picked = jnp.take_along_axis(out, t[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(out, axis=-1) - picked)

    vg = jax.jit(jax.value_and_grad(lambda p: loss_fn(apply_fn(p, xj), yj)))
    problem = manifoldwalk_jax.from_apply(apply_fn, params, loss_fn, (xj, yj))
    step, state = walk_step(problem)
    jstep = jax.jit(step)
    theta = problem.theta0
    box = {"eager": state, "jit": state}

    def one_step():
        box["eager"] = jax.block_until_ready(step(box["eager"]))

    def one_jit_step():
        box["jit"] = jax.block_until_ready(jstep(box["jit"]))

    return {
        "raw": lambda: jax.block_until_ready(vg(params)),
        "loss_and_grad": lambda: jax.block_until_ready(problem.loss_and_grad(theta)),
        "step": one_step,
        "step (jit)": one_jit_step,
        "walk K=50": chunked_walk(problem, 50),
    }


def tf_fns(layers, x, y) -> dict[str, Callable[[], Any]]:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import tensorflow as tf

    if THREADS is not None:  # before TensorFlow's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import manifoldwalk_tf

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
    xt, yt = tf.constant(x), tf.constant(y)

    @tf.function
    def vg():
        with tf.GradientTape() as tape:
            loss = loss_fn(yt, model(xt, training=False))
        return loss, tape.gradient(loss, model.trainable_variables)

    problem = manifoldwalk_tf.from_model(model, loss_fn, (x, y))
    step, state = walk_step(problem)
    theta = problem.theta0
    # compile=True: the step on tf.Tensor, XLA-compiled whole (what walk() runs for it)
    compiled_problem = manifoldwalk_tf.from_model(model, loss_fn, (x, y), compile=True)
    cstep, cstate = walk_step(compiled_problem)
    cstep = compiled_problem.compile_step(cstep)
    box = {"eager": state, "compiled": cstate}

    def one_step():
        box["eager"] = step(box["eager"])

    def one_compiled_step():  # a host read of one scalar: the walk's one sync per step
        box["compiled"] = cstep(box["compiled"])
        box["compiled"].loss.numpy()

    return {
        "raw": vg,
        "loss_and_grad": lambda: problem.loss_and_grad(theta),
        "step": one_step,
        "step (compiled)": one_compiled_step,
        "walk K=50 (compiled)": chunked_walk(compiled_problem, 50),
    }


FRAMEWORKS = {
    "torch": ("torch", torch_fns),
    "jax": ("jax", jax_fns),
    "tensorflow": ("tensorflow", tf_fns),
}


def set_threads(n: int) -> None:
    """Ask every framework for ``n`` intra-op threads (before any of them is imported)."""
    global THREADS
    THREADS = n
    os.environ["OMP_NUM_THREADS"] = str(n)
    flags = f"--xla_cpu_multi_thread_eigen={'true' if n > 1 else 'false'}"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {flags}").strip()


def describe_threads(name: str) -> str:
    if name == "torch":
        import torch

        return f"torch threads {torch.get_num_threads()}"
    if name == "tensorflow":
        import tensorflow as tf

        return f"tf intra-op {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}"
    return f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one block per framework."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=50, help="timed repetitions per function")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    parser.add_argument(
        "--frameworks", nargs="+", choices=list(FRAMEWORKS), default=list(FRAMEWORKS)
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        set_threads(args.threads)
        if "torch" in args.frameworks and importlib.util.find_spec("torch") is not None:
            import torch

            torch.set_num_threads(args.threads)
    layers, (x, y) = mnist_ff_weights(), random_data()
    print(
        f"MNIST-FF {'-'.join(map(str, SIZES))} tanh, {N_EXAMPLES} random examples, float32; "
        f"{args.reps} interleaved repetitions, medians; {os.cpu_count()} CPU cores"
    )
    for name in args.frameworks:
        module, setup = FRAMEWORKS[name]
        if importlib.util.find_spec(module) is None:
            print(f"\n{name}: skipped ({module} is not installed)")
            continue
        try:
            fns = setup(layers, x, y)
        except ImportError as err:
            print(f"\n{name}: skipped ({err})")
            continue
        times = time_interleaved(fns, args.reps)
        # chunked walks run several steps per call: report them per step
        medians = {k: statistics.median(v) / getattr(fns[k], "steps", 1) for k, v in times.items()}
        raw = medians["raw"]
        print(f"\n{name} ({describe_threads(name)})")
        for key, med in medians.items():
            ratio = "" if key == "raw" else f"  ratio {med / raw:6.3f}"
            print(f"  {key:<14} {med * 1e3:8.3f} ms{ratio}   (n={len(times[key])})")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
