"""``kfunc diff A B``: how the kfunc API changed between two kernels."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kfunc.apidiff import Change, KfuncDiff, diff_inventories
from kfunc.inventory import HOST, Inventory, Kfunc, inventory_of

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="compare the kfuncs (and helper counts) of two kernels",
        description="Show kfuncs added, removed, with a changed prototype or changed KF_* "
        "flags between A and B, and both kernels' BPF helper counts. A and B are kernel "
        f"versions (6.1, 6.12, an exact Debian release), '{HOST}' (the running kernel), "
        "or files (BTF, vmlinux, .ko).",
    )
    p.add_argument("old", metavar="A")
    p.add_argument("new", metavar="B")
    p.add_argument("--module", "-m", metavar="NAME", help="compare this owner's kfuncs only")
    p.add_argument("--json", action="store_true", help="print the difference as one JSON object")
    p.set_defaults(func=_diff)


def _load(spec: str, args: argparse.Namespace) -> Inventory:
    from kfunc.cli.output import ConsoleProgress

    progress = ConsoleProgress(quiet=args.json)
    with progress.step(f"kfuncs of {spec}"):
        inv = inventory_of(spec, progress)
    return inv.select(args.module) if args.module else inv


def _diff(args: argparse.Namespace) -> int:
    d = diff_inventories(_load(args.old, args), _load(args.new, args))
    if args.json:
        print(json.dumps(d.to_dict(), indent=1))
    else:
        show(d)
    return 0


def _kfunc_line(mark: str, k: Kfunc) -> str:
    flags = f"  [{' | '.join(k.flags)}]" if k.flags else ""
    return f"  {mark} {k.prototype}  ({k.owner}){flags}"


def _change_lines(c: Change) -> list[str]:
    if c.what == "prototype":
        return [f"  ~ {c.name}", f"      - {c.old}", f"      + {c.new}"]
    return [f"  ~ {c.name}: {c.old} -> {c.new}"]


def show(d: KfuncDiff) -> None:
    """The difference as text: a summary, then each list."""
    old, new = d.old, d.new
    out = [
        f"A: {old.target}: {len(old.kfuncs)} kfuncs, {old.helpers} helpers",
        f"B: {new.target}: {len(new.kfuncs)} kfuncs, {new.helpers} helpers",
        f"kfuncs: {d.summary}",
    ]
    sections: list[tuple[str, list[str]]] = [
        ("added", [_kfunc_line("+", k) for k in d.added]),
        ("removed", [_kfunc_line("-", k) for k in d.removed]),
        ("prototype changed", [x for c in d.prototype_changed for x in _change_lines(c)]),
        ("flags changed", [x for c in d.flags_changed for x in _change_lines(c)]),
        ("moved", [x for c in d.moved for x in _change_lines(c)]),
    ]
    for title, lines in sections:
        if lines:
            out += ["", f"{title}:", *lines]
    sys.stdout.write("\n".join(out) + "\n")
