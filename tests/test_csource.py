"""Module sources read as C: comments and #if 0 out, sets followed to their
registrations, and the kernel's own bpf_testmod (UNSPEC: the common hook)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import require

from kfunc.check import check_registrations, registration_from_sources
from kfunc.csource import read_module_c
from kfunc.errors import KfuncError
from kfunc.kernels.facts import kfunc_hooks
from kfunc.kernels.target import Kernel

TWO_SETS = r"""
#include <linux/btf_ids.h>
/* register_btf_kfunc_id_set(BPF_PROG_TYPE_XDP, &a_set); in a comment */
BTF_KFUNCS_START(a_ids)
BTF_ID_FLAGS(func, a_one, KF_ACQUIRE | KF_RET_NULL)
BTF_ID_FLAGS(func, a_two)
BTF_KFUNCS_END(a_ids)
BTF_SET8_START(b_ids)
BTF_ID_FLAGS(func, b_one)
// BTF_ID_FLAGS(func, commented_out)
BTF_SET8_END(b_ids)
static const struct btf_kfunc_id_set a_set = { .owner = THIS_MODULE, .set = &a_ids, };
static const struct btf_kfunc_id_set b_set = {
	.owner = THIS_MODULE,
	.set   = &b_ids,
};
static int __init init(void)
{
	int ret = register_btf_kfunc_id_set(BPF_PROG_TYPE_TRACING, &a_set);
#if 0
	ret = ret ?: register_btf_kfunc_id_set(BPF_PROG_TYPE_LSM, &a_set);
#else
	ret = ret ?: register_btf_kfunc_id_set(BPF_PROG_TYPE_SCHED_CLS,
						&b_set);
#endif
	return ret;
}
static void __exit fini(void)
{
	unregister_btf_kfunc_id_set(BPF_PROG_TYPE_XDP, &b_set);
}
"""


def test_sets_followed_to_their_registrations(tmp_path: Path) -> None:
    src = tmp_path / "two.c"
    src.write_text(TWO_SETS)
    c = read_module_c([src])
    assert [s.name for s in c.sets] == ["a_ids", "b_ids"]
    assert c.kfuncs == (
        ("a_one", ("KF_ACQUIRE", "KF_RET_NULL")),
        ("a_two", ()),
        ("b_one", ()),
    )
    # Not the comment's XDP, not #if 0's LSM, not unregister_'s XDP.
    assert c.prog_types == ("tracing", "sched_cls")
    assert c.prog_types_of("a_two") == ("tracing",)
    assert c.prog_types_of("b_one") == ("sched_cls",)
    assert [r.where for r in c.registrations] == ["two.c:19", "two.c:23"]
    reg = registration_from_sources("two", [src])
    assert reg is not None
    assert reg.types_for("a_one") == ("tracing",)
    assert reg.types_for("b_one") == ("sched_cls",)


def test_commented_out_registration_is_not_one(tmp_path: Path) -> None:
    """The seed's exit function: its only other mention of a registration is a comment."""
    src = tmp_path / "hello.c"
    src.write_text(
        "static void __exit hello_exit(void)\n{\n"
        "    // unregister_btf_kfunc_id_set(BPF_PROG_TYPE_UNSPEC, &bpf_kfunc_example_set);\n}\n"
    )
    assert read_module_c([src]).registrations == ()
    assert registration_from_sources("hello", [src]) is None


@pytest.fixture(scope="module")
def testmod() -> Path:
    """bpf_testmod's sources from Debian's linux-source-6.12, read at test time."""
    require(os.geteuid() == 0, "fetching linux-source needs root here")
    from kfunc.selftests import selftests_tree

    try:
        return selftests_tree("6.12").testmod
    except KfuncError as exc:
        require(False, f"linux-source-6.12's selftests not available: {exc}")
        raise


