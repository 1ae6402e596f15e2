"""Kernels the user has: an installed kernel (Debian's 6.12 packages laid out in
a root of their own, as a distribution installs them), a kernel build tree
(built from Debian's linux-source-6.12 by ``make test-tree``), the running
kernel, and ``--on-host``."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import pytest
from conftest import EXAMPLES, qemu_processes, require
from kernel_tree import kernel_tree

from kfunc.build import build_project
from kfunc.cache import cache_dir
from kfunc.cli import main
from kfunc.errors import KfuncError
from kfunc.kernels.catalog import remove
from kfunc.kernels.local import (
    KFUNC_CONFIG,
    LocalKernel,
    check_host_modules,
    local_kernel,
    missing_config,
    rooted_spec,
)
from kfunc.kernels.target import Kernel, cached_kernels, get_kernel
from kfunc.project import Project
from kfunc.run import run_projects

# What a distribution's 6.12 install consists of: the image (vmlinuz, config,
# System.map, modules), its headers and the common headers they include, and
# the kbuild tools.
_PACKAGES = ("linux-image-{r}_", "linux-headers-{r}_", "linux-headers-{c}-common_",
             "linux-kbuild-{c}_")  # fmt: skip


def _installed_root(kernel: Kernel) -> Path:
    """Debian's packages of ``kernel`` unpacked (dpkg -x) into a root of their own,
    once, in kfunc's cache: ROOT/boot/vmlinuz-R, ROOT/lib/modules/R/{kernel,build},
    ROOT/usr/src/linux-headers-R -> ..."""
    root = cache_dir("roots") / kernel.release
    done = root / ".unpacked"
    if done.exists():
        return root
    common = kernel.release.removesuffix("-amd64")
    debs = []
    for pattern in _PACKAGES:
        prefix = pattern.format(r=kernel.release, c=common)
        found = sorted(cache_dir("debs").glob(f"{prefix}*.deb"))
        require(bool(found), f"{prefix}*.deb is not in {cache_dir('debs')}")
        debs.append(found[-1])
    shutil.rmtree(root, ignore_errors=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    done.touch()
    return root


@pytest.fixture(scope="session")
def installed_root(kernel_612: Kernel) -> Path:
    return _installed_root(kernel_612)


@pytest.fixture(scope="session")
def installed_612(installed_root: Path, kernel_612: Kernel) -> LocalKernel:
    kernel = local_kernel(str(installed_root / "boot" / f"vmlinuz-{kernel_612.release}"))
    assert isinstance(kernel, LocalKernel)
    return kernel


@pytest.fixture(scope="session")
def tree_kernel() -> LocalKernel:
    """The tree `make test-tree` builds (it then runs the tests that use it, with
    KFUNC_REQUIRE_TREE=1: without the tree they fail rather than skip)."""
    tree = kernel_tree()
    if tree is None:
        reason = "no kernel tree: `make test-tree` builds it and runs these tests"
        if os.environ.get("KFUNC_REQUIRE_TREE") == "1":
            pytest.fail(f"prerequisite missing (KFUNC_REQUIRE_TREE=1): {reason}")
        pytest.skip(reason)
    return local_kernel(str(tree))


def test_installed_kernel_is_read_from_its_root(
    installed_612: LocalKernel, installed_root: Path, kernel_612: Kernel
) -> None:
    k = installed_612
    assert (k.kind, k.release, k.version) == ("installed", kernel_612.release, kernel_612.version)
    assert k.system_root == str(installed_root)
    assert k.config == installed_root / "boot" / f"config-{k.release}"
    # The headers' build link is absolute (/usr/src/...): resolved in the root.
    assert k.kbuild == installed_root / "usr" / "src" / f"linux-headers-{k.release}"
    assert missing_config(k, KFUNC_CONFIG) == []
    # kfunc's view of its kbuild includes the common headers of this root, not the host's.
    assert f"include {installed_root}/usr/src/" in (k.build_dir / "Makefile").read_text()
    # The BTF out of its image is the Debian target's, byte for byte.
    from kfunc.elf import ElfObject

    assert ElfObject(k.vmlinux).section(".BTF") == ElfObject(kernel_612.vmlinux).section(".BTF")
    # Listed with the cache's kernels, and never taken for the Debian release
    # or series (kept outside kernels/, where an older kfunc would take it).
    assert any(c.path == k.path for c in cached_kernels(local=True))
    assert all(c.path != k.path for c in cached_kernels())
    assert not k.path.is_relative_to(cache_dir("kernels"))
    for name in ("6.12", k.release):
        assert type(get_kernel(name)) is Kernel


def test_kernel_root_names_a_release_there(installed_root: Path, kernel_612: Kernel) -> None:
    image = installed_root / "boot" / f"vmlinuz-{kernel_612.release}"
    assert rooted_spec(kernel_612.release, str(installed_root)) == str(image)
    assert rooted_spec(f"/boot/vmlinuz-{kernel_612.release}", str(installed_root)) == str(image)


def test_ls_of_installed_kernel_is_the_debian_one(
    installed_root: Path, kernel_612: Kernel, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kfunc ls --kernel R --kernel-root ROOT` lists what `--kernel 6.12` does: the
    same kernel, read from where a distribution installs it."""
    assert main(["ls", "--kernel", kernel_612.release, "--kernel-root", str(installed_root),
                 "--json"]) == 0  # fmt: skip
    installed = json.loads(capsys.readouterr().out)
    assert main(["ls", "--kernel", "6.12", "--json"]) == 0
    debian = json.loads(capsys.readouterr().out)
    assert len(installed) > 150
    assert installed == debian


