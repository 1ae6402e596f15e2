"""The on-disk layout of BTF, as in the kernel's include/uapi/linux/btf.h.

A BTF blob is a header, a type section and a string section. Every record is
made of 32-bit words, so the parser reads the type section as an array of
words; the constants below give each kind's record size in words.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

BTF_MAGIC: Final = 0xEB9F
BTF_VERSION: Final = 1

#: struct btf_header { u16 magic; u8 version; u8 flags; u32 hdr_len;
#: u32 type_off; u32 type_len; u32 str_off; u32 str_len; }
HEADER_FORMAT: Final = "HBBIIIII"
HEADER_SIZE: Final = struct.calcsize("<" + HEADER_FORMAT)

BTF_KIND_UNKN: Final = 0
BTF_KIND_INT: Final = 1
BTF_KIND_PTR: Final = 2
BTF_KIND_ARRAY: Final = 3
BTF_KIND_STRUCT: Final = 4
BTF_KIND_UNION: Final = 5
BTF_KIND_ENUM: Final = 6
BTF_KIND_FWD: Final = 7
BTF_KIND_TYPEDEF: Final = 8
BTF_KIND_VOLATILE: Final = 9
BTF_KIND_CONST: Final = 10
BTF_KIND_RESTRICT: Final = 11
BTF_KIND_FUNC: Final = 12
BTF_KIND_FUNC_PROTO: Final = 13
BTF_KIND_VAR: Final = 14
BTF_KIND_DATASEC: Final = 15
BTF_KIND_FLOAT: Final = 16
BTF_KIND_DECL_TAG: Final = 17
BTF_KIND_TYPE_TAG: Final = 18
BTF_KIND_ENUM64: Final = 19
BTF_KIND_MAX: Final = BTF_KIND_ENUM64

#: Kind names as bpftool prints them (`bpftool btf dump` raw format).
KIND_NAMES: Final[dict[int, str]] = {
    BTF_KIND_UNKN: "UNKN",
    BTF_KIND_INT: "INT",
    BTF_KIND_PTR: "PTR",
    BTF_KIND_ARRAY: "ARRAY",
    BTF_KIND_STRUCT: "STRUCT",
    BTF_KIND_UNION: "UNION",
    BTF_KIND_ENUM: "ENUM",
    BTF_KIND_FWD: "FWD",
    BTF_KIND_TYPEDEF: "TYPEDEF",
    BTF_KIND_VOLATILE: "VOLATILE",
    BTF_KIND_CONST: "CONST",
    BTF_KIND_RESTRICT: "RESTRICT",
    BTF_KIND_FUNC: "FUNC",
    BTF_KIND_FUNC_PROTO: "FUNC_PROTO",
    BTF_KIND_VAR: "VAR",
    BTF_KIND_DATASEC: "DATASEC",
    BTF_KIND_FLOAT: "FLOAT",
    BTF_KIND_DECL_TAG: "DECL_TAG",
    BTF_KIND_TYPE_TAG: "TYPE_TAG",
    BTF_KIND_ENUM64: "ENUM64",
}

#: struct btf_type { u32 name_off; u32 info; union { u32 size; u32 type; }; }
TYPE_WORDS: Final = 3


class Layout(NamedTuple):
    """Where a kind's record keeps type ids and string offsets, in 32-bit words.

    ``fixed`` words follow struct btf_type, then ``vlen`` records of ``stride``
    words each. ``refs`` are word positions (from the record start) holding type
    ids; ``vlen_names`` and ``vlen_refs`` are positions inside each vlen record.
    """

    fixed: int
    stride: int
    refs: tuple[int, ...]
    vlen_names: tuple[int, ...]
    vlen_refs: tuple[int, ...]


_REF = (2,)  # btf_type.type
#: INT: u32 encoding; ARRAY: struct btf_array {type, index_type, nelems};
#: STRUCT/UNION: struct btf_member {name_off, type, offset};
#: ENUM: struct btf_enum {name_off, s32 val}; FUNC_PROTO: struct btf_param
#: {name_off, type}; VAR: struct btf_var {linkage}; DATASEC: struct
#: btf_var_secinfo {type, offset, size}; DECL_TAG: struct btf_decl_tag
#: {s32 component_idx}; ENUM64: struct btf_enum64 {name_off, val_lo32, val_hi32}.
LAYOUTS: Final[dict[int, Layout]] = {
    BTF_KIND_INT: Layout(1, 0, (), (), ()),
    BTF_KIND_PTR: Layout(0, 0, _REF, (), ()),
    BTF_KIND_ARRAY: Layout(3, 0, (3, 4), (), ()),
    BTF_KIND_STRUCT: Layout(0, 3, (), (0,), (1,)),
    BTF_KIND_UNION: Layout(0, 3, (), (0,), (1,)),
    BTF_KIND_ENUM: Layout(0, 2, (), (0,), ()),
    BTF_KIND_FWD: Layout(0, 0, (), (), ()),
    BTF_KIND_TYPEDEF: Layout(0, 0, _REF, (), ()),
    BTF_KIND_VOLATILE: Layout(0, 0, _REF, (), ()),
    BTF_KIND_CONST: Layout(0, 0, _REF, (), ()),
    BTF_KIND_RESTRICT: Layout(0, 0, _REF, (), ()),
    BTF_KIND_FUNC: Layout(0, 0, _REF, (), ()),
    BTF_KIND_FUNC_PROTO: Layout(0, 2, _REF, (0,), (1,)),
    BTF_KIND_VAR: Layout(1, 0, _REF, (), ()),
    BTF_KIND_DATASEC: Layout(0, 3, (), (), (0,)),
    BTF_KIND_FLOAT: Layout(0, 0, (), (), ()),
    BTF_KIND_DECL_TAG: Layout(1, 0, _REF, (), ()),
    BTF_KIND_TYPE_TAG: Layout(0, 0, _REF, (), ()),
    BTF_KIND_ENUM64: Layout(0, 3, (), (0,), ()),
}


def info_kind(info: int) -> int:
    """Kind from btf_type.info (bits 24-28)."""
    return (info >> 24) & 0x1F


def info_vlen(info: int) -> int:
    """vlen from btf_type.info (bits 0-15)."""
    return info & 0xFFFF


def info_kflag(info: int) -> bool:
    """kind_flag from btf_type.info (bit 31)."""
    return bool(info >> 31)


# INT encoding word: bits 24-27 encoding, bits 16-23 bit offset, bits 0-7 bits.
BTF_INT_SIGNED: Final = 1 << 0
BTF_INT_CHAR: Final = 1 << 1
BTF_INT_BOOL: Final = 1 << 2


def int_encoding(word: int) -> int:
    """BTF_INT_ENCODING(): the SIGNED/CHAR/BOOL bits."""
    return (word >> 24) & 0x0F


def int_offset(word: int) -> int:
    """BTF_INT_OFFSET(): bit offset of an INT (non-zero only in old bitfield BTF)."""
    return (word >> 16) & 0xFF


def int_bits(word: int) -> int:
    """BTF_INT_BITS(): number of value bits of an INT."""
    return word & 0xFF


def member_bit_offset(offset: int, kflag: bool) -> int:
    """BTF_MEMBER_BIT_OFFSET(): with kind_flag set, the low 24 bits are the offset."""
    return offset & 0xFFFFFF if kflag else offset


def member_bitfield_size(offset: int, kflag: bool) -> int:
    """BTF_MEMBER_BITFIELD_SIZE(): with kind_flag set, the high 8 bits; else 0."""
    return offset >> 24 if kflag else 0


# Linkage of FUNC (in vlen) and VAR (struct btf_var).
BTF_FUNC_STATIC: Final = 0
BTF_FUNC_GLOBAL: Final = 1
BTF_FUNC_EXTERN: Final = 2
FUNC_LINKAGE_NAMES: Final[dict[int, str]] = {
    BTF_FUNC_STATIC: "static",
    BTF_FUNC_GLOBAL: "global",
    BTF_FUNC_EXTERN: "extern",
}

BTF_VAR_STATIC: Final = 0
BTF_VAR_GLOBAL_ALLOCATED: Final = 1
BTF_VAR_GLOBAL_EXTERN: Final = 2
VAR_LINKAGE_NAMES: Final[dict[int, str]] = {
    BTF_VAR_STATIC: "static",
    BTF_VAR_GLOBAL_ALLOCATED: "global",
    BTF_VAR_GLOBAL_EXTERN: "extern",
}

#: Sizes the kernel accepts for INT (btf_int_check_meta) and ENUM types.
INT_SIZES: Final = frozenset({1, 2, 4, 8, 16})
ENUM_SIZES: Final = frozenset({1, 2, 4, 8})
