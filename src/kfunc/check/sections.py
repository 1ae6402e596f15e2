"""The program type of a BPF program, from its ELF section name, as libbpf says it.

libbpf (``find_sec_def()`` in tools/lib/bpf/libbpf.c) walks its
``section_defs[]`` in order and takes the first entry that matches:

- ``"type+"``: the section is ``type`` or starts with ``type/``;
- ``"type/"``: the section starts with ``type/``;
- otherwise the section is exactly the entry.

The table below is libbpf 1.1's (Debian 12's libbpf1 1.1.2, the libbpf kfunc
loads with; tools/lib/bpf as of Linux 6.1), so that an object reads the same
on every machine, whatever libbpf it has. Names are libbpf's
``prog_type_name[]`` (``libbpf_bpf_prog_type_str()``). Sections added by later
libbpf releases (``tcx/``, ``netkit/``, ``uprobe.multi``, ``kprobe.session``,
``struct_ops.s``, ``netfilter`` ...) are unknown to the loader too, and so here.
"""

from __future__ import annotations

__all__ = ["SECTION_DEFS", "prog_type_of_section"]

#: libbpf 1.1's ``section_defs[]``: (section pattern, program type), in its order.
SECTION_DEFS: tuple[tuple[str, str], ...] = (
    ("socket", "socket_filter"),
    ("sk_reuseport/migrate", "sk_reuseport"),
    ("sk_reuseport", "sk_reuseport"),
    ("kprobe+", "kprobe"),
    ("uprobe+", "kprobe"),
    ("uprobe.s+", "kprobe"),
    ("kretprobe+", "kprobe"),
    ("uretprobe+", "kprobe"),
    ("uretprobe.s+", "kprobe"),
    ("kprobe.multi+", "kprobe"),
    ("kretprobe.multi+", "kprobe"),
    ("ksyscall+", "kprobe"),
    ("kretsyscall+", "kprobe"),
    ("usdt+", "kprobe"),
    ("tc", "sched_cls"),
    ("classifier", "sched_cls"),
    ("action", "sched_act"),
    ("tracepoint+", "tracepoint"),
    ("tp+", "tracepoint"),
    ("raw_tracepoint+", "raw_tracepoint"),
    ("raw_tp+", "raw_tracepoint"),
    ("raw_tracepoint.w+", "raw_tracepoint_writable"),
    ("raw_tp.w+", "raw_tracepoint_writable"),
    ("tp_btf+", "tracing"),
    ("fentry+", "tracing"),
    ("fmod_ret+", "tracing"),
    ("fexit+", "tracing"),
    ("fentry.s+", "tracing"),
    ("fmod_ret.s+", "tracing"),
    ("fexit.s+", "tracing"),
    ("freplace+", "ext"),
    ("lsm+", "lsm"),
    ("lsm.s+", "lsm"),
    ("lsm_cgroup+", "lsm"),
    ("iter+", "tracing"),
    ("iter.s+", "tracing"),
    ("syscall", "syscall"),
    ("xdp.frags/devmap", "xdp"),
    ("xdp/devmap", "xdp"),
    ("xdp.frags/cpumap", "xdp"),
    ("xdp/cpumap", "xdp"),
    ("xdp.frags", "xdp"),
    ("xdp", "xdp"),
    ("perf_event", "perf_event"),
    ("lwt_in", "lwt_in"),
    ("lwt_out", "lwt_out"),
    ("lwt_xmit", "lwt_xmit"),
    ("lwt_seg6local", "lwt_seg6local"),
    ("sockops", "sock_ops"),
    ("sk_skb/stream_parser", "sk_skb"),
    ("sk_skb/stream_verdict", "sk_skb"),
    ("sk_skb", "sk_skb"),
    ("sk_msg", "sk_msg"),
    ("lirc_mode2", "lirc_mode2"),
    ("flow_dissector", "flow_dissector"),
    ("cgroup_skb/ingress", "cgroup_skb"),
    ("cgroup_skb/egress", "cgroup_skb"),
    ("cgroup/skb", "cgroup_skb"),
    ("cgroup/sock_create", "cgroup_sock"),
    ("cgroup/sock_release", "cgroup_sock"),
    ("cgroup/sock", "cgroup_sock"),
    ("cgroup/post_bind4", "cgroup_sock"),
    ("cgroup/post_bind6", "cgroup_sock"),
    ("cgroup/bind4", "cgroup_sock_addr"),
    ("cgroup/bind6", "cgroup_sock_addr"),
    ("cgroup/connect4", "cgroup_sock_addr"),
    ("cgroup/connect6", "cgroup_sock_addr"),
    ("cgroup/sendmsg4", "cgroup_sock_addr"),
    ("cgroup/sendmsg6", "cgroup_sock_addr"),
    ("cgroup/recvmsg4", "cgroup_sock_addr"),
    ("cgroup/recvmsg6", "cgroup_sock_addr"),
    ("cgroup/getpeername4", "cgroup_sock_addr"),
    ("cgroup/getpeername6", "cgroup_sock_addr"),
    ("cgroup/getsockname4", "cgroup_sock_addr"),
    ("cgroup/getsockname6", "cgroup_sock_addr"),
    ("cgroup/sysctl", "cgroup_sysctl"),
    ("cgroup/getsockopt", "cgroup_sockopt"),
    ("cgroup/setsockopt", "cgroup_sockopt"),
    ("cgroup/dev", "cgroup_device"),
    ("struct_ops+", "struct_ops"),
    ("sk_lookup", "sk_lookup"),
)


def _matches(pattern: str, section: str) -> bool:
    """libbpf's ``sec_def_matches()``."""
    if pattern.endswith("/"):
        return section.startswith(pattern)
    if pattern.endswith("+"):
        stem = pattern[:-1]
        return section == stem or section.startswith(stem + "/")
    return section == pattern


def prog_type_of_section(section: str) -> str | None:
    """libbpf's program type name (``tracing``, ``kprobe``, ``syscall`` ...) for an ELF
    section name (``fentry/do_unlinkat``, ``kprobe/x``, ``syscall``), None if libbpf
    knows no such section."""
    return next((ptype for pattern, ptype in SECTION_DEFS if _matches(pattern, section)), None)
