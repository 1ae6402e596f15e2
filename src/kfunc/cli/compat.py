"""``kfunc compat``: the shim header that lets a hand-written kfunc module build
on every kernel from 6.1 to 7.x."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kfunc.outputs import write_output

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "compat",
        help="write compat.h: the kfunc API shims a hand-written module needs on older kernels",
        description="Write the header of #ifndef fallbacks for the kfunc API a hand-written "
        "module may use (__bpf_kfunc 6.3, __bpf_kfunc_start_defs and __bpf_hook_start 6.7, "
        "BTF_KFUNCS_START 6.9, flags that arrived later or became the default). Include it "
        "after the kernel headers; the module then builds from 6.1 to 7.x.",
    )
    p.add_argument(
        "--kernel", "-k", metavar="VER",
        help="only what this kernel's headers lack (default: every shim, #ifndef-guarded)",
    )  # fmt: skip
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_compat)


def _compat(args: argparse.Namespace) -> int:
    from kfunc.codegen.shims import compat_header

    if args.kernel:
        from kfunc.kernels.facts import header_macros
        from kfunc.kernels.target import get_kernel

        kernel = get_kernel(args.kernel)
        text = compat_header(header_macros(kernel), str(kernel.version))
    else:
        text = compat_header()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    # Whole or not at all, and written in place if it is a device (-o /dev/null).
    out = Path(args.output)
    write_output(out, text)
    print(f'{out}: written; add #include "{out.name}" after the kernel headers', file=sys.stderr)
    return 0
