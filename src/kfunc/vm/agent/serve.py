"""The agent's transports, guest side: a plan file, or requests in a shared directory.

A plan (``python -m kfunc.vm.agent PLAN.json``) runs once: each event goes
to ``events.jsonl`` beside the plan and to the console, prefixed by
:data:`~kfunc.vm.protocol.EVENT_PREFIX`, for live progress. The plan may
come after the agent started (the host builds while the guest boots): the
agent imports what the steps need, says ``ready`` on the console, and waits
for the file, which the host renames into place when complete.

A served directory (``python -m kfunc.vm.agent --serve DIR IDLE``) answers
requests until asked to stop, or until ``IDLE`` seconds pass without one.
The host writes ``req-N.json`` (see :func:`kfunc.vm.protocol.encode_request`;
N = 0, 1, ...), renamed into place when complete; the answer is
``resp-N.jsonl``, one event a line, renamed into place when the last
(``done``) is written. State (modules, BPF objects, links) carries over from
one request to the next. A client claims N by creating ``claim-N``; a claim
whose request never comes is skipped after a while. The host side is
:class:`kfunc.vm.session.SessionClient`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError
from kfunc.vm.agent.runner import cleanup, run_plan, run_steps
from kfunc.vm.agent.state import KernelLog, State
from kfunc.vm.protocol import DONE, EVENT_PREFIX, READY, Event, decode_request

__all__ = ["run_plan_file", "serve_directory"]

_CLAIM_TIMEOUT = 10.0  # seconds a claimed request number may stay empty


_PLAN_WAIT = 900.0  # seconds: a build of the host's never takes this long


def run_plan_file(plan_path: Path) -> int:
    """Carry out the plan in ``plan_path`` (waiting for it); 0 when every step succeeded."""
    workdir = plan_path.parent
    if not plan_path.exists():
        _warm_up()
        print(EVENT_PREFIX + json.dumps({"step": READY, "ok": True}), flush=True)
        # The host writes the plan once its build is done. A host that went
        # away before (a refused check, Ctrl-C in an unlucky instant, SIGKILL)
        # removed the directory or left it for good: the guest powers off then,
        # rather than waiting for a plan that never comes.
        deadline = time.monotonic() + _PLAN_WAIT
        n = 0
        while not plan_path.exists():
            n += 1
            if time.monotonic() > deadline or (n % 25 == 0 and not workdir.is_dir()):
                print("kfunc agent: no plan came, the host went away: powering off", flush=True)
                return 1
            time.sleep(0.02)
    with (workdir / "events.jsonl").open("a") as out:

        def emit(event: Event) -> None:
            text = json.dumps(event)
            out.write(text + "\n")
            out.flush()
            # On the host before the next step starts: a step that hangs the
            # guest's kernel would keep an unwritten page from it.
            os.fsync(out.fileno())
            print(EVENT_PREFIX + text, flush=True)

        return run_plan(json.loads(plan_path.read_text()), workdir, emit)


def _warm_up() -> None:
    """Import what nearly every plan's steps use, while nothing else is to be done."""
    try:
        import kfunc.libbpf
        import kfunc.libbpf.btf
        import kfunc.tracefs  # noqa: F401
    except KfuncError:
        pass  # (no libbpf) the step that needs it says so


def serve_directory(directory: Path, idle: float) -> int:
    """Serve the requests written to ``directory`` (see the module's docstring)."""
    state = State(directory)
    kmsg = KernelLog()
    _warm_up()
    (directory / "ready.tmp").write_text(json.dumps({"release": os.uname().release}))
    (directory / "ready.tmp").rename(directory / READY)
    print(EVENT_PREFIX + json.dumps({"step": READY, "ok": True}), flush=True)
    n, last = 0, time.monotonic()
    claimed_at: float | None = None
    while True:
        req = directory / f"req-{n}.json"
        now = time.monotonic()
        if not req.exists():
            if (directory / f"claim-{n}").exists():
                claimed_at = claimed_at or now
                if now - claimed_at > _CLAIM_TIMEOUT:
                    n, claimed_at = n + 1, None  # the client went away
                    continue
            elif now - last > idle:
                cleanup(state, kmsg)
                return 0
            time.sleep(0.02)
            continue
        steps = decode_request(json.loads(req.read_text()))
        partial = directory / f"resp-{n}.jsonl.tmp"
        with partial.open("w") as out:

            def emit(event: Event, out: Any = out) -> None:
                out.write(json.dumps(event) + "\n")
                out.flush()

            if steps is None:
                cleanup(state, kmsg)
                emit({"step": DONE, "ok": True})
            else:
                emit({"step": DONE, "ok": run_steps(steps, state, kmsg, emit)})
        partial.rename(directory / f"resp-{n}.jsonl")
        if steps is None:
            return 0
        n, last, claimed_at = n + 1, time.monotonic(), None