def test_diff_and_check_take_an_installed_kernel(
    installed_612: LocalKernel, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kfunc diff 6.12 IMAGE`: nothing changed (the same kernel); `kfunc check`
    of the tutorial's object against the installed kernel and its module."""
    assert main(["diff", "6.12", installed_612.source, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["added"] == d["removed"] == d["prototype_changed"] == d["flags_changed"] == []
    built = build_project(Project.load(EXAMPLES / "hello"), installed_612)
    (obj,) = built.objects
    argv = ["check", str(obj), "--kernel", installed_612.source, "-m", str(EXAMPLES / "hello")]
    assert main([*argv, "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)["calls"]
    assert (report["kfunc"], report["owner"], report["ok"]) == (
        "bpf_kfunc_call_test",
        "hello",
        True,
    )
    # The module was built against the installed kernel's kbuild, in a build
    # directory of its own (not the Debian release's).
    assert built.module is not None
    assert built.module.ko.is_relative_to(cache_dir("builds", installed_612.key))


def test_kernels_lists_the_local_ones(
    installed_612: LocalKernel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kernels", "--cached", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["kernels"]
    mine = next(k for k in listed if k["path"] == str(installed_612.path))
    assert (mine["kind"], mine["source"]) == ("installed", installed_612.source)


@pytest.fixture
def forget(tmp_path: Path) -> Iterator[None]:
    """Remove kfunc's data about the kernels a test installs under ``tmp_path``."""
    yield
    for k in cached_kernels(local=True):
        if k.spec.startswith(str(tmp_path)):
            assert remove(k.spec) == [(k.spec, ANY)]
            assert not k.path.exists()


def _fake_install(src: Path, dest: Path, release: str, config: str) -> Path:
    """A root whose image, modules and kbuild are ``src``'s (relative links: the
    root's own absolute ones are taken inside it) and whose config is ``config``."""
    (dest / "boot").mkdir(parents=True)
    modules = dest / "lib" / "modules" / release
    modules.mkdir(parents=True)
    image = dest / "boot" / f"vmlinuz-{release}"
    image.symlink_to(os.path.relpath(src / "boot" / f"vmlinuz-{release}", image.parent))
    (dest / "boot" / f"config-{release}").write_text(config)
    kernel = src / "lib" / "modules" / release / "kernel"
    (modules / "kernel").symlink_to(os.path.relpath(kernel, modules))
    (modules / "build").symlink_to(f"/usr/src/linux-headers-{release}")
    (dest / "usr").symlink_to(os.path.relpath(src / "usr", dest))
    return image


def test_kernel_without_module_btf_is_refused(
    installed_root: Path, kernel_612: Kernel, tmp_path: Path, forget: None
) -> None:
    """The real 6.12 config with CONFIG_DEBUG_INFO_BTF_MODULES and CONFIG_MODULES
    taken out: refused before anything is built, naming both."""
    config = (installed_root / "boot" / f"config-{kernel_612.release}").read_text()
    config = re.sub(r"^CONFIG_(DEBUG_INFO_BTF_MODULES|MODULES)=y$", "", config, flags=re.M)
    image = _fake_install(installed_root, tmp_path / "root", kernel_612.release, config)
    with pytest.raises(KfuncError) as err:
        local_kernel(str(image))
    assert "need CONFIG_MODULES, CONFIG_DEBUG_INFO_BTF_MODULES" in err.value.message
    assert "CONFIG_MODULES=y CONFIG_DEBUG_INFO_BTF_MODULES=y" in (err.value.fix or "")


def test_kprobe_programs_need_kprobes(
    installed_root: Path, kernel_612: Kernel, tmp_path: Path, forget: None
) -> None:
    """The tutorial's kprobe program on a kernel without kprobes: refused (before
    anything is built: run_projects checks right after reading the kernel)."""
    config = (installed_root / "boot" / f"config-{kernel_612.release}").read_text()
    config = re.sub(r"^CONFIG_KPROBE(S|_EVENTS)=y$", "", config, flags=re.M)
    image = _fake_install(installed_root, tmp_path / "root", kernel_612.release, config)
    with pytest.raises(KfuncError) as err:
        run_projects([Project.load(EXAMPLES / "hello")], str(image))
    assert err.value.message == (
        f"kernel {kernel_612.release}: hello's programs need CONFIG_KPROBES, "
        f"CONFIG_KPROBE_EVENTS, which its config ({image.parent}/config-{kernel_612.release}) "
        "does not set"
    )


def test_an_unbuilt_tree_and_a_plain_directory_are_refused(tmp_path: Path) -> None:
    with pytest.raises(KfuncError, match="not a kernel build tree"):
        local_kernel(str(tmp_path))
    (tmp_path / "Makefile").write_text("all:\n")
    (tmp_path / ".config").write_text("CONFIG_MODULES=y\n")
    with pytest.raises(KfuncError) as err:
        local_kernel(str(tmp_path))
    assert err.value.message.endswith(
        "the tree is not built (no vmlinux, Module.symvers, arch/x86/boot/bzImage)"
    )
    assert err.value.fix == f"build it: make -C {tmp_path} bzImage modules"


def test_host_kernel_not_installed_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    release = os.uname().release
    require(
        not Path(f"/boot/vmlinuz-{release}").exists(),
        "the running kernel is installed here: the refusal is for hosts without it",
    )
    assert main(["build", str(EXAMPLES / "hello"), "--kernel", "host"]) == 1
    err = capsys.readouterr().err
    assert f"kernel host ({release}): the running kernel is not installed here" in err
    assert "fix: install its image and headers" in err


def test_on_host_is_refused_without_config_modules(capsys: pytest.CaptureFixture[str]) -> None:
    """This machine's kernel (a Firecracker guest's) has no CONFIG_MODULES."""
    require(os.geteuid() == 0, "kfunc run needs root")
    require(not Path("/proc/modules").exists(), "this kernel can load modules")
    assert main(["run", str(EXAMPLES / "hello"), "--on-host", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["error"].endswith("cannot load modules: it is built without CONFIG_MODULES "
                                 "(no /proc/modules)")  # fmt: skip
    assert out["fix"].startswith("run it in a guest instead: drop --on-host")


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"proc/sys/kernel/modules_disabled": "1"}, "module loading disabled"),
        ({"sys/module/module/parameters/sig_enforce": "Y"}, "loads only signed modules"),
        ({"sys/kernel/security/lockdown": "none [integrity] confidentiality"},
         "is locked down (integrity)"),
    ],
)  # fmt: skip
def test_on_host_checks(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    """The checks of a host that has CONFIG_MODULES, read from a root laid out as
    /proc and /sys show them."""
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "modules").write_text("")
    check_host_modules(tmp_path)  # loadable: no refusal
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text + "\n")
    with pytest.raises(KfuncError, match=re.escape(reason)):
        check_host_modules(tmp_path)


_XDP = """
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
SEC("xdp") int kfunc_onhost_xdp(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_host_plan_unloads_when_interrupted(tmp_path: Path) -> None:
    """--on-host runs the guest agent's plan in kfunc's own process: Ctrl-C in the
    middle of it still unloads what it loaded (here a BPF program: this host
    cannot load modules; rmmod is the same cleanup's next step)."""
    require(os.geteuid() == 0, "loading BPF programs needs root")
    require(shutil.which("bpftool") is not None, "bpftool (to see the host's programs)")
    from kfunc.clang import compile_bpf
    from kfunc.libbpf import KERNEL_BTF, write_vmlinux_h
    from kfunc.vm.agent import run_plan

    require(KERNEL_BTF.exists(), f"{KERNEL_BTF}: the host kernel has no BTF")
    write_vmlinux_h(KERNEL_BTF, tmp_path / "vmlinux.h")
    (tmp_path / "p.bpf.c").write_text(_XDP)
    obj = compile_bpf(tmp_path / "p.bpf.c", tmp_path / "p.bpf.o", include_dirs=[tmp_path])
    seen = tmp_path / "seen.txt"
    show = "bpftool prog show name kfunc_onhost_xdp"
    steps = [
        {"op": "bpf_load", "path": str(obj)},
        # The user's Ctrl-C, while a step runs: SIGINT to kfunc's process.
        {"op": "trigger", "kind": "command", "command": f"{show} > {seen}; kill -INT $PPID"},
        {"op": "bpf_unload", "always": True},
    ]
    events: list[dict[str, object]] = []
    # Python raises KeyboardInterrupt only where SIGINT was not ignored when it
    # started; a run started in the background by a script (`cmd &`) inherits
    # it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_plan({"steps": steps}, tmp_path, events.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "kfunc_onhost_xdp" in seen.read_text()  # it was loaded ...
    after = subprocess.run(show.split(), capture_output=True, text=True, check=False)
    assert "kfunc_onhost_xdp" not in after.stdout  # ... and is gone
    assert [e["step"] for e in events] == ["boot", "bpf_load"]


def _tutorial(kernel: LocalKernel) -> None:
    before = qemu_processes()
    report = run_projects([Project.load(EXAMPLES / "hello")], kernel.spec, use_kept=False)
    (project,) = report.projects
    assert report.kernel["release"] == kernel.release
    assert report.kernel["kind"] == kernel.kind
    assert project.ok, (project.error, project.fix)
    assert re.search(r"BPF triggered do_unlinkat from PID \d+\. Result: 10$", project.result or "")
    assert "Goodbye, world!" in project.kernel_log
    assert qemu_processes() <= before


@pytest.mark.vm
def test_tutorial_on_installed_612(installed_612: LocalKernel) -> None:
    """The tutorial on Debian's 6.12 as a distribution installs it, from its own root."""
    _tutorial(installed_612)


def test_tree_kfuncs_are_debians(tree_kernel: LocalKernel, kernel_612: Kernel) -> None:
    """The tree is read as a kernel: its config, its vmlinux's BTF, and its kfuncs,
    each one Debian's 6.12 (the same source, a superset config) has with the
    same prototype."""
    from kfunc.inventory import kernel_inventory

    k = tree_kernel
    assert (k.kind, k.release, k.build_dir, k.vmlinux) == (
        "tree",
        "6.12.117",
        k.tree,
        k.tree / "vmlinux",
    )
    assert missing_config(k, KFUNC_CONFIG) == []
    tree = {f.name: f.prototype for f in kernel_inventory(k).kfuncs}
    debian = {f.name: f.prototype for f in kernel_inventory(kernel_612).kfuncs}
    assert "bpf_obj_new_impl" in tree
    assert {n: debian.get(n) for n in tree} == tree


@pytest.mark.vm
def test_tutorial_on_tree(tree_kernel: LocalKernel) -> None:
    """The tutorial on a kernel tree built from linux-source-6.12."""
    _tutorial(tree_kernel)
