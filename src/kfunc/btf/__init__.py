"""A pure-Python BTF reader: parse vmlinux and split module BTF, look types up,
and render them as C. For example, the running kernel's tagged kfuncs::

    btf = load_vmlinux_btf()
    for func in btf.funcs("bpf_kfunc"):
        print(ksym_extern(btf, func))  # extern ... bpf_task_acquire(...) __ksym;
"""

from kfunc.btf.kernel import load_module_btf, load_vmlinux_btf, module_names
from kfunc.btf.parse import BTF, parse_btf, parse_btf_file
from kfunc.btf.render import declaration, func_prototype, ksym_extern, type_name
from kfunc.btf.types import (
    Array,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Type,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Void,
    Volatile,
)

__all__ = [
    "BTF",
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
    "declaration",
    "func_prototype",
    "ksym_extern",
    "load_module_btf",
    "load_vmlinux_btf",
    "module_names",
    "parse_btf",
    "parse_btf_file",
    "type_name",
]
