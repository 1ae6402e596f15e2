"""What a ``BPF_PROG_TEST_RUN`` gives a program: a packet (``data_in``) and a context.

Packets are a number of bytes (an Ethernet/IPv4 frame of that size, zeros
after the header), one of the kernel selftests' named test vectors, or exact
bytes. A context is exact bytes, or fields of the struct the program takes
(its first argument's type in the object's BTF), laid out as clang laid them
out: ``{size = 10}`` for upstream's ``struct syscall_test_args``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kfunc.btf import types as bt
from kfunc.errors import KfuncError

__all__ = ["PACKETS", "ctx_from_fields", "frame", "parse_hex"]

_ETH_P_IP = 0x0800
_ETH_P_IPV6 = 0x86DD
_IPPROTO_TCP = 6
_MAGIC_BYTES = 123  # network_helpers.h


def _tcp() -> bytes:
    """``struct tcphdr`` with ``.urg_ptr = 123, .doff = 5``: doff is the high nibble
    of byte 12 on little-endian (its bitfields start with ``res1:4``), and
    urg_ptr is stored as written, in host (little-endian) order, not htons'ed."""
    return struct.pack("<HHIIBBHHH", 0, 0, 0, 0, 5 << 4, 0, 0, 0, 123)


def _pkt_v4() -> bytes:
    eth = bytes(12) + struct.pack(">H", _ETH_P_IP)
    # ihl:4 is the low nibble of the first byte; version stays 0, as upstream leaves it.
    iph = struct.pack(">BBHHHBBH4s4s", 5, 0, _MAGIC_BYTES, 0, 0, 0, _IPPROTO_TCP, 0,
                      bytes(4), bytes(4))  # fmt: skip
    return eth + iph + _tcp()


def _pkt_v6() -> bytes:
    eth = bytes(12) + struct.pack(">H", _ETH_P_IPV6)
    iph = bytes(4) + struct.pack(">HBB", _MAGIC_BYTES, _IPPROTO_TCP, 0) + bytes(32)
    return eth + iph + _tcp()


#: The BPF selftests' test vectors, byte for byte (``struct ipv4_packet pkt_v4`` and
#: ``pkt_v6``: test_progs.c until 6.5, network_helpers.c since): Ethernet, a header
#: with only the protocol fields and length set, and a TCP header.
PACKETS: dict[str, bytes] = {"pkt_v4": _pkt_v4(), "pkt_v6": _pkt_v6()}


def frame(size: int) -> bytes:
    """An Ethernet frame of ``size`` bytes (at least its 14-byte header): zero
    MACs, the IPv4 ethertype, zero payload."""
    if not size:
        return b""
    return (bytes(12) + struct.pack(">H", _ETH_P_IP) + bytes(size))[: max(size, 14)]


def parse_hex(text: str, what: str) -> bytes:
    """Bytes from hex text; spaces, colons and a ``0x`` prefix are allowed."""
    clean = "".join(text.split()).replace(":", "").removeprefix("0x")
    try:
        return bytes.fromhex(clean)
    except ValueError:
        raise KfuncError(
            f"{what}: {text[:40]!r} is not hex bytes", 'write bytes as hex, e.g. "0a000000"'
        ) from None


def _size(btf: Any, type_id: int) -> int:
    typ = btf.resolve(type_id)
    if isinstance(typ, bt.Ptr):
        return 8
    if isinstance(typ, bt.Array):
        return typ.nelems * _size(btf, typ.type)
    size = getattr(typ, "size", None)
    if size is None:
        raise KfuncError(f"BTF type [{type_id}] has no size", "give the ctx as bytes instead")
    return int(size)


def _members(btf: Any, typ: bt.Struct | bt.Union, base: int) -> dict[str, tuple[bt.Member, int]]:
    """A struct's members by name with their byte offsets; those of anonymous
    members too, as C lets them be named."""
    found: dict[str, tuple[bt.Member, int]] = {}
    for m in typ.members:
        offset = base + m.bit_offset // 8
        inner = btf.resolve(m.type)
        if not m.name and isinstance(inner, bt.Struct | bt.Union):
            found.update(_members(btf, inner, offset))
        elif m.name:
            found[m.name] = (m, offset)
    return found


def _put(btf: Any, type_id: int, value: Any, buf: bytearray, offset: int, where: str) -> None:
    typ = btf.resolve(type_id)
    if isinstance(typ, bt.Struct | bt.Union):
        if not isinstance(value, Mapping):
            raise KfuncError(f"{where}: a struct, give a table of its fields", "e.g. {x = 1}")
        members = _members(btf, typ, offset)
        for name, item in value.items():
            if name not in members:
                raise KfuncError(
                    f"{where}: struct {typ.name or '(anonymous)'} has no field {name!r}",
                    f"name one of: {', '.join(members)}",
                )
            member, at = members[name]
            if member.bitfield_size:
                raise KfuncError(f"{where}.{name}: a bitfield", "give the ctx as bytes instead")
            _put(btf, member.type, item, buf, at, f"{where}.{name}")
    elif isinstance(typ, bt.Array):
        elem = _size(btf, typ.type)
        if isinstance(value, str) and elem == 1:
            value = list(value.encode())
        if not isinstance(value, list) or len(value) > typ.nelems:
            raise KfuncError(
                f"{where}: an array of {typ.nelems}, give a list of at most that many values",
                "e.g. [1, 2, 3]",
            )
        for i, item in enumerate(value):
            _put(btf, typ.type, item, buf, offset + i * elem, f"{where}[{i}]")
    elif isinstance(typ, bt.Int | bt.Enum | bt.Enum64 | bt.Ptr):
        size = _size(btf, type_id)
        if isinstance(value, bool) or not isinstance(value, int):
            raise KfuncError(f"{where}: an integer field, got {value!r}", "give a number")
        try:
            raw = value.to_bytes(size, "little", signed=value < 0)
        except OverflowError:
            raise KfuncError(
                f"{where}: {value} does not fit in {size} bytes", "give a smaller number"
            ) from None
        buf[offset : offset + size] = raw
    else:
        raise KfuncError(f"{where}: cannot set a {type(typ).__name__}", "give the ctx as bytes")


def ctx_from_fields(obj: str | Path, program: str, fields: Mapping[str, Any]) -> bytes:
    """The context struct ``program`` of the BPF object ``obj`` takes, zeroed, with
    ``fields`` set: names as in C (members of anonymous structs by their own name),
    integers, lists for arrays (a string for a char array), tables for structs."""
    from kfunc.elf import ElfObject

    elf = ElfObject(obj)
    if not elf.has_section(".BTF"):
        raise KfuncError(f"{obj}: no BTF", "compile the program with -g, or give ctx as bytes")
    btf = elf.btf()
    func = btf.find(program, bt.Func)
    proto = btf[func.type] if func is not None else None
    if not isinstance(proto, bt.FuncProto) or not proto.params:
        raise KfuncError(
            f"{Path(obj).name}: program {program!r} takes no context argument in its BTF",
            "give ctx as hex bytes instead",
        )
    arg = btf.resolve(proto.params[0].type)
    target = btf.resolve(arg.type) if isinstance(arg, bt.Ptr) else arg
    if not isinstance(target, bt.Struct | bt.Union):
        raise KfuncError(
            f"{Path(obj).name}: program {program!r}'s argument is not a pointer to a struct",
            "give ctx as hex bytes instead",
        )
    buf = bytearray(target.size)
    _put(btf, target.id, dict(fields), buf, 0, f"ctx of {program}")
    return bytes(buf)
