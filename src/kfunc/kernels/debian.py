"""Debian's packages: which version kfunc wants, and the one path that fetches it.

A package is chosen by its Debian version, compared as dpkg compares them
(python-debian's :class:`~debian.debian_support.Version`: ``6.1.99-1`` comes
before ``6.1.192-1``, ``~`` before anything), and fetched by that exact version
with ``apt-get download NAME=VERSION`` (the host's apt lists, or kfunc's
private ones for suites the host lacks: :mod:`kfunc.kernels.apt`).
:func:`fetch` is the only download path: kernels, the survey and the selftests
all use it. A .deb already in the cache is reused only when it is the version
wanted and its size, SHA-256 and own control fields agree with apt's record;
a file name alone proves nothing (``linux-kbuild-6.1_*.deb`` carries no kernel
release). Packages are unpacked by kfunc's own reader (:mod:`kfunc.kernels.deb`)
into a directory of kfunc's cache; nothing is installed into the host system.
"""

from __future__ import annotations

import fcntl
import re
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from debian.debian_support import Version

from kfunc.cache import file_sha256
from kfunc.errors import KernelNotFoundError, KfuncError
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels import deb
from kfunc.kernels.apt import Apt, AptError
from kfunc.progress import Progress

__all__ = [
    "Package",
    "candidate",
    "choose",
    "depends",
    "fetch",
    "find_images",
    "satisfies",
    "unpack",
]

# Flavours other than the generic one, and the packages beside the image.
_NOT_GENERIC = re.compile(r"-(dbg|unsigned|cloud|rt|signed-template)(-|$)")
_DEPENDS = re.compile(r"^Depends: (.*)$", re.M)
_RELATION = re.compile(r"^(<<|<=|=|>=|>>|<|>)\s*(\S+)$")


@dataclass(frozen=True)
class Package:
    """One version of one package, as apt's record describes it."""

    name: str
    version: str  # the Debian package version, e.g. 6.12.117-1~deb12u1
    size: int | None = None  # of the .deb, from apt's record
    sha256: str | None = None

    @property
    def kernel_version(self) -> KernelVersion:
        return KernelVersion.parse(self.version)

    @property
    def debian_version(self) -> Version:
        return Version(self.version)

    @property
    def file_prefix(self) -> str:
        """How ``apt-get download`` names its file, up to the architecture."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_"

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


def _records(text: str) -> list[Package]:
    packages = []
    for record in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and "Version" in fields:
            size = fields.get("Size", "")
            packages.append(
                Package(
                    fields["Package"],
                    fields["Version"],
                    int(size) if size.isdigit() else None,
                    fields.get("SHA256"),
                )
            )
    return packages


def _show(apt: Apt, names: list[str]) -> list[Package]:
    if not names:
        return []
    return _records(apt.query("show", "--no-all-versions", *names))


def candidate(apt: Apt, name: str, version: str | None = None) -> Package | None:
    """apt's record of ``name`` at ``version`` (default: the version apt would
    install, the newest of its suites), or None if apt has no such package."""
    try:
        if version is None:
            found = _show(apt, [name])
        else:
            found = _records(apt.query("show", f"{name}={version}"))
    except AptError:
        return None
    return next((p for p in found if p.name == name), None)


def satisfies(version: str, relation: str) -> bool:
    """Whether ``version`` meets a Depends relation such as ``>= 6.1.192-3``
    (``""``: any version), compared as dpkg does."""
    if not relation.strip():
        return True
    m = _RELATION.match(relation.strip())
    if m is None:
        raise ValueError(f"not a version relation: {relation!r}")
    op, want = m[1], Version(m[2])
    have = Version(version)
    return {
        "<<": have < want,
        "<=": have <= want,
        "<": have <= want,  # obsolete spelling of <= (deb-control(5))
        "=": have == want,
        ">=": have >= want,
        ">": have >= want,  # obsolete spelling of >=
        ">>": have > want,
    }[op]


def choose(apt: Apt, name: str, relation: str = "") -> Package:
    """The version of ``name`` to fetch for a Depends ``relation``: the pinned one
    for ``= V``, else apt's candidate, which must satisfy the relation."""
    m = _RELATION.match(relation.strip())
    pinned = m[2] if m and m[1] == "=" else None
    found = candidate(apt, name, pinned)
    if found is None or not satisfies(found.version, relation):
        have = f" (apt has {found.version})" if found else ""
        raise KernelNotFoundError(
            f"{name}{f' ({relation})' if relation else ''}: not in {apt.name}{have}",
            "run `apt-get update` (as root), or `kfunc kernels --refresh` for kfunc's own lists",
        )
    return found


