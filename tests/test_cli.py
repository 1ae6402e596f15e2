"""The kfunc command as a user meets it: exit codes, one-line errors, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import EXAMPLES, ROOT, qemu_processes

from kfunc.kernels.target import Kernel


def kfunc(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfunc", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        **kw,
    )


def test_help_lists_every_command_without_importing_them() -> None:
    out = kfunc("--help")
    assert out.returncode == 0
    listed = out.stdout.split()
    assert {"new", "build", "run", "test", "ls", "check", "survey"} <= set(listed)
    code = (
        "import sys\n"
        "from kfunc.cli import build_parser\n"
        "build_parser(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('kfunc.cli.')))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert imported.stdout.split() == ["['kfunc.cli.answers']"], imported.stderr
    # A typo gets argparse's one-line refusal, listing the commands.
    typo = kfunc("lss")
    assert typo.returncode == 2 and "invalid choice: 'lss'" in typo.stderr


def test_console_script_is_installed() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "kfunc")
    out = subprocess.run([script, "run", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--kernel" in out.stdout


def test_hello_on_61_is_refused_before_booting(kernel_61: Kernel) -> None:
    before = qemu_processes()
    out = kfunc("run", "examples/hello", "--kernel", "6.1")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    error = next(line for line in lines if line.startswith("error: "))
    assert "kprobe programs may call kfuncs only from Linux 6.10 on" in error
    assert any(line.startswith("fix: ") and "fentry" in line for line in lines)
    assert "guest" not in out.stderr  # no boot was attempted
    assert qemu_processes() <= before


def test_hello_on_61_json(kernel_61: Kernel) -> None:
    out = kfunc("run", str(EXAMPLES / "hello"), "--kernel", "6.1", "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["ok"] is False
    assert "6.10" in report["error"] and "fentry" in report["fix"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "examples/nope"), "examples/nope: no such project directory"),
        (("run", "examples/hello", "--kernel", "9.9"), "kernel '9.9': unknown"),
        (
            ("run", "examples/hello", "--kernel", "5.10"),
            "module kfuncs not supported by kernel 5.10 (requires >= 5.16)",
        ),
    ],
)
def test_user_errors_are_one_line(args: tuple[str, ...], expected: str) -> None:
    out = kfunc(*args)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert f"error: {expected}" in out.stderr.splitlines()


def test_verbose_after_the_command_too() -> None:
    from kfunc.cli import build_parser

    for argv in (["run", "--verbose", "x"], ["run", "x", "-v"], ["-v", "run", "x"]):
        assert build_parser(argv).parse_args(argv).verbose is True, argv
    assert build_parser(["run", "x"]).parse_args(["run", "x"]).verbose is False


def test_kfunc_test_ignores_the_surrounding_pytest_configuration(tmp_path) -> None:
    """A checkout whose pyproject.toml sets addopts for plugins kfunc's pytest lacks."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--no-such-plugin-option 1"\n'
    )
    project = tmp_path / "proj"
    project.mkdir()
    (project / "test_plain.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "test", "."], capture_output=True, text=True,
        cwd=project, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "unrecognized arguments" not in out.stderr
    assert "ok: 1 passed" in out.stdout
