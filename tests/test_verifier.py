"""The verifier rules, and the pre-load checks, without a kernel.

The rules' own ``seen`` lines must match them; logs a real 6.1 verifier
printed (tests/data/verifier/logs, from tests/test_verifier_vm.py's guest)
are explained without the object. The checks of a BPF object run against a
KernelView built from the host's BTF, with registrations from a spec.
"""

from __future__ import annotations

import os
import re

import pytest
from conftest import EXAMPLES, ROOT

from kfunc.btf.kernel import SYS_BTF
from kfunc.check import (
    KernelView,
    check_object,
    prototypes_compatible,
    read_bpf_object,
    registration_from_sources,
    registration_from_spec,
)
from kfunc.clang import compile_bpf
from kfunc.inventory import Kfunc
from kfunc.kernel_api.version import KernelVersion
from kfunc.spec import load_spec
from kfunc.verifier import RULES, explain_log, verifier_error
from kfunc.verifier_corpus import sample_line

LOGS = ROOT / "tests" / "data" / "verifier" / "logs"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.name}:{r.pattern.pattern[:30]}")
def test_each_rule_matches_the_lines_it_was_written_from(rule) -> None:
    assert rule.seen
    for seen in rule.seen:
        source, line = seen.split(": ", 1)
        if source.startswith("kernel/"):
            continue  # written from the kernel's source, not yet seen in a log here
        line = sample_line(line)  # a selftest's {{regex}} parts made concrete
        bare = re.sub(r" \(.*\)$", "", line)  # without a trailing (note)
        assert rule.pattern.search(line) or rule.pattern.search(bare), (rule.name, line)
        if rule.when is None:  # (a rule with a condition needs the log before the line)
            got = explain_log(line) or explain_log(bare)  # and no earlier rule shadows it
            assert got is not None and got.rule == rule.name, (rule.name, line, got)


def test_real_61_logs_without_the_object() -> None:
    null = explain_log((LOGS / "6.1-refobj_no_null_check.log").read_text())
    assert null is not None and null.rule == "null_not_checked"
    assert null.insn == 4 and (null.insn_text or "").startswith("(85) call refobj_value#")
    assert null.source is not None and null.source.file is None  # 6.1: no @ file:line
    assert null.source.text.startswith("value = refobj_value(obj);")
    trusted = explain_log((LOGS / "6.1-refobj_wrong_arg.log").read_text())
    assert trusted is not None and trusted.rule == "untrusted_argument"
    destructive = explain_log((LOGS / "6.1-destructive.log").read_text())
    assert destructive is not None and destructive.rule == "destructive_kfunc"


def test_loader_prefixes_and_unknown_logs() -> None:
    log = (
        "libbpf: prog 'p': BPF program load failed: Permission denied\n"
        "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n"
        "0: R1=ctx() R10=fp0\n"
        "; bpf_foo(); @ p.bpf.c:7\n"
        "0: (85) call bpf_foo#123\n"
        "calling kernel function bpf_foo is not allowed\n"
        "libbpf: prog 'p': -- END PROG LOAD LOG --\n"
    )
    x = explain_log(log)
    assert x is not None
    assert (x.program, x.insn, str(x.source)) == ("p", 0, "p.bpf.c:7: bpf_foo();")
    assert explain_log("0: (95) exit\nsomething else\n") is None
    err = verifier_error(None, "a\nb\nlast words\n", "prog 'p': load failed")
    assert err.message == "prog 'p': load failed: last words (2 line(s) omitted)"
    assert err.log.endswith("last words\n")
    err = verifier_error(x, log, "unused")
    assert err.message.startswith("prog 'p': kfunc bpf_foo is not registered")
    assert err.explanation is x


# --- checks of an object against a kernel view --------------------------------------

PROTOS_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef bpf_ksym_exists			/* libbpf < 1.2 */
#define bpf_ksym_exists(sym) (!!(sym))
#endif

struct task_struct *bpf_task_from_pid(int pid) __ksym;     /* s32 in the kernel: same */
void bpf_task_release(void *p) __ksym;                     /* struct task_struct *: no */
struct cgroup *bpf_cgroup_from_id(u32 cgid) __ksym;        /* u64 in the kernel: warn */
int bpf_not_a_kfunc_anywhere(int x) __ksym __weak;
void refobj_release(struct refobj *obj) __ksym;

SEC("syscall")
int protos(void *ctx)
{
	struct task_struct *t = bpf_task_from_pid(1);
	struct cgroup *c = bpf_cgroup_from_id(1);

	if (t)
		bpf_task_release(t);
	if (bpf_ksym_exists(bpf_not_a_kfunc_anywhere))
		bpf_not_a_kfunc_anywhere(1);
	return c != 0;
}

SEC("tp_btf/sys_enter")
int from_tracing(void *ctx)
{
	refobj_release(0);
	return 0;
}

