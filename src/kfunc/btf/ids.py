"""``.BTF_ids``: the BTF id sets that ``resolve_btfids`` fills in at build time.

A kfunc set (``BTF_KFUNCS_START``, before 6.9 ``BTF_SET8_START``) is a
``struct btf_id_set8 { u32 cnt; u32 flags; struct { u32 id; u32 flags; } pairs[]; }``
at the symbol ``__BTF_ID__set8__<name>``; a plain ``BTF_SET_START`` set is a
``struct btf_id_set { u32 cnt; u32 ids[]; }`` at ``__BTF_ID__set__<name>``
(include/linux/btf_ids.h).

Sets are found two ways, both here: by those symbols (:func:`sets_at_symbols`),
or, in a vmlinux taken out of a bzImage (no symbols, and Debian's System.map
is a placeholder), by a validated scan of the section (:func:`scan_set8`).
This module decodes bytes only; :meth:`kfunc.elf.ElfObject.btf_id_sets`
gives it the section and symbols of an ELF file.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from kfunc.btf import format as fmt
from kfunc.errors import ELFError
from kfunc.kernel_api.flags import BTF_SET8_KFUNCS, KF_FLAGS, kf_flag_names

if TYPE_CHECKING:
    from kfunc.btf.parse import BTF

__all__ = [
    "SET8_PREFIX",
    "SET_PREFIX",
    "BTFIdEntry",
    "BTFIdSet",
    "scan_set8",
    "set_symbol",
    "sets_at_symbols",
]

SET8_PREFIX = "__BTF_ID__set8__"
SET_PREFIX = "__BTF_ID__set__"


@dataclass(frozen=True, slots=True)
class BTFIdEntry:
    """One ID of a set: a BTF type id (0 if resolve_btfids did not run) and its
    KF_* flags (always 0 in a plain set)."""

    btf_id: int
    flags: int

    @property
    def flag_names(self) -> list[str]:
        return kf_flag_names(self.flags)


@dataclass(frozen=True, slots=True)
class BTFIdSet:
    """A set from ``.BTF_ids``; ``set8`` tells a btf_id_set8 from a plain set, and
    ``flags`` is the set8's flags word (BTF_SET8_KFUNCS since 6.9)."""

    name: str
    set8: bool
    flags: int
    entries: tuple[BTFIdEntry, ...]


def set_symbol(symbol: str) -> tuple[bool, str] | None:
    """(set8, set name) of a ``__BTF_ID__set8__``/``__BTF_ID__set__`` symbol, else None."""
    if symbol.startswith(SET8_PREFIX):
        return True, symbol[len(SET8_PREFIX) :]
    if symbol.startswith(SET_PREFIX):
        return False, symbol[len(SET_PREFIX) :]
    return None


def sets_at_symbols(
    data: bytes, symbols: Iterable[tuple[str, int]], little_endian: bool, where: str
) -> list[BTFIdSet]:
    """The sets of a ``.BTF_ids`` section ``data`` at the set symbols among
    ``symbols`` ((name, offset in the section) pairs), in their order; ``where``
    names the file in errors."""
    u32 = "<I" if little_endian else ">I"
    sets = []
    for symbol, at in symbols:
        kind = set_symbol(symbol)
        if kind is None:
            continue
        set8, set_name = kind
        here = f"{where}: .BTF_ids set {set_name!r} at offset {at:#x}"
        head = step = 8 if set8 else 4
        if at < 0 or at + head > len(data):
            raise ELFError(f"{here}: outside the section ({len(data)} bytes)")
        cnt = struct.unpack_from(u32, data, at)[0]
        flags = struct.unpack_from(u32, data, at + 4)[0] if set8 else 0
        if at + head + cnt * step > len(data):
            raise ELFError(f"{here}: {cnt} entries run past the end of the section")
        words = struct.unpack_from(f"{u32[0]}{cnt * step // 4}I", data, at + head)
        if set8:
            entries = tuple(BTFIdEntry(words[k], words[k + 1]) for k in range(0, 2 * cnt, 2))
        else:
            entries = tuple(BTFIdEntry(w, 0) for w in words)
        sets.append(BTFIdSet(set_name, set8, flags, entries))
    return sets


def scan_set8(data: bytes, btf: BTF, little_endian: bool = True) -> list[BTFIdSet]:
    """Find the ``btf_id_set8`` sets of a ``.BTF_ids`` section without symbols.

    A set is accepted at a 4-byte offset where the header's flags word is 0 or
    BTF_SET8_KFUNCS and ``cnt`` >= 1 pairs follow whose ids are strictly
    increasing (resolve_btfids sorts sets for the kernel's bsearch), all name
    FUNCs of ``btf``, and whose flags use known KF_* bits only. Scanning
    resumes after an accepted set. Sets are named by their offset.
    """
    kf_mask = sum(f.value for f in KF_FLAGS)

    words = array("I")
    words.frombytes(data[: len(data) // 4 * 4])
    if little_endian != (array("I", [1]).tobytes()[0] == 1):
        words.byteswap()
    n = len(words)
    first, end = btf.start_id, len(btf)
    kind = btf.kind
    func = fmt.BTF_KIND_FUNC
    sets = []
    o = 0
    while o + 4 <= n:
        cnt, flags = words[o], words[o + 1]
        stop = o + 2 + 2 * cnt
        if cnt == 0 or flags & ~BTF_SET8_KFUNCS or stop > n:
            o += 1
            continue
        ids = words[o + 2 : stop : 2]
        kf = words[o + 3 : stop : 2]
        if (
            max(kf) & ~kf_mask
            or ids[0] < first
            or ids[-1] >= end
            or any(a >= b for a, b in pairwise(ids))
            or any(kind(i) != func for i in ids)
        ):
            o += 1
            continue
        entries = tuple(BTFIdEntry(i, f) for i, f in zip(ids, kf, strict=True))
        sets.append(BTFIdSet(f".BTF_ids+{4 * o:#x}", True, flags, entries))
        o = stop
    return sets
