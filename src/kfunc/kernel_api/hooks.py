"""Which program types may call kfuncs on which kernel.

A kfunc set is registered per *kfunc hook*, and the verifier finds the hook
of a program from its type (``bpf_prog_type_to_kfunc_hook()`` in
kernel/bpf/btf.c). A program type whose hook a kernel lacks may call no kfunc
there ("calling kernel function X is not allowed"), and registering a set for
it fails with -EINVAL. The hooks a kernel has are its ``enum btf_kfunc_hook``,
which its BTF shows (:func:`kfunc.kernels.facts.kfunc_hooks` reads it): that is
what :func:`kfunc_hook_missing` checks first. The release of each entry of
:data:`PROG_TYPE_HOOK` is the fallback and the explanation a user reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfunc.kernel_api.change import Change
from kfunc.kernel_api.version import KernelVersion

__all__ = [
    "HOOK_FORMER_NAMES",
    "MODULE_KFUNC_FEATURES",
    "PROG_TYPE_HOOK",
    "ProgTypeHook",
    "hook_prog_types",
    "kfunc_hook_missing",
    "module_kfuncs_missing",
]


@dataclass(frozen=True)
class ProgTypeHook:
    """The kfunc hook of a program type (libbpf's name for it): ``hook``, the
    BTF_KFUNC_HOOK_* suffix; ``change``, what let the type call kfuncs (None
    where kfunc does not know: the target's hook enum decides); ``joined``: the
    type joined a hook that existed before it, so the hook enum does not show
    the change and the release decides."""

    hook: str
    change: Change | None
    joined: bool = False

    @property
    def since(self) -> KernelVersion | None:
        return self.change.release if self.change else None


#: register_btf_kfunc_id_set() and the first hooks (XDP, TC, STRUCT_OPS).
_SETS = Change(
    KernelVersion(5, 18), "bpf: Populate kfunc BTF ID sets in struct btf", "dee872e124e8"
)
_TRACING = Change(
    KernelVersion(5, 19), "bpf: Allow kfunc in tracing and syscall programs.", "979497674e63"
)
_SKB = Change(KernelVersion(6, 4), "bpf: Add skb dynptrs", "b5964b968ac6")
_NETFILTER = Change(
    KernelVersion(6, 4),
    "bpf: minimal support for programs hooked into netfilter framework",
    "fd9c663b9ad6",
)
_TRACING_612 = Change(
    KernelVersion(6, 12),
    "bpf: allow kfuncs within tracepoint and perf event programs",
    "bc638d8cb5be",
)
# 7.3's bpf_prog_type_to_kfunc_hook() maps raw tracepoints to the tracing hook
# and sock_ops to the cgroup one; 6.12's maps neither. The releases between were
# not read (upstream's raw_tp change, "bpf: allow calling kfuncs from raw_tp
# programs", was posted in December 2025, so 7.0 may have it): 7.3 is the first
# kfunc knows of.
_SEEN_73 = Change(KernelVersion(7, 3), "first seen in Debian's 7.3 kernel/bpf/btf.c")

#: The cgroup hook was BTF_KFUNC_HOOK_CGROUP_SKB from 6.4 to 6.11; this commit
#: renamed it and mapped every cgroup program type to it.
_CGROUP = Change(
    KernelVersion(6, 12), "bpf: Enable generic kfuncs for BPF_CGROUP_* programs", "67666479edf1"
)

#: hook -> the names it had before (a kernel of 6.4-6.11 shows CGROUP_SKB).
HOOK_FORMER_NAMES: dict[str, tuple[str, ...]] = {"CGROUP": ("CGROUP_SKB",)}

#: What a kernel needs for kfuncs defined in modules: kfunc calls into module
#: BTF through the program's fd_array, and register_btf_kfunc_id_set(), which
#: every kfunc module calls.
MODULE_KFUNC_FEATURES: tuple[tuple[str, Change], ...] = (
    (
        "module kfuncs",
        Change(
            KernelVersion(5, 16),
            "bpf: Introduce BPF support for kernel module function calls",
            "2357672c54c3",
        ),
    ),
    ("register_btf_kfunc_id_set", _SETS),
)

#: program type (libbpf's name) -> its kfunc hook, in the order the hooks arrived.
PROG_TYPE_HOOK: dict[str, ProgTypeHook] = {
    "xdp": ProgTypeHook("XDP", _SETS),
    "sched_cls": ProgTypeHook("TC", _SETS),
    "struct_ops": ProgTypeHook("STRUCT_OPS", _SETS),
    "tracing": ProgTypeHook("TRACING", _TRACING),
    "lsm": ProgTypeHook(
        "TRACING",
        Change(KernelVersion(6, 1), "bpf: Allow kfuncs to be used in LSM programs", "d15bf1501c75"),
        joined=True,
    ),
    "syscall": ProgTypeHook("SYSCALL", _TRACING),
    # A set registered for BPF_PROG_TYPE_UNSPEC goes to the common hook, whose
    # kfuncs every program type may call; before it, UNSPEC had no hook and
    # registering failed.
    "unspec": ProgTypeHook(
        "COMMON",
        Change(
            KernelVersion(6, 2),
            "bpf: Add support for kfunc set with common btf_ids",
            "cfe1456440c8",
        ),
    ),
    # bpf_dynptr_from_skb() brought hooks for the skb program types. The cgroup
    # one was CGROUP_SKB at first (cgroup_sock_addr joined it in 6.7; the other
    # cgroup types in 6.12, which renamed it CGROUP: HOOK_FORMER_NAMES).
    "cgroup_skb": ProgTypeHook("CGROUP", _SKB),
    "cgroup_sock_addr": ProgTypeHook(
        "CGROUP",
        Change(
            KernelVersion(6, 7),
            "bpf: Add bpf_sock_addr_set_sun_path() to allow writing unix sockaddr from bpf",
            "53e380d21441",
        ),
        joined=True,
    ),
    "cgroup_sock": ProgTypeHook("CGROUP", _CGROUP, joined=True),
    "cgroup_device": ProgTypeHook("CGROUP", _CGROUP, joined=True),
    "cgroup_sockopt": ProgTypeHook("CGROUP", _CGROUP, joined=True),
    "cgroup_sysctl": ProgTypeHook("CGROUP", _CGROUP, joined=True),
    "sched_act": ProgTypeHook("SCHED_ACT", _SKB),
    "sk_skb": ProgTypeHook("SK_SKB", _SKB),
    "socket_filter": ProgTypeHook("SOCKET_FILTER", _SKB),
    "lwt_in": ProgTypeHook("LWT", _SKB),
    "lwt_out": ProgTypeHook("LWT", _SKB),
    "lwt_xmit": ProgTypeHook("LWT", _SKB),
    "lwt_seg6local": ProgTypeHook("LWT", _SKB),
    "netfilter": ProgTypeHook("NETFILTER", _NETFILTER),
    "kprobe": ProgTypeHook(
        "KPROBE",
        Change(KernelVersion(6, 10), "bpf: Add support for kprobe session context", "adf46d88ae4b"),
    ),
    "tracepoint": ProgTypeHook("TRACING", _TRACING_612, joined=True),
    "perf_event": ProgTypeHook("TRACING", _TRACING_612, joined=True),
    "raw_tracepoint": ProgTypeHook("TRACING", _SEEN_73, joined=True),
    "sock_ops": ProgTypeHook("CGROUP", _SEEN_73, joined=True),
}


def hook_prog_types() -> dict[str, str]:
    """Each kfunc hook and the first program type of :data:`PROG_TYPE_HOOK` that
    has it (``{"XDP": "xdp", "TC": "sched_cls", ...}``); joined types left out."""
    first: dict[str, str] = {}
    for prog_type, entry in PROG_TYPE_HOOK.items():
        if not entry.joined:
            first.setdefault(entry.hook, prog_type)
    return first


def kfunc_hook_missing(
    prog_type: str, version: KernelVersion, hooks: set[str] | None
) -> str | None:
    """Why ``prog_type`` programs may not call kfuncs on this kernel, or None if they may.

    ``hooks`` are the BTF_KFUNC_HOOK_* suffixes of the target's BTF (None when
    the BTF does not say).
    """
    entry = PROG_TYPE_HOOK.get(prog_type)
    if entry is None:
        return f"{prog_type} programs may not call kfuncs on any kernel"
    since = entry.since
    if entry.joined or hooks is None:
        allowed = since is None or version >= since
    else:
        allowed = bool({entry.hook, *HOOK_FORMER_NAMES.get(entry.hook, ())} & hooks)
    if allowed:
        return None
    if prog_type == "unspec" and since is not None:
        return (
            f"BPF_PROG_TYPE_UNSPEC registers a set for every program type (the common kfunc "
            f"hook, BTF_KFUNC_HOOK_COMMON), which arrived in Linux {since.series}: {version} "
            "has no such hook"
        )
    when = f"only from Linux {since.series} on" if since else f"not on Linux {version}"
    return f"{prog_type} programs may call kfuncs {when} (no kfunc hook for them in {version})"


def module_kfuncs_missing(version: KernelVersion) -> tuple[str, KernelVersion] | None:
    """The first feature of MODULE_KFUNC_FEATURES a kernel of ``version`` lacks, if any."""
    return next(((n, c.release) for n, c in MODULE_KFUNC_FEATURES if version < c.release), None)
