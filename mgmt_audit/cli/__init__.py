"""Command-line entry point: ``mgmt-audit <command> ...``.

Each command lives in its own module of this package with a ``register(subparsers)`` function that
adds its parser and sets ``func`` to a thin handler. Handlers parse nothing themselves and hold no
logic: they call one library function and print.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mgmt_audit import __version__
from mgmt_audit.errors import MgmtAuditError

COMMAND_MODULES: list[str] = ["audit", "ingest", "study", "phantom", "confounds", "report", "demo"]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every command registered."""
    parser = argparse.ArgumentParser(
        prog="mgmt-audit",
        description=(
            "Audit claims that a tumour marker (MGMT promoter methylation first) can be predicted "
            "from MRI: ingest DICOM cohorts, run Optuna studies over many seeds with label-permutation "
            "nulls, and report a verdict with its evidence."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mgmt-audit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"mgmt_audit.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input exits with status 2 and a one-line message naming the fix."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MgmtAuditError as exc:
        flag = _flag_for(parser, args, exc.parameter)
        hint = f" (option {flag})" if flag else ""
        print(f"mgmt-audit {args.command}: error: {exc}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mgmt-audit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader closed the pipe (`... | head`): stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141


def _flag_for(parser: argparse.ArgumentParser, args: argparse.Namespace, parameter: str | None) -> str | None:
    """The option, of the (sub)command ``args`` ran, whose destination is ``parameter`` (a library
    error's parameter name); None when that command has no such option."""
    if parameter is None:
        return None
    command = parser
    while True:  # descend through the chosen subcommands: `study` -> `study run`
        chooser = next((a for a in command._actions if isinstance(a, argparse._SubParsersAction)), None)
        if chooser is None:
            break
        command = chooser.choices.get(getattr(args, chooser.dest, None))
        if command is None:
            return None
    for option in command._actions:
        if option.dest == parameter and option.option_strings:
            return max(option.option_strings, key=len)
    return None


if __name__ == "__main__":
    sys.exit(main())
