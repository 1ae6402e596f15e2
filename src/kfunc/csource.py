"""A hand-written kfunc module's C sources, read as C rather than grepped.

Comments and ``#if 0`` blocks are dropped first, so that the tutorial's
commented-out ``// unregister_btf_kfunc_id_set(BPF_PROG_TYPE_UNSPEC, ...)``
is not taken for a registration (nor would ``unregister_`` be ``register_``).
Then each kfunc set is followed from its ``BTF_KFUNCS_START(x)`` (before 6.9
``BTF_SET8_START(x)``) block, through the ``struct btf_kfunc_id_set`` whose
``.set = &x`` names it, to the ``register_btf_kfunc_id_set(TYPE, &that)``
calls: each kfunc gets the program types its own sets are registered for.

The sources are read without a configuration: every ``#ifdef`` branch counts,
as a reviewer reads them (see :mod:`kfunc.survey.cparse`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kfunc.inputs import read_text
from kfunc.survey.cparse import call_args, drop_if0, strip_comments

__all__ = ["KfuncSetC", "ModuleC", "RegistrationC", "c_text", "read_module_c"]

_SET = re.compile(
    r"^[ \t]*BTF_(SET8|KFUNCS)_START\(\s*(\w+)\s*\)(.*?)^[ \t]*BTF_\1_END\(\s*\2\s*\)",
    re.M | re.S,
)
_ENTRY = re.compile(r"\bBTF_ID_FLAGS\(\s*func\s*,\s*(\w+)\s*(?:,\s*([^)]*))?\)")
_ID_SET = re.compile(r"\bstruct\s+btf_kfunc_id_set\s+(\w+)\s*=\s*\{(.*?)\}\s*;", re.S)
_REGISTER = re.compile(r"\bregister_btf_kfunc_id_set\s*\(")
_PROG_TYPE = re.compile(r"^BPF_PROG_TYPE_(\w+)$")
_WORD = re.compile(r"\b\w+\b")
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)", re.M)
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)


@dataclass(frozen=True)
class KfuncSetC:
    """One ``BTF_KFUNCS_START(name)`` / ``BTF_SET8_START(name)`` block."""

    name: str
    kfuncs: tuple[tuple[str, tuple[str, ...]], ...]  # (kfunc, KF_* flags)
    where: str  # file:line


@dataclass(frozen=True)
class RegistrationC:
    """One ``register_btf_kfunc_id_set(BPF_PROG_TYPE_X, &id_set)`` call."""

    prog_type: str  # libbpf's spelling of X: kprobe, tracing, sched_cls, unspec ...
    id_set: str  # the struct btf_kfunc_id_set it registers
    sets: tuple[str, ...]  # the kfunc sets that struct names (.set = &x)
    where: str  # file:line


@dataclass(frozen=True)
class ModuleC:
    """What a module's sources declare about their kfuncs."""

    sets: tuple[KfuncSetC, ...]
    registrations: tuple[RegistrationC, ...]
    words: frozenset[str]  # every identifier the sources use (comments and #if 0 out)
    defines: frozenset[str]  # every macro they #define themselves

    @property
    def kfuncs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Every kfunc of every set, once, with its flags."""
        seen: dict[str, tuple[str, ...]] = {}
        for s in self.sets:
            for name, flags in s.kfuncs:
                seen.setdefault(name, flags)
        return tuple(seen.items())

    @property
    def prog_types(self) -> tuple[str, ...]:
        """Every program type some set is registered for, in source order."""
        return tuple(dict.fromkeys(r.prog_type for r in self.registrations))

    def prog_types_of(self, kfunc: str) -> tuple[str, ...]:
        """The program types the sets holding ``kfunc`` are registered for."""
        sets = {s.name for s in self.sets if any(k == kfunc for k, _ in s.kfuncs)}
        return tuple(dict.fromkeys(r.prog_type for r in self.registrations if sets & set(r.sets)))


def c_text(text: str) -> str:
    """C source as the compiler reads it, roughly: no comments, no ``#if 0`` blocks
    (line numbers kept)."""
    return drop_if0(strip_comments(text))


def read_module_c(files: Iterable[Path]) -> ModuleC:
    """The kfunc sets and registrations of a module's .c and .h files."""
    sets: list[KfuncSetC] = []
    id_sets: dict[str, tuple[str, ...]] = {}
    calls: list[tuple[str, str, str]] = []  # (prog type, id set, where)
    words: set[str] = set()
    defines: set[str] = set()
    paths = [p for p in files if p.suffix in (".c", ".h")]
    for path in paths:
        text = c_text(read_text(path, "source", errors="replace"))
        words.update(_WORD.findall(text))
        defines.update(_DEFINE.findall(text))
        # A shim header outside the module's directory (#include "../compat.h")
        # defines macros too.
        for name in _INCLUDE.findall(text):
            header = (path.parent / name).resolve()
            if header.is_file() and header not in paths:
                header_text = read_text(header, "source", errors="replace")
                defines.update(_DEFINE.findall(c_text(header_text)))
        for m in _SET.finditer(text):
            kfuncs = tuple(
                (e[1], tuple(f.strip() for f in (e[2] or "").split("|") if f.strip()))
                for e in _ENTRY.finditer(m[3])
            )
            sets.append(KfuncSetC(m[2], kfuncs, _where(path, text, m.start(2))))
        for m in _ID_SET.finditer(text):
            init = dict(
                re.findall(r"\.\s*(\w+)\s*=\s*&?\s*(\w+)", m[2])
            )  # .owner = THIS_MODULE, .set = &x
            id_sets[m[1]] = (init["set"],) if "set" in init else ()
        for m in _REGISTER.finditer(text):
            got = call_args(text, m.end() - 1)
            if got is None or len(got[0]) != 2:
                continue
            prog_type, arg = got[0]
            pt = _PROG_TYPE.match(prog_type.strip())
            ref = re.fullmatch(r"&?\s*(\w+)", arg.strip())
            if pt is None or ref is None:
                continue  # a variable program type: not known before the module runs
            calls.append((pt[1].lower(), ref[1], _where(path, text, m.start())))
    set_names = {s.name for s in sets}
    registrations = tuple(
        # A struct defined elsewhere (another object of the module) names sets
        # this reader did not see: take it to register all of them.
        RegistrationC(prog_type, struct, id_sets.get(struct, tuple(sorted(set_names))), where)
        for prog_type, struct, where in calls
    )
    return ModuleC(tuple(sets), registrations, frozenset(words), frozenset(defines))


def _where(path: Path, text: str, offset: int) -> str:
    return f"{path.name}:{text.count(chr(10), 0, offset) + 1}"
