"""Kernel source trees as the survey reads them: a directory, a tarball, or a
Debian ``linux-source-*`` package, reduced to the few files that matter.

Only two kinds of file are kept: ``include/uapi/linux/bpf.h`` (the helpers) and
the C sources and headers that mention ``BTF_ID`` or ``KFUNC`` (kfunc sets, and
the headers holding macro-generated kfunc lists such as ``XDP_METADATA_KFUNC_xxx``
in include/net/xdp.h). A tarball is streamed member by member and never
unpacked; a ``.deb`` is streamed (:mod:`kfunc.kernels.deb`) through its
``data.tar`` to the tarball inside (``usr/src/linux-source-X.Y.tar.xz``), so a
1.5 GB tree costs one pass of decompression and a few megabytes of memory.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from kfunc.errors import KfuncError
from kfunc.inputs import CAPS, decompress, read_bytes, read_stream, read_text
from kfunc.kernels import deb
from kfunc.progress import Progress
from kfunc.survey.dates import release_date
from kfunc.survey.helpers import helpers_from_header
from kfunc.survey.kfunc_sets import kfuncs_of, not_counted_of, parse_file
from kfunc.survey.model import ReleaseCount

__all__ = [
    "HELPERS_HEADER",
    "SourceTree",
    "count_tree",
    "is_wanted_path",
    "is_wanted_text",
    "read_tree",
    "survey_tree",
]

HELPERS_HEADER = "include/uapi/linux/bpf.h"
# Markers of the files the kfunc count reads: the BTF_ID family of macros
# (include/linux/btf_ids.h) and the KFUNC list macros of net/xdp.
_MARKERS = (b"BTF_ID", b"KFUNC")
_EXCLUDED_DIRS = ("tools/", "Documentation/", "samples/")


def is_wanted_path(path: str) -> bool:
    """Whether ``path`` (relative to the tree's top) may hold helpers or kfuncs."""
    if path == HELPERS_HEADER:
        return True
    return path.endswith((".c", ".h")) and not path.startswith(_EXCLUDED_DIRS)


def is_wanted_text(data: bytes) -> bool:
    return any(marker in data for marker in _MARKERS)


@dataclass
class SourceTree:
    """The files of one kernel tree that the survey reads, keyed by path."""

    name: str  # e.g. linux-source-6.12 or the directory's name
    version: str | None  # from the top-level Makefile, e.g. 6.12.117
    files: dict[str, str] = field(default_factory=dict)
    # For a Debian package: changelog.Debian text, which dates upstream releases.
    debian_changelog: str | None = None


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


_MAKEFILE_VERSION = re.compile(
    r"^VERSION\s*=\s*(\d+)\s*\nPATCHLEVEL\s*=\s*(\d+)\s*\nSUBLEVEL\s*=\s*(\d+)", re.M
)


def makefile_version(text: str) -> str | None:
    """``6.12.117`` from a top-level kernel Makefile."""
    m = _MAKEFILE_VERSION.search(text)
    return f"{m[1]}.{m[2]}.{m[3]}" if m else None


def read_tree(path: str | Path, progress: Progress | None = None) -> SourceTree:
    """Read a source directory, a tarball (.tar, .tar.xz/.gz/.bz2) or a Debian
    ``linux-source-*`` package (.deb)."""
    path = Path(path)
    progress = progress or Progress()
    if path.is_dir():
        return _read_dir(path)
    if not path.is_file():
        raise KfuncError(
            f"{path}: no such source tree",
            "pass a kernel source directory, a linux-*.tar.xz or a linux-source-*.deb",
        )
    try:
        if path.suffix == ".deb":
            return _read_deb(path, progress)
        with tarfile.open(path, mode="r|*") as tar:
            return _read_tar(path.name, tar, progress)
    except (tarfile.TarError, EOFError, OSError, deb.DebFormatError) as e:
        raise KfuncError(
            f"{path}: cannot read as a source tarball: {e}",
            "pass an intact kernel tarball (.tar.xz/.tar.gz) or a linux-source-*.deb",
        ) from e


def _read_dir(root: Path) -> SourceTree:
    makefile = root / "Makefile"
    version = (
        makefile_version(read_text(makefile, "source", errors="replace"))
        if makefile.is_file()
        else None
    )
    tree = SourceTree(root.resolve().name, version)
    for sub in sorted(root.rglob("*.[ch]")):
        rel = sub.relative_to(root).as_posix()
        if not is_wanted_path(rel) or not sub.is_file():
            continue
        if _too_big(rel, sub.stat().st_size, str(root)):
            continue
        data = read_bytes(sub, "source")
        if rel == HELPERS_HEADER or is_wanted_text(data):
            tree.files[rel] = _decode(data)
    return tree


def _too_big(rel: str, size: int, where: str) -> bool:
    """Whether to pass over a file larger than kfunc reads as a C source.

    Real trees have such files, generated register maps (6.12's
    drivers/gpu/drm/amd/include/asic_reg/dcn/dcn_3_2_0_sh_mask.h is 24 MB), and
    they define no helper or kfunc: they are skipped unread. Only the files the
    count cannot do without (the helpers' header, the top Makefile) are an error.
    """
    if size <= CAPS["source"]:
        return False
    if rel in (HELPERS_HEADER, "Makefile"):
        raise KfuncError(
            f"{where}: {rel}: {size} bytes, over the {CAPS['source'] >> 20} MiB kfunc reads "
            "as a C source",
            "pass an intact kernel tree or tarball",
        )
    return True


def _strip_top(name: str) -> tuple[str, str]:
    """``linux-6.12/kernel/bpf/helpers.c`` -> (``linux-6.12``, ``kernel/bpf/helpers.c``)."""
    top, _, rest = name.lstrip("./").partition("/")
    return top, rest


def _read_tar(name: str, tar: tarfile.TarFile, progress: Progress) -> SourceTree:
    tree = SourceTree(name, None)
    top_seen: str | None = None
    seen = 0
    for member in tar:
        if not member.isfile():
            continue
        top, rel = _strip_top(member.name)
        if top_seen is None and rel:
            top_seen = top
        seen += 1
        if seen % 5000 == 0:
            progress.update(f"{seen} files read, {len(tree.files)} kept: {rel}")
        if (rel == "Makefile" or is_wanted_path(rel)) and _too_big(rel, member.size, name):
            continue
        if rel == "Makefile":
            f = tar.extractfile(member)
            if f is not None:
                tree.version = makefile_version(_decode(f.read()))
            continue
        if not is_wanted_path(rel):
            continue
        f = tar.extractfile(member)
        if f is None:
            continue
        data = f.read()
        if rel == HELPERS_HEADER or is_wanted_text(data):
            tree.files[rel] = _decode(data)
    if top_seen:
        tree.name = top_seen
    if not tree.files and tree.version is None:
        raise KfuncError(
            f"{name}: no kernel sources found in the archive",
            "pass a kernel tarball such as linux-6.12.tar.xz or a linux-source-*.deb",
        )
    return tree


def _read_deb(path: Path, progress: Progress) -> SourceTree:
    try:
        tree = _read_deb_data(path, progress)
    except deb.MissingMemberError:
        tree = None
    if tree is None:
        raise KfuncError(
            f"{path}: no usr/src/linux-source-*.tar.* in this package",
            "pass a Debian linux-source-X.Y package (apt-get download linux-source-6.12)",
        )
    return tree


def _read_deb_data(path: Path, progress: Progress) -> SourceTree | None:
    """The tree of the package's inner source tarball, dated by its changelog
    (which comes first in Debian's packages); None without that tarball."""
    changelog: str | None = None
    with deb.data_tar(path) as outer:
        for entry in outer:
            name = entry.name.lstrip("./")
            if name.endswith("/changelog.Debian.gz") and entry.isfile():
                raw = outer.extractfile(entry)
                if raw is not None:
                    # A changelog is ~1 MB; a .deb is the user's: bounded.
                    packed = read_stream(raw, "source", f"{path}: {name}")
                    changelog = _decode(decompress(packed, ".gz", f"{path}: {name}", "source"))
            elif re.fullmatch(r"usr/src/linux-source-[^/]+\.tar(\.\w+)?", name):
                inner_f = outer.extractfile(entry)
                if inner_f is None:
                    return None
                progress.update(f"streaming {name}")
                with tarfile.open(fileobj=inner_f, mode="r|*") as inner:
                    tree = _read_tar(Path(name).name, inner, progress)
                tree.debian_changelog = changelog
                return tree
    return None


def count_tree(tree: SourceTree, release: str | None = None) -> ReleaseCount:
    """The helpers and kfuncs of one tree, dated by its release."""
    helpers = helpers_from_header(tree.files.get(HELPERS_HEADER, ""))
    parsed = {path: parse_file(text) for path, text in tree.files.items() if path != HELPERS_HEADER}
    kfuncs = {name: site.path for name, site in kfuncs_of(parsed).items()}
    version = tree.version or tree.name
    date, how = release_date(version, tree.debian_changelog)
    count = ReleaseCount(release or version, date, helpers, kfuncs, tree.name, how)
    count.not_counted = not_counted_of(parsed)
    return count


def survey_tree(path: str | Path, progress: Progress | None = None) -> ReleaseCount:
    """Read and count one source directory, tarball or linux-source .deb."""
    progress = progress or Progress()
    with progress.step(f"reading {Path(path).name}") as step:
        tree = read_tree(path, progress)
        count = count_tree(tree)
        count.source = str(path)
        if not count.n_helpers and not count.n_kfuncs:
            # Every kernel since 3.18 has helpers: nothing counted is no answer.
            raise KfuncError(
                f"{path}: no BPF helpers and no kfuncs found: not a kernel source tree "
                f"(no {HELPERS_HEADER}, no registered kfunc sets)",
                "pass the top directory of a kernel source tree, a linux-*.tar.xz or a "
                "linux-source-*.deb",
            )
        step.summary = (
            f"{Path(path).name}: Linux {tree.version or '?'}: {count.n_helpers} helpers, "
            f"{count.n_kfuncs} kfuncs"
        )
    return count
