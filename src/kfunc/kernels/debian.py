"""Debian's kernel packages: find them with apt, fetch and unpack them privately.

Packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``
into a directory of kfunc's cache; nothing is installed into the host system.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kfunc.errors import KernelNotFoundError, MissingToolError
from kfunc.kernels.version import KernelVersion
from kfunc.progress import Progress

__all__ = ["Package", "dependencies", "download", "find_images", "unpack"]

# Flavours other than the generic one, and the packages beside the image.
_NOT_GENERIC = re.compile(r"-(dbg|unsigned|cloud|rt|signed-template)(-|$)")


@dataclass(frozen=True)
class Package:
    name: str
    version: str  # the Debian package version, e.g. 6.12.117-1~deb12u1

    @property
    def kernel_version(self) -> KernelVersion:
        return KernelVersion.parse(self.version)


def _apt(*args: str) -> str:
    tool = args[0]
    if shutil.which(tool) is None:
        raise MissingToolError(tool, "apt")
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise KernelNotFoundError(
            f"{' '.join(args[:2])}: {detail}",
            "run `apt-get update` (as root) and check that Debian's archive is reachable",
        )
    return proc.stdout


def _show(names: list[str]) -> list[Package]:
    if not names:
        return []
    out = _apt("apt-cache", "show", "--no-all-versions", *names)
    packages = []
    for record in out.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields and "Version" in fields:
            packages.append(Package(fields["Package"], fields["Version"]))
    return packages


def find_images(release_pattern: str) -> list[Package]:
    """Generic amd64 image packages whose release matches, newest first.

    ``release_pattern`` is a regular expression for the kernel release, e.g.
    ``6\\.12\\.\\d+\\+deb12-amd64``.
    """
    pattern = re.compile(rf"linux-image-{release_pattern}")
    names = [
        name
        for name in _apt("apt-cache", "pkgnames", "linux-image-").split()
        if pattern.fullmatch(name) and not _NOT_GENERIC.search(name.removesuffix("-amd64"))
    ]
    return sorted(_show(names), key=lambda p: (p.kernel_version, p.name), reverse=True)


def dependencies(package: str, prefixes: tuple[str, ...]) -> list[str]:
    """The direct dependencies of ``package`` whose names start with one of ``prefixes``."""
    deps = []
    for line in _apt("apt-cache", "depends", package).splitlines():
        m = re.match(r"\s*\|?Depends: (\S+)", line)
        if m and m[1].startswith(prefixes) and m[1] not in deps:
            deps.append(m[1])
    return deps


def download(names: list[str], dest: Path, progress: Progress) -> list[Path]:
    """Fetch the .deb files of ``names`` into ``dest`` (skipping those already there)."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [n for n in names if not any(dest.glob(f"{n}_*.deb"))]
    if missing:
        progress.update(f"downloading {', '.join(missing)}")
        cmd = ["apt-get", "download", "-q", *missing]
        if shutil.which("apt-get") is None:
            raise MissingToolError("apt-get", "apt")
        proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("E:")]
            raise KernelNotFoundError(
                f"apt-get download: {(errors or proc.stderr.splitlines() or ['failed'])[0]}",
                f"run `apt-get update` (as root); without network, copy the .deb files into {dest}",
            )
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
