"""A booted guest that serves requests: one boot, many steps.

The guest runs the agent (``python -m kfunc.vm.agent --serve DIR``, from
:mod:`kfunc.vm.bundle`) on a directory that
both sides share (read-write for the guest). What a request holds is the
protocol (:mod:`kfunc.vm.protocol`); how it travels is a transport. Here it
is the shared directory: the host writes a request file and reads the answer
file (the guest side is :func:`kfunc.vm.agent.serve.serve_directory`).
Modules, BPF objects and links stay loaded from one request to the next,
which is what test fixtures and a kept guest need. The guest powers off when
the session is closed, or by itself when no request came for ``idle``
seconds; the host bounds each request by a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfunc.errors import GuestError, LostVMError
from kfunc.kernels.target import Kernel
from kfunc.vm.bundle import agent_argv
from kfunc.vm.client import AgentClient
from kfunc.vm.guest import ConsoleLine, Guest, GuestProcess
from kfunc.vm.protocol import READY, Event

__all__ = ["GuestSession", "SessionClient"]


class SessionClient(AgentClient):
    """Talks to a serving agent through its directory; usable from any host process."""

    def __init__(self, directory: Path, alive: Callable[[], bool] | None = None) -> None:
        self.directory = directory
        self._alive = alive or (lambda: True)

    def _claim(self) -> int:
        n = 0
        while True:
            try:
                fd = os.open(self.directory / f"claim-{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                n += 1
                continue
            os.close(fd)
            return n

    def _lost(self, message: str, fix: str | None = None) -> LostVMError:
        return LostVMError(message, fix=fix)

    def call(self, request: dict[str, Any], timeout: float = 120.0) -> list[Event]:
        n = self._claim()
        tmp = self.directory / f"req-{n}.json.tmp"
        tmp.write_text(json.dumps(request))
        tmp.rename(self.directory / f"req-{n}.json")
        answer = self.directory / f"resp-{n}.jsonl"
        deadline = time.monotonic() + timeout
        while not answer.exists():
            if not self._alive():
                raise self._lost("guest: powered off before it answered")
            if time.monotonic() > deadline:
                raise self._lost(
                    f"guest: no answer within {timeout:.0f} s",
                    "a step hangs in the guest: look at its kernel log",
                )
            time.sleep(0.02)
        return [json.loads(line) for line in answer.read_text().splitlines() if line]

    def stage(self, path: str | os.PathLike[str]) -> str:
        src = Path(path)
        if not src.is_file():
            raise GuestError(f"{src}: no such file", fix="build it first (kfunc build)")
        files = self.directory / "files"
        files.mkdir(exist_ok=True)
        n = sum(1 for _ in files.iterdir())
        dest = files / f"{n}-{src.name}"
        shutil.copy2(src, dest)
        return str(dest)


class GuestSession(SessionClient):
    """Boot ``kernel`` and keep it serving until :meth:`close` (a context manager)."""

    def __init__(
        self,
        kernel: Kernel,
        *,
        idle: float = 600.0,
        boot_timeout: float = 180.0,
        on_line: Callable[[ConsoleLine], None] | None = None,
    ) -> None:
        super().__init__(Path(tempfile.mkdtemp(prefix="kfunc-session-")))
        self.kernel = kernel
        self.idle = idle
        self.boot_timeout = boot_timeout
        self.on_line = on_line
        self.guest: GuestProcess | None = None

    @property
    def alive(self) -> bool:
        return self.guest is not None and self.guest.alive

    def start(self) -> GuestSession:
        argv = agent_argv("--serve", str(self.directory), str(self.idle))
        self._alive = lambda: self.alive
        try:
            self.guest = Guest(self.kernel).start(argv, self.directory, self.on_line)
            deadline = time.monotonic() + self.boot_timeout
            while not (self.directory / READY).exists():
                if not self.guest.alive or time.monotonic() > deadline:
                    self.guest.raise_if_panicked()
                    raise LostVMError(
                        f"guest {self.kernel.release}: not ready within {self.boot_timeout:.0f} s"
                        if self.guest.alive
                        else f"guest {self.kernel.release}: powered off during boot",
                        self.guest.result.kernel_log(last=20),
                        "the kernel log above shows how far the boot got",
                    )
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise
        return self

    def _lost(self, message: str, fix: str | None = None) -> LostVMError:
        # A guest that powered off because its kernel panicked says so.
        if self.guest is not None and not self.guest.alive:
            self.guest.raise_if_panicked()
        return LostVMError(message, fix=fix)

    def kernel_log(self, last: int = 30) -> list[str]:
        """The guest console's last kernel lines (for a failing test's report)."""
        return self.guest.result.kernel_log(last=last) if self.guest else []

    def close(self) -> None:
        """Unload what is loaded, power off, and remove everything of the session."""
        if self.guest is not None:
            if self.guest.alive and (self.directory / READY).exists():
                with contextlib.suppress(LostVMError):
                    self.stop(timeout=30)
                self.guest.wait(15)
            self.guest.stop()
            self.guest = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> GuestSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
