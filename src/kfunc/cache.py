"""Where kfunc keeps what it downloads and builds between runs, and how a cached
answer knows that the files it came from have not changed.

This module imports no more than ``os`` at load time: the replay of a cached
``kfunc ls`` (see :mod:`kfunc.cli.answers`) uses it before anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib

# typing.TYPE_CHECKING without importing typing (~4 ms with its imports), as
# type checkers accept and PEP 781 proposes: this module is on `kfunc ls`'s
# replay path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "cache_dir",
    "cache_root",
    "disk_usage",
    "file_identity",
    "read_json",
    "record_name",
    "write_json",
]


def cache_root() -> str:
    """The cache root: ``$KFUNC_CACHE`` when set, else ``$XDG_CACHE_HOME/kfunc``,
    else ``~/.cache/kfunc`` (the home from the password database if ``$HOME`` is
    unset or not an absolute path). Nothing kfunc caches lives in the host's
    system directories; a cache that cannot be made is an error naming
    KFUNC_CACHE (see :func:`cache_dir`)."""
    root = os.environ.get("KFUNC_CACHE")
    if root:
        return root
    # The XDG spec ignores a relative XDG_CACHE_HOME; a relative or empty HOME
    # would put the cache in the working directory: take the user's home from
    # the password database instead (as expanduser does when HOME is unset).
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(xdg):
        home = os.environ.get("HOME", "")
        if not os.path.isabs(home) or home == "/":
            try:
                import pwd

                home = pwd.getpwuid(os.getuid()).pw_dir
            except (ImportError, KeyError):
                home = "/tmp"
        xdg = os.path.join(home, ".cache")
    return os.path.join(xdg, "kfunc")


def cache_dir(*parts: str) -> Path:
    """Return (and create) a directory under the cache root."""
    from pathlib import Path

    path = Path(cache_root(), *parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        from kfunc.errors import KfuncError

        origin = "$KFUNC_CACHE" if os.environ.get("KFUNC_CACHE") else "from $HOME"
        raise KfuncError(
            f"kfunc's cache {path} ({origin}): cannot create or write: {exc.strerror or exc}",
            "set KFUNC_CACHE to a writable directory (e.g. KFUNC_CACHE=/var/tmp/kfunc)",
        ) from None
    return path


def file_identity(path: str | os.PathLike[str]) -> list[str | int]:
    """What an answer computed from a file stays valid for: its resolved path,
    size, mtime and the CRC-32 of its first 4 KiB. Raises OSError if the file
    cannot be read."""
    st = os.stat(path)
    with open(path, "rb") as f:
        head = f.read(4096)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns, zlib.crc32(head)]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content (hex), read a few MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def record_name(key: Any) -> str:
    """A cache file's name for a record whose key is ``key`` (JSON data): the
    CRC-32 of the key. Names may collide: a record holds its key, and a reader
    checks it."""
    return f"{zlib.crc32(json.dumps(key).encode()):08x}.json"


def read_json(path: str | os.PathLike[str]) -> Any:
    """A cache file's JSON; None if it is missing or unreadable (then rebuilt)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write a cache file whole or not at all (a temporary file, renamed), its
    directory created if need be. Raises OSError; no temporary is left."""
    dirname, name = os.path.split(os.fspath(path))
    os.makedirs(dirname or ".", exist_ok=True)
    tmp = os.path.join(dirname, f".{name}.{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
