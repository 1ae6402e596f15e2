"""Debian's ``linux-source-X.Y`` packages, fetched for the survey (never installed).

The host's apt lists are tried first. A series they lack (5.10 lives in
bullseye, 7.x in trixie-backports and sid) is looked up through a private apt
setup in kfunc's cache: its own sources list, lists and package cache, passed as
``-o Dir::...`` options, so the host's /etc/apt and /var/lib/apt stay untouched.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.errors import KfuncError, MissingToolError
from kfunc.progress import Progress

__all__ = ["SUITES", "fetch_source_package", "private_apt_options"]

_ARCHIVE = "http://deb.debian.org/debian"
_SECURITY = "http://deb.debian.org/debian-security"
_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
#: Suites searched by the private apt setup, and the archive of each.
SUITES: tuple[tuple[str, str], ...] = (
    (_ARCHIVE, "bullseye"),
    (_SECURITY, "bullseye-security"),
    (_ARCHIVE, "bookworm"),
    (_SECURITY, "bookworm-security"),
    (_ARCHIVE, "trixie"),
    (_SECURITY, "trixie-security"),
    (_ARCHIVE, "trixie-backports"),
    (_ARCHIVE, "sid"),
)
_LISTS_MAX_AGE = 7 * 24 * 3600


def _apt_dir() -> Path:
    return cache_dir("sources", "apt")


def private_apt_options() -> list[str]:
    """``-o`` options that point apt at the private setup (created if missing)."""
    root = _apt_dir()
    for sub in ("lists/partial", "cache/archives/partial", "sourceparts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    sources = root / "sources.list"
    lines = [f"deb [arch=amd64 signed-by={_KEYRING}] {url} {suite} main" for url, suite in SUITES]
    text = "\n".join(lines) + "\n"
    if not sources.exists() or sources.read_text() != text:
        sources.write_text(text)
    return [
        "-o", f"Dir::Etc::SourceList={sources}",
        "-o", f"Dir::Etc::SourceParts={root / 'sourceparts'}",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "Acquire::Languages=none",
    ]  # fmt: skip


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which(cmd[0]) is None:
        raise MissingToolError(cmd[0], "apt")
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _known(package: str, options: list[str]) -> bool:
    proc = _run(["apt-cache", *options, "show", "--no-all-versions", package])
    return proc.returncode == 0 and f"Package: {package}" in proc.stdout


def _refresh_private(options: list[str], progress: Progress) -> None:
    lists = _apt_dir() / "lists"
    fresh = [
        p for p in lists.glob("*_Packages*") if time.time() - p.stat().st_mtime < _LISTS_MAX_AGE
    ]
    if fresh:
        return
    progress.update("apt-get update (kfunc's private lists: bullseye ... sid)")
    proc = _run(["apt-get", *options, "-q", "update"])
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("E:")]
        raise KfuncError(
            f"apt-get update (private lists in {lists}): {(errors or ['failed'])[0]}",
            "check that deb.debian.org is reachable, or pass a downloaded .deb with --tree",
        )


def fetch_source_package(series: str, progress: Progress | None = None) -> Path:
    """The ``linux-source-<series>`` .deb in kfunc's cache, downloaded if missing."""
    progress = progress or Progress()
    package = f"linux-source-{series}"
    dest = cache_dir("sources", "debs")
    found = sorted(dest.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    options: list[str] = []
    if not _known(package, options):
        options = private_apt_options()
        _refresh_private(options, progress)
        if not _known(package, options):
            suites = ", ".join(s for _, s in SUITES)
            raise KfuncError(
                f"{package}: not in Debian's {suites}",
                "pick a series Debian ships (5.10, 6.1, 6.12, ...) or pass a tarball with --tree",
            )
    progress.update(f"apt-get download {package}")
    proc = _run(["apt-get", *options, "-q", "download", package], cwd=dest)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not found:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("E:")]
        raise KfuncError(
            f"apt-get download {package}: {(errors or ['failed'])[0]}",
            f"run `apt-get update`, or copy the .deb into {dest}",
        )
    return found[-1]
