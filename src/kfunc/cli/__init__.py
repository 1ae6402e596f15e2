"""The ``kfunc`` command: argument parsing, and the one place that prints and exits.

Only the chosen command's module is imported: ``kfunc ls`` should not pay for
rich, libbpf or the VM code at start-up. A command line whose answer is stored
and still valid (see :mod:`kfunc.cli.answers`) is replayed before even
argparse is imported.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys

from kfunc.cli import answers
from kfunc.errors import KfuncError

# typing.TYPE_CHECKING without importing typing (~4 ms with its imports), as
# type checkers accept and PEP 781 proposes: this module is on `kfunc ls`'s
# replay path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

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


# Commands that store their answer for replay (see kfunc.cli.answers).
_REPLAYED = frozenset({"ls"})


def _chosen(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's help formatter, sized to the terminal as argparse does but
    without importing shutil, which pulls in bz2 and lzma: argparse builds a
    formatter for every argument added, and `kfunc ls` pays ~2 ms for it."""
    import argparse

    try:
        columns = int(os.environ.get("COLUMNS", 0)) or os.get_terminal_size().columns
    except (ValueError, OSError):
        columns = 80
    return argparse.HelpFormatter(prog, width=columns - 2)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names is fully registered."""
    import argparse

    class CommandParser(argparse.ArgumentParser):
        """A command's parser, with kfunc's help formatter."""

        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _help_formatter)
            super().__init__(**kwargs)

    parser = argparse.ArgumentParser(
        prog="kfunc",
        description="Author, build, load and test eBPF kfuncs defined in kernel modules.",
        formatter_class=_help_formatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="COMMAND",
        parser_class=CommandParser,
    )
    # Only the chosen command is registered in full: `kfunc --help` and a typo
    # need the one-line helps alone, not every command's imports (~150 ms).
    chosen = _chosen(argv) if argv is not None else None
    for name, (module, help_text) in _COMMANDS.items():
        if name == chosen:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_text)
    return parser


# Commands that read kfunc inventories and load no BPF on the host (the only
# thing that logs, through kfunc.libbpf): unless -v, they skip importing
# logging, ~6 ms of a `kfunc ls` that takes 25.
_NO_LOGGING = frozenset({"ls", "header", "diff"})


def _configure_logging(command: str, verbose: bool) -> None:
    """Print library log records as ``name: message``: warnings, and with -v debug."""
    if not verbose and command in _NO_LOGGING and "logging" not in sys.modules:
        return
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(name)s: %(message)s"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (the process's arguments if None: the ``kfunc``
    command itself) and return its exit status."""
    if argv is not None:
        return _run(argv)
    status = _run(sys.argv[1:])
    # The process exits next: keep the interpreter's final garbage collection
    # from walking every object left (5 ms of a 60 ms `kfunc ls`). Cleanup
    # that matters is done already, by context managers and atexit handlers.
    gc.freeze()
    return status


def _run(argv: list[str]) -> int:
    try:
        if _chosen(argv) in _REPLAYED and answers.replay(argv):
            return 0
    except BrokenPipeError:
        return _reader_left()
    args = build_parser(argv).parse_args(argv)
    args.argv = argv  # for commands that store their answer
    _configure_logging(args.command, args.verbose)
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
        return _reader_left()


def _reader_left() -> int:
    """`kfunc ls | head`: the reader left; say nothing more."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 141
