"""Guests restored from a snapshot: a kernel boots once, every later guest resumes.

The first time a kernel is used, its :class:`~kfunc.vm.machine.Machine`
boots until its agent answers on the virtio-serial port (:mod:`kfunc.vm.port`)
and has imported what the steps import lazily; then qemu saves the whole machine
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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfunc.cache import cache_dir, file_identity, file_sha256, read_json, write_json
from kfunc.errors import KfuncError, LostVMError
from kfunc.kernels.target import Kernel
from kfunc.vm.accel import probe_accel
from kfunc.vm.machine import Machine, MachineSession, boot_image, kernel_initramfs
from kfunc.vm.port import PortClient

__all__ = [
    "SnapshotFile",
    "SnapshotSession",
    "list_snapshots",
    "remove_snapshots",
]

_BOOT_TIMEOUT = 300.0  # the one boot, to the agent's first answer (TCG, loaded host)
_SAVE_TIMEOUT = 120.0
_RESTORE_TIMEOUT = 30.0  # restore to the first answer: beyond it, the file is damaged


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


class SnapshotSession(MachineSession):
    """A fresh guest of ``kernel``, restored from its snapshot (made first if need be)."""

    def __init__(self, kernel: Kernel, *, boot_timeout: float = _BOOT_TIMEOUT) -> None:
        super().__init__(kernel)
        self.boot_timeout = boot_timeout
        self.snapshot: SnapshotFile | None = None
        self.restored = False  # False: this session had to boot and save first

    # -- the snapshot file ----------------------------------------------------

    def _find_or_make(self) -> tuple[SnapshotFile, Path, str]:
        t0 = time.monotonic()
        directory = _directory()
        accel = probe_accel(self.kernel.vmlinuz)
        initrd = kernel_initramfs(self.kernel, directory, make=False)
        key = hashlib.sha256(
            json.dumps([file_identity(boot_image(self.kernel)), initrd.name,
                        file_identity(shutil.which("qemu-system-x86_64") or "qemu"),
                        Machine.options_key(self.kernel, initrd, accel)]).encode()
        ).hexdigest()  # fmt: skip
        name = f"{self.kernel.release}-{key[:16]}"
        self.timings["key"] = time.monotonic() - t0
        snap = _read_record(directory / f"{name}.json")
        if snap is not None and snap.path.exists() and initrd.exists():
            return snap, initrd, accel
        with _lock(directory / ".lock", self.boot_timeout + _SAVE_TIMEOUT + 60):
            snap = _read_record(directory / f"{name}.json")
            if snap is None or not snap.path.exists() or not initrd.exists():
                initrd = kernel_initramfs(self.kernel, directory)
                snap = self._boot_and_save(directory, name, key, initrd, accel)
        return snap, initrd, accel

    def _boot_and_save(
        self, directory: Path, name: str, key: str, initrd: Path, accel: str
    ) -> SnapshotFile:
        """Boot to the agent's first answer and save the machine to a new file."""
        machine = Machine(self.kernel, initrd, accel)
        path = directory / f"{name}.vmstate"
        partial = directory / f".{name}.{os.getpid()}.partial"
        try:
            machine.launch()
            client = PortClient(machine.tmp / "port", self.directory, lambda: machine.alive)
            self._first_answer(machine, client, self.boot_timeout, "boot")
            # What the steps import lazily, imported now: no restored guest pays.
            client.request({"preload": True}, self.boot_timeout)
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
                machine = Machine(self.kernel, initrd, accel)
                self._attach(machine)
                machine.launch(incoming=snap.path)
                check.join()
                try:
                    if digest != [snap.sha256]:
                        raise LostVMError(f"snapshot {snap.path.name}: checksum differs")
                    self._first_answer(machine, self, _RESTORE_TIMEOUT, "restore")
                except LostVMError:
                    if attempt == 2:
                        raise
                    machine.stop()
                    self.machine = None
                    snap.remove()  # damaged, or qemu could not load it: made again
                    continue
                self.snapshot = snap
                self.timings["first_answer"] = time.monotonic() - t0
                return self
            raise LostVMError(f"guest {self.kernel.release}: its snapshot is damaged twice")
        except BaseException:
            self.close()
            raise
