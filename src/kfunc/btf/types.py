"""The typed model of BTF: one named tuple per kind.

Types refer to each other by type id, like the kernel and libbpf do; look an
id up with ``btf[type_id]``. Every class carries its ``KIND`` number. Two
types are equal when they are of the same class with equal fields.

Named tuples rather than dataclasses: defining two dozen frozen dataclasses
costs ~10 ms at import (each one compiles its methods), a third of what
``kfunc ls`` may spend on a whole kernel.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


class Void(NamedTuple):
    """Type id 0: ``void``."""

    KIND = fmt.BTF_KIND_UNKN
    id: int = 0
    name: str = ""


class Int(NamedTuple):
    """An integer type; ``encoding`` holds BTF_INT_SIGNED/CHAR/BOOL bits."""

    KIND = fmt.BTF_KIND_INT
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


class Ptr(NamedTuple):
    KIND = fmt.BTF_KIND_PTR
    id: int
    name: str
    type: int


class Array(NamedTuple):
    KIND = fmt.BTF_KIND_ARRAY
    id: int
    name: str
    type: int
    index_type: int
    nelems: int


class Member(NamedTuple):
    """A struct or union member; ``bitfield_size`` is 0 for a plain member."""

    name: str
    type: int
    bit_offset: int
    bitfield_size: int


class Struct(NamedTuple):
    KIND = fmt.BTF_KIND_STRUCT
    id: int
    name: str
    size: int
    members: tuple[Member, ...]


class Union(NamedTuple):
    KIND = fmt.BTF_KIND_UNION
    id: int
    name: str
    size: int
    members: tuple[Member, ...]


class EnumValue(NamedTuple):
    name: str
    value: int


class Enum(NamedTuple):
    """A 32-bit (or smaller) enum; values are already sign-converted per ``signed``."""

    KIND = fmt.BTF_KIND_ENUM
    id: int
    name: str
    size: int
    signed: bool
    values: tuple[EnumValue, ...]


class Enum64(NamedTuple):
    KIND = fmt.BTF_KIND_ENUM64
    id: int
    name: str
    size: int
    signed: bool
    values: tuple[EnumValue, ...]


class Fwd(NamedTuple):
    """A forward declaration: ``struct name;`` or, if ``is_union``, ``union name;``."""

    KIND = fmt.BTF_KIND_FWD
    id: int
    name: str
    is_union: bool


class Typedef(NamedTuple):
    KIND = fmt.BTF_KIND_TYPEDEF
    id: int
    name: str
    type: int


class Volatile(NamedTuple):
    KIND = fmt.BTF_KIND_VOLATILE
    id: int
    name: str
    type: int


class Const(NamedTuple):
    KIND = fmt.BTF_KIND_CONST
    id: int
    name: str
    type: int


class Restrict(NamedTuple):
    KIND = fmt.BTF_KIND_RESTRICT
    id: int
    name: str
    type: int


class Func(NamedTuple):
    """A function; ``type`` is its FuncProto, ``linkage`` a BTF_FUNC_* value."""

    KIND = fmt.BTF_KIND_FUNC
    id: int
    name: str
    type: int
    linkage: int


class Param(NamedTuple):
    name: str
    type: int


class FuncProto(NamedTuple):
    """A function signature. A last parameter of type 0 (void) means ``...``."""

    KIND = fmt.BTF_KIND_FUNC_PROTO
    id: int
    name: str
    return_type: int
    params: tuple[Param, ...]

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type == 0


class Var(NamedTuple):
    KIND = fmt.BTF_KIND_VAR
    id: int
    name: str
    type: int
    linkage: int


class VarSecinfo(NamedTuple):
    type: int
    offset: int
    size: int


class Datasec(NamedTuple):
    KIND = fmt.BTF_KIND_DATASEC
    id: int
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]


class Float(NamedTuple):
    KIND = fmt.BTF_KIND_FLOAT
    id: int
    name: str
    size: int


class DeclTag(NamedTuple):
    """A tag on ``type``: on the type itself when ``component_idx`` is -1, else on
    its member or parameter of that index. ``attribute`` (kind_flag) means the tag
    is an ``__attribute__((name))`` rather than ``btf_decl_tag("name")``."""

    KIND = fmt.BTF_KIND_DECL_TAG
    id: int
    name: str
    type: int
    component_idx: int
    attribute: bool


class TypeTag(NamedTuple):
    """A ``btf_type_tag("name")`` on ``type`` (``__attribute__((name))`` if ``attribute``)."""

    KIND = fmt.BTF_KIND_TYPE_TAG
    id: int
    name: str
    type: int
    attribute: bool


def _eq(self: tuple[Any, ...], other: object) -> bool:
    return type(self) is type(other) and tuple.__eq__(self, other)  # type: ignore[operator]


def _ne(self: tuple[Any, ...], other: object) -> bool:
    return not _eq(self, other)


# A Ptr is no Const, nor a Struct a Union, whatever their fields.
for _cls in (
    Void, Int, Ptr, Array, Member, Struct, Union, EnumValue, Enum, Enum64, Fwd, Typedef,
    Volatile, Const, Restrict, Func, Param, FuncProto, Var, VarSecinfo, Datasec, Float,
    DeclTag, TypeTag,
):  # fmt: skip
    _cls.__eq__ = _eq  # type: ignore[assignment,method-assign]
    _cls.__ne__ = _ne  # type: ignore[assignment,method-assign]
    _cls.__hash__ = tuple.__hash__  # type: ignore[assignment,method-assign]

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
