"""In a real 6.12 kernel under qemu: the tutorial end to end, timeouts, Ctrl-C.

Each test boots once (about 10 s under TCG). Nothing may be left running or
on disk afterwards.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, interrupt_kfunc, qemu_processes

from kfunc.errors import LostVMError
from kfunc.kbuild import ModuleBuild
from kfunc.kernels.target import Kernel
from kfunc.vm.guest import Guest

pytestmark = pytest.mark.vm


def _env(tmp: Path) -> dict[str, str]:
    tmp.mkdir()
    return dict(os.environ, TMPDIR=str(tmp))


def test_tutorial_runs_end_to_end(hello_612: ModuleBuild, tmp_path: Path) -> None:
    before = qemu_processes()
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "run", "examples/hello", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path / "tmp"),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    run = json.loads(out.stdout)
    assert run["ok"] is True
    assert run["kernel"]["series"] == "6.12"
    (report,) = run["projects"]
    assert report["ok"] is True
    # The trace line of the tutorial, from a process in the guest.
    assert re.search(r"bpf_trace_printk: BPF triggered do_unlinkat from PID \d+\. Result: 10$",
                     report["result"])  # fmt: skip
    # The kfunc is registered in /sys/kernel/btf/hello under the BTF id
    # that resolve_btfids wrote into the .ko on the host.
    (kfunc,) = hello_612.kfuncs
    assert report["registered"]["path"] == "/sys/kernel/btf/hello"
    assert report["registered"]["kfuncs"] == {"bpf_kfunc_call_test": kfunc.btf_id}
    # The module's kernel log lines, in order, and a clean unload.
    log = [line for line in report["kernel_log"] if "taint" not in line]
    assert log[:2] == ["Hello, world!", "bpf_kfunc_example: Module loaded successfully"]
    assert log[-1] == "Goodbye, world!"
    assert report["unloaded"] is True
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["bpf_unload"]["data"] == {"links": 1, "objects": 1}
    assert all(s["ok"] for s in report["steps"])
    assert qemu_processes() <= before
    assert list((tmp_path / "tmp").iterdir()) == []


def test_guest_timeout_kills_qemu(kernel_612: Kernel, tmp_path: Path) -> None:
    guest = Guest(kernel_612, timeout=6)
    before = qemu_processes()
    start = time.monotonic()
    with pytest.raises(LostVMError) as err:
        guest.run(["sleep", "600"], tmp_path)
    assert time.monotonic() - start < 30
    assert "no power-off after 6 s" in err.value.message
    assert err.value.fix is not None
    assert qemu_processes() <= before


def test_ctrl_c_stops_the_guest_and_cleans_up(kernel_612: Kernel, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    before = qemu_processes()
    # The run directory appears just before the guest starts; 2 s later the
    # guest is well inside its boot.
    interrupt_kfunc(
        ["run", "examples/hello", "--boot"],
        lambda: any(tmp.glob("kfunc-run-*")),
        cwd=ROOT, tmpdir=tmp, settle=2,
    )  # fmt: skip
    assert qemu_processes() <= before
    assert list(tmp.iterdir()) == []
