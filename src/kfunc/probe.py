"""Ask a kernel's own verifier which program types may call which kfunc.

Which program types may call a kfunc is not in BTF: it lives in the kernel's
``register_btf_kfunc_id_set()`` calls (and their filters). :func:`probe_kernel`
boots the target once and tries a minimal caller of each kfunc from one
program type per kfunc hook, and records what the verifier accepted:

- On the host, clang compiles one object with a tiny program per kfunc
  (``kfunc(0, 0, ...); return 0;``); its call instruction is patched into a
  kfunc call (``BPF_PSEUDO_KFUNC_CALL`` with the kfunc's BTF id in the
  target's vmlinux, which is the guest's ``/sys/kernel/btf/vmlinux``).
- In the guest (:func:`run_probe`, an agent step), each program is loaded
  with ``BPF_PROG_LOAD`` as each program type. The verifier checks that the
  kfunc is registered for the program's hook before anything else (in
  ``check_kfunc_call()``): "calling kernel function X is not allowed" means
  no; a load that passes that check means yes, whatever it fails on next
  (NULL arguments, mostly).

kfuncs in the same ID sets were registered alike, so by default one kfunc of
each combination of sets is tried (a few hundred loads), and its answer
stands for the others. The answer is cached per kernel (``kfunc_probe.json``
in its cache directory) and read by ``kfunc check``.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfunc.kernel_api.hooks import PROG_TYPE_HOOK, hook_prog_types

if TYPE_CHECKING:
    from kfunc.kernels.target import Kernel
    from kfunc.progress import Progress

__all__ = ["PROBE_TYPES", "ProbeResult", "load_probe", "probe_kernel", "run_probe"]

CACHE_FILE = "kfunc_probe.json"
_CACHE_VERSION = 1

#: What loading a minimal program of a type needs besides the type: its expected
#: attach type. Tracing programs attach to the sys_enter raw tracepoint (tp_btf):
#: they need no trampoline.
_EXPECTED_ATTACH = {
    "tracing": "BPF_TRACE_RAW_TP",
    "cgroup_skb": "BPF_CGROUP_INET_INGRESS",
    "sk_skb": "BPF_SK_SKB_STREAM_VERDICT",
    "netfilter": "BPF_NETFILTER",
}
#: Hooks not probed: a struct_ops program loads only with a struct_ops map, and
#: the common hook is no program type's own.
_UNPROBED_HOOKS = ("STRUCT_OPS", "COMMON")
#: Program types that joined a hook, probed on their own to see that for real.
_JOINED_PROBED = ("tracepoint",)


def _probe_types() -> tuple[tuple[str, str, str | None, str], ...]:
    firsts = [t for h, t in hook_prog_types().items() if h not in _UNPROBED_HOOKS]
    return tuple(
        (t, f"BPF_PROG_TYPE_{t.upper()}", _EXPECTED_ATTACH.get(t), PROG_TYPE_HOOK[t].hook)
        for t in [*firsts, *_JOINED_PROBED]
    )


#: One program type per kfunc hook of :data:`kfunc.kernel_api.hooks.PROG_TYPE_HOOK`
#: (the first that has it), and ``tracepoint``: (libbpf name, BPF_PROG_TYPE_*,
#: expected attach type BPF_* or None, kfunc hook).
PROBE_TYPES = _probe_types()
_TRACE_TARGET = "btf_trace_sys_enter"
_BPF_PSEUDO_KFUNC_CALL = 2
_BPF_F_SLEEPABLE = 1 << 4
_SYS_BPF = 321  # x86_64
_BPF_PROG_LOAD = 5
_LOG_SIZE = 1 << 16


@dataclass(frozen=True)
class ProbeResult:
    """What a kernel's verifier accepted: ``allowed[kfunc][prog_type]``.

    ``probed`` names the kfuncs actually tried (the others took the answer of
    a kfunc in the same sets); ``loads`` is the number of BPF_PROG_LOADs.
    """

    kernel: str
    allowed: dict[str, dict[str, bool]]
    probed: tuple[str, ...]
    loads: int
    seconds: float
    guest_seconds: float
    load_seconds: float = 0.0  # of the guest's time, the loads themselves
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _CACHE_VERSION,
            "kernel": self.kernel,
            "allowed": self.allowed,
            "probed": list(self.probed),
            "loads": self.loads,
            "seconds": self.seconds,
            "guest_seconds": self.guest_seconds,
            "load_seconds": self.load_seconds,
        }

    def prog_types(self, kfunc: str) -> list[str]:
        return sorted(t for t, ok in self.allowed.get(kfunc, {}).items() if ok)


def _read_cache(kernel: Kernel) -> ProbeResult | None:
    path = kernel.path / CACHE_FILE
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    if d.get("version") != _CACHE_VERSION:
        return None
    return ProbeResult(
        d["kernel"],
        d["allowed"],
        tuple(d["probed"]),
        d["loads"],
        d["seconds"],
        d["guest_seconds"],
        d.get("load_seconds", 0.0),
        cached=True,
    )


def load_probe(kernel: Kernel) -> dict[str, dict[str, bool]] | None:
    """The cached probe of ``kernel`` (``allowed[kfunc][prog_type]``), None if never probed."""
    result = _read_cache(kernel)
    return None if result is None else result.allowed


# --- host side --------------------------------------------------------------------


def _caller_source(kfuncs: list[tuple[str, int]]) -> str:
    from kfunc.btf.render import ksym_declaration

    lines = ["/* Generated by kfunc probe: one minimal caller per kfunc. */",
             '#define SEC(n) __attribute__((section(n), used))',
             '#define __ksym __attribute__((section(".ksyms")))', ""]  # fmt: skip
    for i, (name, nargs) in enumerate(kfuncs):
        params = ", ".join(["long"] * nargs) or "void"
        lines.append(ksym_declaration(f"long {name}({params})"))
        args = ", ".join(["0"] * nargs)
        lines.append(f'SEC("probe/{i}") int probe_{i}(void *ctx) {{ {name}({args}); return 0; }}')
    lines.append('char LICENSE[] SEC("license") = "GPL";')
    return "\n".join(lines) + "\n"


def _programs(obj: Path, ids: dict[str, int]) -> list[dict[str, Any]]:
    """Each program of the compiled object, with its kfunc call patched."""
    # Host side only, like _plan's imports: the guest imports this module for
    # run_probe and needs no ELF reader.
    from kfunc.check.bpf_object import read_bpf_object

    bpf = read_bpf_object(obj, require_btf=False)
    out = []
    for section, code in bpf.code.items():
        if not section.startswith("probe/"):
            continue
        insns = bytearray(code)
        name = None
        for r in bpf.relocations:
            if r.section != section or r.symbol not in ids:
                continue
            insns[r.offset + 1] = (_BPF_PSEUDO_KFUNC_CALL << 4) | (insns[r.offset + 1] & 0x0F)
            struct.pack_into("<hi", insns, r.offset + 2, 0, ids[r.symbol])
            name = r.symbol
        if name is not None:
            out.append({"kfunc": name, "insns": bytes(insns).hex()})
    return out


def _plan(
    kernel: Kernel, everything: bool, workdir: Path
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The probe plan for the guest, and the kfunc groups (representative -> kfuncs)."""
    from kfunc.btf import types as bt
    from kfunc.clang import compile_bpf
    from kfunc.elf import ElfObject
    from kfunc.inventory import VMLINUX, kernel_inventory
    from kfunc.kernels.facts import kfunc_hooks

    inventory = [k for k in kernel_inventory(kernel).kfuncs if k.owner == VMLINUX]
    groups: dict[str, list[str]] = {}
    by_sets: dict[tuple[str, ...], str] = {}
    for k in inventory:
        key = (k.name,) if everything or not k.sets else k.sets
        rep = by_sets.setdefault(key, k.name)
        groups.setdefault(rep, []).append(k.name)
    btf = ElfObject(kernel.vmlinux).btf()
    ids, callers = {}, []
    for rep in groups:
        func = btf.find(rep, bt.Func)
        if func is None:
            continue
        proto = btf[func.type]
        assert isinstance(proto, bt.FuncProto)
        ids[rep] = func.id
        callers.append((rep, len(proto.params)))
    enums: dict[str, int] = {}
    for enum_name in ("bpf_prog_type", "bpf_attach_type"):
        enum = btf.find(enum_name, bt.Enum)
        if enum is not None:
            enums.update({v.name: v.value for v in enum.values})
    trace = btf.find(_TRACE_TARGET, bt.Typedef)
    hooks = kfunc_hooks(kernel)
    types = []
    for name, ptype, attach, hook in PROBE_TYPES:
        if ptype not in enums or (attach is not None and attach not in enums):
            continue
        if hooks is not None and hook not in hooks and name != "tracepoint":
            continue  # no hook: nothing but the common set can be called; not worth a load
        types.append({
            "name": name, "prog_type": enums[ptype],
            "expected_attach_type": enums[attach] if attach else 0,
            "attach_btf_id": trace.id if name == "tracing" and trace else 0,
            # "Syscall programs can only be sleepable" (check_attach_btf_id())
            "prog_flags": _BPF_F_SLEEPABLE if name == "syscall" else 0,
        })  # fmt: skip
    src = workdir / "probe.bpf.c"
    src.write_text(_caller_source(callers))
    obj = compile_bpf(src, workdir / "probe.bpf.o", extra_flags=["-Wno-everything"])
    plan = {"programs": _programs(obj, ids), "types": types}
    return plan, groups


