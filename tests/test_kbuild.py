"""Module builds with BTF on real Debian kbuild trees (6.12 ships a vmlinux, 6.1 does not)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import DATA, EXAMPLES, LIBBPF_BOOTSTRAP_MAKEFILE

from kfunc.elf import ElfObject
from kfunc.errors import BuildError
from kfunc.kbuild import ModuleBuild, ModuleSource, build_module
from kfunc.kernel_api.flags import BTF_SET8_KFUNCS
from kfunc.kernels.target import Kernel


def test_module_source_reads_name_and_kfuncs() -> None:
    src = ModuleSource.find(EXAMPLES / "hello")
    assert src.name == "hello"
    assert [f.name for f in src.files] == ["Makefile", "compat.h", "hello.c", "kfunc.toml"]
    assert src.kfuncs == (("bpf_kfunc_call_test", ()),)


def test_module_source_without_kbuild(tmp_path: Path) -> None:
    (tmp_path / "x.c").write_text("int x;\n")
    with pytest.raises(BuildError) as err:
        ModuleSource.find(tmp_path)
    assert "no Kbuild or Makefile" in err.value.message
    (tmp_path / "Kbuild").write_text("ccflags-y += -O2\n")
    with pytest.raises(BuildError) as err:
        ModuleSource.find(tmp_path)
    assert "obj-m" in err.value.message


def _objcopy_set_ids(ko: Path) -> list[int]:
    """The ids in .BTF_ids after the set8 header, read with objcopy, not our ELF code."""
    out = subprocess.run(
        ["objcopy", "-O", "binary", "--only-section=.BTF_ids", str(ko), "/dev/stdout"],
        capture_output=True,
        check=True,
    ).stdout
    count = int.from_bytes(out[0:4], "little")
    return [int.from_bytes(out[8 + 8 * i : 12 + 8 * i], "little") for i in range(count)]


@pytest.mark.parametrize("fixture", ["hello_612", "hello_61"])
def test_hello_builds_with_resolved_btf_ids(fixture: str, request: pytest.FixtureRequest) -> None:
    build: ModuleBuild = request.getfixturevalue(fixture)
    elf = ElfObject(build.ko)
    assert elf.has_section(".BTF") and elf.has_section(".BTF_ids")
    assert "Skipping BTF generation" not in build.log
    (kfunc,) = build.kfuncs
    assert kfunc.name == "bpf_kfunc_call_test"
    assert kfunc.btf_id != 0
    assert _objcopy_set_ids(build.ko) == [kfunc.btf_id]
    # The set's id names the FUNC in bpftool's view of the module's BTF too.
    kernel = request.getfixturevalue("kernel_612" if fixture == "hello_612" else "kernel_61")
    raw = subprocess.run(
        ["bpftool", "-B", str(kernel.vmlinux), "btf", "dump", "file", str(build.ko)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"[{kfunc.btf_id}] FUNC 'bpf_kfunc_call_test'" in raw.stdout


def test_set_flags_follow_the_kernel(hello_612: ModuleBuild, hello_61: ModuleBuild) -> None:
    # BTF_KFUNCS_START marks the set as a kfunc set from 6.9 on; the 6.1
    # build falls back to BTF_SET8_START through compat.h.
    sets_612 = ElfObject(hello_612.ko).btf_id_sets()
    sets_61 = ElfObject(hello_61.ko).btf_id_sets()
    assert [s.flags & BTF_SET8_KFUNCS for s in sets_612] == [BTF_SET8_KFUNCS]
    assert [s.flags for s in sets_61] == [0]


def test_rebuild_is_cached(hello_612: ModuleBuild, kernel_612: Kernel) -> None:
    again = build_module(ModuleSource.find(EXAMPLES / "hello"), kernel_612)
    assert again.cached and again.ko == hello_612.ko and again.kfuncs == hello_612.kfuncs


def test_broken_c_points_at_the_users_file(kernel_612: Kernel, tmp_path: Path) -> None:
    src = tmp_path / "broken"
    shutil.copytree(EXAMPLES / "hello", src)
    text = (src / "hello.c").read_text().replace("return a + b + c + d;", "return a + b + ;")
    (src / "hello.c").write_text(text)
    line = text.splitlines().index("\treturn a + b + ;") + 1
    with pytest.raises(BuildError) as err:
        build_module(ModuleSource.find(src), kernel_612)
    assert err.value.message.startswith(f"{src.resolve()}/hello.c:{line}: error:")
    assert "expected expression" in err.value.log


@pytest.mark.parametrize("include", ["$(src)/include", "$(PWD)/include"])
def test_multi_file_module_in_a_subdirectory_builds_as_kbuild_would(
    kernel_612: Kernel, tmp_path: Path, include: str
) -> None:
    """tests/data/multimod: two objects (multimod-y), ccflags-y with a header
    in include/, a per-object CFLAGS_x.o, and a tracepoint header found
    through CFLAGS_main.o := -I$(src); each #errors if its flag is missing.
    Many kbuild files write $(PWD) where kbuild means $(src): make runs with
    PWD set to the module's directory, as when its author runs make there."""
    from kfunc.project import Project

    repo = tmp_path / "repo"
    shutil.copytree(DATA / "multimod", repo / "src" / "multimod")
    kbuild = repo / "src" / "multimod" / "Makefile"
    kbuild.write_text(kbuild.read_text().replace("-I$(src)/include", f"-I{include}"))
    (repo / "Makefile").write_text(LIBBPF_BOOTSTRAP_MAKEFILE)
    source = Project.load(repo).module_source()
    assert source is not None and source.path == repo / "src" / "multimod"
    assert source.name == "multimod"
    assert [str(f.relative_to(source.path)) for f in source.files] == [
        "Makefile", "kfuncs.c", "main.c", "multimod_trace.h", "include/multimod/api.h"
    ]  # fmt: skip
    build = build_module(source, kernel_612)
    assert build.ko.name == "multimod.ko"
    assert sorted(k.name for k in build.kfuncs) == ["multimod_add", "multimod_base"]
    assert all(k.set_name == "multimod_kfunc_ids" for k in build.kfuncs)
    elf = ElfObject(build.ko)
    assert elf.has_section("_ftrace_events")  # the tracepoint was compiled in
    modinfo = subprocess.run(
        ["modinfo", "-F", "description", str(build.ko)], capture_output=True, text=True
    )
    assert modinfo.stdout.strip() == (
        "Two objects, their own flags, a header in include/, a tracepoint"
    )
