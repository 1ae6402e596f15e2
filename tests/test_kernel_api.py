"""The kernel's kfunc API as kfunc states it, against real kernels' own BTF."""

from __future__ import annotations

import re

import pytest
from conftest import require

from kfunc.btf import types as bt
from kfunc.btf.kernel import SYS_BTF
from kfunc.btf.parse import parse_btf
from kfunc.kernel_api.hooks import (
    HOOK_FORMER_NAMES,
    PROG_TYPE_HOOK,
    hook_prog_types,
    kfunc_hook_missing,
)
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels.facts import kfunc_hooks
from kfunc.kernels.target import Kernel
from kfunc.probe import PROBE_TYPES
from kfunc.selftests import verifier_source_tree


@pytest.mark.parametrize("fixture", ["kernel_61", "kernel_612", "kernel_73"])
def test_hook_releases_match_the_kernels_hook_enum(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """A hook whose release the table states is in a kernel's ``enum btf_kfunc_hook``
    exactly when the kernel is that release or later."""
    kernel: Kernel = request.getfixturevalue(fixture)
    hooks = kfunc_hooks(kernel)
    assert hooks, f"{kernel.release}: no enum btf_kfunc_hook in its BTF"
    for prog_type, entry in PROG_TYPE_HOOK.items():
        if entry.joined or entry.since is None or prog_type == "unspec":
            continue
        if entry.hook == "CGROUP" and entry.since <= kernel.version:
            # named CGROUP_SKB when it arrived (6.4), CGROUP from a later release on
            assert {"CGROUP", "CGROUP_SKB"} & hooks, (prog_type, kernel.release)
            continue
        assert (entry.hook in hooks) == (entry.since <= kernel.version), (
            prog_type,
            kernel.release,
        )
    common = PROG_TYPE_HOOK["unspec"].since
    assert common is not None and ("COMMON" in hooks) == (common <= kernel.version)


def test_probe_types_cover_every_hook_with_real_names() -> None:
    """The probe loads one program type per hook (the table's first for it), named
    as the running kernel's ``enum bpf_prog_type`` and ``enum bpf_attach_type`` do."""
    vmlinux = SYS_BTF / "vmlinux"
    require(vmlinux.exists(), "the running kernel has no BTF")
    btf = parse_btf(vmlinux.read_bytes(), name=str(vmlinux))
    enums: set[str] = set()
    for name in ("bpf_prog_type", "bpf_attach_type"):
        enum = btf.find(name, bt.Enum)
        assert enum is not None
        enums |= {v.name for v in enum.values}
    probed = {name: hook for name, _, _, hook in PROBE_TYPES}
    assert set(probed.values()) == set(hook_prog_types()) - {"STRUCT_OPS", "COMMON"}
    assert "tracepoint" in probed  # joined TRACING in 6.12: probed on its own
    for name, prog_type, attach, hook in PROBE_TYPES:
        assert prog_type in enums, name
        assert attach is None or attach in enums, name
        assert PROG_TYPE_HOOK[name].hook == hook


# enum btf_kfunc_hook of Linux 6.6 (kernel/bpf/btf.c at v6.6), where the cgroup
# hook still had its first name.
_HOOKS_66 = {
    "COMMON", "XDP", "TC", "STRUCT_OPS", "TRACING", "SYSCALL", "FMODRET",
    "CGROUP_SKB", "SCHED_ACT", "SK_SKB", "SOCKET_FILTER", "LWT", "NETFILTER",
}  # fmt: skip


def test_cgroup_hook_by_its_first_name() -> None:
    """On 6.4-6.11 the cgroup hook is CGROUP_SKB: cgroup_skb programs may call
    kfuncs there, the cgroup types that joined in 6.12 may not."""
    v66 = KernelVersion(6, 6)
    assert kfunc_hook_missing("cgroup_skb", v66, _HOOKS_66) is None
    assert kfunc_hook_missing("cgroup_sock_addr", v66, _HOOKS_66) is not None  # joined in 6.7
    assert kfunc_hook_missing("cgroup_sock_addr", KernelVersion(6, 7), _HOOKS_66) is None
    assert kfunc_hook_missing("sched_act", v66, _HOOKS_66) is None
    why = kfunc_hook_missing("cgroup_sysctl", v66, _HOOKS_66)
    assert why is not None and "only from Linux 6.12 on" in why
    assert kfunc_hook_missing("kprobe", v66, _HOOKS_66) is not None


def _kfunc_hook_switch(series: str) -> dict[str, str]:
    """program type (libbpf's name) -> hook, from bpf_prog_type_to_kfunc_hook()
    in the kernel/bpf/btf.c of Debian's linux-source-<series>."""
    c = (verifier_source_tree(series) / "kernel/bpf/btf.c").read_text()
    body = c[c.index("static int bpf_prog_type_to_kfunc_hook(") :].split("\n}\n", 1)[0]
    found: dict[str, str] = {}
    cases: list[str] = []
    for line in body.splitlines():
        if m := re.search(r"case BPF_PROG_TYPE_(\w+):", line):
            cases.append(m.group(1).lower())
        elif m := re.search(r"return BTF_KFUNC_HOOK_(\w+);", line):
            found.update(dict.fromkeys(cases, m.group(1)))
            cases = []
    return found


@pytest.mark.parametrize("series", ["6.1", "6.12", "7.3"])
def test_hook_table_matches_the_kernels_own_switch(series: str) -> None:
    """Every program type the kernel's source maps to a kfunc hook is in the
    table with that hook and a release the kernel has; every other type of the
    table is refused for that release."""
    switch = _kfunc_hook_switch(series)
    assert "xdp" in switch, series
    version = KernelVersion.parse(series)
    for prog_type, hook in switch.items():
        if hook == "MAX":
            continue
        entry = PROG_TYPE_HOOK.get(prog_type)
        assert entry is not None, (series, prog_type)
        assert hook in {entry.hook, *HOOK_FORMER_NAMES.get(entry.hook, ())}, (series, prog_type)
        assert kfunc_hook_missing(prog_type, version, None) is None, (series, prog_type)
    for prog_type in PROG_TYPE_HOOK.keys() - switch.keys():
        assert kfunc_hook_missing(prog_type, version, None) is not None, (series, prog_type)
