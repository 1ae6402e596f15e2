"""Guests restored from a snapshot: a kernel boots once, every later guest resumes.

The first time a kernel is used, it boots in qemu with the initramfs of
:mod:`kfunc.vm.initramfs` as its root, until its agent answers on the
virtio-serial port (:mod:`kfunc.vm.port`); then qemu saves the whole machine
to a file (QMP ``migrate`` to ``exec:cat > FILE``). Every later guest of that
kernel is a qemu started with ``-incoming 'exec:cat FILE'``: it resumes where
the agent waits for its first request, with no boot.

- Every guest restores from the file as it was saved; nothing is ever saved
  over it, so each starts from the same state.
- The guest's clock is set after each restore (the ``clock`` request).
- A snapshot's name holds the hash of what it was made from (the kernel
  image, the initramfs inputs, qemu, the machine's options): a change to any
  makes another, and the old one is removed.
- A snapshot whose SHA-256 differs from the one recorded when it was saved, or
  that qemu fails to load, or whose guest does not answer in time, is removed
  and made again, never trusted.

qemu runs in a process group of its own, killed on every exit path with its
temporary directory (sockets, console log).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfunc.cache import cache_dir, file_identity, file_sha256, read_json, write_json
from kfunc.errors import KfuncError, LostVMError, MissingToolError
from kfunc.kernels.target import Kernel
from kfunc.procgroup import stop_group
from kfunc.vm.accel import probe_accel
from kfunc.vm.guest import ConsoleLine, panic_error, shows_panic
from kfunc.vm.initramfs import build_initramfs, inputs_key
from kfunc.vm.port import PortClient
from kfunc.vm.protocol import Event

__all__ = [
    "SnapshotFile",
    "SnapshotSession",
    "list_snapshots",
    "remove_snapshots",
    "snapshot_supported",
]

MEMORY = "512M"  # a small guest keeps the file small (and free pages are zeroed)
_CMDLINE = "console=ttyS0 panic=-1 init_on_free=1 rdinit=/init"
_BOOT_TIMEOUT = 300.0  # the one boot, to the agent's first answer (TCG, loaded host)
_SAVE_TIMEOUT = 120.0
_RESTORE_TIMEOUT = 30.0  # restore to the first answer: beyond it, the file is damaged


# What the guest needs built in, with no module loaded: the initramfs root,
# /dev, and the virtio-serial port of the agent. Debian's 6.12 and 7.x build
# them in; 6.1 builds virtio_console and virtio_pci as modules.
_BUILT_IN = ("CONFIG_BLK_DEV_INITRD", "CONFIG_DEVTMPFS", "CONFIG_VIRTIO_PCI",
             "CONFIG_VIRTIO_CONSOLE")  # fmt: skip


def snapshot_supported(kernel: Kernel) -> bool:
    """Whether ``kernel`` can run as a restored guest here (else a vng boot):
    an image file whose config has :data:`_BUILT_IN` built in, and qemu."""
    if os.environ.get("KFUNC_SNAPSHOT", "1") == "0":
        return False
    if not kernel.vmlinuz.is_file() or shutil.which("qemu-system-x86_64") is None:
        return False
    try:
        config = set(kernel.config.read_text(errors="replace").splitlines())
    except OSError:
        return False
    return all(f"{option}=y" in config for option in _BUILT_IN)


def _directory() -> Path:
    return cache_dir("snapshots")


@dataclass(frozen=True)
class SnapshotFile:
    """A saved guest in kfunc's cache, and what it was made from."""

    path: Path
    release: str
    key: str
    sha256: str
    size: int
    seconds: float  # the boot it saved
    created: float

    @property
    def meta(self) -> Path:
        return self.path.with_suffix(".json")

    def remove(self) -> int:
        """Delete the file and its record; the bytes freed."""
        freed = 0
        for path in (self.path, self.meta):
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
        return freed

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "release": self.release, "key": self.key,
                "sha256": self.sha256, "size": self.size, "boot_seconds": self.seconds,
                "created": self.created}  # fmt: skip


def _read_record(meta: Path) -> SnapshotFile | None:
    data = read_json(meta)
    if not isinstance(data, dict):
        return None
    try:
        return SnapshotFile(meta.with_suffix(".vmstate"), data["release"], data["key"],
                            data["sha256"], data["size"], data["boot_seconds"],
                            data["created"])  # fmt: skip
    except KeyError:
        return None


def list_snapshots() -> list[SnapshotFile]:
    """The snapshots in kfunc's cache (those with a readable record)."""
    found = (_read_record(meta) for meta in sorted(_directory().glob("*.json")))
    return [s for s in found if s is not None and s.path.exists()]


def remove_snapshots(release: str | None = None) -> list[tuple[str, int]]:
    """Remove the snapshots of ``release`` (every one when None), with the
    initramfs when nothing is left; (release, bytes freed) of each."""
    removed = []
    directory = _directory()
    for snap in list_snapshots():
        if release is None or snap.release == release or snap.release.startswith(f"{release}."):
            removed.append((snap.release, snap.remove()))
    if release is None:
        for path in [*directory.glob("*.vmstate"), *directory.glob("root-*.cpio")]:
            removed.append((path.name, path.stat().st_size))
            path.unlink()
    return removed


