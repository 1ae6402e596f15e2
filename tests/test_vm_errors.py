"""A lost VM is rerun by the suite, a guest's kernel panic is not (no VM needed)."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from kfunc.errors import GuestError, GuestPanicError, LostVMError

ROOT = Path(__file__).resolve().parent.parent


def test_a_panic_is_a_guest_error_but_not_a_lost_vm() -> None:
    assert issubclass(GuestPanicError, GuestError)
    assert not issubclass(GuestPanicError, LostVMError)


def test_the_suite_reruns_a_lost_vm_and_not_a_panic(tmp_path: Path) -> None:
    """The rerun options of pyproject.toml, applied to a test of each kind."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    addopts = shlex.split(config["tool"]["pytest"]["ini_options"]["addopts"])
    (tmp_path / "test_kinds.py").write_text(
        "from kfunc.errors import GuestPanicError, LostVMError\n"
        "def test_lost():\n"
        "    raise LostVMError('guest 6.12: no power-off after 6 s')\n"
        "def test_panic():\n"
        "    raise GuestPanicError('guest 6.12: kernel panic: LostVMError in its text')\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *addopts, "test_kinds.py"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    summary = out.stdout.splitlines()[-1]
    assert "2 failed" in summary and "1 rerun" in summary, out.stdout
    assert "RERUN test_kinds.py::test_lost" in out.stdout
    assert "RERUN test_kinds.py::test_panic" not in out.stdout
