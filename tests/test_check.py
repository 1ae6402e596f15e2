"""Pre-load checks: a BPF object's kfunc calls against a kernel's kfunc hooks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLES

from kfunc.build import build_bpf, build_project
from kfunc.check import check_calls, check_registrations, module_registrations, read_bpf_object
from kfunc.errors import CheckError, ELFError
from kfunc.kernel_api.hooks import kfunc_hook_missing
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels.facts import kfunc_hooks
from kfunc.kernels.target import Kernel
from kfunc.project import Project


def test_release_table_when_btf_does_not_say() -> None:
    v61, v610, v612 = KernelVersion(6, 1), KernelVersion(6, 10), KernelVersion(6, 12)
    assert "only from Linux 6.10 on" in (kfunc_hook_missing("kprobe", v61, None) or "")
    assert kfunc_hook_missing("kprobe", v610, None) is None
    assert kfunc_hook_missing("tracepoint", v610, {"TRACING", "KPROBE"}) is not None
    assert kfunc_hook_missing("tracepoint", v612, {"TRACING"}) is None
    assert kfunc_hook_missing("tracing", v61, None) is None
    assert "any kernel" in (kfunc_hook_missing("flow_dissector", v612, None) or "")
    assert kfunc_hook_missing("cgroup_sysctl", v612, None) is None  # 6.12: 67666479edf1


def _bpftool_hooks(kernel: Kernel) -> set[str]:
    out = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(kernel.vmlinux), "format", "c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    body = out[out.index("enum btf_kfunc_hook {") :].split("};", 1)[0]
    return set(re.findall(r"BTF_KFUNC_HOOK_(\w+) =", body)) - {"MAX"}


@pytest.mark.parametrize("fixture", ["kernel_612", "kernel_61"])
def test_kfunc_hooks_come_from_the_kernels_btf(fixture: str, request: pytest.FixtureRequest):
    kernel: Kernel = request.getfixturevalue(fixture)
    hooks = kfunc_hooks(kernel)
    assert hooks == _bpftool_hooks(kernel)
    assert ("KPROBE" in hooks) == (kernel.version >= KernelVersion(6, 10))


@pytest.fixture(scope="module")
def hello_obj_612(kernel_612: Kernel) -> Path:
    (obj,) = build_bpf(Project.load(EXAMPLES / "hello"), kernel_612)
    return obj


def test_object_calls_are_read_from_relocations(hello_obj_612: Path) -> None:
    info = read_bpf_object(hello_obj_612)
    assert [(p.name, p.section, p.prog_type) for p in info.programs] == [
        ("handle_kprobe", "kprobe/do_unlinkat", "kprobe")
    ]
    assert info.kfuncs == ("bpf_kfunc_call_test",)
    assert [(c.program.name, c.kfunc, c.weak) for c in info.calls] == [
        ("handle_kprobe", "bpf_kfunc_call_test", False)
    ]


def test_kprobe_caller_is_refused_on_61_only(
    hello_obj_612: Path, kernel_61: Kernel, kernel_612: Kernel
) -> None:
    info = read_bpf_object(hello_obj_612)
    assert check_calls(info, kernel_612.version, kfunc_hooks(kernel_612)) == []
    (problem,) = check_calls(info, kernel_61.version, kfunc_hooks(kernel_61))
    assert problem.message.startswith(
        "prog 'handle_kprobe' (kprobe/do_unlinkat) calls kfunc bpf_kfunc_call_test, but kprobe "
        "programs may call kfuncs only from Linux 6.10 on"
    )
    assert problem.fix is not None and "fentry" in problem.fix


def test_module_registration_for_kprobe_fails_on_61(kernel_61: Kernel) -> None:
    regs = module_registrations(list((EXAMPLES / "hello").glob("*.c")))
    assert regs == ["kprobe"]
    (problem,) = check_registrations("hello", regs, kernel_61.version, kfunc_hooks(kernel_61))
    assert "BPF_PROG_TYPE_KPROBE, which fails with -EINVAL" in problem.message


def test_fentry_variant_passes_on_61(kernel_61: Kernel, tmp_path: Path) -> None:
    project = tmp_path / "hello_fentry"
    shutil.copytree(EXAMPLES / "hello", project)
    bpf = project / "hello.bpf.c"
    bpf.write_text(
        bpf.read_text()
        .replace('SEC("kprobe/do_unlinkat")', 'SEC("fentry/do_unlinkat")')
        .replace("int handle_kprobe(void *ctx)", "int BPF_PROG(handle_fentry)")
    )
    c = project / "hello.c"
    c.write_text(c.read_text().replace("BPF_PROG_TYPE_KPROBE", "BPF_PROG_TYPE_TRACING"))
    built = build_project(Project.load(project), kernel_61)  # raises on a problem
    assert read_bpf_object(built.objects[0]).programs[0].prog_type == "tracing"


def test_build_refuses_hello_on_61(kernel_61: Kernel) -> None:
    with pytest.raises(CheckError) as err:
        build_project(Project.load(EXAMPLES / "hello"), kernel_61)
    # One problem, about the program: the module's registration for the same
    # program type is folded into it.
    (problem,) = err.value.problems
    assert problem.startswith("prog 'handle_kprobe' (kprobe/do_unlinkat) calls kfunc")


def test_not_a_bpf_object(tmp_path: Path) -> None:
    bad = tmp_path / "x.o"
    bad.write_bytes(b"\x7fELF" + bytes(100))
    with pytest.raises(ELFError) as err:
        read_bpf_object(bad)
    assert str(bad) in err.value.message
    with pytest.raises(ELFError):
        read_bpf_object(Path("/bin/true"))
