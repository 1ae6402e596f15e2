"""Snapshot-restored guests: the kernel boots once, every later guest restores from its file."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT, private_cache, qemu_processes

from kfunc.build import build_project
from kfunc.cache import file_sha256
from kfunc.cli import main
from kfunc.errors import GuestPanicError, LostVMError
from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.run import run_projects
from kfunc.vm.machine import Machine
from kfunc.vm.port import PortClient
from kfunc.vm.snapshot import SnapshotSession, list_snapshots


def _shell(session: SnapshotSession, command: str) -> str:
    (event,) = session.run_steps([{"op": "trigger", "kind": "command", "command": command}])
    assert event["ok"], event
    return str(event["data"]["output"])


@pytest.mark.vm
def test_restored_guests_start_pristine(
    kernel_612: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = build_project(Project.load(EXAMPLES / "refobj"), kernel_612)
    # Snapshots of its own: it damages one, which the guests of tests running
    # beside it (pytest -n) would otherwise restore from.
    private_cache(monkeypatch, tmp_path, "snapshots")
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
    assert file_sha256(broken) != snap.sha256
    initrd = next(snap.path.parent.glob("root-*.cpio"))
    machine = Machine(kernel_612, initrd, "tcg")
    try:
        machine.launch(incoming=broken)
        client = PortClient(machine.tmp / "port", tmp_path, lambda: machine.alive)
        with pytest.raises(LostVMError):
            client.connect(30)
            client.request({"ping": True}, timeout=30)
    finally:
        machine.stop()
    assert not machine.tmp.exists()

    # The cached file damaged: it is not restored, but made again (one boot).
    with snap.path.open("r+b") as f:
        f.truncate(snap.size - 4096)
    with SnapshotSession(kernel_612) as third:
        assert not third.restored
        assert third.snapshot is not None and third.snapshot.path.exists()
        assert file_sha256(third.snapshot.path) == third.snapshot.sha256
        assert _shell(third, "uname -r").strip() == kernel_612.release
    assert qemu_processes() <= before
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_kernels_lists_and_removes_snapshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFUNC_CACHE", str(tmp_path))
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    release = "6.12.117+deb12-amd64"
    state = snapshots / f"{release}-0123456789abcdef.vmstate"
    state.write_bytes(b"QEVM" + bytes(4096))
    (snapshots / "root-0123456789abcdef.cpio").write_bytes(b"070701")
    record = {"release": release, "key": "0123456789abcdef", "size": 4100,
              "sha256": hashlib.sha256(state.read_bytes()).hexdigest(),
              "boot_seconds": 21.5, "created": time.time(),
              "initrd": "root-0123456789abcdef.cpio"}  # fmt: skip
    state.with_suffix(".json").write_text(json.dumps(record))

    assert main(["kernels", "--cached", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["snapshots"]
    assert listed["release"] == release and listed["path"] == str(state)
    assert main(["kernels", "--cached"]) == 0
    assert f"{release}" in capsys.readouterr().out.split("SNAPSHOT OF", 1)[1]

    assert main(["kernels", "--remove-snapshot", "6.1"]) == 0  # another series: kept
    assert "no snapshot of 6.1" in capsys.readouterr().out
    assert state.exists()
    assert main(["kernels", "--remove-snapshot", "6.12"]) == 0
    assert f"removed snapshot {release}" in capsys.readouterr().out
    assert not state.exists() and not state.with_suffix(".json").exists()
    assert main(["kernels", "--remove-snapshot", "all"]) == 0  # the archive goes too
    assert not list(snapshots.iterdir())


@pytest.mark.vm
def test_restored_guest_that_panics(kernel_612: Kernel) -> None:
    """A module whose init panics the restored guest: GuestPanicError (not rerun), with its log."""
    before = qemu_processes()
    with pytest.raises(GuestPanicError) as err:
        run_projects([Project.load(ROOT / "tests" / "data" / "faults" / "panic_init")], "6.12")
    assert err.value.message.startswith("guest 6.12")
    assert "kernel panic: kfunc fault test: panic in module init" in err.value.message
    assert any("Kernel panic - not syncing" in line for line in err.value.kernel_log)
    assert qemu_processes() <= before


def test_guest_init_mounts_nothing_over_the_archive() -> None:
    """The restored guest's /init mounts proc, sysfs, devtmpfs and bpffs only: a
    mount over any other directory hides the archive's files there (a kfunc
    checkout under /tmp, as a CI clone may be, made every snapshot fail)."""
    from kfunc.vm import initramfs

    # mount -t TYPE SOURCE TARGET [redirections]
    mounts = [line.split()[4] for line in initramfs._INIT.splitlines()
              if line.startswith("mount ")]  # fmt: skip
    assert set(mounts) <= {"/proc", "/sys", "/dev", "/sys/fs/bpf"}, mounts
    files = initramfs._files(initramfs._collect())
    kfunc_files = [f for f in files if "/kfunc/" in f]
    assert kfunc_files
    for point in mounts:
        assert not any(f.startswith(point + "/") for f in files), point


def test_boot_modules_of_61_come_from_its_modules_dep(kernel_61: Kernel) -> None:
    """Debian's 6.1 builds the agent's port as modules: the guest inserts them,
    each after what it needs, as modules.dep (depmod's) orders them."""
    from kfunc.vm.machine import boot_modules

    modules = boot_modules(kernel_61)
    names = [path.name.split(".ko")[0] for path in modules]
    dep = (kernel_61.modules_dir / "modules.dep").read_text().splitlines()
    needs = {line.split(":")[0].rsplit("/", 1)[-1].split(".ko")[0]:
             [d.rsplit("/", 1)[-1].split(".ko")[0] for d in line.split(":")[1].split()]
             for line in dep}  # fmt: skip
    for i, name in enumerate(names):
        assert set(needs[name]) <= set(names[:i]), (name, needs[name], names[:i])
    assert {"virtio_pci", "virtio_console", "virtio", "virtio_ring"} <= set(names)


@pytest.mark.vm
def test_61_guests_restore_with_their_port_modules(kernel_61: Kernel) -> None:
    """6.1's guest loads virtio_pci and virtio_console from /init, then is saved
    and restored like 6.12's."""
    before = qemu_processes()
    with SnapshotSession(kernel_61) as first:
        assert _shell(first, "uname -r").strip() == kernel_61.release
        modules = _shell(first, "cat /proc/modules")
        assert "virtio_console" in modules and "virtio_pci" in modules
    with SnapshotSession(kernel_61) as second:
        assert second.restored
        assert _shell(second, "uname -r").strip() == kernel_61.release
    assert qemu_processes() <= before
