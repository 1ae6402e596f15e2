"""A BPF object (what clang -target bpf writes), read once from its ELF file.

:func:`read_bpf_object` reads everything kfunc asks of an object in one pass:
its programs (global functions) with their program types (from section names,
by :mod:`kfunc.check.sections`), its ``extern ... __ksym`` functions (the
kfuncs, from the ``.ksyms`` DATASEC of its BTF), its relocations, the kfunc
calls of each program (a relocation that names a kfunc), the BPF helpers
each program's own instructions call, and its line info (``.BTF.ext``, see
:mod:`kfunc.btf.ext`). Reading is pure: the same file reads the same on any
machine; nothing looks at the running kernel or its libbpf.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from kfunc.btf import types as bt
from kfunc.btf.ext import read_line_records
from kfunc.btf.parse import BTF
from kfunc.check.sections import prog_type_of_section
from kfunc.elf import PARSE_ERRORS, ElfObject
from kfunc.errors import ELFError
from kfunc.inputs import read_bytes
from kfunc.verifier import LineInfo

__all__ = [
    "BPF_FUNC_KPTR_XCHG",
    "BpfObjectInfo",
    "KfuncCall",
    "Program",
    "Relocation",
    "read_bpf_object",
    "read_line_info",
]

#: BPF_JMP | BPF_CALL; src_reg 0 calls a helper (imm: its id), 1 a subprogram
#: (BPF_PSEUDO_CALL), 2 a kfunc (BPF_PSEUDO_KFUNC_CALL).
_CALL = 0x85
#: bpf_kptr_xchg (BPF_FUNC_kptr_xchg, 6.0): moves a reference into a map value.
BPF_FUNC_KPTR_XCHG = 194


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
class Relocation:
    """A relocation of a code section: the instruction at byte ``offset`` of
    ``section`` refers to ``symbol``."""

    section: str
    offset: int
    symbol: str


@dataclass(frozen=True)
class BpfObjectInfo:
    """A BPF object's programs, kfunc externs, calls, relocations and line info."""

    path: Path
    programs: tuple[Program, ...]
    kfuncs: tuple[str, ...]  # every extern __ksym function, called or not
    calls: tuple[KfuncCall, ...]
    relocations: tuple[Relocation, ...] = ()
    #: The instructions of each section that relocations apply to, by name.
    code: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    #: The object's BTF (None without a .BTF section) and each kfunc extern's
    #: FUNC_PROTO type id in it.
    btf: BTF | None = field(default=None, repr=False, compare=False)
    protos: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    #: Each program's line info by name (empty without ``.BTF.ext``), with
    #: instruction indexes counted from the program's first instruction, as the
    #: verifier's are. Subprograms that libbpf appends are not covered.
    line_info: dict[str, list[LineInfo]] = field(default_factory=dict, repr=False, compare=False)


def read_bpf_object(path: Path, *, require_btf: bool = True) -> BpfObjectInfo:
    """The object at ``path``, read once.

    With ``require_btf`` (the default), an object built without ``-g`` is an
    error: without BTF, which externs are kfuncs (.ksyms) and what they declare
    cannot be read, and "0 kfunc calls" would be a false ok. Without it (an
    object kfunc compiled itself), its programs and relocations are still read.
    """
    path = Path(path)
    data = read_bytes(path, "object")
    try:
        return _read(data, path, require_btf)
    except PARSE_ERRORS as exc:
        raise ELFError(f"{path}: malformed ELF: {exc}", "rebuild the object") from None


@dataclass
class _Function:
    name: str
    section: str
    shndx: int
    start: int
    size: int
    global_: bool


