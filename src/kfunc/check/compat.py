"""libbpf's rule for a kfunc extern's prototype: when a program's declaration and
the kernel's FUNC_PROTO are compatible (``__bpf_core_types_are_compat()`` of
tools/lib/bpf/relo_core.c, which libbpf 1.1 applies to ``extern ... __ksym``
functions in ``bpf_object__resolve_ksym_func_btf_id()``), and where they
differ only in ways libbpf lets pass (integer sizes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfunc.btf import types as bt
from kfunc.btf.render import type_name

if TYPE_CHECKING:
    from kfunc.btf.parse import BTF

__all__ = ["int_size_warnings", "prototypes_compatible"]


def _skip_mods(btf: BTF, type_id: int) -> tuple[int, bt.Type]:
    typ = btf[type_id]
    while isinstance(typ, bt.Typedef | bt.Const | bt.Volatile | bt.Restrict | bt.TypeTag):
        type_id = typ.type
        typ = btf[type_id]
    return type_id, typ


def _kinds_compat(a: bt.Type, b: bt.Type) -> bool:
    enums = (bt.Enum, bt.Enum64)
    return type(a) is type(b) or (isinstance(a, enums) and isinstance(b, enums))


def prototypes_compatible(local: BTF, local_id: int, target: BTF, target_id: int) -> bool:
    """libbpf 1.1's ``bpf_core_types_are_compat()``, the check its kfunc externs pass.

    Names are ignored below the root; any two STRUCTs (UNIONs, FWDs, ENUMs or
    ENUM64s, INTs) are compatible, but kinds must match (a forward declaration
    is not a struct); INTs of any size and sign are compatible (bitfield-like
    ones are not); modifiers and typedefs are skipped; PTRs and ARRAYs compare
    what they point to; FUNC_PROTOs need the same number of parameters and
    compatible parameter and return types. Recursion stops at depth 32.
    """
    depth = 32
    pending = [(local_id, target_id)]
    if not _kinds_compat(local[local_id], target[target_id]):
        return False
    while pending:
        lid, tid = pending.pop()
        depth -= 1
        if depth < 0:
            return False
        lid, lt = _skip_mods(local, lid)
        tid, tt = _skip_mods(target, tid)
        if not _kinds_compat(lt, tt):
            return False
        if isinstance(lt, bt.Void | bt.Struct | bt.Union | bt.Enum | bt.Enum64 | bt.Fwd):
            continue
        if isinstance(lt, bt.Int):
            assert isinstance(tt, bt.Int)
            if lt.offset or tt.offset:
                return False
        elif isinstance(lt, bt.Ptr | bt.Array):
            assert isinstance(tt, bt.Ptr | bt.Array)
            pending.append((lt.type, tt.type))
        elif isinstance(lt, bt.FuncProto):
            assert isinstance(tt, bt.FuncProto)
            if len(lt.params) != len(tt.params):
                return False
            pending.append((lt.return_type, tt.return_type))
            pending += [(lp.type, tp.type) for lp, tp in zip(lt.params, tt.params, strict=True)]
        else:
            return False
    return True


def int_size_warnings(local: BTF, local_id: int, target: BTF, target_id: int) -> list[str]:
    """Integer parameters (and return value) whose sizes differ: libbpf lets them pass."""
    lp, tp = local[local_id], target[target_id]
    if not (isinstance(lp, bt.FuncProto) and isinstance(tp, bt.FuncProto)):
        return []
    if len(lp.params) != len(tp.params):
        return []
    pairs = [("the return value", lp.return_type, tp.return_type)]
    pairs += [
        (f"argument {i} ({q.name or p.name or '?'})", p.type, q.type)
        for i, (p, q) in enumerate(zip(lp.params, tp.params, strict=True))
    ]
    out = []
    for what, a, b in pairs:
        la, ta = local.resolve(a), target.resolve(b)
        if isinstance(la, bt.Int) and isinstance(ta, bt.Int) and la.size != ta.size:
            out.append(
                f"{what} is {type_name(local, a)} ({la.size} bytes) in the program but "
                f"{type_name(target, b)} ({ta.size} bytes) in the kernel"
            )
    return out
