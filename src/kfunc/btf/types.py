"""The typed model of BTF: one frozen dataclass per kind.

Types refer to each other by type id, like the kernel and libbpf do; look an
id up with ``btf[type_id]``. Every class carries its ``KIND`` number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from kfunc.btf import format as fmt

__all__ = [
    "Array",
    "Const",
    "Datasec",
    "DeclTag",
    "Enum",
    "Enum64",
    "EnumValue",
    "Float",
    "Func",
    "FuncProto",
    "Fwd",
    "Int",
    "Member",
    "Param",
    "Ptr",
    "Restrict",
    "Struct",
    "Type",
    "TypeTag",
    "Typedef",
    "Union",
    "Var",
    "VarSecinfo",
    "Void",
    "Volatile",
]


@dataclass(frozen=True, slots=True)
class Void:
    """Type id 0: ``void``."""

    KIND: ClassVar[int] = fmt.BTF_KIND_UNKN
    id: int = 0
    name: str = ""


@dataclass(frozen=True, slots=True)
class Int:
    """An integer type; ``encoding`` holds BTF_INT_SIGNED/CHAR/BOOL bits."""

    KIND: ClassVar[int] = fmt.BTF_KIND_INT
    id: int
    name: str
    size: int
    encoding: int
    offset: int
    bits: int

    @property
    def is_signed(self) -> bool:
        return bool(self.encoding & fmt.BTF_INT_SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & fmt.BTF_INT_CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & fmt.BTF_INT_BOOL)


@dataclass(frozen=True, slots=True)
class Ptr:
    KIND: ClassVar[int] = fmt.BTF_KIND_PTR
    id: int
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Array:
    KIND: ClassVar[int] = fmt.BTF_KIND_ARRAY
    id: int
    name: str
    type: int
    index_type: int
    nelems: int


@dataclass(frozen=True, slots=True)
class Member:
    """A struct or union member; ``bitfield_size`` is 0 for a plain member."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int


@dataclass(frozen=True, slots=True)
class Struct:
    KIND: ClassVar[int] = fmt.BTF_KIND_STRUCT
    id: int
    name: str
    size: int
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class Union:
    KIND: ClassVar[int] = fmt.BTF_KIND_UNION
    id: int
    name: str
    size: int
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class Enum:
    """A 32-bit (or smaller) enum; values are already sign-converted per ``signed``."""

    KIND: ClassVar[int] = fmt.BTF_KIND_ENUM
    id: int
    name: str
    size: int
    signed: bool
    values: tuple[EnumValue, ...]


@dataclass(frozen=True, slots=True)
class Enum64:
    KIND: ClassVar[int] = fmt.BTF_KIND_ENUM64
    id: int
    name: str
    size: int
    signed: bool
    values: tuple[EnumValue, ...]


@dataclass(frozen=True, slots=True)
class Fwd:
    """A forward declaration: ``struct name;`` or, if ``is_union``, ``union name;``."""

    KIND: ClassVar[int] = fmt.BTF_KIND_FWD
    id: int
    name: str
    is_union: bool


@dataclass(frozen=True, slots=True)
class Typedef:
    KIND: ClassVar[int] = fmt.BTF_KIND_TYPEDEF
    id: int
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Volatile:
    KIND: ClassVar[int] = fmt.BTF_KIND_VOLATILE
    id: int
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Const:
    KIND: ClassVar[int] = fmt.BTF_KIND_CONST
    id: int
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Restrict:
    KIND: ClassVar[int] = fmt.BTF_KIND_RESTRICT
    id: int
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class Func:
    """A function; ``type`` is its FuncProto, ``linkage`` a BTF_FUNC_* value."""

    KIND: ClassVar[int] = fmt.BTF_KIND_FUNC
    id: int
    name: str
    type: int
    linkage: int


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: int


@dataclass(frozen=True, slots=True)
class FuncProto:
    """A function signature. A last parameter of type 0 (void) means ``...``."""

    KIND: ClassVar[int] = fmt.BTF_KIND_FUNC_PROTO
    id: int
    name: str
    return_type: int
    params: tuple[Param, ...]

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type == 0


@dataclass(frozen=True, slots=True)
class Var:
    KIND: ClassVar[int] = fmt.BTF_KIND_VAR
    id: int
    name: str
    type: int
    linkage: int


@dataclass(frozen=True, slots=True)
class VarSecinfo:
    type: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Datasec:
    KIND: ClassVar[int] = fmt.BTF_KIND_DATASEC
    id: int
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]


@dataclass(frozen=True, slots=True)
class Float:
    KIND: ClassVar[int] = fmt.BTF_KIND_FLOAT
    id: int
    name: str
    size: int


@dataclass(frozen=True, slots=True)
class DeclTag:
    """A tag on ``type``: on the type itself when ``component_idx`` is -1, else on
    its member or parameter of that index. ``attribute`` (kind_flag) means the tag
    is an ``__attribute__((name))`` rather than ``btf_decl_tag("name")``."""

    KIND: ClassVar[int] = fmt.BTF_KIND_DECL_TAG
    id: int
    name: str
    type: int
    component_idx: int
    attribute: bool


@dataclass(frozen=True, slots=True)
class TypeTag:
    """A ``btf_type_tag("name")`` on ``type`` (``__attribute__((name))`` if ``attribute``)."""

    KIND: ClassVar[int] = fmt.BTF_KIND_TYPE_TAG
    id: int
    name: str
    type: int
    attribute: bool


Type = (
    Void
    | Int
    | Ptr
    | Array
    | Struct
    | Union
    | Enum
    | Fwd
    | Typedef
    | Volatile
    | Const
    | Restrict
    | Func
    | FuncProto
    | Var
    | Datasec
    | Float
    | DeclTag
    | TypeTag
    | Enum64
)
