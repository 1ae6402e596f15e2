"""The running kernel's BTF: the only module that reads ``/sys/kernel/btf``.

``/sys/kernel/btf/vmlinux`` holds the kernel's BTF (CONFIG_DEBUG_INFO_BTF) and,
since 5.11, ``/sys/kernel/btf/<module>`` the split BTF of every loaded module
built with BTF (CONFIG_DEBUG_INFO_BTF_MODULES).

The parser is imported where BTF is parsed: :data:`SYS_BTF` alone is light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kfunc.errors import BTFError

if TYPE_CHECKING:
    from kfunc.btf.parse import BTF

__all__ = ["SYS_BTF", "load_module_btf", "load_vmlinux_btf", "module_names"]

SYS_BTF = Path("/sys/kernel/btf")


def _read(path: Path, missing: str, fix: str) -> bytes:
    from kfunc.inputs import InputError, read_bytes

    if not path.exists():
        raise BTFError(f"{path}: {missing}", fix=fix)
    try:
        return read_bytes(path, "btf")
    except InputError as e:
        raise BTFError(e.message, fix=e.fix) from None


def load_vmlinux_btf() -> BTF:
    """The running kernel's BTF."""
    data = _read(
        SYS_BTF / "vmlinux",
        "not found: the running kernel has no BTF",
        "use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or pass a kernel's vmlinux file",
    )
    from kfunc.btf.parse import parse_btf

    return parse_btf(data, name="vmlinux")


def load_module_btf(module: str, vmlinux: BTF | None = None) -> BTF:
    """A loaded module's split BTF, over ``vmlinux`` (the running kernel's BTF if
    not given)."""
    data = _read(
        SYS_BTF / module,
        f"no BTF for module {module!r}: not loaded, or built without BTF",
        f"load it (insmod/modprobe {module}) and build it against a kernel with BTF",
    )
    from kfunc.btf.parse import parse_btf

    return parse_btf(data, vmlinux or load_vmlinux_btf(), name=module)


def module_names() -> list[str]:
    """Names of the loaded modules that have BTF, sorted."""
    try:
        return sorted(p.name for p in SYS_BTF.iterdir() if p.name != "vmlinux")
    except FileNotFoundError:
        return []
    except OSError as e:
        raise BTFError(f"{SYS_BTF}: cannot list: {e.strerror}") from e
