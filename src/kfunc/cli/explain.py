"""``kfunc explain [LOGFILE|-] [--obj OBJ.o]``: a verifier rejection in plain words."""

from __future__ import annotations

import argparse
import json
import sys
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
    from kfunc.inputs import check_file, decode, read_bytes, read_stream
    from kfunc.verifier import rejection_line

    if args.log == "-":
        text = decode(read_stream(sys.stdin.buffer, "log", "stdin"), "stdin", errors="replace")
    else:
        text = decode(read_bytes(args.log, "log"), args.log, errors="replace")
    if args.obj:
        check_file(args.obj, "object")
    x = explain_with_object(text, args.obj, args.program)
    if x is None:
        line = rejection_line(text)
        message = "no rule explains this log"
        fix = "read the whole log; kfunc knows the rejections in kfunc.verifier.RULES"
        if args.json:
            print(
                json.dumps(
                    {"ok": False, "error": message, "fix": fix, "rule": None, "line": line},
                    indent=1,
                )
            )
            return 1
        raise KfuncError(
            f"{message} (its rejection line: {line or 'none, the log is empty'!r})", fix
        )
    if args.json:
        print(json.dumps(x.to_dict(), indent=1))
        return 0
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
