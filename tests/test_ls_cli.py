"""``kfunc ls``, ``kfunc header`` and ``kfunc diff`` as a user runs them: output,
exit codes, one-line errors; a generated header compiled by clang and loaded
into the host kernel."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, modules_dir
from test_libbpf_host import TASK_PID_BODY

from kfunc.clang import compile_bpf
from kfunc.kernels.target import Kernel
from kfunc.libbpf import BpfObject, write_vmlinux_h

SYS_VMLINUX = Path("/sys/kernel/btf/vmlinux")
needs_btf = pytest.mark.skipif(not SYS_VMLINUX.exists(), reason=f"{SYS_VMLINUX} missing")


def kfunc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kfunc", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def one_line_error(out: subprocess.CompletedProcess[str], expected: str) -> None:
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and expected in errors[0], out.stderr
    assert all(line.startswith(("error: ", "fix: ", "✓", "✗")) for line in lines), out.stderr


@needs_btf
def test_ls_host_json_and_table() -> None:
    out = kfunc("ls", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    acquire = next(k for k in listed if k["name"] == "bpf_task_acquire")
    assert acquire == {
        "name": "bpf_task_acquire",
        "prototype": "struct task_struct *bpf_task_acquire(struct task_struct *p)",
        "owner": "vmlinux",
        "flags": None,
        "sets": [],
        "source": "decl_tag",
    }
    table = kfunc("ls", "--btf", str(SYS_VMLINUX))
    assert table.returncode == 0
    rows = table.stdout.splitlines()
    assert rows[0].split() == ["NAME", "OWNER", "FLAGS", "PROTOTYPE"]
    assert len(rows) == len(listed) + 1
    row = next(r for r in rows if r.startswith("bpf_task_acquire "))
    assert row.split(None, 3)[1:] == ["vmlinux", "-", acquire["prototype"]]
    assert f"{len(listed)} kfunc(s) in {SYS_VMLINUX}" in table.stderr


def test_ls_kernel_61_scan_and_modules(kernel_61: Kernel) -> None:
    out = kfunc("ls", "--kernel", "6.1", "--json")
    assert out.returncode == 0, out.stderr
    by_name = {k["name"]: k for k in json.loads(out.stdout)}
    # vmlinux kfuncs found by scanning .BTF_ids (the extracted vmlinux has no symbols)
    assert by_name["crash_kexec"]["owner"] == "vmlinux"
    assert by_name["crash_kexec"]["flags"] == ["KF_DESTRUCTIVE"]
    assert by_name["crash_kexec"]["sets"][0].startswith(".BTF_ids+0x")
    # ... and module kfuncs, from the modules' own sets.
    assert by_name["bpf_ct_release"]["owner"] == "nf_conntrack"
    assert by_name["bpf_ct_release"]["flags"] == ["KF_RELEASE"]
    assert by_name["bpf_ct_release"]["sets"] == ["nf_ct_kfunc_set"]
    only = kfunc("ls", "--kernel", "6.1", "--module", "nf_conntrack", "--json")
    assert {k["owner"] for k in json.loads(only.stdout)} == {"nf_conntrack"}


def test_ls_ko(hello_612: object, kernel_612: Kernel) -> None:
    ko = modules_dir(kernel_612) / "net/netfilter/nf_conntrack.ko.xz"
    out = kfunc("ls", "--ko", str(ko), "--base", str(kernel_612.vmlinux))
    assert out.returncode == 0, out.stderr
    row = next(r for r in out.stdout.splitlines() if r.startswith("bpf_ct_insert_entry "))
    assert row.split()[1:3] == ["nf_conntrack", "KF_ACQUIRE|KF_RELEASE|KF_RET_NULL"]


def test_diff_61_612(kernel_61: Kernel, kernel_612: Kernel) -> None:
    out = kfunc("diff", "6.1", "6.12")
    assert out.returncode == 0, out.stderr
    assert "helpers" in out.stdout
    assert "  + struct task_struct *bpf_task_acquire(struct task_struct *p)  (vmlinux)" in (
        out.stdout
    )
    as_json = json.loads(kfunc("diff", "6.1", "6.12", "--json").stdout)
    assert (as_json["old"]["helpers"], as_json["new"]["helpers"]) == (210, 212)
    assert "bpf_task_acquire" in {k["name"] for k in as_json["added"]}
    assert "bpf_kfunc_call_test_acquire" in {k["name"] for k in as_json["removed"]}
    summary = next(line for line in out.stdout.splitlines() if line.startswith("kfuncs: "))
    assert summary == (
        f"kfuncs: {len(as_json['added'])} added, {len(as_json['removed'])} removed, "
        f"{len(as_json['prototype_changed'])} prototype changed, "
        f"{len(as_json['flags_changed'])} flags changed, {len(as_json['moved'])} moved"
    )


# --- a header from `kfunc header`, compiled and loaded ------------------------------

CALLER_C = (
    r"""
