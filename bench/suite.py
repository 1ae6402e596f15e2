"""`make test` from nothing, at two revisions, one after the other, on this machine.

Each revision is cloned afresh from this repository into a temporary
directory and runs `make test` there with an empty ``KFUNC_CACHE``: the
venv, every kernel, root filesystem and linux-source package fetched anew,
as on a fresh CI machine (the Debian packages of `scripts/install-deps.sh`
are the machine's, installed by the first run if missing). Printed for each:
the wall time of `make test`, pytest's own time, what passed, and how busy
the CPUs were; then the ratio of the second to the first. A whole sitting
takes about an hour on a two-core machine; nothing else should run meanwhile.

    python bench/suite.py [--before 9d1146e] [--after HEAD] [--keep]

9d1146e is the last revision before issue 19 (a serial suite).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SUMMARY = re.compile(r"=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s")


@dataclass
class Suite:
    revision: str
    wall: float
    pytest: float | None
    counts: str
    busy: float  # mean share of all CPUs in use during the run
    returncode: int


def _cpu_times() -> tuple[int, int]:
    """(total, idle) jiffies of all CPUs, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields), fields[3] + fields[4]


def _default_sigint() -> None:
    # A suite started from a script in the background inherits SIGINT ignored;
    # its tests of Ctrl-C need the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_suite(revision: str, workdir: Path, log: Path) -> Suite:
    """Clone ``revision`` into ``workdir`` and run its `make test` from nothing."""
    clone = workdir / f"kfunc-{revision}"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", revision], check=True)
    # The clone's ../shared is where the repository's tests find the seed tutorial.
    shared = ROOT.parent / "shared"
    if shared.is_dir() and not (workdir / "shared").exists():
        (workdir / "shared").symlink_to(shared)
    env = {**os.environ, "KFUNC_CACHE": str(workdir / f"cache-{revision}"), "CI": "true",
           "KFUNC_REQUIRE_VM": "1"}  # fmt: skip
    total0, idle0 = _cpu_times()
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["make", "test"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=_default_sigint,
        )  # fmt: skip
        stop = threading.Event()
        ticker = threading.Thread(target=_tick, args=(revision, start, stop), daemon=True)
        ticker.start()
        try:
            returncode = proc.wait()
        finally:
            stop.set()
            if proc.poll() is None:
                proc.terminate()
    wall = time.monotonic() - start
    total1, idle1 = _cpu_times()
    busy = 1 - (idle1 - idle0) / max(1, total1 - total0)
    found = None
    for line in log.read_text(errors="replace").splitlines():
        m = _SUMMARY.search(line)
        if m:
            found = m
    return Suite(
        revision, wall, float(found["seconds"]) if found else None,
        found["counts"] if found else "no summary (see the log)", busy, returncode,
    )  # fmt: skip


def _tick(revision: str, start: float, stop: threading.Event) -> None:
    while not stop.wait(60):
        print(f"  {revision}: {(time.monotonic() - start) / 60:.0f} min", file=sys.stderr)


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--before", default="9d1146e", help="the reference revision (first)")
    ap.add_argument("--after", default="HEAD", help="the revision measured against it")
    ap.add_argument("--keep", action="store_true", help="keep the clones, caches and logs")
    args = ap.parse_args()
    revisions = []
    for rev in (args.before, args.after):
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                             capture_output=True, text=True)  # fmt: skip
        if out.returncode != 0:
            sys.exit(f"bench/suite.py: no revision {rev!r} here: {out.stderr.strip()}")
        revisions.append(out.stdout.strip())
    workdir = Path(tempfile.mkdtemp(prefix="kfunc-suite-"))
    workdir.chmod(0o755)  # test_faults runs kfunc as nobody, from the clone's venv
    results = []
    try:
        for rev in revisions:
            log = workdir / f"make-test-{rev}.log"
            print(f"make test at {rev}, from nothing (log: {log})", file=sys.stderr)
            results.append(run_suite(rev, workdir, log))
    except KeyboardInterrupt:
        print("bench/suite.py: interrupted", file=sys.stderr)
        return 130
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'revision':<10} {'make test':>20} {'pytest':>20} {'CPUs busy':>10}  outcome")
    for s in results:
        outcome = s.counts if s.returncode == 0 else f"exit {s.returncode}: {s.counts}"
        print(f"{s.revision:<10} {_minutes(s.wall):>20} {_minutes(s.pytest):>20} "
              f"{s.busy:>10.0%}  {outcome}")  # fmt: skip
    before, after = results
    ratio = f"ratio {after.revision}/{before.revision}: make test {after.wall / before.wall:.2f}"
    if before.pytest and after.pytest:
        ratio += f", pytest {after.pytest / before.pytest:.2f}"
    print(ratio)
    return 0 if all(s.returncode == 0 for s in results) else 1


if __name__ == "__main__":
    sys.exit(main())
