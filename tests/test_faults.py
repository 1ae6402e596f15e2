"""The fault suite: every failure a user can cause ends in one clear error line with
its fix, a non-zero exit, no traceback, and nothing left running or on disk.

Each case runs the real ``kfunc`` command in a subprocess with its own TMPDIR
and checks, besides the message and the exit code, that the TMPDIR is empty
afterwards and that no qemu of the case is left.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, interrupt_kfunc, qemu_processes, tagged_processes

from kfunc.kernels.target import Kernel

FAULTS = ROOT / "tests" / "data" / "faults"


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("error: ")]
        assert len(lines) == 1, self.stderr
        return lines[0].removeprefix("error: ")

    @property
    def fix(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("fix: ")]
        assert len(lines) == 1, self.stderr
        return lines[0].removeprefix("fix: ")


def kfunc(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
          timeout: float = 600, user: str | None = None) -> Outcome:  # fmt: skip
    """Run kfunc; assert the common contract of a user error; return what it said."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir(exist_ok=True)
    before = qemu_processes()
    cmd = [sys.executable, "-m", "kfunc", *args]
    if user:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *cmd]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=timeout,
        env={**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT / "src"), **(env or {})},
    )
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    assert list(tmp.iterdir()) == [], "temporary files left behind"
    assert qemu_processes() <= before, "a qemu left behind"
    return Outcome(out.returncode, out.stdout, out.stderr)


def copy_example(tmp_path: Path, name: str, toml_edit: tuple[str, str] | None = None) -> Path:
    """A copy of an example, its kfunc.toml edited (old text, new text) if asked."""
    dest = tmp_path / name
    shutil.copytree(EXAMPLES / name, dest, ignore=shutil.ignore_patterns("build"))
    if toml_edit is not None:
        toml = dest / "kfunc.toml"
        text = toml.read_text()
        assert toml_edit[0] in text
        toml.write_text(text.replace(*toml_edit, 1))
    return dest


# --- bad inputs (no VM) ---------------------------------------------------


def test_unknown_kernel(tmp_path: Path) -> None:
    o = kfunc(tmp_path, "run", str(EXAMPLES / "hello"), "--kernel", "banana")
    assert o.error == "kernel 'banana': unknown"
    assert "6.12" in o.fix


def test_broken_bpf_c(tmp_path: Path, kernel_612: Kernel) -> None:
    project = copy_example(tmp_path, "hello")
    bpf = project / "hello.bpf.c"
    bpf.write_text(bpf.read_text().replace("u64 result =", "u64 result = nosuch +"))
    o = kfunc(tmp_path, "build", str(project))
    assert o.error.startswith(f"clang: {bpf}:") and "nosuch" in o.error


def test_broken_module_c(tmp_path: Path, kernel_612: Kernel) -> None:
    project = copy_example(tmp_path, "hello")
    c = project / "hello.c"
    c.write_text(c.read_text().replace("return a + b + c + d;", "return a + b + c + d"))
    o = kfunc(tmp_path, "build", str(project))
    assert o.error.startswith(f"{c}:") and "error:" in o.error


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('name = "refobj"', 'name = "ref-obj"'), "module.name: 'ref-obj' is not a C identifier"),
        (('"KF_ACQUIRE", "KF_RET_NULL"', '"KF_ACQUIRE", "KF_WHAT"'), "unknown flag KF_WHAT"),
        (('name = "refobj_value"', 'name = "refobj_new"'), "kfunc refobj_new is declared twice"),
        (('prog_types = ["syscall", "tracing"]', 'prog_types = ["flow_dissector"]'),
         "program type 'flow_dissector' cannot call kfuncs"),
        (('includes = ["linux/slab.h"', 'includes = ["linux/slab.h>\\n#include <evil.h"'),
         "is not a header path"),
    ],
)  # fmt: skip
def test_invalid_spec(tmp_path: Path, edit: tuple[str, str], expected: str) -> None:
    project = copy_example(tmp_path, "refobj", edit)
    o = kfunc(tmp_path, "build", str(project))
    assert expected in o.error
    assert not (project / "build").exists()  # nothing was generated from it


def test_flag_unknown_on_the_target(tmp_path: Path, kernel_61: Kernel) -> None:
    project = copy_example(
        tmp_path, "refobj", ('flags = ["KF_TRUSTED_ARGS"]', 'flags = ["KF_ITER_NEW"]')
    )
    o = kfunc(tmp_path, "build", str(project), "--kernel", "6.1")
    assert "KF_ITER_NEW arrived in 6.4, target is 6.1" in o.error


def test_call_from_a_program_type_the_module_does_not_register(
    tmp_path: Path, kernel_612: Kernel
) -> None:
    # The fentry program (tracing) calls a kfunc registered for syscall programs
    # only: the verifier would refuse it after a boot; the build says so first.
    project = copy_example(
        tmp_path, "hello_fentry", ('prog_types = ["tracing"]', 'prog_types = ["syscall"]')
    )
    o = kfunc(tmp_path, "run", str(project), "--kernel", "6.12")
    assert "(fentry/do_unlinkat) calls kfunc bpf_kfunc_call_test" in o.error
    assert "module hello_fentry registers it for syscall only" in o.error
    assert "'calling kernel function bpf_kfunc_call_test is not allowed'" in o.error
    assert "add 'tracing' to the program types" in o.fix
    assert "guest" not in o.stderr  # refused before any boot


