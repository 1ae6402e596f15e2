"""``kfunc build``: a project's module with BTF, its BPF header, and its BPF programs.

Everything that happens on the host before a boot: generate the module from
its spec (or take the hand-written sources), check it against the target's
rules, build it with kbuild, write the BPF-side header of its kfuncs,
compile the BPF programs, and check their kfunc calls against the target.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.check import (
    Problem,
    Registration,
    check_calls,
    check_module_calls,
    check_registrations,
    read_bpf_object,
    registration_from_sources,
    registration_from_spec,
)
from kfunc.clang import compile_bpf, find_clang, up_to_date
from kfunc.codegen import judge, render_bpf_header_from_btf, write_if_changed
from kfunc.errors import CheckError, MissingToolError
from kfunc.kbuild import ModuleBuild, ModuleSource, build_module
from kfunc.kernels.facts import kfunc_hooks, vmlinux_h
from kfunc.kernels.target import Kernel
from kfunc.libbpf.vmlinux_h import dump_module_types_h, write_vmlinux_h
from kfunc.progress import Progress
from kfunc.project import Project

__all__ = [
    "ProjectBuild",
    "build_bpf",
    "build_project",
    "check_module",
    "compile_bpf_source",
    "write_bpf_header",
]


@dataclass
class ProjectBuild:
    """A project built for one kernel: what the guest will load."""

    project: Project
    module: ModuleBuild | None
    header: Path | None  # the BPF-side extern __ksym declarations of the module's kfuncs
    objects: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_module(
    project: Project, registration: Registration | None, kernel: Kernel, hooks: set[str] | None
) -> tuple[list[str], list[Problem]]:
    """The rules for the module on ``kernel`` (whose kfunc ``hooks`` are given):
    warnings, and problems that stop it.

    A spec's problems (a flag the kernel lacks ...) raise CheckError at once,
    before kbuild would fail on them less clearly; a hand-written module's
    registrations (``registration``, read from its sources) come back as
    problems, to be told beside the programs'.
    """
    if project.spec is not None:
        verdict = judge(project.spec, kernel.version, hooks)
        if verdict.errors:
            raise CheckError([m for m, _ in verdict.errors], verdict.errors[0][1])
        return verdict.warnings, []
    if registration is None:
        return [], []
    types = list(registration.prog_types)
    return [], check_registrations(registration.module, types, kernel.version, hooks)


def _registration(project: Project, source: ModuleSource | None) -> Registration | None:
    """How the project's module registers its kfuncs: from its spec, or read from
    its sources' register_btf_kfunc_id_set() calls (None if none are found)."""
    if project.spec is not None:
        return registration_from_spec(project.spec)
    if source is None:
        return None
    return registration_from_sources(source.name, list(source.files))


def write_bpf_header(project: Project, module: ModuleBuild, kernel: Kernel) -> Path:
    """``build/<module>_kfuncs.h``: for a spec, the generated one; else rendered from BTF."""
    header = project.generated_dir / f"{module.name}_kfuncs.h"
    if project.spec is not None:
        return header  # generated with the module source
    from kfunc.btf import types as bt
    from kfunc.btf.render import ksym_extern
    from kfunc.elf import ElfObject

    btf = ElfObject(module.ko).btf(base=ElfObject(kernel.vmlinux).btf())
    decls = []
    for k in module.kfuncs:
        func = btf[k.btf_id]
        assert isinstance(func, bt.Func)
        decls.append(ksym_extern(btf, func))
    write_if_changed(header, render_bpf_header_from_btf(module.name, decls))
    return header


def _bpf_out_dir(project: Project, kernel: Kernel) -> Path:
    """Where a project's objects for ``kernel`` go: one directory per project
    path and host clang, so that a newer clang (make deps adds clang-16)
    rebuilds them rather than finding them up to date."""
    try:
        compiler = find_clang()
    except MissingToolError:
        compiler = ""  # 7.x targets compile in their root filesystem
    where = hashlib.sha256(f"{project.path}\0{compiler}".encode()).hexdigest()[:8]
    return cache_dir("builds", kernel.release, f"bpf-{project.name}-{where}")


def _bpf_headers(
    project: Project, kernel: Kernel, module: ModuleBuild | None, progress: Progress | None = None
) -> list[Path]:
    """The generated headers the project's programs compile against (see :func:`build_bpf`):
    the kernel's vmlinux.h, and the module's own types in ``<module>_types.h``."""
    headers = [vmlinux_h(kernel, progress)]
    if module is not None:
        types_h = _bpf_out_dir(project, kernel) / "include" / f"{module.name}_types.h"
        if not up_to_date(types_h, [module.ko]):
            text = dump_module_types_h(module.ko, kernel.vmlinux, module.name)
            write_vmlinux_h(module.ko, types_h, text=text)
            # kfunc before this header wrote a vmlinux.h of the module's BTF there
            (types_h.parent / "vmlinux.h").unlink(missing_ok=True)
        headers.append(types_h)
    return headers


