"""``kfunc test [PATH]``: a project's tests on each kernel of its matrix, as a table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kfunc.cli.kernel_args import add_kernel_root
from kfunc.cli.project_args import add_module_dir
from kfunc.cli.run import kernel_names
from kfunc.testrun import TestMatrix, has_pytest_files, project_kernels, run_tests

__all__ = ["register"]

_CELLS = {"passed": "[green]pass[/]", "failed": "[red bold]FAIL[/]", "skipped": "[yellow]skip[/]"}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "test",
        help="run a project's tests (pytest + kfunc's fixtures) on each kernel of its matrix",
        description="Run the project's pytest tests with kfunc's plugin (fixtures kernel, module, "
        "bpf; one boot per kernel) on each kernel, and print a kernel-by-test table. A project "
        "without test files gets its [run] scenario run on each kernel instead, as a "
        "kernel-by-result table. Exit status 1 if any test failed.",
    )
    p.add_argument("path", nargs="?", default=".", help="project directory or test file")
    p.add_argument(
        "--kernels", "-k",
        help="comma-separated kernels (default: kfunc.toml's [test] kernels, else 6.12); each "
        "as --kernel takes it (a Debian series or release, an installed image, a tree)",
    )  # fmt: skip
    add_kernel_root(p)
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report to FILE")
    add_module_dir(p)
    p.add_argument(
        "pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="passed on to pytest (after --)"
    )
    p.set_defaults(func=_test)


def _test(args: argparse.Namespace) -> int:
    kernels = kernel_names(args.kernels, "--kernels") if args.kernels else None
    if Path(args.path).is_dir() and not has_pytest_files(args.path):
        return _run_scenario(args.path, kernels, args.module)
    matrix = run_tests(
        args.path, kernels, junit=args.junit, pytest_args=args.pytest_args, module=args.module
    )
    show(matrix)
    return 0 if matrix.ok else 1


def _run_scenario(path: str, kernels: list[str] | None, module: str | None) -> int:
    """A project without pytest files: its [run] scenario (or the inferred trigger
    and expectation) on each kernel of the matrix, as `kfunc run --kernel A,B` does."""
    from kfunc.cli.output import ConsoleProgress
    from kfunc.cli.run import show_matrix
    from kfunc.project import Project
    from kfunc.run import run_matrix

    project = Project.load(path, module=module)
    outcomes = run_matrix([project], kernels or project_kernels(project.path), ConsoleProgress())
    return show_matrix(outcomes, as_json=False)


def show(matrix: TestMatrix, console: Console | None = None) -> None:
    """The kernel-by-test table, then the reasons of failures and skips."""
    console = console or Console(highlight=False, soft_wrap=True)
    columns = list(matrix.kernels)
    if any(not r.kernel for r in matrix.results):
        columns.append("")  # tests that use no kernel
    table = Table(title="kfunc test", title_justify="left")
    table.add_column("test")
    for kernel in columns:
        table.add_column(kernel or "(no kernel)", justify="center")
    notes: list[str] = []
    for test in matrix.tests:
        row = [escape(test)]
        for kernel in columns:
            result = matrix.cell(test, kernel)
            if result is None:
                row.append("[dim]-[/]")
                continue
            cell = _CELLS.get(result.outcome, result.outcome)
            if result.reason and result.outcome != "passed":
                notes.append(f"{result.outcome} {test} [{kernel or 'no kernel'}]: {result.reason}")
                cell += f" [dim]({len(notes)})[/]"
            row.append(cell)
        table.add_row(*row)
    console.print(table)
    for n, note in enumerate(notes, 1):
        console.print(f"  ({n}) {escape(note)}")
    summary = ", ".join(
        f"{matrix.count(o)} {o}" for o in ("passed", "failed", "skipped") if matrix.count(o)
    )
    console.print(("[green]ok[/]: " if matrix.ok else "[red]failed[/]: ") + (summary or "no tests"))
