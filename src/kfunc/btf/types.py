"""The typed model of BTF: one named tuple per kind.

Types refer to each other by type id, like the kernel and libbpf do; look an
id up with ``btf[type_id]``. Every kind's class carries its ``KIND`` number.
Two types are equal when they are of the same class with equal fields.

Each class is a subclass of a private named tuple that holds only its fields:
a named tuple's body may hold nothing else that a type checker accepts (no
``KIND``, no ``__eq__``), and the subclass adds no per-instance cost
(``__slots__ = ()``).

Named tuples rather than dataclasses: defining two dozen frozen dataclasses
costs ~10 ms at import (each one compiles its methods), a third of what
``kfunc ls`` may spend on a whole kernel.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

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


class _Distinct(tuple[Any, ...]):
    """What every class below adds to its named tuple: a Ptr is no Const, nor a
    Struct a Union, whatever their fields; and the kinds' ``KIND``. (A named
    tuple's own body may hold only fields, methods and a docstring.)"""

    __slots__ = ()
    #: The BTF_KIND_* number of the kinds (not of Member, Param and the like).
    KIND: ClassVar[int]

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = tuple.__hash__


class _Void(NamedTuple):
    id: int = 0
    name: str = ""


class Void(_Void, _Distinct):
    """Type id 0: ``void``."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_UNKN


class _Int(NamedTuple):
    id: int
    name: str
    size: int
    encoding: int
    offset: int
    bits: int


class Int(_Int, _Distinct):
    """An integer type; ``encoding`` holds BTF_INT_SIGNED/CHAR/BOOL bits."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_INT

    @property
    def is_signed(self) -> bool:
        return bool(self.encoding & fmt.BTF_INT_SIGNED)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & fmt.BTF_INT_CHAR)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & fmt.BTF_INT_BOOL)


class _Ptr(NamedTuple):
    id: int
    name: str
    type: int


class Ptr(_Ptr, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_PTR


class _Array(NamedTuple):
    id: int
    name: str
    type: int
    index_type: int
    nelems: int


class Array(_Array, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_ARRAY


class _Member(NamedTuple):
    name: str
    type: int
    bit_offset: int
    bitfield_size: int


class Member(_Member, _Distinct):
    """A struct or union member; ``bitfield_size`` is 0 for a plain member."""

    __slots__ = ()


class _Struct(NamedTuple):
    id: int
    name: str
    size: int
    members: tuple[Member, ...]


class Struct(_Struct, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_STRUCT


class _Union(NamedTuple):
    id: int
    name: str
    size: int
    members: tuple[Member, ...]


class Union(_Union, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_UNION


class _EnumValue(NamedTuple):
    name: str
    value: int


class EnumValue(_EnumValue, _Distinct):
    __slots__ = ()


class _Enum(NamedTuple):
    id: int
    name: str
    size: int
    signed: bool
    values: tuple[EnumValue, ...]


class Enum(_Enum, _Distinct):
    """A 32-bit (or smaller) enum; values are already sign-converted per ``signed``."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_ENUM


class _Enum64(NamedTuple):
    id: int
    name: str
    size: int
    signed: bool
    values: tuple[EnumValue, ...]


class Enum64(_Enum64, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_ENUM64


class _Fwd(NamedTuple):
    id: int
    name: str
    is_union: bool


class Fwd(_Fwd, _Distinct):
    """A forward declaration: ``struct name;`` or, if ``is_union``, ``union name;``."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_FWD


class _Typedef(NamedTuple):
    id: int
    name: str
    type: int


class Typedef(_Typedef, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_TYPEDEF


class _Volatile(NamedTuple):
    id: int
    name: str
    type: int


class Volatile(_Volatile, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_VOLATILE


class _Const(NamedTuple):
    id: int
    name: str
    type: int


class Const(_Const, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_CONST


class _Restrict(NamedTuple):
    id: int
    name: str
    type: int


class Restrict(_Restrict, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_RESTRICT


class _Func(NamedTuple):
    id: int
    name: str
    type: int
    linkage: int


class Func(_Func, _Distinct):
    """A function; ``type`` is its FuncProto, ``linkage`` a BTF_FUNC_* value."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_FUNC


class _Param(NamedTuple):
    name: str
    type: int


class Param(_Param, _Distinct):
    __slots__ = ()


class _FuncProto(NamedTuple):
    id: int
    name: str
    return_type: int
    params: tuple[Param, ...]


class FuncProto(_FuncProto, _Distinct):
    """A function signature. A last parameter of type 0 (void) means ``...``."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_FUNC_PROTO

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type == 0


class _Var(NamedTuple):
    id: int
    name: str
    type: int
    linkage: int


class Var(_Var, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_VAR


class _VarSecinfo(NamedTuple):
    type: int
    offset: int
    size: int


class VarSecinfo(_VarSecinfo, _Distinct):
    __slots__ = ()


class _Datasec(NamedTuple):
    id: int
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]


class Datasec(_Datasec, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_DATASEC


class _Float(NamedTuple):
    id: int
    name: str
    size: int


class Float(_Float, _Distinct):
    __slots__ = ()
    KIND = fmt.BTF_KIND_FLOAT


class _DeclTag(NamedTuple):
    id: int
    name: str
    type: int
    component_idx: int
    attribute: bool


class DeclTag(_DeclTag, _Distinct):
    """A tag on ``type``: on the type itself when ``component_idx`` is -1, else on
    its member or parameter of that index. ``attribute`` (kind_flag) means the tag
    is an ``__attribute__((name))`` rather than ``btf_decl_tag("name")``."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_DECL_TAG


class _TypeTag(NamedTuple):
    id: int
    name: str
    type: int
    attribute: bool


class TypeTag(_TypeTag, _Distinct):
    """A ``btf_type_tag("name")`` on ``type`` (``__attribute__((name))`` if ``attribute``)."""

    __slots__ = ()
    KIND = fmt.BTF_KIND_TYPE_TAG


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
