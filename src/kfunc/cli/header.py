"""``kfunc header``: ``extern ... __ksym;`` declarations for a BPF program."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kfunc.cli.inventory_args import add_selectors, inventory_files, load_inventory
from kfunc.inventory import ksym_header
from kfunc.outputs import check_not_input, write_output

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "header",
        help="write a C header declaring kfuncs for BPF programs",
        description="Write `extern <prototype> __ksym;` declarations for the selected "
        "kfuncs, to #include after vmlinux.h in BPF C.",
    )
    add_selectors(p)
    p.add_argument(
        "--kfunc", action="append", default=[], metavar="NAME",
        help="declare only this kfunc (repeatable; default: all)",
    )  # fmt: skip
    p.add_argument(
        "--weak", action="store_true",
        help="declare them __weak, for programs that check bpf_ksym_exists()",
    )  # fmt: skip
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_header)


def _header(args: argparse.Namespace) -> int:
    if args.output is not None:
        check_not_input(args.output, inventory_files(args) or [], "-o")
    inv = load_inventory(args, quiet=True).select(names=args.kfunc)
    text = ksym_header(inv.kfuncs, weak=args.weak)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    write_output(args.output, text)
    print(f"{args.output}: {len(inv.kfuncs)} kfunc declaration(s)", file=sys.stderr)
    return 0
