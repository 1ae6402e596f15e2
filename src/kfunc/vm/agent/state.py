"""What the agent holds from one step to the next, and how a step fails."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError

__all__ = ["KernelLog", "State", "StepFailed", "libbpf_failed"]


class StepFailed(Exception):
    """A step that did not do what it was asked: its message, fix, and any data."""

    def __init__(self, message: str, fix: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.fix = fix
        self.data = data


def libbpf_failed(exc: KfuncError) -> StepFailed:
    """A failed libbpf call as a step failure that keeps its errno and verifier log
    (the host raises LibbpfError from them)."""
    return StepFailed(exc.message, exc.fix, errno=getattr(exc, "errno", 0),
                      log=getattr(exc, "log", ""))  # fmt: skip


@dataclass
class State:
    """Modules, BPF objects (by path), links and ring buffers of this agent."""

    workdir: Path
    objects: dict[str, Any] = field(default_factory=dict)
    links: list[Any] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    rings: dict[tuple[str, str], Any] = field(default_factory=dict)  # by path and map


class KernelLog:
    """New records of /dev/kmsg since the last read."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self) -> list[str]:
        lines = []
        while True:
            try:
                record = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError as exc:  # EPIPE: records were overwritten; go on
                if exc.errno == errno.EPIPE:
                    continue
                raise
            if not record:
                break
            _, _, text = record.partition(";")
            lines.append(text.split("\n", 1)[0])
        return lines
