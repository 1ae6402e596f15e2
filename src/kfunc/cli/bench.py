"""``kfunc bench calls``: what a kfunc call costs, beside a helper, a subprogram, inline code."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kfunc.callbench import LOOP, bench_host, bench_module

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="time kfunc calls against helpers, subprograms and inline code",
        description="Time a kfunc call, a BPF helper call, a BPF subprogram call and inline "
        f"code, each in a loop of {LOOP} in a tc program run with BPF_PROG_TEST_RUN. Without "
        "--kernel: the host kernel and a vmlinux kfunc; with it: that kernel in a VM and a "
        "module's kfunc.",
    )
    p.add_argument("what", choices=["calls"], help="what to time")
    p.add_argument("--kernel", "-k", help="target kernel (a VM, a module kfunc)")
    p.add_argument("--repeat", type=int, default=2000, help="test runs to average (default 2000)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=_bench)


def _bench(args: argparse.Namespace) -> int:
    if args.kernel:
        from kfunc.cli.output import ConsoleProgress
        from kfunc.kernels.target import get_kernel

        progress = ConsoleProgress(quiet=args.json)
        kernel = get_kernel(args.kernel, progress)
        costs = bench_module(kernel, args.repeat, progress)
        where = f"kernel {kernel.release} in a VM"
    else:
        import os

        costs = bench_host(args.repeat)
        where = f"host kernel {os.uname().release}"
    if args.json:
        print(json.dumps({"where": where, "loop": LOOP, "costs": [c.to_dict() for c in costs]}))
        return 0
    helper = next(c for c in costs if c.kind == "helper").call_ns
    print(f"{where}: ns per call over inline code, loops of {LOOP}, {args.repeat} test runs")
    print(f"{'kind':<8} {'ns/call':>8} {'x helper':>9}  what")
    for c in costs:
        ratio = f"{c.call_ns / helper:9.2f}" if helper > 0 else f"{'-':>9}"
        print(f"{c.kind:<8} {c.call_ns:>8.2f} {ratio}  {c.what}")
    return 0
