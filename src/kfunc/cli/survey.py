"""``kfunc survey``: count helpers and kfuncs across kernel history, write CSV,
JSON and the cumulative chart."""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kfunc.cli.output import ConsoleProgress
from kfunc.errors import KfuncError
from kfunc.outputs import check_not_input
from kfunc.survey.model import Survey

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "survey",
        help="count BPF helpers and kfuncs per release; CSV, JSON and the timeline chart",
        description="Count BPF helpers (include/uapi/linux/bpf.h) and kfuncs (registered "
        "kfunc ID sets) in kernel source trees, Debian linux-source packages or a kernel git "
        "repository, and draw the cumulative helpers-vs-kfuncs chart.",
    )
    src = p.add_argument_group("sources (any combination)")
    src.add_argument(
        "--tree", nargs="+", default=[], metavar="PATH",
        help="kernel source directories, tarballs (.tar.xz ...) or linux-source-*.deb files",
    )  # fmt: skip
    src.add_argument(
        "--debian", nargs="+", default=[], metavar="SERIES",
        help="Debian linux-source packages to fetch and count, e.g. 5.10 6.1 6.12 7.2 7.3",
    )  # fmt: skip
    src.add_argument("--git", metavar="REPO", help="a kernel git repository (no checkout needed)")
    src.add_argument(
        "--tags", metavar="SPEC",
        help="with --git: release tags, a range v5.10..v7.3 or a list v6.1,v6.12 (default: all)",
    )  # fmt: skip
    src.add_argument(
        "--no-history", action="store_true",
        help="with --git: count the tags only, without dating each name's first commit",
    )  # fmt: skip
    btf = p.add_argument_group("a built kernel, beside its sources")
    btf.add_argument(
        "--btf", nargs="?", const="host", metavar="FILE",
        help="count on a built kernel: a BTF/vmlinux file, or the running kernel if no FILE",
    )  # fmt: skip
    btf.add_argument(
        "--kernel", "-k", metavar="VER",
        help="count on a target kernel (6.1, 6.12 ...) with its modules; its Debian "
        "linux-source package is counted beside it",
    )  # fmt: skip
    out = p.add_argument_group("output")
    out.add_argument("--csv", metavar="FILE", help="one row per release (+ FILE-first-seen.csv)")
    out.add_argument("--json", metavar="FILE", help="everything, names included")
    out.add_argument("--chart", metavar="FILE.png", help="the cumulative timeline chart")
    out.add_argument("--title", help="the chart's title")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.tags and not args.git:
        raise KfuncError("--tags: only with --git", "add --git REPO, or drop --tags")
    if not (args.tree or args.debian or args.git or args.btf or args.kernel):
        raise KfuncError(
            "survey: nothing to count",
            "pass --tree PATH..., --debian 6.1 6.12, --git REPO, --btf [FILE] or --kernel VER",
        )
    if args.chart and not args.chart.lower().endswith(".png"):
        raise KfuncError(f"--chart {args.chart}: not a .png file", "name the chart FILE.png")
    if args.chart:
        from kfunc.survey.chart import require_matplotlib

        require_matplotlib()
    inputs = [*args.tree, args.git, args.btf if args.btf != "host" else None]
    for option in ("csv", "json", "chart"):
        if getattr(args, option):
            check_not_input(getattr(args, option), inputs, f"--{option}")
    progress = ConsoleProgress()
    survey = Survey()
    from kfunc.survey.sources import survey_tree

    paths = list(args.tree)
    if args.debian:
        from kfunc.survey.debian import fetch_source_package

        for series in args.debian:
            with progress.step(f"linux-source-{series}") as step:
                deb = fetch_source_package(series, progress)
                step.summary = f"linux-source-{series}: {deb.name}"
            paths.append(str(deb))
    for path in paths:
        survey.releases.append(survey_tree(path, progress))
    survey.releases.sort(key=lambda r: (r.date is None, r.date, r.release))
    if args.git:
        from kfunc.survey.git import survey_git

        history = survey_git(args.git, args.tags, progress, first_seen=not args.no_history)
        survey.releases.extend(history.releases)
        survey.first_seen = history.first_seen
    if args.btf or args.kernel:
        survey.built.append(_built(args, survey, progress))
    _show(survey)
    _write(args, survey, progress)
    return 0


