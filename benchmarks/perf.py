"""Walk speed against its floor, per backend and net, and the batched-seeds speed-up (not a test).

For each backend and net (the paper's nets on 1000 random examples, float32) it times, in one
run, interleaved repetition by repetition (so machine noise hits all alike), and prints medians:

JAX (the compiled driver, ``walk(..., driver=Chunked(K))``):

- ``floor``: K value-and-gradient evaluations inside one jitted ``lax.while_loop`` with no walk
  logic (θ ← θ − c·∇L with a run-time c = 0, so nothing is folded away), per evaluation;
- ``walk <scheme>``: one chunk of the compiled driver (K walk steps: the step, the stop rules,
  the history and trajectory buffers), per step, for ``scheme="paper"``, the default and
  ``"compensated"``;
- ``walk default, M=m`` (``--m``): the same with ``steps_per_iteration=m`` (m masked steps per
  ``while`` iteration; take K a multiple of m, else the last iteration's masked steps count);
- ``eager driver``: the eager driver's step (the jitted step plus its per-step host look);
- ``S seeds batched``: one chunk of ``walk_batch``'s vmapped loop over S seeds, per step, and
  the speed-up over S walks one after the other (S × the single walk's step time).

PyTorch (the eager driver): ``floor`` is one eager value-and-gradient (the adapter's
``loss_and_grad``), ``walk <scheme>`` one eager step plus the driver's per-step host look.

TensorFlow (``--backends tf``, CPU only): ``floor`` is K value-and-gradient evaluations in one
XLA-compiled ``tf.while_loop``; ``walk <scheme>`` one compiled chunk of K steps
(``from_model(..., compile=True)``, ``driver=Chunked(K)``), per step.

Ratios are step / floor (targets: ≤ 1.05 on CPU for the FF nets; ≤ 1.10 on a GPU for JAX), as
the ratio of the medians and, "paired", as the median over the repetitions of the step over the
floor timed in the same round (steadier on a shared machine).
Steps per second are 1 / step time. Rows for the PyTorch compiled driver and the distributed
agreement have their marked places below (``TORCH_COMPILED_ROWS``, ``--distributed``).

    python benchmarks/perf.py [--nets ff mnist-cnv cifar10-cnv] [--backends jax torch tf]
        [--device cpu|gpu] [--threads 1] [--reps 20] [--k 50] [--m 1 4 8] [--seeds 4]
        [--out table.md | table.json] [--distributed]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "benchmarks")]

from adapter_overhead import chunked_walk, random_data, time_interleaved  # noqa: E402

NETS = {
    "ff": ("mnist-ff", "ff", (784,)),
    "mnist-cnv": ("mnist-cnv", "mnist-cnv", (28, 28, 1)),
    "cifar10-cnv": ("cifar10-cnv", "cifar10-cnv", (32, 32, 3)),
}
"""``--nets`` choices: (label, experiment-backend net name, input shape)."""

N_EXAMPLES = 1000
TIMED_SCHEMES = ("paper", "default", "compensated")


@dataclass
class Row:
    """One line of the table (times in milliseconds per step)."""

    backend: str
    net: str
    params: int
    what: str
    ms: float
    floor_ms: float | None
    reps: int
    note: str = ""
    paired: float | None = None
    """The median over the repetitions of this row's time over the floor's in the same round
    (robust to the machine's slow drifts; None where not timed interleaved with a floor)."""

    @property
    def ratio(self) -> float | None:
        """Time over the floor (ratio of the medians)."""
        return None if self.floor_ms is None else self.ms / self.floor_ms


def paired_ratios(
    times: dict[str, list[float]], per_call: dict[str, float] | None = None, floor: str = "floor"
) -> dict[str, float]:
    """For each key, the median over rounds of its time over ``times[floor]``'s in the same
    round, each first divided by its ``per_call`` count (steps per call; default 1)."""
    per_call = per_call or {}
    reference = [t / per_call.get(floor, 1) for t in times[floor]]
    return {
        key: statistics.median(
            (t / per_call.get(key, 1)) / f for t, f in zip(ts, reference, strict=True)
        )
        for key, ts in times.items()
    }


def chunk_table(times: dict[str, list[float]], k: int) -> str:
    """A markdown table of timed chunks of ``k`` steps and their floor (key ``"floor"``, of
    ``k`` evaluations): per step the median in ms and the paired ratio over the floor."""
    paired = paired_ratios(times)
    rows = [
        f"| {key} | {statistics.median(ts) / k * 1e3:.3f} | {paired[key]:.3f} |"
        for key, ts in times.items()
    ]
    return "\n".join(["| chunk | ms/step | / floor, paired |", "|---|---|---|", *rows])


# --- JAX: the compiled driver ----------------------------------------------------------------


def eager_driver_step(run: Any) -> Callable[[], None]:
    """One step of the eager driver of a prepared walk, as ``walk`` runs it: the step (told its
    branch by the last look) and the stop rules' host look (compiled together where the problem
    compiles its step, donating the state where the hook can), each call going on from the
    last."""
    from manifoldwalk._eager import copy_state, make_advance

    advance = make_advance(run.problem, run.direction, run.scheme, run.rules, True)
    box = {"s": run.state, "on": None}
    if getattr(advance, "consumes_state", False):
        box["s"] = copy_state(run.state)  # as the driver does: the start holds θ0

    def one() -> None:
        box["s"], v = advance(box["s"], box["on"])
        box["on"] = v["on"]  # as the driver does: the look tells the next step its branch

    return one


def jax_floor(p: Any, k: int) -> Callable[[], Any]:
    """The JAX floor of a ``JaxProblem``: K value-and-gradient evaluations inside one jitted
    ``lax.while_loop`` (θ ← θ − c·∇L with a run-time c = 0, so nothing is folded away), from
    the same θ0 each call; its ``steps`` attribute is K (the time is reported per evaluation)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    lg = p._loss_and_grad

    @jax.jit
    def floor_chunk(theta, c):
        def body(i_theta):
            i, th = i_theta
            _, g = lg(th, p._frozen, *p._data)
            return i + 1, th - c * g

        return lax.while_loop(lambda it: it[0] < k, body, (0, theta))[1]

    zero = jnp.zeros((), p.theta0.dtype)

    def run() -> Any:
        return floor_chunk(p.theta0, zero).block_until_ready()

    run.steps = k
    return run


def jax_rows(net: str, k: int, n_seeds: int, reps: int, ms: tuple[int, ...] = (1,)) -> list[Row]:
    """The JAX rows of one net: floor, compiled walk chunks (the default scheme also with M
    masked steps per iteration for each M in ``ms`` other than 1), eager driver, batched."""
    import jax
    from manifoldwalk_jax import paper as backend
    from manifoldwalk_jax.batch import _batched_chunk, _stack

    from manifoldwalk import Record, Stop
    from manifoldwalk.driver import prepare_walk

    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64")
    label, name, shape = NETS[net]
    problems = []
    for seed in range(max(1, n_seeds)):
        model = backend.build_net(name, shape, 10, seed=seed, dtype="float32")
        x, y = random_data(seed, shape)
        problems.append(backend.make_problem(model, x, y, task="classification"))
    p = problems[0]
    n = int(p.n_params)
    fns: dict[str, Callable[[], Any]] = {"floor": jax_floor(p, k)}
    options = dict(
        stop=Stop(max_steps=10**9, kkt_tol=0.0, stall_patience=10**9), record=Record(every=None)
    )
    for scheme in TIMED_SCHEMES:
        fns[f"walk {scheme}"] = chunked_walk(p, k, scheme)
    extra_ms = [m for m in ms if m != 1]
    for m in extra_ms:
        fns[f"walk default M={m}"] = chunked_walk(p, k, "default", m)
    fns["eager driver (per-step sync)"] = eager_driver_step(prepare_walk(p, p.theta0, **options))
    # The eager driver's own floor: the same value and gradient run its way, one jitted call
    # dispatched from Python and waited for per step (the in-loop floor above has no dispatch).
    fns["floor per call"] = lambda: jax.block_until_ready(p.loss_and_grad(p.theta0))
    if n_seeds > 1:
        runs = [prepare_walk(q, q.theta0, **options) for q in problems]
        hosts = [r.host(k) for r in runs]
        batched = _batched_chunk(p, hosts[0].loop)
        carries = _stack([h.carry for h in hosts])
        frozen = _stack([q._frozen for q in problems])
        data = _stack([q._data for q in problems])

        def batch_chunk():
            out = batched(carries, frozen, data)
            jax.block_until_ready(out.state.theta)

        fns[f"{n_seeds} seeds batched"] = batch_chunk
    times = time_interleaved(fns, reps, warmup=2)
    steps = {key: 1 if key.startswith("eager") or key == "floor per call" else k for key in times}
    per_step = {key: statistics.median(t) / steps[key] for key, t in times.items()}
    paired = paired_ratios(times, steps)
    floor = per_step["floor"] * 1e3
    over_call_floor = paired_ratios(times, floor="floor per call")["eager driver (per-step sync)"]
    rows = [
        Row(
            "jax",
            label,
            n,
            f"floor: value+grad in lax.while_loop (K={k})",
            floor,
            floor,
            reps,
            "",
            1.0,
        )
    ]
    for scheme in TIMED_SCHEMES:
        rows.append(
            Row(
                "jax",
                label,
                n,
                f"compiled walk, scheme={scheme} (K={k})",
                per_step[f"walk {scheme}"] * 1e3,
                floor,
                reps,
                paired=paired[f"walk {scheme}"],
            )
        )
    for m in extra_ms:
        rows.append(
            Row(
                "jax",
                label,
                n,
                f"compiled walk, scheme=default (K={k}, M={m} masked steps per iteration)",
                per_step[f"walk default M={m}"] * 1e3,
                floor,
                reps,
                paired=paired[f"walk default M={m}"],
            )
        )
    rows.append(
        Row(
            "jax",
            label,
            n,
            "eager driver, default (jitted step + host sync per step)",
            per_step["eager driver (per-step sync)"] * 1e3,
            floor,
            reps,
            note=f"over its own floor (one jitted value+grad call + sync per step, "
            f"{per_step['floor per call'] * 1e3:.3f} ms): {over_call_floor:.3f} paired",
            paired=paired["eager driver (per-step sync)"],
        )
    )
    if n_seeds > 1:
        single = per_step["walk default"]
        batch = per_step[f"{n_seeds} seeds batched"]
        rows.append(
            Row(
                "jax",
                label,
                n,
                f"{n_seeds} seeds batched (vmap), default, per step of all",
                batch * 1e3,
                None,  # its floor is the vmapped gradient: benchmarks/batch_seeds.py
                reps,
                note=f"speed-up over {n_seeds} walks one after another: "
                f"{n_seeds * single / batch:.2f}x",
            )
        )
    return rows


# --- PyTorch: the eager driver ---------------------------------------------------------------


def torch_rows(net: str, reps: int, device: str) -> list[Row]:
    """The eager PyTorch rows of one net: eager value+grad (the floor) and eager walk steps."""
    import torch
    from manifoldwalk_torch import paper as backend

    from manifoldwalk import Record, Stop
    from manifoldwalk.driver import prepare_walk

    label, name, shape = NETS[net]
    backend.configure(device="cuda" if device == "gpu" else "cpu", threads=torch.get_num_threads())
    model = backend.build_net(name, shape, 10, seed=0, dtype="float32")
    x, y = random_data(0, shape)
    p = backend.make_problem(model, x, y, task="classification")
    n = int(p.n_params)
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)

    def floor() -> None:
        p.loss_and_grad(p.theta0)
        sync()

    fns: dict[str, Callable[[], Any]] = {"floor": floor}
    options = dict(
        stop=Stop(max_steps=10**9, kkt_tol=0.0, stall_patience=10**9), record=Record(every=None)
    )
    for scheme in TIMED_SCHEMES:
        fns[f"walk {scheme}"] = eager_driver_step(
            prepare_walk(p, p.theta0, scheme=scheme, **options)
        )
    times = time_interleaved(fns, reps, warmup=2)
    med = {key: statistics.median(t) * 1e3 for key, t in times.items()}
    paired = paired_ratios(times)
    rows = [
        Row("torch", label, n, "floor: eager value+grad", med["floor"], med["floor"], reps, "", 1.0)
    ]
    for scheme in TIMED_SCHEMES:
        rows.append(
            Row(
                "torch",
                label,
                n,
                f"eager walk, scheme={scheme} (step + host sync)",
                med[f"walk {scheme}"],
                med["floor"],
                reps,
                paired=paired[f"walk {scheme}"],
            )
        )
    return rows


# --- place for the PyTorch compiled driver's rows ------------------------------------------
# Its author adds a function ``(net, reps, device) -> list[Row]`` here: floor = the same
# value-and-gradient run the same way (graphed for a graphed driver), walk step per step.


TORCH_K = 4
"""Steps per host sync of the compiled PyTorch chunk (unrolled in the graph: small K)."""

TORCH_LONG_K = 48
"""Steps per host sync of the long PyTorch chunk: ``TORCH_K``-step graphs called 12 times."""


def torch_compiled_rows(net: str, reps: int, device: str) -> list[Row]:
    """The compiled PyTorch rows: ``from_model(..., compile=...)`` against its own floor.

    The floor is the same loss-and-gradient (``torch.func`` through ``torch.compile``, in the
    same mode: ``"default"`` on a CPU, ``"reduce-overhead"``, i.e. CUDA graphs, on a GPU) called
    alone; the walk row is the compiled step plus the eager driver's host look.
    """
    import manifoldwalk_torch
    import torch
    from manifoldwalk_torch import paper as backend
    from manifoldwalk_torch._compile import compiled

    from manifoldwalk import Record, Stop
    from manifoldwalk.driver import prepare_walk
    from manifoldwalk.step import make_step

    label, name, shape = NETS[net]
    mode = "reduce-overhead" if device == "gpu" else "default"
    backend.configure(device="cuda" if device == "gpu" else "cpu", threads=torch.get_num_threads())
    model = backend.build_net(name, shape, 10, seed=0, dtype="float32")
    x, y = random_data(0, shape)
    eager = backend.make_problem(model, x, y, task="classification")
    dev = eager.theta0.device
    data = (torch.as_tensor(x, device=dev), torch.as_tensor(y, device=dev))
    p = manifoldwalk_torch.from_model(model, torch.nn.CrossEntropyLoss(), data, compile=mode)
    n = int(p.n_params)
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    p._trace_loss_and_grad()
    floor_fn = compiled(p._traced_loss_and_grad, mode, contextlib.nullcontext)
    theta = p.theta0
    run = prepare_walk(
        p, theta, scheme="paper", stop=Stop(max_steps=10**9), record=Record(every=None)
    )
    step = p.compile_step(make_step(p, run.direction, run.scheme))
    box = {"s": run.state}

    def floor() -> None:
        floor_fn(theta)
        sync()

    def one() -> None:
        box["s"] = step(box["s"])
        run.rules.host_look(box["s"], run.direction)

    fns = {
        "floor": floor,
        "walk": one,
        "chunk": chunked_walk(p, TORCH_K),
        "long": chunked_walk(p, TORCH_LONG_K, "default", TORCH_K),
    }
    times = time_interleaved(fns, reps, warmup=2)
    steps = {"chunk": TORCH_K, "long": TORCH_LONG_K}
    med = {key: statistics.median(t) * 1e3 / steps.get(key, 1) for key, t in times.items()}
    paired = paired_ratios(times, steps)
    what = f"torch.compile mode={mode}"
    return [
        Row(
            "torch",
            label,
            n,
            f"floor: compiled value+grad ({what})",
            med["floor"],
            med["floor"],
            reps,
            paired=1.0,
        ),
        Row(
            "torch",
            label,
            n,
            f"compiled walk, scheme=paper ({what}; + host sync)",
            med["walk"],
            med["floor"],
            reps,
            paired=paired["walk"],
        ),
        Row(
            "torch",
            label,
            n,
            f"compiled walk, default, K={TORCH_K} masked steps per sync ({what})",
            med["chunk"],
            med["floor"],
            reps,
            paired=paired["chunk"],
        ),
        Row(
            "torch",
            label,
            n,
            f"compiled walk, default, K={TORCH_LONG_K}, M={TORCH_K} steps per graph ({what})",
            med["long"],
            med["floor"],
            reps,
            paired=paired["long"],
        ),
    ]


TORCH_COMPILED_ROWS: list[Callable[[str, int, str], list[Row]]] = [torch_compiled_rows]


# --- TensorFlow: the compiled chunk (tf.while_loop in one XLA tf.function) -------------------


def tf_floor(p: Any, k: int) -> Callable[[], Any]:
    """The TensorFlow floor of a compiled ``TFProblem``: K value-and-gradient evaluations in one
    XLA-compiled ``tf.while_loop`` (θ ← θ − c·∇L with a run-time c = 0), from θ0 each call."""
    import tensorflow as tf

    @tf.function(jit_compile=True, autograph=False)
    def floor_chunk(theta: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        def body(i: tf.Tensor, th: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            _, g = p.loss_and_grad(th)
            return i + 1, th - c * g

        return tf.while_loop(lambda i, th: i < k, body, (tf.constant(0), theta))[1]

    zero = tf.constant(0.0, p.theta0.dtype)
    return lambda: floor_chunk(p.theta0, zero).numpy()


def tf_rows(net: str, k: int, reps: int, threads: int | None) -> list[Row]:
    """The TensorFlow rows of one net: the floor (K value-and-gradient evaluations in one
    XLA-compiled ``tf.while_loop``, θ ← θ − c·∇L with a run-time c = 0) and one compiled chunk
    of K walk steps per scheme (``from_model(..., compile=True)``, ``driver=Chunked(K)``)."""
    import manifoldwalk_tf
    from manifoldwalk_tf import paper as backend
    from manifoldwalk_tf.paper.training import data_loss

    label, name, shape = NETS[net]
    backend.configure(device="cpu", threads=threads)
    model = backend.build_net(name, shape, 10, seed=0, dtype="float32")
    x, y = random_data(0, shape)
    loss = lambda out, t: data_loss(out, t, "classification")  # noqa: E731
    p = manifoldwalk_tf.from_model(model, loss, (x, y), compile=True)
    n = int(p.n_params)
    fns: dict[str, Callable[[], Any]] = {"floor": tf_floor(p, k)}
    for scheme in TIMED_SCHEMES:
        fns[f"walk {scheme}"] = chunked_walk(p, k, scheme)
    times = time_interleaved(fns, reps, warmup=2)
    med = {key: statistics.median(t) * 1e3 / k for key, t in times.items()}
    paired = paired_ratios(times)
    floor = med["floor"]
    rows = [
        Row("tf", label, n, f"floor: value+grad in XLA tf.while_loop (K={k})", floor, floor, reps)
    ]
    rows[0].paired = 1.0
    for scheme in TIMED_SCHEMES:
        what = f"compiled walk, scheme={scheme} (K={k}, XLA tf.while_loop)"
        key = f"walk {scheme}"
        rows.append(Row("tf", label, n, what, med[key], floor, reps, paired=paired[key]))
    return rows


# --- the distributed agreement (benchmarks/distributed_agreement.py) ------------------------


def distributed_rows(steps: int = 150) -> list[Row]:
    """The distributed walk on 2 gloo processes against one process (agreement, not speed)."""
    from distributed_agreement import agreement

    a = agreement(steps=steps)
    note = (
        f"same steps: {a['steps_match']}, ranks bit-identical: {a['ranks_identical']}, "
        f"max |Δθ| {a['max_abs_theta_diff']:.2g} (rel {a['max_rel_theta_diff']:.2g})"
    )
    return [
        Row(
            "torch (gloo x2)",
            "4-16-3 MLP",
            0,
            "distributed walk, ms per gradient evaluation",
            a["ms_per_eval_distributed"],
            a["ms_per_eval_single"],
            1,
            note,
        )
    ]


# --- output ----------------------------------------------------------------------------------


def markdown(rows: list[Row], header: str) -> str:
    """The table as markdown."""
    lines = [
        header,
        "",
        "| backend | net | params | what | ms/step | steps/s | / floor | / floor, paired | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.3f}"
        paired = "" if r.paired is None else f"{r.paired:.3f}"
        lines.append(
            f"| {r.backend} | {r.net} | {r.params:,} | {r.what} | {r.ms:.3f} | "
            f"{1e3 / r.ms:,.0f} | {ratio} | {paired} | {r.note} |"
        )
    return "\n".join(lines)


def _machine(device: str) -> str:
    import jax

    if device == "gpu":
        names = {d.device_kind for d in jax.devices()}
        return f"{', '.join(sorted(names))}, JAX {jax.__version__}"
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), JAX {jax.__version__}"


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the benchmarks, print (and optionally write) the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", nargs="+", choices=list(NETS), default=["ff"])
    ap.add_argument(
        "--backends", nargs="+", choices=["jax", "torch", "tf"], default=["jax", "torch", "tf"]
    )
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--threads", type=int, help="intra-op threads (set before import)")
    ap.add_argument("--reps", type=int, default=20, help="interleaved repetitions")
    ap.add_argument("--k", type=int, default=50, help="steps per compiled chunk (K)")
    ap.add_argument(
        "--m", type=int, nargs="+", default=[1], help="steps per while iteration (M) to time"
    )
    ap.add_argument("--seeds", type=int, default=4, help="seeds of the batched walk (S)")
    ap.add_argument("--out", help="also write the table to this .md or .json file")
    ap.add_argument("--distributed", action="store_true", help="add the distributed agreement")
    args = ap.parse_args(argv)
    if args.threads:
        t = str(args.threads)
        eigen = "true" if args.threads > 1 else "false"
        flags = f"--xla_cpu_multi_thread_eigen={eigen}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {flags}").strip()
        os.environ["OMP_NUM_THREADS"] = t
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    rows: list[Row] = []
    for net in args.nets:
        if "jax" in args.backends:
            new = jax_rows(net, args.k, args.seeds, args.reps, tuple(args.m))
            rows += new
            print(markdown(new, f"## jax {net}"), flush=True)
        if "torch" in args.backends:
            if args.threads:
                import torch

                torch.set_num_threads(args.threads)
            rows += torch_rows(net, args.reps, args.device)
            for extra in TORCH_COMPILED_ROWS:
                rows += extra(net, args.reps, args.device)
        if "tf" in args.backends and args.device == "cpu":
            rows += tf_rows(net, args.k, args.reps, args.threads)
    if args.distributed:
        rows += distributed_rows()
    header = f"# manifoldwalk perf: {_machine(args.device)}, {N_EXAMPLES} examples, float32"
    table = markdown(rows, header)
    print("\n" + table)
    if args.out:
        out = Path(args.out)
        if out.suffix == ".json":
            data = [dict(asdict(r), ratio=r.ratio) for r in rows]
            out.write_text(json.dumps({"machine": _machine(args.device), "rows": data}, indent=1))
        else:
            out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
