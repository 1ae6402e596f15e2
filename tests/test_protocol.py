"""The agent's protocol: every op declared once, read back as written, refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kfunc.vm import protocol as proto
from kfunc.vm.agent.runner import HANDLERS, run_steps
from kfunc.vm.agent.state import State


def test_every_op_has_one_handler() -> None:
    assert set(HANDLERS) == set(proto.OPS.values())
    assert len(proto.OPS) == 19


def test_an_op_reads_back_as_written() -> None:
    op = proto.TestRun(program="add", path="/x/a.o", retval=42, group=3, always=True)
    wire = json.loads(json.dumps(op.to_json()))
    assert wire["op"] == "test_run" and wire["group"] == 3 and wire["always"] is True
    assert proto.decode_op(wire) == op
    # group and always are left out when they are the defaults
    assert proto.Rmmod(name="hello").to_json() == {"op": "rmmod", "name": "hello", "wait": 10.0}


def test_an_unknown_op_or_argument_is_named() -> None:
    with pytest.raises(proto.ProtocolError, match="agent: unknown op 'prog_test_run'") as err:
        proto.decode_op({"op": "prog_test_run", "program": "add"})
    assert err.value.fix is not None and "test_run" in err.value.fix
    with pytest.raises(proto.ProtocolError, match=r"op insmod: .*'nmae'") as err:
        proto.encode_steps([{"op": "insmod", "path": "/x.ko", "nmae": "x"}])
    assert err.value.fix == "its arguments: group, always, path, name, params"


class _NoKernelLog:
    def read(self) -> list[str]:
        return []


def test_a_step_the_agent_cannot_read_fails_alone(tmp_path: Path) -> None:
    """An unknown op fails its group; the cleanup step of the group still runs."""
    events: list[proto.Event] = []
    steps = [
        {"op": "nope", "group": 1},
        {"op": "trigger", "kind": "unlink", "group": 1},
        {"op": "trigger", "kind": "command", "command": "true", "group": 1, "always": True},
        {"op": "trigger", "kind": "command", "command": "echo hi", "group": 2},
    ]
    ok = run_steps(steps, State(tmp_path), _NoKernelLog(), events.append)  # type: ignore[arg-type]
    assert not ok
    assert [(e["step"], e["ok"]) for e in events] == [
        ("nope", False), ("trigger", None), ("trigger", True), ("trigger", True),
    ]  # fmt: skip
    assert events[0]["error"].startswith("agent: unknown op 'nope'")
    assert events[3]["data"]["output"] == "hi\n"


def test_the_guest_side_imports_no_host_machinery() -> None:
    """What ``python -m kfunc.vm.agent`` imports before it reads its plan: the stdlib
    and the agent, not the CLI, rich, msgspec, or the kernel cache."""
    code = "import sys, kfunc.vm.agent; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = out.stdout.split()
    kfunc_mods = sorted(m for m in mods if m.startswith("kfunc"))
    assert kfunc_mods == [
        "kfunc", "kfunc.errors", "kfunc.vm", "kfunc.vm.agent", "kfunc.vm.agent.bpf",
        "kfunc.vm.agent.maps", "kfunc.vm.agent.modules", "kfunc.vm.agent.runner",
        "kfunc.vm.agent.serve", "kfunc.vm.agent.state", "kfunc.vm.agent.tracing",
        "kfunc.vm.protocol",
    ]  # fmt: skip
    assert not {"rich", "msgspec", "elftools"} & set(mods)
