"""One qemu of a kernel with kfunc's initramfs as its root and the agent on a port.

The guest of :mod:`kfunc.vm.snapshot` (restored from a file) and of a fresh
boot (``kfunc run --boot``) is the same machine: the kernel, the initramfs of
:mod:`kfunc.vm.initramfs` (unpacked into the kernel's tmpfs, no disk, no 9p),
and a virtio-serial port named ``kfunc`` whose host end is a unix socket
(:mod:`kfunc.vm.port`). Booted, it needs no virtme-ng: no 9p root to page
python in from, no systemd-tmpfiles, no udev; the kernel runs ``/init``, and
``/init`` runs the agent.

qemu runs in a process group of its own, killed on every exit path with its
temporary directory (sockets, console log), and dies with kfunc even when
kfunc is killed.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kfunc.cache import cache_dir
from kfunc.errors import KfuncError, LostVMError, MissingToolError
from kfunc.kernels.target import Kernel
from kfunc.procgroup import stop_group
from kfunc.vm.accel import probe_accel
from kfunc.vm.guest import ConsoleLine, panic_error, shows_panic
from kfunc.vm.initramfs import archive_path, build_initramfs, with_modules
from kfunc.vm.port import PortClient
from kfunc.vm.protocol import EVENT_PREFIX, Event, decode_op

__all__ = [
    "BootedSession",
    "Machine",
    "MachineSession",
    "boot_image",
    "boot_modules",
    "kernel_initramfs",
    "machine_supported",
]

MEMORY = "512M"  # a small guest boots faster and, saved, makes a smaller file
_CMDLINE = "console=ttyS0 panic=-1 init_on_free=1 rdinit=/init"

# What the guest needs before its agent can start: the initramfs root, /dev
# (built in), and the virtio-serial port of the agent (built in, or modules
# that /init inserts first). Debian's 6.12 and 7.x build all in; 6.1 builds
# virtio_pci and virtio_console (and virtio, virtio_ring) as modules.
_BUILT_IN = ("CONFIG_BLK_DEV_INITRD", "CONFIG_DEVTMPFS")
_BUILT_IN_OR_MODULE = {"CONFIG_VIRTIO_PCI": "virtio_pci", "CONFIG_VIRTIO_CONSOLE": "virtio_console"}


def machine_supported(kernel: Kernel) -> bool:
    """Whether ``kernel`` can run as this machine here (else kfunc boots it with
    virtme-ng): an image file, qemu, :data:`_BUILT_IN` built in, and each of
    :data:`_BUILT_IN_OR_MODULE` built in or a module of the kernel's own;
    ``KFUNC_SNAPSHOT=0`` turns the machine off (virtme-ng for every guest)."""
    if os.environ.get("KFUNC_SNAPSHOT", "1") == "0":
        return False
    if not kernel.vmlinuz.is_file() or shutil.which("qemu-system-x86_64") is None:
        return False
    try:
        boot_modules(kernel)
    except KfuncError:
        return False
    return True


def _config(kernel: Kernel) -> dict[str, str]:
    try:
        text = kernel.config.read_text(errors="replace")
    except OSError as exc:
        raise KfuncError(f"{kernel.config}: {exc.strerror or exc}") from None
    return dict(line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_"))


def boot_modules(kernel: Kernel) -> list[Path]:
    """The modules the guest inserts before its agent starts, dependencies first:
    none where the kernel builds the agent's port in. :class:`KfuncError` when
    the kernel has neither it built in nor the module."""
    config = _config(kernel)
    missing = [option for option in _BUILT_IN if config.get(option) != "y"]
    if missing:
        raise KfuncError(f"kernel {kernel.release}: {', '.join(missing)} not built in")
    wanted = [name for option, name in _BUILT_IN_OR_MODULE.items() if config.get(option) != "y"]
    if not wanted:
        return []
    directory = kernel.modules_dir
    try:
        lines = (directory / "modules.dep").read_text().splitlines()
    except OSError:
        raise KfuncError(
            f"kernel {kernel.release}: no modules.dep for {', '.join(wanted)}"
        ) from None
    deps = {}
    for line in lines:
        path, _, needs = line.partition(":")
        deps[path] = needs.split()
    by_name = {_module_name(path): path for path in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path not in order:
            for dep in deps.get(path, []):
                visit(dep)
            order.append(path)

    for name in wanted:
        if name not in by_name:
            raise KfuncError(f"kernel {kernel.release}: {name} neither built in nor a module")
        visit(by_name[name])
    return [directory / path for path in order]


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base[: base.index(".ko")].replace("-", "_")


def _module_bytes(path: Path) -> bytes:
    """A module's ELF, decompressed as the kernel's modprobe would (busybox's
    insmod passes the file as it is)."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        import lzma

        return lzma.decompress(data)
    if path.suffix == ".zst":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if path.suffix == ".gz":
        import gzip

        return gzip.decompress(data)
    return data


