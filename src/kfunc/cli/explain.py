"""``kfunc explain [LOGFILE|-] [--obj OBJ.o]``: a verifier rejection in plain words."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="explain a verifier log (libbpf, bpftool, cilium/ebpf, aya)",
        description="Read a verifier log (or a loader's error output) and say what went "
        "wrong, at which instruction and source line, and the fix. With --obj, the object's "
        "BTF line info gives file and line where the log has none (kernels before 6.8).",
    )
    p.add_argument("log", nargs="?", default="-", metavar="LOGFILE", help="the log; - for stdin")
    p.add_argument("--obj", metavar="OBJ.o", help="the BPF object the log is about")
    p.add_argument("--program", "-p", metavar="NAME", help="the program, if the log says not")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.set_defaults(func=_explain)


def _explain(args: argparse.Namespace) -> int:
    from kfunc.explain import explain_with_object

    if args.log == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(args.log).read_text(errors="replace")
        except OSError as exc:
            raise KfuncError(
                f"{args.log}: {exc.strerror}", "pass a log file, or - for stdin"
            ) from None
    if args.obj and not Path(args.obj).is_file():
        raise KfuncError(f"{args.obj}: no such object", "pass the BPF object the log is about")
    x = explain_with_object(text, args.obj, args.program)
    if args.json:
        print(json.dumps(x.to_dict() if x else None, indent=1))
        return 0 if x else 1
    if x is None:
        from kfunc.verifier import rejection_line

        last = rejection_line(text)
        raise KfuncError(
            f"no rule explains this log (its verdict: {last or 'empty'!r})",
            "read the whole log; kfunc knows the rejections in kfunc.verifier.RULES",
        )
    prog = f"prog '{x.program}': " if x.program else ""
    print(f"error: {prog}{x.message}")
    if x.insn is not None:
        print(f"  at: insn {x.insn}" + (f": {x.insn_text}" if x.insn_text else ""))
    if x.source is not None:
        where = f"{x.source.file}:{x.source.line}" if x.source.file else "source"
        print(f"  {where}: {x.source.text.strip()}")
    print(f"  verifier: {x.line}")
    print(f"fix: {x.fix}")
    if args.verbose:
        print("--- verifier log ---")
        print(text.rstrip())
    return 0