def _read(data: bytes, path: Path, require_btf: bool) -> BpfObjectInfo:
    elf = ELFFile(io.BytesIO(data))
    if elf["e_machine"] != "EM_BPF":
        raise ELFError(f"{path}: not a BPF object (machine {elf['e_machine']})",
                       "compile it with clang -target bpf")  # fmt: skip
    symtab = elf.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):
        raise ELFError(f"{path}: no symbol table", "do not strip BPF objects")
    missing = [s for s in (".BTF", ".BTF.ext") if elf.get_section_by_name(s) is None]
    if missing and require_btf:
        raise ELFError(
            f"{path}: built without -g (no {' and no '.join(missing)} section): its "
            "kfunc calls cannot be read",
            "compile it with clang -g -O2 -target bpf",
        )
    # .BTF and .BTF.ext through ElfObject, which refuses a section that claims
    # more than kfunc reads (kfunc.inputs.CAPS).
    sections = ElfObject(path, data)
    btf = sections.btf() if ".BTF" not in missing else None
    protos = _ksym_protos(btf) if btf is not None else {}

    functions: list[_Function] = []
    weak = set()
    symbols = list(symtab.iter_symbols())  # parsed once: relocations index them
    for sym in symbols:
        info = sym["st_info"]
        if info["bind"] == "STB_WEAK":
            weak.add(sym.name)
        if info["type"] != "STT_FUNC" or not isinstance(sym["st_shndx"], int):
            continue
        section = elf.get_section(sym["st_shndx"]).name
        global_ = info["bind"] != "STB_LOCAL"
        functions.append(
            _Function(sym.name, section, sym["st_shndx"], sym["st_value"], sym["st_size"], global_)
        )

    relocations = []
    code: dict[str, bytes] = {}
    for sec in elf.iter_sections():
        if not isinstance(sec, RelocationSection) or sec["sh_info"] == 0:
            continue
        target = elf.get_section(sec["sh_info"])
        if target.name == ".BTF.ext" or target.name.startswith(".debug_"):
            continue  # line info and DWARF: thousands of relocations, none to a kfunc
        code[target.name] = bytes(target.data())
        for entry in sec.iter_relocations():
            name = symbols[entry["r_info_sym"]].name
            relocations.append(Relocation(target.name, entry["r_offset"], name))

    programs: dict[tuple[str, int], Program] = {}
    for fn in functions:
        if not fn.global_:
            continue
        if fn.section not in code:
            code[fn.section] = bytes(elf.get_section(fn.shndx).data())
        kfunc_at = {r.offset for r in relocations if r.section == fn.section and r.symbol in protos}
        helpers, sub = _calls_in(code[fn.section], fn.start, fn.size, kfunc_at)
        programs[(fn.section, fn.start)] = Program(
            fn.name, fn.section, prog_type_of_section(fn.section), helpers, sub
        )

    calls = []
    for r in relocations:
        if r.symbol not in protos:
            continue
        owner = [
            p for (sec, off), p in sorted(programs.items()) if sec == r.section and off <= r.offset
        ]
        if owner:
            calls.append(KfuncCall(owner[-1], r.symbol, r.symbol in weak))

    line_info: dict[str, list[LineInfo]] = {}
    if btf is not None and ".BTF.ext" not in missing:
        records = read_line_records(sections.section(".BTF.ext"), btf, str(path))
        for fn in functions:
            end = fn.start + (fn.size or 1 << 30)
            line_info[fn.name] = [
                LineInfo((r.insn_off - fn.start) // 8, Path(r.file).name, r.line, r.column, r.text)
                for r in records.get(fn.section, ())
                if fn.start <= r.insn_off < end
            ]
    return BpfObjectInfo(
        path,
        tuple(programs.values()),
        tuple(sorted(protos)),
        tuple(dict.fromkeys(calls)),
        tuple(relocations),
        code,
        btf,
        protos,
        line_info,
    )


def _ksym_protos(btf: BTF) -> dict[str, int]:
    """The FUNC_PROTO type id of each ``extern ... __ksym`` function of an object's BTF."""
    sec = next((d for d in btf.types(bt.Datasec) if d.name == ".ksyms"), None)
    out = {}
    for var in sec.vars if sec else ():
        t = btf[var.type]
        if isinstance(t, bt.Func):
            out[t.name] = t.type
    return out


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


def read_line_info(path: Path) -> dict[str, list[LineInfo]]:
    """Each program's BTF line info (``.BTF.ext``), by program name (see
    :attr:`BpfObjectInfo.line_info`); empty for an object built without ``-g``."""
    return read_bpf_object(path, require_btf=False).line_info