def _project_headers(project: Project) -> list[Path]:
    """The headers beside the programs (a dangling symlink is no header: the
    selftests' disasm.h points into a kernel tree that is not there)."""
    return [h for d in project.include_dirs for h in sorted(d.glob("*.h")) if h.is_file()]


def _include_dirs(project: Project, headers: list[Path]) -> list[Path]:
    return [*dict.fromkeys(h.parent for h in headers), *project.include_dirs]


def compile_bpf_source(built: ProjectBuild, kernel: Kernel, source: Path, output: Path) -> Path:
    """Compile another BPF C file as the project's own: same vmlinux.h, same headers."""
    project = built.project
    headers = _bpf_headers(project, kernel, built.module)
    deps = [*headers, *_project_headers(project)]
    return compile_bpf(source, output, include_dirs=_include_dirs(project, headers), depends=deps)


def build_bpf(
    project: Project,
    kernel: Kernel,
    progress: Progress | None = None,
    module: ModuleBuild | None = None,
) -> list[Path]:
    """Compile the project's BPF programs against the target's vmlinux.h.

    vmlinux.h is the kernel's alone, as upstream's selftests have it. With a
    module, its own types (those its BTF adds to the kernel's) go into
    ``<module>_types.h`` beside it, which the generated ``<module>_kfuncs.h``
    includes after vmlinux.h: a kfunc's ``struct refobj *`` must be a struct in
    the program's BTF, not a forward declaration, or libbpf finds the
    prototypes incompatible. A program that includes a header of its own that
    defines the module's types (bpf_testmod_kfunc.h) sees them once.
    """
    out_dir = _bpf_out_dir(project, kernel)
    headers = _bpf_headers(project, kernel, module, progress)
    objects = []
    # Where the kernel builds in a root filesystem, so does clang: the project
    # is mounted there at its own path.
    binds = (project.path, *project.include_dirs)
    wrap = None if kernel.build_root is None else lambda cmd: kernel.tool_command(cmd, binds)
    # The target's release, as libbpf's KERNEL_VERSION(a, b, c) encodes it, for
    # what BTF cannot tell a program at compile time (a renamed attach target).
    v = kernel.version
    version = [f"-DKFUNC_TARGET_VERSION={(v.major << 16) + (v.minor << 8) + min(v.patch, 255)}"]
    for src in project.bpf_sources:
        out = out_dir / (src.name.removesuffix(".c") + ".o")
        deps = [*headers, *_project_headers(project)]
        objects.append(
            compile_bpf(
                src,
                out,
                include_dirs=_include_dirs(project, headers),
                depends=deps,
                extra_flags=version,
                wrap=wrap,
            )
        )
    return objects


def build_project(
    project: Project, kernel: Kernel, progress: Progress | None = None
) -> ProjectBuild:
    """Build ``project`` for ``kernel``; CheckError when it cannot work there."""
    progress = progress or Progress()
    source = project.module_source()
    registration = _registration(project, source)
    hooks = kfunc_hooks(kernel)
    with progress.step(f"{project.name}: checking the module against {kernel.version}"):
        warnings, module_problems = check_module(project, registration, kernel, hooks)
    for warning in warnings:
        progress.note(warning)
    module = header = None
    if source is not None:
        with progress.step(f"module {source.name}: kbuild with BTF") as step:
            module = build_module(source, kernel, progress)
            kfuncs = ", ".join(f"{k.name} (BTF id {k.btf_id})" for k in module.kfuncs)
            cached = " [cached]" if module.cached else ""
            step.summary = f"module {module.name}.ko with BTF: {kfuncs}{cached}"
        header = write_bpf_header(project, module, kernel)
    built = ProjectBuild(project, module, header, warnings=warnings)
    problems: list[Problem] = []
    if project.bpf_sources:
        with progress.step(f"{project.name}: BPF programs, clang") as step:
            built.objects = build_bpf(project, kernel, progress, module)
            step.summary = (
                f"BPF {', '.join(o.name for o in built.objects)} compiled against vmlinux.h"
            )
        with progress.step(f"{project.name}: checking kfunc calls against {kernel.version}"):
            names = [k.name for k in module.kfuncs] if module is not None else []
            for obj in built.objects:
                info = read_bpf_object(obj)
                problems += check_calls(info, kernel.version, hooks)
                if registration is not None:
                    problems += check_module_calls(info, names, registration, kernel.version, hooks)
    # A program type whose calls were refused need not be told twice.
    refused = {p.prog_type for p in problems}
    problems += [p for p in module_problems if p.prog_type not in refused]
    if problems:
        raise CheckError([p.message for p in problems], problems[0].fix)
    return built
