"""Render BTF types as C declarations, the way libbpf's btf_dump (and so
``bpftool btf dump ... format c``) writes them.

The declarator algorithm follows libbpf's ``btf_dump_emit_type_decl``: push the
chain of types from the declared type down to a named base type, then unwind
it, writing modifiers left of base types and right of pointers, and wrapping
pointers to arrays and functions in parentheses. Anonymous structs, unions and
enums are written as ``struct {...}`` instead of being inlined.
"""

from __future__ import annotations

from kfunc.btf import format as fmt
from kfunc.btf import types as t
from kfunc.btf.parse import BTF
from kfunc.errors import BTFError

__all__ = ["declaration", "func_prototype", "ksym_declaration", "ksym_extern", "type_name"]

# Longest modifier/pointer/array chain and deepest function-pointer nesting
# accepted before calling the BTF cyclic; real kernels stay far below.
_MAX_CHAIN = 256
_MAX_NESTING = 32

# Qualifiers by kind, and kinds by their part in a declarator: the renderer
# builds objects only for the links of a chain, never for the struct, enum or
# typedef it ends at (their names are all it needs).
_QUALIFIERS = {
    fmt.BTF_KIND_VOLATILE: "volatile",
    fmt.BTF_KIND_CONST: "const",
    fmt.BTF_KIND_RESTRICT: "restrict",
}
_Link = t.Volatile | t.Const | t.Restrict | t.Ptr | t.TypeTag | t.Array
_NAMED = frozenset({fmt.BTF_KIND_INT, fmt.BTF_KIND_FLOAT, fmt.BTF_KIND_TYPEDEF})
_ENUMS = frozenset({fmt.BTF_KIND_ENUM, fmt.BTF_KIND_ENUM64})
_BASES = _NAMED | _ENUMS | {fmt.BTF_KIND_STRUCT, fmt.BTF_KIND_UNION, fmt.BTF_KIND_FWD}


def declaration(btf: BTF, type_id: int, name: str = "") -> str:
    """C declaration of ``name`` with type ``type_id``, e.g. ``char comm[16]``,
    ``int (*cb)(void *)``; with no name, the type name (``const char *``)."""
    out: list[str] = []
    _Renderer(btf, out).decl(type_id, name, 0)
    return "".join(out)


def type_name(btf: BTF, type_id: int) -> str:
    """The C name of a type, as in a cast: ``struct task_struct *``."""
    return declaration(btf, type_id)


def func_prototype(btf: BTF, func: t.Func) -> str:
    """``u64 bpf_kfunc_call_test(u32 a, u64 b, u32 c, u64 d)``."""
    return declaration(btf, func.type, func.name)


def ksym_declaration(prototype: str, weak: bool = False) -> str:
    """The BPF-side declaration of the kfunc ``prototype`` (``u64 f(u32 a)``):
    ``extern u64 f(u32 a) __ksym;``, and with ``weak`` ``extern u64 f(u32 a) __ksym
    __weak;``, which loads where the kernel lacks the kfunc (test it with
    ``bpf_ksym_exists()``). The one spelling kfunc writes: libbpf's selftests and
    bpf_experimental.h put ``__weak`` after ``__ksym``."""
    return f"extern {prototype} __ksym{' __weak' if weak else ''};"


def ksym_extern(btf: BTF, func: t.Func, weak: bool = False) -> str:
    """:func:`ksym_declaration` of a kfunc of ``btf``:
    ``extern u64 bpf_kfunc_call_test(u32 a, u64 b, u32 c, u64 d) __ksym;``."""
    return ksym_declaration(func_prototype(btf, func), weak)


