"""The studies' subcommands of the ``manifoldwalk`` command: ``connect`` and ``ensemble``.

:func:`add_study_commands` adds them to the command's parser; each imports its study when it
runs, so building the parser needs no framework.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

STUDY_LINES = (
    ("connect", "walk between independently trained nets on one level set (connectivity)"),
    ("ensemble", "random walks on one level set: R, test metric, sharpness vs −∇R and WD"),
)
"""The studies as ``manifoldwalk list`` prints them: command and one line."""


def _floats(text: str) -> tuple[float, ...]:
    """Parse a comma-separated list of numbers (empty: none)."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def _interrupted(command: str, out: str) -> int:
    print(
        f"manifoldwalk {command}: interrupted; the work done so far is kept in {out}; rerun "
        "the same command to resume",
        file=sys.stderr,
    )
    return 130


def _connect(args: argparse.Namespace) -> int:
    from manifoldwalk.studies.connectivity import REACHED, ConnectConfig, run_connectivity

    config = ConnectConfig(
        experiment=args.experiment,
        out=args.out,
        nets=args.nets,
        steps=args.steps,
        level=args.level,
        scheme=args.scheme,
        target_tol=args.target_tol,
        line_points=args.line_points,
        path_every=args.path_every,
        **_common(args),
    )
    try:
        summary = run_connectivity(config, show_progress=not args.quiet)
    except KeyboardInterrupt:
        return _interrupted("connect", args.out)
    print(f"{summary['experiment']}: {len(summary['nets'])} nets at L = {summary['level']:.6g}")
    print("pair   stop reason      remaining  path barrier  line barrier  gap barrier")
    for p in summary["pairs"]:
        if p["stop_reason"] == "skipped":
            print(f"{p['i']}→{p['j']}    skipped: {p['message']}")
            continue
        print(
            f"{p['i']}→{p['j']}    {p['stop_reason']:15s}  {p['remaining']:9.3g}  "
            f"{p['path_barrier']:12.3g}  {p['line_barrier']:12.3g}  {p['gap_barrier']:11.3g}"
        )
    o = summary["overview"]
    if o["pairs"]:
        print(
            f"{o['reached']} of {o['pairs']} walks ended within {REACHED:g} of the distance; "
            f"largest barrier of a walk's path (closed by the straight gap) "
            f"{o['walk_barrier_max']:.3g}, of the straight lines {o['line_barrier_min']:.3g} "
            f"or more (median {o['line_barrier_median']:.3g})"
        )
    print(f"run directory: {config.directory}")
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from manifoldwalk.studies.ensembles import EnsembleConfig, run_ensemble

    config = EnsembleConfig(
        experiment=args.experiment,
        out=args.out,
        walks=args.walks,
        steps=args.steps,
        eta=args.eta,
        seed=args.seed,
        reg_steps=args.reg_steps,
        wd_lambdas=args.wd_lambdas,
        wd_epochs=args.wd_epochs,
        sharpness=args.sharpness,
        scheme=args.scheme,
        **_common(args),
    )
    try:
        summary = run_ensemble(config, show_progress=not args.quiet)
    except KeyboardInterrupt:
        return _interrupted("ensemble", args.out)
    columns = [q for q in ("reg", "test_loss", "test_metric", "sharpness", "distance")]
    columns = [q for q in columns if q in summary["points"][0]]
    print(f"{summary['experiment']}: level L = {summary['level']:.6g}")
    print(f"{'point':14s}" + "".join(f"{q:>13s}" for q in columns))
    for p in summary["points"]:
        print(f"{p['label']:14s}" + "".join(f"{p[q]:13.5g}" for q in columns))
    for q in columns:
        s = summary["statistics"][q]
        print(
            f"random walks' {q}: {s['mean']:.5g} ± {s['std']:.2g} ({s['min']:.5g} … {s['max']:.5g})"
        )
    print(f"run directory: {config.directory}")
    return 0


def _common(args: argparse.Namespace) -> dict[str, Any]:
    """The options every study has, from the parsed arguments."""
    return {
        "phase1_epochs": args.epochs,
        "dtype": args.dtype,
        "n_train": args.n_train,
        "data_dir": args.data_dir,
        "backend": args.backend,
        "device": args.device,
    }


