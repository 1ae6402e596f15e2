"""The tutorial's edit-to-result time: `kfunc run examples/hello`, warm caches.

Runs the whole command N times after one warm-up run and prints each phase
(build and checks on the host; qemu start, kernel boot to the agent, the
steps, power-off in the guest) with its median, beside the hand-written
script that MISSION.md measured on these machines (18.6 s, 16.8 s of it in
the VM). Then the edit cycle against a kept guest (`kfunc vm start`): the BPF
program is edited before each run, so clang rebuilds it every time.

    python bench/run_hello.py [--runs 3] [--kernel 6.12]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HAND_WRITTEN_TOTAL = 18.6
HAND_WRITTEN_VM = 16.8
PHASES = ["prepare", "vm_start", "boot", "steps", "poweroff", "guest", "total"]


def kfunc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "kfunc", *args], cwd=ROOT, check=True)


def one_run(kernel: str, project: str = "examples/hello") -> tuple[float, dict[str, float]]:
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "run", project, "--kernel", kernel, "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    wall = time.monotonic() - start
    report = json.loads(out.stdout)
    if not report.get("ok"):
        sys.exit(f"run failed: {report.get('error')}")
    return wall, report["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kernel", default="6.12")
    args = parser.parse_args()

    print(f"warm-up run on {args.kernel} ...", flush=True)
    one_run(args.kernel)
    walls, phases = [], []
    for i in range(args.runs):
        wall, seconds = one_run(args.kernel)
        walls.append(wall)
        phases.append(seconds)
        print(f"run {i + 1}: {wall:.2f} s wall", flush=True)

    print(f"\nkfunc run examples/hello --kernel {args.kernel}, warm, {args.runs} runs")
    print(f"{'phase':<10} {'median s':>9} {'min s':>7} {'max s':>7}")
    for phase in PHASES:
        values = [p[phase] for p in phases if phase in p]
        if values:
            print(
                f"{phase:<10} {statistics.median(values):>9.2f} "
                f"{min(values):>7.2f} {max(values):>7.2f}"
            )
    wall = statistics.median(walls)
    print(f"{'wall':<10} {wall:>9.2f} {min(walls):>7.2f} {max(walls):>7.2f}")
    print(
        f"\nhand-written script (MISSION.md): {HAND_WRITTEN_TOTAL} s total, "
        f"{HAND_WRITTEN_VM} s in the VM"
    )
    print(f"ratio kfunc / hand-written (wall): {wall / HAND_WRITTEN_TOTAL:.2f}")

    print(f"\nedit cycle against a kept guest ({args.runs} runs, the BPF program edited each time)")
    kfunc("vm", "start", "--kernel", args.kernel)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = Path(tmp) / "hello"
            skip = shutil.ignore_patterns("build")
            shutil.copytree(ROOT / "examples/hello", project, ignore=skip)
            bpf = project / "hello.bpf.c"
            source = bpf.read_text()
            cycles = []
            for i in range(args.runs):
                bpf.write_text(source + f"/* edit {i} */\n")
                wall, _ = one_run(args.kernel, str(project))
                cycles.append(wall)
                print(f"edit {i + 1}: {wall:.2f} s wall", flush=True)
    finally:
        kfunc("vm", "stop", "--kernel", args.kernel)
    print(f"edit-to-result against a kept guest: median {statistics.median(cycles):.2f} s "
          f"(min {min(cycles):.2f}, max {max(cycles):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
