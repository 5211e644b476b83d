"""Gradient evaluations to a given reduction of R = ‖θ‖² on the paper's nets (not a timed test).

For ``iris-ff``, ``mpg-ff`` and ``fashion-ff`` (PyTorch backend, the experiment's dtype: float64
for Iris and Auto-MPG, float32 for Fashion-MNIST; one intra-op thread per process) and a few
seeds, it starts from the phase-1 net of that seed and:

1. walks with the paper's scheme (``scheme="paper"`` with the experiment's ``eta_min``,
   ``eta_c`` and ``tau``, as ``manifoldwalk reproduce --scheme paper`` runs it) for the
   experiment's full predictor budget, recording every step. From R0 (the start) and the
   lowest R it reaches on the level set, R_best, it sets the target
   R* = R0 − f·(R0 − R_best) (``--fraction f [f ...]``, default ½: half the paper's
   reduction; several fractions share the one full run) and
   counts the loss-and-gradient evaluations the paper's scheme spent until it first stood on
   the level set with R ≤ R*;
2. runs every other setting (the authors' scheme; the paper's scheme with the Newton
   corrector; the library's default; variants of the default's step rule; the
   ``"compensated"`` scheme and variants of it (drift compensation); and, with
   ``--replay-paper``, the paper's scheme again, for its test metric at the target) from the
   same start, at the same τ, with a callback that stops the walk at the first on-level point
   with R ≤ R*, and at most ``--max-factor`` times the paper's evaluations.

It prints one line per (experiment, seed, setting) and then the table: median evaluations over
the seeds, the ratio of the paper's median to the setting's (and the smallest per-seed ratio),
the largest |L − L0| at an on-level point (every on-level point has (L − L0)² ≤ τ), the largest
|L − L0| anywhere (the predictor's excursions off the level set, corrector steps included),
the same in units of the walk's level tolerance (the largest over seeds), the loss-only
evaluations (forward passes without a gradient, median over seeds; the ``landing`` settings
probe the loss before they take a gradient, see ``manifoldwalk.landing``) with the predictor
steps they refused (summed over seeds), the R reached, the test metric there and the wall
time of one run (median over seeds). "evals" counts loss-and-gradient evaluations only.

    python benchmarks/grad_evals.py [--runs runs | --train] [--experiments iris-ff mpg-ff]
        [--seeds 3] [--fraction 0.5 0.9] [--settings default paper+newton] [--jobs 2] [--csv F]
        [--json F] [--references F [F ...]] [--from-json F [F ...]]

``--references`` takes the paper's full runs (targets and its rows) from earlier ``--json``
files instead of repeating them (the costliest part: minutes per seed); ``--from-json`` prints
the table of saved results without running anything.

Phase-1 nets come from ``<runs>/<experiment>/seed-<k>/phase1.npz`` (written by
``manifoldwalk reproduce``); ``--train`` trains phase 1 instead, in a temporary directory.
Run with ``PYTHONPATH=.:adapters``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

import manifoldwalk as mw
from manifoldwalk.experiments._phase1 import run_phase1
from manifoldwalk.experiments._seed import Stage, load_data
from manifoldwalk.experiments.backend import load_backend
from manifoldwalk.experiments.config import RunConfig
from manifoldwalk.experiments.definitions import Experiment, get_experiment

EXPERIMENTS = ("iris-ff", "mpg-ff", "fashion-ff")
"""The experiments measured by default."""

REFERENCE = "paper"
"""The setting the others are measured against."""


def settings(spec: Experiment) -> dict[str, dict[str, Any]]:
    """The settings compared, as ``mw.walk`` keyword arguments, for one experiment.

    The gradient-corrector schemes get the experiment's step floor and corrector step (as the
    experiment runner passes them); the Newton schemes keep their own step sizes.

    Args:
        spec: The experiment.

    Returns:
        Setting name ↦ keyword arguments of :func:`manifoldwalk.walk` (its ``scheme``).
    """

    def newton_rule(thr: float, grow: float, shrink: float, eta_max: float) -> mw.AngleRule:
        return mw.AngleRule(thr, grow, shrink, eta_init=1e-3, eta_min=1e-8, eta_max=eta_max)

    def scheme(name: str, **overrides: Any) -> dict[str, Any]:
        return {"scheme": mw.get_scheme(name, **overrides)}

    default = mw.get_scheme("default")
    return {
        "paper": scheme("paper", eta_min=spec.eta_min, eta_c=spec.eta_c),
        "authors": scheme("authors", eta_min=spec.eta_min, eta_c=spec.eta_c),
        "paper+newton": scheme("paper", corrector="newton", eta_min=spec.eta_min),
        "default": scheme("default"),
        "default eta_max=0.1": scheme("default", eta_max=0.1),
        "default eta_max=10": scheme("default", eta_max=10.0),
        "newton 5° x1.5/x0.5": scheme("default", predictor_step=newton_rule(5.0, 1.5, 0.5, 1.0)),
        "newton 30° x2/x0.5": scheme("default", predictor_step=newton_rule(30.0, 2.0, 0.5, 1.0)),
        "compensated": scheme("compensated"),
        "compensated eta_max=1": scheme("compensated", eta_max=1.0),
        "compensated 30° eta_max=0.1": scheme(
            "compensated", predictor_step=newton_rule(30.0, 1.5, 0.5, 0.1)
        ),
        "default, own tolerance": {**scheme("default"), "tolerance": None},
        "compensated, own tolerance": {**scheme("compensated"), "tolerance": None},
        "default, cap 8": scheme("default", max_excursion=8),
        "compensated, cap 8": scheme("compensated", max_excursion=8),
        "default, own tolerance, cap 8": {
            **scheme("default", max_excursion=8),
            "tolerance": None,
        },
        "compensated, own tolerance, cap 8": {
            **scheme("compensated", max_excursion=8),
            "tolerance": None,
        },
        "default, landing 8": {**scheme("default", landing=8), "tolerance": None},
        "compensated, landing 8": {**scheme("compensated", landing=8), "tolerance": None},
        "default, landing 1000": {**scheme("default", landing=1000), "tolerance": None},
        "compensated, landing 1000": {**scheme("compensated", landing=1000), "tolerance": None},
        "default + drift": {
            "scheme": default.replace(predictor=mw.DriftCompensated(default.predictor, gain=0.5))
        },
    }


def start_point(name: str, seed: int, runs: str | None) -> tuple[Any, Any, Any, Experiment]:
    """The problem, θ0 (phase 1's net), the dataset and the experiment for one seed.

    Args:
        name: The experiment.
        seed: The seed (of the data split or subset and of the net's initialisation).
        runs: The output root of ``manifoldwalk reproduce``; None trains phase 1 in a
            temporary directory.

    Returns:
        ``(problem, theta0, dataset, experiment)``.

    Raises:
        FileNotFoundError: ``runs`` has no ``phase1.npz`` for this seed.
        ValueError: The saved θ does not fit the experiment's net.
    """
    config = RunConfig(experiment=name)
    spec = config.spec
    backend = load_backend("torch")
    backend.configure(device="cpu", threads=1)
    ds = load_data(config, spec, seed)
    stage = Stage(False, True)
    if runs is None:
        with tempfile.TemporaryDirectory() as tmp:
            problem, theta0, _ = run_phase1(backend, spec, ds, seed, Path(tmp), stage)
        return problem, theta0, ds, spec
    d = Path(runs) / name / f"seed-{seed:03d}"
    path = d / "phase1.npz"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `manifoldwalk reproduce {name} --out {runs}` first, or pass "
            "--train to train phase 1 here."
        )
    with np.load(path, allow_pickle=False) as f:
        n_saved = f["theta"].shape[0]
    problem, theta0, _ = run_phase1(backend, spec, ds, seed, d, stage)
    if n_saved != problem.n_params:
        raise ValueError(
            f"{path} holds {n_saved} parameters but the {name} net has {problem.n_params}: "
            "that directory was made with other options."
        )
    return problem, theta0, ds, spec


def evals_to_target(history: dict[str, np.ndarray], r_star: float) -> int | None:
    """Evaluations spent at the first recorded (on-level) point with R ≤ ``r_star``.

    Args:
        history: A walk's history recorded every predictor step.
        r_star: The target.

    Returns:
        The ``n_grad_evals`` of that point, or None if no point reached it.
    """
    hit = np.flatnonzero(history["reg"] <= r_star)
    return int(history["n_grad_evals"][hit[0]]) if hit.size else None


def test_metric(problem: Any, theta: Any, ds: Any, spec: Experiment) -> float:
    """The experiment's test metric (accuracy or MSE) at ``theta``."""
    return float(problem.evaluate(theta, ds.x_test, ds.y_test, task=spec.task)[spec.metric])


def _reference_run(
    problem: Any,
    theta0: Any,
    ds: Any,
    spec: Experiment,
    name: str,
    seed: int,
    fractions: list[float],
    budget: int | None,
    replay_reference: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The paper's full run: its targets for each fraction and (unless it is to be replayed)
    its own rows, read off the run (see :func:`run_seed`)."""
    stamps: list[float] = []  # the time of every history record of the paper's full run
    start = time.perf_counter()
    max_steps = spec.max_steps if budget is None else budget
    ref = mw.walk(
        problem,
        theta0,
        **settings(spec)[REFERENCE],
        tolerance=mw.Tolerance(tau=spec.tau),
        stop=mw.Stop(max_steps=max_steps),
        record=mw.Record(every=1, callback=lambda row: stamps.append(time.perf_counter() - start)),
    )
    ref_time = time.perf_counter() - start
    h = ref.history
    r0 = float(h["reg"][0])
    r_best = float(np.min(h["reg"]))
    start_metric = test_metric(problem, theta0, ds, spec)
    references, rows = [], []
    for fraction in fractions:
        r_star = max(r0 - fraction * (r0 - r_best), r_best)  # f = 1: R_best, not a rounding below
        ref_evals = evals_to_target(h, r_star)
        references.append(
            {
                "experiment": name,
                "seed": seed,
                "fraction": fraction,
                "R0": r0,
                "R_best": r_best,
                "R_star": r_star,
                "evals": ref_evals,
                "full_evals": ref.n_grad_evals,
                "full_time_s": ref_time,
                "stop_reason": ref.stop_reason,
                "test_metric_start": start_metric,
            }
        )
        hit = int(np.flatnonzero(h["reg"] <= r_star)[0])
        last = hit == len(h["reg"]) - 1
        if not replay_reference:  # the paper's row, read off its full run
            rows.append(
                {
                    "experiment": name,
                    "seed": seed,
                    "fraction": fraction,
                    "setting": REFERENCE,
                    "reached": True,
                    "evals": ref_evals,
                    "n_predictor": int(h["n_predictor"][hit]),
                    "n_corrector": int(h["n_corrector"][hit]),
                    "reg": float(h["reg"][hit]),
                    "dev_on_level": float(np.max(h["deviation"][: hit + 1])),
                    "excursion": float(ref.max_deviation),  # whole run: an upper bound
                    "test_metric": test_metric(problem, ref.theta, ds, spec) if last else math.nan,
                    "time_s": stamps[hit] if hit < len(stamps) else ref_time,
                    "stop_reason": "callback",
                }
            )
    return references, rows


def run_seed(
    name: str,
    seed: int,
    runs: str | None,
    fractions: list[float],
    chosen: list[str],
    max_factor: float,
    budget: int | None = None,
    replay_reference: bool = False,
    saved: dict[tuple[str, int, float], tuple[dict, dict]] | None = None,
) -> dict[str, Any]:
    """Measure every chosen setting on one seed of one experiment, for every target fraction.

    Args:
        name: The experiment.
        seed: The seed.
        runs: The run-directory root (None: train phase 1).
        fractions: The shares f of the paper's reduction of R that set the targets.
        chosen: The settings to run (the reference is always run first).
        max_factor: Each setting may spend at most this many times the paper's evaluations.
        budget: The paper's predictor-step budget (None: the experiment's).
        replay_reference: Run the paper's scheme again to each target (for its test metric
            there and its own time and excursion); otherwise its row is read off the full
            run (time from the history's time stamps, the excursion of the whole run, the test
            metric only where the target is the run's last point).
        saved: (experiment, seed, fraction) ↦ (reference, paper's row) from an earlier run's
            ``--json`` (``--references``): the paper's full run is not repeated.

    Returns:
        ``{"references": [...], "rows": [...]}``: the paper's full run's figures for each
        fraction, and one row per (fraction, setting).
    """
    problem, theta0, ds, spec = start_point(name, seed, runs)
    table = settings(spec)
    if saved is None:
        references, rows = _reference_run(
            problem, theta0, ds, spec, name, seed, fractions, budget, replay_reference
        )
    else:  # the paper's figures from an earlier run of this benchmark
        references = [saved[(name, seed, f)][0] for f in fractions]
        rows = [saved[(name, seed, f)][1] for f in fractions]
    for ref in references:
        fraction, r_star = ref["fraction"], ref["R_star"]
        cap = max(2, int(math.ceil(max_factor * ref["evals"])))
        todo = [s for s in chosen if s != REFERENCE]
        for setting in [REFERENCE] + todo if replay_reference else todo:
            start = time.perf_counter()
            res = mw.walk(
                problem,
                theta0,
                **{"tolerance": mw.Tolerance(tau=spec.tau)} | table[setting],
                stop=mw.Stop(max_steps=10**9, max_total_steps=cap - 1),
                record=mw.Record(every=1, callback=lambda row, r_star=r_star: row["reg"] <= r_star),
            )
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "experiment": name,
                    "seed": seed,
                    "fraction": fraction,
                    "setting": setting,
                    "reached": res.stop_reason == "callback",
                    "evals": res.n_grad_evals,
                    "n_predictor": res.n_predictor,
                    "n_corrector": res.n_corrector,
                    "reg": res.reg,
                    "dev_on_level": float(np.max(res.history["deviation"])),
                    "excursion": float(res.max_deviation),
                    "tolerance": float(res.tolerance),
                    "rel_dev": float(res.max_relative_deviation),
                    "test_metric": test_metric(problem, res.theta, ds, spec),
                    "time_s": elapsed,
                    "stop_reason": res.stop_reason,
                    "loss_evals": int(getattr(res.state.predictor, "n_loss", 0)),
                    "refused": int(getattr(res.state.predictor, "n_refused", 0)),
                    "probe_dev": float(getattr(res.state.predictor, "probe_dev", 0.0)),
                }
            )
    return {"references": references, "rows": rows}


def load_references(paths: list[str]) -> dict[tuple[str, int, float], tuple[dict, dict]]:
    """The paper's references and rows saved by earlier ``--json`` runs.

    Returns:
        (experiment, seed, fraction) ↦ (reference, the paper's row).

    Raises:
        ValueError: a file holds a reference without the paper's row (a ``--replay-paper``
            run keeps the row, too; any run does).
    """
    out = {}
    for path in paths:
        for result in json.loads(Path(path).read_text()):
            for ref in result["references"]:
                key = (ref["experiment"], ref["seed"], ref["fraction"])
                row = [
                    r
                    for r in result["rows"]
                    if r["setting"] == REFERENCE and r["fraction"] == ref["fraction"]
                ]
                if not row:
                    raise ValueError(f"{path}: no {REFERENCE!r} row for {key}")
                out[key] = (ref, row[0])
    return out


def _job(args: tuple) -> dict[str, Any]:
    out = run_seed(*args)
    for ref in out["references"]:
        print(
            f"{ref['experiment']} seed {ref['seed']}: paper's full run {ref['full_evals']} evals "
            f"({ref['stop_reason']}, {ref['full_time_s']:.1f} s), R {ref['R0']:.4g} → "
            f"{ref['R_best']:.4g}; fraction {ref['fraction']:g}: R* = {ref['R_star']:.4g} after "
            f"{ref['evals']} evals",
            flush=True,
        )
        for r in out["rows"]:
            if r["fraction"] != ref["fraction"]:
                continue
            print(
                f"  {r['setting']:<22} evals {r['evals']:>6} ({r['n_predictor']} pred, "
                f"{r['n_corrector']} corr) {'reached' if r['reached'] else r['stop_reason']:<15} "
                f"R {r['reg']:.5g}  max|L-L0| on {r['dev_on_level']:.2e} "
                f"any {r['excursion']:.2e} ({r['excursion'] / r.get('tolerance', 1e-5):.3g} tol) "
                f"loss-only {r.get('loss_evals', 0)} refused {r.get('refused', 0)} "
                f"probes {r.get('probe_dev', 0):.2e}  test {r['test_metric']:.4g}  "
                f"{r['time_s']:.2f} s",
                flush=True,
            )
    return out


def _median_known(values: Any) -> float:
    """The median of the values that are not NaN (NaN if none is)."""
    known = [v for v in values if not math.isnan(v)]
    return statistics.median(known) if known else math.nan


def _fmt(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.4g}"


def _ratio(line: dict[str, Any]) -> str:
    """The ratio column; none where a seed missed the target (its count is only a bound)."""
    if line["reached"] < line["seeds"]:
        return "– (target missed)"
    return f"{line['ratio']:.1f}× ({line['min_ratio']:.1f}×)"


def summarise(results: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """One summary line per (experiment, fraction, setting): medians over seeds and ratios.

    A setting that did not reach the target on a seed counts with the evaluations it was
    allowed (a lower bound), and ``reached`` says on how many seeds it did.

    Args:
        results: :func:`run_seed` outputs.
        order: The settings in the order to show.

    Returns:
        Dicts with the table's columns.
    """
    refs = [ref for r in results for ref in r["references"]]
    rows = [row for r in results for row in r["rows"]]
    lines = []
    for name, fraction in dict.fromkeys((x["experiment"], x["fraction"]) for x in refs):
        paper = {
            x["seed"]: x["evals"]
            for x in refs
            if x["experiment"] == name and x["fraction"] == fraction
        }
        paper_median = statistics.median(paper.values())
        for setting in order:
            mine = [
                row
                for row in rows
                if (row["experiment"], row["fraction"], row["setting"]) == (name, fraction, setting)
            ]
            if not mine:
                continue
            evals = [row["evals"] for row in mine]
            lines.append(
                {
                    "experiment": name,
                    "fraction": fraction,
                    "setting": setting,
                    "seeds": len(mine),
                    "reached": sum(row["reached"] for row in mine),
                    "median_evals": statistics.median(evals),
                    "ratio": paper_median / statistics.median(evals),
                    "min_ratio": min(paper[row["seed"]] / row["evals"] for row in mine),
                    "dev_on_level": max(row["dev_on_level"] for row in mine),
                    "excursion": max(row["excursion"] for row in mine),
                    "excursion_tol": max(
                        row["excursion"] / row.get("tolerance", math.sqrt(1e-10)) for row in mine
                    ),
                    "median_loss_evals": statistics.median(
                        row.get("loss_evals", 0) for row in mine
                    ),
                    "refused": sum(row.get("refused", 0) for row in mine),
                    "reg": statistics.median(row["reg"] for row in mine),
                    "test_metric": _median_known(row["test_metric"] for row in mine),
                    "time_s": statistics.median(row["time_s"] for row in mine),
                }
            )
    return lines


def markdown(lines: list[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table, preceded by each experiment's targets."""
    refs = [ref for r in results for ref in r["references"]]
    out = []
    for name, fraction in dict.fromkeys((x["experiment"], x["fraction"]) for x in refs):
        mine = [x for x in refs if x["experiment"] == name and x["fraction"] == fraction]
        out.append(
            f"- {name}, fraction {fraction:g}: R0 {statistics.median(x['R0'] for x in mine):.4g}, "
            f"the paper's full budget reaches {statistics.median(x['R_best'] for x in mine):.4g}, "
            f"target R* {statistics.median(x['R_star'] for x in mine):.4g} (medians over "
            f"{len(mine)} seeds); test metric at the start "
            f"{statistics.median(x['test_metric_start'] for x in mine):.4g}; the paper's full "
            f"run: {statistics.median(x['full_evals'] for x in mine):.0f} evals, "
            f"{statistics.median(x['full_time_s'] for x in mine):.0f} s"
        )
    out.append("")
    out.append(
        "| experiment | f | setting | reached | median evals | ratio to paper (worst seed) | "
        "max on-level abs(L−L0) | max abs(L−L0) anywhere | in tolerances | loss-only evals "
        "(refused) | R reached | test metric | time s |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ln in lines:
        out.append(
            f"| {ln['experiment']} | {ln['fraction']:g} | {ln['setting']} | "
            f"{ln['reached']}/{ln['seeds']} | {ln['median_evals']:,.0f} | "
            f"{_ratio(ln)} | {ln['dev_on_level']:.1e} | "
            f"{ln['excursion']:.1e} | {ln['excursion_tol']:.3g} | "
            f"{ln['median_loss_evals']:,.0f} ({ln['refused']}) | {ln['reg']:.4g} | "
            f"{_fmt(ln['test_metric'])} | "
            f"{ln['time_s']:.2f} |"
        )
    return "\n".join(out)


def _run_all(jobs: list[tuple], n_workers: int, json_path: str | None) -> list[dict[str, Any]]:
    """Run the jobs (the costliest experiments first), saving results as they come in."""
    cost = {"fashion-ff": 0, "mpg-ff": 1}
    ordered = sorted(jobs, key=lambda j: cost.get(j[0], 2))
    results: list[dict[str, Any]] = []

    def keep(out: dict[str, Any]) -> None:
        results.append(out)
        if json_path:
            Path(json_path).write_text(json.dumps(results, indent=1))

    if n_workers > 1:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            for fut in as_completed([pool.submit(_job, j) for j in ordered]):
                keep(fut.result())
    else:
        for j in ordered:
            keep(_job(j))
    return results


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run every (experiment, seed) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--runs", default="runs", help="root of the run directories")
    parser.add_argument("--train", action="store_true", help="train phase 1 instead of loading")
    parser.add_argument(
        "--fraction",
        type=float,
        nargs="+",
        default=[0.5],
        help="shares of the paper's reduction of R that set the targets (default 0.5)",
    )
    parser.add_argument("--settings", nargs="+", help="settings to run (default: all)")
    parser.add_argument(
        "--max-factor",
        type=float,
        default=1.0,
        help="a setting may spend at most this many times the paper's evaluations (default 1)",
    )
    parser.add_argument(
        "--budget", type=int, help="the paper's predictor-step budget (default: the experiment's)"
    )
    parser.add_argument(
        "--replay-paper",
        action="store_true",
        help="run the paper's scheme again to each target (test metric and excursion there)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="(experiment, seed) pairs at once")
    parser.add_argument("--csv", help="also write the per-seed rows to this CSV file")
    parser.add_argument(
        "--json", help="write every seed's results to this JSON file as they finish"
    )
    parser.add_argument(
        "--from-json", nargs="+", help="print the table from saved --json files, running nothing"
    )
    parser.add_argument(
        "--references",
        nargs="+",
        help="take the paper's full runs (targets and its rows) from saved --json files instead "
        "of repeating them",
    )
    args = parser.parse_args(argv)
    saved = load_references(args.references) if args.references else None
    if saved is not None and args.replay_paper:
        parser.error("--references and --replay-paper exclude each other")
    for f in args.fraction:
        if not 0.0 < f <= 1.0:
            parser.error(f"--fraction must lie in (0, 1], got {f}")
    names = [get_experiment(n).name for n in args.experiments]
    known = list(settings(get_experiment(names[0])))
    chosen = args.settings or known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {known}")
    runs = None if args.train else args.runs
    jobs = [
        (n, s, runs, list(args.fraction), chosen, args.max_factor, args.budget, args.replay_paper)
        + (saved,)
        for n in names
        for s in range(args.seeds)
    ]
    if saved is not None:
        missing = sorted({(n, s, f) for n, s, _, fs, *_ in jobs for f in fs} - set(saved))
        if missing:
            parser.error(f"--references has no paper run for {missing[:3]}...")
    if args.from_json:
        results = [r for path in args.from_json for r in json.loads(Path(path).read_text())]
    else:
        results = _run_all(jobs, args.jobs, args.json)
    rank = {n: i for i, n in enumerate(names)}
    results = [r for r in results if r["references"][0]["experiment"] in rank]
    results.sort(key=lambda r: (rank[r["references"][0]["experiment"]], r["references"][0]["seed"]))
    fractions = sorted({x["fraction"] for r in results for x in r["references"]})
    n_seeds = len({(x["experiment"], x["seed"]) for r in results for x in r["references"]})
    order = [REFERENCE] + [s for s in chosen if s != REFERENCE]
    print()
    print(
        f"targets: fractions {', '.join(f'{f:g}' for f in fractions)} of the paper's "
        f"reduction of R; evaluations capped at {args.max_factor:g}× the paper's; "
        f"{n_seeds} (experiment, seed) pairs; PyTorch CPU, 1 thread per process"
    )
    print(markdown(summarise(results, order), results))
    if args.csv:
        rows = [row for r in results for row in r["rows"]]
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    sys.exit(main())
