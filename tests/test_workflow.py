"""The CI workflow `kfunc new` writes, run for real: the job of one kernel of its
matrix, its steps in order, as GitHub runs them in the ``debian:bookworm``
container (see tests/github_job.py for what stands in for GitHub here).

One test, and a heavy one: apt installs the tools in a fresh bookworm, pip
installs kfunc (this tree, copied in as the job's KFUNC_INSTALL path) and its
dependencies, kfunc fetches the kernel from Debian, builds the module and boots
the kernel (TCG here: this machine's /dev/kvm does not run guests) to run the
project's tests. The first run of a user's job is exactly this one: nothing in
actions/cache yet.
"""

from __future__ import annotations

import os
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, require
from github_job import Container, bookworm_image, run_job

from kfunc import __version__
from kfunc.errors import MissingToolError
from kfunc.kernels.catalog import release_of
from kfunc.scaffold import scaffold
from kfunc.vm.guest import Guest

KERNEL = "6.12"


def _kfunc_source(dest: Path) -> None:
    """What `pip install <path>` needs of this tree (a git checkout of it would do)."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__"))


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Container]:
    """A fresh bookworm standing for the job's container, removed afterwards."""
    require(os.geteuid() == 0, "a root filesystem job needs root (chroot, mounts)")
    require(shutil.which("mmdebstrap") is not None, "mmdebstrap is not installed")
    box = Container.create(bookworm_image(), tmp_path / "root", "ci_demo")
    yield box
    box.remove()


@pytest.mark.vm
def test_generated_workflow_job_goes_green(tmp_path: Path, box: Container) -> None:
    started = time.monotonic()
    project = scaffold("ci_demo", tmp_path)
    _kfunc_source(box.inside("/opt/kfunc-src"))
    logs = tmp_path / "logs"
    logs.mkdir()
    run = run_job(
        project / ".github" / "workflows" / "kfunc.yml", "test", {"kernel": KERNEL}, box,
        project=project, env_override={"KFUNC_INSTALL": "/opt/kfunc-src"}, caches={},
        log_dir=logs,
    )  # fmt: skip
    print(f"\njob: {time.monotonic() - started:.0f} s in all\n{run.summary()}")
    failed = next((s for s in run.steps if s.returncode != 0), None)
    assert failed is None, f"step {failed.name!r} failed:\n{failed.output[-3000:]}"

    # the kernel's tests ran in the guest and passed, in the report the job uploads
    assert run.artifacts == [f"junit-{KERNEL}.xml"]
    suite = ET.parse(box.inside(box.workspace) / f"junit-{KERNEL}.xml").getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None
    cases = [c.get("name") for c in suite.iter("testcase")]
    assert any("test_ci_demo_add" in (c or "") for c in cases), cases
    assert all(int(suite.get(k, "0")) == 0 for k in ("failures", "errors", "skipped"))

    # the cache key names the kfunc version and the kernel release the job used,
    # and what its post step saves holds that kernel
    release = release_of(KERNEL)
    assert run.cache_keys == [f"kfunc-{__version__}-{release}"]
    cache = box.inside(run.cache_paths[0])
    assert run.cache_paths[0] == "/root/.cache/kfunc"
    assert (cache / "kernels" / release).is_dir()
    assert "!/root/.cache/kfunc/debs" in run.cache_paths


def test_a_guest_without_file_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What this job found first: without `file`, vng dies (it runs `file` on busybox)
    and the guest powers off before its script; kfunc names the tool instead."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("qemu-system-x86_64", "busybox"):
        (bin_dir / tool).write_text("#!/bin/sh\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(MissingToolError) as err:
        Guest(None).start(["true"], tmp_path)  # type: ignore[arg-type]  # fails before the kernel
    assert err.value.message == "file: not found on PATH"
    assert "apt-get install file" in (err.value.fix or "")
