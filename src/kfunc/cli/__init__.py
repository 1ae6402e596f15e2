"""The ``kfunc`` command: argument parsing, and the one place that prints and exits."""

from __future__ import annotations

import argparse
import logging
import sys

from kfunc.cli import run as run_cmd
from kfunc.cli.output import print_error
from kfunc.errors import KfuncError

__all__ = ["main"]

_COMMANDS = (run_cmd,)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kfunc",
        description="Author, build, load and test eBPF kfuncs defined in kernel modules.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KfuncError as exc:
        print_error(exc)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopped the guest and cleaned up", file=sys.stderr)
        return 130
