"""Target kernels: a Debian kernel named by version, unpacked into kfunc's cache.

A target holds everything kfunc needs of one kernel without booting it: the
bzImage to boot, its modules (for the VM's initramfs), a private kbuild tree
that builds modules with BTF, and the kernel's own vmlinux (taken out of the
bzImage) whose ``.BTF`` is the target's BTF.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.errors import KernelNotFoundError
from kfunc.kernels import debian
from kfunc.kernels.version import KernelVersion
from kfunc.kernels.vmlinuz import extract_vmlinux
from kfunc.progress import Progress

__all__ = ["DEFAULT_KERNEL", "SERIES", "Kernel", "get_kernel", "known_kernels"]


@dataclass(frozen=True)
class Series:
    """A kernel series Debian ships, and how its generic amd64 releases are named."""

    name: str
    release_pattern: str
    suite: str


SERIES: dict[str, Series] = {
    s.name: s
    for s in (
        Series("6.1", r"6\.1\.0-\d+-amd64", "bookworm"),
        Series("6.12", r"6\.12\.\d+\+deb12-amd64", "bookworm"),
    )
}
DEFAULT_KERNEL = "6.12"
_RESOLVE_BTFIDS = Path("tools/bpf/resolve_btfids/resolve_btfids")


@dataclass(frozen=True)
class Kernel:
    """One unpacked target kernel."""

    release: str  # uname -r of the target, e.g. 6.12.117+deb12-amd64
    version: KernelVersion  # e.g. 6.12.117 (from the package version)
    series: str
    path: Path  # the kernel's directory in the cache

    @property
    def root(self) -> Path:
        """The unpacked packages, laid out as a root filesystem."""
        return self.path / "root"

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def system_map(self) -> Path:
        return self.root / "boot" / f"System.map-{self.release}"

    @property
    def config(self) -> Path:
        return self.root / "boot" / f"config-{self.release}"

    @property
    def build_dir(self) -> Path:
        """The private kbuild tree (Debian's headers, made to build with BTF)."""
        return self.root / "usr" / "src" / f"linux-headers-{self.release}"

    @property
    def vmlinux(self) -> Path:
        """The target's vmlinux ELF, taken out of the bzImage: its ``.BTF`` is the kernel BTF."""
        return self.path / "vmlinux"

    def __str__(self) -> str:
        return f"{self.version} ({self.release})"

    def to_dict(self) -> dict[str, str]:
        return {"release": self.release, "version": str(self.version), "series": self.series}


def known_kernels() -> list[str]:
    """The names ``--kernel`` accepts besides exact releases."""
    return list(SERIES)


def _kernels_dir() -> Path:
    return cache_dir("kernels")


def _cached(series: str | None = None, release: str | None = None) -> list[Kernel]:
    found = []
    for meta in _kernels_dir().glob("*/kernel.json"):
        info = json.loads(meta.read_text())
        if (series is None or info["series"] == series) and (
            release is None or info["release"] == release
        ):
            found.append(
                Kernel(
                    info["release"],
                    KernelVersion.parse(info["version"]),
                    info["series"],
                    meta.parent,
                )
            )
    return sorted(found, key=lambda k: k.version, reverse=True)


def _series_of_release(release: str) -> Series | None:
    return next((s for s in SERIES.values() if re.fullmatch(s.release_pattern, release)), None)


def get_kernel(name: str = DEFAULT_KERNEL, progress: Progress | None = None) -> Kernel:
    """Return the target kernel ``name``, fetching and preparing it on first use.

    ``name`` is a series (``6.1``, ``6.12``: the newest Debian release of it) or
    an exact release (``6.12.117+deb12-amd64``). A kernel already in the cache
    is used without asking apt.
    """
    progress = progress or Progress()
    name = name.removeprefix("linux-image-")
    if name in SERIES:
        series, release = SERIES[name], None
    else:
        series, release = _series_of_release(name), name
    if series is None:
        raise KernelNotFoundError(
            f"kernel '{name}': unknown",
            f"use one of {', '.join(SERIES)}, or an exact Debian release such as "
            "6.12.117+deb12-amd64",
        )
    cached = _cached(series.name, release)
    if cached:
        return cached[0]
    images = debian.find_images(re.escape(release) if release else series.release_pattern)
    if not images:
        raise KernelNotFoundError(
            f"kernel '{name}': no Debian package linux-image-{release or series.name + '*'}",
            "run `apt-get update` (as root); Debian's "
            f"{series.suite} archive must be in /etc/apt/sources.list",
        )
    return _prepare(series, images[0], progress)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _prepare(series: Series, image: debian.Package, progress: Progress) -> Kernel:
    release = image.name.removeprefix("linux-image-")
    kernel = Kernel(release, image.kernel_version, series.name, _kernels_dir() / release)
    with _locked(_kernels_dir() / f".{release}.lock"):
        if (kernel.path / "kernel.json").exists():
            return kernel
        with progress.step(f"kernel {release}: fetching Debian packages"):
            headers = f"linux-headers-{release}"
            names = [image.name, headers]
            names += debian.dependencies(headers, ("linux-headers-", "linux-kbuild-"))
            debs = debian.download(names, cache_dir("debs"), progress)
            shutil.rmtree(kernel.path, ignore_errors=True)
            debian.unpack(debs, kernel.root, progress)
        with progress.step(f"kernel {release}: preparing a private kbuild tree with BTF"):
            _prepare_build_tree(kernel, progress)
        (kernel.path / "kernel.json").write_text(json.dumps(kernel.to_dict(), indent=2) + "\n")
    return kernel


def _prepare_build_tree(kernel: Kernel, progress: Progress) -> None:
    build = kernel.build_dir
    # Debian's arch Makefile includes the common tree by absolute path: point
    # it at our unpacked copy, so nothing in the host's /usr/src is used.
    makefile = build / "Makefile"
    makefile.write_text(
        re.sub(
            r"^include /usr/src/",
            f"include {kernel.root}/usr/src/",
            makefile.read_text(),
            flags=re.M,
        )
    )
    progress.update("extracting vmlinux from the bzImage")
    extract_vmlinux(kernel.vmlinuz, kernel.vmlinux)
    # kbuild generates module BTF only where the build tree has a vmlinux
    # ("Skipping BTF generation ... due to unavailability of vmlinux"):
    # Debian's 6.12 headers ship a BTF-only one, 6.1's none.
    if not (build / "vmlinux").exists():
        (build / "vmlinux").symlink_to(kernel.vmlinux)
    # ... and resolve_btfids, which 6.1's linux-kbuild package lacks.
    tool = build / _RESOLVE_BTFIDS
    if not tool.exists():
        tool.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(_donor_resolve_btfids(kernel, progress), tool)
    if shutil.which("depmod") or Path("/usr/sbin/depmod").exists():
        depmod = shutil.which("depmod") or "/usr/sbin/depmod"
        progress.update("depmod")
        subprocess.run(
            [depmod, "-a", "-b", str(kernel.root), kernel.release],
            check=False,
            capture_output=True,
        )


def _donor_resolve_btfids(kernel: Kernel, progress: Progress) -> Path:
    """resolve_btfids from the newest linux-kbuild package that has one."""
    donors = cache_dir("tools")
    tool = donors / "resolve_btfids"
    if tool.exists():
        return tool
    progress.update("fetching resolve_btfids from a newer linux-kbuild package")
    images = debian.find_images(SERIES[DEFAULT_KERNEL].release_pattern)
    if not images:
        raise KernelNotFoundError(
            f"kernel {kernel.release}: kbuild lacks resolve_btfids and no "
            f"linux-kbuild-{DEFAULT_KERNEL}* package can provide it",
            "run `apt-get update` (as root)",
        )
    headers = f"linux-headers-{images[0].name.removeprefix('linux-image-')}"
    kbuild = debian.dependencies(headers, ("linux-kbuild-",))
    debs = debian.download(kbuild, cache_dir("debs"), progress)
    with tempfile.TemporaryDirectory(dir=donors) as tmp:
        debian.unpack(debs, Path(tmp), progress)
        found = next(Path(tmp).glob(f"usr/lib/linux-kbuild-*/{_RESOLVE_BTFIDS}"), None)
        if found is None:
            raise KernelNotFoundError(f"{debs[0].name}: has no {_RESOLVE_BTFIDS}")
        shutil.copy2(found, tool)
    return tool