def test_set_for_a_program_type_the_kernel_rejects(tmp_path: Path, kernel_61: Kernel) -> None:
    project = copy_example(
        tmp_path, "hello_fentry", ('prog_types = ["tracing"]', 'prog_types = ["kprobe"]')
    )
    o = kfunc(tmp_path, "build", str(project), "--kernel", "6.1")
    assert "kprobe programs may call kfuncs only from Linux 6.10 on" in o.error


def test_malformed_btf(tmp_path: Path) -> None:
    blob = Path("/sys/kernel/btf/vmlinux").read_bytes()[:5000]
    (tmp_path / "cut.btf").write_bytes(blob)
    o = kfunc(tmp_path, "ls", "--btf", str(tmp_path / "cut.btf"))
    assert "cut.btf" in o.error and "offset" in o.error


def test_malformed_elf(tmp_path: Path) -> None:
    (tmp_path / "bad.ko").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(40))
    o = kfunc(tmp_path, "ls", "--ko", str(tmp_path / "bad.ko"))
    assert "bad.ko" in o.error


def test_missing_package_without_network(tmp_path: Path) -> None:
    # An empty cache and apt pointed at an address where nothing listens.
    o = kfunc(
        tmp_path, "build", str(EXAMPLES / "hello"), "--kernel", "6.1",
        env={"KFUNC_CACHE": str(tmp_path / "cache"), "http_proxy": "http://127.0.0.1:9",
             "https_proxy": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert o.error.startswith("apt-get download") or "no Debian package" in o.error
    assert "apt-get update" in o.fix


def test_non_root_user(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as another user")
    tmp_path.chmod(0o777)
    o = kfunc(tmp_path, "run", str(EXAMPLES / "hello"), user="nobody")
    assert o.error.startswith("kfunc run: needs root")


def test_new_with_a_bad_name(tmp_path: Path) -> None:
    o = kfunc(tmp_path, "new", "My Module")
    assert "is not a valid module name" in o.error


# --- faults in the guest (one boot each) -----------------------------------


@pytest.mark.vm
def test_module_init_panics_the_guest(tmp_path: Path, kernel_612: Kernel) -> None:
    o = kfunc(tmp_path, "run", str(FAULTS / "panic_init"), "--boot")
    assert o.error.startswith("guest 6.12")
    assert "kernel panic: kfunc fault test: panic in module init" in o.error
    assert "Kernel panic - not syncing: kfunc fault test: panic in module init" in o.stderr


@pytest.mark.vm
def test_module_init_hangs(tmp_path: Path, kernel_612: Kernel) -> None:
    start = time.monotonic()
    o = kfunc(tmp_path, "run", str(FAULTS / "hang_init"), "--boot", "--timeout", "20")
    assert time.monotonic() - start < 120
    assert "no answer within 20 s (during step insmod hang_init)" in o.error
    assert "hang_init: looping forever" in o.stderr  # the kernel log, shown


@pytest.mark.vm
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_during_the_run(tmp_path: Path, kernel_612: Kernel, sig: signal.Signals) -> None:
    """Ctrl-C, or SIGTERM (a CI job's timeout), while the guest runs: no qemu left."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    before = qemu_processes()

    def looping() -> bool:  # the guest is up, and busy in the module's init
        return any("hang_init: looping forever" in console.read_text(errors="replace")
                   for console in tmp.glob("kfunc-snap-*/console.log"))  # fmt: skip

    interrupt_kfunc(["run", str(FAULTS / "hang_init"), "--boot"], looping, cwd=tmp_path,
                    tmpdir=tmp, settle=1, sig=sig)  # fmt: skip
    assert list(tmp.iterdir()) == []
    assert qemu_processes() <= before


@pytest.mark.vm
def test_boot_that_never_finishes(kernel_612: Kernel) -> None:
    from kfunc.errors import LostVMError
    from kfunc.vm.session import GuestSession

    before = qemu_processes()
    session = GuestSession(kernel_612, boot_timeout=2)
    with pytest.raises(LostVMError) as err:
        session.start()
    assert "not ready within 2 s" in err.value.message
    assert not session.directory.exists()
    assert qemu_processes() <= before


def test_ctrl_c_during_the_build(tmp_path: Path, kernel_612: Kernel) -> None:
    project = copy_example(tmp_path, "hello")
    c = project / "hello.c"
    c.write_text(c.read_text() + f"/* {tmp_path.name} */\n")  # new sources: a real kbuild
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()

    def makes() -> set[int]:  # this test run's: another worker may be building hello too
        return tagged_processes("make")

    interrupt_kfunc(["build", str(project)], lambda: bool(makes()), cwd=tmp_path, tmpdir=tmp)
    time.sleep(0.5)
    assert makes() == set()
    assert list(tmp.iterdir()) == []
