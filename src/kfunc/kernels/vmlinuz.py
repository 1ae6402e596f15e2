"""Take the vmlinux ELF out of an x86 bzImage (``/boot/vmlinuz-*``).

The bzImage's compressed payload is ``objcopy -S vmlinux``: symbols are gone
but every allocated section stays, ``.BTF`` and ``.BTF_ids`` included. That is
the target kernel's own BTF, byte for byte what the booted kernel shows in
``/sys/kernel/btf/vmlinux``. The layout is the x86 boot protocol's
(Documentation/arch/x86/boot.rst): ``payload_offset`` and ``payload_length``
(protocol >= 2.08) locate the payload after the real-mode setup sectors, and
the payload's last four bytes are the uncompressed size.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from pathlib import Path

from kfunc.errors import KfuncError

__all__ = ["bzimage_release", "extract_vmlinux"]

_SETUP_SECTS = 0x1F1
_HDR_MAGIC = 0x202
_HDR_VERSION = 0x206
_PAYLOAD = 0x248
_KERNEL_VERSION = 0x20E  # protocol >= 2.00: offset - 0x200 of the version string

_MAGICS: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x5d\x00\x00", "lzma"),
    (b"BZh", "bzip2"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"\x89LZO", "lzo"),
]

# A sane bound for any kernel we decompress: stops a crafted size field from
# asking for a huge allocation.
_MAX_VMLINUX = 1 << 30


def _error(path: Path, what: str) -> KfuncError:
    return KfuncError(
        f"{path}: {what}",
        "pass an x86 bzImage (a /boot/vmlinuz-* file of a Debian linux-image package)",
    )


def _decompress(kind: str, data: bytes, size: int) -> bytes:
    if kind == "gzip":
        return gzip.decompress(data)
    if kind == "xz":
        return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data, max_length=size)
    if kind == "lzma":
        return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data, max_length=size)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(data)
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    raise ValueError(kind)


def extract_vmlinux(vmlinuz: Path, out: Path) -> Path:
    """Write the vmlinux ELF held by ``vmlinuz`` to ``out`` and return ``out``."""
    image = Path(vmlinuz).read_bytes()
    if len(image) < 0x260 or image[_HDR_MAGIC : _HDR_MAGIC + 4] != b"HdrS":
        raise _error(vmlinuz, "not a bzImage (no 'HdrS' boot header at 0x202)")
    (version,) = struct.unpack_from("<H", image, _HDR_VERSION)
    if version < 0x208:
        raise _error(vmlinuz, f"boot protocol {version >> 8}.{version & 0xFF} has no payload field")
    setup_sects = image[_SETUP_SECTS] or 4
    offset, length = struct.unpack_from("<II", image, _PAYLOAD)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start : start + length]
    if length < 8 or len(payload) != length:
        raise _error(vmlinuz, f"payload at {start:#x} (+{length:#x}) lies outside the file")
    (size,) = struct.unpack_from("<I", payload, length - 4)
    if size > _MAX_VMLINUX:
        raise _error(vmlinuz, f"uncompressed size {size} is not plausible")
    kind = next((name for magic, name in _MAGICS if payload.startswith(magic)), None)
    if kind is None:
        raise _error(vmlinuz, f"payload at {start:#x} has an unknown compression format")
    if kind in ("lz4", "lzo"):
        raise KfuncError(
            f"{vmlinuz}: {kind}-compressed kernels are not supported",
            "use a kernel built with gzip, xz, lzma, bzip2 or zstd (all Debian kernels are)",
        )
    try:
        elf = _decompress(kind, payload[:-4], size)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise _error(vmlinuz, f"{kind} payload does not decompress: {exc}") from None
    except Exception as exc:  # zstandard.ZstdError has no common base with the above
        raise _error(vmlinuz, f"{kind} payload does not decompress: {exc}") from None
    if not elf.startswith(b"\x7fELF"):
        raise _error(vmlinuz, "decompressed payload is not an ELF file")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(elf)
    tmp.replace(out)
    return out


def bzimage_release(vmlinuz: Path) -> str:
    """The release (``uname -r``) a bzImage names in its boot header's version string
    (``6.12.117+deb12-amd64 (debian-kernel@lists.debian.org) #1 SMP ...``)."""
    with Path(vmlinuz).open("rb") as f:
        head = f.read(0x10000)
    if len(head) < 0x260 or head[_HDR_MAGIC : _HDR_MAGIC + 4] != b"HdrS":
        raise _error(vmlinuz, "not a bzImage (no 'HdrS' boot header at 0x202)")
    (pointer,) = struct.unpack_from("<H", head, _KERNEL_VERSION)
    start = pointer + 0x200
    text = head[start : head.find(b"\0", start)] if pointer else b""
    release = text.split(b" ", 1)[0].decode(errors="replace")
    if not release:
        raise _error(vmlinuz, "its boot header names no kernel version")
    return release