_KEEP = 3  # snapshots of one release kept (other kfunc versions on the host use theirs)


def _prune(directory: Path, release: str) -> None:
    """Remove all but the newest snapshots of ``release``, and the initramfs
    archives no snapshot refers to any more."""
    mine = sorted((s for s in list_snapshots() if s.release == release),
                  key=lambda s: s.created, reverse=True)  # fmt: skip
    for old in mine[_KEEP:]:
        old.remove()
    used = set()
    for snap in list_snapshots():
        initrd = (read_json(snap.meta) or {}).get("initrd")
        if initrd and (directory / initrd).exists():
            used.add(initrd)
        else:
            snap.remove()  # its archive is gone: it can never be restored
    for cpio in directory.glob("root-*.cpio"):
        if cpio.name not in used:
            cpio.unlink(missing_ok=True)


class _Qmp:
    """Enough of the QEMU Machine Protocol to save a guest."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rwb")
        self.file.readline()  # the greeting
        self.execute("qmp_capabilities")

    def execute(self, command: str, **arguments: Any) -> Any:
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self.file.write(json.dumps(message).encode() + b"\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise OSError(f"qmp {command}: qemu closed the connection")
            reply = json.loads(line)
            if "error" in reply:
                raise OSError(f"qmp {command}: {reply['error'].get('desc')}")
            if "return" in reply:
                return reply["return"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class _Machine:
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
            "-kernel", str(self.kernel.vmlinuz), "-initrd", str(self.initrd),
            "-append", _CMDLINE,
            "-serial", f"file:{self.console}",
            "-device", "virtio-serial-pci,id=vs",
            "-chardev", f"socket,id=c0,path={self.tmp / 'port'},server=on,wait=off",
            "-device", "virtserialport,bus=vs.0,chardev=c0,name=kfunc",
            "-qmp", f"unix:{self.tmp / 'qmp'},server=on,wait=off",
        ]  # fmt: skip

    @staticmethod
    def options_key(kernel: Kernel, initrd: Path, accel: str) -> str:
        probe = _Machine.__new__(_Machine)
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


@contextlib.contextmanager
def _lock(path: Path, timeout: float) -> Iterator[None]:
    """The snapshot directory's lock: one process makes a snapshot, the others wait
    for it (at most ``timeout`` s: the boot and the save of the one making it)."""
    deadline = time.monotonic() + timeout
    with path.open("a") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise KfuncError(
                        f"{path.parent}: another kfunc has been making a snapshot for "
                        f"{timeout:.0f} s",
                        "wait for it, or set KFUNC_SNAPSHOT=0 to boot with virtme-ng",
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class SnapshotSession(PortClient):
    """A fresh guest of ``kernel``, restored from its snapshot (made first if need be).

    Used as :class:`kfunc.vm.session.GuestSession` is: a context manager, with
    ``call``/``run_steps``, ``kernel_log`` and ``close``.
    """

    def __init__(
        self,
        kernel: Kernel,
        *,
        boot_timeout: float = _BOOT_TIMEOUT,
    ) -> None:
        self.kernel = kernel
        self.boot_timeout = boot_timeout
        self.machine: _Machine | None = None
        self.snapshot: SnapshotFile | None = None
        self.restored = False  # False: this session had to boot and save first
        self.accel = "tcg"
        self.timings: dict[str, float] = {}
        super().__init__(Path("/nonexistent"), Path(tempfile.mkdtemp(prefix="kfunc-session-")))

    @property
    def alive(self) -> bool:
        return self.machine is not None and self.machine.alive

    # -- the snapshot file ----------------------------------------------------

    def _find_or_make(self) -> tuple[SnapshotFile, Path, str]:
        t0 = time.monotonic()
        directory = _directory()
        accel = probe_accel(self.kernel.vmlinuz)
        initrd = directory / f"root-{inputs_key()[:16]}.cpio"
        key = hashlib.sha256(
            json.dumps([file_identity(self.kernel.vmlinuz), initrd.name,
                        file_identity(shutil.which("qemu-system-x86_64") or "qemu"),
                        _Machine.options_key(self.kernel, initrd, accel)]).encode()
        ).hexdigest()  # fmt: skip
        name = f"{self.kernel.release}-{key[:16]}"
        self.timings["key"] = time.monotonic() - t0
        snap = _read_record(directory / f"{name}.json")
        if snap is not None and snap.path.exists() and initrd.exists():
            return snap, initrd, accel
        with _lock(directory / ".lock", self.boot_timeout + _SAVE_TIMEOUT + 60):
            snap = _read_record(directory / f"{name}.json")
            if snap is None or not snap.path.exists() or not initrd.exists():
                initrd = build_initramfs(directory)
                snap = self._boot_and_save(directory, name, key, initrd, accel)
        return snap, initrd, accel

    def _boot_and_save(
        self, directory: Path, name: str, key: str, initrd: Path, accel: str
    ) -> SnapshotFile:
        """Boot to the agent's first answer and save the machine to a new file."""
        machine = _Machine(self.kernel, initrd, accel)
        path = directory / f"{name}.vmstate"
        partial = directory / f".{name}.{os.getpid()}.partial"
        try:
            machine.launch()
            client = PortClient(machine.tmp / "port", self.directory, lambda: machine.alive)
            self._first_answer(machine, client, self.boot_timeout, "boot")
            seconds = time.monotonic() - machine.start
            self.timings["boot"] = seconds
            # Saved running (not stopped first): qemu resumes a guest whose
            # saved state is running by itself after loading it. The agent
            # waits in a read of its port, so the guest is idle and the live
            # migration ends after one pass.
            qmp = _Qmp(machine.tmp / "qmp", 30.0)
            try:
                qmp.execute("migrate", uri=f"exec:cat > {shlex.quote(str(partial))}")
                deadline = time.monotonic() + _SAVE_TIMEOUT
                while (status := qmp.execute("query-migrate").get("status")) != "completed":
                    if status == "failed" or time.monotonic() > deadline:
                        raise KfuncError(
                            f"snapshot of {self.kernel.release}: qemu's migrate {status}",
                            "run again; set KFUNC_SNAPSHOT=0 to boot with virtme-ng instead",
                        )
                    time.sleep(0.05)
                with contextlib.suppress(OSError):
                    qmp.execute("quit")
            finally:
                qmp.close()
                client.close_socket()
            snap = SnapshotFile(path, self.kernel.release, key, file_sha256(partial),
                                partial.stat().st_size, round(seconds, 2), time.time())  # fmt: skip
            os.replace(partial, path)
            record = snap.to_dict()
            record.pop("path")
            record["initrd"] = initrd.name
            write_json(snap.meta, record)
            _prune(directory, self.kernel.release)
            return snap
        finally:
            machine.stop()
            partial.unlink(missing_ok=True)

    def _first_answer(
        self, machine: _Machine, client: PortClient, timeout: float, what: str
    ) -> dict[str, Any]:
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

    # -- the session ------------------------------------------------------------

    def start(self) -> SnapshotSession:
        t0 = time.monotonic()
        try:
            for attempt in (1, 2):
                snap, initrd, accel = self._find_or_make()
                self.accel = accel
                self.restored = attempt == 1 and "boot" not in self.timings
                # The checksum is read while qemu loads the file (both mostly
                # wait on the page cache); nothing is sent to the guest before
                # it is known good.
                digest: list[str] = []
                check = threading.Thread(target=lambda p, d: d.append(file_sha256(p)),
                                         args=(snap.path, digest), daemon=True)  # fmt: skip
                check.start()
                self.machine = _Machine(self.kernel, initrd, accel)
                self.machine.launch(incoming=snap.path)
                self.socket_path = self.machine.tmp / "port"
                self._alive = lambda: self.alive
                check.join()
                try:
                    if digest != [snap.sha256]:
                        raise LostVMError(f"snapshot {snap.path.name}: checksum differs")
                    self._first_answer(self.machine, self, _RESTORE_TIMEOUT, "restore")
                except LostVMError:
                    if attempt == 2:
                        raise
                    self.machine.stop()
                    snap.remove()  # damaged, or qemu could not load it: made again
                    continue
                self.snapshot = snap
                self.timings["first_answer"] = time.monotonic() - t0
                return self
            raise LostVMError(f"guest {self.kernel.release}: its snapshot is damaged twice")
        except BaseException:
            self.close()
            raise

    def kernel_log(self, last: int = 30) -> list[str]:
        """The guest console's last kernel lines (for a failing test's report)."""
        return self.machine.kernel_log(last) if self.machine else []

    def call(self, request: dict[str, Any], timeout: float = 120.0) -> list[Event]:
        """As :meth:`PortClient.call`; a lost guest's error says whether it panicked
        (:func:`~kfunc.vm.guest.panic_error`) and carries its console's last kernel lines."""
        try:
            return super().call(request, timeout)
        except LostVMError as exc:
            log = self.kernel_log(200)
            if any(shows_panic(line) for line in log):
                raise panic_error(self.kernel.release, log) from None
            raise LostVMError(
                f"guest {self.kernel.release}: {exc.message.removeprefix('guest: ')}",
                log[-20:],
                exc.fix,
            ) from None

    def console_lines(self) -> list[ConsoleLine]:
        """The guest's console since the restore."""
        return self.machine.console_lines() if self.machine else []

    def close(self) -> None:
        """Unload what is loaded, end qemu, remove everything of the session."""
        if self.machine is not None:
            if self.machine.alive and self._sock is not None:
                with contextlib.suppress(LostVMError, OSError):
                    self.call({"stop": True}, timeout=30)
            self.close_socket()
            self.machine.stop()
            self.machine = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SnapshotSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