def kernel_initramfs(kernel: Kernel, directory: Path, *, make: bool = True) -> Path:
    """The guest's root for ``kernel``: the host's archive
    (:func:`~kfunc.vm.initramfs.build_initramfs`), followed by the kernel's
    :func:`boot_modules` where it has any. ``make=False``: only where it is
    (or would be), without making it."""
    modules = boot_modules(kernel)
    shared = build_initramfs(directory) if make else archive_path(directory)
    if not modules:
        return shared
    out = shared.with_name(f"{shared.stem}-{kernel.release}.cpio")
    if not make:
        return out
    named = [
        (f"{i:02d}-{_module_name(ko.name)}.ko", _module_bytes(ko)) for i, ko in enumerate(modules)
    ]
    return with_modules(shared, named, out)


_XEN_ELFNOTE_PHYS32_ENTRY = 18  # include/xen/interface/elfnote.h


def boot_image(kernel: Kernel) -> Path:
    """The file qemu's ``-kernel`` boots: the kernel's vmlinux ELF where it has
    a PVH entry point (the Xen ELF note ``PHYS32_ENTRY`` that ``CONFIG_PVH``
    adds), else the bzImage. qemu enters a PVH kernel in 64-bit mode at once:
    no decompression of the bzImage and no real-mode setup, both emulated
    instruction by instruction under TCG (1.5 to 2.5 s of each boot here)."""
    vmlinux = getattr(kernel, "vmlinux", None)
    if isinstance(vmlinux, Path) and vmlinux.is_file() and _has_pvh_entry(vmlinux):
        return vmlinux
    return kernel.vmlinuz


def _has_pvh_entry(path: Path) -> bool:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.segments import NoteSegment

    try:
        with path.open("rb") as f:
            for segment in ELFFile(f).iter_segments("PT_NOTE"):
                assert isinstance(segment, NoteSegment)
                for note in segment.iter_notes():
                    # pyelftools names the types it knows; this one stays a number
                    kind: object = note["n_type"]
                    if note["n_name"] == "Xen" and kind == _XEN_ELFNOTE_PHYS32_ENTRY:
                        return True
    except (OSError, ELFError, ValueError):
        pass
    return False


class Machine:
    """One qemu of a kernel and the initramfs: booted, or restored from a file."""

    def __init__(self, kernel: Kernel, initrd: Path, accel: str) -> None:
        if shutil.which("qemu-system-x86_64") is None:
            raise MissingToolError("qemu-system-x86_64", "qemu-system-x86")
        self.kernel = kernel
        self.initrd = initrd
        self.accel = accel
        self.tmp = Path(tempfile.mkdtemp(prefix="kfunc-snap-"))
        self.console = self.tmp / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start = time.monotonic()

    def argv(self) -> list[str]:
        """qemu's options; the same for the boot that saves and every restore."""
        cpu = ["-accel", "kvm", "-cpu", "host"] if self.accel == "kvm" else ["-accel", "tcg"]
        return [
            "qemu-system-x86_64", *cpu, "-m", MEMORY, "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(boot_image(self.kernel)), "-initrd", str(self.initrd),
            "-append", _CMDLINE,
            "-serial", f"file:{self.console}",
            "-device", "virtio-serial-pci,id=vs",
            "-chardev", f"socket,id=c0,path={self.tmp / 'port'},server=on,wait=off",
            "-device", "virtserialport,bus=vs.0,chardev=c0,name=kfunc",
            "-qmp", f"unix:{self.tmp / 'qmp'},server=on,wait=off",
        ]  # fmt: skip

    @staticmethod
    def options_key(kernel: Kernel, initrd: Path, accel: str) -> str:
        probe = Machine.__new__(Machine)
        probe.kernel, probe.initrd, probe.accel = kernel, initrd, accel
        probe.tmp = probe.console = Path("/")
        return " ".join(probe.argv())

    def launch(self, incoming: Path | None = None) -> None:
        argv = self.argv()
        if incoming is not None:
            argv += ["-incoming", f"exec:cat {shlex.quote(str(incoming))}"]
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def console_lines(self) -> list[ConsoleLine]:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return []
        return [ConsoleLine(line.rstrip("\r")) for line in text.splitlines()]

    def kernel_log(self, last: int = 30) -> list[str]:
        lines = [line.message for line in self.console_lines() if line.is_kernel]
        return lines[-last:]

    def stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.alive:
            return ""
        return self.proc.stderr.read().decode(errors="replace").strip()

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc, signal.SIGKILL, 0.0, sweep=True)
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


_PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In qemu's child before exec: SIGKILL when kfunc dies, even by SIGKILL (qemu
    has a session of its own, and the restored guest no idle timeout)."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class MachineSession(PortClient):
    """A guest of ``kernel`` on a :class:`Machine`, serving requests on its port.

    Used as :class:`kfunc.vm.session.GuestSession` is: a context manager, with
    ``call``/``run_steps``, ``kernel_log`` and ``close``. Subclasses say how the
    machine starts (:meth:`start`): booted, or restored from a snapshot.
    """

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.machine: Machine | None = None
        self.accel = "tcg"
        self.timings: dict[str, float] = {}
        super().__init__(Path("/nonexistent"), Path(tempfile.mkdtemp(prefix="kfunc-session-")))

    @property
    def alive(self) -> bool:
        return self.machine is not None and self.machine.alive

    def start(self) -> MachineSession:
        raise NotImplementedError

    def _attach(self, machine: Machine) -> None:
        """Talk to ``machine``'s port from now on."""
        self.machine = machine
        self.socket_path = machine.tmp / "port"
        self._alive = lambda: self.alive

    def _first_answer(
        self, machine: Machine, client: PortClient, timeout: float, what: str
    ) -> dict[str, Any]:
        """Connect to ``machine``'s port and wake its agent: the host's clock and
        random bytes (a restored guest wakes with those of its snapshot)."""
        deadline = time.monotonic() + timeout
        try:
            client.connect(timeout)
            wake = {"clock": time.time_ns(), "seed": os.urandom(32).hex()}
            return client.request(wake, max(1.0, deadline - time.monotonic()))
        except (OSError, LostVMError) as exc:
            why = machine.stderr() or str(exc)
            raise LostVMError(
                f"guest {self.kernel.release}: no answer after {what}: {why}"[:400],
                [line.text for line in machine.console_lines()[-20:]],
                "the console above shows how far it got; KFUNC_SNAPSHOT=0 boots with "
                "virtme-ng instead",
            ) from None

    def kernel_log(self, last: int = 30) -> list[str]:
        """The guest console's last kernel lines (for a failing test's report)."""
        return self.machine.kernel_log(last) if self.machine else []

    def call(self, request: dict[str, Any], timeout: float = 120.0) -> list[Event]:
        """As :meth:`PortClient.call`; a lost guest's error says whether it panicked
        (:func:`~kfunc.vm.guest.panic_error`), in which step, and carries its
        console's last kernel lines."""
        ended = self._steps_ended()
        try:
            return super().call(request, timeout)
        except LostVMError as exc:
            where = _where(request.get("steps") or [], self._steps_ended() - ended)
            log = self.kernel_log(200)
            if any(shows_panic(line) for line in log):
                panic = panic_error(self.kernel.release, log)
                raise type(panic)(f"{panic.message}{where}", panic.kernel_log, panic.fix) from None
            raise LostVMError(
                f"guest {self.kernel.release}: {exc.message.removeprefix('guest: ')}{where}",
                log[-20:],
                exc.fix,
            ) from None

    def _steps_ended(self) -> int:
        """How many steps the agent said on the console it finished, so far."""
        return sum(line.text.startswith(EVENT_PREFIX) for line in self.console_lines())

    def console_lines(self) -> list[ConsoleLine]:
        """The guest's console since it started (or was restored)."""
        return self.machine.console_lines() if self.machine else []

    def close(self) -> None:
        """End qemu and remove everything of the session. The guest is thrown
        away, not asked to unload first: nothing of it outlives qemu, and a
        guest that hangs in a step or panicked would not answer."""
        if self.machine is not None:
            self.close_socket()
            self.machine.stop()
            self.machine = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> MachineSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where(steps: list[dict[str, Any]], ended: int) -> str:
    """`` (during step insmod hello)``: the step after the ``ended`` first, if any."""
    if not 0 <= ended < len(steps):
        return ""
    try:
        return f" (during step {decode_op(steps[ended]).label()})"
    except KfuncError:
        return ""


class BootedSession(MachineSession):
    """A fresh guest of ``kernel``: the machine boots (no snapshot read or
    written) to its agent's first answer. :meth:`launch` starts qemu and a
    thread that waits for that answer, and returns at once, so that the guest
    boots while the host builds; :meth:`start` waits for the thread."""

    def __init__(self, kernel: Kernel, *, boot_timeout: float = 300.0) -> None:
        super().__init__(kernel)
        self.boot_timeout = boot_timeout
        self._waiter: threading.Thread | None = None
        self._failure: BaseException | None = None

    def launch(self) -> BootedSession:
        if self.machine is not None:
            return self
        try:
            self.accel = probe_accel(self.kernel.vmlinuz)
            initrd = kernel_initramfs(self.kernel, cache_dir("snapshots"))
            machine = Machine(self.kernel, initrd, self.accel)
            self._attach(machine)
            machine.launch()
        except BaseException:
            self.close()
            raise
        self._waiter = threading.Thread(target=self._wait, args=(machine,), daemon=True)
        self._waiter.start()
        return self

    def _wait(self, machine: Machine) -> None:
        try:
            uptime = self._first_answer(machine, self, self.boot_timeout, "boot").get("uptime")
            self.timings["first_answer"] = time.monotonic() - machine.start
            if isinstance(uptime, dict):  # the guest's side of the boot
                self.timings["kernel"] = uptime["python"]
                self.timings["python"] = uptime["agent"] - uptime["python"]
                self.timings["agent"] = uptime["now"] - uptime["agent"]
        except BaseException as exc:  # re-raised by start(), in the caller's thread
            self._failure = exc

    def start(self) -> BootedSession:
        self.launch()
        assert self._waiter is not None
        try:
            while self._waiter.is_alive():
                self._waiter.join(0.2)  # short waits: Ctrl-C reaches the caller
            if self._failure is not None:
                raise self._failure
        except BaseException:
            self.close()
            raise
        return self
