"""The kernel's kfunc API as kfunc states it, against real kernels' own BTF."""

from __future__ import annotations

import pytest
from conftest import require

from kfunc.btf import types as bt
from kfunc.btf.kernel import SYS_BTF
from kfunc.btf.parse import parse_btf
from kfunc.kernel_api.hooks import PROG_TYPE_HOOK, hook_prog_types
from kfunc.kernels.facts import kfunc_hooks
from kfunc.kernels.target import Kernel
from kfunc.probe import PROBE_TYPES


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
