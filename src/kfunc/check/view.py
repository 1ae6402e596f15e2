"""``kfunc check``'s orchestration: the view of a target kernel the rules need.

:func:`kernel_view` gathers what :func:`kfunc.check.rules.check_object` is
told of a kernel: its kfunc inventory (vmlinux and its image's modules), its
kfunc hooks, the probe's answer if ``kfunc ls --probe`` ran, and the modules
given with ``--module`` (built first where a project directory is given),
with how they register their kfuncs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kfunc.btf.parse import BTF
from kfunc.check.registration import (
    Registration,
    registration_from_sources,
    registration_from_spec,
    registration_of,
)
from kfunc.check.rules import VMLINUX, KernelView
from kfunc.elf import ElfObject
from kfunc.errors import KfuncError
from kfunc.inventory import file_inventory, kernel_inventory, module_name
from kfunc.kbuild import build_module
from kfunc.kernels.facts import kfunc_hooks
from kfunc.kernels.target import Kernel
from kfunc.probe import load_probe
from kfunc.progress import Progress
from kfunc.project import Project
from kfunc.spec import load_spec

__all__ = ["kernel_view"]


def kernel_view(
    kernel: Kernel,
    modules: Iterable[Path] = (),
    progress: Progress | None = None,
) -> KernelView:
    """The view of a target kernel :func:`check_object` needs: its inventory (vmlinux
    and its image's modules), its kfunc hooks, the probe cache if ``kfunc ls
    --probe`` ran, and ``modules``: .ko files or kfunc project directories (whose
    spec or sources say how the kfuncs are registered)."""
    inventory = kernel_inventory(kernel, progress)
    kfuncs = {k.name: k for k in inventory.kfuncs}
    registrations: dict[str, Registration] = {}
    ko_of: dict[str, Path] = {}
    for given in modules:
        ko, reg = _module_arg(Path(given), kernel, progress)
        inv = file_inventory(ko, kernel.vmlinux)
        for k in inv.kfuncs:
            kfuncs[k.name] = k
        ko_of[module_name(ko)] = ko
        if reg is not None:
            registrations[reg.module] = reg
    cache: dict[str, BTF | None] = {}

    def btf_of(owner: str) -> BTF | None:
        if owner not in cache:
            base = btf_of(VMLINUX) if owner != VMLINUX else None
            if owner == VMLINUX:
                cache[owner] = ElfObject(kernel.vmlinux).btf()
            else:
                ko = ko_of.get(owner) or next(
                    (p for p in kernel.module_files() if module_name(p) == owner),
                    None,
                )
                cache[owner] = ElfObject(ko).btf(base) if ko is not None else None
        return cache[owner]

    return KernelView(
        f"{kernel.version}",
        kernel.version,
        kfunc_hooks(kernel),
        kfuncs,
        btf_of,
        registrations,
        load_probe(kernel),
    )


def _module_arg(
    path: Path, kernel: Kernel, progress: Progress | None
) -> tuple[Path, Registration | None]:
    """A --module argument: a .ko (registrations from the .c files beside it, if any),
    or a project directory (its module built for ``kernel``; its spec or sources)."""
    if path.is_dir():
        project = Project.load(path)
        source = project.module_source()
        if source is None:
            raise KfuncError(f"{path}: no module in this project", "pass a .ko or a project")
        built = build_module(source, kernel, progress)
        if project.spec is not None:
            return built.ko, registration_from_spec(project.spec)
        return built.ko, registration_of(source.name, source.c)
    if not path.is_file():
        raise KfuncError(f"{path}: no such module", "pass a .ko file or a kfunc project directory")
    sources = sorted(path.parent.glob("*.c"))
    spec_file = next((d / "kfunc.toml" for d in (path.parent, path.parent.parent)
                      if (d / "kfunc.toml").exists()), None)  # fmt: skip
    if spec_file is not None:
        try:
            spec = load_spec(spec_file)
        except KfuncError:
            spec = None
        if spec is not None and spec.name == module_name(path):
            return path, registration_from_spec(spec)
    return path, registration_from_sources(module_name(path), sources)
