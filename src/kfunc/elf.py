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

import io
import mmap
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import BinaryIO

from elftools.common.exceptions import ELFError as ElftoolsError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from kfunc.btf.parse import BTF, parse_btf
from kfunc.errors import ELFError
from kfunc.inputs import CAPS, InputError, check_file, decompress, os_error, read_bytes
from kfunc.kernel_api.flags import kf_flag_names

__all__ = ["BTFIdEntry", "BTFIdSet", "ElfObject"]

SET8_PREFIX = "__BTF_ID__set8__"
SET_PREFIX = "__BTF_ID__set__"

_COMPRESSED = (".xz", ".gz", ".zst")
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

    def __init__(self, path: str | PathLike[str], data: bytes | None = None) -> None:
        """Open ``path``; with ``data``, parse those bytes (already read from it)."""
        self.path = Path(path)
        self._elf = self._open(data)

    def __repr__(self) -> str:
        return f"<ElfObject {str(self.path)!r}>"

    def _open(self, data: bytes | None) -> ELFFile:
        """The file parsed, bounded as :mod:`kfunc.inputs` says: a compressed
        module is decompressed up to its cap, a regular file is mapped (a large
        vmlinux stays out of memory until read), a special file is read up to
        a module's cap."""
        try:
            return self._open_bounded(data)
        except InputError as exc:  # this class's callers expect ELFError
            raise ELFError(exc.message, exc.fix) from None

    def _open_bounded(self, data: bytes | None) -> ELFFile:
        stream: BinaryIO | mmap.mmap
        name = str(self.path)
        if data is None:
            compressed = self.path.suffix in _COMPRESSED
            st = check_file(self.path, "module" if compressed else "elf")
            if compressed or not stat.S_ISREG(st.st_mode):
                data = read_bytes(self.path, "module")
            else:
                try:
                    with open(self.path, "rb") as f:
                        stream = (
                            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                            if st.st_size
                            else io.BytesIO()
                        )
                except OSError as e:
                    raise os_error(name, e) from None
        if data is not None:
            if self.path.suffix in _COMPRESSED and not data.startswith(b"\x7fELF"):
                data = decompress(data, self.path.suffix, name)
            stream = io.BytesIO(data)
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
            if sec["sh_type"] != "SHT_NOBITS" and sec["sh_size"] > CAPS["section"]:
                raise ELFError(
                    f"{self.path}: section {name} claims {sec['sh_size']} bytes, over the "
                    f"{CAPS['section'] >> 20} MiB kfunc reads",
                    "pass an intact ELF file (this one is truncated or corrupt)",
                )
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
