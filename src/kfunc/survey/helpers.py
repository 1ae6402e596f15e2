"""BPF helpers as ``include/uapi/linux/bpf.h`` lists them.

Three shapes over the kernel's history:

* 3.18 - 4.x: ``enum bpf_func_id { BPF_FUNC_unspec, BPF_FUNC_map_lookup_elem, ...
  __BPF_FUNC_MAX_ID, };`` written out by hand;
* from 4.x (the mapper arrived with the helper-name printing of the verifier)
  up to 6.1: the mapper macro ``#define __BPF_FUNC_MAPPER(FN) FN(unspec)
  FN(map_lookup_elem) ...``, which the enum expands;
* from 6.2: ``#define ___BPF_FUNC_MAPPER(FN, ctx...) FN(unspec, 0, ##ctx)
  FN(map_lookup_elem, 1, ##ctx) ...`` with explicit ids ("bpf: explicitly
  define BPF_FUNC_xxx integer values", v6.2).

``unspec`` (id 0) is a placeholder, not a helper.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kfunc.survey.cparse import defines, strip_comments

__all__ = ["helpers_from_header"]

_MAPPERS = ("___BPF_FUNC_MAPPER", "__BPF_FUNC_MAPPER")
_FN = re.compile(r"\bFN\s*\(\s*(\w+)")
_ENUM = re.compile(r"\benum\s+bpf_func_id\s*\{(.*?)\}", re.S)
_ENUM_ENTRY = re.compile(r"(?<![\w])BPF_FUNC_(\w+)")


def helpers_from_header(text: str) -> list[str]:
    """The helper names (without ``bpf_``) of a bpf.h, in id order."""
    text = strip_comments(text)
    macros = defines(text)
    for mapper in _MAPPERS:
        if mapper in macros:
            names = _FN.findall(macros[mapper][1])
            if names:
                return _unique(n for n in names if n != "unspec")
    m = _ENUM.search(text)
    if m is None:
        return []
    return _unique(n for n in _ENUM_ENTRY.findall(m[1]) if n != "unspec")


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
