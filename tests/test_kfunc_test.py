"""`kfunc test` on a project `kfunc new` wrote, in a real 6.12 guest (one boot).

Its own tests pass; a test added to fail shows the guest's kernel log in its
report; a test for newer kernels is skipped with the reason; the table, the
JUnit file and the exit status say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import qemu_processes, require

from kfunc.scaffold import scaffold

pytestmark = pytest.mark.vm

EXTRA = """

import pytest


def test_fresh_fails_on_purpose(module):
    assert module.kfuncs["fresh_add"] < 0, "a failure, to show the kernel log"


@pytest.mark.min_kernel("99.1")
def test_fresh_on_a_future_kernel(bpf):
    pass
"""


def test_kfunc_test_on_a_new_project(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "booting kernels needs root here")
    project = scaffold("fresh", tmp_path)
    with (project / "test_fresh.py").open("a") as f:
        f.write(EXTRA)
    junit = tmp_path / "junit.xml"
    before = qemu_processes()
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "test", str(project), "--kernels", "6.12", "--junit",
         str(junit)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    text = out.stdout
    # The failing test's report carries the guest's kernel log: the module's own lines.
    assert "kernel log of 6.12.117" in text
    assert "fresh: kfuncs registered" in text
    table = text[text.rindex("kfunc test") :]
    rows = {line.split()[1]: line for line in table.splitlines() if "test_fresh.py::" in line}
    assert "pass" in rows["test_fresh.py::test_fresh_kfunc_is_registered"]
    assert "pass" in rows["test_fresh.py::test_fresh_add"]
    assert "FAIL" in rows["test_fresh.py::test_fresh_fails_on_purpose"]
    assert "skip" in rows["test_fresh.py::test_fresh_on_a_future_kernel"]
    assert "needs kernel >= 99.1 (this is 6.12)" in table
    assert "2 passed, 1 failed, 1 skipped" in table
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {
        "test_fresh_kfunc_is_registered[6.12]", "test_fresh_add[6.12]",
        "test_fresh_fails_on_purpose[6.12]", "test_fresh_on_a_future_kernel[6.12]",
    }  # fmt: skip
    assert cases["test_fresh_fails_on_purpose[6.12]"].find("failure") is not None
    assert cases["test_fresh_on_a_future_kernel[6.12]"].find("skipped") is not None
    assert qemu_processes() <= before
