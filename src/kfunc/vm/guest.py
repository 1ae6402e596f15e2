"""Boot a target kernel in qemu through virtme-ng and run one command in it.

The guest sees the host's root filesystem read-only (virtme-ng's copy-on-write
overlays) and one read-write directory, the run's own output directory. The
command's events come back as JSON lines in that directory; the console
(kernel log and the command's output, merged) is streamed line by line.

Everything is bounded: the whole boot-run-poweroff by ``timeout``. qemu, its
helpers and virtme-ng's temporary files live in a process group and a
temporary directory of their own, both removed on every exit path, Ctrl-C
included.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kfunc.errors import GuestPanicError, LostVMError, MissingToolError
from kfunc.kernels.target import Kernel
from kfunc.procgroup import stop_group
from kfunc.vm.accel import probe_accel

__all__ = ["ConsoleLine", "Guest", "GuestProcess", "GuestRun", "panic_error"]

_KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\] ")
_PANIC = re.compile(r"Kernel panic - not syncing|BUG: kernel NULL pointer|Oops: ")
# A frame of a module's code in an oops or panic trace: "hello_init+0x15/0xff0 [hello]".
_MODULE_FRAME = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+ \[\w+\]")
# panic()'s own message after an oops (panic_on_oops), not a call of panic() by code.
_AFTER_OOPS = re.compile(r"Kernel panic - not syncing: (Fatal exception|Attempted to kill)")


@dataclass(frozen=True)
class ConsoleLine:
    text: str

    @property
    def is_kernel(self) -> bool:
        return bool(_KERNEL_LINE.match(self.text))

    @property
    def message(self) -> str:
        """The line without its kernel timestamp."""
        return _KERNEL_LINE.sub("", self.text)


@dataclass
class GuestRun:
    """What came back from one guest command."""

    console: list[ConsoleLine] = field(default_factory=list)
    seconds: float = 0.0
    accel: str = "tcg"

    def kernel_log(self, last: int | None = None) -> list[str]:
        lines = [line.message for line in self.console if line.is_kernel]
        return lines[-last:] if last else lines


def _find_vng() -> str:
    # vng calls virtme-run by name: the directory holding vng must be on PATH.
    vng = shutil.which("vng")
    if vng is None:
        import sys

        candidate = Path(sys.executable).parent / "vng"
        if candidate.exists():
            return str(candidate)
        raise MissingToolError("vng", "virtme-ng (pip install virtme-ng)")
    return vng


class Guest:
    """A target kernel to boot, with the resources it gets."""

    def __init__(
        self,
        kernel: Kernel,
        *,
        memory: str = "1G",
        cpus: int | None = None,
        timeout: float = 180.0,
    ) -> None:
        self.kernel = kernel
        self.memory = memory
        self.cpus = cpus
        self.timeout = timeout

    def command(self, argv: list[str], rwdir: Path, accel: str) -> list[str]:
        """The vng command line that runs ``argv`` in the guest."""
        script = f"cd {shlex.quote(str(rwdir))} && {shlex.join(argv)} 2>&1"
        # Under TCG, one vCPU: a two-vCPU guest once died of an "int3" oops
        # early in a run (text patching races are the likely cause), and one
        # is faster on this 2-core host anyway (tutorial: 9.3 s against 10.4 s).
        cpus = self.cpus or (2 if accel == "kvm" else 1)
        cmd = [
            _find_vng(),
            "--run", str(self.kernel.boot_path),
            "--verbose",  # the console carries the kernel log and the script's output
            "--force-9p",  # virtiofsd cannot start here; waiting for it costs 4 s
            "--memory", self.memory,
            "--cpus", str(cpus),
            "--rwdir", str(rwdir),
            "--exec", script,
        ]  # fmt: skip
        if accel != "kvm":
            # vng's accel=kvm:tcg does not fall back by itself where KVM is broken.
            cmd.insert(3, "--disable-kvm")
        return cmd

    def start(
        self,
        argv: list[str],
        rwdir: Path,
        on_line: Callable[[ConsoleLine], None] | None = None,
    ) -> GuestProcess:
        """Boot and start ``argv`` in the guest; the console streams in the background."""
        # vng builds the guest's initramfs with busybox and runs `file` to see that
        # it is static: without either, the guest dies before the script runs.
        for tool, package in (("qemu-system-x86_64", "qemu-system-x86"),
                              ("busybox", "busybox-static"), ("file", "file")):  # fmt: skip
            if shutil.which(tool) is None:
                raise MissingToolError(tool, package)
        accel = probe_accel(self.kernel.vmlinuz)
        tmp = Path(tempfile.mkdtemp(prefix="kfunc-vm-"))
        env = dict(os.environ, TMPDIR=str(tmp))
        vng_dir = str(Path(_find_vng()).parent)
        env["PATH"] = vng_dir + os.pathsep + env.get("PATH", "")
        try:
            proc = subprocess.Popen(
                self.command(argv, rwdir, accel),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return GuestProcess(self.kernel.release, proc, tmp, accel, on_line)

    def run(
        self,
        argv: list[str],
        rwdir: Path,
        on_line: Callable[[ConsoleLine], None] | None = None,
    ) -> GuestRun:
        """Boot, run ``argv`` with ``rwdir`` writable, power off; stream the console.

        Raises :class:`GuestPanicError` when the guest's kernel panics, and
        :class:`LostVMError` when it does not power off within the timeout.
        """
        return self.start(argv, rwdir, on_line).finish(self.timeout)


class GuestProcess:
    """A running guest: vng and qemu in a process group of their own, and its console."""

    def __init__(
        self,
        release: str,
        proc: subprocess.Popen[bytes],
        tmp: Path,
        accel: str,
        on_line: Callable[[ConsoleLine], None] | None,
    ) -> None:
        self.release = release
        self.proc = proc
        self.tmp = tmp
        self.result = GuestRun(accel=accel)
        self.panicked = False
        self._on_line = on_line
        self._start = time.monotonic()
        self._exited = threading.Event()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        try:
            for raw in self.proc.stdout:
                line = ConsoleLine(raw.decode(errors="replace").rstrip("\r\n").replace("\r", ""))
                self.result.console.append(line)
                if _PANIC.search(line.text):
                    self.panicked = True
                if self._on_line is not None:
                    self._on_line(line)
        except (OSError, ValueError):
            pass  # the pipe was closed by stop()
        finally:
            self._exited.set()

    @property
    def alive(self) -> bool:
        return not self._exited.is_set()

    def wait(self, timeout: float) -> bool:
        """Wait for the guest to power off; False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        # Short waits keep the main thread responsive to Ctrl-C.
        while not self._exited.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return False
        return True

    def finish(self, timeout: float) -> GuestRun:
        """Wait up to ``timeout`` s for the guest to power off, and end it.

        Raises :class:`GuestPanicError` when the guest's kernel panicked, and
        :class:`LostVMError` when it did not power off in time.
        """
        try:
            finished = self.wait(timeout)
        finally:
            self.stop()
        self.raise_if_panicked()  # a panicked guest that hung is a panic, not a hang
        if not finished:
            raise LostVMError(
                f"guest {self.release}: no power-off after {timeout:.0f} s",
                self.result.kernel_log(last=20),
                "the guest hung: look at the kernel log above; raise --timeout if "
                "the work is slow rather than stuck",
            )
        return self.result

    def stop(self) -> None:
        """End the guest (if still running) and remove its temporary files."""
        _stop(self.proc)
        self._reader.join(timeout=5)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.result.seconds = time.monotonic() - self._start

    def raise_if_panicked(self) -> None:
        """Raise :func:`panic_error` if the console showed a kernel panic or oops."""
        if self.panicked:
            raise panic_error(self.release, self.result.kernel_log())


