"""The ``--kernel`` options the commands that target a kernel share."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["KERNEL_HELP", "add_kernel", "add_kernel_root", "resolve_kernel_root"]

KERNEL_HELP = (
    "target kernel: a Debian series (6.1, 6.12 ...) or exact release, an installed kernel's "
    "image (/boot/vmlinuz-RELEASE), a kernel build tree, or 'host' (the running kernel)"
)


def add_kernel(p: Any, default: str | None, more: str = "") -> None:
    """--kernel (with ``default``; ``more`` help) and --kernel-root."""
    suffix = f" (default: {default})" if default else ""
    help_text = KERNEL_HELP + suffix + more
    p.add_argument("--kernel", "-k", default=default, metavar="KERNEL", help=help_text)
    add_kernel_root(p)


def add_kernel_root(p: Any) -> None:
    p.add_argument(
        "--kernel-root", metavar="DIR",
        help="the root an installed kernel is in (DIR/boot/vmlinuz-RELEASE, "
        "DIR/lib/modules/RELEASE): --kernel names its release or image there",
    )  # fmt: skip


def resolve_kernel_root(args: argparse.Namespace) -> None:
    """Fold --kernel-root into --kernel (and --kernels): each becomes the image's path."""
    root = getattr(args, "kernel_root", None)
    if root is None:
        return
    from kfunc.errors import KfuncError
    from kfunc.kernels.local import rooted_spec

    for name in ("kernel", "kernels"):
        if getattr(args, name, None):
            names = getattr(args, name).split(",")
            setattr(args, name, ",".join(rooted_spec(k.strip(), root) for k in names))
            return
    raise KfuncError(
        "--kernel-root: no kernel to look up there",
        "name it too: --kernel RELEASE --kernel-root DIR",
    )
