"""``kfunc build [PATH]``: the module with BTF, its BPF header, and the BPF programs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from kfunc.build import build_project
from kfunc.cli.kernel_args import add_kernel
from kfunc.cli.output import ConsoleProgress
from kfunc.cli.project_args import add_module_dir
from kfunc.kernels.target import DEFAULT_KERNEL, get_kernel
from kfunc.project import Project

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "build",
        help="build a project's module with BTF, its BPF header and programs",
        description="Generate the module from kfunc.toml (or take the hand-written sources), "
        "build it with BTF against the target kernel's headers, write the BPF-side header of "
        "its kfuncs, compile the BPF programs, and check their kfunc calls.",
    )
    p.add_argument("path", nargs="?", default=".", help="project directory (default: .)")
    add_kernel(p, DEFAULT_KERNEL)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    add_module_dir(p)
    p.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    project = Project.load(args.path, module=args.module)
    progress = ConsoleProgress(quiet=args.json)
    with progress.step(f"kernel {args.kernel}") as step:
        kernel = get_kernel(args.kernel, progress)
        step.summary = f"kernel {kernel.version} ({kernel.release})"
    built = build_project(project, kernel, progress)
    result = {
        "kernel": kernel.to_dict(),
        "module": built.module.to_dict() if built.module else None,
        "header": str(built.header) if built.header else None,
        "objects": [str(o) for o in built.objects],
        "warnings": built.warnings,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    console = Console(highlight=False, soft_wrap=True)
    if built.module:
        console.print(f"[bold]module[/] {escape(str(built.module.ko))}")
        for k in built.module.kfuncs:
            flags = " | ".join(k.flags) or "no flags"
            console.print(f"  {escape(k.name)}  [dim]BTF id {k.btf_id}, {escape(flags)}[/]")
    if built.header:
        console.print(f"[bold]BPF header[/] {escape(str(built.header))}")
    for obj in built.objects:
        console.print(f"[bold]BPF object[/] {escape(str(obj))}")
    return 0
