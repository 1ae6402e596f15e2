"""The difference between two kfunc inventories: why kfuncs are not a stable API.

kfuncs are matched by name (a kfunc that moved between vmlinux and a module is
the same kfunc, reported as moved). Prototypes are compared as rendered C, so a
renamed parameter counts as a change; KF_* flags are compared only where both
sides know them (decl tags carry none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kfunc.inventory import Inventory, Kfunc

__all__ = ["Change", "KfuncDiff", "diff_inventories"]


@dataclass(frozen=True, slots=True)
class Change:
    """One kfunc present on both sides whose ``what`` (prototype, flags or owner)
    differs: ``old`` and ``new`` are its two values, as text."""

    name: str
    what: str
    old: str
    new: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "what": self.what, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class KfuncDiff:
    """``old`` -> ``new``: kfuncs added and removed, and changes of those in both."""

    old: Inventory
    new: Inventory
    added: tuple[Kfunc, ...]
    removed: tuple[Kfunc, ...]
    prototype_changed: tuple[Change, ...]
    flags_changed: tuple[Change, ...]
    moved: tuple[Change, ...]

    @property
    def summary(self) -> str:
        """``97 added, 2 removed, 5 prototype changed, 3 flags changed, 0 moved``."""
        return (
            f"{len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.prototype_changed)} prototype changed, "
            f"{len(self.flags_changed)} flags changed, {len(self.moved)} moved"
        )

    def to_dict(self) -> dict[str, Any]:
        def side(inv: Inventory) -> dict[str, Any]:
            return {"target": inv.target, "kfuncs": len(inv.kfuncs), "helpers": inv.helpers}

        return {
            "old": side(self.old),
            "new": side(self.new),
            "added": [k.to_dict() for k in self.added],
            "removed": [k.to_dict() for k in self.removed],
            "prototype_changed": [c.to_dict() for c in self.prototype_changed],
            "flags_changed": [c.to_dict() for c in self.flags_changed],
            "moved": [c.to_dict() for c in self.moved],
        }


def _flags(k: Kfunc) -> str:
    return " | ".join(k.flags or ()) or "-"


def diff_inventories(old: Inventory, new: Inventory) -> KfuncDiff:
    """What changed from ``old`` to ``new``; each list sorted by kfunc name."""
    a = {k.name: k for k in old.kfuncs}
    b = {k.name: k for k in new.kfuncs}
    both = sorted(a.keys() & b.keys())
    return KfuncDiff(
        old,
        new,
        added=tuple(b[n] for n in sorted(b.keys() - a.keys())),
        removed=tuple(a[n] for n in sorted(a.keys() - b.keys())),
        prototype_changed=tuple(
            Change(n, "prototype", a[n].prototype, b[n].prototype)
            for n in both
            if a[n].prototype != b[n].prototype
        ),
        flags_changed=tuple(
            Change(n, "flags", _flags(a[n]), _flags(b[n]))
            for n in both
            if a[n].flags is not None and b[n].flags is not None and a[n].flags != b[n].flags
        ),
        moved=tuple(
            Change(n, "owner", a[n].owner, b[n].owner) for n in both if a[n].owner != b[n].owner
        ),
    )
