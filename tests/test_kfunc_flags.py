"""KF_* flags on every kernel: decl tags merged with the ``.BTF_ids`` sets.

7.x kernels tag kfuncs with ``bpf_kfunc`` in BTF and keep their flags in the
vmlinux ELF's ``.BTF_ids`` sets; the listing must carry both. The oracle is
the kernel's own source (linux-source-7.3, extracted at test time): every
``BTF_ID_FLAGS(func, name, flags)`` of kernel/bpf/*.c names the flags of a
kfunc the listing shows.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict

from conftest import ROOT, require

from kfunc.btf.kernel import SYS_BTF
from kfunc.errors import KfuncError
from kfunc.inventory import SOURCE_BOTH, kernel_inventory, public_form
from kfunc.kernels.target import Kernel
from kfunc.selftests import verifier_source_tree

_FLAGS = re.compile(r"BTF_ID_FLAGS\(func,\s*(\w+)(?:,\s*([^)]*))?\)")


def _source_flags(series: str) -> dict[str, set[str]]:
    try:
        root = verifier_source_tree(series)
    except KfuncError as exc:
        require(False, f"linux-source-{series} not available: {exc}")
        raise
    flags: dict[str, set[str]] = defaultdict(set)
    for path in (root / "kernel" / "bpf").glob("*.c"):
        for m in _FLAGS.finditer(path.read_text(errors="replace")):
            flags[m[1]] |= {f.strip() for f in (m[2] or "").split("|") if f.strip()}
    return flags


def test_73_lists_the_flags_its_source_declares(kernel_73: Kernel) -> None:
    inv = kernel_inventory(kernel_73)
    vmlinux = {k.name: k for k in inv.kfuncs if k.owner == "vmlinux"}
    assert len(vmlinux) > 300
    assert all(k.flags is not None and k.source == SOURCE_BOTH for k in vmlinux.values())
    declared = _source_flags("7.3")
    compared = [n for n in declared if n in vmlinux]
    assert len(compared) > 150
    wrong = {n: (sorted(vmlinux[n].flags or ()), sorted(declared[n])) for n in compared
             if set(vmlinux[n].flags or ()) != declared[n]}  # fmt: skip
    assert not wrong
    assert set(vmlinux["bpf_task_acquire"].flags or ()) == {"KF_ACQUIRE", "KF_RCU", "KF_RET_NULL"}


def test_impl_kfuncs_shown_as_programs_call_them(kernel_73: Kernel, kernel_612: Kernel) -> None:
    new = kernel_inventory(kernel_73)
    k = next(k for k in new.kfuncs if k.name == "bpf_obj_new_impl")
    form = public_form(k, new.kfuncs)
    assert form is not None and form.how == "kfunc"  # 7.x: bpf_obj_new, KF_IMPLICIT_ARGS
    assert form.prototype == "void *bpf_obj_new(u64 local_type_id__k)"
    old = kernel_inventory(kernel_612)
    k = next(k for k in old.kfuncs if k.name == "bpf_obj_new_impl")
    form = public_form(k, old.kfuncs)
    assert form is not None and form.how == "macro"  # 6.12: bpf_experimental.h's macro
    assert form.prototype == "void *bpf_obj_new(u64 local_type_id__k)"  # what 7.x exports
    push = next(k for k in old.kfuncs if k.name == "bpf_list_push_front_impl")
    ours = public_form(push, old.kfuncs)
    theirs = next(k for k in new.kfuncs if k.name == "bpf_list_push_front")
    assert ours is not None and ours.prototype == theirs.prototype
    assert public_form(theirs, new.kfuncs) is None


def test_raw_btf_says_where_the_flags_are() -> None:
    require(SYS_BTF.joinpath("vmlinux").exists(), "the host kernel has no BTF")
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "ls", "--btf", str(SYS_BTF / "vmlinux")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "flags: not in raw BTF" in out.stderr and "--btf" in out.stderr
