"""The kernel's own BPF selftests, from Debian's ``linux-source-X.Y`` packages.

Debian's linux-source packages carry the kernel tree as one tarball
(``usr/src/linux-source-X.Y.tar.xz``), and with it the BPF selftests:
``tools/testing/selftests/bpf`` holds ``bpf_testmod/`` (moved to
``test_kmods/`` in 6.15, commit d6212d82bf26 "selftests/bpf: Consolidate
kernel modules into common directory"), ``progs/*.c`` (the BPF programs; a
failure program carries ``__failure`` and ``__msg("...")`` with the verifier's
expected words) and ``prog_tests/*.c`` (what each program must return).

:func:`selftests_tree` streams the package once and extracts only the parts
the selftests build from (the selftests directory, ``tools/include`` and
``tools/lib/bpf``) into kfunc's cache, ``sources/selftests/<series>/``; the
package itself stays in ``sources/debs`` (shared with ``kfunc survey``).
Nothing from these trees is copied into kfunc's repository.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tarfile
from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.errors import KfuncError
from kfunc.progress import Progress

__all__ = ["SelftestsTree", "selftests_tree", "verifier_source_tree"]

#: The parts of a kernel tree that the BPF selftests build from.
_WANTED = ("tools/testing/selftests/bpf/", "tools/include/", "tools/lib/bpf/")
_MARKER = ".kfunc-complete"


class SelftestsTree:
    """An extracted ``linux-source-<series>`` subset: ``root`` is the tree's top."""

    def __init__(self, series: str, root: Path) -> None:
        self.series = series
        self.root = root

    @property
    def bpf(self) -> Path:
        """``tools/testing/selftests/bpf``."""
        return self.root / "tools" / "testing" / "selftests" / "bpf"

    @property
    def progs(self) -> Path:
        return self.bpf / "progs"

    @property
    def prog_tests(self) -> Path:
        return self.bpf / "prog_tests"

    @property
    def testmod(self) -> Path:
        """bpf_testmod's directory: ``test_kmods/`` from 6.15 on, ``bpf_testmod/`` before."""
        newer = self.bpf / "test_kmods"
        return newer if newer.is_dir() else self.bpf / "bpf_testmod"

    def __repr__(self) -> str:
        return f"SelftestsTree({self.series!r}, {str(self.root)!r})"


def selftests_tree(series: str, progress: Progress | None = None) -> SelftestsTree:
    """The BPF selftests of Debian's ``linux-source-<series>``, extracted once."""
    return SelftestsTree(series, _subset(series, "selftests", _WANTED, progress))


#: The files whose text the verifier prints: its own, the BTF checks, and the
#: program types' context and helper checks.
_VERIFIER = ("kernel/bpf/", "net/core/filter.c", "kernel/trace/bpf_trace.c")


def verifier_source_tree(series: str, progress: Progress | None = None) -> Path:
    """``kernel/bpf/`` (and the other files in :data:`_VERIFIER`) of Debian's
    ``linux-source-<series>``, extracted once: the top of that partial tree."""
    return _subset(series, "verifier", _VERIFIER, progress)


def _subset(series: str, kind: str, wanted: tuple[str, ...], progress: Progress | None) -> Path:
    from kfunc.survey.debian import fetch_source_package

    progress = progress or Progress()
    dest = cache_dir("sources", kind) / series
    if (dest / _MARKER).exists():
        return dest
    with (dest.parent / f".{series}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one extraction at a time, others wait for it
        if not (dest / _MARKER).exists():
            deb = fetch_source_package(series, progress)
            _extract_once(series, dest, deb, wanted, progress)
    return dest


def _extract_once(
    series: str, dest: Path, deb: Path, wanted: tuple[str, ...], progress: Progress
) -> None:
    tmp = dest.with_name(f".{series}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(dest, ignore_errors=True)
    try:
        progress.update(f"extracting {', '.join(wanted)} from {deb.name}")
        _extract(deb, tmp, wanted)
        (tmp / _MARKER).write_text(deb.name + "\n")
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _extract(deb: Path, dest: Path, wanted: tuple[str, ...]) -> None:
    """Stream ``deb``'s inner source tarball, writing only the wanted members."""
    if shutil.which("dpkg-deb") is None:
        from kfunc.errors import MissingToolError

        raise MissingToolError("dpkg-deb", "dpkg")
    proc = subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    found = 0
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
            for entry in outer:
                name = entry.name.removeprefix("./")
                if not (name.startswith("usr/src/linux-source-") and ".tar" in name):
                    continue
                inner_f = outer.extractfile(entry)
                if inner_f is None:
                    continue
                with tarfile.open(fileobj=inner_f, mode="r|*") as inner:
                    for member in inner:
                        rest = member.name.partition("/")[2]
                        if not rest.startswith(wanted):
                            continue
                        member.name = rest
                        inner.extract(member, dest, filter="data")
                        found += 1
                break
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise KfuncError(
            f"{deb.name}: cannot read its source tarball: {exc}",
            f"remove {deb} and run again to download it afresh",
        ) from exc
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()
    if not found:
        raise KfuncError(
            f"{deb.name}: no {wanted[0].rstrip('/')} in its source tarball",
            "pass a Debian linux-source-X.Y package of 5.10 or newer",
        )
