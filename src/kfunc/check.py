"""Checks of a BPF object against a target kernel, before anything is loaded.

Reading the object is pure (the same result on any machine): its programs with
their types (from section names, by libbpf's own table), and for each
``extern ... __ksym`` function, which programs call it (from the relocations).
The kernel side comes from the target's BTF and the module's sources.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from kfunc.btf import types as bt
from kfunc.elf import PARSE_ERRORS
from kfunc.errors import ELFError
from kfunc.inputs import check_file, os_error
from kfunc.kernel_api.hooks import PROG_TYPE_HOOK, kfunc_hook_missing
from kfunc.kernel_api.version import KernelVersion

if TYPE_CHECKING:
    from kfunc.btf.parse import BTF
    from kfunc.csource import ModuleC
    from kfunc.inventory import Kfunc
    from kfunc.kernels.target import Kernel
    from kfunc.progress import Progress
    from kfunc.spec import ModuleSpec
    from kfunc.verifier import LineInfo

VMLINUX = "vmlinux"

__all__ = [
    "BpfObjectInfo",
    "CallReport",
    "Finding",
    "KernelView",
    "KfuncCall",
    "Problem",
    "Program",
    "Registration",
    "check_calls",
    "check_module_calls",
    "check_object",
    "check_registrations",
    "kernel_view",
    "ksym_protos",
    "module_registrations",
    "prototypes_compatible",
    "read_bpf_object",
    "read_line_info",
    "registration_from_sources",
    "registration_from_spec",
    "registration_of",
]


def _from(prog_type: str) -> str:
    """The release from which ``prog_type`` programs may call kfuncs (kernel_api.hooks)."""
    since = PROG_TYPE_HOOK[prog_type].since
    assert since is not None
    return since.series


_FIX = {
    "kprobe": 'attach with fentry instead (SEC("fentry/<function>")) and register the kfunc '
    f"set for BPF_PROG_TYPE_TRACING, or target a kernel >= {_from('kprobe')} (--kernel 6.12)",
    "tracepoint": "attach with tp_btf or fentry instead, and register the kfunc set for "
    f"BPF_PROG_TYPE_TRACING, or target a kernel >= {_from('tracepoint')}",
    "perf_event": f"target a kernel >= {_from('perf_event')} (--kernel 6.12)",
    "unspec": "register the set for the program types that call its kfuncs (e.g. "
    f"BPF_PROG_TYPE_TRACING), or target a kernel >= {_from('unspec')}",
}


@dataclass(frozen=True)
class Problem:
    """Something that cannot work on the target, with the fix, about one program type."""

    message: str
    fix: str | None
    prog_type: str


@dataclass(frozen=True)
class Program:
    name: str
    section: str
    prog_type: str | None  # libbpf's name for it (kprobe, tracing, xdp ...), None if unknown
    #: The BPF helpers its own instructions call (by id), and whether it calls
    #: subprograms (BPF_PSEUDO_CALL), which this reading does not follow.
    helpers: frozenset[int] = frozenset()
    calls_subprograms: bool = False


@dataclass(frozen=True)
class KfuncCall:
    program: Program
    kfunc: str
    weak: bool


@dataclass(frozen=True)
class BpfObjectInfo:
    path: Path
    programs: tuple[Program, ...]
    kfuncs: tuple[str, ...]  # every extern __ksym function, called or not
    calls: tuple[KfuncCall, ...]


def read_bpf_object(path: Path) -> BpfObjectInfo:
    """The programs of a BPF object and the kfuncs each one calls."""
    from kfunc.elf import ElfObject
    from kfunc.libbpf import prog_type_by_section

    check_file(path, "object")
    try:
        with Path(path).open("rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_BPF":
                raise ELFError(f"{path}: not a BPF object (machine {elf['e_machine']})",
                               "compile it with clang -target bpf")  # fmt: skip
            symtab = elf.get_section_by_name(".symtab")
            if not isinstance(symtab, SymbolTableSection):
                raise ELFError(f"{path}: no symbol table", "do not strip BPF objects")
            # Without BTF, which externs are kfuncs (.ksyms) and what they
            # declare cannot be read: "0 kfunc calls" would be a false ok.
            missing = [s for s in (".BTF", ".BTF.ext") if elf.get_section_by_name(s) is None]
            if missing:
                raise ELFError(
                    f"{path}: built without -g (no {' and no '.join(missing)} section): its "
                    "kfunc calls cannot be read",
                    "compile it with clang -g -O2 -target bpf",
                )
            obj = ElfObject(path)
            btf = obj.btf()
            ksyms = set()
            if btf is not None:
                sec = next((d for d in btf.types(bt.Datasec) if d.name == ".ksyms"), None)
                for var in sec.vars if sec else ():
                    t = btf[var.type]
                    if isinstance(t, bt.Func):
                        ksyms.add(t.name)
            programs: dict[tuple[int, int], Program] = {}
            sizes: dict[tuple[int, int], int] = {}
            weak = set()
            for sym in symtab.iter_symbols():
                if sym["st_info"]["bind"] == "STB_WEAK":
                    weak.add(sym.name)
                if sym["st_info"]["type"] != "STT_FUNC" or sym["st_info"]["bind"] == "STB_LOCAL":
                    continue
                shndx = sym["st_shndx"]
                if not isinstance(shndx, int):
                    continue
                section = elf.get_section(shndx).name
                programs[(shndx, sym["st_value"])] = Program(
                    sym.name, section, prog_type_by_section(section)
                )
                sizes[(shndx, sym["st_value"])] = sym["st_size"]
            calls = []
            kfunc_at: dict[int, set[int]] = {}
            for rel in elf.iter_sections():
                if not isinstance(rel, RelocationSection) or rel["sh_info"] == 0:
                    continue
                target = rel["sh_info"]
                owners = sorted((off, p) for (ndx, off), p in programs.items() if ndx == target)
                for r in rel.iter_relocations():
                    name = symtab.get_symbol(r["r_info_sym"]).name
                    if name not in ksyms:
                        continue
                    kfunc_at.setdefault(target, set()).add(r["r_offset"])
                    owner = [p for off, p in owners if off <= r["r_offset"]]
                    if owner:
                        calls.append(KfuncCall(owner[-1], name, name in weak))
            # what each program's own instructions call besides kfuncs
            for (ndx, off), prog in list(programs.items()):
                code = elf.get_section(ndx).data()
                helpers, sub = _calls_in(code, off, sizes[(ndx, off)], kfunc_at.get(ndx, set()))
                programs[(ndx, off)] = dataclasses.replace(
                    prog, helpers=helpers, calls_subprograms=sub
                )
            calls = [
                dataclasses.replace(c, program=programs[k])
                for c in calls
                for k in [next(k for k, p in programs.items() if p.name == c.program.name)]
            ]
    except PARSE_ERRORS as exc:
        raise ELFError(f"{path}: malformed ELF: {exc}", "rebuild the object") from None
    except OSError as exc:
        raise os_error(str(path), exc) from None
    unique = tuple(dict.fromkeys(calls))
    return BpfObjectInfo(Path(path), tuple(programs.values()), tuple(sorted(ksyms)), unique)


#: BPF_JMP | BPF_CALL; src_reg 0 calls a helper (imm: its id), 1 a subprogram
#: (BPF_PSEUDO_CALL), 2 a kfunc (BPF_PSEUDO_KFUNC_CALL).
_CALL = 0x85
#: bpf_kptr_xchg (BPF_FUNC_kptr_xchg, 6.0): moves a reference into a map value.
BPF_FUNC_KPTR_XCHG = 194


def _calls_in(
    code: bytes, start: int, size: int, kfunc_at: set[int]
) -> tuple[frozenset[int], bool]:
    """The helper ids a function's instructions call, and whether it calls subprograms
    (in an object, a kfunc call is a pseudo call too: ``kfunc_at`` are their offsets,
    from the relocations that name a ksym)."""
    helpers = set()
    subprograms = False
    end = min(len(code), start + size) if size else len(code)
    for off in range(start, end - 7, 8):
        if code[off] != _CALL:
            continue
        src = code[off + 1] >> 4
        imm = int.from_bytes(code[off + 4 : off + 8], "little", signed=True)
        if src == 0:
            helpers.add(imm)
        elif src == 1 and off not in kfunc_at:
            subprograms = True
    return frozenset(helpers), subprograms


def check_calls(
    info: BpfObjectInfo,
    version: KernelVersion,
    hooks: set[str] | None,
    common: Iterable[str] = (),
) -> list[Problem]:
    """The calls of ``info`` that cannot work on this kernel. ``common`` kfuncs are
    in the common hook (registered for BPF_PROG_TYPE_UNSPEC), which the verifier
    looks in first for every program type, with a hook of its own or not."""
    everywhere = set(common) if hooks is None or "COMMON" in hooks else set()
    problems = []
    for call in info.calls:
        prog = call.program
        if prog.prog_type is None or call.kfunc in everywhere:
            continue
        why = kfunc_hook_missing(prog.prog_type, version, hooks)
        if why:
            problems.append(
                Problem(
                    f"prog '{prog.name}' ({prog.section}) calls kfunc {call.kfunc}, but {why}",
                    _FIX.get(prog.prog_type),
                    prog.prog_type,
                )
            )
    return problems


def module_registrations(sources: list[Path]) -> list[str]:
    """Program types a module's sources register kfunc sets for (libbpf names), read
    as C (see :mod:`kfunc.csource`)."""
    from kfunc.csource import read_module_c

    return list(read_module_c(sources).prog_types)


def check_registrations(
    module: str, prog_types: list[str], version: KernelVersion, hooks: set[str] | None
) -> list[Problem]:
    """Problems with a module's register_btf_kfunc_id_set() calls on this kernel."""
    problems = []
    for prog_type in prog_types:
        why = kfunc_hook_missing(prog_type, version, hooks)
        if why:
            problems.append(
                Problem(
                    f"module {module} registers its kfunc set for "
                    f"BPF_PROG_TYPE_{prog_type.upper()}, which fails with -EINVAL: {why}",
                    _FIX.get(prog_type),
                    prog_type,
                )
            )
    return problems


