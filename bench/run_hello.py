"""The tutorial's edit-to-result time: `kfunc run examples/hello`, warm caches.

Runs the whole command (`--boot`: a fresh guest) N times after one warm-up
run and prints each phase (build and checks on the host; qemu start, kernel
boot to the agent, the steps, power-off in the guest) with its median. Beside
it, in the same sitting and interleaved with it, the reference: a bare
virtme-ng round trip on the same kernel (``vng --run <vmlinuz> --disable-kvm
--cpus 1 --force-9p --exec 'uname -r'``), and the ratio of the medians, the
figure that holds on a shared, noisy machine. Then the edit cycle against a
kept guest (`kfunc vm start`): the BPF program is edited before each run, so
clang rebuilds it every time (``--no-edit-cycle`` skips it).

    python bench/run_hello.py [--runs 3] [--kernel 6.12] [--no-edit-cycle]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = ["prepare", "vm_start", "boot", "boot_kernel", "boot_python", "boot_agent",
          "wait_build", "steps", "poweroff", "guest", "total"]  # fmt: skip


def kfunc(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "kfunc", *args], cwd=ROOT, check=True)


def bare_vng(kernel: str) -> float:
    """One bare virtme-ng round trip on ``kernel`` (the reference): its wall time."""
    from kfunc.kernels.target import get_kernel

    vng = Path(sys.executable).parent / "vng"
    vmlinuz = str(get_kernel(kernel).boot_path)
    env = dict(os.environ, PATH=f"{vng.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with tempfile.TemporaryDirectory() as tmp:
        env["TMPDIR"] = tmp
        start = time.monotonic()
        subprocess.run(
            [str(vng), "--run", vmlinuz, "--disable-kvm", "--cpus", "1", "--force-9p",
             "--exec", "uname -r"],
            stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False,
        )  # fmt: skip
        return time.monotonic() - start


def one_run(
    kernel: str, project: str = "examples/hello", boot: bool = False
) -> tuple[float, dict[str, float]]:
    start = time.monotonic()
    argv = [sys.executable, "-m", "kfunc", "run", project, "--kernel", kernel, "--json"]
    out = subprocess.run(
        argv + (["--boot"] if boot else []),
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
    parser.add_argument("--no-edit-cycle", action="store_true", help="fresh boots only")
    args = parser.parse_args()

    print(f"warm-up run on {args.kernel} ...", flush=True)
    one_run(args.kernel, boot=True)
    walls, phases, bare = [], [], []
    for i in range(args.runs):
        bare.append(bare_vng(args.kernel))
        wall, seconds = one_run(args.kernel, boot=True)
        walls.append(wall)
        phases.append(seconds)
        print(f"run {i + 1}: bare vng {bare[-1]:.2f} s, kfunc {wall:.2f} s wall", flush=True)

    print(f"\nkfunc run examples/hello --kernel {args.kernel} --boot, warm, {args.runs} runs")
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
    reference = statistics.median(bare)
    print(f"{'bare vng':<10} {reference:>9.2f} {min(bare):>7.2f} {max(bare):>7.2f}")
    print(f"ratio kfunc / bare vng (medians of wall): {wall / reference:.2f}", flush=True)
    if args.no_edit_cycle:
        return

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
