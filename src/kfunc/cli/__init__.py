"""The ``kfunc`` command: argument parsing, and the one place that prints and exits.

Only the chosen command's module is imported: ``kfunc ls`` should not pay for
rich, libbpf or the VM code at start-up. A command line whose answer is stored
and still valid (see :mod:`kfunc.cli.answers`) is replayed before even
argparse is imported.
"""

from __future__ import annotations

import errno
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
    from typing import Any, NoReturn

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
    "compat": ("kfunc.cli.compat", "write compat.h: kfunc API shims for hand-written modules"),
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


class _UsageError(Exception):
    """A command line argparse refuses, when the error must be JSON."""

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


def build_parser(
    argv: list[str] | None = None, json_errors: bool = False
) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names is fully registered.
    With ``json_errors``, a usage error raises :class:`_UsageError` instead of
    printing argparse's usage lines."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            if json_errors:
                raise _UsageError(f"{self.prog}: {message}", f"see `{self.prog} --help`")
            super().error(message)

    class CommandParser(Parser):
        """A command's parser, with kfunc's help formatter."""

        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _help_formatter)
            super().__init__(**kwargs)

    parser = Parser(
        prog="kfunc",
        description="Author, build, load and test eBPF kfuncs defined in kernel modules.",
        formatter_class=_help_formatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    from kfunc import __version__

    parser.add_argument("--version", action="version", version=f"kfunc {__version__}")
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
            # -v after the command too (`kfunc run --verbose`); only when given, so
            # that it does not undo a -v before the command.
            sub.choices[name].add_argument(
                "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                help="show debug logging (and what the command shows in full with it)",
            )  # fmt: skip
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
            sys.stdout.flush()
            return 0
    except BrokenPipeError:
        return _reader_left()
    except OSError as exc:
        return _failed(_os_error(exc), json_errors=False)
    # `survey --json FILE` names an output file; elsewhere --json is the format.
    json_errors = "--json" in argv and _chosen(argv) != "survey"
    try:
        args = build_parser(argv, json_errors).parse_args(argv)
    except _UsageError as exc:
        return _failed(KfuncError(exc.message, exc.fix), json_errors=True, status=2)
    args.argv = argv  # for commands that store their answer
    json_errors = getattr(args, "json", None) is True
    _configure_logging(args.command, args.verbose)
    # While the command runs, Ctrl-C raises KeyboardInterrupt: context managers
    # stop guests and remove temporary files on the way out.
    # Once it has stopped, the start-up handler is back (for the `kfunc`
    # command: exit 130 at once), also while an error is being reported.
    import signal  # not before: it costs enum (~3-10 ms) to the replay of `kfunc ls`

    # SIGTERM (a CI job's timeout, `timeout`, `kill`) cleans up the same way.
    previous = _sigint(signal.default_int_handler)
    previous_term = _handle(signal.SIGTERM, _terminate)
    try:
        try:
            if getattr(args, "kernel_root", None) is not None:
                from kfunc.cli.kernel_args import resolve_kernel_root

                resolve_kernel_root(args)
            status = int(args.func(args))
            sys.stdout.flush()
            return status
        finally:
            _sigint(previous)
            _handle(signal.SIGTERM, previous_term)
    except KfuncError as exc:
        return _failed(exc, json_errors)
    except KeyboardInterrupt:
        print("interrupted: stopped and cleaned up", file=sys.stderr)
        return 130
    except _Terminated:
        print("terminated: stopped and cleaned up", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        return _reader_left()
    except OSError as exc:
        return _failed(_os_error(exc), json_errors)
    except UnicodeError as exc:
        return _failed(
            KfuncError(f"text that is not UTF-8: {exc}", "pass UTF-8 text (files, arguments)"),
            json_errors,
        )
    except MemoryError:
        return _failed(
            KfuncError("out of memory", "pass smaller inputs, or free memory"), json_errors
        )


def _sigint(handler: Any) -> Any:
    """Set SIGINT's handler (where Python allows: the main thread); return the old one."""
    import signal

    return _handle(signal.SIGINT, handler)


def _handle(signum: int, handler: Any) -> Any:
    """Set a signal's handler (where Python allows: the main thread); return the old one."""
    import signal

    try:
        return signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    except ValueError:  # not the main thread (main called from a test's thread)
        return handler


class _Terminated(BaseException):
    """SIGTERM while a command runs: unwinds like Ctrl-C, so that guests, links
    and temporary files are cleaned up on the way out."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


#: The fix for an OSError, by errno, when nothing more precise caught it.
_OS_FIXES = {
    errno.ENOSPC: "free disk space, or write somewhere else",
    errno.EDQUOT: "free disk space, or write somewhere else",
    errno.EACCES: "check the permissions of the path, or use another",
    errno.EPERM: "check the permissions of the path, or use another",
    errno.EROFS: "write somewhere writable",
    errno.ENAMETOOLONG: "use a shorter name or path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "check the path: a part of it is not a directory",
    errno.EISDIR: "pass a file, not a directory",
    errno.ELOOP: "fix the symlink loop",
    errno.EEXIST: "remove it, or pick another name",
}


def _os_error(exc: OSError) -> KfuncError:
    """An OSError nothing else explained, as one line: the path and the reason."""
    from kfunc.inputs import shown

    where = shown(os.fsdecode(exc.filename)) if exc.filename is not None else "writing output"
    fix = _OS_FIXES.get(exc.errno or 0, "check the path and the disk, then run again")
    if exc.filename is not None and ("HOME" in os.environ or "KFUNC_CACHE" in os.environ):
        from kfunc.cache import cache_root

        if os.fspath(exc.filename).startswith(cache_root()):
            fix = "set KFUNC_CACHE to a writable directory (e.g. KFUNC_CACHE=/var/tmp/kfunc)"
    return KfuncError(f"{where}: {exc.strerror or exc}", fix)


def _failed(exc: KfuncError, json_errors: bool, status: int = 1) -> int:
    """Report ``exc``: one JSON object on stdout with --json (``ok``: false,
    ``error``, ``fix``), else the error and fix lines on stderr. Output that
    could not be written is dropped first."""
    try:
        sys.stdout.flush()
    except OSError:  # stdout cannot be written: the error goes to stderr
        _drop_stdout()
        json_errors = False
    if json_errors:
        import json

        try:
            print(json.dumps({"ok": False, "error": exc.message, "fix": exc.fix}))
            sys.stdout.flush()
            return status
        except OSError:
            _drop_stdout()
    import contextlib

    from kfunc.cli.output import print_error

    with contextlib.suppress(OSError):  # stderr is gone too: the status says it
        print_error(exc)
    return status


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what is buffered for it can no longer be written."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _reader_left() -> int:
    """`kfunc ls | head`: the reader left; say nothing more."""
    _drop_stdout()
    return 141
