"""What kfunc knows about kernels: the series it names, the newest release
Debian has of each, and what is in the cache (kernels, root filesystems) with
its size on disk."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Any, NoReturn

from kfunc.cache import cache_dir, disk_usage
from kfunc.errors import KernelNotFoundError, KfuncError
from kfunc.kernels.apt import private_apt
from kfunc.kernels.local import is_local_spec
from kfunc.kernels.rootfs import Rootfs, known_rootfs
from kfunc.kernels.target import SERIES, Kernel, cached_kernels, find_release, remove_kernel
from kfunc.progress import Progress
from kfunc.vm.snapshot import SnapshotFile, list_snapshots, remove_snapshots

__all__ = [
    "CachedKernel",
    "Catalog",
    "SeriesInfo",
    "catalog",
    "release_of",
    "remove",
    "remove_rootfs",
]


@dataclass(frozen=True)
class SeriesInfo:
    series: str
    suite: str
    newest: str | None  # the newest release Debian has, None when not looked up or not found


@dataclass(frozen=True)
class CachedKernel:
    kernel: Kernel
    bytes: int  # the unpacked kernel and its module builds


@dataclass
class Catalog:
    series: list[SeriesInfo] = field(default_factory=list)
    kernels: list[CachedKernel] = field(default_factory=list)
    rootfs: list[tuple[Rootfs, int]] = field(default_factory=list)
    debs_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    snapshots: list[SnapshotFile] = field(default_factory=list)  # restorable guests

    def to_dict(self) -> dict[str, Any]:
        return {
            "series": [vars(s) for s in self.series],
            "kernels": [
                {**c.kernel.to_dict(), "path": str(c.kernel.path), "bytes": c.bytes}
                for c in self.kernels
            ],
            "rootfs": [
                {"suite": r.suite, "path": str(r.path), "ready": r.ready, "bytes": n, **r.info()}
                for r, n in self.rootfs
            ],
            "debs_bytes": self.debs_bytes,
            "snapshots": [s.to_dict() for s in self.snapshots],
            "errors": self.errors,
        }


def catalog(
    progress: Progress | None = None, *, lookup: bool = True, refresh: bool = False
) -> Catalog:
    """The catalog; with ``lookup``, the newest release of each series from apt
    (``refresh``: update kfunc's private lists first)."""
    progress = progress or Progress()
    cat = Catalog()
    if refresh:
        private_apt().refresh(progress, force=True)
    for s in SERIES.values():
        newest = None
        if lookup:
            try:
                found = find_release(s, None, progress)
            except KfuncError as exc:
                cat.errors.append(exc.message)
                found = None
            newest = found[0].name.removeprefix("linux-image-") if found else None
        cat.series.append(SeriesInfo(s.name, s.suite, newest))
    builds = cache_dir("builds")
    for k in cached_kernels(local=True):
        size = disk_usage(k.path) + disk_usage(builds / k.key)
        cat.kernels.append(CachedKernel(k, size))
    cat.rootfs = [(r, r.size()) for r in known_rootfs()]
    cat.debs_bytes = disk_usage(cache_dir("debs"))
    cat.snapshots = list_snapshots()
    return cat


def release_of(name: str, progress: Progress | None = None) -> str:
    """The exact release ``name`` stands for: the newest Debian has of a series
    (what an empty cache fetches), any other name itself. Downloads nothing: a CI
    cache key names the release its job will test."""
    name = name.removeprefix("linux-image-")
    if name not in SERIES:
        if is_local_spec(name) or re.fullmatch(r"\d+\.\d+\S*-amd64", name):
            return name
        raise KernelNotFoundError(
            f"kernel '{name}': neither a series nor a Debian release",
            f"name a series ({', '.join(SERIES)}) or a release such as 6.12.117+deb12-amd64",
        )
    found = find_release(SERIES[name], None, progress or Progress())
    if found is None:
        raise KernelNotFoundError(
            f"kernel '{name}': Debian has no release of it in {SERIES[name].suite}",
            "`kfunc kernels --refresh` updates kfunc's apt lists",
        )
    return found[0].name.removeprefix("linux-image-")


def remove(name: str) -> list[tuple[str, int]]:
    """Remove cached kernels named ``name`` (a release, or every one of a series)."""
    name = name.removeprefix("linux-image-")
    if is_local_spec(name):
        # kfunc's data about a local kernel; the kernel's own files stay.
        source = os.path.abspath(name)
        local = [k for k in cached_kernels(local=True) if k.spec in (name, source)]
        return [(k.spec, remove_kernel(k)) for k in local] or _not_cached(name)
    kernels = cached_kernels(series=name) if name in SERIES else cached_kernels(release=name)
    if not kernels:
        _not_cached(name)
    removed = []
    for k in kernels:
        freed = remove_kernel(k)
        for deb in cache_dir("debs").glob(f"*{k.release.removesuffix('-amd64')}*.deb"):
            freed += disk_usage(deb) if deb.is_dir() else deb.stat().st_blocks * 512
            deb.unlink()
        freed += sum(n for _, n in remove_snapshots(k.release))
        removed.append((k.release, freed))
    return removed


def _not_cached(name: str) -> NoReturn:
    raise KernelNotFoundError(
        f"kernel '{name}': not in the cache",
        "`kfunc kernels` lists the cached releases",
    )


def remove_rootfs(suite: str) -> int:
    """Remove the root filesystem of ``suite``; returns the bytes freed."""
    found = next((r for r in known_rootfs() if r.suite == suite), None)
    if found is None:
        raise KfuncError(
            f"rootfs '{suite}': not in the cache", "`kfunc kernels` lists the root filesystems"
        )
    freed = found.size()
    shutil.rmtree(found.path)
    return freed
