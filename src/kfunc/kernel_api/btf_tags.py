"""The BTF tags of the kfunc API: what marks a kfunc, and what makes a kptr.

Kernels built with pahole >= 1.27 tag each kfunc's FUNC with the
``bpf_kfunc`` decl tag (:data:`KFUNC_DECL_TAG`); older ones list kfuncs only
in their ``.BTF_ids`` sets. A map value's pointer that owns a reference (a
kptr, set with ``bpf_kptr_xchg()``) carries a type tag whose name changed
once (:data:`REFERENCED_KPTR_TAG`).
"""

from __future__ import annotations

from kfunc.kernel_api.change import Change
from kfunc.kernel_api.version import KernelVersion

__all__ = [
    "KFUNC_DECL_TAG",
    "KFUNC_DECL_TAG_ADDED",
    "REFERENCED_KPTR_RENAMED",
    "REFERENCED_KPTR_TAG",
    "REFERENCED_KPTR_TAG_BEFORE",
]

#: The decl tag pahole (>= 1.27, "pahole: Inject kfunc decl tags into BTF")
#: puts on each kfunc's FUNC when the kernel's build asks it to.
KFUNC_DECL_TAG = "bpf_kfunc"
KFUNC_DECL_TAG_ADDED = Change(
    KernelVersion(6, 11), "kbuild: bpf: Tell pahole to DECL_TAG kfuncs", "ebb79e96f1ea"
)

#: The type tag of a referenced kptr: ``kptr`` since the rename, ``kptr_ref`` before
#: (when ``kptr`` meant an untrusted pointer, now ``kptr_untrusted``).
REFERENCED_KPTR_TAG = "kptr"
REFERENCED_KPTR_TAG_BEFORE = "kptr_ref"
REFERENCED_KPTR_RENAMED = Change(
    KernelVersion(6, 4),
    "bpf: Rename __kptr_ref -> __kptr and __kptr -> __kptr_untrusted.",
    "03b77e17aeb2",
)