def shows_panic(line: str) -> bool:
    """Whether a console or kernel log line is a panic's or an oops's."""
    return bool(_PANIC.search(line))


def panic_error(release: str, log: list[str]) -> GuestPanicError | LostVMError:
    """The error of a guest whose kernel ``log`` shows a panic or an oops.

    :class:`GuestPanicError` when it is the work's doing and would happen
    again: code called panic(), or a module's code is on the trace. Otherwise
    (an oops in the kernel's own code, which under TCG may be the
    emulation's) :class:`LostVMError`, which the test suite reruns.
    """
    at = next((i for i, line in enumerate(log) if _PANIC.search(line)), len(log) - 1)
    why = _PANIC.split(log[at], 1)[-1].strip(" :") if at < len(log) else ""
    after = log[at:]
    called = any(line.startswith("Kernel panic") and not _AFTER_OOPS.search(line)
                 for line in after)  # fmt: skip
    deterministic = called or any(_MODULE_FRAME.search(line) for line in after)
    return (GuestPanicError if deterministic else LostVMError)(
        f"guest {release}: kernel panic" + (f": {why}" if why else ""),
        log[max(0, at - 8) : at + 12],
        "the kernel log above shows where; a module's init or exit is the usual cause",
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End vng, qemu and their helpers: the whole process group."""
    stop_group(proc, signal.SIGTERM, 3.0, sweep=True)
    if proc.stdout is not None:
        proc.stdout.close()
