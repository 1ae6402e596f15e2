"""kfuncs as kernel sources declare them: the ID sets handed to the kfunc
registration APIs.

Each era's shape (include/linux/btf_ids.h and kernel/bpf/btf.c of the release):

* 5.13 - 5.15: a plain set ``BTF_SET_START(x) BTF_ID(func, f) ... BTF_SET_END(x)``
  tested by a ``*_check_kfunc_call()`` callback of ``struct bpf_verifier_ops``
  (``btf_id_set_contains(&x, kfunc_btf_id)``; net/ipv4/bpf_tcp_ca.c);
* 5.16 - 5.17: also module sets, ``DEFINE_KFUNC_BTF_ID_SET(&x, name)`` or
  ``struct kfunc_btf_id_set name = { .set = &x }``, given to
  ``register_kfunc_btf_id_set()`` (net/ipv4/tcp_bbr.c, tcp_cubic.c, tcp_dctcp.c);
* 5.18 - 5.19: ``struct btf_kfunc_id_set { .check_set = &x, .acquire_set = ...,
  .release_set = ..., .ret_null_set = ... }`` given to ``register_btf_kfunc_id_set()``;
* from 6.0: 8-byte sets with flags, ``BTF_SET8_START(x) BTF_ID_FLAGS(func, f, KF_...)
  ... BTF_SET8_END(x)`` in ``struct btf_kfunc_id_set { .set = &x }``; from 6.9
  ``BTF_KFUNCS_START``/``BTF_KFUNCS_END``, which also mark the set as kfuncs.

Not kfuncs, though written with the same macros: fmodret sets (a
``btf_kfunc_id_set`` given only to ``register_btf_fmodret_id_set()``, 6.2+: the
functions fmod_ret programs may attach to), plain sets used for anything else
(allow and deny lists of the verifier, LSM hooks), and the test kfuncs of
net/bpf/test_run.c, which the tree excludes by path with tools/, samples/ and
Documentation/.

A set may also hold a macro-generated list: net/core/xdp.c defines
``#define XDP_METADATA_KFUNC(_, __, name, ___) BTF_ID_FLAGS(func, name, ...)``
inside the set and invokes ``XDP_METADATA_KFUNC_xxx``, a list defined in
include/net/xdp.h. Such lists are expanded from the tree's own headers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kfunc.survey.cparse import call_args, calls, defines, strip_comments

__all__ = [
    "EXCLUDED_FILES",
    "FileSets",
    "IdSet",
    "KfuncSite",
    "is_excluded",
    "kfuncs_of",
    "not_counted_of",
    "parse_file",
]

EXCLUDED_PREFIXES = ("tools/", "Documentation/", "samples/")
# The kfuncs of BPF_PROG_TEST_RUN's own tests (bpf_kfunc_call_test1 ...).
EXCLUDED_FILES = frozenset({"net/bpf/test_run.c"})


def is_excluded(path: str) -> bool:
    return path.startswith(EXCLUDED_PREFIXES) or path in EXCLUDED_FILES


@dataclass(frozen=True)
class IdSet:
    """One ``BTF_*_START(name) ... BTF_*_END(name)`` block."""

    name: str
    kind: str  # "set" (BTF_SET_START), "set8" (BTF_SET8_START), "kfuncs" (BTF_KFUNCS_START)
    funcs: tuple[str, ...]  # BTF_ID(func, f) / BTF_ID_FLAGS(func, f, ...) entries
    # Macro-generated entries: (list macro invoked, local macro it calls, index of
    # the argument that names the function).
    generated: tuple[tuple[str, str, int], ...] = ()


@dataclass
class FileSets:
    """What one source file contributes; cacheable by the file's content."""

    sets: list[IdSet] = field(default_factory=list)
    kfunc_refs: set[str] = field(default_factory=set)  # sets registered as kfunc sets
    fmodret_refs: set[str] = field(default_factory=set)  # sets registered only as fmodret
    list_macros: dict[str, str] = field(default_factory=dict)  # *KFUNC* object-like macros

    @property
    def empty(self) -> bool:
        return not (self.sets or self.list_macros)


@dataclass(frozen=True)
class KfuncSite:
    """Where a kfunc name was found: file and set."""

    path: str
    set_name: str


_BLOCK = re.compile(
    r"^[ \t]*BTF_(SET8|KFUNCS|SET)_START\(\s*(\w+)\s*\)(.*?)^[ \t]*BTF_\1_END\(\s*\2\s*\)",
    re.M | re.S,
)
_ENTRY = re.compile(r"\bBTF_ID(?:_FLAGS)?\s*\(\s*func\s*,\s*(\w+)")
_LOCAL_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)\(([^)]*)\)(.*)$", re.M)
_STRUCT_INIT = re.compile(
    r"\bstruct\s+(btf_kfunc_id_set|kfunc_btf_id_set)\s+(\w+)\s*=\s*\{(.*?)\}\s*;", re.S
)
# The 5.13-5.17 callback, ``bool xxx_check_kfunc_call(u32 kfunc_btf_id[, struct module *])``;
# not the verifier's own ``int check_kfunc_call(struct bpf_verifier_env *, ...)``.
_CHECK_FN = re.compile(r"\bbool\s+\w*check_kfunc_call\w*\s*\(\s*u32\b[^;{)]*\)\s*\{")
_KFUNC_REGISTER = ("register_btf_kfunc_id_set", "register_kfunc_btf_id_set")
_FMODRET_REGISTER = "register_btf_fmodret_id_set"