def probe_kernel(
    kernel: Kernel,
    progress: Progress | None = None,
    *,
    refresh: bool = False,
    everything: bool = False,
    timeout: float = 300.0,
) -> ProbeResult:
    """What ``kernel``'s verifier accepts, from the cache or from one boot.

    With ``everything``, every vmlinux kfunc is tried rather than one per
    combination of ID sets.
    """
    import shutil
    import tempfile

    from kfunc.errors import LostVMError
    from kfunc.progress import Progress
    from kfunc.vm.bundle import agent_argv
    from kfunc.vm.guest import Guest
    from kfunc.vm.protocol import ProbeKfuncs, encode_steps

    progress = progress or Progress()
    if not refresh:
        cached = _read_cache(kernel)
        if cached is not None:
            return cached
    t0 = time.monotonic()
    rundir = Path(tempfile.mkdtemp(prefix="kfunc-probe-"))
    try:
        with progress.step(f"probe: minimal kfunc callers for {kernel.version}, clang") as step:
            plan, groups = _plan(kernel, everything, rundir)
            step.summary = (
                f"probe: {len(plan['programs'])} caller(s) x {len(plan['types'])} program "
                f"type(s) compiled"
            )
        steps = [ProbeKfuncs(out=str(rundir / "probe-result.json"), **plan)]
        (rundir / "plan.json").write_text(json.dumps({"steps": encode_steps(steps)}))
        argv = agent_argv(str(rundir / "plan.json"))
        t1 = time.monotonic()
        with progress.step(f"probe: boot {kernel.release} and ask its verifier") as step:
            Guest(kernel, timeout=timeout).run(argv, rundir)
            guest_seconds = time.monotonic() - t1
            step.summary = f"probe: guest {kernel.release} booted, loaded, powered off"
        out = rundir / "probe-result.json"
        if not out.exists():
            raise LostVMError(
                f"guest {kernel.release}: the probe wrote no result",
                [],
                "rerun with --verbose to see the guest's console",
            )
        raw = json.loads(out.read_text())
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    allowed: dict[str, dict[str, bool]] = {}
    for rep, by_type in raw["allowed"].items():
        expanded = _expand(by_type)
        for name in groups.get(rep, [rep]):
            allowed[name] = expanded
    result = ProbeResult(
        str(kernel.version),
        allowed,
        tuple(sorted(raw["allowed"])),
        raw["loads"],
        round(time.monotonic() - t0, 2),
        round(guest_seconds, 2),
        raw.get("seconds", 0.0),
    )
    tmp = kernel.path / f".{CACHE_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps(result.to_dict()) + "\n")
    os.replace(tmp, kernel.path / CACHE_FILE)
    return result


