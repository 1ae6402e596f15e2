"""The kernel's own kfunc tests (the BPF selftests' kfunc_call), through kfunc.

From each target's Debian linux-source package, read at test time and never
copied here: bpf_testmod is built with BTF and inserted; the programs of
``progs/kfunc_call_test.c`` and ``kfunc_call_test_subprog.c`` get what
``prog_tests/kfunc_call.c`` gives them (``pkt_v4`` for tc, the ctx struct for
syscall, nothing for the null-ctx ones) and must return its retvals; the
programs of ``progs/kfunc_call_fail.c``, loaded one at a time as upstream
loads its ``SEC("?tc")`` programs, must be refused with the verifier's words
that file expects (or, where its retval is an errno, load with those words
in the log and fail their test run with it).

Every case runs twice, as a user would write it: through the Python API
(``RemoteObject``, the pytest plugin's) and as ``[[run.test]]`` entries
through ``kfunc run``'s plan and guest agent. One boot per kernel (the
plugin's ``kernel`` fixture: shared with the other tests of that kernel).

6.1's tree differs: bpf_testmod has one kfunc (bpf_testmod_test_mod_kfunc),
and the kfunc_call programs call the test kfuncs of vmlinux
(net/bpf/test_run.c) with their own extern declarations; its table has fewer
cases (no kfunc_call_test4, _static_unused_arg, _ctx, nor
_pointer_arg_type_mismatch). Every case of its table runs.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import require

from kfunc import selftests
from kfunc.errors import KfuncError, LibbpfError, VerifierError
from kfunc.project import Project, TestRun
from kfunc.run import plan_test_run, run_projects
from kfunc.selftests import (
    KfuncCallCase,
    build_progs,
    build_testmod,
    kfunc_call_cases,
    selftests_tree,
)
from kfunc.testinput import PACKETS, ctx_from_fields
from kfunc.vm.remote import GuestModule, RemoteObject, stage

KERNELS = ["6.12", "6.1", "7.3"]
OBJECTS = ("kfunc_call_test", "kfunc_call_test_subprog", "kfunc_call_fail")


def _tree(series: str) -> Any:
    try:
        return selftests_tree(series)
    except KfuncError as exc:
        require(False, f"the BPF selftests of {series}: {exc.message}")


def _python_api(session: Any, obj_path: Path, cases: list[KfuncCallCase]) -> dict[str, Any]:
    """The cases of one object, loaded whole (as upstream's skeleton), through RemoteObject."""
    got: dict[str, Any] = {}
    with RemoteObject(session, obj_path).load() as obj:
        for case in cases:
            prog = obj.programs[case.program]
            if case.kind == "tc":
                result = prog.test_run(PACKETS["pkt_v4"])
            elif case.kind == "syscall":
                result = prog.test_run(ctx_in=ctx_from_fields(obj_path, case.program, case.ctx))
            else:
                result = prog.test_run()
            got[case.program] = result.retval
    return got


def _python_api_alone(session: Any, obj_path: Path, case: KfuncCallCase) -> str | None:
    """A failure case through RemoteObject: its program loaded alone (autoload off in
    its ``SEC("?tc")``), with the verifier's log; what went otherwise, or None."""
    obj = RemoteObject(session, obj_path)
    try:
        obj.load(programs=[case.program], log_level=1)
    except LibbpfError as exc:
        if not case.rejected:
            return f"refused: {exc.message}"
        if not (isinstance(exc, VerifierError) and exc.program == case.program):
            return f"refused, but not as VerifierError of {case.program}: {exc!r}"
        return None if case.message and case.message in exc.log else f"log lacks {case.message!r}"
    with obj:
        if case.rejected:
            return "loaded, but the verifier was to refuse it"
        prog = obj.programs[case.program]
        loaded = [p.name for p in obj.programs.values() if p.autoload]
        if loaded != [case.program]:
            return f"loaded {loaded}, not it alone"
        if case.message not in prog.log:
            return f"its log lacks {case.message!r}"
        try:
            result = prog.test_run()
        except LibbpfError as exc:
            return None if -exc.errno == case.retval else f"run failed with errno {exc.errno}"
        return f"ran, returned {result.retval}; upstream expects it to fail with {case.retval}"


def _as_run_test(case: KfuncCallCase) -> TestRun:
    """The ``[[run.test]]`` entry a user writes for ``case``."""
    packet = "pkt_v4" if case.kind == "tc" else 0
    ctx = case.ctx if case.kind == "syscall" else None
    if case.rejected:
        return TestRun(case.program, packet=packet, rejected=case.message)
    if case.message is not None:  # loads, with the words in its log; the run fails
        name = errno.errorcode[-case.retval]
        return TestRun(case.program, packet=packet, ctx=ctx, log=case.message, error=name)
    return TestRun(case.program, case.retval, packet=packet, ctx=ctx)


def _run_plan(session: Any, objects: dict[str, Path], cases: list[KfuncCallCase]) -> list[Any]:
    """Every case as kfunc run carries out its ``[[run.test]]``: one plan, a group per
    object (its load, its tests, its close) and per failure case."""
    staged = {path: stage(session, path) for path in objects.values()}
    steps: list[dict[str, Any]] = []
    group = 0
    for name, path in objects.items():
        mine = [c for c in cases if c.object == name]
        if not mine:
            continue
        whole = [c for c in mine if c.message is None]
        if whole:
            group += 1
            steps.append({"op": "bpf_load", "path": staged[path], "attach": False,
                          "group": group})  # fmt: skip
            steps += [{**plan_test_run(_as_run_test(c), [path], staged), "group": group}
                      for c in whole]  # fmt: skip
            steps.append({"op": "bpf_close", "path": staged[path], "group": group,
                          "always": True})  # fmt: skip
        for case in mine:
            if case.message is not None:
                group += 1
                step = plan_test_run(_as_run_test(case), [path], staged)
                assert step["alone"], f'{case.program}: SEC("?...") programs load alone'
                steps.append({**step, "group": group})
    return session.run_steps(steps, timeout=600)


@pytest.mark.parametrize("kernel", KERNELS, indirect=True, scope="session")
def test_kfunc_call_selftests(kernel: Any) -> None:
    target = kernel.kernel
    tree = _tree(target.series)
    cases = kfunc_call_cases(tree)
    module = build_testmod(target)
    objects = build_progs(target, OBJECTS, module)
    assert set(objects) == set(OBJECTS), f"{tree.progs}: lacks {set(OBJECTS) - set(objects)}"
    problems: list[str] = []
    summary: list[str] = []
    with GuestModule(kernel, module) as testmod:
        # insmod checked /sys/kernel/btf/bpf_testmod and every kfunc of its sets there
        assert set(testmod.kfuncs) == {k.name for k in module.kfuncs}
        for name in ("kfunc_call_test", "kfunc_call_test_subprog"):
            mine = [c for c in cases if c.object == name]
            got = _python_api(kernel, objects[name], mine)
            for case in mine:
                if got[case.program] != case.retval:
                    problems.append(
                        f"API {name}:{case.program}: returned {got[case.program]}, "
                        f"upstream expects {case.retval}"
                    )
        for case in cases:
            if case.message is not None:
                went = _python_api_alone(kernel, objects[case.object], case)
                if went is not None:
                    problems.append(f"API {case.object}:{case.program}: {went}")
        events = _run_plan(kernel, objects, cases)
        runs = [e for e in events if e["step"] == "test_run"]
        assert len(runs) == len(cases)
        for event in runs:
            data = event.get("data") or {}
            if not event["ok"]:
                problems.append(f"[[run.test]] {data.get('program')}: {event['error']}")
        for event in events:
            if event["step"] in ("bpf_load", "bpf_close") and not event["ok"]:
                problems.append(f"{event['step']}: {event['error']}")
    assert not testmod.loaded
    passed = sum(1 for e in runs if e["ok"])
    refused = sum(1 for e in runs if e["ok"] and "rejected" in (e.get("data") or {}))
    summary.append(
        f"{target.release}: bpf_testmod with {len(module.kfuncs)} kfuncs; "
        f"{len(cases)} cases of kfunc_call.c, {passed} as upstream expects "
        f"({refused} refused by the verifier with its words)"
    )
    print("\n".join(summary))
    assert not problems, "\n".join(problems)


def _kfunc_toml(cases: list[KfuncCallCase], module_path: str) -> str:
    """The kfunc.toml a user writes to run ``cases`` with ``kfunc run`` (docs/projects.md)."""
    sources = ", ".join(f'"bpf/progs/{o}.c"' for o in OBJECTS)
    lines = [
        f'[module]\npath = "{module_path}"\n',
        f'[bpf]\nsources = [{sources}]\ninclude = ["bpf"]  # selftests/bpf, as upstream\n',
    ]
    for case in cases:
        test = _as_run_test(case)
        lines += ["[[run.test]]", f"program = {json.dumps(case.program)}",
                  f"object = {json.dumps(case.object)}"]  # fmt: skip
        if test.retval is not None:
            lines.append(f"retval = {test.retval}")
        if test.packet:
            lines.append(f"packet = {json.dumps(test.packet)}")
        if isinstance(test.ctx, dict):
            lines.append("ctx = { " + ", ".join(f"{k} = {v}" for k, v in test.ctx.items()) + " }")
        for key in ("rejected", "log", "error"):
            if getattr(test, key) is not None:
                lines.append(f"{key} = {json.dumps(getattr(test, key))}")
        lines.append("")
    return "\n".join(lines)


@pytest.mark.parametrize("kernel", KERNELS, indirect=True, scope="session")
def test_kfunc_call_with_kfunc_run(kernel: Any, tmp_path: Path) -> None:
    """The same cases as a user runs them: a kfunc.toml beside the selftests (its
    [module] path, [bpf] sources and one [[run.test]] per case), ``kfunc run``'s
    whole path (Project.load, build_project, the plan, the agent), in the same boot."""
    target = kernel.kernel
    tree = _tree(target.series)
    cases = kfunc_call_cases(tree)
    (tmp_path / "bpf").symlink_to(tree.bpf)
    module_path = f"bpf/{tree.testmod.name}"
    if tree.testmod.name == "test_kmods":
        # Its Makefile adds its five modules with $(foreach ...): give bpf_testmod
        # its own two kbuild lines, as docs/projects.md says.
        (tmp_path / "bpf_testmod").symlink_to(selftests.testmod_source(tree).path)
        module_path = "bpf_testmod"
    (tmp_path / "kfunc.toml").write_text(_kfunc_toml(cases, module_path))
    report = run_projects([Project.load(tmp_path)], target.series, session=kernel)
    (project,) = report.projects
    assert project.ok, f"{project.error} ({project.fix})"
    assert [t["program"] for t in project.tests] == [c.program for c in cases]
    assert project.unloaded


# -- host checks of what the test above relies on


def test_pkt_v4_and_pkt_v6_are_the_selftests_bytes(tmp_path: Path) -> None:
    """kfunc's named packets against upstream's own initializers, compiled by the host's
    C compiler from the 6.12 tree's network_helpers.{c,h}."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    require(cc is not None, "no host C compiler")
    tree = _tree("6.12")
    helpers_c = (tree.bpf / "network_helpers.c").read_text()
    helpers_h = (tree.bpf / "network_helpers.h").read_text()

    def block(text: str, start: str) -> str:
        at = text.index(start)
        close = text.index("\n}", at)
        return text[at : text.index(";", close) + 1]

    program = "\n".join([
        "#include <stdio.h>", "#include <linux/if_ether.h>", "#include <linux/ip.h>",
        "#include <linux/ipv6.h>", "#include <linux/tcp.h>", "#include <netinet/in.h>",
        "#define __packed __attribute__((packed))",
        "#define __bpf_constant_htons(x) ((unsigned short)((((x) & 0xff) << 8) | ((x) >> 8)))",
        "#define MAGIC_BYTES 123",
        block(helpers_h, "struct ipv4_packet {"), block(helpers_h, "struct ipv6_packet {"),
        block(helpers_c, "struct ipv4_packet pkt_v4 = {"),
        block(helpers_c, "struct ipv6_packet pkt_v6 = {"),
        "static void hex(const void *p, unsigned long n) {",
        "  for (unsigned long i = 0; i < n; i++) printf(\"%02x\", ((const unsigned char *)p)[i]);",
        "  printf(\"\\n\"); }",
        "int main(void) { hex(&pkt_v4, sizeof(pkt_v4)); hex(&pkt_v6, sizeof(pkt_v6)); }",
    ])  # fmt: skip
    (tmp_path / "pkt.c").write_text(program)
    subprocess.run([cc, "-o", str(tmp_path / "pkt"), str(tmp_path / "pkt.c")], check=True)
    out = subprocess.run([str(tmp_path / "pkt")], capture_output=True, text=True, check=True)
    v4, v6 = out.stdout.split()
    assert PACKETS["pkt_v4"].hex() == v4
    assert PACKETS["pkt_v6"].hex() == v6


def test_the_syscall_ctx_laid_out_from_the_programs_btf(kernel_612: Any) -> None:
    """``ctx = { size = 10 }`` for kfunc_syscall_test is upstream's
    ``struct syscall_test_args { __u8 data[16]; size_t size; }`` with .size = 10."""
    objects = build_progs(kernel_612, ["kfunc_call_test"], build_testmod(kernel_612))
    obj = objects["kfunc_call_test"]
    assert ctx_from_fields(obj, "kfunc_syscall_test", {"size": 10}) == bytes(16) + (10).to_bytes(
        8, "little"
    )
    data = ctx_from_fields(obj, "kfunc_syscall_test", {"data": [1, 2, 3], "size": 3})
    assert data[:4] == b"\x01\x02\x03\x00" and data[16:] == (3).to_bytes(8, "little")
    with pytest.raises(KfuncError, match="has no field 'sise'") as err:
        ctx_from_fields(obj, "kfunc_syscall_test", {"sise": 10})
    assert err.value.fix == "name one of: data, size"
    with pytest.raises(KfuncError, match="does not fit in 8 bytes"):
        ctx_from_fields(obj, "kfunc_syscall_test", {"size": 1 << 64})


def test_plan_of_run_tests_on_the_selftests_objects(kernel_612: Any) -> None:
    """What ``kfunc run`` plans for ``[[run.test]]`` entries, before any boot: the object
    that holds the program, alone for ``SEC("?tc")``, the input as bytes; and the
    errors of a program two objects have, an unknown object or program."""
    objects = build_progs(kernel_612, OBJECTS, build_testmod(kernel_612))
    paths = list(objects.values())
    staged = {p: f"/guest/{p.name}" for p in paths}
    step = plan_test_run(TestRun("kfunc_call_test_get_mem_fail_rdonly", rejected="R0"), paths,
                         staged)  # fmt: skip
    assert (step["path"], step["alone"]) == ("/guest/kfunc_call_fail.o", True)
    step = plan_test_run(TestRun("kfunc_syscall_test", 0, ctx={"size": 10}), paths, staged)
    assert (step["path"], step["alone"]) == ("/guest/kfunc_call_test.o", False)
    assert step["ctx"] == (bytes(16) + (10).to_bytes(8, "little")).hex()
    step = plan_test_run(TestRun("kfunc_call_test1", 10, packet="pkt_v4",
                                 object="kfunc_call_test_subprog"), paths, staged)  # fmt: skip
    assert step["path"] == "/guest/kfunc_call_test_subprog.o"
    assert step["data"] == PACKETS["pkt_v4"].hex()
    with pytest.raises(KfuncError, match="several objects have it") as err:
        plan_test_run(TestRun("kfunc_call_test1", 12), paths, staged)
    assert err.value.fix == 'say which: object = "kfunc_call_test"'
    with pytest.raises(KfuncError, match="no object 'nope'"):
        plan_test_run(TestRun("kfunc_call_test1", 12, object="nope"), paths, staged)
    with pytest.raises(KfuncError, match="no program of that name"):
        plan_test_run(TestRun("kfunc_call_test9", 12), paths, staged)