def parse_file(text: str) -> FileSets:
    """The ID sets, registrations and KFUNC list macros of one C file or header."""
    text = strip_comments(text)
    out = FileSets()
    if "KFUNC" in text:
        for name, (params, body) in defines(text).items():
            if params is None and "KFUNC" in name and "(" in body:
                out.list_macros[name] = body
    if "BTF_" not in text:
        return out
    for m in _BLOCK.finditer(text):
        kind = {"SET": "set", "SET8": "set8", "KFUNCS": "kfuncs"}[m[1]]
        out.sets.append(IdSet(m[2], kind, *_entries(m[3])))
    if not out.sets:
        return out
    _registrations(text, out)
    return out


def _entries(body: str) -> tuple[tuple[str, ...], tuple[tuple[str, str, int], ...]]:
    funcs = list(_ENTRY.findall(body))
    generated = []
    # "#define M(a, b, name, c) BTF_ID_FLAGS(func, name, ...)" then "LIST" on a line.
    for m in _LOCAL_DEFINE.finditer(body):
        params = [p.strip() for p in m[2].split(",")]
        entry = _ENTRY.search(m[3])
        if entry and entry[1] in params:
            funcs = [f for f in funcs if f != entry[1]]
            index = params.index(entry[1])
            rest = _LOCAL_DEFINE.sub("", body)
            for word in re.findall(r"^[ \t]*(\w+)[ \t]*$", rest, re.M):
                generated.append((word, m[1], index))
    return tuple(dict.fromkeys(funcs)), tuple(generated)


def _registrations(text: str, out: FileSets) -> None:
    names = {s.name for s in out.sets}
    kfunc_structs: set[str] = set()
    fmodret_structs: set[str] = set()
    for api in _KFUNC_REGISTER:
        for args in calls(text, api):
            kfunc_structs.update(re.findall(r"&\s*(\w+)", args[-1]))
    for args in calls(text, _FMODRET_REGISTER):
        fmodret_structs.update(re.findall(r"&\s*(\w+)", args[-1]))
    for m in _STRUCT_INIT.finditer(text):
        refs = {r for r in re.findall(r"&\s*(\w+)", m[3]) if r in names}
        struct = m[2]
        if struct in fmodret_structs and struct not in kfunc_structs:
            out.fmodret_refs |= refs
        else:
            # Registered here, or defined here and registered elsewhere: kfuncs.
            out.kfunc_refs |= refs
    for args in calls(text, "DEFINE_KFUNC_BTF_ID_SET"):
        out.kfunc_refs.update(r for r in re.findall(r"&\s*(\w+)", args[0]) if r in names)
    for m in _CHECK_FN.finditer(text):
        body = _block_at(text, m.end() - 1)
        for args in calls(body, "btf_id_set_contains"):
            out.kfunc_refs.update(r for r in re.findall(r"&\s*(\w+)", args[0]) if r in names)
    out.fmodret_refs -= out.kfunc_refs


def _block_at(text: str, brace: int) -> str:
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace : i + 1]
    return text[brace:]


def is_kfunc_set(s: IdSet, fs: FileSets) -> bool:
    """A set of kfuncs: BTF_KFUNCS_START, or a set8 not registered only as fmodret,
    or a plain set that a kfunc registration API (or check callback) refers to."""
    if s.name in fs.fmodret_refs:
        return False
    if s.kind in ("kfuncs", "set8"):
        return True
    return s.name in fs.kfunc_refs


def kfuncs_of(
    files: Mapping[str, FileSets], list_macros: Mapping[str, str] | None = None
) -> dict[str, KfuncSite]:
    """Every kfunc name of a tree (path -> parsed file), each once, with the
    first place it was found (paths in sorted order)."""
    if list_macros is None:
        list_macros = merged_list_macros(files.values())
    found: dict[str, KfuncSite] = {}
    for path in sorted(files):
        if is_excluded(path):
            continue
        fs = files[path]
        for s in fs.sets:
            if not is_kfunc_set(s, fs):
                continue
            names = list(s.funcs)
            for list_macro, local, index in s.generated:
                names.extend(_expand(list_macros.get(list_macro, ""), local, index))
            for name in names:
                found.setdefault(name, KfuncSite(path, s.name))
    return found


def not_counted_of(files: Mapping[str, FileSets]) -> dict[str, str]:
    """Names the count leaves out although a build may register them: the sets
    of excluded files (test_run.c's test kfuncs) and fmodret sets; name -> path."""
    found: dict[str, str] = {}
    for path in sorted(files):
        fs = files[path]
        for s in fs.sets:
            if s.name in fs.fmodret_refs or (is_excluded(path) and is_kfunc_set(s, fs)):
                for name in s.funcs:
                    found.setdefault(name, path)
    return found


def merged_list_macros(files: Iterable[FileSets]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for fs in files:
        merged.update(fs.list_macros)
    return merged


def _expand(body: str, local: str, index: int) -> list[str]:
    out = []
    for m in re.finditer(rf"\b{re.escape(local)}\s*\(", body):
        got = call_args(body, m.end() - 1)
        if got is not None and index < len(got[0]) and re.fullmatch(r"\w+", got[0][index]):
            out.append(got[0][index])
    return out
