"""Steps on the kernel's trace buffer (bpf_printk output) and on what makes programs run."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from typing import Any

from kfunc.vm.agent.state import State, StepFailed
from kfunc.vm.protocol import Trace, TraceClear, TraceClearReply, TraceReply, Trigger

__all__ = ["HANDLERS"]


def trace_clear(state: State, op: TraceClear) -> TraceClearReply:
    from kfunc.tracefs import TRACEFS, ensure_tracefs

    ensure_tracefs()
    (TRACEFS / "trace").write_text("")
    return {"tracefs": str(TRACEFS)}


def trace(state: State, op: Trace) -> TraceReply:
    from kfunc.tracefs import TracePipe, ensure_tracefs

    pattern = None if op.expect is None else re.compile(op.expect)
    lines: list[str] = []
    matched = None
    deadline = time.monotonic() + op.timeout
    ensure_tracefs()
    with TracePipe() as pipe:
        while len(lines) < op.max_lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            line = pipe.readline(timeout=remaining)
            if line is None or not line.strip():  # a format's own "\n" leaves an empty line
                continue
            lines.append(line)
            if pattern is not None and pattern.search(line):
                matched = line
                break
        # Every line the trigger caused, not only the first: what is already
        # there, and what follows within a short quiet spell.
        while matched is not None and op.settle is not None and len(lines) < op.max_lines:
            line = pipe.readline(timeout=op.settle)
            if line is None:
                break
            if line.strip():
                lines.append(line)
    if matched is None and op.expect is not None and op.required:
        raise StepFailed(
            f"trace: no line matching {op.expect!r} within {op.timeout:g} s"
            if op.expect
            else f"trace: no output within {op.timeout:g} s",
            "check that the program attached where the trigger goes, and that it calls bpf_printk",
            lines=lines,
        )
    return {"lines": lines, "matched": matched}


def trigger(state: State, op: Trigger) -> dict[str, Any]:
    if op.kind == "unlink":
        fd, name = tempfile.mkstemp(prefix="kfunc-trigger-", dir=state.workdir)
        os.close(fd)
        os.unlink(name)
        return {"unlinked": name, "pid": os.getpid()}
    if op.kind == "command" and op.command:
        proc = subprocess.run(
            op.command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            check=False,
        )  # fmt: skip
        return {"command": op.command, "exit": proc.returncode, "output": proc.stdout[-2000:]}
    raise StepFailed(f"trigger: unknown kind {op.kind!r}")


HANDLERS: dict[type, Any] = {TraceClear: trace_clear, Trace: trace, Trigger: trigger}
