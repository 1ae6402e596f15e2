"""``.BTF.ext``: what clang -g writes beside a BPF object's ``.BTF``.

The section starts with ``struct btf_ext_header`` (include/uapi/linux/btf.h
has none; tools/lib/bpf/libbpf_internal.h does): magic 0xeb9f, version,
flags, hdr_len, then the offset and length of the func info and the line
info, counted from the end of the header. The line info is a record size,
then per ELF section: the section's name (an offset into the BTF string
table), a count, and that many ``struct bpf_line_info`` records
(``insn_off`` in bytes from the section's start, ``file_name_off``,
``line_off``, ``line_col``: line << 10 | column).

Only the line info is read: :mod:`kfunc.check.bpf_object` maps it onto
programs for :mod:`kfunc.explain`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kfunc.btf.format import BTF_MAGIC
from kfunc.errors import ELFError

if TYPE_CHECKING:
    from kfunc.btf.parse import BTF

__all__ = ["LineRecord", "read_line_records"]


@dataclass(frozen=True, slots=True)
class LineRecord:
    """One ``bpf_line_info`` record, its strings read: the instruction at byte
    ``insn_off`` of its section starts ``line`` (column ``column``) of ``file``,
    whose text is ``text``."""

    insn_off: int
    file: str
    line: int
    column: int
    text: str


def read_line_records(ext: bytes, btf: BTF, where: str) -> dict[str, list[LineRecord]]:
    """The line info of a ``.BTF.ext`` section, by ELF section name; ``btf`` is the
    object's ``.BTF`` (its strings), ``where`` names the file in errors."""
    try:
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", ext)
        if magic != BTF_MAGIC:
            raise ELFError(f"{where}: .BTF.ext: bad magic {magic:#x}", "rebuild the object")
        _fi_off, _fi_len, li_off, li_len = struct.unpack_from("<IIII", ext, 8)
        at = hdr_len + li_off
        end = at + li_len
        (rec_size,) = struct.unpack_from("<I", ext, at)
        at += 4
        raw: dict[str, list[tuple[int, int, int, int]]] = {}
        while at < end:
            sec_off, count = struct.unpack_from("<II", ext, at)
            at += 8
            recs = raw.setdefault(btf.string(sec_off), [])
            for _ in range(count):
                recs.append(struct.unpack_from("<IIII", ext, at))
                at += rec_size
    except struct.error as exc:
        raise ELFError(f"{where}: .BTF.ext: truncated line info ({exc})", "rebuild it") from None
    return {
        section: [
            LineRecord(
                insn_off,
                btf.string(file_off),
                line_col >> 10,
                line_col & 0x3FF,
                btf.string(line_off),
            )
            for insn_off, file_off, line_off, line_col in recs
        ]
        for section, recs in raw.items()
    }
