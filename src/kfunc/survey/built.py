"""Counts on a built kernel beside the counts of its sources, and why they differ.

A built kernel's BTF knows its helpers (``enum bpf_func_id``) and its kfuncs
(``bpf_kfunc`` decl tags, or the ``.BTF_ids`` kfunc sets where the BTF has no
tags). The inventory comes from :mod:`kfunc.inventory`. Sources and build differ
because the build holds only what its configuration compiled (a file behind an
unset CONFIG_ option, an ``#ifdef CONFIG_X86`` branch), and because a
vmlinux's BTF lacks the kfuncs of modules; a kernel target's inventory includes
its image package's modules, the running kernel's only the loaded ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kfunc.inventory import VMLINUX, Inventory
from kfunc.survey.model import ReleaseCount

__all__ = ["BuiltCount", "compare"]


@dataclass
class BuiltCount:
    """A built kernel's counts, and where they part from its sources'."""

    target: str
    helpers: int | None  # without BPF_FUNC_unspec, as the source count
    kfuncs: int
    kfuncs_in_modules: int
    source: str | None = None  # the source tree compared with
    source_helpers: int | None = None
    source_kfuncs: int | None = None
    only_in_source: dict[str, list[str]] = field(default_factory=dict)  # file -> names
    only_in_build: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "helpers": self.helpers,
            "kfuncs": self.kfuncs,
            "kfuncs_in_modules": self.kfuncs_in_modules,
            "source": self.source,
            "source_helpers": self.source_helpers,
            "source_kfuncs": self.source_kfuncs,
            "only_in_source": self.only_in_source,
            "only_in_build": self.only_in_build,
            "reasons": self.reasons,
        }


def compare(inventory: Inventory, source: ReleaseCount | None) -> BuiltCount:
    """The built kernel's counts and, given its source tree's, the differences."""
    names = {k.name for k in inventory.kfuncs}
    in_modules = {k.name for k in inventory.kfuncs if k.owner != VMLINUX}
    # The kernel's enum counts BPF_FUNC_unspec (id 0); the source count does not.
    helpers = inventory.helpers - 1 if inventory.helpers else inventory.helpers
    built = BuiltCount(inventory.target, helpers, len(names), len(in_modules))
    if inventory.kfuncs and all(k.source == "decl_tag" for k in inventory.kfuncs):
        built.reasons.append("kfuncs from the BTF's bpf_kfunc decl tags (pahole >= 1.27)")
    elif inventory.kfuncs:
        built.reasons.append(
            "kfuncs from the .BTF_ids kfunc sets (the BTF has no bpf_kfunc tags: pahole < 1.27)"
        )
    if source is None:
        if not in_modules:
            built.reasons.append(
                "modules: only vmlinux was read; kfuncs of modules (tcp_bbr, nf_conntrack ...) "
                "are counted only where their BTF is read"
            )
        return built
    built.source = source.source
    built.source_helpers = source.n_helpers
    built.source_kfuncs = source.n_kfuncs
    missing = sorted(set(source.kfuncs) - names)
    by_file: dict[str, list[str]] = {}
    for name in missing:
        by_file.setdefault(source.kfuncs[name], []).append(name)
    built.only_in_source = dict(sorted(by_file.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    built.only_in_build = sorted(names - set(source.kfuncs))
    if helpers is not None and helpers != source.n_helpers:
        built.reasons.append(
            f"helpers: the build has {helpers}, the sources {source.n_helpers}: "
            "not the same release (the helper list does not depend on the configuration)"
        )
    if missing:
        top = Counter({f: len(n) for f, n in by_file.items()}).most_common(4)
        where = ", ".join(f"{f} ({n})" for f, n in top)
        built.reasons.append(
            f"config: {len(missing)} kfunc(s) of the sources are not in this build, "
            f"mostly from {where}: files or #ifdef branches its configuration leaves out"
            + ("" if in_modules else ", or modules whose BTF was not read")
        )
    if in_modules:
        built.reasons.append(f"modules: {len(in_modules)} kfunc(s) come from modules, not vmlinux")
    uncounted = [n for n in built.only_in_build if n in source.not_counted]
    if uncounted:
        files = sorted({source.not_counted[n] for n in uncounted})
        built.reasons.append(
            f"{len(uncounted)} kfunc(s) of the build are in sets the source count leaves out "
            f"(test kfuncs, fmodret sets), in {', '.join(files)}: "
            + ", ".join(uncounted[:4])
            + (" ..." if len(uncounted) > 4 else "")
        )
    others = [n for n in built.only_in_build if n not in source.not_counted]
    if others:
        built.reasons.append(
            f"{len(others)} kfunc(s) of the build are not in these sources "
            "(another release or out-of-tree modules): "
            + ", ".join(others[:5])
            + (" ..." if len(others) > 5 else "")
        )
    return built
