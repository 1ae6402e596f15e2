"""Replay what a read-only command printed, while the files it read are unchanged.

``kfunc ls`` of a BTF file, a module or the running kernel depends on its
command line and on those files alone. A run that computes a listing stores
what it printed together with the identity of each file it read (path, size,
mtime, CRC-32 of the first 4 KiB: :func:`kfunc.cache.file_identity`). The
next run of the same command line in the same directory checks the files and
prints the stored output, before argparse, the BTF reader or kfunc's model
are imported: a repeated ``kfunc ls`` costs little more than starting Python.

Records live under ``answers/`` in kfunc's cache. One that is missing, stale
or unreadable is not replayed, and the command runs as usual.
"""

from __future__ import annotations

import os
import sys

from kfunc import __version__
from kfunc.cache import cache_root, file_identity, read_json, record_name, write_json

# typing.TYPE_CHECKING without importing typing (~4 ms with its imports), as
# type checkers accept and PEP 781 proposes: this module is on `kfunc ls`'s
# replay path.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["FORMAT", "identities", "replay", "store"]

#: Bumped whenever the output of a replayed command changes, to drop old records
#: (so does a new kfunc version: both are in the key).
FORMAT = 2  # 2: ls --ko with another kernel's --base is an error

Identity = list[str | int]


def _record(argv: list[str]) -> tuple[str, list[object]]:
    """The record's path and the key it must hold: format and kfunc version,
    directory, command line."""
    key: list[object] = [FORMAT, __version__, os.getcwd(), argv]
    return os.path.join(cache_root(), "answers", record_name(key)), key


def identities(paths: Iterable[str | os.PathLike[str]]) -> list[Identity] | None:
    """The identities of the files an answer will be computed from, taken before
    reading them; None if one cannot be read (then nothing is stored)."""
    try:
        return [file_identity(p) for p in paths]
    except OSError:
        return None


def replay(argv: list[str]) -> bool:
    """Print the stored output of ``argv`` and return True, if there is a record
    for it whose files are all unchanged; else print nothing and return False."""
    try:
        path, key = _record(argv)
    except OSError:  # the working directory is gone
        return False
    record = read_json(path)
    try:
        if record["key"] != key or identities(i[0] for i in record["inputs"]) != record["inputs"]:
            return False
        stdout, stderr = record["stdout"], record["stderr"]
    except (LookupError, TypeError):  # no record, or not one of ours
        return False
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return True


def store(argv: list[str], inputs: list[Identity], stdout: str, stderr: str) -> None:
    """Keep what ``argv`` printed, computed from the files ``inputs`` identify.
    A cache that cannot be written is not an error: the next run recomputes."""
    try:
        path, key = _record(argv)
        write_json(path, {"key": key, "inputs": inputs, "stdout": stdout, "stderr": stderr})
    except OSError:
        pass
