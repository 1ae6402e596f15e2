"""A module kfunc whose name the target kernel already uses, found before a boot.

Two things go wrong with such a name, depending on what already holds it:

- a kfunc of vmlinux (or of a loaded module): the kernel refuses the module's
  set when it registers it, insmod fails with -EINVAL and the kernel log says
  ``kfunc X (id: N) is already present in vmlinux`` (as seen on 6.12); and
  libbpf resolves a program's extern against vmlinux's BTF before modules';
- any other function of vmlinux: the module loads, but libbpf resolves a BPF
  program's ``extern ... __ksym`` against vmlinux's BTF first and binds the
  call to vmlinux's function, which is no kfunc: the verifier says "calling
  kernel function X is not allowed".

Kernels gain kfuncs every release, so a name that was free on one target may
clash on the next: the check is made against each target's own BTF.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kfunc.check.finding import Finding
from kfunc.check.rules import VMLINUX

if TYPE_CHECKING:
    from kfunc.kernels.target import Kernel
    from kfunc.progress import Progress

__all__ = ["name_clashes"]


def name_clashes(
    module: str, kfuncs: Iterable[str], kernel: Kernel, progress: Progress | None = None
) -> list[Finding]:
    """The kfuncs of ``module`` whose names ``kernel``'s vmlinux or one of its
    modules (the image package's) already uses."""
    from kfunc.inventory import kernel_inventory
    from kfunc.kernels.facts import vmlinux_names

    names = list(dict.fromkeys(kfuncs))
    if not names:
        return []
    functions, _ = vmlinux_names(kernel)
    owners = {k.name: k.owner for k in kernel_inventory(kernel, progress).kfuncs}
    fix = "rename the kfunc in the module and in the BPF programs' extern declarations"
    problems = []
    for name in names:
        owner = owners.get(name)
        if owner is not None and owner != module:
            where = "vmlinux" if owner == VMLINUX else f"module {owner}"
            problems.append(
                Finding(
                    "error",
                    f"module {module}'s kfunc {name} is already a kfunc of {where} on Linux "
                    f"{kernel.version}: the kernel refuses the module's set (insmod: -EINVAL, "
                    f"'kfunc {name} (id: N) is already present in {where}'), and libbpf would "
                    f"bind a program's extern {name} to {where}'s",
                    fix,
                    "",
                )
            )
        elif name in functions:
            problems.append(
                Finding(
                    "error",
                    f"module {module}'s kfunc {name} is already a function of vmlinux on Linux "
                    f"{kernel.version}: libbpf binds a program's extern {name} to vmlinux's, "
                    f"which is no kfunc ('calling kernel function {name} is not allowed')",
                    fix,
                    "",
                )
            )
    return problems
