"""kfunc.libbpf against the host kernel: real clang, real libbpf, real verifier.

Each BPF program is compiled against a vmlinux.h that kfunc.libbpf generated
from the host's BTF, loaded through BpfObject and test-run.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from kfunc.clang import compile_bpf
from kfunc.errors import BTFError, LibbpfError, VerifierError
from kfunc.libbpf import (
    KERNEL_BTF,
    BpfObject,
    RingBuffer,
    _ctypes,
    dump_vmlinux_h,
    libbpf_version,
    prog_type_by_section,
    write_vmlinux_h,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")
needs_btf = pytest.mark.skipif(
    not KERNEL_BTF.exists(), reason=f"{KERNEL_BTF} missing: kernel built without BTF"
)
pytestmark = [pytest.mark.host, needs_btf]

Builder = Callable[[str, str], Path]

# A syscall program that acquires the task of args->pid through a kfunc,
# reads it and releases it; other tests declare the kfuncs their own way.
TASK_PID_BODY = r"""
struct args {
	int pid;
	int tgid;
};

SEC("syscall")
int task_pid(struct args *args)
{
	struct task_struct *task = bpf_task_from_pid(args->pid);
	int pid;

	if (!task)
		return -1;
	pid = task->pid;
	args->tgid = task->tgid;
	bpf_task_release(task);
	return pid;
}

char LICENSE[] SEC("license") = "GPL";
"""

TASK_PID_C = (
    r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
void bpf_task_release(struct task_struct *p) __ksym;
"""
    + TASK_PID_BODY
)

# Acquires a task and never releases it: the verifier must refuse.
LEAK_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct task_struct *bpf_task_from_pid(s32 pid) __ksym;

SEC("syscall")
int leak(void *ctx)
{
	struct task_struct *task = bpf_task_from_pid(1);

	if (!task)
		return -1;
	return task->pid;
}

char LICENSE[] SEC("license") = "GPL";
"""

UNKNOWN_KFUNC_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern int bpf_no_such_kfunc(int x) __ksym;

SEC("syscall")
int call_unknown(void *ctx)
{
	return bpf_no_such_kfunc(1);
}

char LICENSE[] SEC("license") = "GPL";
"""

# Swaps the Ethernet addresses of an IPv4 frame and bounces it (XDP_TX);
# drops anything else.
XDP_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("xdp")
int xdp_bounce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[6];

	if ((void *)(eth + 1) > data_end)
		return XDP_ABORTED;
	if (eth->h_proto != bpf_htons(0x0800))
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_dest, 6);
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, tmp, 6);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
"""

# Doubles every value of `numbers` into `doubled`, under the same key.
MAPS_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} numbers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} doubled SEC(".maps");

static long double_one(struct bpf_map *map, u32 *key, u64 *value, void *ctx)
{
	u64 twice = *value * 2;

	bpf_map_update_elem(&doubled, key, &twice, BPF_ANY);
	return 0;
}

SEC("syscall")
int double_all(void *ctx)
{
	return bpf_for_each_map_elem(&numbers, double_one, NULL, 0);
}

char LICENSE[] SEC("license") = "GPL";
"""

# Sends `count` events {seq, magic} through a ring buffer.
RINGBUF_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct event {
	u32 seq;
	u32 magic;
};

struct args {
	u32 count;
};

