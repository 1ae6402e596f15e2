"""Compiling BPF C to an object file with clang."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from kfunc.errors import BuildError, MissingToolError

__all__ = ["bpf_cflags", "compile_bpf", "find_clang", "system_include_dirs", "up_to_date"]

# `file:line:col: error: text`, and `fatal error:` for a missing include.
_DIAGNOSTIC = re.compile(r"^(?P<where>.+?:\d+:\d+): (?P<kind>(?:fatal )?error): (?P<text>.*)$")


# The newest versioned clang looked for (clang-N on PATH).
_NEWEST_CLANG = 30


def find_clang() -> str:
    """The newest clang on PATH: ``clang``, or a versioned ``clang-N`` that is
    newer (Debian 12's clang is 14; its clang-16 package installs beside it).
    MissingToolError if there is none.

    The version matters for BPF: clang 14 drops the ``btf_type_tag`` of a
    pointer to a struct that vmlinux.h defines, so a map value's ``__kptr``
    reaches the verifier as a plain pointer ("R1 has no valid kptr").
    """
    return _find_clang(os.environ.get("PATH", os.defpath))


@functools.cache
def _find_clang(search_path: str) -> str:
    found: dict[str, int] = {}
    plain = shutil.which("clang", path=search_path)
    if plain is not None:
        found[plain] = _major_version(plain)
    for major in range(_NEWEST_CLANG, 13, -1):
        path = shutil.which(f"clang-{major}", path=search_path)
        if path is not None:
            found.setdefault(path, major)
            break
    if not found:
        raise MissingToolError("clang", "clang")
    return max(found, key=lambda path: found[path])


def _major_version(clang: str) -> int:
    """``clang --version``'s major number; 0 if it cannot be read."""
    try:
        out = subprocess.run([clang, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r"clang version (\d+)", out.stdout)
    return int(match[1]) if match else 0


def bpf_cflags(
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    arch: str = "x86",
    system_dirs: Sequence[str] = (),
) -> list[str]:
    """The flags for BPF C: debug info (BTF), -O2, the bpf target, arch, includes, and
    the host compiler's system include dirs last (``-idirafter``, as libbpf-bootstrap)."""
    flags = ["-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{arch}"]
    flags += [f"-I{d}" for d in include_dirs]
    flags += [f"-idirafter{d}" for d in system_dirs]
    return flags


#: clang's arguments that print its ``#include`` search list (on stderr) and exit.
INCLUDE_PROBE = ("-v", "-E", "-")


@functools.cache
def system_include_dirs(command: tuple[str, ...]) -> tuple[str, ...]:
    """The ``#include <...>`` search list that ``command`` reports: ``clang -v -E -``
    (:data:`INCLUDE_PROBE`), run on the host or in a target's root filesystem.

    ``-target bpf`` searches none of the host's dirs, so ``<linux/bpf.h>``
    finds ``/usr/include/linux/types.h`` only with ``-I/usr/include`` and then
    stops at its ``<asm/types.h>``, which lives in the multiarch dir
    (``/usr/include/x86_64-linux-gnu``). libbpf-bootstrap's Makefile passes this
    list with ``-idirafter``, after every dir of the project's own; so does kfunc.
    """
    try:
        proc = subprocess.run(list(command), input="", capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ()
    dirs: list[str] = []
    inside = False
    for line in proc.stderr.splitlines():
        if line.startswith("#include <...> search starts here"):
            inside = True
        elif line.startswith("End of search list"):
            break
        elif inside and line.startswith(" /"):
            dirs.append(line.strip().removesuffix(" (framework directory)"))
    return tuple(dirs)


def up_to_date(output: Path, inputs: Sequence[Path]) -> bool:
    """Whether ``output`` exists and is newer than every one of ``inputs``."""
    try:
        built = output.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    return all(path.stat().st_mtime_ns < built for path in inputs)


def compile_bpf(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    depends: Sequence[str | os.PathLike[str]] = (),
    extra_flags: Sequence[str] = (),
    arch: str = "x86",
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> Path:
    """Compile ``source`` to a BPF object (default: ``source`` with ``.o``); returns its path.

    Skips the compile when the output is newer than ``source`` and every file
    in ``depends`` (pass the headers it includes, vmlinux.h first of all).
    A compile error raises BuildError with the first error as its one-line
    message and clang's whole output as its ``log``. ``wrap`` turns the
    command into one that runs elsewhere (a target's root filesystem, with
    its own clang and libbpf headers).
    """
    src = Path(source)
    out = Path(output) if output is not None else src.with_suffix(".o")
    if not src.is_file():
        raise BuildError(f"clang: {src}: no such file")
    deps = [Path(d) for d in depends]
    missing = [str(d) for d in deps if not d.exists()]
    if missing:
        raise BuildError(f"clang: {src}: missing dependency {', '.join(missing)}")
    if up_to_date(out, [src, *deps]):
        return out
    clang = "clang" if wrap is not None else find_clang()
    out.parent.mkdir(parents=True, exist_ok=True)
    probe = [clang, *INCLUDE_PROBE]
    system = system_include_dirs(tuple(wrap(probe) if wrap is not None else probe))
    flags = bpf_cflags(include_dirs, arch, system)
    cmd = [clang, *flags, *extra_flags, "-c", str(src), "-o", str(out)]
    if wrap is not None:
        cmd = wrap(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(_first_error(proc.stderr, src, proc.returncode), log=proc.stderr)
    return out


def _first_error(diagnostics: str, source: Path, returncode: int) -> str:
    for line in diagnostics.splitlines():
        match = _DIAGNOSTIC.match(line)
        if match:
            return f"clang: {match['where']}: {match['kind']}: {match['text']}"
    last = diagnostics.strip().splitlines()[-1:] or [f"exit status {returncode}"]
    return f"clang: {source}: {last[0]}"
