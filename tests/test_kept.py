"""A kept guest (`kfunc vm start`): runs reach it without booting, and stop leaves nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES, private_cache, qemu_processes

from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.run import run_projects
from kfunc.vm.keeper import find_kept, start_kept, stop_kept

pytestmark = pytest.mark.vm


def test_runs_use_the_kept_guest(
    kernel_612: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kept guests are registered in the cache's vm/: this one in a vm/ of its
    # own, or the runs of tests beside it (pytest -n) would reach it too.
    private_cache(monkeypatch, tmp_path, "vm")
    before = qemu_processes()
    kept = start_kept(kernel_612, lifetime=300)
    try:
        assert find_kept(kernel_612) == kept
        assert start_kept(kernel_612) == kept  # a second start reuses it
        report = run_projects([Project.load(EXAMPLES / "hello")], "6.12")
        assert report.ok and report.accel == "kept guest"
        assert "boot" not in report.seconds  # nothing booted
        # Edit the BPF program, run again: the same guest, the new program.
        project = tmp_path / "hello"
        shutil.copytree(EXAMPLES / "hello", project, ignore=shutil.ignore_patterns("build"))
        bpf = project / "hello.bpf.c"
        bpf.write_text(bpf.read_text().replace("Result: %lld", "Edited result: %lld"))
        (toml := project / "kfunc.toml").write_text(
            toml.read_text().replace('expect = "Result: 10"', 'expect = "Edited result: 10"')
        )
        report = run_projects([Project.load(project)], "6.12")
        (hello,) = report.projects
        assert hello.ok and (hello.result or "").endswith("Edited result: 10")
        assert hello.unloaded
    finally:
        stop_kept(kept)
    assert find_kept(kernel_612) is None
    assert not Path(kept.directory).exists()
    assert qemu_processes() <= before