SEC("syscall")
int emit(struct args *args)
{
	struct event e = { .magic = 0xfeedf00d };

	for (u32 i = 0; i < args->count && i < 8; i++) {
		e.seq = i;
		if (bpf_ringbuf_output(&events, &e, sizeof(e), 0))
			return -1;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


# Counts the syscalls of one process while attached.
SYS_ENTER_C = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

int target_tgid;
u64 hits;

SEC("tp_btf/sys_enter")
int BPF_PROG(count_syscalls, struct pt_regs *regs, long id)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		__sync_fetch_and_add(&hits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def vmlinux_h(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The host's vmlinux.h, generated once for the module."""
    return write_vmlinux_h(KERNEL_BTF, tmp_path_factory.mktemp("vmlinux") / "vmlinux.h")


@pytest.fixture
def build(tmp_path: Path, vmlinux_h: Path) -> Builder:
    """Compile a BPF C source (text) against the host's vmlinux.h; returns the object's path."""

    def _build(name: str, source: str) -> Path:
        src = tmp_path / f"{name}.bpf.c"
        src.write_text(source)
        return compile_bpf(
            src, tmp_path / f"{name}.bpf.o", include_dirs=[vmlinux_h.parent], depends=[vmlinux_h]
        )

    return _build


def in_init_pid_namespace() -> bool:
    status = Path("/proc/self/status").read_text()
    nspid = next(line for line in status.splitlines() if line.startswith("NSpid:"))
    return len(nspid.split()) == 2


def test_libbpf_version() -> None:
    assert libbpf_version() >= (1, 0)


@pytest.mark.parametrize(
    ("section", "prog_type"),
    [
        ("syscall", "syscall"),
        ("fentry/do_unlinkat", "tracing"),
        ("tp_btf/sys_enter", "tracing"),
        ("kprobe/do_unlinkat", "kprobe"),
        ("tp/syscalls/sys_enter_unlinkat", "tracepoint"),
        ("xdp", "xdp"),
        ("tc", "sched_cls"),
        ("no_such_section", None),
    ],
)
def test_prog_type_by_section(section: str, prog_type: str | None) -> None:
    assert prog_type_by_section(section) == prog_type


def test_struct_layouts_match_libbpf_1_1() -> None:
    assert ctypes.sizeof(_ctypes.bpf_object_open_opts) == 80
    assert _ctypes.bpf_object_open_opts.btf_custom_path.offset == 48
    assert _ctypes.bpf_object_open_opts.kernel_log_buf.offset == 56
    assert _ctypes.bpf_object_open_opts.kernel_log_size.offset == 64
    assert _ctypes.bpf_object_open_opts.kernel_log_level.offset == 72
    assert ctypes.sizeof(_ctypes.bpf_test_run_opts) == 80
    assert _ctypes.bpf_test_run_opts.retval.offset == 56
    assert _ctypes.bpf_test_run_opts.duration.offset == 64


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
def test_vmlinux_h_matches_bpftool() -> None:
    ours = dump_vmlinux_h(KERNEL_BTF)
    theirs = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(KERNEL_BTF), "format", "c"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if ours != theirs:
        # bpftool 7.1.0 links its own libbpf (from the kernel tree), whose
        # btf_dump writes `f(void)` for an empty parameter list where 1.1.2
        # writes `f()`, and leaves out 1.1.2's `__attribute__((mode(byte)))`
        # on 1-byte enums. Those two renderings are the only difference allowed.
        ours = ours.replace("} __attribute__((mode(byte)));", "};").replace("()", "(void)")
        theirs = theirs.replace("()", "(void)")
    assert ours.splitlines() == theirs.splitlines()


def test_vmlinux_h_shape() -> None:
    text = dump_vmlinux_h()
    assert text.startswith("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n")
    assert (
        "#pragma clang attribute push (__attribute__((preserve_access_index)), "
        "apply_to = record)" in text
    )
    assert "struct task_struct {" in text
    assert text.endswith("#endif /* __VMLINUX_H__ */\n")


def test_vmlinux_h_bad_btf(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.btf"
    bogus.write_bytes(b"\x00" * 64)
    with pytest.raises(BTFError, match=r"bogus\.btf: cannot parse BTF"):
        dump_vmlinux_h(bogus)
    with pytest.raises(BTFError, match="no such file"):
        dump_vmlinux_h(tmp_path / "missing")


def _split_btf(base: Path) -> bytes:
    """Split BTF on top of ``base``: `struct kfunc_split { unsigned int pid; }`.

    Split type ids continue the base's and string offsets its string section.
    """
    btf = _ctypes.btf__parse(bytes(base), None)
    assert btf, f"libbpf cannot parse {base}"
    first_id = _ctypes.btf__type_cnt(btf)
    _ctypes.btf__free(btf)
    base_str_len = struct.unpack_from("<I", base.read_bytes(), 20)[0]
    strings = b"unsigned int\0kfunc_split\0pid\0"
    name = {
        s: base_str_len + strings.index(s.encode()) for s in ("unsigned int", "kfunc_split", "pid")
    }
    btf_kind_int, btf_kind_struct = 1, 4
    types = struct.pack("<IIII", name["unsigned int"], btf_kind_int << 24, 4, 32)
    types += struct.pack("<III", name["kfunc_split"], btf_kind_struct << 24 | 1, 4)
    types += struct.pack("<III", name["pid"], first_id, 0)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_vmlinux_h_of_split_btf(tmp_path: Path) -> None:
    module_btf = tmp_path / "module.btf"
    module_btf.write_bytes(_split_btf(KERNEL_BTF))
    text = dump_vmlinux_h(module_btf, base_btf_path=KERNEL_BTF)
    assert "struct kfunc_split {\n\tunsigned int pid;\n};" in text
    assert "struct task_struct {" in text  # the base's types come along, as with bpftool
    with pytest.raises(BTFError, match=r"module\.btf: cannot parse BTF") as info:
        dump_vmlinux_h(module_btf)
    assert info.value.fix and "base_btf" in info.value.fix


@needs_root
def test_syscall_program_calls_kfuncs(build: Builder) -> None:
    if not in_init_pid_namespace():
        pytest.skip("bpf_task_from_pid() looks pids up in the init pid namespace")
    obj_path = build("task_pid", TASK_PID_C)
    with BpfObject(obj_path) as obj:
        prog = obj.programs["task_pid"]
        assert (prog.name, prog.section, prog.type_name) == ("task_pid", "syscall", "syscall")
        obj.load()
        assert prog.fd >= 0
        pid = os.getpid()
        result = prog.test_run(ctx_in=struct.pack("ii", pid, 0))
        assert result.retval == pid
        assert struct.unpack("ii", result.ctx_out) == (pid, pid)


@needs_root
def test_xdp_test_run(build: Builder) -> None:
    dst, src = bytes.fromhex("0a0b0c0d0e0f"), bytes.fromhex("010203040506")
    payload = bytes(range(50))
    with BpfObject(build("xdp", XDP_C)) as obj:
        obj.load()
        prog = obj.programs["xdp_bounce"]
        assert prog.type_name == "xdp"
        ipv4 = prog.test_run(dst + src + b"\x08\x00" + payload, repeat=3)
        assert ipv4.retval == 3  # XDP_TX
        assert ipv4.data_out == src + dst + b"\x08\x00" + payload
        arp = prog.test_run(dst + src + b"\x08\x06" + payload)
        assert arp.retval == 1  # XDP_DROP


@needs_root
def test_map_round_trip(build: Builder) -> None:
    with BpfObject(build("maps", MAPS_C)) as obj:
        obj.load()
        numbers, doubled = obj.maps["numbers"], obj.maps["doubled"]
        assert (numbers.type_name, numbers.key_size, numbers.value_size) == ("hash", 4, 8)
        for key in (1, 5, 7):
            numbers.update(struct.pack("I", key), struct.pack("Q", key * 10))
        assert numbers.lookup(struct.pack("I", 5)) == struct.pack("Q", 50)
        assert numbers.lookup(struct.pack("I", 2)) is None
        assert sorted(struct.unpack("I", k)[0] for k in numbers) == [1, 5, 7]
        assert obj.programs["double_all"].test_run().retval == 3
        assert doubled.lookup(struct.pack("I", 7)) == struct.pack("Q", 140)
        assert len(list(doubled.keys())) == 16
        with pytest.raises(LibbpfError, match=r"^map 'numbers': key is 8 bytes, the map's is 4"):
            numbers.lookup(struct.pack("Q", 1))


@needs_root
def test_ring_buffer_iterator(build: Builder) -> None:
    with BpfObject(build("ringbuf", RINGBUF_C)) as obj:
        obj.load()
        with RingBuffer(obj.maps["events"]) as ring:
            assert obj.programs["emit"].test_run(ctx_in=struct.pack("I", 3)).retval == 0
            events = [struct.unpack("II", e) for e in ring.events(timeout=0.5)]
        assert events == [(0, 0xFEEDF00D), (1, 0xFEEDF00D), (2, 0xFEEDF00D)]


@needs_root
def test_ring_buffer_callback(build: Builder) -> None:
    seen: list[int] = []

    def on_event(event: bytes) -> None:
        seq, magic = struct.unpack("II", event)
        assert magic == 0xFEEDF00D
        if seq == 1:
            raise RuntimeError("stop at 1")
        seen.append(seq)

    with BpfObject(build("ringbuf", RINGBUF_C)) as obj:
        obj.load()
        ring = RingBuffer(obj.maps["events"], on_event)
        obj.programs["emit"].test_run(ctx_in=struct.pack("I", 3))
        with pytest.raises(RuntimeError, match="stop at 1"):
            ring.poll(timeout=1.0)
        assert ring.consume() == 1  # the event after the one that raised
        assert seen == [0, 2]
    # closing the object freed the ring buffer it owned
    with pytest.raises(LibbpfError, match="ring buffer closed"):
        ring.consume()


class RingEvent(ctypes.Structure):
    _fields_ = [("seq", ctypes.c_uint32), ("magic", ctypes.c_uint32)]


@needs_root
def test_ring_buffer_batch_read_and_decoding(build: Builder) -> None:
    with BpfObject(build("ringbuf", RINGBUF_C)) as obj:
        obj.load()
        emit, events = obj.programs["emit"], obj.maps["events"]
        assert events.max_entries == 4096
        with RingBuffer(events) as ring:
            emit.test_run(ctx_in=struct.pack("I", 5))
            assert ring.read(limit=2) == [struct.pack("II", i, 0xFEEDF00D) for i in (0, 1)]
            assert ring.read() == [struct.pack("II", i, 0xFEEDF00D) for i in (2, 3, 4)]
            assert ring.read() == []
        with RingBuffer(events, event_type=RingEvent) as ring:
            emit.test_run(ctx_in=struct.pack("I", 2))
            assert [(e.seq, e.magic) for e in ring.events(timeout=0.2)] == [
                (0, 0xFEEDF00D), (1, 0xFEEDF00D)
            ]  # fmt: skip
        with RingBuffer(events, event_type="<II") as ring:
            emit.test_run(ctx_in=struct.pack("I", 1))
            assert ring.read() == [(0, 0xFEEDF00D)]
        # libbpf's own reader (a ctypes callback per event) sees the same
        with RingBuffer(events, event_type="<II", reader="libbpf") as ring:
            emit.test_run(ctx_in=struct.pack("I", 3))
            assert ring.read() == [(i, 0xFEEDF00D) for i in range(3)]


@needs_root
def test_ring_buffer_wraps_around(build: Builder) -> None:
    """Records of 16 bytes in a 4096-byte ring: 40 rounds of 8 go round it 1.25 times."""
    with BpfObject(build("ringbuf", RINGBUF_C)) as obj:
        obj.load()
        seen = []
        with RingBuffer(obj.maps["events"], lambda e: seen.append(e[0]), event_type="<II") as ring:
            for _ in range(40):
                obj.programs["emit"].test_run(ctx_in=struct.pack("I", 8))
                assert ring.poll(timeout=1.0) == 8
        assert seen == list(range(8)) * 40


@needs_root
def test_ring_buffer_needs_ringbuf_map(build: Builder) -> None:
    with BpfObject(build("maps", MAPS_C)) as obj:
        obj.load()
        with pytest.raises(LibbpfError, match=r"^map 'numbers': not a ring buffer \(type hash\)"):
            RingBuffer(obj.maps["numbers"])


@needs_root
def test_unreleased_reference_is_rejected(build: Builder, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kfunc.libbpf")
    with BpfObject(build("leak", LEAK_C)) as obj, pytest.raises(LibbpfError) as info:
        obj.load()
    error = info.value
    assert error.message.startswith("prog 'leak': BPF program load failed: ")
    assert error.errno == errno.EINVAL
    assert "Unreleased reference" in error.log
    assert error.log.rstrip().splitlines()[-1].startswith("processed ")
    # libbpf's messages of a failed call are kept, at DEBUG only
    records = [r for r in caplog.records if r.name == "kfunc.libbpf"]
    assert records
    assert all(r.levelno == logging.DEBUG for r in records)


@needs_root
def test_unknown_kfunc_is_a_clear_error(build: Builder) -> None:
    with BpfObject(build("unknown", UNKNOWN_KFUNC_C)) as obj, pytest.raises(LibbpfError) as info:
        obj.load()
    error = info.value
    assert error.message == (
        "extern (func ksym) 'bpf_no_such_kfunc': not found in kernel or module BTFs"
    )
    assert error.errno > 0
    assert error.fix and "__weak" in error.fix


@needs_root
def test_a_refused_program_raises_verifier_error(build: Builder) -> None:
    """The verifier's rejection is a VerifierError naming the program, with the log;
    an extern the kernel lacks (refused by libbpf, before any load) is not one."""
    with BpfObject(build("leak", LEAK_C)) as obj, pytest.raises(VerifierError) as info:
        obj.load()
    assert info.value.program == "leak"
    assert "Unreleased reference" in info.value.log
    with BpfObject(build("unknown", UNKNOWN_KFUNC_C)) as obj, pytest.raises(LibbpfError) as err:
        obj.load()
    assert not isinstance(err.value, VerifierError)


@needs_root
def test_attach_link_lifecycle(build: Builder) -> None:
    if not in_init_pid_namespace():
        pytest.skip("bpf_get_current_pid_tgid() reports init-namespace pids")
    with BpfObject(build("sys_enter", SYS_ENTER_C)) as obj:
        obj.load()
        bss = next(m for m in obj.maps.values() if m.name.endswith(".bss"))
        zero = struct.pack("I", 0)
        bss.update(zero, struct.pack("iiQ", os.getpid(), 0, 0))

        def hits() -> int:
            value = bss.lookup(zero)
            assert value is not None
            return struct.unpack("iiQ", value)[2]

        prog = obj.programs["count_syscalls"]
        with prog.attach() as link:
            for _ in range(5):
                os.getppid()
            assert hits() >= 5
        link.destroy()  # idempotent
        detached = hits()
        for _ in range(5):
            os.getppid()
        assert hits() == detached

        left_attached = prog.attach()
    assert repr(left_attached).endswith("destroyed>")  # closing the object destroyed it


@needs_root
def test_attach_failure_names_the_program(build: Builder) -> None:
    with BpfObject(build("task_pid", TASK_PID_C)) as obj:
        obj.load()
        # syscall programs have nothing to attach to
        with pytest.raises(LibbpfError, match=r"^prog 'task_pid': ") as info:
            obj.programs["task_pid"].attach()
        assert info.value.errno > 0
    with pytest.raises(LibbpfError, match="already closed"):
        obj.programs["task_pid"].test_run()


@needs_root
def test_autoload_off_and_not_loaded(build: Builder) -> None:
    with BpfObject(build("leak", LEAK_C)) as obj:
        prog = obj.programs["leak"]
        prog.autoload = False
        obj.load()  # the leaking program is not loaded, so nothing fails
        with pytest.raises(LibbpfError, match=r"^prog 'leak': not loaded"):
            prog.test_run()


def test_missing_object_file(tmp_path: Path) -> None:
    with pytest.raises(LibbpfError, match="no such file") as info:
        BpfObject(tmp_path / "nope.o")
    assert info.value.errno == errno.ENOENT


def test_not_an_elf_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"not an ELF file")
    with pytest.raises(LibbpfError) as info:
        BpfObject(junk)
    assert info.value.errno > 0
    assert "junk.o" in info.value.message