class _Renderer:
    def __init__(self, btf: BTF, out: list[str]) -> None:
        self.btf = btf
        self.out = out

    def fail(self, type_id: int, what: str) -> BTFError:
        return BTFError(
            f"BTF {self.btf.name}: type [{type_id}]: {what}", offset=self.btf.offset_of(type_id)
        )

    def decl(self, type_id: int, fname: str, nesting: int) -> None:
        if nesting > _MAX_NESTING:
            raise self.fail(type_id, "function pointers nested too deep (cyclic BTF?)")
        stack = []
        cur = type_id
        while True:
            stack.append(cur)
            if len(stack) > _MAX_CHAIN:
                raise self.fail(type_id, "type chain too long (cyclic BTF?)")
            if cur == 0:
                break
            kind = self.btf.kind(cur)
            if kind in _BASES:
                break
            typ = self.btf[cur]
            if isinstance(typ, _Link):
                cur = typ.type
            elif isinstance(typ, t.FuncProto):
                cur = typ.return_type
            else:
                raise self.fail(cur, f"a {type(typ).__name__} cannot appear in a declaration")
        self.chain(stack, fname, nesting)

    def emit_mods(self, stack: list[int]) -> None:
        """Write the const/volatile/restrict that apply to the base type just popped."""
        while stack:
            word = _QUALIFIERS.get(self.btf.kind(stack[-1]))
            if word is None:
                return
            self.out.append(word + " ")
            stack.pop()

    def drop_mods(self, stack: list[int]) -> None:
        """Drop qualifiers on arrays and functions, as libbpf does (GCC quirks)."""
        while stack and self.btf.kind(stack[-1]) in _QUALIFIERS:
            stack.pop()

    def emit_name(self, fname: str, last_was_ptr: bool) -> None:
        if fname and not last_was_ptr:
            self.out.append(" ")
        self.out.append(fname)

    def chain(self, stack: list[int], fname: str, nesting: int) -> None:
        out = self.out
        last_was_ptr = True
        while stack:
            type_id = stack.pop()
            if type_id == 0:
                self.emit_mods(stack)
                out.append("void")
                last_was_ptr = False
                continue
            kind = self.btf.kind(type_id)
            if kind in _BASES:
                self.emit_mods(stack)
                out.append(self.base_name(type_id, kind))
                last_was_ptr = False
                continue
            typ = self.btf[type_id]
            if isinstance(typ, t.Ptr):
                out.append("*" if last_was_ptr else " *")
            elif kind in _QUALIFIERS:
                out.append(" " + _QUALIFIERS[kind])
            elif isinstance(typ, t.TypeTag):
                self.emit_mods(stack)
                if typ.attribute:
                    out.append(f" __attribute__(({typ.name}))")
                else:
                    out.append(f' __attribute__((btf_type_tag("{typ.name}")))')
            elif isinstance(typ, t.Array):
                self.array(typ, stack, fname, last_was_ptr, nesting)
                return
            else:
                assert isinstance(typ, t.FuncProto)  # decl() admitted nothing else
                self.func_proto(typ, stack, fname, last_was_ptr, nesting)
                return
            last_was_ptr = isinstance(typ, t.Ptr)
        self.emit_name(fname, last_was_ptr)

    def base_name(self, type_id: int, kind: int) -> str:
        """``int``, ``struct task_struct``, ``union {...}``, ``enum bpf_func_id``."""
        name = self.btf.name_of(type_id)
        if kind in _NAMED:
            return name
        if kind in _ENUMS:
            keyword = "enum"
        elif kind == fmt.BTF_KIND_FWD:
            fwd = self.btf[type_id]
            keyword = "union" if isinstance(fwd, t.Fwd) and fwd.is_union else "struct"
        else:
            keyword = "union" if kind == fmt.BTF_KIND_UNION else "struct"
        return f"{keyword} {name or '{...}'}"

    def array(
        self, typ: t.Array, stack: list[int], fname: str, last_was_ptr: bool, nesting: int
    ) -> None:
        self.drop_mods(stack)
        if not stack:
            self.emit_name(fname, last_was_ptr)
            self.out.append(f"[{typ.nelems}]")
            return
        multidim = self.btf.kind(stack[-1]) == fmt.BTF_KIND_ARRAY
        if fname and not last_was_ptr:
            self.out.append(" ")
        if not multidim:
            self.out.append("(")
        self.chain(stack, fname, nesting)
        if not multidim:
            self.out.append(")")
        self.out.append(f"[{typ.nelems}]")

    def func_proto(
        self, typ: t.FuncProto, stack: list[int], fname: str, last_was_ptr: bool, nesting: int
    ) -> None:
        out = self.out
        self.drop_mods(stack)
        if stack:
            out.append(" (")
            self.chain(stack, fname, nesting)
            out.append(")")
        else:
            self.emit_name(fname, last_was_ptr)
        params = typ.params
        if not params or (len(params) == 1 and params[0].type == 0):
            out.append("(void)")
            return
        out.append("(")
        for n, param in enumerate(params):
            if n:
                out.append(", ")
            if n == len(params) - 1 and param.type == 0:
                out.append("...")
                break
            self.decl(param.type, param.name, nesting + 1)
        out.append(")")