def _add_common(parser: argparse.ArgumentParser) -> None:
    """The arguments every study has."""
    from manifoldwalk.experiments.backend import BACKENDS
    from manifoldwalk.experiments.definitions import EXPERIMENTS
    from manifoldwalk.studies._bench import STUDY_SCHEMES

    parser.add_argument(
        "experiment",
        choices=list(EXPERIMENTS),
        metavar="EXPERIMENT",
        help=f"one of: {', '.join(EXPERIMENTS)}",
    )
    parser.add_argument(
        "--scheme", choices=STUDY_SCHEMES, default="default", help="walk scheme (default)"
    )
    parser.add_argument("--epochs", type=int, help="phase-1 epochs (default: the experiment's)")
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], help="floating dtype (default: the experiment's)"
    )
    parser.add_argument("--n-train", type=int, help="training examples (default: the paper's)")
    parser.add_argument("--data-dir", help="directory of the MNIST / Fashion-MNIST / CIFAR10 files")
    parser.add_argument(
        "--out", default="runs", help="output root (default ./runs); writes OUT/EXPERIMENT/STUDY"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="framework (torch)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def add_study_commands(sub: Any, subcommand: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``connect`` and ``ensemble`` to the ``manifoldwalk`` command.

    Args:
        sub: The command parser's subparsers.
        subcommand: ``manifoldwalk.cli``'s ``_subcommand(sub, name, run, **texts)``.
    """
    con = subcommand(
        sub,
        "connect",
        _connect,
        help=STUDY_LINES[0][1],
        description="Train --nets nets on the experiment's seed-0 training set from seeds "
        "0..N-1, project them onto one training loss, walk every ordered pair toward each "
        "other on that level set (TowardTarget), and compare the largest loss along the path "
        "with the barrier on the straight line between them. Writes OUT/EXPERIMENT/connect "
        "(resumable; other options are refused).",
    )
    _add_common(con)
    con.add_argument("--nets", type=int, default=3, help="nets trained (default 3)")
    con.add_argument("--steps", type=int, default=2000, help="predictor steps a pair (2000)")
    con.add_argument(
        "--level", type=float, help="the common training loss (default: the nets' largest)"
    )
    con.add_argument(
        "--target-tol", type=float, default=1e-5, help="TowardTarget's tolerance (1e-5)"
    )
    con.add_argument(
        "--line-points", type=int, default=51, help="points on each straight line (51)"
    )
    con.add_argument(
        "--path-every", type=int, default=1, help="predictor steps between path records (1)"
    )
    ens = subcommand(
        sub,
        "ensemble",
        _ensemble,
        help=STUDY_LINES[1][1],
        description="Train one net (phase 1), walk its level set with --walks seeded random "
        "walks of --steps constant steps --eta, and measure R, the test metric and the "
        "sharpness at the points reached, at the -grad R walk's end and at weight-decay nets. "
        "Writes OUT/EXPERIMENT/ensemble (resumable; other options are refused).",
    )
    _add_common(ens)
    ens.add_argument("--walks", type=int, default=10, help="random walks (default 10)")
    ens.add_argument("--steps", type=int, default=1000, help="predictor steps a walk (1000)")
    ens.add_argument("--eta", type=float, default=0.5, help="the random walks' step (0.5)")
    ens.add_argument("--seed", type=int, default=0, help="the net's initialisation seed (0)")
    ens.add_argument(
        "--reg-steps", type=int, help="the -grad R walk's budget (default: the experiment's)"
    )
    ens.add_argument(
        "--wd-lambdas",
        type=_floats,
        default=(1e-3, 1e-2, 1e-1),
        help="weight-decay λ values, comma-separated (default 1e-3,1e-2,1e-1)",
    )
    ens.add_argument("--wd-epochs", type=int, help="weight-decay epochs (the experiment's)")
    ens.add_argument(
        "--sharpness",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the largest Hessian eigenvalue at every point (default: yes)",
    )
