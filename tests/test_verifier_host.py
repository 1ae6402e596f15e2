"""Verifier rejections produced by the host kernel's (6.18) verifier, explained.

Each program of tests/data/verifier/*.bpf.c is compiled against the host's
vmlinux.h and loaded through libbpf; the explanation must name the rule, the
instruction and the source line. The same logs go through `kfunc explain`,
as bpftool prints them, and with the ``@ file:line`` suffixes stripped (as
kernels before 6.8 print them), where the object's line info must fill in.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from kfunc.check import read_line_info
from kfunc.clang import compile_bpf
from kfunc.explain import LoadOutcome, explain_with_object, try_load
from kfunc.libbpf import KERNEL_BTF, write_vmlinux_h

DATA = ROOT / "tests" / "data" / "verifier"

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root"),
    pytest.mark.skipif(not KERNEL_BTF.exists(), reason=f"{KERNEL_BTF} missing"),
]

# case -> (rule, the line of the source it is about (a fragment), the verifier's line)
CASES = {
    "task_not_allowed": (
        "kfunc_not_allowed",
        "bpf_task_from_pid(1);",
        "calling kernel function bpf_task_from_pid is not allowed",
    ),
    "no_such_kfunc": (
        "kfunc_not_found",
        None,
        "extern (func ksym) 'bpf_no_such_kfunc': not found in kernel or module BTFs",
    ),
    "task_release_mismatch": (
        "kfunc_proto_mismatch",
        None,
        "extern (func ksym) 'bpf_task_release': func_proto [",
    ),
    "cgroup_wrong_arg": (
        "wrong_argument_type",
        "bpf_cgroup_acquire((struct cgroup *)task);",
        "kernel function bpf_cgroup_acquire args#0 expected pointer to STRUCT cgroup but R1 "
        "has a pointer to STRUCT task_struct",
    ),
    "task_leak": (
        "unreleased_reference",
        "struct task_struct *task = bpf_task_from_pid(1);",
        "Unreleased reference id=2 alloc_insn=1",
    ),
    "task_release_unacquired": (
        "release_unacquired",
        "bpf_task_release(task);",
        "release kernel function bpf_task_release expects refcounted PTR_TO_BTF_ID",
    ),
    "task_no_null_check": ("null_not_checked", None, "R0 invalid mem access 'ptr_or_null_'"),
    "copy_str_not_sleepable": (
        "sleepable_kfunc",
        "bpf_copy_from_user_str(buf, sizeof(buf), task->comm, 0);",
        "program must be sleepable to call sleepable kfunc bpf_copy_from_user_str",
    ),
}


# libbpf refuses these before the kernel sees them
_BEFORE_KERNEL = ("no_such_kfunc", "task_release_mismatch")


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("verifier")
    header = write_vmlinux_h(KERNEL_BTF, out / "vmlinux.h")
    return {
        name: compile_bpf(
            DATA / f"{name}.bpf.c", out / f"{name}.bpf.o", include_dirs=[out], depends=[header]
        )
        for name in CASES
    }


@pytest.fixture(scope="module")
def outcomes(objects: dict[str, Path]) -> dict[str, LoadOutcome]:
    return {name: try_load(obj) for name, obj in objects.items()}


def _source_line(name: str, fragment: str) -> int:
    lines = (DATA / f"{name}.bpf.c").read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if fragment in text)


@pytest.mark.parametrize("name", CASES)
def test_rejection_is_explained(name: str, outcomes: dict[str, LoadOutcome]) -> None:
    rule, fragment, line = CASES[name]
    outcome = outcomes[name]
    assert not outcome.loaded
    x = outcome.explanation
    assert x is not None, outcome.log
    assert x.rule == rule
    assert x.line.startswith(line)
    assert x.fix
    if name not in _BEFORE_KERNEL:
        assert x.program == name
        assert x.insn is not None and x.insn_text
        assert x.source is not None and x.source.file == f"{name}.bpf.c"
    if fragment is not None:
        assert x.source is not None
        assert fragment in x.source.text
        assert x.source.line == _source_line(name, fragment)


def test_explanations_read_plainly(outcomes: dict[str, LoadOutcome]) -> None:
    leak = outcomes["task_leak"].explanation
    assert leak is not None
    assert leak.summary() == (
        "prog 'task_leak': a reference acquired at insn 1 (a KF_ACQUIRE kfunc's result, or an "
        "acquiring helper's: socket lookup, ring buffer reserve, dynptr) is not released on "
        "every path to exit (at insn 1 ((85) call "
        f"{leak.insn_text.split('call ')[1]}), task_leak.bpf.c:12: "
        "struct task_struct *task = bpf_task_from_pid(1);)"
    )
    null = outcomes["task_no_null_check"].explanation
    assert null is not None and null.fields == {"reg": "0"}
    assert null.insn_text is not None and "r0 +" in null.insn_text


def test_old_style_log_takes_lines_from_the_object(
    outcomes: dict[str, LoadOutcome], objects: dict[str, Path]
) -> None:
    """Before 6.8 the verifier's `;` comments have no `@ file:line`: BTF line info fills in."""
    log = re.sub(r" @ \S+:\d+$", "", outcomes["task_leak"].log, flags=re.M)
    assert "@ task_leak" not in log
    x = explain_with_object(log, objects["task_leak"])
    assert x is not None and x.source is not None
    assert (x.source.file, x.source.line) == ("task_leak.bpf.c", 12)
    infos = read_line_info(objects["task_leak"])
    assert list(infos) == ["task_leak"]
    assert infos["task_leak"][0].insn == 0 and infos["task_leak"][0].file == "task_leak.bpf.c"


def _kfunc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kfunc", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip


def test_explain_cli_reads_bpftools_output(objects: dict[str, Path], tmp_path: Path) -> None:
    """bpftool prints libbpf's messages and the log with `libbpf: ` prefixes."""
    bpftool = subprocess.run(
        ["bpftool", "prog", "load", str(objects["task_release_unacquired"]),
         "/sys/fs/bpf/kfunc-test-never-pinned"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bpftool.returncode != 0
    assert "libbpf: " in bpftool.stderr
    out = _kfunc("explain", "-", stdin=bpftool.stderr)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == (
        "error: prog 'task_release_unacquired': bpf_task_release releases a reference, but "
        "its argument was not acquired by this program (or was already released)"
    )
    assert "task_release_unacquired.bpf.c:12: bpf_task_release(task);" in out.stdout
    assert out.stdout.splitlines()[-1].startswith("fix: pass only a pointer returned by")


def test_explain_cli_verbose_and_json(outcomes: dict[str, LoadOutcome], tmp_path: Path) -> None:
    log = tmp_path / "verifier.log"
    log.write_text(outcomes["copy_str_not_sleepable"].log)
    out = _kfunc("-v", "explain", str(log))
    assert out.returncode == 0
    assert "--- verifier log ---" in out.stdout
    assert outcomes["copy_str_not_sleepable"].log.strip().splitlines()[-1] in out.stdout
    out = _kfunc("explain", str(log), "--json")
    import json

    d = json.loads(out.stdout)
    assert d["rule"] == "sleepable_kfunc"
    assert d["source"]["line"] == 14
    unknown = _kfunc("explain", "-", stdin="0: (b7) r0 = 0\nsomething new\n")
    assert unknown.returncode == 1
    assert "no rule explains this log" in unknown.stderr
