"""KF_* kfunc flags, as in the kernel's include/linux/btf.h, and the set flag.

Flags are the second word of each ``BTF_ID_FLAGS()`` pair in a ``btf_id_set8``
in ``.BTF_ids``. Bit values have not been reused across releases: a bit that
was dropped (KF_KPTR_GET, v6.4) stays free, so one table decodes any kernel.
Checked against btf.h of Debian's 6.1.192, 6.12.117, 7.2.13 and 7.3.4 and upstream
patches.
"""

from __future__ import annotations

from typing import NamedTuple

from kfunc.kernel_api.change import Change
from kfunc.kernel_api.version import KernelVersion

__all__ = ["BTF_SET8_KFUNCS", "KF_FLAGS", "KfFlag", "kf_flag_names", "kf_flag_value"]

#: btf_id_set8.flags bit set by BTF_KFUNCS_START (v6.9, commit 79b47344bbc5 "bpf:
#: btf: Support flags for BTF_SET8 sets"); resolve_btfids and pahole use it to
#: tell kfunc sets from other set8s.
BTF_SET8_KFUNCS = 1 << 0


class KfFlag(NamedTuple):
    """One KF_* flag: its bit, the change that added it and, if it went away, the
    change that dropped it (``became_default``: its behaviour became what every
    kfunc gets, and the flag went away with nothing lost)."""

    name: str
    bit: int
    added: Change
    dropped: Change | None = None
    became_default: bool = False

    @property
    def value(self) -> int:
        return 1 << self.bit

    @property
    def since(self) -> str:
        """The release that added the flag (``6.0``)."""
        return self.added.release.series

    @property
    def removed(self) -> str | None:
        """The release whose kernels dropped the flag and its feature, if any."""
        return self.dropped.release.series if self.dropped and not self.became_default else None

    @property
    def default_since(self) -> str | None:
        """The release from which every kfunc behaves as if it had the flag, if any."""
        return self.dropped.release.series if self.dropped and self.became_default else None


def _v(release: str, title: str, commit: str | None = None) -> Change:
    return Change(KernelVersion.parse(release), title, commit)


_FLAGS_INFRA = _v("6.0", "bpf: Switch to new kfunc flags infrastructure", "a4703e318432")
_ITERATORS = _v("6.4", "bpf: add iterator kfuncs registration and validation logic", "215bf4962f6c")
_ARENA = _v("6.15", "KF_ARENA_RET, KF_ARENA_ARG1, KF_ARENA_ARG2 in include/linux/btf.h")

KF_FLAGS: tuple[KfFlag, ...] = (
    KfFlag("KF_ACQUIRE", 0, _FLAGS_INFRA),
    KfFlag("KF_RELEASE", 1, _FLAGS_INFRA),
    KfFlag("KF_RET_NULL", 2, _FLAGS_INFRA),
    KfFlag(
        "KF_KPTR_GET",
        3,
        _FLAGS_INFRA,
        dropped=_v("6.4", "bpf: Remove KF_KPTR_GET kfunc flag", "7b4ddf3920d2"),
    ),
    # v7.0 made trusted arguments the default for every kfunc and dropped the
    # flag: Debian's 7.2 and 7.3 btf.h have no KF_TRUSTED_ARGS, and bit 4 stays free.
    KfFlag(
        "KF_TRUSTED_ARGS",
        4,
        _v("6.0", "bpf: Add support for forcing kfunc args to be trusted", "56e948ffc098"),
        dropped=_v("7.0", "Trusted args default (kernel-patches/bpf PR #10544)"),
        became_default=True,
    ),
    KfFlag("KF_SLEEPABLE", 5, _v("6.1", "KF_SLEEPABLE in include/linux/btf.h")),
    KfFlag("KF_DESTRUCTIVE", 6, _v("6.1", "bpf: add destructive kfunc flag", "4dd48c6f1f83")),
    KfFlag("KF_RCU", 7, _v("6.2", "KF_RCU in include/linux/btf.h")),
    KfFlag("KF_ITER_NEW", 8, _ITERATORS),
    KfFlag("KF_ITER_NEXT", 9, _ITERATORS),
    KfFlag("KF_ITER_DESTROY", 10, _ITERATORS),
    KfFlag("KF_RCU_PROTECTED", 11, _v("6.7", "KF_RCU_PROTECTED in include/linux/btf.h")),
    KfFlag("KF_FASTCALL", 12, _v("6.13", "KF_FASTCALL in include/linux/btf.h")),
    KfFlag("KF_ARENA_RET", 13, _ARENA),
    KfFlag("KF_ARENA_ARG1", 14, _ARENA),
    KfFlag("KF_ARENA_ARG2", 15, _ARENA),
    KfFlag("KF_IMPLICIT_ARGS", 16, _v("7.0", "KF_IMPLICIT_ARGS in include/linux/btf.h")),
    # In Debian's 7.3.4 btf.h, not in its 7.2.13 one.
    KfFlag("KF_SPINLOCK_SAFE", 17, _v("7.3", "KF_SPINLOCK_SAFE in include/linux/btf.h")),
    KfFlag("KF_PERFMON", 18, _v("7.3", "KF_PERFMON in include/linux/btf.h")),
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
