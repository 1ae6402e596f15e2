"""The kernel's trace buffer: mounting tracefs and reading ``trace_pipe``.

``bpf_printk`` writes to the trace buffer; ``trace_pipe`` hands each line out
once, blocking until there is one. :class:`TracePipe` reads it without
blocking forever, and :func:`parse_trace_line` splits a line into fields.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errnos
import os
import re
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kfunc.errors import KfuncError

__all__ = [
    "TRACEFS",
    "TraceLine",
    "TracePipe",
    "ensure_tracefs",
    "parse_trace_line",
    "tracefs_mounted",
    "unmount_tracefs",
]

TRACEFS = Path("/sys/kernel/tracing")

# The process's own symbols, libc's among them: ctypes.util.find_library("c")
# runs `ldconfig -p` (and gcc) in a subprocess, seconds in a guest under TCG.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _mounts() -> Iterator[tuple[str, str]]:
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            yield fields[1], fields[2]


def tracefs_mounted(path: Path = TRACEFS) -> bool:
    """Whether tracefs is mounted at ``path``."""
    return (str(path), "tracefs") in _mounts()


def _tracefs_supported() -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1:] == ["tracefs"] for line in f)


def ensure_tracefs(path: Path = TRACEFS) -> bool:
    """Mount tracefs at ``path`` unless it is there; True if this call mounted it.

    The caller that got True owns the mount and may :func:`unmount_tracefs`.
    """
    if tracefs_mounted(path):
        return False
    if not _tracefs_supported():
        raise KfuncError(
            "tracefs: not supported by the running kernel (not in /proc/filesystems)",
            fix="use a kernel built with CONFIG_FTRACE (tracing support)",
        )
    if _libc.mount(b"tracefs", os.fsencode(path), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        raise KfuncError(
            f"tracefs: cannot mount at {path}: {os.strerror(err)}",
            fix="run as root" if err == errnos.EPERM else None,
        )
    return True


def unmount_tracefs(path: Path = TRACEFS) -> None:
    """Unmount the tracefs at ``path`` (mounted by :func:`ensure_tracefs`)."""
    if _libc.umount2(os.fsencode(path), 0) != 0:
        err = ctypes.get_errno()
        raise KfuncError(f"tracefs: cannot unmount {path}: {os.strerror(err)}")


@dataclass(frozen=True)
class TraceLine:
    """One line of the trace buffer.

    ``flags`` are the irq/preempt columns (``...21``), ``timestamp`` is in
    seconds, ``message`` is what follows the timestamp, event name included
    (``bpf_trace_printk: ...``).
    """

    task: str
    pid: int
    cpu: int
    flags: str
    timestamp: float
    message: str


# `<task>-<pid> [<cpu>] <flags> <timestamp>: <message>`; the task name may hold
# spaces and dashes, so the pid is the last `-<digits>` before the cpu column.
# A `(<tgid>)` column appears with the record-tgid option, the flags column
# (never starting with a digit) disappears without the irq-info option.
_TRACE_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+(?:(?P<flags>[^\s\d]\S*)\s+)?"
    r"(?P<timestamp>\d+\.\d+):\s(?P<message>.*)$"
)


def parse_trace_line(line: str) -> TraceLine | None:
    """Split a trace line into its fields; None for a line of another shape (a header)."""
    match = _TRACE_LINE.match(line.rstrip("\n"))
    if match is None:
        return None
    return TraceLine(
        task=match["task"],
        pid=int(match["pid"]),
        cpu=int(match["cpu"]),
        flags=match["flags"] or "",
        timestamp=float(match["timestamp"]),
        message=match["message"],
    )


class TracePipe:
    """``trace_pipe`` of the tracefs mounted at ``tracefs``; a context manager.

    Reads wait at most a given timeout. Reading consumes: each line goes to
    one reader only.
    """

    def __init__(self, tracefs: Path = TRACEFS) -> None:
        path = Path(tracefs, "trace_pipe")
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise KfuncError(
                f"tracefs: cannot open {path}: {exc.strerror}",
                fix="mount tracefs first (kfunc.tracefs.ensure_tracefs())",
            ) from exc
        self.path = path
        self._pending = b""

    def _read(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds for data and add what arrived to the buffer."""
        if self._fd is None:
            raise KfuncError(f"tracefs: {self.path} is closed")
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if ready:
            # trace_pipe may report ready and still have nothing for us
            with contextlib.suppress(BlockingIOError):
                self._pending += os.read(self._fd, 65536)

    def readline(self, timeout: float | None = None) -> str | None:
        """The next whole line (without its newline), or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._read(remaining)
            if remaining == 0 and b"\n" not in self._pending:
                return None
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode("utf-8", "replace")

    def lines(self, timeout: float | None = None) -> Iterator[str]:
        """Yield lines until none arrives for ``timeout`` seconds (None: forever)."""
        while (line := self.readline(timeout)) is not None:
            yield line

    def close(self) -> None:
        """Close the pipe (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TracePipe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
