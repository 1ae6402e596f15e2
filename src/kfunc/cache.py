"""Where kfunc keeps what it downloads and builds between runs."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "disk_usage"]


def cache_dir(*parts: str) -> Path:
    """Return (and create) a directory under the cache root.

    The root is ``$KFUNC_CACHE`` when set, else ``$XDG_CACHE_HOME/kfunc``, else
    ``~/.cache/kfunc``. Nothing kfunc caches lives in the host's system
    directories.
    """
    root = os.environ.get("KFUNC_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "kfunc")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def disk_usage(path: Path) -> int:
    """Bytes ``path`` takes on disk (as ``du``: allocated blocks, links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total
