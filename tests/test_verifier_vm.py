"""Verifier rejections of module kfuncs, in a real 6.12 and 6.1 guest: one boot each.

The examples' modules (refobj, sleepable, destructive) are inserted, and the
broken programs of tests/data/verifier/{refobj,sleepable}/ are loaded against
them (the destructive example without CAP_SYS_BOOT); each rejection must be
explained with its source line. 6.12 prints ``; source @ file:line`` in its
log; 6.1 prints only ``; source``, and the object's BTF line info gives the
line. Then ``kfunc ls --probe`` asks 6.1's verifier (a second boot) and
``kfunc check`` uses its answer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, ROOT, require

from kfunc.build import build_bpf, build_project
from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.vm.guest import Guest

pytestmark = pytest.mark.vm

DATA = ROOT / "tests" / "data" / "verifier"

# object -> (rule, source fragment of the line it is about, verifier line)
CASES: dict[str, tuple[str, str | None, str]] = {
    "refobj_leak": (
        "unreleased_reference",
        "struct refobj *obj = refobj_new(7);",
        "Unreleased reference",
    ),
    "refobj_no_null_check": (
        "null_not_checked",
        "value = refobj_value(obj);",
        "Possibly NULL pointer passed to trusted arg0",
    ),
    "refobj_wrong_arg": (
        "wrong_argument_type",
        "return refobj_value((struct refobj *)task);",
        "kernel function refobj_value args#0 expected pointer to STRUCT refobj but R1 has a "
        "pointer to STRUCT task_struct",
    ),
    "refobj_unloaded": (
        "kfunc_not_found",
        None,
        "extern (func ksym) 'refobj_new': not found in kernel or module BTFs",
    ),
    "sleepable_not_registered": (
        "kfunc_not_allowed",
        "sleepable_nap(1);",
        "calling kernel function sleepable_nap is not allowed",
    ),
    "destructive": (
        "destructive_kfunc",
        "return destructive_arm(0x1001);",
        "destructive kfunc calls require CAP_SYS_BOOT capabilit",  # 6.1: "capabilities"
    ),
}
# 6.1 checks KF_TRUSTED_ARGS before the argument's type: a task that is not
# referenced is refused first.
CASES_61 = {
    "refobj_no_null_check": (
        "null_not_checked",
        "value = refobj_value(obj);",
        "R1 type=ptr_ expected=fp",  # R1 shown as ptr_or_null_refobj before
    ),
    "refobj_wrong_arg": (
        "untrusted_argument",
        "return refobj_value((struct refobj *)task);",
        "R1 must be referenced",
    ),
}


def _project(example: str, cases: str | None, tmp: Path) -> Project:
    """The example's module with the broken programs of tests/data/verifier/<cases>."""
    if cases is None:
        return Project.load(EXAMPLES / example)
    path = tmp / example
    path.mkdir()
    shutil.copy(EXAMPLES / example / "kfunc.toml", path)
    for src in (DATA / cases).glob("*.bpf.c"):
        shutil.copy(src, path)
    return Project.load(path)


def _run(kernel: Kernel, tmp: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Path]]:
    """One boot: insmod, try each object, rmmod; the bpf_verify results by object."""
    rundir = Path(tempfile.mkdtemp(prefix="kfunc-verifier-", dir=tmp))
    steps: list[dict[str, Any]] = []
    objects: dict[str, Path] = {}
    late = []
    for example, cases in (("refobj", "refobj"), ("sleepable", "sleepable"),
                           ("destructive", None)):  # fmt: skip
        # The module from the example itself (its programs pass the pre-boot
        # checks); the broken programs compiled against it, unchecked: the
        # verifier is what this test asks.
        built = build_project(Project.load(EXAMPLES / example), kernel)
        assert built.module is not None
        project = _project(example, cases, tmp)
        project.module_source()  # generates build/<module>_kfuncs.h beside the programs
        objs = build_bpf(project, kernel, module=built.module)
        ko = shutil.copy2(built.module.ko, rundir)
        steps.append({"op": "insmod", "path": str(ko), "name": built.module.name})
        for obj in objs:
            name = obj.name.removesuffix(".bpf.o")
            objects[name] = obj
            step = {"op": "bpf_verify", "path": str(shutil.copy2(obj, rundir)), "name": name}
            if name == "destructive":
                # the example itself: refused without CAP_SYS_BOOT, loaded with it
                steps.append({**step, "drop_caps": ["CAP_SYS_BOOT"]})
                steps.append({**step, "name": "destructive_with_cap"})
            elif name == "refobj_unloaded":
                late.append(step)  # after rmmod refobj
            else:
                steps.append(step)
    steps += [{"op": "rmmod", "name": n, "always": True}
              for n in ("refobj", "sleepable", "destructive")]  # fmt: skip
    steps += late
    names = [s.pop("name") for s in steps if s["op"] == "bpf_verify"]
    (rundir / "plan.json").write_text(json.dumps({"steps": steps}))
    argv = [sys.executable, "-m", "kfunc.vm.agent", str(rundir / "plan.json")]
    Guest(kernel, timeout=240).run(argv, rundir)
    events = [json.loads(ln) for ln in (rundir / "events.jsonl").read_text().splitlines()]
    verified = [e for e in events if e["step"] == "bpf_verify"]
    assert [e["ok"] for e in events if e["step"] in ("insmod", "rmmod")] == [True] * 6, events
    assert len(verified) == len(names)
    return {n: e["data"] for n, e in zip(names, verified, strict=True)}, objects


