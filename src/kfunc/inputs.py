"""Reading what a user hands kfunc: every user-supplied file or stream, bounded.

A user may pass ``/dev/zero`` as a BTF file, a 2 GB sparse file as a module,
a FIFO, a directory, or pipe an endless stream into ``kfunc explain -``. Every
such read goes through here, with a size cap per kind of input (:data:`CAPS`)
well above real sizes:

- the size of a regular file is checked with ``stat`` *before* reading it, so
  a file over the cap is refused without being read;
- a special file (a character device, a FIFO, ``/proc``'s files, which stat
  as 0 bytes) is read in chunks up to the cap, and refused beyond it;
- a directory, a dangling symlink or a symlink loop is refused by name;
- reads go 1 MiB at a time, so Ctrl-C (KeyboardInterrupt) is honoured
  between chunks instead of after a read of gigabytes;
- a compressed module is decompressed incrementally, and refused as soon as
  its output passes the cap (a decompression bomb costs no more than the cap).

Every failure is an :class:`InputError` (a :class:`~kfunc.errors.KfuncError`)
naming the file, what is wrong and the fix. This module imports no more than
``os`` and kfunc's errors at load time: ``kfunc ls`` reads through it.
"""

from __future__ import annotations

import os
import stat

from kfunc.errors import KfuncError

# typing.TYPE_CHECKING without importing typing, as in kfunc.cache: this module
# is on `kfunc ls`'s path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Readable(Protocol):
        """What :func:`read_stream` reads: a file, a tar member, a decompressor."""

        def read(self, size: int, /) -> bytes: ...


__all__ = [
    "CAPS",
    "CHUNK",
    "InputError",
    "TooBigError",
    "check_file",
    "decode",
    "decompress",
    "os_error",
    "read_bytes",
    "read_head",
    "read_stream",
    "read_text",
    "shown",
]

MiB = 1 << 20

#: The largest input of each kind kfunc reads, in bytes. Real sizes: a vmlinux
#: BTF is ~6 MB (the largest allmodconfig ones ~20 MB); a BPF object is well
#: under 10 MB, and so is a module's .ko but for a few (Debian's largest,
#: amdgpu.ko, is 28 MiB uncompressed in 6.12 and 48 MiB in 7.3); a verifier
#: log reaches tens of MB at log level 2 (libbpf and bpftool grow their log
#: buffer to 16 MiB at most); a kfunc.toml or a C source is kilobytes.
#: Whatever is read is held in memory, so a cap is also what a rejected input
#: may cost: each stays under 200 MB of RSS (a decompression bomb refused at
#: the module cap peaks at ~155 MB). An ELF file (a vmlinux with DWARF can be
#: ~1 GB) is mapped, not read, and each section read from it is capped as
#: ``section``.
CAPS: dict[str, int] = {
    "btf": 64 * MiB,
    "section": 64 * MiB,
    "elf": 4096 * MiB,
    "module": 128 * MiB,
    "object": 64 * MiB,
    "log": 64 * MiB,
    "toml": 1 * MiB,
    "source": 16 * MiB,
}

#: What each kind of input is, for error messages.
_WHAT = {
    "btf": "a BTF file",
    "section": "an ELF section",
    "elf": "a BTF or ELF file",
    "module": "a kernel module",
    "object": "a BPF object",
    "log": "a verifier log",
    "toml": "a kfunc.toml",
    "source": "a source file",
}

#: Reads go this many bytes at a time: Ctrl-C is seen between two of them.
CHUNK = 1 * MiB


class InputError(KfuncError):
    """A user-supplied file or stream kfunc will not read: missing, a directory,
    over its size cap, unreadable, or not text where text is needed."""


class TooBigError(InputError):
    """An input over the cap of its kind; ``cap`` is that cap in bytes."""

    def __init__(self, message: str, fix: str, cap: int) -> None:
        super().__init__(message, fix)
        self.cap = cap


