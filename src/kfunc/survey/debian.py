"""Debian's ``linux-source-X.Y`` packages, fetched for the survey and the
selftests (never installed).

The host's apt lists are tried first. A series they lack (5.10 lives in
bullseye, 7.x in trixie-backports and sid) is looked up through kfunc's
private apt setup (:mod:`kfunc.kernels.apt`), so the host's /etc/apt and
/var/lib/apt stay untouched. The package is fetched, at the version apt
offers, through kernels' one download path (:func:`kfunc.kernels.debian.fetch`).
"""

from __future__ import annotations

from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.errors import KfuncError
from kfunc.kernels.apt import SUITES, host_apt, private_apt
from kfunc.kernels.debian import candidate, fetch
from kfunc.progress import Progress

__all__ = ["SUITES", "fetch_source_package"]


def fetch_source_package(series: str, progress: Progress | None = None) -> Path:
    """The ``linux-source-<series>`` .deb of the version apt offers, in kfunc's
    cache (downloaded unless that very version is there already)."""
    progress = progress or Progress()
    name = f"linux-source-{series}"
    apt = host_apt()
    package = candidate(apt, name)
    if package is None:
        apt = private_apt()
        apt.refresh(progress)
        package = candidate(apt, name)
    if package is None:
        suites = ", ".join(s for _, s in SUITES)
        raise KfuncError(
            f"{name}: not in Debian's {suites}",
            "pick a series Debian ships (5.10, 6.1, 6.12, ...) or pass a tarball with --tree",
        )
    return fetch(apt, [package], cache_dir("sources", "debs"), progress)[0]
