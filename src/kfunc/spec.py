"""A kfunc module spec: the kfuncs a module defines, as TOML or from Python.

::

    [module]
    name = "refobj"
    description = "A refcounted object handed to BPF programs"
    prog_types = ["syscall", "tracing"]        # what the kfunc set is registered for
    includes = ["linux/slab.h"]
    helpers = '''
    struct refobj { refcount_t ref; u64 value; };
    '''

    [[kfunc]]
    name = "refobj_new"
    proto = "struct refobj *refobj_new(u64 value)"
    flags = ["KF_ACQUIRE", "KF_RET_NULL"]
    body = '''
    ...
    '''

A kfunc may name its own ``prog_types``; kfuncs with the same program types
share one kfunc set. ``optional = true`` makes the BPF side declare it
``__weak`` so a program can test for it with ``bpf_ksym_exists()``.
Every name is checked here, before it can reach C source or a shell: these
are the kernel's rules. The file's keys and types are :mod:`kfunc.schema`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kfunc.cproto import C_KEYWORDS, CProtoError, Prototype, parse_prototype
from kfunc.errors import SpecError
from kfunc.kernel_api.flags import KF_FLAGS
from kfunc.kernel_api.hooks import PROG_TYPE_HOOK

if TYPE_CHECKING:
    from kfunc.schema import KfuncToml

__all__ = [
    "MODULE_NAME_MAX",
    "KfuncSpec",
    "ModuleSpec",
    "SpecError",
    "load_spec",
    "module_name_problem",
    "spec_from_toml",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INCLUDE = re.compile(r"[A-Za-z0-9_./+-]+\.h")
_FLAG_NAMES = {f.name for f in KF_FLAGS}
# A module's name is at most MODULE_NAME_LEN - 1 characters: MODULE_NAME_LEN is
# MAX_PARAM_PREFIX_LEN, (64 - sizeof(unsigned long)) on x86_64 (include/linux/module.h
# and moduleparam.h, the same from 6.1 to 7.x); modpost refuses a longer one.
MODULE_NAME_MAX = 64 - 8 - 1


def module_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a module's name (None if it can)."""
    if not _IDENT.fullmatch(name):
        return f"{name!r} is not a C identifier"
    if name in C_KEYWORDS:
        return f"{name!r} is a C keyword"
    if name == "vmlinux":
        return "'vmlinux' is the kernel's own BTF object, not a module name"
    if len(name) > MODULE_NAME_MAX:
        return f"{name[:20]}... is {len(name)} characters, over the kernel's {MODULE_NAME_MAX}"
    return None


@dataclass(frozen=True)
class KfuncSpec:
    name: str
    proto: str  # the full C prototype: "u64 bpf_x(u32 a, u64 b)"
    body: str
    flags: tuple[str, ...] = ()
    prog_types: tuple[str, ...] | None = None  # None: the module's
    optional: bool = False
    dtor_for: str | None = None  # a destructor of this struct type, not in any kfunc set

    @property
    def prototype(self) -> Prototype:
        return parse_prototype(self.proto)

    @property
    def return_type(self) -> str:
        return self.prototype.return_type

    @property
    def params(self) -> str:
        return self.prototype.params


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    kfuncs: tuple[KfuncSpec, ...]
    prog_types: tuple[str, ...]
    description: str = ""
    includes: tuple[str, ...] = ()
    helpers: str = ""
    license: str = "GPL"
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    def sets(self) -> list[tuple[str, tuple[str, ...], list[KfuncSpec]]]:
        """The kfunc sets: (set name, program types, kfuncs), one per distinct program types."""
        groups: dict[tuple[str, ...], list[KfuncSpec]] = {}
        for k in self.kfuncs:
            if k.dtor_for:
                continue
            groups.setdefault(k.prog_types or self.prog_types, []).append(k)
        if len(groups) == 1:
            ((types, kfuncs),) = groups.items()
            return [(f"{self.name}_kfunc_ids", types, kfuncs)]
        return [
            (f"{self.name}_{'_'.join(types)}_kfunc_ids", types, kfuncs)
            for types, kfuncs in groups.items()
        ]


def _where(spec: ModuleSpec) -> str:
    return str(spec.path) if spec.path else f"module {spec.name!r}"


def _validate(spec: ModuleSpec) -> None:
    where = _where(spec)
    if problem := module_name_problem(spec.name):
        raise SpecError(
            f"{where}: module.name: {problem}",
            f"use letters, digits and underscores, not starting with a digit, at most "
            f"{MODULE_NAME_MAX} characters",
        )
    if not spec.kfuncs:
        raise SpecError(f"{where}: module: no [[kfunc]]", "declare at least one kfunc")
    if any(bad in spec.description for bad in ("*/", "\n", '"', "\\")):
        raise SpecError(
            f"{where}: module.description must be one line without quotes or */",
            "it goes into a C comment and MODULE_DESCRIPTION()",
        )
    for i, inc in enumerate(spec.includes):
        if not _INCLUDE.fullmatch(inc) or ".." in inc:
            raise SpecError(
                f"{where}: module.includes[{i}]: {inc!r} is not a header path", "e.g. linux/slab.h"
            )
    if spec.license not in ("GPL", "GPL v2", "Dual BSD/GPL", "Dual MIT/GPL"):
        raise SpecError(
            f"{where}: module.license {spec.license!r} is not GPL-compatible",
            "kfunc registration is GPL-only: use GPL or Dual BSD/GPL",
        )
    seen: set[str] = set()
    for i, k in enumerate(spec.kfuncs):
        _validate_kfunc(k, f"{where}: kfunc[{i}]", seen)
        key = f"kfunc[{i}].prog_types" if k.prog_types else "module.prog_types"
        for prog_type in k.prog_types or spec.prog_types:
            if prog_type not in PROG_TYPE_HOOK:
                raise SpecError(
                    f"{where}: {key}: program type {prog_type!r} cannot call kfuncs",
                    f"use one of {', '.join(sorted(PROG_TYPE_HOOK))}",
                )
    if not spec.prog_types and any(k.prog_types is None for k in spec.kfuncs):
        raise SpecError(
            f"{where}: module.prog_types: no program types to register the kfuncs for",
            'set [module] prog_types, e.g. ["tracing", "syscall"]',
        )


