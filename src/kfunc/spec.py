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
Every name is checked here, before it can reach C source or a shell.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError
from kfunc.history import PROG_TYPE_HOOK
from kfunc.inputs import read_text
from kfunc.kf_flags import KF_FLAGS

__all__ = ["KfuncSpec", "ModuleSpec", "SpecError", "load_spec"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INCLUDE = re.compile(r"[A-Za-z0-9_./+-]+\.h")
# "<return type> name(<params>)": the name is the last identifier before "(".
_PROTO = re.compile(
    r"^\s*(?P<ret>[^()]*?[\s*])(?P<name>[A-Za-z_]\w*)\s*\((?P<params>.*)\)\s*;?\s*$"
)
_FLAG_NAMES = {f.name for f in KF_FLAGS}


class SpecError(KfuncError):
    """A spec that cannot become a module; names the field and the fix."""


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
    def return_type(self) -> str:
        m = _PROTO.match(self.proto)
        assert m is not None
        return m["ret"].strip()

    @property
    def params(self) -> str:
        m = _PROTO.match(self.proto)
        assert m is not None
        return m["params"].strip() or "void"


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
    if not _IDENT.fullmatch(spec.name):
        raise SpecError(
            f"{where}: [module] name {spec.name!r} is not a C identifier",
            "use letters, digits and underscores, not starting with a digit",
        )
    if not spec.kfuncs:
        raise SpecError(f"{where}: no [[kfunc]]", "declare at least one kfunc")
    if any(bad in spec.description for bad in ("*/", "\n", '"', "\\")):
        raise SpecError(
            f"{where}: [module] description must be one line without quotes or */",
            "it goes into a C comment and MODULE_DESCRIPTION()",
        )
    for inc in spec.includes:
        if not _INCLUDE.fullmatch(inc) or ".." in inc:
            raise SpecError(f"{where}: include {inc!r} is not a header path", "e.g. linux/slab.h")
    if spec.license not in ("GPL", "GPL v2", "Dual BSD/GPL", "Dual MIT/GPL"):
        raise SpecError(
            f"{where}: license {spec.license!r} is not GPL-compatible",
            "kfunc registration is GPL-only: use GPL or Dual BSD/GPL",
        )
    seen: set[str] = set()
    for k in spec.kfuncs:
        if not _IDENT.fullmatch(k.name):
            raise SpecError(f"{where}: kfunc name {k.name!r} is not a C identifier")
        if k.name in seen:
            raise SpecError(f"{where}: kfunc {k.name} is declared twice", "remove one of them")
        seen.add(k.name)
        m = _PROTO.match(k.proto)
        if m is None or m["name"] != k.name:
            raise SpecError(
                f"{where}: kfunc {k.name}: proto {k.proto!r} does not declare {k.name}()",
                f'write it as C, e.g. "u64 {k.name}(u32 a, u64 b)"',
            )
        for flag in k.flags:
            if flag not in _FLAG_NAMES:
                raise SpecError(
                    f"{where}: kfunc {k.name}: unknown flag {flag}",
                    f"use KF_* flags the kernel knows: {', '.join(sorted(_FLAG_NAMES))}",
                )
        if "KF_RELEASE" in k.flags and k.params == "void":
            raise SpecError(f"{where}: kfunc {k.name}: KF_RELEASE needs a pointer argument")
        if k.dtor_for is not None:
            if not _IDENT.fullmatch(k.dtor_for):
                raise SpecError(f"{where}: kfunc {k.name}: dtor_for {k.dtor_for!r} is not a type")
            if k.return_type != "void" or not re.fullmatch(r"void\s*\*\s*\w*", k.params):
                raise SpecError(
                    f"{where}: destructor {k.name} must be declared void {k.name}(void *p)",
                    "the kernel calls destructors through btf_dtor_kfunc_t",
                )
        for prog_type in k.prog_types or spec.prog_types:
            if prog_type not in PROG_TYPE_HOOK:
                raise SpecError(
                    f"{where}: program type {prog_type!r} cannot call kfuncs",
                    f"use one of {', '.join(sorted(PROG_TYPE_HOOK))}",
                )
    if not spec.prog_types and any(k.prog_types is None for k in spec.kfuncs):
        raise SpecError(
            f"{where}: no program types to register the kfuncs for",
            'set [module] prog_types, e.g. ["tracing", "syscall"]',
        )


def _strings(value: Any, field_name: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"{where}: {field_name} must be a list of strings")
    return tuple(value)


def load_spec(path: Path | str) -> ModuleSpec:
    """Read a spec from a kfunc.toml file (or the kfunc.toml of a directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "kfunc.toml"
    try:
        data = tomllib.loads(read_text(path, "toml"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file", "run `kfunc new NAME` to start one") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}", "fix the TOML syntax") from None
    where = str(path)
    module = data.get("module")
    if not isinstance(module, dict):
        raise SpecError(f"{where}: no [module] table", 'add [module] with name = "..."')
    kfuncs = []
    for i, raw in enumerate(data.get("kfunc", [])):
        if not isinstance(raw, dict) or not {"name", "proto", "body"} <= raw.keys():
            raise SpecError(f"{where}: [[kfunc]] #{i + 1} needs name, proto and body")
        prog_types = raw.get("prog_types")
        if prog_types is not None:
            prog_types = _strings(prog_types, "prog_types", where)
        kfuncs.append(
            KfuncSpec(
                name=str(raw["name"]),
                proto=str(raw["proto"]),
                body=str(raw["body"]),
                flags=_strings(raw.get("flags"), "flags", where),
                prog_types=None
                if prog_types is None
                else _strings(prog_types, "prog_types", where),
                optional=bool(raw.get("optional", False)),
                dtor_for=None if raw.get("dtor_for") is None else str(raw["dtor_for"]),
            )
        )
    return ModuleSpec(
        name=str(module.get("name", "")),
        kfuncs=tuple(kfuncs),
        prog_types=_strings(module.get("prog_types"), "prog_types", where),
        description=str(module.get("description", "")),
        includes=_strings(module.get("includes"), "includes", where),
        helpers=str(module.get("helpers", "")),
        license=str(module.get("license", "GPL")),
        path=path,
    )
