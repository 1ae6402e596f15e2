"""Checks of a BPF object against a target kernel, before anything is loaded.

- :mod:`~kfunc.check.bpf_object`: the object, read once from its ELF file
  (programs, their types by :mod:`~kfunc.check.sections`, kfunc externs,
  relocations, line info). Pure: the same result on any machine.
- :mod:`~kfunc.check.rules`: which calls cannot work on a kernel, and why;
  :mod:`~kfunc.check.compat`: libbpf's rule for a kfunc's prototype;
  :mod:`~kfunc.check.registration`: how a module registers its kfuncs.
- :mod:`~kfunc.check.finding`: the one result type, :class:`Finding`.
- :mod:`~kfunc.check.view`: the orchestration, what the rules are told of a
  target kernel (its inventory, hooks, probe, the modules given).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kfunc.check.bpf_object import (
        BpfObjectInfo,
        KfuncCall,
        Program,
        Relocation,
        read_bpf_object,
        read_line_info,
    )
    from kfunc.check.compat import prototypes_compatible
    from kfunc.check.finding import Finding
    from kfunc.check.registration import (
        Registration,
        module_registrations,
        registration_from_sources,
        registration_from_spec,
        registration_of,
    )
    from kfunc.check.rules import (
        VMLINUX,
        CallReport,
        KernelView,
        check_calls,
        check_module_calls,
        check_object,
        check_registrations,
    )
    from kfunc.check.sections import prog_type_of_section
    from kfunc.check.view import kernel_view

__all__ = [
    "VMLINUX",
    "BpfObjectInfo",
    "CallReport",
    "Finding",
    "KernelView",
    "KfuncCall",
    "Program",
    "Registration",
    "Relocation",
    "check_calls",
    "check_module_calls",
    "check_object",
    "check_registrations",
    "kernel_view",
    "module_registrations",
    "prog_type_of_section",
    "prototypes_compatible",
    "read_bpf_object",
    "read_line_info",
    "registration_from_sources",
    "registration_from_spec",
    "registration_of",
]

# Names are imported on first use (PEP 562): reading an object (probe, run)
# should not import the orchestration, which imports kbuild and the kernels.
_MODULES = {
    "bpf_object": "BpfObjectInfo KfuncCall Program Relocation read_bpf_object read_line_info",
    "compat": "prototypes_compatible",
    "finding": "Finding",
    "registration": "Registration module_registrations registration_from_sources "
    "registration_from_spec registration_of",
    "rules": "VMLINUX CallReport KernelView check_calls check_module_calls check_object "
    "check_registrations",
    "sections": "prog_type_of_section",
    "view": "kernel_view",
}
_HOME = {name: module for module, names in _MODULES.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kfunc.check.{_HOME[name]}"), name)
    globals()[name] = value
    return value
