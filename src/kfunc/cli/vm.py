"""``kfunc vm start|stop|status``: a kept guest, booted once, used by run and test."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from kfunc.cli.output import ConsoleProgress
from kfunc.kernels.target import DEFAULT_KERNEL, get_kernel
from kfunc.vm.keeper import find_kept, kept_guests, start_kept, stop_kept

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "vm",
        help="keep a booted guest for fast runs (start, stop, status)",
        description="Boot a target kernel once and keep it: `kfunc run` and `kfunc test` use "
        "it instead of booting. It powers off at `kfunc vm stop` or after --lifetime seconds.",
    )
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("--kernel", "-k", default=DEFAULT_KERNEL, help="target kernel (default 6.12)")
    p.add_argument("--lifetime", type=float, default=3600.0, help="power off after this (seconds)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=_vm)


def _vm(args: argparse.Namespace) -> int:
    if args.action == "status":
        rows = [
            {
                "release": k.release,
                "pid": k.pid,
                "up_seconds": round(time.time() - k.started),
                "lifetime": k.lifetime,
                "console": k.console,
            }
            for k in kept_guests()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no kept guest (kfunc vm start boots one)")
        for r in rows:
            print(
                f"{r['release']}: up {r['up_seconds']} s of {r['lifetime']:.0f} s, "
                f"keeper pid {r['pid']}, console {r['console']}"
            )
        return 0
    progress = ConsoleProgress()
    kernel = get_kernel(args.kernel, progress)
    if args.action == "start":
        with progress.step(f"kept guest {kernel.release}: booting") as step:
            started = start_kept(kernel, lifetime=args.lifetime)
            step.summary = f"kept guest {kernel.release} up (keeper pid {started.pid})"
        return 0
    kept = find_kept(kernel)
    if kept is None:
        print(f"no kept guest of {kernel.release}")
        return 0
    with progress.step(f"kept guest {kernel.release}: powering off"):
        stop_kept(kept)
    return 0