def test_bpf_testmod_unspec_is_the_common_hook(
    testmod: Path, kernel_612: Kernel, kernel_61: Kernel
) -> None:
    reg = registration_from_sources("bpf_testmod", sorted(testmod.glob("*.[ch]")))
    assert reg is not None
    assert reg.types_for("bpf_kfunc_common_test") == ("unspec",)
    assert set(reg.types_for("bpf_kfunc_call_test1")) == {
        "sched_cls", "tracing", "syscall", "struct_ops",
    }  # fmt: skip
    hooks_612, hooks_61 = kfunc_hooks(kernel_612), kfunc_hooks(kernel_61)
    assert hooks_612 is not None and "COMMON" in hooks_612
    assert hooks_61 is not None and "COMMON" not in hooks_61
    assert check_registrations("bpf_testmod", ["unspec"], kernel_612.version, hooks_612) == []
    (problem,) = check_registrations("bpf_testmod", ["unspec"], kernel_61.version, hooks_61)
    assert "BPF_PROG_TYPE_UNSPEC, which fails with -EINVAL" in problem.message
    assert "BTF_KFUNC_HOOK_COMMON" in problem.message


def test_kfunc_build_accepts_bpf_testmod_on_612(
    testmod: Path, kernel_612: Kernel, tmp_path: Path
) -> None:
    """Real kbuild of the kernel's own module: its UNSPEC registration is valid on 6.12."""
    from kfunc.build import build_project
    from kfunc.project import Project

    project = tmp_path / "bpf_testmod"
    shutil.copytree(testmod, project)  # kfunc build writes build/ into the project
    built = build_project(Project.load(project), kernel_612)
    assert built.module is not None
    names = {k.name for k in built.module.kfuncs}
    assert {"bpf_kfunc_common_test", "bpf_kfunc_call_test1"} <= names


def test_common_hook_kfuncs_callable_without_a_hook_of_their_own(
    tmp_path: Path, kernel_612: Kernel
) -> None:
    """On 6.2-6.9 (COMMON, no KPROBE hook), a kprobe program may call a kfunc its
    module registers for BPF_PROG_TYPE_UNSPEC: the verifier looks in COMMON first."""
    from kfunc.build import build_bpf
    from kfunc.check import check_calls, read_bpf_object
    from kfunc.project import Project

    project = tmp_path / "p"
    project.mkdir()
    (project / "p.bpf.c").write_text(
        '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
        "extern u64 bpf_kfunc_call_test(u32 a, u64 b, u32 c, u64 d) __ksym;\n"
        'SEC("kprobe/do_unlinkat") int p(void *ctx) { return bpf_kfunc_call_test(1, 2, 3, 4); }\n'
        'char LICENSE[] SEC("license") = "GPL";\n'
    )
    (obj,) = build_bpf(Project.load(project), kernel_612)
    info = read_bpf_object(obj)
    hooks = kfunc_hooks(kernel_612)
    assert hooks is not None
    like_69 = hooks - {"KPROBE"}  # 6.9's enum btf_kfunc_hook: COMMON, no KPROBE
    (problem,) = check_calls(info, kernel_612.version, like_69)
    assert "calls kfunc bpf_kfunc_call_test" in problem.message
    assert check_calls(info, kernel_612.version, like_69, ["bpf_kfunc_call_test"]) == []
    assert check_calls(info, kernel_612.version, like_69 - {"COMMON"}, ["bpf_kfunc_call_test"])


def test_if0_and_if1_branches() -> None:
    from kfunc.survey.cparse import drop_if0

    text = "#if 1\na\n#elif X\nb\n#else\nc\n#endif\n#if 0\nd\n#elif Y\ne\n#else\nf\n#endif\n"
    kept = [line for line in drop_if0(text).splitlines() if line and not line.startswith("#")]
    assert kept == ["a", "e", "f"]  # Y's branch and its #else are both read: Y is unknown
    assert drop_if0(text).count("\n") == text.count("\n")  # line numbers kept
