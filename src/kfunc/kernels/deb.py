"""A Debian package file (.deb), read by kfunc itself: the one reader.

A .deb is a Unix ``ar`` archive (deb(5)): ``debian-binary``, then
``control.tar[.xz|.gz|.zst]`` (the package's fields), then
``data.tar[.xz|.gz|.zst]`` (its files). Kernels unpack the data of every
package they need (:func:`unpack`), the survey and the selftests stream it
(:func:`data_tar`), and the download path checks a file's own Package and
Version (:func:`control_fields`), all through the walk below: no ``dpkg-deb``,
so a .deb reads the same on any host. Members are streamed, never loaded
whole: a 150 MB linux-source package costs one pass of decompression.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Literal

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["DebFormatError", "MissingMemberError", "control_fields", "data_tar", "unpack"]

_AR_MAGIC = b"!<arch>\n"
_CONTROL_CAP = 1 << 20  # a control.tar is a few kB; more is not a package


class DebFormatError(Exception):
    """The file is not a Debian package (bad ``ar`` framing, no data member)."""


class MissingMemberError(DebFormatError):
    """A well-framed ``ar`` archive without the member asked for."""


def _members(f: BinaryIO) -> Iterator[tuple[str, int]]:
    """Walk the ``ar`` archive: yields (name, size) with ``f`` at the member's data."""
    if f.read(8) != _AR_MAGIC:
        raise DebFormatError("not a Debian package (no ar header)")
    while True:
        header = f.read(60)
        if not header:
            return
        if len(header) < 60:
            raise DebFormatError("truncated ar header")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as e:
            raise DebFormatError(f"bad ar member size in {name!r}") from e
        start = f.tell()
        yield name, size
        f.seek(start + size + (size & 1))


@contextmanager
def _member_tar(path: Path, prefix: str) -> Iterator[tarfile.TarFile | None]:
    """The tar member ``prefix*`` of ``path``, opened for streaming (None if absent)."""
    with open(path, "rb") as f:
        for name, size in _members(f):
            if not name.startswith(prefix):
                continue
            raw = io.BufferedReader(_Limited(f, size), 1 << 20)
            stream: IO[bytes] = raw
            if name.endswith(".zst"):
                import zstandard

                stream = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=stream, mode="r|*") as tar:
                yield tar
            return
    yield None


@contextmanager
def data_tar(path: Path) -> Iterator[tarfile.TarFile]:
    """``path``'s files as a tar stream (members in archive order, read once)."""
    with _member_tar(path, "data.tar") as tar:
        if tar is None:
            raise MissingMemberError("no data.tar member")
        yield tar


def control_fields(path: Path) -> dict[str, str]:
    """The fields of ``path``'s ``control`` file (``Package``, ``Version`` ...)."""
    with _member_tar(path, "control.tar") as tar:
        for entry in tar or ():
            if entry.name.lstrip("./") == "control" and entry.isfile():
                data = tar.extractfile(entry) if tar else None
                if data is None or entry.size > _CONTROL_CAP:
                    break
                text = data.read().decode("utf-8", "replace")
                return dict(
                    line.split(": ", 1)
                    for line in text.splitlines()
                    if ": " in line and not line[0].isspace()
                )
    raise DebFormatError("no control file")


def unpack(path: Path, root: Path) -> None:
    """Write ``path``'s files under ``root``, as ``dpkg-deb -x`` does (no
    maintainer scripts; absolute symlinks such as ``build -> /usr/src/...``
    kept as they are, member names confined to ``root``)."""
    root.mkdir(parents=True, exist_ok=True)
    with data_tar(path) as tar:
        for member in tar:
            extract(tar, member, root, "tar")


#: tarfile's extraction filters (PEP 706) arrived in Python 3.11.4; Debian 12's
#: python3 is 3.11.2 and has none.
_HAS_FILTERS = hasattr(tarfile, "data_filter")


def extract(
    tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, kind: Literal["tar", "data"]
) -> None:
    """Extract ``member`` under ``root`` with tarfile's ``kind`` filter ("tar":
    absolute symlinks kept; "data": refused), or, on a Python without filters,
    after the same confinement check of its name and of a hard link's target."""
    if _HAS_FILTERS:
        tar.extract(member, root, filter=kind)
        return
    member.name = member.name.lstrip("/")
    names = [member.name] + ([member.linkname] if member.islnk() else [])
    if kind == "data" and member.issym() and member.linkname.startswith("/"):
        names.append(member.linkname)
    for name in names:
        if name.startswith("/") or ".." in Path(name).parts:
            raise DebFormatError(f"member {member.name!r} points outside the tree")
    tar.extract(member, root)


class _Limited(io.RawIOBase):
    """A read-only view of the next ``size`` bytes of a stream (an ar member)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        b = memoryview(buffer).cast("B")
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        data = self._f.read(n)
        b[: len(data)] = data
        self._left -= len(data)
        return len(data)
