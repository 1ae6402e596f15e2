"""Sections of ELF files (.ko, .o, vmlinux) that kfunc needs: .BTF and .BTF_ids.

Reading the same file gives the same answer on any machine: nothing here looks
at the running kernel. Compressed modules (``.ko.xz``, ``.ko.gz``, ``.ko.zst``)
are decompressed in memory.

``.BTF_ids`` holds the ID sets that ``resolve_btfids`` fills in at build time;
:mod:`kfunc.btf.ids` decodes them.
"""

from __future__ import annotations

import io
import mmap
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import BinaryIO

from elftools.common.exceptions import ELFError as ElftoolsError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from kfunc.btf.format import BTF_MAGIC
from kfunc.btf.ids import BTFIdEntry, BTFIdSet, scan_set8, set_symbol, sets_at_symbols
from kfunc.btf.parse import BTF, parse_btf
from kfunc.errors import ELFError
from kfunc.inputs import CAPS, InputError, check_file, decompress, os_error, read_bytes

__all__ = ["BTFIdEntry", "BTFIdSet", "ElfObject"]

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

    def btf_id_sets(self, btf: BTF | None = None) -> list[BTFIdSet]:
        """Every ID set in ``.BTF_ids`` (kfunc sets and plain sets), in symbol order.

        A file without a symbol table (a vmlinux out of a bzImage) has its kfunc
        sets found by :func:`~kfunc.btf.ids.scan_set8` over ``btf``, its BTF;
        without ``btf``, it has none.
        """
        with self._errors():
            return self._btf_id_sets(btf)

    def _btf_id_sets(self, btf: BTF | None) -> list[BTFIdSet]:
        elf = self._elf
        ids_index = next(
            (i for i, s in enumerate(elf.iter_sections()) if s.name == ".BTF_ids"), None
        )
        if ids_index is None:
            return []
        ids = elf.get_section(ids_index)
        data = bytes(ids.data())
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            if btf is None:
                return []
            # .BTF is in the file's byte order: its magic says which.
            little = self.section(".BTF")[:2] == BTF_MAGIC.to_bytes(2, "little")
            return scan_set8(data, btf, little)
        if not isinstance(symtab, SymbolTableSection):
            return []
        # In a relocatable .ko a symbol's value is its offset in the section; in
        # vmlinux it is a virtual address.
        origin = 0 if elf["e_type"] == "ET_REL" else ids["sh_addr"]
        symbols = [
            (sym.name, sym["st_value"] - origin)
            for sym in symtab.iter_symbols()
            if sym["st_shndx"] == ids_index and set_symbol(sym.name) is not None
        ]
        return sets_at_symbols(data, symbols, elf.little_endian, str(self.path))
