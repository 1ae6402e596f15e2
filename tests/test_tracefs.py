"""kfunc.tracefs: the trace line parser on literal lines, and the real trace_pipe."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from kfunc.tracefs import (
    TRACEFS,
    TraceLine,
    TracePipe,
    ensure_tracefs,
    parse_trace_line,
    tracefs_mounted,
    unmount_tracefs,
)


def test_parse_bpf_trace_printk_line() -> None:
    line = (
        "            node-9523    [004] ...21  7520.587718: bpf_trace_printk: "
        "BPF triggered do_unlinkat from PID 9523. Result: 10"
    )
    assert parse_trace_line(line) == TraceLine(
        task="node",
        pid=9523,
        cpu=4,
        flags="...21",
        timestamp=7520.587718,
        message="bpf_trace_printk: BPF triggered do_unlinkat from PID 9523. Result: 10",
    )


@pytest.mark.parametrize(
    ("line", "task", "pid", "cpu", "flags", "message"),
    [
        # 4-column flags of older kernels, a dash in the task name
        (
            "  kworker/u8:1-events-77  [001] d...   12.000001: bpf_trace_printk: hi\n",
            "kworker/u8:1-events",
            77,
            1,
            "d...",
            "bpf_trace_printk: hi",
        ),
        # unknown comm, as trace_pipe prints it for exited tasks
        (
            "           <...>-8780    [001] ...1.   691.614343: tracing_mark_write: hello",
            "<...>",
            8780,
            1,
            "...1.",
            "tracing_mark_write: hello",
        ),
        # the record-tgid option adds a (tgid) column
        (
            "   bash-1977    (   1977) [000] .....   17.2: bpf_trace_printk: x",
            "bash",
            1977,
            0,
            ".....",
            "bpf_trace_printk: x",
        ),
        # without the irq-info option there is no flags column; spaces in comm
        (
            "   my task-5 [003]   1.500000: bpf_trace_printk: 3.14: not a timestamp",
            "my task",
            5,
            3,
            "",
            "bpf_trace_printk: 3.14: not a timestamp",
        ),
    ],
)
def test_parse_variants(line: str, task: str, pid: int, cpu: int, flags: str, message: str) -> None:
    parsed = parse_trace_line(line)
    assert parsed is not None
    assert (parsed.task, parsed.pid, parsed.cpu, parsed.flags, parsed.message) == (
        task,
        pid,
        cpu,
        flags,
        message,
    )


@pytest.mark.parametrize(
    "line",
    ["# tracer: nop", "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION", "", "garbage"],
)
def test_non_trace_lines(line: str) -> None:
    assert parse_trace_line(line) is None


def _tracefs_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "mounting tracefs and reading trace_pipe need root"
    filesystems = Path("/proc/filesystems").read_text().split()
    if "tracefs" not in filesystems:
        return "the host kernel has no tracefs (CONFIG_FTRACE off)"
    return None


needs_tracefs = pytest.mark.skipif(
    _tracefs_skip_reason() is not None, reason=_tracefs_skip_reason() or ""
)


@pytest.fixture
def tracefs() -> Iterator[Path]:
    """tracefs mounted for the test; unmounted after if the test mounted it."""
    mounted_here = ensure_tracefs()
    try:
        yield TRACEFS
    finally:
        if mounted_here:
            unmount_tracefs()


@pytest.mark.host
@needs_tracefs
def test_ensure_tracefs_reports_who_mounted(tracefs: Path) -> None:
    assert tracefs_mounted(tracefs)
    assert ensure_tracefs() is False  # already there: not ours to unmount
    assert (tracefs / "trace_pipe").exists()


def _drain(pipe: TracePipe) -> None:
    for _ in pipe.lines(timeout=0.05):
        pass


@pytest.mark.host
@needs_tracefs
def test_trace_pipe_reads_marker_lines(tracefs: Path) -> None:
    with TracePipe() as pipe:
        _drain(pipe)
        assert pipe.readline(timeout=0.1) is None
        marker = f"kfunc test marker {os.getpid()}"
        (tracefs / "trace_marker").write_text(marker + "\n")
        first = pipe.readline(timeout=0)  # timeout 0 still reads what is there
        assert first is not None and first.endswith(marker)
        (tracefs / "trace_marker").write_text(marker + "\n")
        parsed = [parse_trace_line(line) for line in pipe.lines(timeout=1.0)]
    mine = [p for p in parsed if p and p.message == f"tracing_mark_write: {marker}"]
    assert len(mine) == 1
    assert mine[0].timestamp > 0


PRINTK_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("syscall")
int say(int *value)
{
	bpf_printk("kfunc says: Result: %d", *value);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.host
@needs_tracefs
@pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed")
def test_bpf_printk_reaches_trace_pipe(tracefs: Path, tmp_path: Path) -> None:
    from kfunc.clang import compile_bpf
    from kfunc.libbpf import KERNEL_BTF, BpfObject, write_vmlinux_h

    vmlinux_h = write_vmlinux_h(KERNEL_BTF, tmp_path / "vmlinux.h")
    src = tmp_path / "printk.bpf.c"
    src.write_text(PRINTK_C)
    obj_path = compile_bpf(src, include_dirs=[tmp_path], depends=[vmlinux_h])
    with TracePipe() as pipe, BpfObject(obj_path) as obj:
        _drain(pipe)
        obj.load()
        obj.programs["say"].test_run(ctx_in=struct.pack("i", 10))
        parsed = [parse_trace_line(line) for line in pipe.lines(timeout=1.0)]
    said = [p for p in parsed if p and p.message.endswith("kfunc says: Result: 10")]
    assert len(said) == 1
    assert said[0].message.startswith("bpf_trace_printk: ")
    assert said[0].pid > 0
