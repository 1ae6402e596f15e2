"""Shared fixtures: target kernels, the hello example built for them.

Tests that need something this machine may lack (root, a kernel package, a
VM) skip with the reason, except where ``KFUNC_REQUIRE_VM=1`` (CI sets it):
then a missing prerequisite fails the test instead, so CI cannot pass by
skipping the kernel tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from kfunc.errors import KfuncError
from kfunc.kbuild import ModuleBuild, ModuleSource, build_module
from kfunc.kernels.target import Kernel, get_kernel

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = ROOT / "tests" / "data"
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


@pytest.fixture(scope="session")
def kernel_73() -> Kernel:
    """Debian's 7.3 (trixie-backports): built in a trixie root filesystem."""
    return _kernel("7.3")


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


# Every process this test run starts inherits the tag, qemu included: a guest
# of another process on the machine never counts as one a test left behind.
TEST_TAG = f"KFUNC_TEST_TAG={uuid.uuid4().hex}"
os.environ["KFUNC_TEST_TAG"] = TEST_TAG.split("=", 1)[1]


def tagged_processes(pattern: str) -> set[int]:
    """Pids of running processes matching ``pattern`` (``pgrep -f``) started by this
    test run: its xdist worker, as every worker imports this module with its own tag."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    pids = set()
    for pid in map(int, out.stdout.split()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        if TEST_TAG.encode() in environ:
            pids.add(pid)
    return pids


def qemu_processes() -> set[int]:
    """Pids of running qemu processes started by this test run."""
    return tagged_processes("qemu-system")


def private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *own: str) -> Path:
    """A KFUNC_CACHE for this test: the real cache's directories linked in, but
    ``own`` (e.g. ``vm``, where kept guests are registered) its own, so that
    what the test starts there is invisible to tests running beside it."""
    from kfunc.cache import cache_dir

    real = cache_dir()
    private = tmp_path / "kfunc-cache"
    private.mkdir()
    for entry in real.iterdir():
        if entry.name not in own:
            (private / entry.name).symlink_to(entry)
    monkeypatch.setenv("KFUNC_CACHE", str(private))
    return private


def interrupt_kfunc(
    args: list[str], ready: Callable[[], bool], *, cwd: Path, tmpdir: Path, settle: float = 0.0,
    sig: signal.Signals = signal.SIGINT,
) -> str:  # fmt: skip
    """Run ``kfunc ARGS``, press Ctrl-C (or send ``sig``) once ``ready()`` holds
    (and ``settle`` s more).

    Asserts what every interrupted command owes the user: exit code 128 + the
    signal (130 for Ctrl-C), a one-line notice, no traceback. Returns its stderr.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "kfunc", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not ready():
            out, err = proc.communicate(timeout=60) if proc.poll() is not None else ("", "")
            pytest.fail(
                f"kfunc {' '.join(args)}: never got to the point to interrupt "
                f"(exit {proc.returncode}): {out[-800:]} {err[-1500:]}"
            )
        time.sleep(settle)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig
    notice = "interrupted" if sig == signal.SIGINT else "terminated"
    assert "Traceback" not in stderr and notice in stderr
    return stderr


# The userspace Makefile of a libbpf-bootstrap project (shortened): no obj-m,
# not kbuild's.
LIBBPF_BOOTSTRAP_MAKEFILE = """\
OUTPUT := .output
CLANG ?= clang
ARCH ?= $(shell uname -m | sed 's/x86_64/x86/')
APPS = hello

all: $(APPS)

$(OUTPUT)/%.bpf.o: %.bpf.c | $(OUTPUT)
\t$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -c $(filter %.c,$^) -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
\tbpftool gen skeleton $< > $@

$(APPS): %: $(OUTPUT)/%.o
\t$(CC) $^ -lbpf -lelf -lz -o $@
"""


def tutorial_repo(dest: Path) -> Path:
    """The tutorial laid out as repositories are: the module with its kbuild
    Makefile in module/, the BPF program at the top beside a libbpf-bootstrap
    userspace Makefile, no kfunc.toml."""
    import shutil

    (dest / "module").mkdir(parents=True)
    for name in ("hello.c", "compat.h", "Makefile"):
        shutil.copy(EXAMPLES / "hello" / name, dest / "module" / name)
    shutil.copy(EXAMPLES / "hello" / "hello.bpf.c", dest / "hello.bpf.c")
    (dest / "Makefile").write_text(LIBBPF_BOOTSTRAP_MAKEFILE)
    return dest


# How `make test` (`pytest -n <cores + 1> --dist loadfile`) shares the suite out.
# A worker takes a whole file, with its module fixtures, except the files
# below, whose tests are independent boots (a kernel each) and go one by one.
# The work goes out in this order: the files whose tests take longest first
# (from nothing, on two workers: seconds), so that none of them starts when
# the other worker has nothing left to do. xdist would otherwise order the
# files by their number of tests (its --loadscope-reorder, on by default),
# which puts the longest ones last.
_ONE_BY_ONE = ("test_matrix.py",)
_HEAVIEST_FIRST = (
    "test_matrix.py",  # 228, four kernels: 7.2 fetches its kernel and a sid root filesystem
    "test_workflow.py",  # 162
    "test_verifier_corpus.py",  # 100
    "test_faults.py",  # 97
    "test_upstream_selftests.py",  # 90
    "test_seed.py",  # 90
    "test_bad_input.py",  # 89
    "test_inventory.py",  # 76
    "test_verifier.py",  # 68
    "test_verifier_vm.py",  # 68
    "test_verifier_selftests_vm.py",  # 61
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(_HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``--dist loadfile``, with the files of ``_ONE_BY_ONE`` split into their tests
    and the work sent out in collection order (``_HEAVIEST_FIRST``)."""
    if config.getoption("dist") != "loadfile":
        return None  # xdist's own
    from xdist.scheduler import LoadFileScheduling

    class Scheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return nodeid if path.rsplit("/", 1)[-1] in _ONE_BY_ONE else path

    config.option.loadscopereorder = False
    return Scheduling(config, log)  # type: ignore[arg-type]
