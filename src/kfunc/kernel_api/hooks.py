"""Which program types may call kfuncs on which kernel.

A kfunc set is registered per *kfunc hook*, and the verifier finds the hook
of a program from its type (``bpf_prog_type_to_kfunc_hook()`` in
kernel/bpf/btf.c). A program type whose hook a kernel lacks may call no kfunc
there ("calling kernel function X is not allowed"), and registering a set for
it fails with -EINVAL. The hooks a kernel has are its ``enum btf_kfunc_hook``,
which its BTF shows: that is what :func:`kfunc_hook_missing` checks first. The
release table is the fallback and the explanation a user reads.
"""

from __future__ import annotations

from kfunc.kernel_api.version import KernelVersion

__all__ = ["MODULE_KFUNC_FEATURES", "PROG_TYPE_HOOK", "kfunc_hook_missing", "module_kfuncs_missing"]

#: What a kernel needs for kfuncs defined in modules, and the release of each:
#: kfunc calls into module BTF through the program's fd_array (v5.16,
#: "bpf: Enable TCP congestion control kfunc from modules" and "bpf: Add
#: support for kfunc calls into module BTF"), and register_btf_kfunc_id_set()
#: (v5.18, "bpf: Introduce mechanism to register kfunc sets"), which every
#: kfunc module calls.
MODULE_KFUNC_FEATURES: tuple[tuple[str, KernelVersion], ...] = (
    ("module kfuncs", KernelVersion(5, 16)),
    ("register_btf_kfunc_id_set", KernelVersion(5, 18)),
)

# program type (libbpf's name) -> (BTF_KFUNC_HOOK_* suffix, release it arrived, if known)
PROG_TYPE_HOOK: dict[str, tuple[str, KernelVersion | None]] = {
    "xdp": ("XDP", KernelVersion(5, 18)),
    "sched_cls": ("TC", KernelVersion(5, 18)),
    "struct_ops": ("STRUCT_OPS", KernelVersion(5, 18)),
    "tracing": ("TRACING", KernelVersion(5, 18)),
    "lsm": ("TRACING", KernelVersion(5, 18)),
    "syscall": ("SYSCALL", KernelVersion(5, 18)),
    "cgroup_skb": ("CGROUP", None),
    "cgroup_sock_addr": ("CGROUP", None),
    "sched_act": ("SCHED_ACT", None),
    "sk_skb": ("SK_SKB", None),
    "socket_filter": ("SOCKET_FILTER", None),
    "lwt_in": ("LWT", None),
    "lwt_out": ("LWT", None),
    "lwt_xmit": ("LWT", None),
    "lwt_seg6local": ("LWT", None),
    "netfilter": ("NETFILTER", None),
    "kprobe": ("KPROBE", KernelVersion(6, 10)),
    # A set registered for BPF_PROG_TYPE_UNSPEC goes to the common hook, whose
    # kfuncs every program type may call (v6.2, cfe1456440c8 "bpf: Add support for
    # kfunc set with common btf_ids"); before it, UNSPEC had no hook and
    # registering failed.
    "unspec": ("COMMON", KernelVersion(6, 2)),
    # These share the tracing hook, from 6.12 on: the enum does not show it.
    "tracepoint": ("TRACING", KernelVersion(6, 12)),
    "perf_event": ("TRACING", KernelVersion(6, 12)),
    # 7.3's bpf_prog_type_to_kfunc_hook() maps raw tracepoints to the tracing hook
    # and sock_ops to the cgroup one; 6.12's maps neither (the releases between were
    # not read: 7.3 is the first kfunc knows of).
    "raw_tracepoint": ("TRACING", KernelVersion(7, 3)),
    "sock_ops": ("CGROUP", KernelVersion(7, 3)),
}


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
    hook, since = entry
    if prog_type in ("tracepoint", "perf_event", "raw_tracepoint", "sock_ops") or hooks is None:
        allowed = since is None or version >= since
    else:
        allowed = hook in hooks
    if allowed:
        return None
    if prog_type == "unspec":
        return (
            f"BPF_PROG_TYPE_UNSPEC registers a set for every program type (the common kfunc "
            f"hook, BTF_KFUNC_HOOK_COMMON), which arrived in Linux 6.2: {version} has no such hook"
        )
    when = f"only from Linux {since.series} on" if since else f"not on Linux {version}"
    return f"{prog_type} programs may call kfuncs {when} (no kfunc hook for them in {version})"


def module_kfuncs_missing(version: KernelVersion) -> tuple[str, KernelVersion] | None:
    """The first feature of MODULE_KFUNC_FEATURES a kernel of ``version`` lacks, if any."""
    return next(((n, v) for n, v in MODULE_KFUNC_FEATURES if version < v), None)
