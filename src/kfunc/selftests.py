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

On top of a tree: :func:`build_testmod` builds bpf_testmod with BTF for a
target kernel, :func:`build_progs` compiles programs of ``progs/`` as
upstream does (against the kernel's vmlinux.h), and :func:`kfunc_call_cases`
reads ``prog_tests/kfunc_call.c``'s table: each program, what it is given
and what it must return, or the verifier's words that refuse it.
"""

from __future__ import annotations

import errno
import fcntl
import re
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfunc.cache import cache_dir
from kfunc.errors import KfuncError
from kfunc.kernels.deb import DebFormatError, data_tar, extract
from kfunc.progress import Progress

if TYPE_CHECKING:
    from kfunc.kbuild import ModuleBuild, ModuleSource
    from kfunc.kernels.target import Kernel

__all__ = [
    "KfuncCallCase",
    "SelftestsTree",
    "build_progs",
    "build_testmod",
    "kfunc_call_cases",
    "selftests_tree",
    "testmod_source",
    "verifier_source_tree",
]

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
    found = 0
    try:
        with data_tar(deb) as outer:
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
                        extract(inner, member, dest, "data")
                        found += 1
                break
    except (tarfile.TarError, EOFError, OSError, DebFormatError) as exc:
        raise KfuncError(
            f"{deb.name}: cannot read its source tarball: {exc}",
            f"remove {deb} and run again to download it afresh",
        ) from exc
    if not found:
        raise KfuncError(
            f"{deb.name}: no {wanted[0].rstrip('/')} in its source tarball",
            "pass a Debian linux-source-X.Y package of 5.10 or newer",
        )


# -- bpf_testmod, built with BTF for a target kernel

#: The files bpf_testmod is built from (6.1's tree has no bpf_testmod_kfunc.h: its
#: kfunc_call programs call the test kfuncs of vmlinux, net/bpf/test_run.c).
_TESTMOD_FILES = ("bpf_testmod.c", "bpf_testmod.h", "bpf_testmod_kfunc.h", "bpf_testmod-events.h")
# The kbuild lines of bpf_testmod in its Makefile; test_kmods/'s (6.15+) builds
# four more modules through a $(foreach), which kfunc does not need.
_TESTMOD_KBUILD = "obj-m += bpf_testmod.o\nCFLAGS_bpf_testmod.o = -I$(src)\n"


def testmod_source(tree: SelftestsTree) -> ModuleSource:
    """bpf_testmod's sources from ``tree``, alone in a directory of their own
    (beside the tree) with its own two kbuild lines."""
    from kfunc.codegen import write_if_changed
    from kfunc.kbuild import ModuleSource

    stage = tree.root.parent / f".{tree.series}-bpf_testmod"
    stage.mkdir(exist_ok=True)
    for name in _TESTMOD_FILES:
        src = tree.testmod / name
        if src.exists():
            write_if_changed(stage / name, src.read_text())
    write_if_changed(stage / "Kbuild", _TESTMOD_KBUILD)
    return ModuleSource.find(stage)


def build_testmod(kernel: Kernel, progress: Progress | None = None) -> ModuleBuild:
    """bpf_testmod of ``kernel``'s own linux-source package, built with BTF for it
    (cached like any module build)."""
    from kfunc.kbuild import build_module

    tree = selftests_tree(kernel.series, progress)
    return build_module(testmod_source(tree), kernel, progress)


def build_progs(
    kernel: Kernel,
    names: Sequence[str],
    module: ModuleBuild | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Compile ``progs/<name>.c`` of ``kernel``'s tree as kfunc compiles a project's
    programs: the kernel's vmlinux.h, the host's (or the kernel's root
    filesystem's) clang and libbpf headers. Names the tree lacks are left out."""
    from kfunc.build import build_bpf
    from kfunc.project import Project

    tree = selftests_tree(kernel.series, progress)
    sources = tuple(tree.progs / f"{n}.c" for n in names if (tree.progs / f"{n}.c").exists())
    # -I selftests/bpf, as upstream (its bpf_tcp_helpers.h ...); progs/ is the sources' own dir
    project = Project(tree.bpf, None, sources, None, None)
    objects = build_bpf(project, kernel, progress, module)
    return {src.stem: obj for src, obj in zip(sources, objects, strict=True)}


# -- prog_tests/kfunc_call.c: what each program is given and must return


@dataclass(frozen=True)
class KfuncCallCase:
    """One entry of kfunc_call.c's table (or its subprog test).

    ``kind``: ``tc`` (the program gets ``pkt_v4``), ``syscall`` (the ctx struct
    ``ctx``), ``syscall_null_ctx`` (nothing). A failure case has ``message``:
    with ``retval`` 0 the verifier refuses the program with that text in its
    log; otherwise it loads (the text is in its log) and the test run fails
    with ``retval`` (a negative errno).
    """

    program: str
    object: str  # the progs/<object>.c that holds the program
    kind: str
    retval: int
    message: str | None = None
    ctx: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def rejected(self) -> bool:
        return self.message is not None and self.retval == 0


_CASE_KINDS = {"TC": "tc", "SYSCALL": "syscall", "SYSCALL_NULL_CTX": "syscall_null_ctx"}
_CASE = re.compile(
    r"\b(TC|SYSCALL|SYSCALL_NULL_CTX)_(TEST|FAIL)\(\s*(\w+)\s*,\s*([-\w]+)\s*"
    r'(?:,\s*"((?:[^"\\]|\\.)*)"\s*)?\)'
)


def _int(expr: str, where: str) -> int:
    """A C integer of the table: ``12``, ``-1234``, ``-EINVAL``."""
    sign = -1 if expr.startswith("-") else 1
    word = expr.lstrip("-")
    if word.isdigit():
        return sign * int(word)
    if hasattr(errno, word):
        return sign * int(getattr(errno, word))
    raise KfuncError(f"{where}: cannot read {expr!r} as a number", "update kfunc's parser")


def kfunc_call_cases(tree: SelftestsTree) -> list[KfuncCallCase]:
    """``prog_tests/kfunc_call.c``'s cases: its ``kfunc_tests[]`` table (failure
    cases' programs live in ``kfunc_call_fail.c``, the others in
    ``kfunc_call_test.c``), then ``test_subprog``'s program of
    ``kfunc_call_test_subprog.c``."""
    path = tree.prog_tests / "kfunc_call.c"
    text = path.read_text()
    start = text.find("kfunc_tests[] = {")
    if start < 0:
        raise KfuncError(f"{path}: no kfunc_tests[] table", "update kfunc's parser to this tree")
    table = text[start : text.index("};", start)]
    table = re.sub(r"/\*.*?\*/", "", table, flags=re.S)
    args = re.search(r"struct syscall_test_args args = \{(.*?)\};", text, re.S)
    ctx = {m[1]: _int(m[2], str(path)) for m in re.finditer(r"\.(\w+)\s*=\s*([-\w]+)",
                                                            args[1] if args else "")}  # fmt: skip
    cases = []
    for m in _CASE.finditer(table):
        kind = _CASE_KINDS[m[1]]
        fail = m[2] == "FAIL"
        cases.append(
            KfuncCallCase(
                m[3], "kfunc_call_fail" if fail else "kfunc_call_test", kind,
                _int(m[4], str(path)), m[5] if fail else None,
                ctx if kind == "syscall" else {},
            )
        )  # fmt: skip
    body = re.search(r"static void test_subprog\(void\)\s*\{(.*?)\n\}", text, re.S)
    if body:
        prog = re.search(r"skel->progs\.(\w+)", body[1])
        retval = re.search(r"ASSERT_EQ\(topts\.retval,\s*([-\w]+)", body[1])
        if prog and retval:
            cases.append(KfuncCallCase(prog[1], "kfunc_call_test_subprog", "tc",
                                       _int(retval[1], str(path))))  # fmt: skip
    if not cases:
        raise KfuncError(f"{path}: no cases read from its table", "update kfunc's parser")
    return cases
