"""Where kfunc keeps what it downloads and builds between runs."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


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