def _our_qemu(marker: str) -> list[str]:
    """Command lines of qemu processes of ours still running (others' guests may run)."""
    out = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if marker in line]


def _line_of(path: Path, fragment: str) -> int:
    return next(i for i, t in enumerate(path.read_text().splitlines(), 1) if fragment in t)


@pytest.mark.parametrize("fixture", ["kernel_612", "kernel_61"])
def test_module_kfunc_rejections_are_explained(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    kernel: Kernel = request.getfixturevalue(fixture)
    results, _objects = _run(kernel, tmp_path)
    assert results["destructive_with_cap"]["loaded"] is True
    cases = CASES | (CASES_61 if kernel.version.series == "6.1" else {})
    for name, (rule, fragment, line) in cases.items():
        r = results[name]
        assert r["loaded"] is False, name
        x = r["explanation"]
        assert x is not None, f"{name} on {kernel.version}: {r['log']}"
        assert x["rule"] == rule, f"{name} on {kernel.version}: {x}"
        assert line in x["line"]
        if fragment is not None:
            src = next(p for p in (DATA / "refobj", DATA / "sleepable", EXAMPLES / "destructive")
                       if (p / f"{name}.bpf.c").exists()) / f"{name}.bpf.c"  # fmt: skip
            assert x["source"]["file"] == src.name, x
            assert x["source"]["line"] == _line_of(src, fragment), x
            assert fragment in x["source"]["text"] or kernel.version.series == "6.1"
    # 6.12 names the file in its log; 6.1 does not, and line info filled it in.
    log = results["refobj_leak"]["log"]
    assert ("@ refobj_leak.bpf.c:" in log) == (kernel.version.series == "6.12")
    assert not _our_qemu(str(tmp_path))


def _kfunc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kfunc", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)  # fmt: skip


def test_probe_61_then_check_uses_it(kernel_61: Kernel, tmp_path: Path) -> None:
    require(shutil.which("clang") is not None, "clang is needed")
    out = _kfunc("ls", "--kernel", "6.1", "--probe", "--refresh", "--json")
    assert out.returncode == 0, out.stderr
    assert "loads of" in out.stderr and "in one boot" in out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    # net/bpf/test_run.c registers its test kfuncs for tc, tracing and syscall
    # programs in 6.1; XDP programs may not call them.
    test1 = rows["bpf_kfunc_call_test1"]["prog_types"]
    assert {"sched_cls", "tracing", "syscall"} <= set(test1)
    assert "xdp" not in test1 and "tracepoint" not in test1  # tracepoints: from 6.12
    # Modules' kfuncs are not probed.
    assert rows["bpf_xdp_ct_lookup"]["prog_types"] is None
    # kfunc check now knows, and says where the answer came from.
    src = tmp_path / "xdp_test1.bpf.c"
    src.write_text(
        '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n'
        "u64 bpf_kfunc_call_test1(struct sock *sk, u32 a, u64 b, u32 c, u64 d) __ksym;\n"
        'SEC("xdp") int xdp_test1(struct xdp_md *ctx)\n'
        "{ return bpf_kfunc_call_test1(0, 1, 2, 3, 4) ? XDP_PASS : XDP_DROP; }\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
    )
    from kfunc.clang import compile_bpf
    from kfunc.kernels.facts import vmlinux_h

    header = vmlinux_h(kernel_61)
    obj = compile_bpf(src, tmp_path / "xdp_test1.bpf.o", include_dirs=[header.parent])
    out = _kfunc("check", str(obj), "--kernel", "6.1", "--json")
    assert out.returncode == 1, out.stdout
    (call,) = json.loads(out.stdout)["calls"]
    assert call["allowed"] is False and call["allowed_by"] == "probe"
    assert "6.1.192's verifier refuses it from xdp programs" in call["findings"][0]["message"]
    # and the listing shows the probe from now on, without --probe (no boot)
    out = _kfunc("ls", "--kernel", "6.1", "--json")
    assert out.returncode == 0, out.stderr
    listed = {r["name"]: r for r in json.loads(out.stdout)}
    assert listed["bpf_kfunc_call_test1"]["prog_types"] == test1
    out = _kfunc("ls", "--kernel", "6.1")
    assert "PROG_TYPES" in out.stdout.splitlines()[0]
    assert not _our_qemu("kfunc-probe-")
