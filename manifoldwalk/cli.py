"""The ``manifoldwalk`` command.

Subcommands are registered in :data:`COMMANDS`; each imports what it needs when
it runs, so ``manifoldwalk --help`` stays fast and needs no framework.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _circle(args: argparse.Namespace) -> int:
    from manifoldwalk.examples.circle import format_table, run_circle

    print("Minimise x + y on x² + y² = 1 from (0, 1) (the paper's Fig. 1):")
    print(format_table(run_circle(tuple(args.schemes))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``manifoldwalk`` command."""
    parser = argparse.ArgumentParser(
        prog="manifoldwalk", description="Walk the level sets of a training loss."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    circle = sub.add_parser("circle", help="the paper's Fig. 1 example, as a table")
    circle.add_argument(
        "--schemes",
        nargs="+",
        default=["default", "paper", "authors"],
        choices=["default", "paper", "authors"],
        help="walk schemes to compare (default: all three)",
    )
    circle.set_defaults(run=_circle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
