"""What kfunc derives from a target kernel's own BTF, computed once and cached.

This module reads a target; what the facts it reads mean (the kfunc hooks,
the API macros, release by release) is stated in :mod:`kfunc.kernel_api`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kfunc.kernels.target import Kernel
from kfunc.progress import Progress

__all__ = ["header_macros", "kfunc_hooks", "vmlinux_h", "vmlinux_names"]


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


def header_macros(kernel: Kernel) -> set[str]:
    """The macros the target's own kfunc headers define (include/linux/btf.h and
    btf_ids.h of its headers package): what a module may use there."""
    import re

    from kfunc.csource import c_text

    found: set[str] = set()
    src = kernel.root / "usr" / "src"
    for name in ("btf.h", "btf_ids.h"):
        for header in sorted(src.glob(f"linux-headers-*/include/linux/{name}")):
            text = c_text(header.read_text(errors="replace"))
            found.update(re.findall(r"^[ \t]*#[ \t]*define[ \t]+(\w+)", text, re.M))
    return found


def vmlinux_names(kernel: Kernel) -> tuple[frozenset[str], frozenset[str]]:
    """The names of the target's vmlinux BTF: its functions (FUNC), and its
    tracepoints (the ``btf_trace_<name>`` typedef each tracepoint has for
    raw_tp and tp_btf programs)."""
    cache = kernel.path / "vmlinux_names.json"
    if cache.exists():
        known = json.loads(cache.read_text())
        return frozenset(known["functions"]), frozenset(known["tracepoints"])
    from kfunc.btf import types as bt
    from kfunc.elf import ElfObject

    btf = ElfObject(kernel.vmlinux).btf()
    funcs = sorted({t.name for t in btf.types(bt.Func)})
    prefix = "btf_trace_"
    typedefs = (t.name for t in btf.types(bt.Typedef))
    tps = sorted({name[len(prefix) :] for name in typedefs if name.startswith(prefix)})
    tmp = cache.with_suffix(f".{os.getpid()}")
    tmp.write_text(json.dumps({"functions": funcs, "tracepoints": tps}) + "\n")
    os.replace(tmp, cache)
    return frozenset(funcs), frozenset(tps)
