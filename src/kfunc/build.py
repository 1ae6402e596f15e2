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
from kfunc.check.bpf_object import read_bpf_object
from kfunc.check.finding import Finding
from kfunc.check.registration import Registration, registration_from_spec, registration_of
from kfunc.check.rules import check_calls, check_module_calls, check_registrations
from kfunc.clang import compile_bpf, find_clang, up_to_date
from kfunc.codegen import judge, render_bpf_header_from_btf, write_if_changed
from kfunc.errors import BuildError, CheckError, MissingToolError
from kfunc.kbuild import ModuleBuild, ModuleSource, build_module, kfunc_api_gap
from kfunc.kernels.facts import kfunc_hooks, vmlinux_h
from kfunc.kernels.target import Kernel
from kfunc.libbpf.vmlinux_h import dump_module_types_h, write_vmlinux_h
from kfunc.progress import Progress
from kfunc.project import Project, unpicked_bpf_sources

__all__ = [
    "ProjectBuild",
    "api_problems",
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
) -> tuple[list[str], list[Finding]]:
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
            raise CheckError([Finding("error", m, fix) for m, fix in verdict.errors])
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
    return registration_of(source.name, source.c)


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
    return cache_dir("builds", kernel.key, f"bpf-{project.name}-{where}")


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


def api_problems(source: ModuleSource, kernel: Kernel) -> list[Finding]:
    """The kfunc API a hand-written module uses and the target's headers lack
    (see :func:`kfunc.kbuild.kfunc_api_gap`): kbuild would fail on it."""
    gap = kfunc_api_gap(source, kernel)
    if gap is None:
        return []
    message, fix = gap
    return [Finding("error", f"{message}, so kbuild would fail", fix)]


def build_project(
    project: Project, kernel: Kernel, progress: Progress | None = None
) -> ProjectBuild:
    """Build ``project`` for ``kernel``; CheckError when it cannot work there.

    Everything that can be known before a boot is checked, and every problem
    found is told at once: the module's registrations and kfunc API (a module
    whose API the target lacks is not given to kbuild), its kfunc names against
    the target's, and each program's kfunc calls and attach target.
    """
    from kfunc.attach_targets import missing_attach_targets
    from kfunc.kernels.facts import vmlinux_names
    from kfunc.name_clash import name_clashes

    progress = progress or Progress()
    source = project.module_source()
    registration = reg = _registration(project, source)
    hooks = kfunc_hooks(kernel)
    blocking: list[Finding] = []  # told whatever else is found
    with progress.step(f"{project.name}: checking the module against {kernel.version}"):
        warnings, module_problems = check_module(project, registration, kernel, hooks)
        kfunc_names: list[str] = []
        api: list[Finding] = []
        if source is not None:
            if project.spec is not None:
                kfunc_names = [k.name for k in project.spec.kfuncs]
            else:
                kfunc_names = [name for name, _ in source.kfuncs]
                api = api_problems(source, kernel)
            blocking += api + name_clashes(source.name, kfunc_names, kernel, progress)
    warnings += [
        f"{f.relative_to(project.path)} has SEC() programs, but kfunc builds *.bpf.c files only: "
        f"rename it, or list it in kfunc.toml's [bpf] sources"
        for f in unpicked_bpf_sources(project)
    ]
    for warning in warnings:
        progress.note(warning)
    module = header = None
    if source is not None and not blocking:  # a module that cannot work is not built
        with progress.step(f"module {source.name}: kbuild with BTF") as step:
            module = build_module(source, kernel, progress)
            kfuncs = ", ".join(f"{k.name} (BTF id {k.btf_id})" for k in module.kfuncs)
            cached = " [cached]" if module.cached else ""
            step.summary = f"module {module.name}.ko with BTF: {kfuncs}{cached}"
        header = write_bpf_header(project, module, kernel)
    built = ProjectBuild(project, module, header, warnings=warnings)
    problems: list[Finding] = []
    if project.bpf_sources:
        with progress.step(f"{project.name}: BPF programs, clang") as step:
            try:
                built.objects = build_bpf(project, kernel, progress, module)
            except BuildError:
                if not blocking:
                    raise
                # Without its module, a program may not compile: the module's
                # problems are the ones to tell.
                raise CheckError(blocking) from None
            step.summary = (
                f"BPF {', '.join(o.name for o in built.objects)} compiled against vmlinux.h"
            )
        with progress.step(f"{project.name}: checking kfunc calls against {kernel.version}"):
            functions, tracepoints = vmlinux_names(kernel)
            own_funcs, own_tps = _module_names(module, kernel) if module else (set(), set())
            # The module's kfuncs registered for every program type (UNSPEC).
            common = [k for k in kfunc_names if reg and "unspec" in reg.types_for(k)]
            for obj in built.objects:
                info = read_bpf_object(obj)
                problems += check_calls(info, kernel.version, hooks, common)
                if registration is not None:
                    problems += check_module_calls(
                        info, kfunc_names, registration, kernel.version, hooks
                    )
                blocking += missing_attach_targets(
                    info, kernel.version, functions | own_funcs, tracepoints | own_tps,
                    source.name if source is not None else None,
                )  # fmt: skip
    # A program type whose calls were refused need not be told twice.
    refused = {p.prog_type for p in problems}
    problems += [p for p in module_problems if p.prog_type not in refused]
    problems += blocking
    if problems:
        raise CheckError(problems)
    return built


def _module_names(module: ModuleBuild, kernel: Kernel) -> tuple[set[str], set[str]]:
    """The functions and tracepoints of a built module's own BTF: what fentry,
    kprobe, raw_tp and tp_btf programs may attach to once it is in."""
    from kfunc.btf import types as bt
    from kfunc.elf import ElfObject

    btf = ElfObject(module.ko).btf(base=ElfObject(kernel.vmlinux).btf())
    prefix = "btf_trace_"
    funcs = {t.name for t in btf.types(bt.Func)}
    tps = {t.name[len(prefix) :] for t in btf.types(bt.Typedef) if t.name.startswith(prefix)}
    return funcs, tps
