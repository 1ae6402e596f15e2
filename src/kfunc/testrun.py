"""``kfunc test``: a project's pytest tests across its kernel matrix, as a table.

pytest runs in a child process with kfunc's plugin (``--kernels``, one boot
per kernel), which writes each test's outcome per kernel as JSON
(``--kfunc-report``); pytest's own ``--junitxml`` writes the JUnit file CI
systems read. The matrix is ``--kernels``, else the project's
``kfunc.toml``::

    [test]
    kernels = ["6.1", "6.12"]

else the default kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kfunc.errors import KfuncError

__all__ = ["TestMatrix", "TestResult", "project_kernels", "run_tests"]

DEFAULT_KERNELS = ("6.12",)


@dataclass(frozen=True)
class TestResult:
    """One test on one kernel ("" for a test that uses none)."""

    test: str
    kernel: str
    outcome: str  # passed, failed, skipped
    reason: str = ""
    seconds: float = 0.0


@dataclass
class TestMatrix:
    """Every test's outcome on every kernel of the matrix."""

    kernels: list[str]
    results: list[TestResult] = field(default_factory=list)
    exit_code: int = 0

    @property
    def tests(self) -> list[str]:
        return list(dict.fromkeys(r.test for r in self.results))

    def cell(self, test: str, kernel: str) -> TestResult | None:
        return next((r for r in self.results if r.test == test and r.kernel == kernel), None)

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def ok(self) -> bool:
        """Tests ran, and none failed (pytest agreed)."""
        return bool(self.results) and not self.count("failed") and self.exit_code == 0


def project_kernels(path: Path) -> list[str]:
    """The project's kernel matrix: kfunc.toml's ``[test] kernels``, else the default."""
    from kfunc.schema import FILE_NAME, read_kfunc_toml

    toml = (path if path.is_dir() else path.parent) / FILE_NAME
    if toml.exists() or toml.is_symlink():
        test = read_kfunc_toml(toml).test
        if test is not None and test.kernels is not None:
            if not test.kernels:
                raise KfuncError(
                    f"{toml}: test.kernels: the list is empty", 'e.g. kernels = ["6.1", "6.12"]'
                )
            return list(test.kernels)
    return list(DEFAULT_KERNELS)


def run_tests(
    path: str | os.PathLike[str] = ".",
    kernels: Sequence[str] | None = None,
    *,
    junit: str | os.PathLike[str] | None = None,
    pytest_args: Sequence[str] = (),
    capture: bool = False,
    module: str | os.PathLike[str] | None = None,
) -> TestMatrix:
    """Run the tests under ``path`` on each of ``kernels``; the outcomes.

    pytest's output goes to this process's stdout (with ``capture``, nowhere).
    ``module`` is the project's module directory (``--module``), for its fixtures.
    """
    target = Path(path).resolve()
    if not target.exists():
        raise KfuncError(f"{path}: no such file or directory", "pass a project directory")
    kernel_list = list(kernels) if kernels else project_kernels(target)
    with tempfile.TemporaryDirectory(prefix="kfunc-test-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [sys.executable, "-m", "pytest", str(target), "--kernels", ",".join(kernel_list),
                "--kfunc-report", str(report), "-p", "no:cacheprovider", "-rfEs"]  # fmt: skip
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            argv[3:3] = ["-p", "kfunc.pytest_plugin"]
        if module is not None:
            argv.append(f"--kfunc-module={Path(module).resolve()}")
        if junit is not None:
            argv.append(f"--junitxml={Path(junit).resolve()}")
        argv += list(pytest_args)
        cwd = target if target.is_dir() else target.parent
        out = subprocess.DEVNULL if capture else None
        proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=out, check=False)
        if proc.returncode == 5:
            raise KfuncError(
                f"{path}: no tests collected",
                "write test_*.py files that use the kernel, module or bpf fixtures",
            )
        if not report.exists():
            raise KfuncError(
                f"{path}: pytest stopped before running tests (exit {proc.returncode})",
                "run `python -m pytest` there to see why (a syntax error? a missing import?)",
            )
        data = json.loads(report.read_text())
    results = [
        TestResult(r["test"], r["kernel"], r["outcome"], r["reason"], r["seconds"])
        for r in data["results"]
    ]
    return TestMatrix(kernel_list, results, proc.returncode)
