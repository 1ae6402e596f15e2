"""Debian's kernel packages: find them with apt, fetch and unpack them privately.

Packages are fetched with ``apt-get download`` (the host's apt lists, or
kfunc's private ones for suites the host lacks: :mod:`kfunc.kernels.apt`) and
unpacked with ``dpkg-deb -x`` into a directory of kfunc's cache; nothing is
installed into the host system.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kfunc.errors import KernelNotFoundError, MissingToolError
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels.apt import Apt
from kfunc.progress import Progress

__all__ = ["Package", "dependencies", "depends", "download", "find_images", "unpack"]

# Flavours other than the generic one, and the packages beside the image.
_NOT_GENERIC = re.compile(r"-(dbg|unsigned|cloud|rt|signed-template)(-|$)")
_DEPENDS = re.compile(r"^Depends: (.*)$", re.M)


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # the Debian package version, e.g. 6.12.117-1~deb12u1

    @property
    def kernel_version(self) -> KernelVersion:
        return KernelVersion.parse(self.version)


def _show(apt: Apt, names: list[str]) -> list[Package]:
    if not names:
        return []
    out = apt.query("show", "--no-all-versions", *names)
    packages = []
    for record in out.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and "Version" in fields:
            packages.append(Package(fields["Package"], fields["Version"]))
    return packages


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
    return sorted(_show(apt, names), key=lambda p: (p.kernel_version, p.name), reverse=True)


def depends(apt: Apt, package: str) -> dict[str, str]:
    """``package``'s Depends: name -> version constraint (``>= 2.38``, or ``""``).

    Of alternatives (``a | b``) only the first counts.
    """
    m = _DEPENDS.search(apt.query("show", "--no-all-versions", package))
    found: dict[str, str] = {}
    for item in m[1].split(",") if m else []:
        first = item.split("|")[0].strip()
        dm = re.match(r"([^\s(]+)\s*(?:\(([^)]*)\))?", first)
        if dm:
            found.setdefault(dm[1], (dm[2] or "").strip())
    return found


def dependencies(apt: Apt, package: str, prefixes: tuple[str, ...]) -> list[str]:
    """The direct dependencies of ``package`` whose names start with one of ``prefixes``."""
    return [name for name in depends(apt, package) if name.startswith(prefixes)]


def download(apt: Apt, names: list[str], dest: Path, progress: Progress) -> list[Path]:
    """Fetch the .deb files of ``names`` into ``dest`` (skipping those already there)."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not any(dest.glob(f"{n}_*.deb"))]
    if missing:
        progress.update(f"downloading {', '.join(missing)}")
        apt.download(missing, dest)
    debs = []
    for name in names:
        found = sorted(dest.glob(f"{name}_*.deb"))
        if not found:
            raise KernelNotFoundError(f"{name}: no .deb in {dest} after download")
        debs.append(found[-1])
    return debs


def unpack(debs: list[Path], root: Path, progress: Progress) -> None:
    """Unpack ``debs`` into ``root`` (as ``dpkg-deb -x``; no maintainer scripts run)."""
    if shutil.which("dpkg-deb") is None:
        raise MissingToolError("dpkg-deb", "dpkg")
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        progress.update(f"unpacking {deb.name}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
