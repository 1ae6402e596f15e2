"""A served guest: one boot, many requests, state kept between them, bounded idle time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, qemu_processes

from kfunc.build import build_project
from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.vm.session import GuestSession

pytestmark = pytest.mark.vm


def test_session_keeps_state_and_powers_off_when_idle(kernel_612: Kernel) -> None:
    built = build_project(Project.load(EXAMPLES / "refobj"), kernel_612)
    assert built.module is not None
    before = qemu_processes()
    with GuestSession(kernel_612, idle=6) as session:
        directory = session.directory
        events = session.run_steps(
            [
                {"op": "insmod", "path": str(built.module.ko), "name": "refobj"},
                {"op": "bpf_load", "path": str(built.objects[0])},
            ]
        )
        assert [(e["step"], e["ok"]) for e in events] == [("insmod", True), ("bpf_load", True)]
        assert "refobj: kfuncs registered" in events[0]["kernel_log"]
        # The module and the object stay loaded: later requests use them.
        for _ in range(3):
            (run,) = session.run_steps(
                [{"op": "test_run", "program": "new_value_release", "retval": 42}]
            )
            assert run["ok"] and run["data"]["retval"] == 42
        # The guest sees the host read-only, but for its own directory; its
        # writes elsewhere fail (the shared root) or land in overlays (/etc,
        # /tmp ...) that the host never sees.
        probes = [Path("/kfunc-guest-write-test"), ROOT / ".guest-write-test"]
        (shell,) = session.run_steps(
            [
                {
                    "op": "trigger",
                    "kind": "command",
                    "command": f"touch {probes[0]}; touch {probes[1]}; "
                    "echo kfunc > /etc/kfunc-guest-test && cat /etc/kfunc-guest-test; "
                    f"echo shared > {directory}/from-guest",
                }
            ]
        )
        assert (
            f"touch: cannot touch '{probes[0]}': Read-only file system" in (shell["data"]["output"])
        )
        assert "kfunc" in shell["data"]["output"]  # /etc is writable in the guest...
        assert not any(p.exists() for p in probes)
        assert not Path("/etc/kfunc-guest-test").exists()  # ... but not on the host
        assert (directory / "from-guest").read_text() == "shared\n"
        # A failing step answers with its error; the session goes on.
        (bad,) = session.run_steps([{"op": "test_run", "program": "nope", "retval": 0}])
        assert bad["ok"] is False and "no program 'nope' loaded" in bad["error"]
        # No request for `idle` seconds: the agent unloads everything and the
        # guest powers off by itself.
        assert session.guest is not None
        deadline = time.monotonic() + 60
        while session.guest.alive and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not session.guest.alive
        assert any("refobj: unloaded" in line for line in session.kernel_log(last=50))
    assert not directory.exists()
    assert qemu_processes() <= before
