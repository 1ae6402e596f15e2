"""The macros a kfunc module is written with, release by release.

A module marks its kfuncs ``__bpf_kfunc``, wraps their definitions in
``__bpf_kfunc_start_defs()``/``__bpf_kfunc_end_defs()`` and lists them between
``BTF_KFUNCS_START``/``BTF_KFUNCS_END`` (``BTF_SET8_START`` on older kernels).
Each entry of :data:`KFUNC_API` carries the change that brought it and the
definition older kernels can be given (the kernel's own, or what it amounts to
there), which is what :mod:`kfunc.codegen.shims` writes for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfunc.kernel_api.change import Change
from kfunc.kernel_api.flags import BTF_SET8_KFUNCS_ADDED
from kfunc.kernel_api.version import KernelVersion

__all__ = ["KFUNC_API", "KfuncApi"]


@dataclass(frozen=True)
class KfuncApi:
    """Macros of the kfunc API that arrived together: the change that brought
    them, and the fallback that older kernels understand."""

    names: tuple[str, ...]
    added: Change
    fallback: str

    @property
    def since(self) -> KernelVersion:
        return self.added.release


#: The kfunc API as of 6.9, name by name, with the release of each.
KFUNC_API: tuple[KfuncApi, ...] = (
    KfuncApi(
        ("__bpf_kfunc",),
        Change(
            KernelVersion(6, 3),
            "bpf: Add __bpf_kfunc tag for marking kernel functions as kfuncs",
            "57e7c169cd6a",
        ),
        "#define __bpf_kfunc __used noinline\n",
    ),
    KfuncApi(
        ("__bpf_kfunc_start_defs", "__bpf_kfunc_end_defs"),
        Change(KernelVersion(6, 7), "bpf: Add __bpf_kfunc_{start,end}_defs macros", "391145ba2acc"),
        "#define __bpf_kfunc_start_defs()\t\t\t\t\t\\\n"
        "\t__diag_push();\t\t\t\t\t\t\t\\\n"
        '\t__diag_ignore_all("-Wmissing-prototypes",\t\t\t\\\n'
        '\t\t\t  "Global kfuncs as their definitions will be in BTF")\n'
        "#define __bpf_kfunc_end_defs() __diag_pop()\n",
    ),
    KfuncApi(
        ("__bpf_hook_start", "__bpf_hook_end"),
        Change(KernelVersion(6, 7), "bpf: Add __bpf_hook_{start,end} macros", "15fb6f2b6c4c"),
        "#define __bpf_hook_start()\t\t\t\t\t\t\\\n"
        "\t__diag_push();\t\t\t\t\t\t\t\\\n"
        '\t__diag_ignore_all("-Wmissing-prototypes",\t\t\t\\\n'
        '\t\t\t  "Global functions as their definitions will be in vmlinux BTF")\n'
        "#define __bpf_hook_end() __diag_pop()\n",
    ),
    KfuncApi(
        ("BTF_KFUNCS_START", "BTF_KFUNCS_END"),
        Change(
            KernelVersion(6, 9), "bpf: btf: Add BTF_KFUNCS_START/END macro pair", "2747e0ee57c2"
        ),
        "#define BTF_KFUNCS_START(name) BTF_SET8_START(name)\n"
        "#define BTF_KFUNCS_END(name) BTF_SET8_END(name)\n",
    ),
    KfuncApi(
        ("BTF_SET8_KFUNCS",),
        BTF_SET8_KFUNCS_ADDED,
        "#define BTF_SET8_KFUNCS 0\t/* a set8 flag older kernels do not read */\n",
    ),
)
