"""Snapshot-restored guests: the kernel boots once, every later guest restores from its file."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, qemu_processes

from kfunc.build import build_project
from kfunc.errors import LostVMError
from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.vm.port import PortClient
from kfunc.vm.snapshot import SnapshotSession, _Machine, _sha256, list_snapshots

pytestmark = pytest.mark.vm


def _shell(session: SnapshotSession, command: str) -> str:
    (event,) = session.run_steps([{"op": "trigger", "kind": "command", "command": command}])
    assert event["ok"], event
    return str(event["data"]["output"])


def test_restored_guests_start_pristine(kernel_612: Kernel, tmp_path: Path) -> None:
    built = build_project(Project.load(EXAMPLES / "refobj"), kernel_612)
    assert built.module is not None
    before = qemu_processes()
    with SnapshotSession(kernel_612) as first:
        directory = first.directory
        # The run's files travel over the channel, to the same paths.
        events = first.run_steps(
            [
                {"op": "insmod", "path": str(built.module.ko), "name": "refobj"},
                {"op": "bpf_load", "path": str(built.objects[0])},
                {"op": "test_run", "program": "new_value_release", "retval": 42},
            ]
        )
        assert [(e["step"], e["ok"]) for e in events] == [
            ("insmod", True), ("bpf_load", True), ("test_run", True)
        ]  # fmt: skip
        assert "refobj: kfuncs registered" in events[0]["kernel_log"]
        # The clock is the host's, not the snapshot's.
        assert abs(int(_shell(first, "date +%s")) - time.time()) < 30
        # The root is the initramfs: no 9p, no virtiofs (both block migration).
        mounts = _shell(first, "cat /proc/mounts")
        assert "9p" not in mounts and "virtiofs" not in mounts
        assert _shell(first, "uname -r").strip() == kernel_612.release
        _shell(first, "echo dirty > /tmp/kfunc-pristine")
        uuid_first = _shell(first, "cat /proc/sys/kernel/random/uuid")
        snap = first.snapshot
        assert snap is not None and snap in list_snapshots()
    assert not directory.exists()
    assert qemu_processes() <= before

    with SnapshotSession(kernel_612) as second:
        assert second.restored  # the file the first one used; nothing booted
        # What the first guest did is gone: same file, same state, every time.
        assert "dirty" not in _shell(second, "cat /tmp/kfunc-pristine 2>&1")
        assert "refobj" not in _shell(second, "cat /proc/modules")
        # ... but the random state is not the snapshot's.
        assert _shell(second, "cat /proc/sys/kernel/random/uuid") != uuid_first
        assert second.snapshot == snap
    assert qemu_processes() <= before

    # A damaged copy is refused: its checksum differs, and qemu does not load it.
    broken = tmp_path / "broken.vmstate"
    with snap.path.open("rb") as src, broken.open("wb") as out:
        out.write(src.read(snap.size // 2))
    assert _sha256(broken) != snap.sha256
    initrd = next(snap.path.parent.glob("root-*.cpio"))
    machine = _Machine(kernel_612, initrd, "tcg")
    try:
        machine.launch(incoming=broken)
        client = PortClient(machine.tmp / "port", tmp_path, lambda: machine.alive)
        with pytest.raises(LostVMError):
            client.connect(30)
            client.request({"ping": True}, timeout=30)
    finally:
        machine.stop()
    assert not machine.tmp.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
