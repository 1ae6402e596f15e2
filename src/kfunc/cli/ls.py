"""``kfunc ls``: every kfunc of a kernel, a BTF/ELF file or a module."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any, TextIO

from kfunc.cli.inventory_args import add_selectors, load_inventory
from kfunc.kfuncs import Inventory

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ls",
        help="list the kfuncs of a kernel, BTF file or module",
        description="List every kfunc with its C prototype, owner (vmlinux or module) and "
        "KF_* flags. Reads BTF decl tags where the kernel has them (pahole >= 1.27), else "
        "the kfunc sets in .BTF_ids. Default: the running kernel's /sys/kernel/btf/vmlinux.",
    )
    add_selectors(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")
    p.set_defaults(func=_ls)


def _ls(args: argparse.Namespace) -> int:
    inv = load_inventory(args, quiet=args.json)
    if args.json:
        json.dump([k.to_dict() for k in inv.kfuncs], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        show_table(inv, sys.stdout)
        owners = Counter(k.owner for k in inv.kfuncs)
        per_owner = ", ".join(f"{o}: {n}" for o, n in owners.items())
        print(f"{len(inv.kfuncs)} kfunc(s) in {inv.target} ({per_owner})", file=sys.stderr)
    return 0


def show_table(inv: Inventory, out: TextIO) -> None:
    """Columns NAME, OWNER, FLAGS (``-`` where the source has none), PROTOTYPE."""
    rows = [("NAME", "OWNER", "FLAGS", "PROTOTYPE")]
    rows += [(k.name, k.owner, "|".join(k.flags or ()) or "-", k.prototype) for k in inv.kfuncs]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        out.write(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}\n")
