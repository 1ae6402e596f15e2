"""Debian root filesystems to build in, one per suite, for kernels whose build
tools cannot run on the host.

Debian's 7.x kbuild tools (fixdep, modpost, resolve_btfids) need glibc >= 2.38
and their headers ask for the compiler the kernel was built with (gcc-14 for
trixie-backports' 7.3): neither runs on a Debian 12 host (glibc 2.36, gcc-12).
So kbuild and clang run in a root filesystem of the kernel's own suite, made
once by ``mmdebstrap`` from Debian's packages into
``~/.cache/kfunc/rootfs/<suite>`` and reused.

A command runs there through ``unshare --mount`` + ``chroot``: /proc, /dev and
the directories it works on (kfunc's cache, the project) are bind-mounted at
the same paths inside, so every path means the same on both sides. The mounts
live in a mount namespace of that one process: the kernel drops them when it
exits, whatever way it exits, and nothing is ever mounted on the host.

mmdebstrap itself, run as root, mounts /proc, /sys and /dev inside the tree it
makes, and once left a ``proc`` mount behind on the host (its cleanup did not
run). It too runs in a mount namespace of its own (``unshare --mount``), and
every step that touched a root filesystem ends by checking
``/proc/self/mountinfo``: a mount left under kfunc's cache is an error.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kfunc.cache import cache_dir, disk_usage
from kfunc.errors import KfuncError, MissingToolError
from kfunc.kernels.apt import suite_sources
from kfunc.progress import Progress

__all__ = [
    "BASE_PACKAGES",
    "Rootfs",
    "RootfsError",
    "check_no_mounts",
    "ensure_rootfs",
    "known_rootfs",
    "mounts_under",
]

#: What every build root filesystem holds besides apt: kbuild's make, and the
#: BPF side (clang, libbpf's headers). The kernel adds its compiler and pahole.
BASE_PACKAGES = ("make", "clang", "libbpf-dev", "pahole")
_MARKER = "kfunc-rootfs.json"
_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class RootfsError(KfuncError):
    """A root filesystem could not be made, updated or used."""


@dataclass(frozen=True)
class Rootfs:
    """A Debian root filesystem of one suite in kfunc's cache."""

    suite: str
    path: Path

    @property
    def marker(self) -> Path:
        return self.path / "etc" / _MARKER

    @property
    def ready(self) -> bool:
        return self.marker.exists()

    def info(self) -> dict[str, object]:
        return dict(json.loads(self.marker.read_text())) if self.ready else {}

    def installed(self) -> set[str]:
        """Packages dpkg has installed there (read from its status file, no chroot)."""
        status = self.path / "var" / "lib" / "dpkg" / "status"
        found, name = set(), None
        for line in status.read_text(errors="replace").splitlines():
            if line.startswith("Package: "):
                name = line[9:].strip()
            elif line.startswith("Status: ") and line.endswith(" installed") and name:
                found.add(name)
        return found

    def command(
        self, argv: list[str], binds: Iterable[Path] = (), cwd: Path | None = None
    ) -> list[str]:
        """``argv`` to run inside, with ``binds`` mounted at their own paths.

        The command is ``unshare --mount`` running a shell that mounts /proc,
        /dev and the binds in its private namespace, then ``chroot``s.
        """
        root = str(self.path)
        script = [
            "set -e",
            f"mount -t proc proc {shlex.quote(root + '/proc')}",
            f"mount --bind /dev {shlex.quote(root + '/dev')}",
        ]
        for bind in dict.fromkeys(Path(b).resolve() for b in binds):
            inside = shlex.quote(root + str(bind))
            script += [f"mkdir -p {inside}", f"mount --bind {shlex.quote(str(bind))} {inside}"]
        inner = shlex.join(argv)
        if cwd is not None:
            inner = f"cd {shlex.quote(str(cwd))} && exec {inner}"
        script.append(
            f"exec chroot {shlex.quote(root)} /usr/bin/env -i PATH={_PATH} HOME=/root "
            f"LC_ALL=C.UTF-8 /bin/sh -c {shlex.quote(inner)}"
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)]

    def run(
        self, argv: list[str], binds: Iterable[Path] = (), cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside (see :meth:`command`) and capture its output."""
        _require_root(self.suite)
        try:
            return subprocess.run(
                self.command(argv, binds, cwd), capture_output=True, text=True, check=False
            )
        finally:
            check_no_mounts(self.path)

    def size(self) -> int:
        return disk_usage(self.path)


def _require_root(suite: str) -> None:
    if os.geteuid() != 0:
        raise RootfsError(
            f"rootfs {suite}: building in a root filesystem needs root (chroot, mounts)",
            "run kfunc as root (sudo)",
        )
    for tool in ("unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            raise MissingToolError(tool, "util-linux coreutils mount")


def _unescape(field: str) -> str:
    """A mountinfo path: the kernel writes space, tab, newline and \\ as octal."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    base = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as info:
        for line in info:
            point = _unescape(line.split(" ", 5)[4])
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return found


def check_no_mounts(path: Path) -> None:
    """Raise if anything is still mounted at or below ``path`` on the host."""
    left = mounts_under(path)
    if left:
        raise RootfsError(
            f"rootfs: {len(left)} mount(s) left on the host under {path}: {left[0]}",
            f"unmount them (umount -R {shlex.quote(left[0])}) and report this as a kfunc bug",
        )


def _rootfs_dir() -> Path:
    return cache_dir("rootfs")


def known_rootfs() -> list[Rootfs]:
    """The root filesystems in the cache (complete or not)."""
    return [
        Rootfs(p.name, p)
        for p in sorted(_rootfs_dir().iterdir())
        if p.is_dir() and p.name[0] != "."
    ]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_rootfs(suite: str, packages: Iterable[str], progress: Progress) -> Rootfs:
    """The root filesystem of ``suite`` with ``packages`` (and BASE_PACKAGES) installed.

    Made with mmdebstrap on first use; later calls install only what is
    missing, and nothing at all when everything is there.
    """
    rootfs = Rootfs(suite, _rootfs_dir() / suite)
    wanted = sorted({*BASE_PACKAGES, *packages})
    if rootfs.ready and not set(wanted) - rootfs.installed():
        return rootfs
    _require_root(suite)
    with _locked(_rootfs_dir() / f".{suite}.lock"):
        if not rootfs.ready:
            _create(rootfs, wanted, progress)
        missing = sorted(set(wanted) - rootfs.installed())
        if missing:
            _install(rootfs, missing, progress)
        check_no_mounts(rootfs.path)
    return rootfs


def _create(rootfs: Rootfs, packages: list[str], progress: Progress) -> None:
    if shutil.which("mmdebstrap") is None:
        raise MissingToolError("mmdebstrap", "mmdebstrap")
    tmp = rootfs.path.with_name(f".{rootfs.suite}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(rootfs.path, ignore_errors=True)  # an unfinished one
    sources = suite_sources(rootfs.suite)
    cmd = [
        # Its own mount namespace: whatever it mounts goes away with it.
        "unshare", "--mount", "--propagation", "private",
        "mmdebstrap", "--variant=apt", "--components=main",
        "--aptopt=Acquire::Languages \"none\"",
        # sid's Release file is valid for a week only: a mirror a little behind
        # (or a stored copy of one) is refused without this.
        "--aptopt=Acquire::Check-Valid-Until \"false\"",
        "--dpkgopt=path-exclude=/usr/share/{doc,man,locale}/*",
        f"--include={','.join(packages)}",
        rootfs.suite.split("-")[0], str(tmp), *sources,
    ]  # fmt: skip
    start = time.monotonic()
    progress.update(f"mmdebstrap {rootfs.suite}: {', '.join(packages)}")
    log: list[str] = []
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line.rstrip())
            if line.startswith("I: "):
                progress.update(f"mmdebstrap {rootfs.suite}: {line[3:].strip()}")
        proc.wait()
        if proc.returncode != 0:
            errors = [ln for ln in log if ln.startswith("E: ")] or log[-1:] or ["failed"]
            raise RootfsError(
                f"rootfs {rootfs.suite}: mmdebstrap failed: {errors[0].removeprefix('E: ')}",
                "check that deb.debian.org is reachable and the packages exist in "
                f"{rootfs.suite}; the full log: rerun with -v",
            )
        check_no_mounts(tmp)
        tmp.rename(rootfs.path)
    except BaseException:
        if not mounts_under(tmp):  # never rm -r through a mount
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    info = {
        "suite": rootfs.suite,
        "sources": sources,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.monotonic() - start, 1),
    }
    rootfs.marker.write_text(json.dumps(info, indent=2) + "\n")


def _install(rootfs: Rootfs, packages: list[str], progress: Progress) -> None:
    progress.update(f"rootfs {rootfs.suite}: apt-get install {' '.join(packages)}")
    for argv in (
        ["apt-get", "-q", "update"],
        ["apt-get", "-q", "install", "-y", "--no-install-recommends", *packages],
    ):
        proc = rootfs.run(["/usr/bin/env", "DEBIAN_FRONTEND=noninteractive", *argv])
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("E:")]
            raise RootfsError(
                f"rootfs {rootfs.suite}: {' '.join(argv[:2])}: {(errors or ['failed'])[0]}",
                f"check that deb.debian.org is reachable; `kfunc kernels --remove-rootfs "
                f"{rootfs.suite}` starts it afresh",
            )
