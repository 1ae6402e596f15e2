"""``kfunc run PATH...``: build, boot, load, call, show the result."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from kfunc.cli.kernel_args import add_kernel
from kfunc.cli.output import ConsoleProgress, print_error
from kfunc.cli.project_args import add_module_dir
from kfunc.errors import KfuncError
from kfunc.kernels.local import HOST
from kfunc.kernels.target import DEFAULT_KERNEL
from kfunc.project import Project
from kfunc.run import (
    KernelOutcome,
    ProjectReport,
    RunReport,
    printk_message,
    run_matrix,
    run_projects,
)
from kfunc.vm import protocol as proto

__all__ = ["kernel_names", "register", "seconds", "show_matrix"]


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, finite and above 0 (``--timeout 0``
    would boot a guest only to give up on it at once)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: must be a number of seconds above 0")
    return value


def kernel_names(text: str, option: str = "--kernel") -> list[str]:
    """--kernel's (or --kernels') comma-separated kernels, each once, in order
    (``6.12,`` is 6.12)."""
    names = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    if not names:
        raise KfuncError(f"{option} {text!r}: no kernel named", f"name one, e.g. {option} 6.12")
    return names


def register(sub: Any) -> None:
    p = sub.add_parser(
        "run",
        help="run projects (module + BPF programs) in a target kernel",
        description="Build each module with BTF, boot the target kernel once in a VM, and for "
        "each project: insmod, load and attach the BPF programs, trigger or test-run them, and "
        "show the trace and kernel log.",
    )
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="project directory, e.g. examples/hello"
    )
    add_kernel(p, None, "; or several separated by commas (6.1,6.12,7.3: a kernel-by-result "
               f"table; default: {DEFAULT_KERNEL})")  # fmt: skip
    p.add_argument(
        "--on-host", action="store_true",
        help="insert the module into the running kernel instead of a guest's (root only; the "
        "module is removed again on every exit path)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_module_dir(p)
    p.add_argument(
        "--timeout", type=seconds, default=180.0, help="bound on the guest (seconds, default 180)"
    )
    p.add_argument(
        "--boot",
        action="store_true",
        help="boot a fresh guest even where a kept one is up or a snapshot would "
        "restore one (kfunc's machine; virtme-ng where it cannot run the kernel, or "
        "with KFUNC_SNAPSHOT=0)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.module is not None and len(args.paths) > 1:
        raise KfuncError(
            f"--module {args.module}: names the module of one project, but {len(args.paths)} "
            "are given",
            "run the projects one at a time, or name each module in its kfunc.toml ([module] path)",
        )
    if args.on_host and args.kernel not in (None, HOST):
        raise KfuncError(
            f"--on-host runs in the running kernel, but --kernel names {args.kernel}",
            "drop --kernel (or use --kernel host), or drop --on-host to boot it in a guest",
        )
    kernel = HOST if args.on_host else args.kernel or DEFAULT_KERNEL
    projects = [Project.load(path, module=args.module) for path in args.paths]
    progress = ConsoleProgress(quiet=args.json)
    kernels = kernel_names(kernel)
    if len(kernels) > 1:
        outcomes = run_matrix(
            projects, kernels, progress, timeout=args.timeout, use_kept=not args.boot
        )
        return show_matrix(outcomes, args.json)
    # An error is reported by kfunc.cli, as JSON with --json.
    report = run_projects(
        projects, kernels[0], progress, timeout=args.timeout, use_kept=not args.boot,
        on_host=args.on_host,
    )  # fmt: skip
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _show(report)
        for project in report.projects:
            if not project.ok:
                message = project.error or "the run did not show its result"
                print_error(KfuncError(f"{project.project}: {message}", project.fix))
                _show_verifier_log(project, args.verbose)
    return 0 if report.ok else 1


def _show_verifier_log(project: ProjectReport, verbose: bool) -> None:
    """The raw verifier log of a refused program: all of it with --verbose, else a hint."""
    loads = [e for e in project.steps if e["step"] == proto.BpfLoad.op]
    failed = next((e for e in loads if e.get("ok") is False), None)
    log = (failed.get("data") or {}).get("log", "") if failed else ""
    if not log:
        return
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    if verbose:
        console.print("[dim]--- verifier log ---[/]")
        console.print(escape(log.rstrip()), markup=False)
    else:
        console.print("[dim]the whole verifier log: rerun with --verbose[/]")


def _show(report: RunReport, console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    k = report.kernel
    console.print(f"[bold]kernel[/] {k['version']} ({k['release']}, {report.accel})")
    for project in report.projects:
        _show_project(project, console, len(report.projects) > 1)
    s = report.seconds
    console.print(
        f"[dim]{s.get('total', 0):.1f} s in all: {s.get('prepare', 0):.1f} s build and checks, "
        f"{s.get('guest', 0):.1f} s in the guest[/]"
    )


def _show_project(project: ProjectReport, console: Console, title: bool) -> None:
    if title:
        console.print(f"[bold]{escape(project.project)}[/]")
    for event in project.steps:
        ok = event.get("ok")
        mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]-[/]"}[ok]
        console.print(f"{mark} {escape(_describe(event))}")
        for line in event.get("kernel_log", []):
            console.print(f"    [cyan]kernel:[/] {escape(line)}")
    for line in project.trace:
        console.print(f"    [magenta]trace:[/] {escape(line.strip())}")
    if project.ok and project.result:
        console.print(f"[bold green]ok[/]: {escape(printk_message(project.result))}")
    elif project.ok:
        console.print(f"[bold green]ok[/]: {len(project.tests)} test run(s) passed")


def show_matrix(outcomes: list[KernelOutcome], as_json: bool) -> int:
    """A kernel-by-result table of a run on several kernels (or the JSON of it),
    then why each kernel that failed did; the exit status: 0 if all passed."""
    ok = all(o.ok for o in outcomes)
    if as_json:
        print(json.dumps({"ok": ok, "kernels": [o.to_dict() for o in outcomes]}, indent=2))
        return 0 if ok else 1
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    for outcome in outcomes:
        if outcome.report is not None:
            _show(outcome.report, console)
    table = Table(title="kfunc run", title_justify="left")
    table.add_column("kernel")
    table.add_column("result")
    notes = []
    for outcome in outcomes:
        cell = escape(outcome.summary())
        if outcome.ok:
            cell = f"[green]{cell}[/]"
        else:
            notes.append(outcome)
            cell = f"[red]{cell}[/] [dim]({len(notes)})[/]"
        table.add_row(outcome.kernel, cell)
    console.print(table)
    for n, outcome in enumerate(notes, 1):
        if outcome.fix:
            console.print(f"  ({n}) [bold]fix[/]: {escape(outcome.fix)}")
    return 0 if ok else 1


def _describe(event: proto.Event) -> str:
    data = event.get("data") or {}
    step = event["step"]
    if event.get("ok") is False:
        return f"{step}: {event.get('error')}"
    if event.get("ok") is None:
        return f"{step}: skipped"
    if step == proto.Insmod.op:
        return f"insmod {data['module']}"
    if step == proto.BtfModule.op:
        funcs = ", ".join(f"{n} (BTF id {i})" for n, i in data["kfuncs"].items())
        return f"{data['path']} ({data['size']} bytes) registers {funcs}"
    if step == proto.BpfLoad.op:
        progs = ", ".join(
            f"{p['name']} ({p['section']}{', attached' if p.get('attached') else ''}"
            f"{'' if p.get('autoload', True) else ', not loaded: autoload off'})"
            for p in data["programs"]
        )
        return f"loaded {progs}"
    if step == proto.TestRun.op:
        alone = " (loaded alone)" if data.get("alone") else ""
        if "rejected" in data:
            return f"test run {data['program']}: refused by the verifier with {data['rejected']!r}"
        if "error" in data:
            return f"test run {data['program']}{alone}: failed with {data['error']}, as expected"
        return f"test run {data['program']}{alone}: returned {data['retval']}"
    if step == proto.Trigger.op:
        if "unlinked" in data:
            return f"triggered: unlink {data['unlinked']}"
        return f"triggered: {data.get('command')} (exit {data.get('exit')})"
    if step == proto.Trace.op:
        return f"trace: {len(data.get('lines', []))} line(s), result seen"
    if step == proto.BpfUnload.op:
        return f"destroyed {data['links']} link(s), closed {data['objects']} object(s)"
    if step == proto.Rmmod.op:
        return f"rmmod {data['module']}" + (" (unloaded)" if data.get("unloaded") else "")
    if step == proto.TraceClear.op:
        return f"trace buffer cleared ({data['tracefs']})"
    return step