# --- line info ----------------------------------------------------------------


def read_line_info(path: Path) -> dict[str, list[LineInfo]]:
    """Each program's BTF line info (``.BTF.ext``), by program name, with instruction
    indexes counted from the program's first instruction (as the verifier's are).

    Empty for an object built without ``-g``. Subprograms that libbpf appends
    to a program are not covered.
    """
    import struct

    from kfunc.elf import ElfObject
    from kfunc.verifier import LineInfo

    obj = ElfObject(path)
    if not (obj.has_section(".BTF") and obj.has_section(".BTF.ext")):
        return {}
    btf = obj.btf()
    ext = obj.section(".BTF.ext")
    try:
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", ext)
        if magic != 0xEB9F:
            raise ELFError(f"{path}: .BTF.ext: bad magic {magic:#x}", "rebuild the object")
        _fi_off, _fi_len, li_off, li_len = struct.unpack_from("<IIII", ext, 8)
        at = hdr_len + li_off
        end = at + li_len
        (rec_size,) = struct.unpack_from("<I", ext, at)
        at += 4
        by_section: dict[str, list[tuple[int, int, int, int]]] = {}
        while at < end:
            sec_off, count = struct.unpack_from("<II", ext, at)
            at += 8
            recs = by_section.setdefault(btf.string(sec_off), [])
            for _ in range(count):
                recs.append(struct.unpack_from("<IIII", ext, at))
                at += rec_size
    except struct.error as exc:
        raise ELFError(f"{path}: .BTF.ext: truncated line info ({exc})", "rebuild it") from None
    starts = _program_starts(path)
    out: dict[str, list[LineInfo]] = {}
    for (section, start, size), name in starts.items():
        infos = []
        for insn_off, file_off, line_off, line_col in by_section.get(section, ()):
            if start <= insn_off < start + size:
                infos.append(
                    LineInfo(
                        (insn_off - start) // 8,
                        Path(btf.string(file_off)).name,
                        line_col >> 10,
                        line_col & 0x3FF,
                        btf.string(line_off),
                    )
                )
        out[name] = infos
    return out