def _expand(by_type: dict[str, bool | None]) -> dict[str, bool]:
    """A verdict per probed type -> one per program type of the same kfunc hook."""
    out: dict[str, bool] = {}
    hook_verdict = {}
    for name, verdict in by_type.items():
        if verdict is None:
            continue
        out[name] = verdict
        hook = PROG_TYPE_HOOK[name].hook
        if name not in _JOINED_PROBED:
            hook_verdict[hook] = verdict
    for ptype, entry in PROG_TYPE_HOOK.items():
        hook = entry.hook
        if ptype not in out and ptype not in ("tracepoint", "perf_event") and hook in hook_verdict:
            out[ptype] = hook_verdict[hook]
    if "tracepoint" in out:
        out.setdefault("perf_event", out["tracepoint"])
    return out


# --- guest side -------------------------------------------------------------------


def _prog_load(
    prog_type: int,
    insns: bytes,
    expected_attach_type: int,
    attach_btf_id: int,
    prog_flags: int,
    log: ctypes.Array[ctypes.c_char],
) -> tuple[int, int]:
    """``bpf(BPF_PROG_LOAD)``: (fd or -1, errno)."""
    libc = ctypes.CDLL(None, use_errno=True)
    insn_buf = ctypes.create_string_buffer(insns, len(insns))
    license = ctypes.create_string_buffer(b"GPL")
    attr = bytearray(128)
    struct.pack_into("<IIQQIIQ", attr, 0, prog_type, len(insns) // 8,
                     ctypes.addressof(insn_buf), ctypes.addressof(license), 1,
                     ctypes.sizeof(log), ctypes.addressof(log))  # fmt: skip
    attr[48:55] = b"kfprobe"
    struct.pack_into("<I", attr, 44, prog_flags)
    struct.pack_into("<I", attr, 68, expected_attach_type)
    struct.pack_into("<I", attr, 108, attach_btf_id)
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    fd = libc.syscall(_SYS_BPF, _BPF_PROG_LOAD, buf, len(attr))
    return fd, ctypes.get_errno() if fd < 0 else 0


