"""A fresh guest restored from its snapshot against a fresh vng boot, in one run.

Each figure is taken from a new process, from its start to the guest's first
answer: the restored guest (kfunc.vm.snapshot, after one warm-up that makes
the snapshot if there is none), and virtme-ng's boot with the serving agent
(kfunc.vm.session, as with KFUNC_SNAPSHOT=0). Then the tutorial,
`kfunc run examples/hello`, both ways. Ratios are what holds from machine to
machine; the seconds depend on the load of the host.

    python bench/snapshot.py [--runs 3] [--kernel 6.12] [--no-hello]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child: start a fresh guest, ask it once, print the monotonic time of the answer.
_CHILD = """
import json, sys, time
from kfunc.kernels.target import get_kernel
kernel = get_kernel(sys.argv[1])
if sys.argv[2] == "restore":
    from kfunc.vm.snapshot import SnapshotSession as Session
else:
    from kfunc.vm.session import GuestSession as Session
with Session(kernel) as session:
    session.run_steps([])
    answered = time.monotonic()
    restored = getattr(session, "restored", None)
print(json.dumps({"answered": answered, "restored": restored}))
"""


def first_answer(kernel: str, how: str) -> tuple[float, bool | None]:
    """Seconds from the command's start to the guest's first answer."""
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kernel, how],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        sys.exit(f"{how} failed: {out.stderr.strip()[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["answered"] - start, data["restored"]


def hello(kernel: str, snapshot: bool, boot: bool = False) -> float:
    """``kfunc run examples/hello``'s wall time: restored, booted on kfunc's machine
    (``boot``), or booted with virtme-ng (not ``snapshot``)."""
    env = dict(os.environ, KFUNC_SNAPSHOT="1" if snapshot else "0")
    argv = [sys.executable, "-m", "kfunc", "run", "examples/hello", "--kernel", kernel, "--json"]
    start = time.monotonic()
    out = subprocess.run(
        argv + (["--boot"] if boot else []),
        capture_output=True, text=True, cwd=ROOT, check=False, env=env,
    )  # fmt: skip
    wall = time.monotonic() - start
    if not json.loads(out.stdout).get("ok"):
        sys.exit(f"kfunc run failed: {out.stdout[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kernel", default="6.12")
    parser.add_argument("--no-hello", action="store_true", help="skip the kfunc run figures")
    args = parser.parse_args()

    warm, restored = first_answer(args.kernel, "restore")
    print(f"warm-up: {warm:.2f} s ({'restored' if restored else 'booted and saved'})")
    restores = [first_answer(args.kernel, "restore")[0] for _ in range(args.runs)]
    boot, _ = first_answer(args.kernel, "boot")
    r = statistics.median(restores)
    print(f"first answer, restored (median of {args.runs}): {r:.2f} s  "
          f"[{', '.join(f'{x:.2f}' for x in restores)}]")  # fmt: skip
    print(f"first answer, vng boot:                 {boot:.2f} s")
    print(f"ratio boot / restore:                   {boot / r:.1f}x")
    if not args.no_hello:
        fast = hello(args.kernel, snapshot=True)
        machine = hello(args.kernel, snapshot=True, boot=True)
        slow = hello(args.kernel, snapshot=False)
        print(f"kfunc run examples/hello, restored:     {fast:.2f} s")
        print(f"kfunc run examples/hello, --boot:       {machine:.2f} s (kfunc's machine)")
        print(f"kfunc run examples/hello, vng boot:     {slow:.2f} s")
        print(f"ratio vng boot / restored:              {slow / fast:.1f}x")
    load = os.getloadavg()[0]
    print(f"(load average at the end: {load:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
