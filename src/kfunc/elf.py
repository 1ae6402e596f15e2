"""Sections of ELF files (.ko, .o, vmlinux) that kfunc needs: .BTF and .BTF_ids.

Reading the same file gives the same answer on any machine: nothing here looks
at the running kernel. Compressed modules (``.ko.xz``, ``.ko.gz``, ``.ko.zst``)
are decompressed in memory.

``.BTF_ids`` holds the ID sets that ``resolve_btfids`` fills in at build time.
A kfunc set (``BTF_KFUNCS_START``/``BTF_SET8_START``) is a
``struct btf_id_set8 { u32 cnt; u32 flags; struct { u32 id; u32 flags; } pairs[]; }``
at the symbol ``__BTF_ID__set8__<name>``; a plain ``BTF_SET_START`` set is a
``struct btf_id_set { u32 cnt; u32 ids[]; }`` at ``__BTF_ID__set__<name>``.
"""

from __future__ import annotations

import gzip
import io
import lzma
import mmap
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import zstandard
from elftools.common.exceptions import ELFError as ElftoolsError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from kfunc.btf.parse import BTF, parse_btf
from kfunc.errors import ELFError
from kfunc.kf_flags import kf_flag_names

__all__ = ["BTFIdEntry", "BTFIdSet", "ElfObject"]

SET8_PREFIX = "__BTF_ID__set8__"
SET_PREFIX = "__BTF_ID__set__"

_DECOMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    ".xz": lzma.decompress,
    ".gz": gzip.decompress,
    ".zst": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}
_DECOMPRESS_ERRORS = (lzma.LZMAError, gzip.BadGzipFile, EOFError, zstandard.ZstdError)
#: What pyelftools raises on a malformed file (readers of ELF turn it into ELFError).
PARSE_ERRORS = (
    ElftoolsError,
    ConstructError,
    struct.error,
    ValueError,
    IndexError,
    KeyError,
    OverflowError,
)


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


class ElfObject:
    """An ELF file opened for reading sections; raises kfunc's ELFError on bad input."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        self._elf = self._open()

    def __repr__(self) -> str:
        return f"<ElfObject {str(self.path)!r}>"

    def _open(self) -> ELFFile:
        stream: BinaryIO | mmap.mmap
        try:
            decompress = _DECOMPRESSORS.get(self.path.suffix)
            if decompress is not None:
                stream = io.BytesIO(decompress(self.path.read_bytes()))
            else:
                with open(self.path, "rb") as f:
                    size = f.seek(0, io.SEEK_END)
                    # mmap keeps a large vmlinux out of memory until read.
                    stream = (
                        mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else io.BytesIO()
                    )
        except OSError as e:
            raise ELFError(f"{self.path}: cannot read: {e.strerror}") from e
        except _DECOMPRESS_ERRORS as e:
            raise ELFError(f"{self.path}: cannot decompress: {e}") from e
        with self._errors():
            # pyelftools only reads, seeks and tells; its stubs ask for IO[bytes],
            # which an mmap is not.
            return ELFFile(stream)  # type: ignore[arg-type]

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except PARSE_ERRORS as e:
            raise ELFError(f"{self.path}: malformed ELF file: {e}") from e

    def has_section(self, name: str) -> bool:
        with self._errors():
            return self._elf.get_section_by_name(name) is not None

    def section(self, name: str) -> bytes:
        """The bytes of section ``name``."""
        with self._errors():
            sec = self._elf.get_section_by_name(name)
            if sec is None:
                raise ELFError(f"{self.path}: no {name} section")
            return bytes(sec.data())

    def btf(self, base: BTF | None = None, *, validate: bool = True) -> BTF:
        """The ``.BTF`` section parsed; for a module, pass its vmlinux BTF as ``base``
        (``validate``: see :func:`~kfunc.btf.parse.parse_btf`)."""
        if not self.has_section(".BTF"):
            raise ELFError(
                f"{self.path}: no .BTF section",
                fix="build with CONFIG_DEBUG_INFO_BTF (modules: CONFIG_DEBUG_INFO_BTF_MODULES) "
                "and pahole installed",
            )
        return parse_btf(self.section(".BTF"), base, name=self.path.name, validate=validate)

    def btf_id_sets(self) -> list[BTFIdSet]:
        """Every ID set in ``.BTF_ids`` (kfunc sets and plain sets), in symbol order."""
        with self._errors():
            return self._btf_id_sets()

    def _btf_id_sets(self) -> list[BTFIdSet]:
        elf = self._elf
        ids_index = next(
            (i for i, s in enumerate(elf.iter_sections()) if s.name == ".BTF_ids"), None
        )
        symtab = elf.get_section_by_name(".symtab")
        if ids_index is None or not isinstance(symtab, SymbolTableSection):
            return []
        ids = elf.get_section(ids_index)
        data = bytes(ids.data())
        # In a relocatable .ko a symbol's value is its offset in the section; in
        # vmlinux it is a virtual address.
        origin = 0 if elf["e_type"] == "ET_REL" else ids["sh_addr"]
        u32 = "<I" if elf.little_endian else ">I"
        sets = []
        for sym in symtab.iter_symbols():
            name = sym.name
            if name.startswith(SET8_PREFIX):
                set8, set_name = True, name[len(SET8_PREFIX) :]
            elif name.startswith(SET_PREFIX):
                set8, set_name = False, name[len(SET_PREFIX) :]
            else:
                continue
            if sym["st_shndx"] != ids_index:
                continue
            at = sym["st_value"] - origin
            where = f"{self.path}: .BTF_ids set {set_name!r} at offset {at:#x}"
            head = 8 if set8 else 4
            if at < 0 or at + head > len(data):
                raise ELFError(f"{where}: outside the section ({len(data)} bytes)")
            cnt = struct.unpack_from(u32, data, at)[0]
            flags = struct.unpack_from(u32, data, at + 4)[0] if set8 else 0
            step = 8 if set8 else 4
            if at + head + cnt * step > len(data):
                raise ELFError(f"{where}: {cnt} entries run past the end of the section")
            words = struct.unpack_from(f"{u32[0]}{cnt * step // 4}I", data, at + head)
            if set8:
                entries = tuple(BTFIdEntry(words[k], words[k + 1]) for k in range(0, 2 * cnt, 2))
            else:
                entries = tuple(BTFIdEntry(w, 0) for w in words)
            sets.append(BTFIdSet(set_name, set8, flags, entries))
        return sets
