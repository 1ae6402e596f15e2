"""Generated modules: the rules by kernel, and real builds of what is generated."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kfunc.codegen import generate, judge, render_bpf_header, render_module
from kfunc.elf import ElfObject
from kfunc.kbuild import ModuleSource, build_module
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels.facts import kfunc_hooks, vmlinux_h
from kfunc.kernels.target import Kernel
from kfunc.spec import KfuncSpec, ModuleSpec

V61, V612 = KernelVersion(6, 1, 192), KernelVersion(6, 12, 117)


def one(flags: tuple[str, ...] = (), prog_types: tuple[str, ...] = ("tracing",)) -> ModuleSpec:
    return ModuleSpec(
        "gen",
        (KfuncSpec("gen_pid", "s32 gen_pid(struct task_struct *t)", "return t->pid;", flags),),
        prog_types,
        includes=("linux/sched.h",),
    )


def test_rules_by_kernel() -> None:
    # KF_RCU degrades on 6.1 with a warning that says what is lost.
    v = judge(one(("KF_RCU",)), V61, None)
    assert v.errors == [] and "KF_RCU arrived in 6.2" in v.warnings[0]
    assert judge(one(("KF_RCU",)), V612, None).warnings == []
    # An iterator flag cannot be shimmed.
    (error,) = judge(one(("KF_ITER_NEW",)), V61, None).errors
    assert "KF_ITER_NEW arrived in 6.4, target is 6.1.192" in error[0]
    # A flag that is gone.
    (error,) = judge(one(("KF_KPTR_GET",)), V612, None).errors
    assert "removed in 6.4" in error[0]
    # A set only for kprobe cannot work on 6.1; with tracing too, it is a warning.
    (error,) = judge(one(prog_types=("kprobe",)), V61, None).errors
    assert "kprobe programs may call kfuncs only from Linux 6.10 on" in error[0]
    v = judge(one(prog_types=("tracing", "kprobe")), V61, None)
    assert v.errors == [] and "not registered for kprobe" in v.warnings[0]


def test_generated_source_has_only_what_it_uses() -> None:
    plain = render_module(one())
    assert "linux/version.h" not in plain and "KF_RCU" not in plain
    assert "BTF_ID_LIST" not in plain  # no destructor, no dtor table
    rcu = render_module(one(("KF_RCU",), ("tracing", "kprobe")))
    assert "#ifndef KF_RCU" in rcu and "#include <linux/version.h>" in rcu
    assert "#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)" in rcu
    assert "BTF_ID_FLAGS(func, gen_pid, KF_RCU)" in rcu


def test_skb_program_types_are_guarded_before_their_hooks() -> None:
    # sched_act and the other skb program types got a kfunc hook in 6.4 (6.1 has
    # none: registering fails with -EINVAL), so their registration is guarded.
    source = render_module(one(prog_types=("tracing", "sched_act")))
    assert "#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)" in source
    (error,) = judge(one(prog_types=("sched_act",)), V61, None).errors
    assert "sched_act programs may call kfuncs only from Linux 6.4 on" in error[0]


def test_destructor_is_null_safe_and_header_tags_kptrs_per_kernel() -> None:
    spec = ModuleSpec(
        "gen",
        (
            KfuncSpec("gen_put", "void gen_put(struct gen *g)", "kfree(g);", ("KF_RELEASE",)),
            KfuncSpec("gen_dtor", "void gen_dtor(void *p)", "gen_put(p);", dtor_for="gen"),
        ),
        ("tracing",),
    )
    source = render_module(spec)
    # 6.1 calls destructors for empty kptr fields too (examples/refobj oopsed it).
    assert "void gen_dtor(void *p)\n{\n\t/* Some kernels (6.1)" in source
    assert "\tif (!p)\n\t\treturn;\n\tgen_put(p);\n}" in source
    assert "if (!g)" not in source  # only destructors get the guard
    header = render_bpf_header(spec)
    assert "KFUNC_TARGET_VERSION < 0x060400" in header  # v6.4 renamed the tags
    assert 'btf_type_tag("kptr_ref")' in header and 'btf_type_tag("kptr")' in header
    assert "__kfunc_kptr" not in render_bpf_header(one())  # no destructor, no kptr tag


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> ModuleSource:
    spec = ModuleSpec(
        "gen",
        (
            KfuncSpec(
                "gen_pid", "s32 gen_pid(struct task_struct *t)", "return t->pid;", ("KF_RCU",)
            ),
            KfuncSpec("gen_twice", "u64 gen_twice(u64 x)", "return 2 * x;", optional=True),
        ),
        ("tracing", "kprobe", "syscall"),
        includes=("linux/sched.h",),
    )
    return ModuleSource.find(generate(spec, tmp_path_factory.mktemp("gen")))


@pytest.mark.parametrize("fixture", ["kernel_612", "kernel_61", "kernel_73"])
def test_generated_module_builds_on_every_kernel(
    fixture: str, generated: ModuleSource, request: pytest.FixtureRequest
) -> None:
    kernel: Kernel = request.getfixturevalue(fixture)
    build = build_module(generated, kernel)
    flags = {k.name: k.flags for k in build.kfuncs}
    # The KF_RCU shim: the flag on 6.12, nothing on 6.1.
    expected_rcu = ("KF_RCU",) if kernel.version >= KernelVersion(6, 2) else ()
    assert flags == {"gen_pid": expected_rcu, "gen_twice": ()}
    # BTF_KFUNCS_START on 6.9+, BTF_SET8_START through the shim before.
    (kset,) = ElfObject(build.ko).btf_id_sets()
    assert bool(kset.flags & 1) == (kernel.version >= KernelVersion(6, 9))
    # The kprobe registration is compiled in only where kprobe has a kfunc hook.
    strings = subprocess.run(
        ["objdump", "-d", "-r", str(build.ko)], capture_output=True, text=True, check=True
    ).stdout
    assert strings.count("register_btf_kfunc_id_set") == (
        3 if "KPROBE" in (kfunc_hooks(kernel) or set()) else 2
    )


def test_bpf_header_compiles_with_weak_kfuncs(kernel_612: Kernel, tmp_path: Path) -> None:
    spec = ModuleSpec(
        "gen",
        (KfuncSpec("gen_twice", "u64 gen_twice(u64 x)", "return 2 * x;", optional=True),),
        ("syscall",),
    )
    header = render_bpf_header(spec)
    assert "extern u64 gen_twice(u64 x) __ksym __weak;" in header
    (tmp_path / "gen_kfuncs.h").write_text(header)
    src = tmp_path / "prog.bpf.c"
    src.write_text(
        '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include "gen_kfuncs.h"\n'
        'char LICENSE[] SEC("license") = "GPL";\n'
        'SEC("syscall") int p(void *ctx)\n'
        "{ return bpf_ksym_exists(gen_twice) ? gen_twice(21) : -1; }\n"
    )
    inc = vmlinux_h(kernel_612).parent
    subprocess.run(
        ["clang", "-g", "-O2", "-target", "bpf", f"-I{inc}", f"-I{tmp_path}", "-c", str(src),
         "-o", str(tmp_path / "prog.o")],
        check=True,
    )  # fmt: skip
    syms = subprocess.run(
        ["llvm-objdump", "-t", str(tmp_path / "prog.o")], capture_output=True, text=True
    ).stdout
    assert any("gen_twice" in line and " w " in line for line in syms.splitlines())
