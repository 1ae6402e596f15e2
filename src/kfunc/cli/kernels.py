"""``kfunc kernels``: the kernels kfunc knows, what is cached, and removing it."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from kfunc.cli.output import ConsoleProgress

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "kernels",
        help="the kernels kfunc knows, which are cached, their size; remove them",
        description="List the kernel series --kernel accepts (with the Debian suite each "
        "comes from and its newest release), the kernels and build root filesystems in "
        "kfunc's cache with their size on disk; remove them.",
    )
    p.add_argument("--cached", action="store_true", help="only the cache: do not ask apt")
    p.add_argument("--refresh", action="store_true", help="update kfunc's private apt lists")
    p.add_argument(
        "--remove", metavar="RELEASE", action="append", default=[],
        help="remove a cached kernel (an exact release, or a series: all of it) and its builds; "
        "for a local kernel (its image or tree), what kfunc keeps about it",
    )  # fmt: skip
    p.add_argument(
        "--remove-rootfs", metavar="SUITE", action="append", default=[],
        help="remove a build root filesystem (made again when a kernel needs it)",
    )  # fmt: skip
    p.add_argument(
        "--release", metavar="KERNEL",
        help="print the exact release KERNEL (a series) stands for now, downloading nothing "
        "(a CI cache key)",
    )  # fmt: skip
    p.add_argument(
        "--remove-snapshot", metavar="RELEASE", action="append", default=[],
        help="remove a kernel's saved guest (a release, a series, or 'all'; made again "
        "at its next fresh guest)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the listing as one JSON object")
    p.set_defaults(func=_kernels)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _kernels(args: argparse.Namespace) -> int:
    from kfunc.kernels.catalog import catalog, release_of, remove, remove_rootfs

    if args.release:
        print(release_of(args.release))
        return 0
    console = Console(highlight=False, soft_wrap=True)
    if args.remove or args.remove_rootfs or args.remove_snapshot:
        for name in args.remove:
            for release, freed in remove(name):
                console.print(f"removed kernel {escape(release)} ({_size(freed)})")
        for suite in args.remove_rootfs:
            console.print(f"removed rootfs {escape(suite)} ({_size(remove_rootfs(suite))})")
        for release in args.remove_snapshot:
            from kfunc.vm.snapshot import remove_snapshots

            gone = remove_snapshots(None if release == "all" else release)
            for name, freed in gone:
                console.print(f"removed snapshot {escape(name)} ({_size(freed)})")
            if not gone:
                console.print(f"no snapshot of {escape(release)}")
        return 0
    progress = ConsoleProgress(quiet=args.json)
    with progress.step("kernels: asking apt for the newest releases" if not args.cached
                       else "kernels: reading the cache"):  # fmt: skip
        cat = catalog(progress, lookup=not args.cached, refresh=args.refresh)
    if args.json:
        print(json.dumps(cat.to_dict(), indent=2))
        return 0
    cached = {c.kernel.release: c for c in cat.kernels if c.kernel.key == c.kernel.release}
    local = [c for c in cat.kernels if c.kernel.key != c.kernel.release]
    console.print("[bold]SERIES  SUITE              NEWEST RELEASE         CACHED[/]")
    for s in cat.series:
        have = [c for c in cached.values() if c.kernel.series == s.series]
        mark = ", ".join(c.kernel.release for c in have) or "-"
        newest = s.newest or ("?" if not args.cached else "")
        console.print(f"{s.series:<7} {s.suite:<18} {escape(newest):<22} {escape(mark)}")
    if cat.kernels:
        console.print("\n[bold]CACHED KERNEL              SERIES  SIZE      BUILDS IN[/]")
        for release, c in cached.items():
            where = f"rootfs {c.kernel.rootfs}" if c.kernel.rootfs else "the host"
            console.print(f"{escape(release):<26} {c.kernel.series:<7} {_size(c.bytes):<9} {where}")
    if local:
        console.print("\n[bold]LOCAL KERNEL               KIND       SIZE      SOURCE[/]")
        for c in local:
            k, size = c.kernel, _size(c.bytes)
            kind = k.to_dict()["kind"]
            console.print(f"{escape(k.release):<26} {kind:<10} {size:<9} {escape(k.spec)}")
    if cat.rootfs:
        console.print("\n[bold]ROOTFS   SIZE      PATH[/]")
        for r, n in cat.rootfs:
            state = "" if r.ready else "  (incomplete)"
            console.print(f"{r.suite:<8} {_size(n):<9} {escape(str(r.path))}{state}")
    if cat.snapshots:
        console.print("\n[bold]SNAPSHOT OF                SIZE      BOOT SAVED  PATH[/]")
        for snap in cat.snapshots:
            console.print(f"{escape(snap.release):<26} {_size(snap.size):<9} "
                          f"{snap.seconds:>8.1f} s  {escape(str(snap.path))}")  # fmt: skip
    console.print(f"\n[dim]downloaded .deb files: {_size(cat.debs_bytes)}[/]")
    for error in cat.errors:
        console.print(f"[yellow]![/] {escape(error)}")
    console.print(
        "[dim]remove: kfunc kernels --remove RELEASE (or SERIES) | --remove-rootfs SUITE"
        " | --remove-snapshot RELEASE (or all)[/]"
    )
    return 0
