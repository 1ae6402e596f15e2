"""``kfunc bench calls``: what a kfunc call costs, beside a helper, a subprogram, inline code.

One tc program per kind of call, each looping ``LOOP`` times over the call,
run with ``BPF_PROG_TEST_RUN`` and ``repeat``: the kernel reports the mean
time of a run, so a call costs (run time - the inline loop's run time) / LOOP
more than inline code. The kfunc is a vmlinux one on the host
(``bpf_preempt_disable``/``enable``, callable from every program type since
6.10, timed as one pair) and a module's own in a VM (``callbench_add``, from a
module kfunc builds for the target).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from kfunc.build import build_project
from kfunc.cache import cache_dir
from kfunc.clang import compile_bpf
from kfunc.codegen import write_if_changed
from kfunc.kernels.target import Kernel
from kfunc.libbpf.vmlinux_h import write_vmlinux_h
from kfunc.progress import Progress
from kfunc.project import Project

__all__ = ["CallCost", "bench_host", "bench_module"]

LOOP = 1000
KINDS = ("inline", "subprog", "helper", "kfunc")

_PROGRAM = """\
// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
%(kfunc_decl)s

char LICENSE[] SEC("license") = "GPL";

static __noinline u64 add(u64 a, u64 b)
{
	return a + b;
}

/* The empty asm keeps clang from folding the loop: every kind runs it all. */
#define LOOP_OVER(body)					\\
	u64 acc = skb->len;				\\
	for (int i = 0; i < %(loop)d; i++) {		\\
		body;					\\
		asm volatile("" : "+r"(acc));		\\
	}						\\
	return acc & 1;

SEC("tc") int inline_(struct __sk_buff *skb) { LOOP_OVER(acc = acc + i) }
SEC("tc") int subprog(struct __sk_buff *skb) { LOOP_OVER(acc = add(acc, i)) }
SEC("tc") int helper(struct __sk_buff *skb) { LOOP_OVER(acc += bpf_get_prandom_u32()) }
SEC("tc") int kfunc(struct __sk_buff *skb) { LOOP_OVER(%(kfunc_call)s) }
"""

_HOST_KFUNC = (
    "extern void bpf_preempt_disable(void) __ksym;\nextern void bpf_preempt_enable(void) __ksym;",
    "bpf_preempt_disable(); bpf_preempt_enable(); acc += i",
)
_MODULE_KFUNC = ('#include "callbench_kfuncs.h"', "acc = callbench_add(acc, i)")

_SPEC = """\
[module]
name = "callbench"
description = "A kfunc to time calls with"
prog_types = ["sched_cls"]

[[kfunc]]
name = "callbench_add"
proto = "u64 callbench_add(u64 a, u64 b)"
body = "return a + b;"
"""


@dataclass(frozen=True)
class CallCost:
    kind: str  # inline, subprog, helper, kfunc
    run_ns: float  # mean time of one run of LOOP iterations
    call_ns: float  # per iteration, over the inline loop
    what: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _source(kfunc: tuple[str, str]) -> str:
    return _PROGRAM % {"kfunc_decl": kfunc[0], "kfunc_call": kfunc[1], "loop": LOOP}


def _costs(runs: dict[str, float], kfunc_what: str) -> list[CallCost]:
    base = runs["inline_"]
    what = {
        "inline": "a + b, in line",
        "subprog": "a __noinline BPF subprogram",
        "helper": "bpf_get_prandom_u32()",
        "kfunc": kfunc_what,
    }
    return [
        CallCost(kind, runs[prog], (runs[prog] - base) / LOOP, what[kind])
        for kind, prog in zip(KINDS, ("inline_", "subprog", "helper", "kfunc"), strict=True)
    ]


_PACKET = bytes(12) + b"\x08\x00" + bytes(50)


def bench_host(repeat: int = 2000) -> list[CallCost]:
    """Time the calls in the running kernel (needs root and a 6.10+ kernel)."""
    from kfunc.libbpf import BpfObject

    with tempfile.TemporaryDirectory(prefix="kfunc-bench-") as tmp:
        src = Path(tmp) / "calls.bpf.c"
        src.write_text(_source(_HOST_KFUNC))
        header = write_vmlinux_h(Path("/sys/kernel/btf/vmlinux"), Path(tmp) / "vmlinux.h")
        obj_path = compile_bpf(src, include_dirs=[header.parent])
        with BpfObject(obj_path) as obj:
            obj.load()
            runs = {
                name: float(prog.test_run(data_in=_PACKET, repeat=repeat).duration)
                for name, prog in obj.programs.items()
            }
    return _costs(runs, "bpf_preempt_disable() + bpf_preempt_enable(), a vmlinux pair")


def bench_module(
    kernel: Kernel, repeat: int = 2000, progress: Progress | None = None
) -> list[CallCost]:
    """Time the calls in ``kernel`` in a VM (a kept one if up), with a module kfunc."""
    from kfunc.vm import protocol as proto
    from kfunc.vm.keeper import find_kept
    from kfunc.vm.session import GuestSession

    # A fixed place, so that kbuild and clang reuse what they built last time.
    project_dir = cache_dir("callbench") / "callbench"
    write_if_changed(project_dir / "kfunc.toml", _SPEC)
    write_if_changed(project_dir / "calls.bpf.c", _source(_MODULE_KFUNC))
    built = build_project(Project.load(project_dir), kernel, progress)
    assert built.module is not None
    steps: list[proto.Op] = [
        proto.Insmod(path=str(built.module.ko), name="callbench"),
        proto.BpfLoad(path=str(built.objects[0])),
    ]
    steps += [
        proto.TestRun(program=name, data=_PACKET.hex(), repeat=repeat)
        for name in ("inline_", "subprog", "helper", "kfunc")
    ]
    steps += [proto.BpfUnload(always=True), proto.Rmmod(name="callbench", always=True)]
    kept = find_kept(kernel)
    if kept is not None:
        events = kept.client.run_steps(steps, timeout=300)
    else:
        with GuestSession(kernel) as session:
            events = session.run_steps(steps, timeout=300)
    failed = next((e for e in events if not e["ok"]), None)
    if failed is not None:
        from kfunc.errors import GuestError

        raise GuestError(f"bench calls: {failed['error']}", failed.get("kernel_log"))
    runs = {e["data"]["program"]: float(e["data"]["duration_ns"]) for e in events
            if e["step"] == proto.TestRun.op}  # fmt: skip
    return _costs(runs, "callbench_add(a, b), a module kfunc")