def _program_starts(path: Path) -> dict[tuple[str, int, int], str]:
    """(section, offset, size) -> name of every global function of a BPF object."""
    with Path(path).open("rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        found = {}
        if isinstance(symtab, SymbolTableSection):
            for sym in symtab.iter_symbols():
                info = sym["st_info"]
                if info["type"] != "STT_FUNC" or not isinstance(sym["st_shndx"], int):
                    continue
                section = elf.get_section(sym["st_shndx"]).name
                found[(section, sym["st_value"], sym["st_size"] or 1 << 30)] = sym.name
        return found


# --- prototypes -----------------------------------------------------------------


def ksym_protos(btf: BTF) -> dict[str, int]:
    """The FUNC_PROTO type id of each ``extern ... __ksym`` function of an object's BTF."""
    sec = next((d for d in btf.types(bt.Datasec) if d.name == ".ksyms"), None)
    out = {}
    for var in sec.vars if sec else ():
        t = btf[var.type]
        if isinstance(t, bt.Func):
            out[t.name] = t.type
    return out


def _skip_mods(btf: BTF, type_id: int) -> tuple[int, bt.Type]:
    typ = btf[type_id]
    while isinstance(typ, bt.Typedef | bt.Const | bt.Volatile | bt.Restrict | bt.TypeTag):
        type_id = typ.type
        typ = btf[type_id]
    return type_id, typ


def _kinds_compat(a: bt.Type, b: bt.Type) -> bool:
    enums = (bt.Enum, bt.Enum64)
    return type(a) is type(b) or (isinstance(a, enums) and isinstance(b, enums))


def prototypes_compatible(local: BTF, local_id: int, target: BTF, target_id: int) -> bool:
    """libbpf 1.1's ``bpf_core_types_are_compat()``, the check its kfunc externs pass.

    Names are ignored below the root; any two STRUCTs (UNIONs, FWDs, ENUMs or
    ENUM64s, INTs) are compatible, but kinds must match (a forward declaration
    is not a struct); INTs of any size and sign are compatible (bitfield-like
    ones are not); modifiers and typedefs are skipped; PTRs and ARRAYs compare
    what they point to; FUNC_PROTOs need the same number of parameters and
    compatible parameter and return types. Recursion stops at depth 32.
    """
    depth = 32
    pending = [(local_id, target_id)]
    if not _kinds_compat(local[local_id], target[target_id]):
        return False
    while pending:
        lid, tid = pending.pop()
        depth -= 1
        if depth < 0:
            return False
        lid, lt = _skip_mods(local, lid)
        tid, tt = _skip_mods(target, tid)
        if not _kinds_compat(lt, tt):
            return False
        if isinstance(lt, bt.Void | bt.Struct | bt.Union | bt.Enum | bt.Enum64 | bt.Fwd):
            continue
        if isinstance(lt, bt.Int):
            assert isinstance(tt, bt.Int)
            if lt.offset or tt.offset:
                return False
        elif isinstance(lt, bt.Ptr | bt.Array):
            assert isinstance(tt, bt.Ptr | bt.Array)
            pending.append((lt.type, tt.type))
        elif isinstance(lt, bt.FuncProto):
            assert isinstance(tt, bt.FuncProto)
            if len(lt.params) != len(tt.params):
                return False
            pending.append((lt.return_type, tt.return_type))
            pending += [(lp.type, tp.type) for lp, tp in zip(lt.params, tt.params, strict=True)]
        else:
            return False
    return True


def _int_size_warnings(local: BTF, local_id: int, target: BTF, target_id: int) -> list[str]:
    """Integer parameters (and return value) whose sizes differ: libbpf lets them pass."""
    lp, tp = local[local_id], target[target_id]
    if not (isinstance(lp, bt.FuncProto) and isinstance(tp, bt.FuncProto)):
        return []
    if len(lp.params) != len(tp.params):
        return []
    from kfunc.btf.render import type_name

    pairs = [("the return value", lp.return_type, tp.return_type)]
    pairs += [
        (f"argument {i} ({q.name or p.name or '?'})", p.type, q.type)
        for i, (p, q) in enumerate(zip(lp.params, tp.params, strict=True))
    ]
    out = []
    for what, a, b in pairs:
        la, ta = local.resolve(a), target.resolve(b)
        if isinstance(la, bt.Int) and isinstance(ta, bt.Int) and la.size != ta.size:
            out.append(
                f"{what} is {type_name(local, a)} ({la.size} bytes) in the program but "
                f"{type_name(target, b)} ({ta.size} bytes) in the kernel"
            )
    return out


# --- whether a program type may call a kfunc -------------------------------------


@dataclass(frozen=True)
class Registration:
    """How a module registers its kfuncs: program types by kfunc (``by_kfunc``,
    from a spec) or for all of them (``prog_types``, from its sources), and where
    that was read (``source``)."""

    module: str
    prog_types: tuple[str, ...]
    source: str
    by_kfunc: dict[str, tuple[str, ...]] | None = None

    def types_for(self, kfunc: str) -> tuple[str, ...]:
        if self.by_kfunc is not None and kfunc in self.by_kfunc:
            return self.by_kfunc[kfunc]
        return self.prog_types


def registration_from_spec(spec: ModuleSpec) -> Registration:
    """A module spec's registrations: each kfunc's program types, or the module's."""
    by_kfunc = {k.name: k.prog_types or spec.prog_types for k in spec.kfuncs if not k.dtor_for}
    where = str(spec.path) if spec.path else f"spec of module {spec.name}"
    return Registration(spec.name, spec.prog_types, where, by_kfunc)


def registration_from_sources(module: str, sources: list[Path]) -> Registration | None:
    """A hand-written module's register_btf_kfunc_id_set() calls, each kfunc with the
    program types its own sets are registered for; None if it has none."""
    from kfunc.csource import read_module_c

    return registration_of(module, read_module_c(sources))


def registration_of(module: str, c: ModuleC) -> Registration | None:
    """:func:`registration_from_sources` of sources already read."""
    if not c.registrations:
        return None
    names = ", ".join(dict.fromkeys(r.where.partition(":")[0] for r in c.registrations))
    by_kfunc = {name: c.prog_types_of(name) for name, _ in c.kfuncs}
    return Registration(module, c.prog_types, f"register_btf_kfunc_id_set() in {names}", by_kfunc)


@dataclass
class KernelView:
    """What :func:`check_object` knows of a target kernel.

    ``kfuncs`` by name (vmlinux's and modules'); ``btf_of(owner)`` the BTF
    holding that owner's FUNCs (None if it cannot be read); ``registrations``
    of modules by name; ``probed``: for vmlinux kfuncs, what the kernel's own
    verifier accepted per program type (``kfunc ls --probe``), None if not probed.
    """

    name: str
    version: KernelVersion
    hooks: set[str] | None
    kfuncs: dict[str, Kfunc]
    btf_of: Callable[[str], BTF | None]
    registrations: dict[str, Registration] = field(default_factory=dict)
    probed: dict[str, dict[str, bool]] | None = None


@dataclass(frozen=True)
class Finding:
    """One thing about a call: ``severity`` is ``error`` (it cannot work),
    ``warning`` (it may not work as meant) or ``note``."""

    severity: str
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class CallReport:
    """A kfunc call checked against a kernel."""

    call: KfuncCall
    owner: str | None  # vmlinux, a module, None where it does not resolve
    prototype: str | None  # the kernel's
    allowed: bool | None  # may this program type call it; None: cannot tell
    allowed_by: str | None  # what said so
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        p = self.call.program
        return {
            "program": p.name,
            "section": p.section,
            "prog_type": p.prog_type,
            "kfunc": self.call.kfunc,
            "weak": self.call.weak,
            "owner": self.owner,
            "prototype": self.prototype,
            "allowed": self.allowed,
            "allowed_by": self.allowed_by,
            "ok": self.ok,
            "findings": [
                {"severity": f.severity, "message": f.message, "fix": f.fix} for f in self.findings
            ],
        }


def _hook(prog_type: str) -> str | None:
    entry = PROG_TYPE_HOOK.get(prog_type)
    return entry.hook if entry else None


def _allowed(
    call: KfuncCall, kfunc: Kfunc, view: KernelView
) -> tuple[bool | None, str | None, Finding | None]:
    """May ``call``'s program type call ``kfunc`` on this kernel: (verdict, by what, finding)."""
    prog = call.program
    ptype = prog.prog_type
    assert ptype is not None
    subject = f"prog '{prog.name}' ({prog.section}) calls kfunc {kfunc.name}"
    if kfunc.owner == VMLINUX and view.probed is not None and kfunc.name in view.probed:
        verdict = view.probed[kfunc.name].get(ptype)
        if verdict is not None:
            if verdict:
                return True, "probe", None
            ok_types = sorted(t for t, v in view.probed[kfunc.name].items() if v)
            return (
                False,
                "probe",
                Finding(
                    "error",
                    f"{subject}, but {view.name}'s verifier refuses it from {ptype} programs "
                    f"(probed: calling kernel function {kfunc.name} is not allowed)",
                    f"call it from {_some(ok_types)} programs"
                    if ok_types
                    else "no program type may call it on this kernel",
                ),
            )
    why = kfunc_hook_missing(ptype, view.version, view.hooks)
    if why and kfunc.owner == VMLINUX:
        # The common set (registered for BPF_PROG_TYPE_UNSPEC: iterators, RCU locks,
        # bpf_obj_new ...) is looked up first for every program type, hook or not
        # (btf_kfunc_id_set_contains, kernel/bpf/btf.c, 6.12 and 7.3).
        if _COMMON_SET in kfunc.sets:
            return True, "common kfunc set", None
        if all(s.startswith(".BTF_ids+") for s in kfunc.sets):  # sets found unnamed
            return (
                None,
                "kernel rules",
                Finding(
                    "note",
                    f"{subject}: {ptype} programs have no kfunc hook of their own; they may "
                    "call the kfuncs of the common set (registered for all program types), "
                    f"and whether {kfunc.name} is one is known only to the kernel",
                    f"run `kfunc ls --kernel {view.version.series} --probe` once to ask its "
                    "verifier",
                ),
            )
    if why and not (kfunc.owner == VMLINUX and view.probed is None and ptype in _NO_HOOK_OK):
        return False, "kernel rules", Finding("error", f"{subject}, but {why}", _FIX.get(ptype))
    if kfunc.owner == VMLINUX:
        return (
            None,
            "kernel rules",
            Finding(
                "note",
                f"{subject}: {ptype} programs have a kfunc hook on {view.name}; whether "
                f"{kfunc.name}'s set is registered for it is known only to the kernel",
                f"run `kfunc ls --kernel {view.version.series} --probe` once to ask its verifier",
            ),
        )
    reg = view.registrations.get(kfunc.owner)
    if reg is None:
        return (
            None,
            None,
            Finding(
                "note",
                f"{subject}: module {kfunc.owner}'s registrations are unknown",
                "pass the module's project directory or sources with --module to check them",
            ),
        )
    refused = _unregistered(subject, kfunc.name, ptype, reg, view.version, view.hooks)
    if refused is None:
        return True, reg.source, None
    return False, reg.source, refused


def _unregistered(
    subject: str,
    kfunc: str,
    prog_type: str,
    reg: Registration,
    version: KernelVersion,
    hooks: set[str] | None,
) -> Finding | None:
    """The error for a call to a module's ``kfunc`` from ``prog_type`` programs
    when the module registers it for none whose hook is theirs (or COMMON's);
    None if the call is registered."""
    types = reg.types_for(kfunc)
    registered = {_hook(t) for t in types if not kfunc_hook_missing(t, version, hooks)}
    if _hook(prog_type) in registered or "COMMON" in registered:
        return None
    return Finding(
        "error",
        f"{subject}, but module {reg.module} registers it for "
        f"{', '.join(types) or 'no program type'} only ({reg.source}): the verifier will "
        f"say 'calling kernel function {kfunc} is not allowed'",
        f"call it from {_some(types)} programs, or add {prog_type!r} to the program types it "
        "is registered for",
    )


def check_module_calls(
    info: BpfObjectInfo,
    kfuncs: Iterable[str],
    reg: Registration,
    version: KernelVersion,
    hooks: set[str] | None,
) -> list[Problem]:
    """The calls of ``info`` to ``kfuncs`` (a module's, registered as ``reg``)
    from program types the module does not register them for: the verifier
    refuses each. A program type with no kfunc hook at all on this kernel is
    :func:`check_calls`' to report."""
    names = set(kfuncs)
    problems = []
    for call in info.calls:
        prog = call.program
        ptype = prog.prog_type
        if call.kfunc not in names or ptype is None or kfunc_hook_missing(ptype, version, hooks):
            continue
        subject = f"prog '{prog.name}' ({prog.section}) calls kfunc {call.kfunc}"
        refused = _unregistered(subject, call.kfunc, ptype, reg, version, hooks)
        if refused is not None:
            problems.append(Problem(refused.message, refused.fix, ptype))
    return problems


# Program types without a hook of their own may still call kfuncs of the common
# set (BPF_PROG_TYPE_UNSPEC registrations: bpf_cast_to_kern_ctx ...).
_NO_HOOK_OK: frozenset[str] = frozenset()
#: vmlinux's kfunc set registered for every program type (kernel/bpf/helpers.c).
_COMMON_SET = "common_btf_ids"


def _some(types: Iterable[str]) -> str:
    types = list(types)
    return " or ".join(types) if len(types) < 3 else ", ".join(types[:-1]) + " or " + types[-1]


def check_object(
    info: BpfObjectInfo, view: KernelView, obj_btf: BTF | None = None
) -> list[CallReport]:
    """Every kfunc call of ``info`` checked against ``view``: does it resolve (in
    vmlinux or a module), does the declaration agree with the kernel's prototype
    (as libbpf checks it, plus a warning where integer sizes differ), may the
    program's type call it, and is it weak. Pure: nothing is loaded."""
    if obj_btf is None:
        from kfunc.elf import ElfObject

        obj = ElfObject(info.path)
        obj_btf = obj.btf() if obj.has_section(".BTF") else None
    protos = ksym_protos(obj_btf) if obj_btf is not None else {}
    reports = []
    for call in info.calls:
        reports.append(_check_call(call, view, obj_btf, protos))
    return _unreleased(info, view, reports)


#: kfuncs that take ownership of an object without being KF_RELEASE (the graph
#: insertions of bpf_experimental.h, 6.2+): an acquired node may end there.
_TAKES_OWNERSHIP = re.compile(r"^bpf_(?:list_push_(?:front|back)|rbtree_add|list_add)(?:_impl)?$")


def _unreleased(
    info: BpfObjectInfo, view: KernelView, reports: list[CallReport]
) -> list[CallReport]:
    """Add to each KF_ACQUIRE call of a program whose own instructions release
    nothing (no KF_RELEASE kfunc, no ownership-taking kfunc, no bpf_kptr_xchg) and
    call no subprogram (which might) an error: the reference leaks on every path."""
    by_program: dict[str, list[CallReport]] = {}
    for r in reports:
        by_program.setdefault(r.call.program.name, []).append(r)
    out = []
    for r in reports:
        k = view.kfuncs.get(r.call.kfunc)
        prog = r.call.program
        if k is None or "KF_ACQUIRE" not in (k.flags or ()) or prog.calls_subprograms:
            out.append(r)
            continue
        if BPF_FUNC_KPTR_XCHG in prog.helpers or any(
            "KF_RELEASE" in ((view.kfuncs[o.call.kfunc].flags or ()) if o.call.kfunc in view.kfuncs
                             else ()) or _TAKES_OWNERSHIP.match(o.call.kfunc)
            for o in by_program[prog.name]
        ):  # fmt: skip
            out.append(r)
            continue
        leak = Finding(
            "error",
            f"prog '{prog.name}' ({prog.section}) acquires a reference with {r.call.kfunc} "
            "(KF_ACQUIRE) and releases none: no KF_RELEASE kfunc, bpf_kptr_xchg or "
            "ownership-taking kfunc in its code; the verifier will say 'Unreleased reference'",
            "release it on every path with the matching KF_RELEASE kfunc, or store it in a "
            "map with bpf_kptr_xchg()",
        )
        out.append(dataclasses.replace(r, findings=(*r.findings, leak)))
    return out


def _check_call(
    call: KfuncCall, view: KernelView, obj_btf: BTF | None, protos: dict[str, int]
) -> CallReport:
    prog = call.program
    subject = f"prog '{prog.name}' ({prog.section}) calls kfunc {call.kfunc}"
    findings: list[Finding] = []
    kfunc = view.kfuncs.get(call.kfunc)
    if kfunc is None:
        close = difflib.get_close_matches(call.kfunc, view.kfuncs, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        if call.weak:
            findings.append(
                Finding(
                    "warning",
                    f"{subject} (__weak), which {view.name} does not have{hint}: "
                    "bpf_ksym_exists() is false there",
                    f"guard the call with if (bpf_ksym_exists({call.kfunc}))",
                )
            )
        else:
            findings.append(
                Finding(
                    "error",
                    f"{subject}, which is neither in {view.name}'s vmlinux nor in the given "
                    f"modules{hint}: libbpf will say 'extern (func ksym) '{call.kfunc}': not found "
                    "in kernel or module BTFs'",
                    "check the name with `kfunc ls`; pass the module that defines it with "
                    "--module; or declare it __weak and guard it with bpf_ksym_exists()",
                )
            )
        return CallReport(call, None, None, None, None, tuple(findings))
    if call.weak:
        findings.append(Finding("note", f"{subject}: declared __weak (optional)"))
    kbtf = view.btf_of(kfunc.owner)
    local_id = protos.get(call.kfunc)
    if kbtf is not None and obj_btf is not None and local_id is not None:
        func = kbtf.find(call.kfunc, bt.Func)
        if func is not None:
            if not prototypes_compatible(obj_btf, local_id, kbtf, func.type):
                from kfunc.btf.render import declaration

                mine = declaration(obj_btf, local_id, call.kfunc)
                findings.append(
                    Finding(
                        "error",
                        f"{subject} declared as `{mine}`, but {kfunc.owner} on {view.name} has "
                        f"`{kfunc.prototype}`: libbpf will say 'func_proto [N] incompatible with "
                        "kernel [M]'",
                        f"declare it as the kernel does: {kfunc.extern()} "
                        f"(`kfunc header --kfunc {call.kfunc}`); a struct must be defined, not "
                        "only forward-declared",
                    )
                )
            else:
                for w in _int_size_warnings(obj_btf, local_id, kbtf, func.type):
                    findings.append(
                        Finding(
                            "warning",
                            f"{subject}: {w}; libbpf accepts it, the value is truncated or "
                            "extended",
                            f"declare it as the kernel does: {kfunc.extern()}",
                        )
                    )
    allowed, by, finding = (None, None, None)
    if prog.prog_type is None:
        finding = Finding(
            "warning",
            f"{subject}: libbpf knows no program type for section {prog.section!r}",
            'use a section name libbpf knows (SEC("fentry/..."), "syscall" ...)',
        )
    else:
        allowed, by, finding = _allowed(call, kfunc, view)
    if finding is not None:
        findings.append(finding)
    flags = kfunc.flags or ()
    if "KF_DESTRUCTIVE" in flags:
        findings.append(
            Finding("note", f"{subject}: KF_DESTRUCTIVE, the loader needs CAP_SYS_BOOT")
        )
    if (
        "KF_SLEEPABLE" in flags
        and prog.prog_type not in (None, "syscall")
        and (".s/" not in prog.section and not prog.section.endswith(".s"))
    ):
        findings.append(
            Finding(
                "error",
                f"{subject}, which is KF_SLEEPABLE, from a program that may not sleep: the "
                f"verifier will say 'program must be sleepable to call sleepable kfunc "
                f"{call.kfunc}'",
                'use a sleepable section (SEC("fentry.s/..."), "lsm.s/...", "syscall")',
            )
        )
    return CallReport(call, kfunc.owner, kfunc.prototype, allowed, by, tuple(findings))


def kernel_view(
    kernel: Kernel,
    modules: Iterable[Path] = (),
    progress: Progress | None = None,
) -> KernelView:
    """The view of a target kernel :func:`check_object` needs: its inventory (vmlinux
    and its image's modules), its kfunc hooks, the probe cache if ``kfunc ls
    --probe`` ran, and ``modules``: .ko files or kfunc project directories (whose
    spec or sources say how the kfuncs are registered)."""
    from kfunc.elf import ElfObject
    from kfunc.inventory import file_inventory, kernel_inventory, module_name
    from kfunc.kernels.facts import kfunc_hooks
    from kfunc.probe import load_probe

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
    from kfunc.errors import KfuncError

    if path.is_dir():
        from kfunc.kbuild import build_module
        from kfunc.project import Project

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
    from kfunc.inventory import module_name

    sources = sorted(path.parent.glob("*.c"))
    spec_file = next((d / "kfunc.toml" for d in (path.parent, path.parent.parent)
                      if (d / "kfunc.toml").exists()), None)  # fmt: skip
    if spec_file is not None:
        from kfunc.spec import load_spec

        try:
            spec = load_spec(spec_file)
        except KfuncError:
            spec = None
        if spec is not None and spec.name == module_name(path):
            return path, registration_from_spec(spec)
    return path, registration_from_sources(module_name(path), sources)
