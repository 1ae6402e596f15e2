"""kfunc's pytest plugin and `kfunc test`, where no kernel needs booting.

The plugin's fixtures in a real guest are exercised by examples/*/test_*.py
(in this suite's testpaths) and by tests/test_kfunc_test.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import tutorial_repo

from kfunc.kernels.target import DEFAULT_KERNEL
from kfunc.pytest_plugin import DEFAULT_KERNEL as PLUGIN_DEFAULT
from kfunc.pytest_plugin import _test_name
from kfunc.testrun import project_kernels

TESTS = """
import pytest

def test_uses_kernel(kernel):
    pass

def test_host():
    pass

@pytest.mark.parametrize("kernel", ["mine"])
def test_own_kernel_values(kernel):
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_param(kernel, n):
    pass
"""


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KFUNC_REQUIRE_VM="0", PYTHONDONTWRITEBYTECODE="1")
    env.pop("KFUNC_KERNELS", None)
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)


def pytest_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], tmp_path)


def test_default_kernel_matches_the_library() -> None:
    assert PLUGIN_DEFAULT == DEFAULT_KERNEL


def test_tests_that_use_kernel_run_once_per_kernel(tmp_path: Path) -> None:
    (tmp_path / "test_k.py").write_text(TESTS)
    out = pytest_run(tmp_path, "--co", "-q", "--kernels", "6.12,6.1")
    assert out.returncode == 0, out.stdout + out.stderr
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    # grouped by kernel (one boot each), in the order given
    assert ids == [
        "test_k.py::test_uses_kernel[6.12]",
        "test_k.py::test_param[6.12-1]",
        "test_k.py::test_param[6.12-2]",
        "test_k.py::test_uses_kernel[6.1]",
        "test_k.py::test_param[6.1-1]",
        "test_k.py::test_param[6.1-2]",
        "test_k.py::test_host",
        "test_k.py::test_own_kernel_values[mine]",
    ]
    # They are VM tests: -m "not vm" leaves them out, and only them.
    out = pytest_run(tmp_path, "--co", "-q", "--kernels", "6.12,6.1", "-m", "not vm")
    kept = [line for line in out.stdout.splitlines() if "::" in line]
    assert kept == ["test_k.py::test_host", "test_k.py::test_own_kernel_values[mine]"]


def test_a_conftests_own_kernel_fixture_is_left_alone(tmp_path: Path) -> None:
    """A project whose conftest defines a ``kernel`` of its own (not kfunc's)
    gets neither the kernel matrix nor the vm mark."""
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef kernel():\n    return 'theirs'\n"
    )
    (tmp_path / "test_k.py").write_text("def test_a(kernel):\n    assert kernel == 'theirs'\n")
    out = pytest_run(tmp_path, "-q", "--kernels", "6.12,6.1", "-m", "not vm")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout
    out = pytest_run(tmp_path, "--co", "-q", "--kernels", "6.12,6.1")
    assert [line for line in out.stdout.splitlines() if "::" in line] == ["test_k.py::test_a"]


def test_kernel_matrix_from_ini_and_environment(tmp_path: Path) -> None:
    (tmp_path / "test_k.py").write_text("def test_a(kernel):\n    pass\n")
    out = pytest_run(tmp_path, "--co", "-q")
    assert f"test_k.py::test_a[{DEFAULT_KERNEL}]" in out.stdout
    (tmp_path / "pytest.ini").write_text("[pytest]\nkfunc_kernels = 6.1, 7.3\n")
    out = pytest_run(tmp_path, "--co", "-q")
    assert "test_a[6.1]" in out.stdout and "test_a[7.3]" in out.stdout
    out = pytest_run(tmp_path, "--co", "-q", "--kernels", "6.12")
    assert "test_a[6.12]" in out.stdout and "test_a[6.1]" not in out.stdout


@pytest.mark.parametrize(
    ("nodeid", "kernel", "ids", "name"),
    [
        ("t.py::test_a[6.12]", "6.12", "6.12", "t.py::test_a"),
        ("t.py::test_a[6.12-1]", "6.12", "6.12-1", "t.py::test_a[1]"),
        ("t.py::test_a[x-6.1-y]", "6.1", "x-6.1-y", "t.py::test_a[x-y]"),
        ("t.py::test_a[6.12.117+deb12-amd64]", "6.12.117+deb12-amd64",
         "6.12.117+deb12-amd64", "t.py::test_a"),
        ("t.py::test_b", "", "", "t.py::test_b"),
    ],
)  # fmt: skip
def test_test_name_without_the_kernel(nodeid: str, kernel: str, ids: str, name: str) -> None:
    assert _test_name(nodeid, kernel, ids) == name


def test_kfunc_test_table_junit_and_exit_status(tmp_path: Path) -> None:
    """`kfunc test`: pass, fail, and skip with its reason (a kernel that does not exist),
    a JUnit file, exit status 1."""
    project = tmp_path / "proj"
    project.mkdir()
    (project / "test_mixed.py").write_text(
        "def test_host_ok():\n    assert True\n\n"
        "def test_host_fails():\n    assert 1 + 1 == 3\n\n"
        "def test_needs_kernel(kernel):\n    pass\n"
    )
    junit = tmp_path / "junit.xml"
    out = run(
        [sys.executable, "-m", "kfunc", "test", str(project), "--kernels", "9.9", "--junit",
         str(junit)],
        tmp_path,
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    table = out.stdout[out.stdout.index("kfunc test") :]
    rows = {line.split()[1]: line for line in table.splitlines() if "test_mixed.py::" in line}
    assert "skip" in rows["test_mixed.py::test_needs_kernel"]
    assert "FAIL" in rows["test_mixed.py::test_host_fails"]
    assert "pass" in rows["test_mixed.py::test_host_ok"]
    assert "kernel 9.9 not available: kernel '9.9': unknown" in table
    assert "assert (1 + 1) == 3" in table  # the failure's reason
    assert "1 passed, 1 failed, 1 skipped" in table
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    # All passing: exit 0.
    (project / "test_mixed.py").write_text("def test_host_ok():\n    pass\n")
    out = run([sys.executable, "-m", "kfunc", "test", str(project)], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok: 1 passed" in out.stdout


def test_kfunc_test_passes_module_to_the_project_fixture(tmp_path: Path) -> None:
    """`kfunc test --module DIR`: kfunc_project's module is DIR (two kbuild files otherwise)."""
    repo = tutorial_repo(tmp_path / "repo")
    shutil.copytree(repo / "module", repo / "module-v2")
    (repo / "test_layout.py").write_text(
        "def test_module(kfunc_project):\n"
        "    assert kfunc_project.module_dir.name == 'module-v2'\n"
        "    assert [p.name for p in kfunc_project.bpf_sources] == ['hello.bpf.c']\n"
    )
    out = run([sys.executable, "-m", "kfunc", "test", "repo", "--module", "repo/module-v2"],
              tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok: 1 passed" in out.stdout


def test_kfunc_test_without_tests(tmp_path: Path) -> None:
    """An empty directory is no project: no test_*.py and no [run] scenario to
    fall back on (a project without tests runs its scenario: tests/test_seed.py)."""
    out = run([sys.executable, "-m", "kfunc", "test", str(tmp_path)], tmp_path)
    assert out.returncode == 1
    assert "neither a module nor BPF programs: looked for" in out.stderr
    assert "Traceback" not in out.stderr


def test_project_kernels(tmp_path: Path) -> None:
    assert project_kernels(tmp_path) == [DEFAULT_KERNEL]
    (tmp_path / "kfunc.toml").write_text('[test]\nkernels = ["6.1", "6.12"]\n')
    assert project_kernels(tmp_path) == ["6.1", "6.12"]
    (tmp_path / "kfunc.toml").write_text('[test]\nkernels = "6.1"\n')
    with pytest.raises(Exception, match=r"test\.kernels: must be a list, not a string") as err:
        project_kernels(tmp_path)
    assert 'kernels = ["6.1", "6.12"]' in str(err.value)
