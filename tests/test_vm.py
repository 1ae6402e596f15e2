"""In a real 6.12 kernel under qemu: the tutorial end to end, timeouts, Ctrl-C.

Each test boots once (about 10 s under TCG). Nothing may be left running or
on disk afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, interrupt_kfunc, qemu_processes, tutorial_repo

from kfunc.errors import LostVMError
from kfunc.kbuild import ModuleBuild
from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.run import run_projects
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


def test_tutorial_laid_out_as_repositories_runs_in_one_boot(
    kernel_612: Kernel, tmp_path: Path
) -> None:
    """module/ with its kbuild Makefile, the BPF program at the top beside a
    libbpf-bootstrap Makefile, no kfunc.toml: found and run as it lies; then
    the same with the module named by [module] path and by --module."""
    found = tutorial_repo(tmp_path / "found")
    by_toml = tutorial_repo(tmp_path / "by_toml")
    (by_toml / "module").rename(by_toml / "kernel")
    shutil.copytree(by_toml / "kernel", by_toml / "kernel-old")  # two kbuild files
    (by_toml / "kfunc.toml").write_text('[module]\npath = "kernel"\n')
    by_arg = tutorial_repo(tmp_path / "by_arg")
    shutil.copytree(by_arg / "module", by_arg / "module-copy")
    files = {p: sorted(p.rglob("*")) for p in (found, by_toml, by_arg)}
    projects = [
        Project.load(found),
        Project.load(by_toml),
        Project.load(by_arg, module=by_arg / "module-copy"),
    ]
    before = qemu_processes()
    report = run_projects(projects, "6.12", use_kept=False)
    assert report.accel != "kept guest"  # one fresh boot for the three
    assert [p.project for p in report.projects] == [str(found), str(by_toml), str(by_arg)]
    for project in report.projects:
        assert project.ok, (project.error, project.fix)
        assert re.search(r"Result: 10$", project.result or ""), project.trace
        assert project.registered is not None
        assert project.registered["path"] == "/sys/kernel/btf/hello"
        log = [line for line in project.kernel_log if "taint" not in line]
        assert log[0] == "Hello, world!" and log[-1] == "Goodbye, world!" and project.unloaded
    assert qemu_processes() <= before
    # Nothing was moved; kfunc wrote only the BPF header into build/.
    for repo, before_files in files.items():
        after = [p for p in sorted(repo.rglob("*")) if "build" not in p.relative_to(repo).parts]
        assert after == before_files


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


def test_ctrl_c_stops_the_guest_and_cleans_up(
    kernel_612: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during a virtme-ng boot (KFUNC_SNAPSHOT=0; test_faults interrupts
    kfunc's own machine): no qemu, no file left."""
    monkeypatch.setenv("KFUNC_SNAPSHOT", "0")
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
