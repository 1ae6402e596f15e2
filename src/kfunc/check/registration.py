"""How a module registers its kfuncs (``register_btf_kfunc_id_set()``): from its
spec, or read from its C sources (see :mod:`kfunc.csource`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kfunc.csource import ModuleC, read_module_c

if TYPE_CHECKING:
    from kfunc.spec import ModuleSpec

__all__ = [
    "Registration",
    "module_registrations",
    "registration_from_sources",
    "registration_from_spec",
    "registration_of",
]


@dataclass(frozen=True)
class Registration:
    """How a module registers its kfuncs: program types by kfunc (``by_kfunc``,
    from a spec) or for all of them (``prog_types``, from its sources), and where
    that was read (``source``)."""

    module: str
    prog_types: tuple[str, ...]
    source: str
    by_kfunc: dict[str, tuple[str, ...]] | None = None

    def types_for(self, kfunc: str) -> tuple[str, ...]:
        if self.by_kfunc is not None and kfunc in self.by_kfunc:
            return self.by_kfunc[kfunc]
        return self.prog_types


def registration_from_spec(spec: ModuleSpec) -> Registration:
    """A module spec's registrations: each kfunc's program types, or the module's."""
    by_kfunc = {k.name: k.prog_types or spec.prog_types for k in spec.kfuncs if not k.dtor_for}
    where = str(spec.path) if spec.path else f"spec of module {spec.name}"
    return Registration(spec.name, spec.prog_types, where, by_kfunc)


def registration_from_sources(module: str, sources: list[Path]) -> Registration | None:
    """A hand-written module's register_btf_kfunc_id_set() calls, each kfunc with the
    program types its own sets are registered for; None if it has none."""
    return registration_of(module, read_module_c(sources))


def registration_of(module: str, c: ModuleC) -> Registration | None:
    """:func:`registration_from_sources` of sources already read."""
    if not c.registrations:
        return None
    names = ", ".join(dict.fromkeys(r.where.partition(":")[0] for r in c.registrations))
    by_kfunc = {name: c.prog_types_of(name) for name, _ in c.kfuncs}
    return Registration(module, c.prog_types, f"register_btf_kfunc_id_set() in {names}", by_kfunc)


def module_registrations(sources: list[Path]) -> list[str]:
    """Program types a module's sources register kfunc sets for (libbpf names), read
    as C (see :mod:`kfunc.csource`)."""
    return list(read_module_c(sources).prog_types)
