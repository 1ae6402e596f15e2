"""Writing the files a user names for output (``-o``, ``--csv``, ``--chart`` ...).

An output is written whole or not at all: into a temporary file in the same
directory, renamed over the target at the end, so an interrupted or failed
write leaves the old file (or none) and no half-written one. An output that
is one of the command's inputs is refused before anything is read or written:
``kfunc header --btf F -o F`` must not destroy F.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from kfunc.errors import KfuncError

__all__ = ["check_not_input", "open_output", "write_output"]


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return os.path.realpath(a) == os.path.realpath(b)


def check_not_input(
    output: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None], option: str
) -> None:
    """Refuse ``output`` if it is (the same file as) one of ``inputs``."""
    out = os.fspath(output)
    for i in inputs:
        if i is not None and _same(out, os.fspath(i)):
            raise KfuncError(
                f"{option} {out}: that is an input of this command; writing it would destroy it",
                f"write the output to another file than {os.fspath(i)}",
            )


@contextmanager
def open_output(
    path: str | os.PathLike[str], mode: str = "w", **kwargs: object
) -> Iterator[IO[Any]]:
    """A file to write ``path``'s new content to; on success it replaces
    ``path`` (through a symlink, its target), on failure it is removed. A
    device or FIFO is written directly."""
    target = os.path.realpath(os.fspath(path))
    if os.path.isdir(target):
        raise KfuncError(f"{os.fspath(path)}: a directory", "name a file to write")
    if os.path.exists(target) and not os.path.isfile(target):
        # A device or a FIFO (/dev/stdout, /dev/null, a pipe) is written in
        # place: renaming a file over it would replace the device node.
        try:
            with open(target, mode, **kwargs) as f:  # type: ignore[call-overload]
                yield f
            return
        except OSError as exc:
            raise KfuncError(
                f"{os.fspath(path)}: cannot write: {exc.strerror or exc}",
                "write to a regular file with free space",
            ) from None
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name[:200]}.{os.getpid()}.tmp")
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            with os.fdopen(fd, mode, **kwargs) as f:  # type: ignore[call-overload]
                yield f
            os.replace(tmp, target)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        raise KfuncError(
            f"{os.fspath(path)}: cannot write: {exc.strerror or exc}",
            "write to a writable directory with free space",
        ) from None


def write_output(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (see :func:`open_output`)."""
    with open_output(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
