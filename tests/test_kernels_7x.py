"""Kernels newer than the host's userspace: 7.x from trixie-backports and sid,
built in a Debian root filesystem of their own suite; and kernels too old for
module kfuncs, refused before anything is downloaded."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, qemu_processes

from kfunc.cache import cache_dir
from kfunc.cli import main
from kfunc.codegen import judge
from kfunc.codegen.shims import flag_shims
from kfunc.errors import BuildError, KfuncError, UnsupportedFeatureError
from kfunc.kbuild import ModuleSource, build_module
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels import rootfs as rootfs_mod
from kfunc.kernels import target
from kfunc.kernels.apt import suite_sources
from kfunc.kernels.rootfs import ensure_rootfs
from kfunc.kernels.target import SERIES, Kernel, get_kernel
from kfunc.project import Project
from kfunc.run import run_projects
from kfunc.spec import KfuncSpec, ModuleSpec

V73 = KernelVersion(7, 3, 4)


def test_catalog_names_each_series_suite() -> None:
    assert {s: SERIES[s].suite for s in ("6.1", "6.12", "7.2", "7.3")} == {
        "6.1": "bookworm",
        "6.12": "bookworm-security",
        "7.2": "sid",
        "7.3": "trixie-backports",
    }
    # Exact releases of any Debian series, and the suite of their root filesystem.
    assert target._series_of_release("7.3.4+deb13-amd64") is SERIES["7.3"]
    assert target._series_of_release("7.2.12+deb13-amd64").name == "7.2"  # trixie-backports'
    assert target._distro("7.2.12+deb13-amd64") == "trixie"
    assert target._distro("7.2.13+deb14-amd64") == "sid"
    assert target._distro("6.1.0-56-amd64") == "bookworm"
    assert target._series_of_release("bookworm") is None
    assert suite_sources("trixie")[1].endswith("trixie-backports main")
    assert suite_sources("sid") == ["deb http://deb.debian.org/debian sid main"]


@pytest.mark.parametrize(
    ("name", "feature", "since"),
    [
        ("5.10", "module kfuncs", "5.16"),
        ("5.10.0-30-amd64", "module kfuncs", "5.16"),
        ("4.19", "module kfuncs", "5.16"),
        ("5.17", "register_btf_kfunc_id_set", "5.18"),
    ],
)
def test_old_kernels_refused_before_any_download(
    name: str, feature: str, since: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_apt(*args: object) -> None:
        raise AssertionError("apt was asked")

    monkeypatch.setattr(target, "find_release", no_apt)
    with pytest.raises(UnsupportedFeatureError) as err:
        get_kernel(name)
    assert err.value.message.startswith(f"{feature} not supported by kernel {name}")
    assert f"(requires >= {since})" in err.value.message
    assert "\n" not in err.value.message


def test_cli_refuses_510_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(EXAMPLES / "hello"), "--kernel", "5.10"]) == 1
    err = capsys.readouterr().err
    assert "error: module kfuncs not supported by kernel 5.10 (requires >= 5.16)" in err
    assert "Traceback" not in err


def test_trusted_args_is_shimmed_from_70() -> None:
    trusted = KfuncSpec(
        "gen_pid", "s32 gen_pid(struct task_struct *t)", "return t->pid;", ("KF_TRUSTED_ARGS",)
    )
    spec = ModuleSpec("gen", (trusted,), ("tracing",))
    verdict = judge(spec, V73, None)
    assert verdict.errors == [] and verdict.warnings == []
    assert "#define KF_TRUSTED_ARGS 0" in flag_shims(spec)
    # 7.3's new flags are refused on older kernels, with the release.
    spec = ModuleSpec(
        "gen", (KfuncSpec("f", "int f(void)", "return 0;", ("KF_SPINLOCK_SAFE",)),), ("tracing",)
    )
    (error,) = judge(spec, KernelVersion(7, 2, 13), None).errors
    assert "KF_SPINLOCK_SAFE arrived in 7.3" in error[0]
    assert judge(spec, V73, None).errors == []


def test_kernels_command_lists_the_cache(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kernels", "--cached", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [s["series"] for s in listing["series"]] == list(SERIES)
    for k in listing["kernels"]:
        assert k["bytes"] > 0 and Path(k["path"]).is_dir()
    assert main(["kernels", "--remove", "1.2.3+deb99-amd64"]) == 1
    assert "kernel '1.2.3+deb99-amd64': not in the cache" in capsys.readouterr().err


def test_failed_mmdebstrap_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import require

    require(subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0",
            "mmdebstrap needs root here")  # fmt: skip
    monkeypatch.setenv("KFUNC_CACHE", str(tmp_path))
    with pytest.raises(KfuncError) as err:
        ensure_rootfs("no-such-suite", [], rootfs_mod.Progress())
    assert err.value.message.startswith("rootfs no-such-suite: mmdebstrap failed: ")
    assert "\n" not in err.value.message
    assert list((tmp_path / "rootfs").iterdir()) == [tmp_path / "rootfs" / ".no-such-suite.lock"]


# --- with the real 7.3: packages from trixie-backports, a trixie root filesystem


def _mounts_under(path: Path) -> list[str]:
    return [ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in ln]


def test_73_builds_in_its_rootfs_made_once(
    kernel_73: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kernel_73.series == "7.3" and kernel_73.suite == "trixie-backports"
    assert kernel_73.rootfs == "trixie" and "gcc-14-for-host" in kernel_73.rootfs_packages
    assert kernel_73.vmlinuz.name == "vmlinuz" and kernel_73.vmlinuz.exists()  # /usr-merged
    root = kernel_73.build_root
    assert root is not None and root.ready
    # Made (on a fresh machine, by mmdebstrap just now) with nothing left mounted.
    assert _mounts_under(cache_dir()) == []
    created = root.marker.stat().st_mtime_ns

    # A second call rebuilds nothing: no mmdebstrap, no apt, no chroot.
    def nothing(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the rootfs was touched: {args}")

    monkeypatch.setattr(rootfs_mod.subprocess, "Popen", nothing)
    monkeypatch.setattr(rootfs_mod.subprocess, "run", nothing)
    assert ensure_rootfs("trixie", kernel_73.rootfs_packages, rootfs_mod.Progress()) == root
    assert get_kernel("7.3") == kernel_73
    assert root.marker.stat().st_mtime_ns == created
    monkeypatch.undo()

    # kbuild ran in the rootfs (its glibc 2.41, its gcc-14) and left no mount behind.
    build = build_module(ModuleSource.find(EXAMPLES / "hello"), kernel_73)
    assert [k.name for k in build.kfuncs] == ["bpf_kfunc_call_test"]
    assert _mounts_under(root.path) == []
    proc = root.run(["/usr/bin/ldd", "--version"])
    assert re.search(r"GLIBC 2\.(3[89]|[4-9]\d)", proc.stdout), proc.stdout
    assert _mounts_under(root.path) == []


def test_73_chroot_build_failure_is_one_line(kernel_73: Kernel, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "Kbuild").write_text("obj-m += broken.o\n")
    (broken / "broken.c").write_text(
        '#include <linux/module.h>\nint x = ;\nMODULE_LICENSE("GPL");\n'
    )
    with pytest.raises(BuildError) as err:
        build_module(ModuleSource.find(broken), kernel_73)
    assert re.match(r"(\S*/)?broken\.c:2: error: expected expression", err.value.message)
    assert _mounts_under(kernel_73.build_root.path) == []  # type: ignore[union-attr]


@pytest.mark.vm
def test_tutorial_on_73(kernel_73: Kernel) -> None:
    """`kfunc run examples/hello --kernel 7.3`: built in trixie, run in the guest."""
    before = qemu_processes()
    report = run_projects([Project.load(EXAMPLES / "hello")], "7.3")
    (project,) = report.projects
    assert report.kernel["release"] == kernel_73.release
    assert project.ok, (project.error, project.fix)
    assert re.search(r"BPF triggered do_unlinkat from PID \d+\. Result: 10$", project.result or "")
    assert "Goodbye, world!" in project.kernel_log
    assert qemu_processes() <= before


def test_a_mount_left_under_a_rootfs_is_found(tmp_path: Path) -> None:
    """check_no_mounts reads the real mountinfo: a tmpfs mounted (in a private
    mount namespace of a child, so the host is untouched) at a path with a
    space in it is found and named; unmounted, the check passes."""
    from conftest import require

    require(subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0",
            "mounting needs root here")  # fmt: skip
    target_dir = tmp_path / "root fs" / "proc"
    target_dir.mkdir(parents=True)
    script = f"""
import subprocess, sys
from pathlib import Path
from kfunc.kernels.rootfs import RootfsError, check_no_mounts, mounts_under
root = Path({str(tmp_path / "root fs")!r})
check_no_mounts(root)
subprocess.run(["mount", "-t", "tmpfs", "none", str(root / "proc")], check=True)
assert mounts_under(root) == [str(root / "proc")], mounts_under(root)
try:
    check_no_mounts(root)
except RootfsError as exc:
    print(exc.message)
subprocess.run(["umount", str(root / "proc")], check=True)
check_no_mounts(root)
"""
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", script],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"rootfs: 1 mount(s) left on the host under {tmp_path / 'root fs'}: {target_dir}"
    )
    assert _mounts_under(tmp_path) == []
