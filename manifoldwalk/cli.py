"""The ``manifoldwalk`` command.

Subcommands are registered in :func:`build_parser`; each imports what it needs when
it runs, so ``manifoldwalk --help`` stays fast and needs no framework.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence

_DIRECTORY_HELP = "an output root, experiment or seed directory"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) naming the valid choices."""

    def error(self, message: str):  # type: ignore[override]
        """Print ``prog: error: message`` on one line to stderr and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _circle(args: argparse.Namespace) -> int:
    from manifoldwalk.examples.circle import format_table, run_circle

    print("Minimise x + y on x² + y² = 1 from (0, 1) (the paper's Fig. 1):")
    print(format_table(run_circle(tuple(args.schemes))))
    return 0


def _list(args: argparse.Namespace) -> int:
    from manifoldwalk.experiments import EXPERIMENTS

    for e in EXPERIMENTS.values():
        print(
            f"{e.name:12s} {e.description}\n{'':12s} phase 1 {e.phase1_epochs} epochs, walk "
            f"{e.max_steps} predictor steps (η_min {e.eta_min:g}, η_c {e.eta_c:g}), "
            f"weight decay {e.wd_epochs} epochs"
        )
    from manifoldwalk.studies._cli import STUDY_LINES

    print("\nstudies (manifoldwalk COMMAND --help for their options):")
    for command, line in STUDY_LINES:
        print(f"{command:12s} {line}")
    return 0


def _floats(text: str) -> tuple[float, ...]:
    """Parse a comma-separated list of λ values."""
    try:
        return tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas, got {text!r}"
        ) from None


def _reproduce(args: argparse.Namespace) -> int:
    from manifoldwalk.datasets import DatasetError
    from manifoldwalk.experiments import RunConfig, format_table, run_experiment

    config = RunConfig(
        experiment=args.experiment,
        out=args.out,
        seeds=tuple(range(args.first_seed, args.first_seed + args.seeds)),
        backend=args.backend,
        device=args.device,
        scheme=args.scheme,
        max_steps=args.steps,
        budget=args.budget,
        phase1_epochs=args.epochs,
        wd_epochs=args.wd_epochs,
        wd_lambdas=args.wd_lambdas,
        wd_reg=args.wd_reg,
        record_every=args.record_every,
        save_every=args.save_every,
        dtype=args.dtype,
        data_dir=args.data_dir,
        n_train=args.n_train,
        sharpness_every=args.sharpness_every,
    )
    try:
        run_experiment(
            config,
            jobs=args.jobs,
            show_progress=not args.quiet,
            batch_seeds=args.batch_seeds,
            sweep=args.sweep,
        )
    except DatasetError as err:
        raise DatasetError(_data_dir_hint(str(err))) from err
    except KeyboardInterrupt:
        print(
            f"manifoldwalk reproduce: interrupted; the work done so far is kept in "
            f"{config.out}; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    from manifoldwalk.experiments.rundir import seed_dir
    from manifoldwalk.experiments.table import experiment_table

    # exactly the seeds asked for; others in the directory are named in a note
    exp_dir = seed_dir(config.out, config.spec.name, 0).parent
    print(format_table([experiment_table(exp_dir, config.seeds)]))
    return 0


def _data_dir_hint(message: str) -> str:
    """A dataset error in the command's terms: the files are given with ``--data-dir``."""
    message = re.sub(r"load_dataset\('[^']*', data_dir=\.\.\.\)", "--data-dir DIR", message)
    if "--data-dir" not in message:
        message += " (--data-dir names the directory of the dataset's files)"
    return message


def _table(args: argparse.Namespace) -> int:
    from manifoldwalk.experiments.table import format_csv, format_json, format_table, rebuild

    rows, _, problems = rebuild(args.directory, write=not args.no_files)
    for problem in problems:  # the table is still printed: writing beside the runs is extra
        print(
            f"manifoldwalk table: the files beside the runs were not written: {problem} "
            "(--no-files prints the table without writing them)",
            file=sys.stderr,
        )
    text = {"md": format_table, "csv": format_csv, "json": format_json}[args.format](rows)
    print(text.rstrip("\n"))
    return 0


