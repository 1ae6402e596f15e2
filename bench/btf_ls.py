"""Time `kfunc ls --btf /sys/kernel/btf/vmlinux --json` as a whole command (the
`kfunc` console script, else `python -m kfunc`) against
`bpftool btf dump file /sys/kernel/btf/vmlinux format c`, in the same run.

Cold: a fresh, empty kfunc cache for every repetition (the BTF is parsed and
every kfunc rendered). Repeated: the per-file inventory cache is warm. Each
figure is the median wall time of --reps runs of the whole process. Python
runs with its bytecode cache, as an installed kfunc does (this environment
sets PYTHONDONTWRITEBYTECODE, which would recompile every module every run).

    .venv/bin/python bench/btf_ls.py [--reps 15] [--btf /sys/kernel/btf/vmlinux]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--btf", default="/sys/kernel/btf/vmlinux")
    args = parser.parse_args()
    if shutil.which("bpftool") is None:
        print("bpftool not installed (apt-get install bpftool)", file=sys.stderr)
        return 1
    # The command as a user runs it: the console script next to this Python.
    script = Path(sys.executable).with_name("kfunc")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "kfunc"]
    ls = [*command, "ls", "--btf", args.btf, "--json"]
    dump = ["bpftool", "btf", "dump", "file", args.btf, "format", "c"]
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp:
        warm_env = dict(base_env, KFUNC_CACHE=str(Path(tmp, "warm")))
        timed(ls, warm_env)  # fills the warm cache, and the page cache
        timed(dump)
        cold, warm, ref = [], [], []
        for rep in range(args.reps):
            cold_env = dict(base_env, KFUNC_CACHE=str(Path(tmp, f"cold{rep}")))
            cold.append(timed(ls, cold_env))
            warm.append(timed(ls, warm_env))
            ref.append(timed(dump))
    bpftool = statistics.median(ref)
    print(f"{args.btf}, median of {args.reps} runs of each whole command")
    print(f"  bpftool btf dump ... format c     {1000 * bpftool:7.1f} ms")
    for label, runs in (("cold (no kfunc cache)", cold), ("repeated (cache warm)", warm)):
        ours = statistics.median(runs)
        print(f"  kfunc ls --json, {label:<16} {1000 * ours:7.1f} ms  ratio {ours / bpftool:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