def run_probe(
    programs: list[dict[str, Any]], types: list[dict[str, Any]], out: str
) -> dict[str, Any]:
    """In the guest: load each program as each type; write ``allowed`` to ``out``."""
    log = ctypes.create_string_buffer(_LOG_SIZE)
    allowed: dict[str, dict[str, bool | None]] = {}
    reasons: dict[str, int] = {}
    loads = 0
    start = time.monotonic()
    for prog in programs:
        insns = bytes.fromhex(prog["insns"])
        verdicts = allowed.setdefault(prog["kfunc"], {})
        for t in types:
            log.value = b""
            fd, err = _prog_load(
                t["prog_type"],
                insns,
                t["expected_attach_type"],
                t["attach_btf_id"],
                t.get("prog_flags", 0),
                log,
            )
            loads += 1
            if fd >= 0:
                os.close(fd)
                verdicts[t["name"]] = True
                continue
            text = log.value.decode(errors="replace")
            if f"calling kernel function {prog['kfunc']} is not allowed" in text:
                verdicts[t["name"]] = False
            elif "(85) call " in text:
                verdicts[t["name"]] = True  # the call passed the registration check
            else:
                verdicts[t["name"]] = None  # refused before the verifier: cannot tell
                last = (text.strip().splitlines() or [os.strerror(err)])[-1]
                reasons[last] = reasons.get(last, 0) + 1
    seconds = round(time.monotonic() - start, 2)
    Path(out).write_text(json.dumps({"allowed": allowed, "loads": loads, "seconds": seconds}))
    return {"loads": loads, "seconds": seconds, "undecided": reasons}
