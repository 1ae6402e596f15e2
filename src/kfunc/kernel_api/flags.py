"""KF_* kfunc flags, as in the kernel's include/linux/btf.h, and the set flag.

Flags are the second word of each ``BTF_ID_FLAGS()`` pair in a ``btf_id_set8``
in ``.BTF_ids``. Bit values have not been reused across releases: a bit that
was dropped (KF_KPTR_GET, v6.4) stays free, so one table decodes any kernel.
Checked against btf.h of Debian's 6.1.192, 6.12.117, 7.2.13 and 7.3.4 and upstream
patches.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BTF_SET8_KFUNCS", "KF_FLAGS", "KfFlag", "kf_flag_names", "kf_flag_value"]

#: btf_id_set8.flags bit set by BTF_KFUNCS_START (v6.9); resolve_btfids and
#: pahole use it to tell kfunc sets from other set8s.
BTF_SET8_KFUNCS = 1 << 0


class KfFlag(NamedTuple):
    """One KF_* flag: its bit, the release that added it and, if gone, removed it
    (``removed``: the feature went away; ``default_since``: it became what every
    kfunc gets, and the flag went away with nothing lost)."""

    name: str
    bit: int
    since: str
    removed: str | None = None
    default_since: str | None = None

    @property
    def value(self) -> int:
        return 1 << self.bit


KF_FLAGS: tuple[KfFlag, ...] = (
    KfFlag("KF_ACQUIRE", 0, "6.0"),
    KfFlag("KF_RELEASE", 1, "6.0"),
    KfFlag("KF_RET_NULL", 2, "6.0"),
    KfFlag("KF_KPTR_GET", 3, "6.0", removed="6.4"),
    # v7.0 made trusted arguments the default for every kfunc and dropped the
    # flag ("Trusted args default", kernel-patches/bpf PR #10544): Debian's 7.2
    # and 7.3 btf.h have no KF_TRUSTED_ARGS, and bit 4 stays free.
    KfFlag("KF_TRUSTED_ARGS", 4, "6.0", default_since="7.0"),
    KfFlag("KF_SLEEPABLE", 5, "6.1"),
    KfFlag("KF_DESTRUCTIVE", 6, "6.1"),
    KfFlag("KF_RCU", 7, "6.2"),
    KfFlag("KF_ITER_NEW", 8, "6.4"),
    KfFlag("KF_ITER_NEXT", 9, "6.4"),
    KfFlag("KF_ITER_DESTROY", 10, "6.4"),
    KfFlag("KF_RCU_PROTECTED", 11, "6.7"),
    KfFlag("KF_FASTCALL", 12, "6.13"),
    KfFlag("KF_ARENA_RET", 13, "6.15"),
    KfFlag("KF_ARENA_ARG1", 14, "6.15"),
    KfFlag("KF_ARENA_ARG2", 15, "6.15"),
    KfFlag("KF_IMPLICIT_ARGS", 16, "7.0"),
    # In Debian's 7.3.4 btf.h, not in its 7.2.13 one.
    KfFlag("KF_SPINLOCK_SAFE", 17, "7.3"),
    KfFlag("KF_PERFMON", 18, "7.3"),
)

_BY_BIT = {f.bit: f for f in KF_FLAGS}
_BY_NAME = {f.name: f for f in KF_FLAGS}


def kf_flag_names(flags: int) -> list[str]:
    """Names of the KF_* bits set in ``flags``, low bit first; an unknown bit
    shows as its value in hex (``0x80000``)."""
    names = []
    bit = 0
    while flags >> bit:
        if flags >> bit & 1:
            known = _BY_BIT.get(bit)
            names.append(known.name if known else f"{1 << bit:#x}")
        bit += 1
    return names


def kf_flag_value(names: list[str] | tuple[str, ...]) -> int:
    """The flags word for KF_* names; raises KeyError naming an unknown flag."""
    value = 0
    for name in names:
        value |= _BY_NAME[name].value
    return value
