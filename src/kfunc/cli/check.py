"""``kfunc check OBJ.o --kernel VER``: will the object's kfunc calls work there?"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from kfunc.check import CallReport, check_object, kernel_view, read_bpf_object
from kfunc.cli.kernel_args import add_kernel
from kfunc.errors import KfuncError
from kfunc.inputs import read_head
from kfunc.kernels.target import DEFAULT_KERNEL

__all__ = ["register"]

#: What only the verifier decides, said after every check: a clean check is not "ok".
UNDECIDED = (
    "decided only by the verifier: NULL checks, references released on every path (checked "
    "here only where a program releases nothing), pointer trust (KF_TRUSTED_ARGS/KF_RCU), "
    "memory bounds, locks and RCU regions; load it (`kfunc run`) and `kfunc explain` the log"
)
_MARKS = {"error": "[red]✗[/]", "warning": "[yellow]![/]", "note": "[dim]·[/]"}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="check a BPF object's kfunc calls against a kernel, before loading it",
        description="For every kfunc call of a BPF object: does it resolve in the kernel's "
        "vmlinux or a module, does the declaration agree with the kernel's prototype (by "
        "libbpf's rules), may the program's type call it there (kfunc hooks, the module's "
        "registrations, the probe cache of `kfunc ls --probe`), and is it __weak. Exits 1 "
        "when a call cannot work.",
    )
    p.add_argument("object", metavar="OBJ.o", help="a BPF object (clang -g -target bpf)")
    add_kernel(p, DEFAULT_KERNEL)
    p.add_argument(
        "--module", "-m", action="append", default=[], metavar="M.ko|DIR",
        help="a module defining kfuncs the object calls: a .ko, or a kfunc project directory "
        "(its spec or sources tell the program types it registers for); repeatable",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from kfunc.cli.output import ConsoleProgress
    from kfunc.kernels.target import get_kernel

    info = read_bpf_object(_object_path(args.object))
    progress = ConsoleProgress(quiet=True)
    kernel = get_kernel(args.kernel, progress)
    view = kernel_view(kernel, [Path(m) for m in args.module], progress)
    reports = check_object(info, view)
    ok = all(r.ok for r in reports)
    if args.json:
        out = {
            "object": str(info.path),
            "kernel": str(kernel.version),
            "probed": view.probed is not None,
            "ok": ok,
            "undecided": UNDECIDED,
            "calls": [r.to_dict() for r in reports],
        }
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        show(reports, f"{info.path.name} against {kernel.version} ({kernel.release})")
    return 0 if ok else 1


def _object_path(given: str) -> Path:
    """The object to read; a project directory or a C source is refused with
    what to run instead (kfunc check reads what clang wrote)."""
    path = Path(given)
    if path.is_dir():
        raise KfuncError(
            f"{given}: a directory: kfunc check reads a BPF object (.o)",
            f"`kfunc build {given}` builds a project and checks its calls; or pass an object",
        )
    if path.suffix in (".c", ".h") and path.is_file() and read_head(path, 4) != b"\x7fELF":
        raise KfuncError(
            f"{given}: C source: kfunc check reads a BPF object (.o), what clang makes of it",
            f"`kfunc build {path.parent}` builds its project and checks its calls; or compile "
            f"it: clang -g -O2 -target bpf -c {given} -o {path.with_suffix('.o')}",
        )
    return path


def show(reports: list[CallReport], title: str, console: Console | None = None) -> None:
    """One line per call, then one line per problem with its fix."""
    console = console or Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]{escape(title)}[/]: {len(reports)} kfunc call(s)")
    for r in reports:
        p = r.call.program
        mark = "[green]✓[/]" if r.ok else "[red]✗[/]"
        where = r.owner or "unresolved"
        allowed = {True: "allowed", False: "NOT allowed", None: "allowed?"}[r.allowed]
        by = f" ({r.allowed_by})" if r.allowed_by else ""
        weak = " __weak" if r.call.weak else ""
        console.print(
            f"{mark} {escape(p.name)} ({escape(p.section)}, {p.prog_type or '?'}) -> "
            f"{escape(r.call.kfunc)}{weak} [{escape(where)}] {allowed}{escape(by)}"
        )
        for f in r.findings:
            console.print(f"    {_MARKS[f.severity]} {f.severity}: {escape(f.message)}")
            if f.fix and f.severity != "note":
                console.print(f"      fix: {escape(f.fix)}")
    errors = sum(1 for r in reports for f in r.findings if f.severity == "error")
    if errors:
        console.print(f"[bold red]{errors} problem(s)[/]: these calls cannot work there")
    else:
        unsure = sum(1 for r in reports if r.allowed is None)
        more = f" ({unsure} call(s) whose program type only the kernel can confirm)"
        console.print("[bold green]no problem found before loading[/]" + (more if unsure else ""))
    console.print(f"[dim]{escape(UNDECIDED)}[/]")
