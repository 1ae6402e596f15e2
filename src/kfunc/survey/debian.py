"""Debian's ``linux-source-X.Y`` packages, fetched for the survey (never installed).

The host's apt lists are tried first. A series they lack (5.10 lives in
bullseye, 7.x in trixie-backports and sid) is looked up through kfunc's
private apt setup (:mod:`kfunc.kernels.apt`), so the host's /etc/apt and
/var/lib/apt stay untouched.
"""

from __future__ import annotations

from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.errors import KfuncError
from kfunc.kernels.apt import SUITES, Apt, AptError, host_apt, private_apt
from kfunc.progress import Progress

__all__ = ["SUITES", "fetch_source_package", "private_apt_options"]


def private_apt_options() -> list[str]:
    """``-o`` options that point apt at the private setup (created if missing)."""
    return private_apt().options


def _known(package: str, apt: Apt) -> bool:
    try:
        out = apt.query("show", "--no-all-versions", package)
    except AptError:
        return False
    return f"Package: {package}" in out


def fetch_source_package(series: str, progress: Progress | None = None) -> Path:
    """The ``linux-source-<series>`` .deb in kfunc's cache, downloaded if missing."""
    progress = progress or Progress()
    package = f"linux-source-{series}"
    dest = cache_dir("sources", "debs")
    found = sorted(dest.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    apt = host_apt()
    if not _known(package, apt):
        apt = private_apt()
        apt.refresh(progress)
        if not _known(package, apt):
            suites = ", ".join(s for _, s in SUITES)
            raise KfuncError(
                f"{package}: not in Debian's {suites}",
                "pick a series Debian ships (5.10, 6.1, 6.12, ...) or pass a tarball with --tree",
            )
    progress.update(f"apt-get download {package}")
    apt.download([package], dest)
    found = sorted(dest.glob(f"{package}_*.deb"))
    if not found:
        raise KfuncError(
            f"apt-get download {package}: no .deb in {dest}",
            f"run `apt-get update`, or copy the .deb into {dest}",
        )
    return found[-1]