#include "vmlinux.h"
#include "kfuncs.h"
"""
    + TASK_PID_BODY
)


@needs_btf
@pytest.mark.host
@pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")
@pytest.mark.parametrize("weak", [False, True])
def test_header_compiles_and_loads(tmp_path: Path, weak: bool) -> None:
    status = Path("/proc/self/status").read_text()
    if len(next(x for x in status.splitlines() if x.startswith("NSpid:")).split()) != 2:
        pytest.skip("bpf_task_from_pid() looks pids up in the init pid namespace")
    write_vmlinux_h(SYS_VMLINUX, tmp_path / "vmlinux.h")
    # The whole header (every kfunc of the host) must compile, not just the two used.
    out = kfunc("header", "-o", str(tmp_path / "kfuncs.h"), *(["--weak"] * weak))
    assert out.returncode == 0, out.stderr
    header = (tmp_path / "kfuncs.h").read_text()
    assert "extern void bpf_task_release(struct task_struct *p) " in header
    (tmp_path / "caller.bpf.c").write_text(
        CALLER_C.replace('"vmlinux.h"', '"vmlinux.h"\n#include <bpf/bpf_helpers.h>')
    )
    obj_path = compile_bpf(tmp_path / "caller.bpf.c", include_dirs=[tmp_path])
    with BpfObject(obj_path) as obj:
        obj.load()
        pid = os.getpid()
        result = obj.programs["task_pid"].test_run(ctx_in=struct.pack("ii", pid, 0))
        assert result.retval == pid
        assert struct.unpack("ii", result.ctx_out) == (pid, pid)


@needs_btf
def test_header_selected_kfuncs() -> None:
    out = kfunc("header", "--kfunc", "bpf_task_acquire", "--kfunc", "bpf_task_release")
    assert out.returncode == 0
    externs = [line for line in out.stdout.splitlines() if line.startswith("extern ")]
    assert externs == [
        "extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;",
        "extern void bpf_task_release(struct task_struct *p) __ksym;",
    ]
    one_line_error(kfunc("header", "--kfunc", "bpf_no_such"), "no kfunc bpf_no_such")


# --- bad input ------------------------------------------------------------------------


@needs_btf
def test_truncated_btf(tmp_path: Path) -> None:
    bad = tmp_path / "truncated.btf"
    bad.write_bytes(SYS_VMLINUX.read_bytes()[:5000])
    one_line_error(kfunc("ls", "--btf", str(bad)), "runs past the end")


def test_not_an_elf(tmp_path: Path) -> None:
    bad = tmp_path / "notes.ko"
    bad.write_text("this is not an ELF file, nor BTF\n")
    one_line_error(kfunc("ls", "--ko", str(bad), "--base", str(bad)), "bad magic")
    elf = tmp_path / "broken.ko"
    elf.write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 9)
    one_line_error(kfunc("ls", "--ko", str(elf)), "malformed ELF file")
    one_line_error(kfunc("ls", "--btf", str(tmp_path / "missing")), "no such file")


@needs_btf
def test_module_not_loaded() -> None:
    # The fix once went where BTFError's offset belongs: "Unknown format code 'x'".
    for command in ("ls", "header"):
        out = kfunc(command, "--module", "nosuch")
        one_line_error(out, "no BTF for module 'nosuch'")
        assert "fix: load it first" in out.stderr


def test_unknown_kernel() -> None:
    one_line_error(kfunc("ls", "--kernel", "9.9"), "kernel '9.9': unknown")
    one_line_error(kfunc("diff", "9.9", "6.12"), "kernel '9.9': unknown")


def test_base_without_split() -> None:
    one_line_error(kfunc("ls", "--base", "x"), "--base")
