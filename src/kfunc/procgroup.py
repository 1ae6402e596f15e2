"""Stopping a child and everything it started: its process group.

kfunc starts its long-running children (vng and qemu, make and its
compilers) in a session of their own, so that one signal reaches all of
them and nothing outlives kfunc on any exit path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

__all__ = ["stop_group"]


def stop_group(
    proc: subprocess.Popen[Any],
    first: signal.Signals = signal.SIGTERM,
    grace: float = 3.0,
    *,
    sweep: bool = False,
) -> None:
    """Send ``first`` to ``proc``'s group, then SIGKILL if it is still there after ``grace`` s.

    With ``sweep``, a group whose leader has already exited gets a SIGKILL for
    whatever it left running (a vng that exited before its qemu).
    """
    if proc.poll() is None:
        for sig, wait in ((first, grace), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
    elif sweep:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
