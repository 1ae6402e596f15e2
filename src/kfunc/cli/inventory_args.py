"""The options that pick whose kfuncs ``ls`` and ``header`` read."""

from __future__ import annotations

import argparse
from typing import Any

from kfunc.cli.kernel_args import add_kernel_root
from kfunc.errors import KfuncError
from kfunc.inventory import Inventory, default_base, file_inventory, host_files, host_inventory

__all__ = ["add_selectors", "inventory_files", "load_inventory"]


def add_selectors(p: Any) -> None:
    """--kernel / --btf / --ko (one of them; the running kernel by default),
    --base and --module."""
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--kernel", "-k", metavar="KERNEL",
        help="a target kernel (6.1, 6.12, an exact Debian release, an installed kernel's "
        "image, a kernel build tree): its vmlinux and every module of it",
    )  # fmt: skip
    add_kernel_root(p)
    which.add_argument(
        "--btf", metavar="FILE",
        help="a BTF file (/sys/kernel/btf/*, a .BTF dump) or an ELF file with .BTF (vmlinux)",
    )  # fmt: skip
    which.add_argument("--ko", metavar="FILE", help="a kernel module (.ko, .ko.xz ...)")
    p.add_argument(
        "--base", metavar="FILE",
        help="the vmlinux (BTF or ELF) that --ko/--btf split BTF builds on "
        "(default for a .ko: the kernel its vermagic names)",
    )  # fmt: skip
    p.add_argument("--module", "-m", metavar="NAME", help="only the kfuncs of this owner")


def inventory_files(args: argparse.Namespace) -> list[str] | None:
    """The files the selectors' listing is computed from: the BTF, vmlinux or
    .ko, then its base (a .ko's default base is resolved here, into
    ``args.base``), or the running kernel's. None for a target kernel: which
    release ``6.12`` names, and its modules, are more than a few files."""
    if args.kernel:
        return None
    path = args.btf if args.btf is not None else args.ko
    if path is None:
        return [str(p) for p in host_files(args.module)]
    if args.base is None:
        base = default_base(path)
        args.base = None if base is None else str(base)
    return [path] if args.base is None else [path, args.base]


def load_inventory(args: argparse.Namespace, quiet: bool = False) -> Inventory:
    """The inventory the selectors name; the running kernel's BTF by default.
    Reading a whole kernel shows progress on stderr unless ``quiet``."""
    if args.base is not None and args.btf is None and args.ko is None:
        raise KfuncError("--base: no split BTF to read", "use --base with --btf FILE or --ko FILE")
    if args.kernel:
        # Only a kernel target needs rich and the package machinery.
        from kfunc.cli.output import ConsoleProgress
        from kfunc.inventory import kernel_inventory
        from kfunc.kernels.target import get_kernel

        progress = ConsoleProgress(quiet=quiet)
        kernel = get_kernel(args.kernel, progress)
        with progress.step(f"kfuncs of kernel {kernel}"):
            inv = kernel_inventory(kernel, progress)
    elif args.btf is not None or args.ko is not None:
        inv = file_inventory(args.btf if args.btf is not None else args.ko, args.base)
    else:
        return host_inventory(args.module)
    return inv.select(args.module) if args.module else inv
