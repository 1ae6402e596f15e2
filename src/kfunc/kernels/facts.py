"""What kfunc derives from a target kernel's own BTF, computed once and cached."""

from __future__ import annotations

import json
from pathlib import Path

from kfunc.kernels.target import Kernel
from kfunc.progress import Progress

__all__ = ["kfunc_hooks", "vmlinux_h"]


def vmlinux_h(kernel: Kernel, progress: Progress | None = None) -> Path:
    """The target's vmlinux.h (every type of its BTF as C), for BPF programs."""
    from kfunc.libbpf.vmlinux_h import write_vmlinux_h

    out = kernel.path / "include" / "vmlinux.h"
    if not out.exists():
        if progress:
            progress.update(f"generating vmlinux.h from {kernel.release}'s BTF")
        out.parent.mkdir(exist_ok=True)
        write_vmlinux_h(kernel.vmlinux, out)
    return out


def kfunc_hooks(kernel: Kernel) -> set[str] | None:
    """The kernel's kfunc hooks: its ``enum btf_kfunc_hook``, BTF_KFUNC_HOOK_ stripped.

    None when the BTF has no such enum (then the release table decides).
    """
    cache = kernel.path / "kfunc_hooks.json"
    if cache.exists():
        known = json.loads(cache.read_text())
        return None if known is None else set(known)
    from kfunc.btf import types as bt
    from kfunc.elf import ElfObject

    enum = ElfObject(kernel.vmlinux).btf().find("btf_kfunc_hook", bt.Enum)
    hooks = None
    if enum is not None:
        names = (v.name.removeprefix("BTF_KFUNC_HOOK_") for v in enum.values)
        hooks = sorted(n for n in names if n != "MAX")
    cache.write_text(json.dumps(hooks) + "\n")
    return None if hooks is None else set(hooks)