def _plot(args: argparse.Namespace) -> int:
    from manifoldwalk.plots import PlotOptions, plot_runs

    options = PlotOptions(
        fmt=args.format,
        grid=args.grid,
        surfaces=tuple(s.strip() for s in args.surfaces.split(",") if s.strip()),
        pca_every=args.pca_every,
        device=args.device,
        chunk=args.chunk,
        endpoints=not args.no_endpoints,
        show_progress=not args.quiet,
    )
    for result in plot_runs(args.directory, args.out, options):
        print(f"{result.experiment}: wrote {len(result.files)} files in {result.directory}")
        for path in result.files:
            print(f"  {path.name}")
        if result.endpoints_table:
            print(f"endpoint averaging ({result.experiment}):\n{result.endpoints_table}")
    return 0


def _subcommand(
    sub, name: str, run: Callable[[argparse.Namespace], int], **texts: str
) -> argparse.ArgumentParser:
    """Add the subcommand ``name``, described by ``texts`` (help, description), that runs ``run``.

    Args:
        sub: The parser's subparsers.
        name: The subcommand.
        run: Called with the parsed arguments; returns the exit status.
        **texts: ``help`` (one line in ``manifoldwalk --help``) and, optionally, ``description``.

    Returns:
        The subcommand's parser, to add its arguments to.
    """
    parser = sub.add_parser(name, **texts)
    parser.set_defaults(run=run)
    return parser


