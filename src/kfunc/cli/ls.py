"""``kfunc ls``: every kfunc of a kernel, a BTF/ELF file or a module."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from typing import Any, TextIO

from kfunc.cli import answers
from kfunc.cli.inventory_args import add_selectors, inventory_files, load_inventory
from kfunc.inventory import SOURCE_DECL_TAG, Inventory, Kfunc, public_form

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
    p.add_argument(
        "--probe", action="store_true",
        help="with --kernel: boot it once and ask its verifier which program types may call "
        "each vmlinux kfunc (cached per kernel; --refresh to ask again)",
    )  # fmt: skip
    p.add_argument("--refresh", action="store_true", help="with --probe: ignore the cache")
    p.set_defaults(func=_ls)


def _ls(args: argparse.Namespace) -> int:
    # A listing of files (not a kernel, not a probe) is stored for replay; the
    # files' identities are taken before they are read.
    files = None if args.probe else inventory_files(args)
    inputs = answers.identities(files) if files is not None else None
    inv = load_inventory(args, quiet=args.json)
    allowed = _probe(args) if args.probe else _probed(args)
    out = io.StringIO()
    summary = ""
    if args.json:
        rows = [k.to_dict() for k in inv.kfuncs]
        for k, row in zip(inv.kfuncs, rows, strict=True):
            public = public_form(k, inv.kfuncs)
            if public is not None:
                row["public"] = public._asdict()
        if allowed is not None:
            for row in rows:
                by_type = allowed.get(row["name"])
                row["prog_types"] = (
                    sorted(t for t, ok in by_type.items() if ok) if by_type else None
                )
        json.dump(rows, out, indent=1)
        out.write("\n")
    else:
        show_table(inv, out, allowed)
        owners = Counter(k.owner for k in inv.kfuncs)
        per_owner = ", ".join(f"{o}: {n}" for o, n in owners.items())
        summary = f"{len(inv.kfuncs)} kfunc(s) in {inv.target} ({per_owner})\n"
    summary += _flags_note(inv)
    sys.stdout.write(out.getvalue())
    sys.stderr.write(summary)
    if inputs is not None:
        answers.store(args.argv, inputs, out.getvalue(), summary)
    return 0


def _flags_note(inv: Inventory) -> str:
    """Where the listing has no KF_* flags because its source has none (raw BTF: the
    running kernel's /sys/kernel/btf/vmlinux), where to get them."""
    if not inv.kfuncs or any(k.source != SOURCE_DECL_TAG for k in inv.kfuncs):
        return ""
    return (
        "flags: not in raw BTF: KF_* flags live in the .BTF_ids section of the kernel's "
        "vmlinux ELF; pass it with --btf (Debian: /usr/lib/debug/boot/vmlinux-$(uname -r) "
        "from linux-image-$(uname -r)-dbg; a vmlinux out of the bzImage, see "
        "scripts/extract-vmlinux), or a target with --kernel VER\n"
    )


def _probed(args: argparse.Namespace) -> dict[str, dict[str, bool]] | None:
    """A kernel target's probe from an earlier ``--probe`` (kept in its cache), if any."""
    if not args.kernel:
        return None
    from kfunc.kernels.target import get_kernel
    from kfunc.probe import load_probe

    return load_probe(get_kernel(args.kernel))


def _probe(args: argparse.Namespace) -> dict[str, dict[str, bool]]:
    from kfunc.cli.output import ConsoleProgress
    from kfunc.errors import KfuncError
    from kfunc.kernels.target import get_kernel
    from kfunc.probe import probe_kernel

    if not args.kernel:
        raise KfuncError("--probe needs a target kernel", "add --kernel VER (6.1, 6.12 ...)")
    progress = ConsoleProgress(quiet=args.json)
    result = probe_kernel(get_kernel(args.kernel, progress), progress, refresh=args.refresh)
    cached = " [cached]" if result.cached else ""
    print(
        f"probe of {result.kernel}: {result.loads} loads of {len(result.probed)} kfunc caller(s) "
        f"in one boot, {result.seconds:.1f} s ({result.guest_seconds:.1f} s in the guest, "
        f"{result.load_seconds:.1f} s of it loading){cached}",
        file=sys.stderr,
    )
    return result.allowed


def show_table(
    inv: Inventory, out: TextIO, allowed: dict[str, dict[str, bool]] | None = None
) -> None:
    """Columns NAME, OWNER, FLAGS (``-`` where the source has none), PROTOTYPE; with
    ``allowed`` (a probe), PROG_TYPES before the prototype."""
    head: tuple[str, ...] = ("NAME", "OWNER", "FLAGS", "PROTOTYPE")
    rows: list[tuple[str, ...]] = [
        (k.name, k.owner, "|".join(k.flags or ()) or "-", _prototype(k, inv)) for k in inv.kfuncs
    ]
    if allowed is not None:
        head = ("NAME", "OWNER", "FLAGS", "PROG_TYPES", "PROTOTYPE")
        rows = [
            (*r[:3], ",".join(sorted(t for t, ok in allowed.get(r[0], {}).items() if ok)) or "-",
             r[3])
            for r in rows
        ]  # fmt: skip
    table = [head, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head) - 1)]
    for r in table:
        cells = [f"{c:<{w}}" for c, w in zip(r[:-1], widths, strict=True)]
        out.write("  ".join([*cells, r[-1]]) + "\n")


def _prototype(k: Kfunc, inv: Inventory) -> str:
    """The prototype; for an ``_impl`` kfunc, also how programs call it."""
    public = public_form(k, inv.kfuncs)
    if public is None:
        return k.prototype
    how = "the kfunc" if public.how == "kfunc" else "bpf_experimental.h's macro"
    return f"{k.prototype}  /* call {public.name}() ({how}): {public.prototype} */"