def _built(args: argparse.Namespace, survey: Survey, progress: ConsoleProgress) -> Any:
    from kfunc.inventory import file_inventory, host_inventory, kernel_inventory
    from kfunc.survey.built import compare
    from kfunc.survey.dates import series_of

    series: str | None
    if args.kernel:
        from kfunc.kernels.target import get_kernel

        kernel = get_kernel(args.kernel, progress)
        with progress.step(f"kfuncs of kernel {kernel}") as step:
            inventory = kernel_inventory(kernel, progress)
            step.summary = f"kernel {kernel}: {len(inventory.kfuncs)} kfuncs"
        series = kernel.series
    elif args.btf == "host":
        inventory = host_inventory()
        series = series_of(os.uname().release)
    else:
        inventory = file_inventory(args.btf)
        series = None
    source = next(
        (r for r in reversed(survey.releases) if series and series_of(r.release) == series), None
    )
    if source is None and args.kernel and series:
        from kfunc.survey.debian import fetch_source_package
        from kfunc.survey.sources import survey_tree

        with progress.step(f"linux-source-{series}") as step:
            deb = fetch_source_package(series, progress)
            step.summary = deb.name
        source = survey_tree(deb, progress)
        survey.releases.append(source)
    return compare(inventory, source)


def _show(survey: Survey, console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    if survey.releases:
        table = Table(title="BPF helpers and kfuncs per release", title_justify="left")
        table.add_column("release")
        table.add_column("date")
        table.add_column("helpers", justify="right")
        table.add_column("kfuncs", justify="right")
        table.add_column("source", overflow="fold")
        for r in survey.releases:
            date = r.date.isoformat() if r.date else "?"
            if "approximate" in r.date_source:
                date += "~"
            where = r.source if r.source.startswith("git:") else os.path.basename(r.source)
            table.add_row(r.release, date, str(r.n_helpers), str(r.n_kfuncs), escape(where))
        console.print(table)
        if any("approximate" in r.date_source for r in survey.releases):
            console.print("[dim]~ dated by Debian's first upload of the release[/]")
    if survey.first_seen:
        kinds = {k: [f for f in survey.first_seen if f.kind == k] for k in ("helper", "kfunc")}
        for kind, seen in kinds.items():
            if seen:
                last = max(seen, key=lambda f: f.date)
                console.print(
                    f"{len(seen)} {kind}s dated by first commit; newest: {last.name} "
                    f"({last.date.date()}, {last.commit[:12]})"
                )
    for b in survey.built:
        console.print(
            f"[bold]built kernel[/] {escape(b.target)}: {b.helpers} helpers, {b.kfuncs} kfuncs "
            f"({b.kfuncs_in_modules} in modules)"
        )
        if b.source is not None:
            console.print(
                f"  its sources ({escape(b.source)}): {b.source_helpers} helpers, "
                f"{b.source_kfuncs} kfuncs"
            )
        for reason in b.reasons:
            console.print(f"  - {escape(reason)}")


def _write(args: argparse.Namespace, survey: Survey, progress: ConsoleProgress) -> None:
    console = progress.console
    if args.csv:
        from kfunc.survey.report import write_csv

        for path in write_csv(survey, args.csv):
            console.print(f"[green]✓[/] wrote {escape(str(path))}")
    if args.json:
        from kfunc.survey.report import write_json

        console.print(f"[green]✓[/] wrote {escape(str(write_json(survey, args.json)))}")
    if args.chart:
        from kfunc.survey.chart import draw_chart

        with progress.step("drawing the chart") as step:
            drawn = draw_chart(survey, args.chart, args.title)
            step.summary = f"chart: {drawn}"