def _add_reproduce(sub) -> None:
    from manifoldwalk.experiments.backend import BACKENDS
    from manifoldwalk.experiments.config import BUDGETS, SWEEPS, WD_REGS
    from manifoldwalk.experiments.definitions import EXPERIMENTS
    from manifoldwalk.schemes import SCHEMES

    rep = _subcommand(
        sub,
        "reproduce",
        _reproduce,
        help="run an experiment of the paper (phase 1, walk, weight decay) and print Table I",
        description="Run phase 1, the walk and the weight-decay sweep for every seed, writing "
        "run directories under --out (finished seeds are skipped), then print the Table I row.",
    )
    rep.add_argument(
        "experiment",
        choices=list(EXPERIMENTS),
        metavar="EXPERIMENT",
        help=f"one of: {', '.join(EXPERIMENTS)}",
    )
    rep.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    rep.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    rep.add_argument("--steps", type=int, help="the walk's step budget (default: the paper's)")
    rep.add_argument(
        "--budget",
        choices=BUDGETS,
        default="predictor",
        help="count predictor steps (the authors' code, default) or all steps",
    )
    rep.add_argument("--epochs", type=int, help="phase-1 epochs (default 100)")
    rep.add_argument("--wd-epochs", type=int, help="weight-decay epochs (default: the paper's)")
    rep.add_argument(
        "--wd-lambdas", type=_floats, help="comma-separated λ values (default 0,1e-6,…,1e6)"
    )
    rep.add_argument(
        "--wd-reg",
        choices=WD_REGS,
        default="l2",
        help="weight-decay R: l2 (all parameters, as the walk; default) or "
        "l2-weights (kernels only, as the authors' Keras baseline)",
    )
    rep.add_argument(
        "--scheme",
        choices=list(SCHEMES),
        default="authors",
        help="walk scheme (default: authors, which produced Table I)",
    )
    rep.add_argument("--record-every", type=int, help="predictor steps between metric records")
    rep.add_argument(
        "--save-every", type=int, default=50, help="predictor steps between saved θ (default 50)"
    )
    rep.add_argument(
        "--sharpness-every",
        type=int,
        metavar="N",
        help="measure the sharpness (largest Hessian eigenvalue, full and on the level set's "
        "tangent space) also at every N-th walk record, in metrics.csv; 0 measures none "
        "(default: at the walk's start and end and at each full-training-set weight-decay "
        "net). Each point takes two Lanczos runs of at most 60 Hessian-vector products each "
        "(6-22 for both on iris-ff and mnist5k-ff), a product costing about 2-3 gradients. A "
        "reporting choice: a run resumed with another N is the same run",
    )
    rep.add_argument(
        "--dtype", choices=["float32", "float64"], help="floating dtype (default: the experiment's)"
    )
    rep.add_argument("--n-train", type=int, help="training examples (default: the paper's)")
    rep.add_argument("--out", default="runs", help="output root (default ./runs)")
    rep.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="framework (default torch; tensorflow: feed-forward nets only)",
    )
    rep.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device")
    rep.add_argument("--jobs", type=int, default=1, help="seeds run in parallel (default 1)")
    rep.add_argument(
        "--batch-seeds",
        action="store_true",
        help="train phase 1, walk and train the weight-decay runs of all seeds at once on one "
        "device (vmap; --backend jax or torch)",
    )
    rep.add_argument(
        "--sweep",
        choices=SWEEPS,
        default="batched",
        help="batched (default): the weight-decay runs of one training-set length train as one "
        "batched computation (with --batch-seeds, phase 1 of all seeds too; jax and torch, one "
        "by one elsewhere); sequential: one by one. Equal up to rounding: a run resumed the "
        "other way is the same run",
    )
    rep.add_argument(
        "--data-dir",
        help="directory of the MNIST / Fashion-MNIST / CIFAR10 files (ignored for iris-ff and "
        "mpg-ff, whose data ships with the software)",
    )
    rep.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_plot(sub) -> None:
    plot = _subcommand(
        sub,
        "plot",
        _plot,
        help="draw the figures and report of run directories",
        description="Draw the phase-2 curves, compute against performance, the PCA of the "
        "trajectories and the loss surfaces, evaluate endpoint averaging and write report.md / "
        "report.html for every experiment with finished runs under DIRECTORY.",
    )
    plot.add_argument("directory", help=_DIRECTORY_HELP)
    plot.add_argument("--out", default="plots", help="output root (default ./plots)")
    plot.add_argument("--format", choices=["png", "pdf", "svg"], default="png", help="file format")
    plot.add_argument("--grid", type=int, default=100, help="loss-surface grid per axis (100)")
    plot.add_argument(
        "--surfaces", default="1,3,all", help="walks per loss surface, e.g. 1,3,all (default)"
    )
    plot.add_argument("--pca-every", type=int, default=1, help="use every k-th saved point (1)")
    plot.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="loss device")
    plot.add_argument("--chunk", type=int, help="weight vectors evaluated together")
    plot.add_argument("--no-endpoints", action="store_true", help="skip endpoint averaging")
    plot.add_argument("--quiet", action="store_true", help="no progress on stderr")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``manifoldwalk`` command."""
    from manifoldwalk import __version__
    from manifoldwalk.schemes import SCHEMES

    parser = _Parser(prog="manifoldwalk", description="Walk the level sets of a training loss.")
    parser.add_argument("--version", action="version", version=f"manifoldwalk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    circle = _subcommand(sub, "circle", _circle, help="the paper's Fig. 1 example, as a table")
    circle.add_argument(
        "--schemes",
        nargs="+",
        default=list(SCHEMES),
        choices=list(SCHEMES),
        help="walk schemes to compare (default: all)",
    )
    _subcommand(sub, "list", _list, help="list the paper's experiments and the studies")
    _add_reproduce(sub)
    table = _subcommand(
        sub,
        "table",
        _table,
        help="rebuild Table I (with paired statistics) from run directories",
        description="Print Table I of the finished seeds under DIRECTORY, with the paired "
        "statistics of walk against weight decay, and rewrite table.md, table.csv, table.json, "
        "history.csv (and history.parquet with pyarrow) and wd.csv beside each experiment's "
        "seed directories (not when DIRECTORY is one seed directory).",
    )
    table.add_argument("directory", help=_DIRECTORY_HELP)
    table.add_argument(
        "--format",
        choices=["md", "csv", "json"],
        default="md",
        help="md (Markdown, accuracy in %%; default), csv or json (numbers, accuracy as a "
        "fraction, one row per experiment directory)",
    )
    table.add_argument(
        "--no-files", action="store_true", help="print only: write nothing beside the runs"
    )
    _add_plot(sub)
    from manifoldwalk.studies._cli import add_study_commands

    add_study_commands(sub, _subcommand)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, ImportError, OSError) as err:
        print(f"manifoldwalk {args.command}: error: {_describe(err, args)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"manifoldwalk {args.command}: interrupted", file=sys.stderr)
        return 130


def _describe(err: BaseException, args: argparse.Namespace) -> str:
    """The error as a line; a filesystem error names its path (and, writing, what to do)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        names = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        writing = isinstance(err, (PermissionError, FileExistsError, NotADirectoryError))
        hint = " (choose another --out)" if writing and hasattr(args, "out") else ""
        return f"{err.strerror}: {names}{hint}"
    return str(err)


if __name__ == "__main__":
    sys.exit(main())