def _mib(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


def _too_big(name: str, kind: str, size: int | None) -> TooBigError:
    cap = f"the {_mib(CAPS[kind])} kfunc reads as {_WHAT[kind]}"
    how = f"{_mib(size)}, over {cap}" if size is not None else f"more than {cap}"
    return TooBigError(
        f"{name}: {how}", f"pass {_WHAT[kind]} (is this the right file?)", CAPS[kind]
    )


def shown(name: str, limit: int = 160) -> str:
    """``name`` for a message: a path of 100 000 characters is cut, saying so."""
    return name if len(name) <= limit else f"{name[:limit]}... ({len(name)} characters)"


def os_error(name: str, exc: OSError, fix: str | None = None) -> InputError:
    """``exc`` (raised reading ``name``) as one line with a fix."""
    name = shown(name)
    reason = exc.strerror or str(exc)
    if fix is None:
        fix = {
            2: "check the path",  # ENOENT
            13: "check its permissions, or run as a user who may read it",  # EACCES
            20: "check the path: a part of it is not a directory",  # ENOTDIR
            21: "pass a file, not a directory",  # EISDIR
            36: "use a shorter path",  # ENAMETOOLONG
            40: "the path is a symlink loop: fix the link",  # ELOOP
        }.get(exc.errno or 0, "check the file and pass another")
    return InputError(f"{name}: cannot read: {reason}", fix)


def check_file(path: str | os.PathLike[str], kind: str) -> os.stat_result:
    """The ``stat`` of ``path`` if kfunc may read it as ``kind``: it exists, is
    not a directory and, if a regular file, is within the kind's cap. Special
    files pass: they are read up to the cap (see :func:`read_bytes`)."""
    name = os.fspath(path)
    if "\0" in name:
        raise InputError(f"{shown(repr(name))}: a path with a NUL byte", "pass a real file name")
    try:
        st = os.stat(name)
    except OSError as exc:
        if exc.errno == 2 and os.path.islink(name):
            raise InputError(
                f"{shown(name)}: a dangling symlink (to {shown(os.readlink(name))})",
                "fix or remove the link",
            ) from None
        raise os_error(name, exc) from None
    except ValueError:  # an embedded NUL byte, through os.PathLike
        raise InputError(
            f"{shown(repr(name))}: not a usable path", "pass a real file name"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{shown(name)}: a directory, not {_WHAT[kind]}", f"pass {_WHAT[kind]}")
    if stat.S_ISREG(st.st_mode) and st.st_size > CAPS[kind]:
        raise _too_big(shown(name), kind, st.st_size)
    return st


def read_stream(f: Readable, kind: str, name: str, cap: int | None = None) -> bytes:
    """Everything ``f`` holds, read a chunk at a time; refused past the cap."""
    cap = CAPS[kind] if cap is None else cap
    buf = bytearray()
    try:
        while True:
            chunk = f.read(min(CHUNK, cap + 1 - len(buf)))
            if not chunk:
                return bytes(buf)
            buf += chunk
            if len(buf) > cap:
                raise _too_big(shown(name), kind, None)
    except OSError as exc:
        raise os_error(name, exc) from None


def read_bytes(path: str | os.PathLike[str], kind: str) -> bytes:
    """The bytes of the file ``path``, if within the cap of ``kind``."""
    name = os.fspath(path)
    check_file(name, kind)
    try:
        f = open(name, "rb")  # noqa: SIM115 - closed below; open's own errors are ours
    except OSError as exc:
        raise os_error(name, exc) from None
    with f:
        return read_stream(f, kind, name)


def read_head(path: str | os.PathLike[str], size: int = 64) -> bytes:
    """The first ``size`` bytes of ``path`` (for its magic number); never more."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            return f.read(size)
    except OSError as exc:
        raise os_error(name, exc) from None


def read_text(path: str | os.PathLike[str], kind: str, *, errors: str = "strict") -> str:
    """The text of ``path`` (UTF-8), within the cap of ``kind``. With
    ``errors="strict"``, bytes that are not UTF-8 are an error naming where."""
    return decode(read_bytes(path, kind), os.fspath(path), errors=errors)


def decode(data: bytes, name: str, *, errors: str = "strict") -> str:
    """``data`` as UTF-8 text; an :class:`InputError` naming the byte offset if not."""
    try:
        return data.decode("utf-8", errors)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{name}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}, "
            f"line {line})",
            "save the file as UTF-8",
        ) from None


def decompress(data: bytes, suffix: str, name: str, kind: str = "module") -> bytes:
    """``data`` decompressed by the format its ``suffix`` names (``.xz``,
    ``.gz``, ``.zst``), refused as soon as the output passes the kind's cap."""
    cap = CAPS[kind]
    step: Callable[[bytes, int], bytes]
    errors: tuple[type[Exception], ...]
    if suffix == ".xz":
        import lzma

        d = lzma.LZMADecompressor()
        step, errors = d.decompress, (lzma.LZMAError, EOFError)

        def more() -> bool:
            return not d.needs_input and not d.eof

        def done() -> bool:
            return d.eof

    elif suffix == ".gz":
        import zlib

        z = zlib.decompressobj(wbits=31)
        tail = [b""]

        def step(chunk: bytes, limit: int) -> bytes:
            out = z.decompress(tail[0] + chunk, limit)
            tail[0] = z.unconsumed_tail
            return out

        errors = (zlib.error, EOFError)

        def more() -> bool:
            return bool(tail[0])

        def done() -> bool:
            return z.eof

    elif suffix == ".zst":
        import io

        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        try:
            return read_stream(reader, kind, f"{name} (decompressed)")
        except zstandard.ZstdError as exc:
            raise InputError(
                f"{name}: cannot decompress: {exc}",
                "pass an intact .zst file, or the uncompressed module",
            ) from None
    else:
        raise ValueError(f"no decompressor for {suffix}")
    out = bytearray()
    small = 64 * 1024
    try:
        for at in range(0, len(data), small):
            out += step(data[at : at + small], min(CHUNK, cap + 1 - len(out)))
            while len(out) <= cap and more():
                out += step(b"", min(CHUNK, cap + 1 - len(out)))
            if len(out) > cap:
                raise _too_big(f"{name} (decompressed)", kind, None)
        if not done():
            raise EOFError("truncated: the compressed stream ends early")
    except errors as exc:
        raise InputError(
            f"{name}: cannot decompress: {exc or type(exc).__name__}",
            f"pass an intact {suffix} file, or the uncompressed module",
        ) from None
    return bytes(out)