def _validate_kfunc(k: KfuncSpec, where: str, seen: set[str]) -> None:
    if not _IDENT.fullmatch(k.name) or k.name in C_KEYWORDS:
        what = "a C keyword" if k.name in C_KEYWORDS else "not a C identifier"
        raise SpecError(
            f"{where}.name: {k.name!r} is {what}",
            "name the kfunc with letters, digits and underscores, as its C function",
        )
    if k.name in seen:
        raise SpecError(f"{where}.name: kfunc {k.name} is declared twice", "remove one of them")
    seen.add(k.name)
    example = f'write one C declaration, e.g. "u64 {k.name}(u32 a, u64 b)"'
    try:
        proto = parse_prototype(k.proto)
    except CProtoError as exc:
        raise SpecError(f"{where}.proto: {exc}", example) from None
    if proto.name != k.name:
        raise SpecError(
            f"{where}.proto: declares {proto.name}(), not {k.name}()",
            f"name the function {k.name} in proto, or rename the kfunc",
        )
    for flag in k.flags:
        if flag not in _FLAG_NAMES:
            raise SpecError(
                f"{where}.flags: unknown flag {flag}",
                f"use KF_* flags the kernel knows: {', '.join(sorted(_FLAG_NAMES))}",
            )
    if "KF_RELEASE" in k.flags and proto.params == "void":
        raise SpecError(
            f"{where}: {k.name}: KF_RELEASE needs a pointer argument",
            "a release kfunc takes the object it releases",
        )
    if k.dtor_for is not None:
        if not _IDENT.fullmatch(k.dtor_for) or k.dtor_for in C_KEYWORDS:
            raise SpecError(
                f"{where}.dtor_for: {k.dtor_for!r} is not a struct name",
                'name the struct the destructor frees, e.g. dtor_for = "refobj"',
            )
        if proto.return_type != "void" or not re.fullmatch(r"void\s*\*\s*\w*", proto.params):
            raise SpecError(
                f"{where}.proto: destructor {k.name} must be declared void {k.name}(void *p)",
                "the kernel calls destructors through btf_dtor_kfunc_t",
            )


def spec_from_toml(doc: KfuncToml, path: Path) -> ModuleSpec | None:
    """The module a kfunc.toml declares for kfunc to generate, checked by the kernel's
    rules; None when it declares none (no [module], or a hand-written one's path)."""
    module = doc.module
    if module is None:
        if doc.kfunc:
            raise SpecError(
                f"{path}: kfunc[0]: [[kfunc]] without a [module] table",
                'add [module] with name = "..." and prog_types = [...]',
            )
        return None
    if module.path is not None:
        others = [
            key
            for key in ("name", "description", "prog_types", "includes", "helpers", "license")
            if getattr(module, key) != getattr(type(module)(), key)
        ]
        if others or doc.kfunc:
            what = ", ".join(f"module.{k}" for k in others) or "[[kfunc]]"
            raise SpecError(
                f"{path}: module.path names a hand-written module, but {what} declares one "
                "for kfunc to generate",
                "keep module.path for a module you wrote, or remove it to generate one",
            )
        return None
    if module.name is None:
        raise SpecError(f"{path}: module: no name key", 'add name = "..." to [module]')
    kfuncs = tuple(
        KfuncSpec(
            name=k.name,
            proto=k.proto,
            body=k.body,
            flags=tuple(k.flags),
            prog_types=None if k.prog_types is None else tuple(k.prog_types),
            optional=k.optional,
            dtor_for=k.dtor_for,
        )
        for k in doc.kfunc
    )
    return ModuleSpec(
        name=module.name,
        kfuncs=kfuncs,
        prog_types=tuple(module.prog_types),
        description=module.description,
        includes=tuple(module.includes),
        helpers=module.helpers,
        license=module.license,
        path=path,
    )


def load_spec(path: Path | str) -> ModuleSpec:
    """Read a spec from a kfunc.toml file (or the kfunc.toml of a directory)."""
    from kfunc.schema import FILE_NAME, read_kfunc_toml

    path = Path(path)
    if path.is_dir() and path.name != FILE_NAME:
        path = path / FILE_NAME
    if not path.exists():
        raise SpecError(f"{path}: no such file", "run `kfunc new NAME` to start one")
    spec = spec_from_toml(read_kfunc_toml(path), path)
    if spec is None:
        raise SpecError(
            f"{path}: no module declared for kfunc to generate",
            'add [module] with name = "..." and [[kfunc]] tables',
        )
    return spec
