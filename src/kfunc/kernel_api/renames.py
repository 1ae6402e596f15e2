"""Functions that BPF programs attach to and that upstream renamed.

A program written for one kernel names its attach point in its section
(``kprobe/do_unlinkat``); on a kernel where the function has another name the
attach (kprobe) or the load (fentry) fails. :data:`RENAMED` maps each old
name to the new one and the change that renamed it; Debian's 7.2 and 7.3 have
only the new names, 6.12 only the old ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfunc.kernel_api.change import Change
from kfunc.kernel_api.version import KernelVersion

__all__ = ["RENAMED", "Renamed", "renamed_from"]


@dataclass(frozen=True)
class Renamed:
    """A function's ``new`` name and the change that gave it."""

    new: str
    change: Change

    @property
    def since(self) -> KernelVersion:
        return self.change.release


_V70 = KernelVersion(7, 0)


# Al Viro's struct filename series (merged for 7.0) made non-consuming
# variants of fs/namei.c's do_*() helpers under new names.
_NAMEI_COMMITS = {
    "renameat2": "e6d50234ccb9",
    "linkat": "037193b0ae83",
    "symlinkat": "da72b76aaeaa",
    "mkdirat": "dc912db15ab1",
    "mknodat": "88fdc2761797",
}


def _namei(op: str) -> Change:
    if op in ("unlinkat", "rmdir"):
        return Change(_V70, "non-consuming variants of do_{unlinkat,rmdir}()", "e50aae1d39ac")
    return Change(_V70, f"non-consuming variant of do_{op}()", _NAMEI_COMMITS[op])


#: Functions that programs attach to and that upstream renamed: old -> new.
RENAMED: dict[str, Renamed] = {
    **{
        f"do_{op}": Renamed(f"filename_{op}", _namei(op))
        for op in ("unlinkat", "rmdir", "mkdirat", "mknodat", "linkat", "symlinkat", "renameat2")
    },
    "do_filp_open": Renamed(
        "do_file_open", Change(_V70, "rename do_filp_open() to do_file_open()", "541003b576c3")
    ),
}
_REVERSED = {r.new: (old, r) for old, r in RENAMED.items()}


def renamed_from(new: str) -> tuple[str, Renamed] | None:
    """The old name of a function upstream renamed to ``new``, and the rename."""
    return _REVERSED.get(new)
