"""libbpf's BTF parser, for the few lookups that must be fast inside a slow guest.

kfunc's own reader (``kfunc.btf``) is the one to use for inspecting BTF; this
binding parses in C, which matters under TCG emulation where a pure-Python
walk of vmlinux's 100k+ types takes seconds.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from kfunc.errors import BTFError
from kfunc.libbpf import _ctypes as lib
from kfunc.libbpf.object import libbpf_messages

__all__ = ["find_funcs", "open_btf"]

_BTF_KIND_FUNC = 12


def open_btf(path: Path, base: int | None) -> int:
    """``btf__parse`` (or ``btf__parse_split`` over ``base``); the caller frees it."""
    if not path.is_file():
        raise BTFError(f"{path}: no such file", fix="pass a BTF or ELF file with a .BTF section")
    with libbpf_messages():
        btf = (
            lib.btf__parse_split(os.fsencode(path), base)
            if base
            else lib.btf__parse(os.fsencode(path), None)
        )
        if not btf:
            err = ctypes.get_errno()
            hint = (
                "pass the BTF it was split from as base_btf (vmlinux for a module)"
                if base is None
                else "check that base_btf is the BTF this file was built against"
            )
            raise BTFError(f"{path}: cannot parse BTF: {lib.strerror(err)}", fix=hint)
    return btf


def find_funcs(path: Path, base_path: Path, names: list[str]) -> dict[str, int | None]:
    """The BTF ids of FUNCs ``names`` in the split BTF ``path`` over ``base_path``."""
    base = open_btf(base_path, None)
    try:
        btf = open_btf(path, base)
        try:
            found = {}
            for name in names:
                type_id = lib.btf__find_by_name_kind(btf, name.encode(), _BTF_KIND_FUNC)
                found[name] = type_id if type_id > 0 else None
            return found
        finally:
            lib.btf__free(btf)
    finally:
        lib.btf__free(base)
