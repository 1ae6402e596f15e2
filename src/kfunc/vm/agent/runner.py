"""Carry out steps: decode each op, call its handler, report one event per step."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError
from kfunc.vm.agent import bpf, maps, modules, tracing
from kfunc.vm.agent.state import KernelLog, State, StepFailed
from kfunc.vm.protocol import BOOT, DONE, BpfUnload, Event, Op, Rmmod, decode_op

__all__ = ["HANDLERS", "Emit", "cleanup", "run_plan", "run_steps"]

#: The handler of each op: ``handler(state, op) -> reply``.
HANDLERS: dict[type, Callable[[State, Any], Any]] = {
    **modules.HANDLERS,
    **bpf.HANDLERS,
    **maps.HANDLERS,
    **tracing.HANDLERS,
}

Emit = Callable[[Event], None]


def run_steps(
    steps: list[dict[str, Any]] | list[Op], state: State, kmsg: KernelLog, emit: Emit
) -> bool:
    """Carry out ``steps``, emitting one event each; True when every step succeeded."""
    failed: set[int] = set()  # groups (projects) with a failed step
    for raw in steps:
        if isinstance(raw, Op):
            name, group, always = raw.op, raw.group, raw.always
        else:
            name, group = raw.get("op", "?"), raw.get("group", 0)
            always = bool(raw.get("always"))
        if group in failed and not always:
            emit({"step": name, "group": group, "ok": None, "skipped": True})
            continue
        event: Event = {"step": name, "group": group, "ok": False}
        start = time.monotonic()
        try:
            op = raw if isinstance(raw, Op) else decode_op(raw)
            event["data"] = HANDLERS[type(op)](state, op)
            event["ok"] = True
        except StepFailed as exc:
            event["error"], event["fix"], event["data"] = str(exc), exc.fix, exc.data
        except KfuncError as exc:
            event["error"], event["fix"] = exc.message, exc.fix
        except Exception as exc:  # report, never lose the cleanup steps
            event["error"] = f"{name}: {type(exc).__name__}: {exc}"
        event["seconds"] = round(time.monotonic() - start, 3)
        event["kernel_log"] = kmsg.read()
        if not event["ok"]:
            failed.add(group)
        emit(event)
    return not failed


def run_plan(plan: dict[str, Any], workdir: Path, emit: Emit) -> int:
    """Carry out ``plan`` (``{"steps": [...]}``); return 0 when every step succeeded."""
    state = State(workdir)
    kmsg = KernelLog()
    emit({"step": BOOT, "ok": True, "data": {"release": os.uname().release}})
    try:
        ok = run_steps(plan["steps"], state, kmsg, emit)
    except BaseException:
        # Interrupted (Ctrl-C where it runs on the host): what the plan loaded is
        # unloaded all the same.
        cleanup(state, kmsg)
        raise
    emit({"step": DONE, "ok": ok})
    return 0 if ok else 1


def cleanup(state: State, kmsg: KernelLog) -> None:
    """Unload what the agent left loaded: links, objects, then modules."""
    steps: list[Op] = [BpfUnload()]
    steps += [Rmmod(name=name) for name in reversed(state.modules)]
    run_steps(steps, state, kmsg, lambda event: None)
