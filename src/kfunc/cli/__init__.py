"""The ``kfunc`` command: argument parsing, and the one place that prints and exits.

Only the chosen command's module is imported: ``kfunc ls`` should not pay for
rich, libbpf or the VM code at start-up.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from kfunc.errors import KfuncError

__all__ = ["main"]

# name -> (module, one-line help for `kfunc --help`)
_COMMANDS: dict[str, tuple[str, str]] = {
    "new": ("kfunc.cli.new", "start a project: a kfunc module spec, a BPF program and a test"),
    "build": ("kfunc.cli.build", "build a project's module with BTF, its BPF header and programs"),
    "run": ("kfunc.cli.run", "run projects (module + BPF programs) in a target kernel"),
    "test": ("kfunc.cli.test", "run a project's pytest tests on each kernel of its matrix"),
    "vm": ("kfunc.cli.vm", "keep a booted guest for fast runs (start, stop, status)"),
    "bench": ("kfunc.cli.bench", "time kfunc calls against helpers, subprograms and inline code"),
    "kernels": ("kfunc.cli.kernels", "the kernels kfunc knows, which are cached; remove them"),
    "ls": ("kfunc.cli.ls", "list the kfuncs of a kernel, BTF file or module"),
    "header": ("kfunc.cli.header", "write extern __ksym declarations of kfuncs"),
    "diff": ("kfunc.cli.diff", "compare the kfunc APIs of two kernels, BTF files or modules"),
    "check": ("kfunc.cli.check", "check a BPF object's kfunc calls against a kernel"),
    "explain": ("kfunc.cli.explain", "explain a verifier log: what, where, and the fix"),
    "survey": ("kfunc.cli.survey", "count helpers and kfuncs per release; CSV, JSON, chart"),
}


def _chosen(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names is fully registered."""
    parser = argparse.ArgumentParser(
        prog="kfunc",
        description="Author, build, load and test eBPF kfuncs defined in kernel modules.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = _chosen(argv) if argv is not None else None
    if chosen not in _COMMANDS:
        chosen = None  # `kfunc --help` or a typo: every command, for the listing
    for name, (module, help_text) in _COMMANDS.items():
        if chosen is None or name == chosen:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KfuncError as exc:
        from kfunc.cli.output import print_error

        print_error(exc)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopped the guest and cleaned up", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `kfunc ls | head`: the reader left; say nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
