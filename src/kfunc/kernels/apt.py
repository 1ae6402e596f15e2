"""apt, the host's or kfunc's own: the one place that asks Debian's archive.

The host's apt lists know the host's suites (bookworm here). Every other suite
Debian ships kernels from (bullseye, trixie, trixie-backports, sid) is looked
up through a private apt setup in kfunc's cache: its own sources list, lists
and package cache, passed as ``-o Dir::...`` options, so the host's /etc/apt
and /var/lib/apt stay untouched. The same suites make the root filesystems
(:mod:`kfunc.kernels.rootfs`).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.errors import KfuncError, MissingToolError
from kfunc.progress import Progress

__all__ = [
    "ARCHIVE",
    "KEYRING",
    "SECURITY",
    "SUITES",
    "Apt",
    "AptError",
    "host_apt",
    "private_apt",
    "suite_sources",
]

ARCHIVE = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: Suites the private apt setup searches, and the archive of each.
SUITES: tuple[tuple[str, str], ...] = (
    (ARCHIVE, "bullseye"),
    (SECURITY, "bullseye-security"),
    (ARCHIVE, "bookworm"),
    (SECURITY, "bookworm-security"),
    (ARCHIVE, "trixie"),
    (SECURITY, "trixie-security"),
    (ARCHIVE, "trixie-backports"),
    (ARCHIVE, "sid"),
)
_LISTS_MAX_AGE = 7 * 24 * 3600


class AptError(KfuncError):
    """apt failed: no network, no such package, stale lists."""


def suite_sources(suite: str) -> list[str]:
    """``deb`` lines for a root filesystem of ``suite``: its archive, security and,
    for a stable suite, its backports (where Debian puts newer kernels)."""
    base = suite.split("-")[0]
    lines = [f"deb {ARCHIVE} {base} main"]
    if base != "sid":
        lines.append(f"deb {ARCHIVE} {base}-backports main")
        if (SECURITY, f"{base}-security") in SUITES:
            lines.append(f"deb {SECURITY} {base}-security main")
    return lines


class Apt:
    """apt-get and apt-cache with a set of ``-o`` options (none: the host's setup)."""

    def __init__(self, options: list[str], name: str, lists: Path | None = None) -> None:
        self.options = options
        self.name = name
        self.lists = lists

    @property
    def private(self) -> bool:
        return self.lists is not None

    def _run(
        self, tool: str, *args: str, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        if shutil.which(tool) is None:
            raise MissingToolError(tool, "apt")
        cmd = [tool, *self.options, *self._binary_cache(), *args]
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)

    def query(self, *args: str) -> str:
        """``apt-cache ARGS``; AptError when it fails."""
        proc = self._run("apt-cache", *args)
        if proc.returncode != 0:
            raise AptError(
                f"apt-cache {args[0]} ({self.name}): {_first_error(proc.stderr)}",
                self._fix(),
            )
        return proc.stdout

    def download(self, names: list[str], dest: Path) -> None:
        """``apt-get download NAMES`` into ``dest``."""
        proc = self._run("apt-get", "-q", "download", *names, cwd=dest)
        if proc.returncode != 0:
            raise AptError(
                f"apt-get download ({self.name}): {_first_error(proc.stderr)}",
                f"{self._fix()}; without network, copy the .deb files into {dest}",
            )

    def refresh(self, progress: Progress, *, force: bool = False) -> None:
        """``apt-get update`` of the private lists, when older than a week (or ``force``)."""
        if self.lists is None:
            return
        fresh = [
            p
            for p in self.lists.glob("*_Packages*")
            if time.time() - p.stat().st_mtime < _LISTS_MAX_AGE
        ]
        if fresh and not force:
            return
        progress.update("apt-get update (kfunc's private lists: bullseye ... sid)")
        proc = self._run("apt-get", "-q", "update")
        if proc.returncode != 0:
            raise AptError(
                f"apt-get update (private lists in {self.lists}): {_first_error(proc.stderr)}",
                "check that deb.debian.org is reachable (proxy, DNS), then retry",
            )

    def _binary_cache(self) -> list[str]:
        """apt's binary package cache, kept in kfunc's cache. Docker-style images
        turn it off (``Dir::Cache::pkgcache ""``): each apt-cache call would then
        parse every list again, about 5 s instead of 0.1 s. apt rebuilds it
        whenever the lists change."""
        if self.private:
            return []  # set in its options, under its own Dir::Cache
        where = cache_dir("sources", "apt-host")
        return [
            "-o", f"Dir::Cache::pkgcache={where / 'pkgcache.bin'}",
            "-o", f"Dir::Cache::srcpkgcache={where / 'srcpkgcache.bin'}",
        ]  # fmt: skip

    def _fix(self) -> str:
        if self.private:
            return "check that deb.debian.org is reachable, then run `kfunc kernels --refresh`"
        return "run `apt-get update` (as root) and check that Debian's archive is reachable"


def _first_error(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("E:")]
    return (errors or [ln for ln in stderr.splitlines() if ln.strip()] or ["failed"])[0]


def host_apt() -> Apt:
    return Apt([], "the host's apt lists")


def private_apt() -> Apt:
    """apt pointed at kfunc's private setup (created if missing; lists not refreshed)."""
    root = cache_dir("sources", "apt")
    for sub in ("lists/partial", "cache/archives/partial", "sourceparts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    sources = root / "sources.list"
    lines = [f"deb [arch=amd64 signed-by={KEYRING}] {url} {suite} main" for url, suite in SUITES]
    text = "\n".join(lines) + "\n"
    if not sources.exists() or sources.read_text() != text:
        sources.write_text(text)
    options = [
        "-o", f"Dir::Etc::SourceList={sources}",
        "-o", f"Dir::Etc::SourceParts={root / 'sourceparts'}",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        # Docker-style images turn apt's binary caches off; each apt-cache call
        # would then parse every suite's lists again (about 6 s instead of 0.1 s).
        "-o", "Dir::Cache::pkgcache=pkgcache.bin",
        "-o", "Dir::Cache::srcpkgcache=srcpkgcache.bin",
        "-o", "Acquire::Languages=none",
    ]  # fmt: skip
    return Apt(options, "kfunc's private apt lists", root / "lists")
