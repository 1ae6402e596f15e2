"""A pure-Python BTF reader: parse vmlinux and split module BTF, look types up,
and render them as C. For example, the running kernel's tagged kfuncs::

    btf = load_vmlinux_btf()
    for func in btf.funcs("bpf_kfunc"):
        print(ksym_extern(btf, func))  # extern ... bpf_task_acquire(...) __ksym;
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Names are imported on first use (PEP 562): `from kfunc.btf.kernel import
# SYS_BTF` should not pay for the parser and the renderer.
_HOME = {
    **dict.fromkeys(["load_module_btf", "load_vmlinux_btf", "module_names"], "kernel"),
    **dict.fromkeys(["BTF", "parse_btf", "parse_btf_file"], "parse"),
    **dict.fromkeys(["declaration", "func_prototype", "ksym_extern", "type_name"], "render"),
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"kfunc.btf.{_HOME.get(name, 'types')}")
    value = getattr(module, name)
    globals()[name] = value
    return value