def find_images(apt: Apt, release_pattern: str) -> list[Package]:
    """Generic amd64 image packages whose release matches, newest first.

    ``release_pattern`` is a regular expression for the kernel release, e.g.
    ``6\\.12\\.\\d+\\+deb12-amd64``.
    """
    pattern = re.compile(rf"linux-image-{release_pattern}")
    names = [
        name
        for name in apt.query("pkgnames", "linux-image-").split()
        if pattern.fullmatch(name) and not _NOT_GENERIC.search(name.removesuffix("-amd64"))
    ]
    return sorted(_show(apt, names), key=lambda p: (p.debian_version, p.name), reverse=True)


def depends(apt: Apt, package: str, version: str | None = None) -> dict[str, str]:
    """``package``'s Depends (of ``version``, default apt's candidate):
    name -> version relation (``>= 2.38``, or ``""``).

    Of alternatives (``a | b``) only the first counts.
    """
    what = ("show", f"{package}={version}") if version else ("show", "--no-all-versions", package)
    m = _DEPENDS.search(apt.query(*what))
    found: dict[str, str] = {}
    for item in m[1].split(",") if m else []:
        first = item.split("|")[0].strip()
        dm = re.match(r"([^\s(]+)\s*(?:\(([^)]*)\))?", first)
        if dm:
            found.setdefault(dm[1], (dm[2] or "").strip())
    return found


@contextmanager
def _locked(paths: list[Path]) -> Iterator[None]:
    """Exclusive locks on ``paths``, taken in sorted order (no deadlock between
    two fetches of overlapping package sets)."""
    with ExitStack() as stack:
        for path in sorted(set(paths)):
            lock = stack.enter_context(path.open("w"))
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _mismatch(path: Path, package: Package) -> str | None:
    """Why ``path`` is not ``package`` (None: it is)."""
    if package.size is not None and path.stat().st_size != package.size:
        return f"{path.stat().st_size} bytes, apt says {package.size}"
    if package.sha256 is not None and file_sha256(path) != package.sha256:
        return "its SHA-256 differs from apt's record"
    try:
        fields = deb.control_fields(path)
    except (deb.DebFormatError, tarfile.TarError, EOFError, OSError) as e:
        return f"not a Debian package: {e}"
    have = (fields.get("Package"), fields.get("Version"))
    if have != (package.name, package.version):
        return f"it holds {have[0]} {have[1]}"
    return None


def _cached(dest: Path, package: Package) -> Path | None:
    """The verified .deb of exactly ``package`` in ``dest``; a file of that name
    that fails verification (a broken download) is removed."""
    for path in sorted(dest.glob(f"{package.file_prefix}*.deb")):
        if _mismatch(path, package) is None:
            return path
        path.unlink()
    return None


def fetch(apt: Apt, packages: list[Package], dest: Path, progress: Progress) -> list[Path]:
    """The .deb files of exactly ``packages`` in ``dest``: reused when already
    there and verified, else downloaded by ``apt-get download NAME=VERSION`` and
    verified. Concurrent fetches of the same package wait for each other."""
    dest.mkdir(parents=True, exist_ok=True)
    with _locked([dest / f".{p.name}.lock" for p in packages]):
        found = {p: _cached(dest, p) for p in packages}
        missing = [p for p, path in found.items() if path is None]
        if missing:
            progress.update(f"downloading {', '.join(map(str, missing))}")
            apt.download([f"{p.name}={p.version}" for p in missing], dest)
        debs = []
        for p in packages:
            path = found[p] or _cached(dest, p)
            if path is None:
                raise KfuncError(
                    f"{p}: no intact .deb in {dest} after apt-get download",
                    f"run `apt-get update` (as root), or copy {p.file_prefix}*.deb into {dest}",
                )
            debs.append(path)
    return debs


def unpack(debs: list[Path], root: Path, progress: Progress) -> None:
    """Unpack ``debs`` into ``root`` (as ``dpkg-deb -x``; no maintainer scripts run)."""
    root.mkdir(parents=True, exist_ok=True)
    for path in debs:
        progress.update(f"unpacking {path.name}")
        try:
            deb.unpack(path, root)
        except (deb.DebFormatError, tarfile.TarError, EOFError) as e:
            raise KfuncError(
                f"{path}: cannot unpack: {e}", f"remove {path} and run again to download it afresh"
            ) from e