SEC("kprobe/do_unlinkat")
int from_kprobe(void *ctx)
{
	refobj_release(0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def host_view_and_obj(tmp_path_factory: pytest.TempPathFactory):
    if not (SYS_BTF / "vmlinux").exists():
        pytest.skip("the host has no /sys/kernel/btf/vmlinux")
    from kfunc.btf.parse import parse_btf_file
    from kfunc.inventory import host_inventory
    from kfunc.libbpf import write_vmlinux_h

    tmp = tmp_path_factory.mktemp("protos")
    header = write_vmlinux_h(SYS_BTF / "vmlinux", tmp / "vmlinux.h")
    src = tmp / "protos.bpf.c"
    refobj = '#include "vmlinux.h"\nstruct refobj { int ref; };'
    src.write_text(PROTOS_C.replace('#include "vmlinux.h"', refobj))
    obj = compile_bpf(src, tmp / "protos.bpf.o", include_dirs=[tmp], depends=[header])
    btf = parse_btf_file(SYS_BTF / "vmlinux")
    kfuncs = {k.name: k for k in host_inventory().kfuncs}
    kfuncs["refobj_release"] = Kfunc(
        "refobj_release", "void refobj_release(struct refobj *obj)", "refobj", ("KF_RELEASE",),
        (), "btf_ids",
    )  # fmt: skip
    spec = load_spec(EXAMPLES / "refobj")
    view = KernelView(
        "6.18 (host)",
        KernelVersion(6, 18),
        None,
        kfuncs,
        lambda owner: btf if owner == "vmlinux" else None,
        {"refobj": registration_from_spec(spec)},
    )
    return view, obj, btf


def test_prototypes_by_libbpfs_rules(host_view_and_obj) -> None:
    view, obj, _ = host_view_and_obj
    reports = {
        (r.call.program.name, r.call.kfunc): r for r in check_object(read_bpf_object(obj), view)
    }
    from_pid = reports[("protos", "bpf_task_from_pid")]
    assert from_pid.owner == "vmlinux" and not [
        f for f in from_pid.findings if f.severity != "note"
    ]
    release = reports[("protos", "bpf_task_release")]
    (err,) = [f for f in release.findings if f.severity == "error"]
    assert "declared as `void bpf_task_release(void *)`" in err.message
    assert "void bpf_task_release(struct task_struct *p)" in err.message
    assert "libbpf will say 'func_proto [N] incompatible with kernel [M]'" in err.message
    cgid = reports[("protos", "bpf_cgroup_from_id")]
    assert cgid.ok
    (warn,) = [f for f in cgid.findings if f.severity == "warning"]
    assert "argument 0 (cgid) is u32 (4 bytes) in the program but u64 (8 bytes) in the kernel" in (
        warn.message
    )
    weak = reports[("protos", "bpf_not_a_kfunc_anywhere")]
    assert weak.ok and weak.owner is None and weak.call.weak
    assert "bpf_ksym_exists() is false there" in weak.findings[0].message


def test_registrations_from_the_spec(host_view_and_obj) -> None:
    view, obj, _ = host_view_and_obj
    reports = {r.call.program.name: r for r in check_object(read_bpf_object(obj), view)
               if r.call.kfunc == "refobj_release"}  # fmt: skip
    tracing = reports["from_tracing"]
    assert (tracing.allowed, tracing.ok) == (True, True)
    assert tracing.allowed_by == str(EXAMPLES / "refobj" / "kfunc.toml")
    kprobe = reports["from_kprobe"]
    assert (kprobe.allowed, kprobe.ok) == (False, False)
    (err,) = kprobe.findings
    assert "module refobj registers it for syscall, tracing only" in err.message
    assert err.fix == (
        "call it from syscall or tracing programs, or add 'kprobe' to the program types it is "
        "registered for"
    )


def test_libbpf_compat_rules_on_the_same_btf(host_view_and_obj) -> None:
    """Every kfunc's prototype is compatible with itself; void * is not a struct pointer."""
    _, _, btf = host_view_and_obj
    from kfunc.btf import types as bt

    funcs = btf.funcs("bpf_kfunc")[:50]
    assert all(prototypes_compatible(btf, f.type, btf, f.type) for f in funcs)
    release = btf.find("bpf_task_release", bt.Func)
    acquire = btf.find("bpf_task_acquire", bt.Func)
    assert release is not None and acquire is not None
    assert not prototypes_compatible(btf, release.type, btf, acquire.type)  # return types


def test_hand_written_registrations() -> None:
    reg = registration_from_sources("hello", sorted((EXAMPLES / "hello").glob("*.c")))
    assert reg is not None and reg.prog_types == ("kprobe",)
    assert reg.source == "register_btf_kfunc_id_set() in hello.c"
    assert registration_from_sources("none", []) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="target kernels need root here")
def test_check_cli_on_the_examples(kernel_612, kernel_61) -> None:
    import json
    import subprocess
    import sys

    from kfunc.build import build_project
    from kfunc.project import Project

    (obj,) = build_project(Project.load(EXAMPLES / "refobj"), kernel_612).objects
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "check", str(obj), "-k", "6.12",
         "--module", str(EXAMPLES / "refobj"), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    calls = json.loads(out.stdout)["calls"]
    assert {c["kfunc"] for c in calls} == {
        "refobj_new", "refobj_value", "refobj_release", "refobj_live"
    }  # fmt: skip
    assert {(c["owner"], c["allowed"], c["allowed_by"]) for c in calls} == {
        ("refobj", True, str(EXAMPLES / "refobj" / "kfunc.toml"))
    }
    # Without the module, its kfuncs do not resolve: one line each, with the fix.
    out = subprocess.run([sys.executable, "-m", "kfunc", "check", str(obj), "-k", "6.12"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert out.returncode == 1
    assert out.stdout.count("✗ error:") == len(calls)
    assert "pass the module that defines it with --module" in out.stdout
