"""One prepared GPU run: correctness and per-step cost of the compiled drivers (not a test).

For the paper's MNIST-FF net (784-100-100-100-10 tanh) and CIFAR10-CNV, on 1000 random
examples in float32 on the GPU, it measures, in one run, medians of per-step times:

- PyTorch: the eager value-and-gradient (the floor of the eager walk) and an eager walk; the
  ``torch.compile``-d value-and-gradient in ``"reduce-overhead"`` mode (CUDA graphs; the floor
  of the compiled walk) and a walk of a problem built with ``compile="reduce-overhead"``, with
  the eager driver and chunked (``driver=Chunked(K)``, graphs of ``--torch-m`` steps); S seeds
  through ``manifoldwalk_torch.walk_batch`` against one seed's eager walk;
- JAX: ``value_and_grad`` iterated inside a jitted ``lax.fori_loop`` (the floor of the compiled
  driver) and ``walk(..., driver=Chunked(K))`` (also with ``steps_per_iteration=M`` for each
  ``--m``); the eager driver (one jitted step per host sync) with its step donating the walk
  state, as ``walk`` runs it, and with a plain ``jax.jit`` hook, over one value-and-gradient
  call; S seeds through ``walk_batch`` (per-step time of the batch), also with the lanes
  agreeing on branches as on a CPU (``manifoldwalk_jax.batch.default_runner``);

checks, in float64 on the MNIST-FF net, that the compiled torch walk and the chunked JAX
walk take the same path as the eager engine (steps, stop, largest θ difference); and times
full Table I rows (section ``table``): ``manifoldwalk reproduce ROW --seeds 10 --device cuda
--batch-seeds`` for every row whose data ships with the packages (iris-ff, mpg-ff, mnist5k-ff,
mnist5k-cnv; fashion-ff and fashion-cnv where Debian's Fashion-MNIST files are installed),
each in a fresh process, printing each row's wall time, the total and whether it is under
15 minutes.

    python benchmarks/gpu_check.py [--steps 300] [--nets ff cifar10-cnv] [--k 100] [--m 4 8]
        [--torch-m 4] [--json out.json] [--only ... table] [--table-rows ...]
        [--table-seeds 10] [--table-backend torch] [--table-args "..."]

On a CPU at toy size (a check that the section works, not a measurement):

    python benchmarks/gpu_check.py --device cpu --only table --table-seeds 2
        --table-rows iris-ff mpg-ff --table-args "--steps 20 --epochs 2 --wd-epochs 2
        --wd-lambdas 0,1e-3"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from manifoldwalk import Chunked, Stop

DEVICE = "cuda"
"""Where the torch runs go (``--device``)."""

SHAPES = {"ff": (784,), "mnist-cnv": (28, 28, 1), "cifar10-cnv": (32, 32, 3)}

ROOT = Path(__file__).resolve().parents[1]

OFFLINE_ROWS = ("iris-ff", "mpg-ff", "mnist5k-ff", "mnist5k-cnv", "fashion-ff", "fashion-cnv")
"""The Table I rows whose data can ship with the packages (the fashion rows: Debian's files)."""

TABLE_TARGET_S = 15 * 60
"""The target for every offline row, 10 seeds, on one GPU."""


def data(net: str, n: int = 1000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs in [0, 1] shaped for ``net`` and random labels 0–9."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, *SHAPES[net])).astype(np.float32)
    return x, rng.integers(0, 10, size=n).astype(np.int64)


def sync() -> None:
    """Wait for the GPU (nothing to wait for on the CPU)."""
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def per_call(fn, reps: int = 50, warmup: int = 5) -> float:
    """Median seconds of one call of ``fn`` (which synchronises itself)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_walk_step(walk_for) -> float:
    """Seconds per step in steady state: ``walk_for(n)`` for n and 3n steps, the difference of
    their wall times over the difference of their step counts (start-up and compilation, paid
    by both, cancel)."""
    n = walk_for.steps
    walk_for(n)  # warm: the first walk compiles and fills the caches
    times, counts = [], []
    for max_steps in (n, 3 * n):
        start = time.perf_counter()
        result = walk_for(max_steps)
        times.append(time.perf_counter() - start)
        counts.append(result.n_predictor + result.n_corrector)
    return (times[1] - times[0]) / max(counts[1] - counts[0], 1)


def walker(steps: int, fn):
    """``fn(max_steps)`` tagged with the base step count for :func:`per_walk_step`."""
    fn.steps = steps
    return fn


def torch_rows(net: str, steps: int, k: int = 100, m: int = 4) -> dict[str, float]:
    """PyTorch per-step times: eager, the compiled step (host sync per step) and the compiled
    chunked walk (K steps per sync, graphs of M steps), each against its floor."""
    import manifoldwalk_torch
    import manifoldwalk_torch.paper as tx
    import torch

    import manifoldwalk as mw

    x, y = data(net)
    model = tx.build_net(net, SHAPES[net], 10, seed=0).to(DEVICE)
    xt, yt = torch.as_tensor(x).to(DEVICE), torch.as_tensor(y).to(DEVICE)
    loss_fn = torch.nn.CrossEntropyLoss()
    params = list(model.parameters())

    def raw():
        torch.autograd.grad(loss_fn(model(xt), yt), params)
        sync()

    gv = torch.compile(
        torch.func.grad_and_value(
            lambda p: loss_fn(torch.func.functional_call(model, p, (xt,)), yt)
        ),
        mode="reduce-overhead",
        fullgraph=True,
    )
    named = {k: v.detach() for k, v in model.named_parameters()}

    def raw_compiled():
        torch.compiler.cudagraph_mark_step_begin()
        gv(named)
        sync()

    eager = manifoldwalk_torch.from_model(model, loss_fn, (xt, yt))
    fast = manifoldwalk_torch.from_model(model, loss_fn, (xt, yt), compile="reduce-overhead")
    kw = {"scheme": "paper", "record": mw.Record(every=50)}
    t_eager = per_walk_step(
        walker(steps, lambda n: mw.walk(eager, eager.theta0, **kw, stop=Stop(max_steps=n)))
    )
    t_fast = per_walk_step(
        walker(steps, lambda n: mw.walk(fast, fast.theta0, **kw, stop=Stop(max_steps=n)))
    )
    chunked = {"driver": Chunked(steps_per_sync=k, steps_per_iteration=m)}
    t_chunk = per_walk_step(
        walker(steps, lambda n: mw.walk(fast, fast.theta0, **chunked, **kw, stop=Stop(max_steps=n)))
    )
    floor, floor_c = per_call(raw), per_call(raw_compiled)
    return {
        "torch eager value+grad ms": floor * 1e3,
        "torch eager walk step ms": t_eager * 1e3,
        "torch eager step / floor": t_eager / floor,
        "torch compiled (CUDA graph) value+grad ms": floor_c * 1e3,
        "torch compiled walk step ms": t_fast * 1e3,
        "torch compiled step / compiled floor": t_fast / floor_c,
        f"torch chunked walk step ms (K={k}, M={m} steps per CUDA graph)": t_chunk * 1e3,
        "torch chunked step / compiled floor": t_chunk / floor_c,
    }


def jax_rows(
    net: str, steps: int, seeds: int, k: int, ms: tuple[int, ...] = ()
) -> dict[str, float]:
    import jax
    import manifoldwalk_jax
    import manifoldwalk_jax.paper as jx

    import manifoldwalk as mw

    x, y = data(net)
    problems = [
        jx.make_problem(jx.build_net(net, SHAPES[net], 10, seed=s), x, y, task="classification")
        for s in range(seeds)
    ]
    p = problems[0]
    theta = p.theta0

    @jax.jit
    def floor_loop(t):
        def body(_, t):
            _, g = p.loss_and_grad(t)
            return t + 1e-30 * g  # depends on g: nothing can be hoisted out of the loop

        return jax.lax.fori_loop(0, k, body, t)

    floor = per_call(lambda: floor_loop(theta).block_until_ready(), reps=20) / k
    kw = {"scheme": "paper", "record": mw.Record(every=50)}
    t_walk = per_walk_step(
        walker(
            steps,
            lambda n: mw.walk(
                p, theta, **kw, stop=Stop(max_steps=n), driver=Chunked(steps_per_sync=k)
            ),
        )
    )

    # The eager driver (the default: one jitted step and one host sync per step), its
    # step donating the walk state as `walk` does, and the same net with a plain jax.jit hook
    # (no donation), both over one jitted value-and-gradient call waited for.
    vg_call = per_call(lambda: jax.block_until_ready(p.loss_and_grad(theta)))
    undonated = jx.make_problem(
        jx.build_net(net, SHAPES[net], 10, seed=0), x, y, task="classification"
    )
    undonated.compile_step = lambda step: jax.jit(step)  # the plain protocol
    t_eager = {
        name: per_walk_step(
            walker(steps, lambda n, q=q: mw.walk(q, q.theta0, **kw, stop=Stop(max_steps=n)))
        )
        for name, q in (("donating", p), ("plain", undonated))
    }

    by_m = {}
    for m in ms:  # M masked steps per while iteration (take K a multiple of M)
        t_m = per_walk_step(
            walker(
                steps,
                lambda n, m=m: mw.walk(
                    p,
                    theta,
                    **kw,
                    stop=Stop(max_steps=n),
                    driver=Chunked(steps_per_sync=k, steps_per_iteration=m),
                ),
            )
        )
        by_m[f"jax driver walk step ms, M={m}"] = t_m * 1e3
        by_m[f"jax driver step / floor, M={m}"] = t_m / floor

    def batch(n):
        return manifoldwalk_jax.walk_batch(
            problems, **kw, stop=Stop(max_steps=n), driver=Chunked(steps_per_sync=k)
        )[0]

    t_batch = per_walk_step(walker(steps, batch))
    # The same with the CPU's way of running the lanes (branches the lanes agree on, each
    # predicate read on the host) instead of the plain vmap a GPU batch uses: which pays here?
    problems = [
        jx.make_problem(jx.build_net(net, SHAPES[net], 10, seed=s), x, y, task="classification")
        for s in range(seeds)
    ]  # new problems: a compiled chunk of their own
    plain = manifoldwalk_jax.batch.default_runner
    manifoldwalk_jax.batch.default_runner = lambda platform: manifoldwalk_jax.batch._run_lanes
    try:
        t_lanes = per_walk_step(walker(steps, batch))
    finally:
        manifoldwalk_jax.batch.default_runner = plain
    return {
        "jax value+grad in fori_loop ms": floor * 1e3,
        "jax driver walk step ms": t_walk * 1e3,
        "jax driver step / floor": t_walk / floor,
        "jax value+grad call + sync ms": vg_call * 1e3,
        "jax eager driver step ms, donating": t_eager["donating"] * 1e3,
        "jax eager driver step ms, plain jit": t_eager["plain"] * 1e3,
        "jax eager driver step / call, donating": t_eager["donating"] / vg_call,
        "jax eager driver step / call, plain jit": t_eager["plain"] / vg_call,
        **by_m,
        f"jax {seeds} seeds batched, per batch step ms": t_batch * 1e3,
        "jax batched speed-up (S sequential / batch)": seeds * t_walk / t_batch,
        f"jax {seeds} seeds batched, lanes agree on branches, per batch step ms": t_lanes * 1e3,
    }


def agreement(steps: int) -> dict[str, Any]:
    """float64 MNIST-FF: compiled torch and chunked JAX walks against their eager walks."""
    import jax
    import manifoldwalk_jax.paper as jx
    import manifoldwalk_torch
    import manifoldwalk_torch.paper as tx
    import torch

    import manifoldwalk as mw

    jax.config.update("jax_enable_x64", True)
    x, y = data("ff", n=500)
    x = x.astype(np.float64)
    kw = {"stop": Stop(max_steps=steps)}
    model = tx.build_net("ff", (784,), 10, seed=0, dtype="float64").to(DEVICE)
    xt, yt = torch.as_tensor(x).to(DEVICE), torch.as_tensor(y).to(DEVICE)
    loss_fn = torch.nn.CrossEntropyLoss()
    a = mw.walk(p := manifoldwalk_torch.from_model(model, loss_fn, (xt, yt)), p.theta0, **kw)
    q = manifoldwalk_torch.from_model(model, loss_fn, (xt, yt), compile="reduce-overhead")
    b = mw.walk(q, q.theta0, **kw)
    jp = jx.make_problem(
        jx.build_net("ff", (784,), 10, seed=0, dtype="float64"), x, y, task="classification"
    )
    c = mw.walk(jp, jp.theta0, **kw)
    d = mw.walk(jp, jp.theta0, **kw, driver=Chunked(steps_per_sync=64))
    return {
        "torch eager steps": [a.n_predictor, a.n_corrector, a.stop_reason],
        "torch compiled steps": [b.n_predictor, b.n_corrector, b.stop_reason],
        "torch max |dθ|": float((a.theta - b.theta).abs().max()),
        "jax eager steps": [c.n_predictor, c.n_corrector, c.stop_reason],
        "jax chunked steps": [d.n_predictor, d.n_corrector, d.stop_reason],
        "jax max |dθ|": float(np.abs(np.asarray(c.theta) - np.asarray(d.theta)).max()),
    }


def torch_batch_rows(net: str, steps: int, seeds: int) -> dict[str, float]:
    """PyTorch ``walk_batch`` of S seeds (each step one ``vmap`` over them) against one seed's
    eager walk: per-step times and the speed-up over S walks one after another."""
    import manifoldwalk_torch
    import manifoldwalk_torch.paper as tx
    import torch

    import manifoldwalk as mw

    loss_fn = torch.nn.CrossEntropyLoss()
    problems = []
    for seed in range(seeds):
        x, y = data(net, seed=seed)
        model = tx.build_net(net, SHAPES[net], 10, seed=seed).to(DEVICE)
        xy = (torch.as_tensor(x).to(DEVICE), torch.as_tensor(y).to(DEVICE))
        problems.append(manifoldwalk_torch.from_model(model, loss_fn, xy))
    kw = {"scheme": "paper", "record": mw.Record(every=50)}
    one = problems[0]
    t_one = per_walk_step(
        walker(steps, lambda n: mw.walk(one, one.theta0, **kw, stop=Stop(max_steps=n)))
    )

    def batch(n: int) -> Any:
        results = manifoldwalk_torch.walk_batch(problems, **kw, stop=Stop(max_steps=n))
        # the batch steps until its longest walk ends
        longest = max(r.n_predictor + r.n_corrector for r in results)
        return SimpleNamespace(n_predictor=longest, n_corrector=0)

    t_batch = per_walk_step(walker(steps, batch))
    return {
        "torch eager walk step ms (one seed)": t_one * 1e3,
        f"torch walk_batch step ms (all {seeds} seeds)": t_batch * 1e3,
        "torch batch speed-up over the seeds in turn": seeds * t_one / t_batch,
    }


def offline_rows(rows: list[str]) -> tuple[list[str], dict[str, str]]:
    """The rows among ``rows`` whose data loads here, and why each other one does not."""
    from manifoldwalk.datasets import DatasetError, load_dataset
    from manifoldwalk.experiments import get_experiment

    found, missing = [], {}
    for row in rows:
        try:
            load_dataset(get_experiment(row).dataset, seed=0)
        except (DatasetError, ImportError) as err:
            missing[row] = f"{type(err).__name__}: {err}"[:300]
        else:
            found.append(row)
    return found, missing


def table_rows(
    rows: list[str], seeds: int, device: str, backend: str, extra: list[str]
) -> dict[str, Any]:
    """Wall time of ``manifoldwalk reproduce ROW --seeds S --device D --batch-seeds`` for each
    row whose data loads, each in a fresh process writing into a temporary directory; the
    total against :data:`TABLE_TARGET_S` (skipped rows and failures are reported, not timed)."""
    found, missing = offline_rows(rows)
    out: dict[str, Any] = {"skipped": missing, "rows": {}}
    env = dict(os.environ)  # the checkout's packages first, installed or not
    paths = [str(ROOT), str(ROOT / "adapters"), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    total = 0.0
    with tempfile.TemporaryDirectory(prefix="gpu_table_") as runs:
        for row in found:
            cmd = [sys.executable, "-m", "manifoldwalk", "reproduce", row, "--seeds", str(seeds)]
            cmd += ["--device", device, "--backend", backend, "--batch-seeds", "--quiet"]
            cmd += ["--out", runs, *extra]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            wall = time.perf_counter() - start
            total += wall
            lines = done.stdout.strip().splitlines()
            result: dict[str, Any] = {"wall s": wall, "command": shlex.join(cmd[1:])}
            if done.returncode == 0:
                result["table"] = [ln for ln in lines if ln.startswith(f"| {row}")]
            else:
                result["error"] = done.stderr.strip().splitlines()[-5:]
            out["rows"][row] = result
            print(f"  {row}: {wall:.1f} s (exit {done.returncode})", flush=True)
    out["total s"] = total
    out["rows timed"] = len(found)
    out[f"under {TABLE_TARGET_S // 60} minutes"] = total < TABLE_TARGET_S
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every section, printing as it goes; a failing section is reported, not fatal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--k", type=int, default=100, help="steps per host sync")
    parser.add_argument(
        "--torch-m", type=int, default=4, help="steps per CUDA graph of the PyTorch chunk"
    )
    parser.add_argument("--nets", nargs="+", default=["ff", "cifar10-cnv"])
    parser.add_argument(
        "--m", type=int, nargs="*", default=[], help="JAX steps per while iteration to time too"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=["agreement", "torch", "torch-batch", "jax", "table"],
        help="sections to run (table: full Table I rows through manifoldwalk reproduce)",
    )
    parser.add_argument(
        "--table-rows", nargs="+", default=list(OFFLINE_ROWS), help="Table I rows to time"
    )
    parser.add_argument("--table-seeds", type=int, default=10, help="seeds per row (10)")
    parser.add_argument("--table-backend", default="torch", choices=["torch", "jax"])
    parser.add_argument(
        "--table-args",
        default="",
        help="more reproduce options, e.g. a toy size: '--steps 20 --epochs 2 --wd-epochs 2'",
    )
    parser.add_argument("--agree-steps", type=int, default=150)
    parser.add_argument("--json", default=None)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = args.device
    import torch

    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu"
    out: dict[str, Any] = {"device": name, "torch": torch.__version__}
    import jax

    out["jax"] = jax.__version__
    print(out, flush=True)
    sections = []
    if "agreement" in args.only:
        sections.append(("agreement", lambda: agreement(args.agree_steps)))
    for net in args.nets:
        if "torch" in args.only:
            sections.append(
                (
                    f"{net} torch",
                    lambda net=net: torch_rows(net, args.steps, args.k, args.torch_m),
                )
            )
        if "torch-batch" in args.only:
            sections.append(
                (
                    f"{net} torch batch",
                    lambda net=net: torch_batch_rows(net, args.steps, args.seeds),
                )
            )
        if "jax" in args.only:
            sections.append(
                (
                    f"{net} jax",
                    lambda net=net: jax_rows(net, args.steps, args.seeds, args.k, tuple(args.m)),
                )
            )
    if "table" in args.only:
        sections.append(
            (
                "table",
                lambda: table_rows(
                    args.table_rows,
                    args.table_seeds,
                    DEVICE,
                    args.table_backend,
                    shlex.split(args.table_args),
                ),
            )
        )
    for name, run in sections:
        start = time.perf_counter()
        try:
            out[name] = run()
        except Exception as err:  # report and go on: one GPU run has to say everything
            import traceback

            trace = traceback.format_exc().splitlines()[-12:]
            out[name] = {"error": f"{type(err).__name__}: {err}"[:500], "trace": trace}
        out[name]["wall s"] = time.perf_counter() - start
        print(name, json.dumps(out[name], default=str), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
