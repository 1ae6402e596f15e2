"""Checks of a BPF object against a target kernel, before anything is loaded.

Reading the object is pure (the same result on any machine): its programs with
their types (from section names, by libbpf's own table), and for each
``extern ... __ksym`` function, which programs call it (from the relocations).
The kernel side comes from the target's BTF and the module's sources.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError as _PyELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from kfunc.btf import types as bt
from kfunc.errors import ELFError
from kfunc.history import kfunc_hook_missing
from kfunc.kernels.version import KernelVersion

__all__ = [
    "BpfObjectInfo",
    "KfuncCall",
    "Problem",
    "Program",
    "check_calls",
    "check_registrations",
    "module_registrations",
    "read_bpf_object",
]

_REGISTER = re.compile(r"register_btf_kfunc_id_set\(\s*BPF_PROG_TYPE_(\w+)")
_FIX = {
    "kprobe": 'attach with fentry instead (SEC("fentry/<function>")) and register the kfunc '
    "set for BPF_PROG_TYPE_TRACING, or target a kernel >= 6.10 (--kernel 6.12)",
    "tracepoint": "attach with tp_btf or fentry instead, and register the kfunc set for "
    "BPF_PROG_TYPE_TRACING, or target a kernel >= 6.12",
    "perf_event": "target a kernel >= 6.12 (--kernel 6.12)",
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

    try:
        with Path(path).open("rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_BPF":
                raise ELFError(f"{path}: not a BPF object (machine {elf['e_machine']})",
                               "compile it with clang -target bpf")  # fmt: skip
            symtab = elf.get_section_by_name(".symtab")
            if not isinstance(symtab, SymbolTableSection):
                raise ELFError(f"{path}: no symbol table", "do not strip BPF objects")
            obj = ElfObject(path)
            btf = obj.btf() if obj.has_section(".BTF") else None
            ksyms = set()
            if btf is not None:
                sec = next((d for d in btf.types(bt.Datasec) if d.name == ".ksyms"), None)
                for var in sec.vars if sec else ():
                    t = btf[var.type]
                    if isinstance(t, bt.Func):
                        ksyms.add(t.name)
            programs: dict[tuple[int, int], Program] = {}
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
            calls = []
            for rel in elf.iter_sections():
                if not isinstance(rel, RelocationSection) or rel["sh_info"] == 0:
                    continue
                target = rel["sh_info"]
                owners = sorted((off, p) for (ndx, off), p in programs.items() if ndx == target)
                for r in rel.iter_relocations():
                    name = symtab.get_symbol(r["r_info_sym"]).name
                    if name not in ksyms:
                        continue
                    owner = [p for off, p in owners if off <= r["r_offset"]]
                    if owner:
                        calls.append(KfuncCall(owner[-1], name, name in weak))
    except _PyELFError as exc:
        raise ELFError(f"{path}: malformed ELF: {exc}", "rebuild the object") from None
    except OSError as exc:
        raise ELFError(f"{path}: {exc.strerror}") from None
    unique = tuple(dict.fromkeys(calls))
    return BpfObjectInfo(Path(path), tuple(programs.values()), tuple(sorted(ksyms)), unique)


def check_calls(
    info: BpfObjectInfo, version: KernelVersion, hooks: set[str] | None
) -> list[Problem]:
    """The calls of ``info`` that cannot work on this kernel."""
    problems = []
    for call in info.calls:
        prog = call.program
        if prog.prog_type is None:
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
    """Program types a module's sources register kfunc sets for (libbpf names)."""
    found = []
    for src in sources:
        if src.suffix in (".c", ".h"):
            for m in _REGISTER.finditer(src.read_text(errors="replace")):
                found.append(m[1].lower())
    return list(dict.fromkeys(found))


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
