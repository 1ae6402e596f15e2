"""Shared fixtures: target kernels, the hello example built for them.

Tests that need something this machine may lack (root, a kernel package, a
VM) skip with the reason, except where ``KFUNC_REQUIRE_VM=1`` (CI sets it):
then a missing prerequisite fails the test instead, so CI cannot pass by
skipping the kernel tests.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kfunc.errors import KfuncError
from kfunc.kbuild import ModuleBuild, ModuleSource, build_module
from kfunc.kernels.target import Kernel, get_kernel

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REQUIRED = os.environ.get("KFUNC_REQUIRE_VM") == "1"


def require(condition: bool, reason: str) -> None:
    """Skip (or, in CI, fail) unless ``condition`` holds."""
    if condition:
        return
    if REQUIRED:
        pytest.fail(f"prerequisite missing (KFUNC_REQUIRE_VM=1): {reason}")
    pytest.skip(reason)


def _kernel(name: str) -> Kernel:
    require(os.geteuid() == 0, "fetching and booting kernels needs root here")
    try:
        return get_kernel(name)
    except KfuncError as exc:
        require(False, f"kernel {name} not available: {exc}")
        raise


@pytest.fixture(scope="session")
def kernel_612() -> Kernel:
    return _kernel("6.12")


@pytest.fixture(scope="session")
def kernel_61() -> Kernel:
    return _kernel("6.1")


def modules_dir(kernel: Kernel) -> Path:
    """The kernel's own modules (.ko.xz), as the image package ships them."""
    return kernel.root / "lib" / "modules" / kernel.release / "kernel"


def common_headers(kernel: Kernel) -> Path:
    """The arch-independent half of Debian's headers (include/linux/*.h)."""
    return next((kernel.root / "usr" / "src").glob("linux-headers-*-common"))


@pytest.fixture(scope="session")
def hello_612(kernel_612: Kernel) -> ModuleBuild:
    return build_module(ModuleSource.find(EXAMPLES / "hello"), kernel_612)


@pytest.fixture(scope="session")
def hello_61(kernel_61: Kernel) -> ModuleBuild:
    return build_module(ModuleSource.find(EXAMPLES / "hello"), kernel_61)


def qemu_processes() -> set[int]:
    """Pids of running qemu processes that boot a kernel of kfunc's cache.

    Tests compare the set after with the set before, so that a guest of
    another process on the machine does not count as one they left behind.
    """
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
    return {int(line.split()[0]) for line in out.stdout.splitlines() if "kfunc" in line}
