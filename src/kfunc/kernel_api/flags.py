"""KF_* kfunc flags, as in the kernel's include/linux/btf.h, and the set flag.

Flags are the second word of each ``BTF_ID_FLAGS()`` pair in a ``btf_id_set8``
in ``.BTF_ids``. Bit values have not been reused across releases: a bit that
was dropped (KF_KPTR_GET) stays free, so one table decodes any kernel.
Checked against btf.h of Debian's 6.1.192, 6.12.117, 7.2.13 and 7.3.4 and upstream
patches.
"""

from __future__ import annotations

from typing import NamedTuple

from kfunc.kernel_api.change import Change
from kfunc.kernel_api.version import KernelVersion

__all__ = [
    "BTF_SET8_KFUNCS",
    "BTF_SET8_KFUNCS_ADDED",
    "KF_FLAGS",
    "KfFlag",
    "kf_flag_names",
    "kf_flag_value",
]

#: btf_id_set8.flags bit set by BTF_KFUNCS_START; resolve_btfids and pahole use
#: it to tell kfunc sets from other set8s.
BTF_SET8_KFUNCS = 1 << 0
BTF_SET8_KFUNCS_ADDED = Change(
    KernelVersion(6, 9), "bpf: btf: Support flags for BTF_SET8 sets", "79b47344bbc5"
)


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
_ARENA = _v("6.15", "bpf: define KF_ARENA_* flags for bpf_arena kfuncs", "ea145d530a2d")

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
        dropped=_v("7.0", "bpf: Make KF_TRUSTED_ARGS the default for all kfuncs", "1a5c01d2508a"),
        became_default=True,
    ),
    KfFlag(
        "KF_SLEEPABLE",
        5,
        _v(
            "6.1",
            "btf: Add a new kfunc flag which allows to mark a function to be sleepable",
            "fa96b24204af",
        ),
    ),
    KfFlag("KF_DESTRUCTIVE", 6, _v("6.1", "bpf: add destructive kfunc flag", "4dd48c6f1f83")),
    KfFlag("KF_RCU", 7, _v("6.2", "bpf: Handle MEM_RCU type properly", "fca1aa75518c")),
    KfFlag("KF_ITER_NEW", 8, _ITERATORS),
    KfFlag("KF_ITER_NEXT", 9, _ITERATORS),
    KfFlag("KF_ITER_DESTROY", 10, _ITERATORS),
    KfFlag(
        "KF_RCU_PROTECTED",
        11,
        _v(
            "6.7",
            "bpf: teach the verifier to enforce css_iter and task_iter in RCU CS",
            "dfab99df147b",
        ),
    ),
    KfFlag(
        "KF_FASTCALL",
        12,
        _v(
            "6.13",
            "bpf: use KF_FASTCALL to mark kfuncs supporting fastcall contract",
            "f49520133c3a",
        ),
    ),
    KfFlag("KF_ARENA_RET", 13, _ARENA),
    KfFlag("KF_ARENA_ARG1", 14, _ARENA),
    KfFlag("KF_ARENA_ARG2", 15, _ARENA),
    KfFlag("KF_IMPLICIT_ARGS", 16, _v("7.0", "bpf: Verifier support for KF_IMPLICIT_ARGS")),
    # Both in Debian's 7.3.4 btf.h, not in its 7.2.13 one.
    KfFlag(
        "KF_SPINLOCK_SAFE",
        17,
        _v("7.3", "bpf: Add KF_SPINLOCK_SAFE flag for kfuncs under bpf_spin_lock", "ed3b3093b624"),
    ),
    KfFlag("KF_PERFMON", 18, _v("7.3", "bpf: Add KF_PERFMON kfunc flag", "88ce88e933e4")),
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
