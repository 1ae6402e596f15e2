"""Kept guests: a booted target that outlives the command that started it.

``kfunc vm start`` runs this module detached (``python -m kfunc.vm.keeper``):
it boots the kernel with a serving agent (:mod:`kfunc.vm.session`), streams
the console into a log file, records itself in ``~/.cache/kfunc/vm/<release>.json``
and stays until ``kfunc vm stop``, the end of its lifetime, or the guest
powering off. Other kfunc processes find it there and send their requests to
its directory; nothing else runs on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.errors import GuestError, LostVMError
from kfunc.kernels.target import Kernel, get_kernel
from kfunc.vm.machine import machine_supported
from kfunc.vm.session import GuestSession, SessionClient

__all__ = ["KeptGuest", "KeptSession", "find_kept", "kept_guests", "start_kept", "stop_kept"]


@dataclass(frozen=True)
class KeptGuest:
    release: str
    pid: int  # the keeper process
    directory: str  # the agent's request directory
    started: float
    lifetime: float
    console: str  # the console log file

    @property
    def client(self) -> SessionClient:
        return SessionClient(Path(self.directory), self.alive)

    def alive(self) -> bool:
        return _running(self.pid) and (Path(self.directory) / "ready").exists()


class KeptSession(SessionClient):
    """A kept guest used like a :class:`GuestSession`; closing it leaves the guest up.

    What a user of the session loaded, it unloads itself (the pytest
    fixtures do at teardown); the guest stays for the next command.
    """

    def __init__(self, kept: KeptGuest, kernel: Kernel) -> None:
        super().__init__(Path(kept.directory), kept.alive)
        self.kept = kept
        self.kernel = kernel

    def kernel_log(self, last: int = 30) -> list[str]:
        """The kept guest's last kernel lines, from its console log."""
        from kfunc.vm.guest import ConsoleLine

        text = Path(self.kept.console).read_text(errors="replace").splitlines()
        lines = [ConsoleLine(t) for t in text[-2000:]]
        return [line.message for line in lines if line.is_kernel][-last:]

    def close(self) -> None:
        pass


def _record(release: str) -> Path:
    return cache_dir("vm") / f"{release}.json"


def kept_guests() -> list[KeptGuest]:
    """The kept guests that are up; stale records are removed."""
    found = []
    for path in sorted(cache_dir("vm").glob("*.json")):
        try:
            kept = KeptGuest(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            continue  # not a record of ours (e.g. the accelerator probe's cache)
        if kept.alive():
            found.append(kept)
        elif not _running(kept.pid):
            path.unlink(missing_ok=True)  # its keeper is gone
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def find_kept(kernel: Kernel) -> KeptGuest | None:
    """The kept guest of ``kernel``, if one is up."""
    return next((k for k in kept_guests() if k.release == kernel.key), None)


def start_kept(kernel: Kernel, lifetime: float = 3600.0, boot_timeout: float = 180.0) -> KeptGuest:
    """Start a keeper for ``kernel`` (detached) and wait until its guest serves."""
    existing = find_kept(kernel)
    if existing is not None:
        return existing
    console = cache_dir("vm") / f"{kernel.key}.console"
    with console.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kfunc.vm.keeper", kernel.spec, str(lifetime)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + boot_timeout
    while time.monotonic() < deadline:
        kept = find_kept(kernel)
        if kept is not None:
            return kept
        if proc.poll() is not None:
            tail = console.read_text(errors="replace").splitlines()[-15:]
            raise GuestError(
                f"kept guest {kernel.release}: did not come up (keeper exit {proc.returncode})",
                tail,
                f"see {console}",
            )
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise LostVMError(f"kept guest {kernel.release}: not ready within {boot_timeout:.0f} s")


def stop_kept(kept: KeptGuest, timeout: float = 30.0) -> None:
    """Power the kept guest off and wait for its keeper to clean up."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(kept.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _running(kept.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _running(kept.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(kept.pid, signal.SIGKILL)
    _record(kept.release).unlink(missing_ok=True)


def _keep(spec: str, lifetime: float) -> int:
    kernel = get_kernel(spec)
    release = kernel.key  # what the record is named by: a local kernel's may share its release
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    console = cache_dir("vm") / f"{release}.console"
    if machine_supported(kernel):
        return _keep_restored(kernel, lifetime, console, lambda: stop)
    with (
        console.open("a") as log,
        GuestSession(
            kernel,
            idle=lifetime,
            on_line=lambda line: print(line.text, file=log, flush=True),
        ) as session,
    ):
        record = KeptGuest(
            release, os.getpid(), str(session.directory), time.time(), lifetime, str(console)
        )
        _record(release).write_text(json.dumps(asdict(record), indent=2) + "\n")
        try:
            deadline = time.monotonic() + lifetime
            while not stop and time.monotonic() < deadline and session.alive:
                time.sleep(0.2)
        finally:
            _record(release).unlink(missing_ok=True)
    return 0


_CLAIM_TIMEOUT = 10.0  # as the agent's serve(): a claim whose request never comes


def _keep_restored(
    kernel: Kernel, lifetime: float, console: Path, stopped: Callable[[], bool]
) -> int:
    """Keep a guest restored from the kernel's snapshot: this process relays the
    request files of a served session (:func:`kfunc.vm.agent.serve`, which
    clients of a kept guest write) to the guest's port."""
    from kfunc.vm.snapshot import SnapshotSession

    with SnapshotSession(kernel) as session:
        directory = session.directory
        assert session.machine is not None
        # the console log: qemu's own file, live (the keeper's output is in ``console``)
        record = KeptGuest(kernel.key, os.getpid(), str(directory), time.time(), lifetime,
                           str(session.machine.console))  # fmt: skip
        (directory / "ready").write_text(json.dumps({"release": kernel.release}))
        _record(kernel.key).write_text(json.dumps(asdict(record), indent=2) + "\n")
        try:
            deadline = time.monotonic() + lifetime
            n, claimed_at = 0, None
            while not stopped() and time.monotonic() < deadline and session.alive:
                req = directory / f"req-{n}.json"
                if not req.exists():
                    if (directory / f"claim-{n}").exists():
                        claimed_at = claimed_at or time.monotonic()
                        if time.monotonic() - claimed_at > _CLAIM_TIMEOUT:
                            n, claimed_at = n + 1, None
                    time.sleep(0.02)
                    continue
                try:
                    events = session.call(json.loads(req.read_text()), timeout=3600.0)
                except GuestError as exc:
                    events = [{"step": "done", "ok": False, "error": exc.message}]
                partial = directory / f"resp-{n}.jsonl.tmp"
                partial.write_text("".join(json.dumps(e) + "\n" for e in events))
                partial.rename(directory / f"resp-{n}.jsonl")
                n, claimed_at = n + 1, None
        finally:
            _record(kernel.key).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(_keep(sys.argv[1], float(sys.argv[2])))
