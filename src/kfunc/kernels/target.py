"""Target kernels: a Debian kernel named by version, unpacked into kfunc's cache.

A target holds everything kfunc needs of one kernel without booting it: the
bzImage to boot, its modules (for the VM's initramfs), a private kbuild tree
that builds modules with BTF, and the kernel's own vmlinux (taken out of the
bzImage) whose ``.BTF`` is the target's BTF.

Kernels of the host's suite (bookworm) come through the host's apt lists and
build on the host. Newer ones (7.3 from trixie-backports, 7.2 from sid) come
through kfunc's private apt lists, and where their build tools cannot run on
the host (glibc, compiler) they build in a root filesystem of their own suite
(:mod:`kfunc.kernels.rootfs`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfunc.cache import cache_dir, disk_usage
from kfunc.errors import KernelNotFoundError, UnsupportedFeatureError
from kfunc.kernel_api.hooks import MODULE_KFUNC_FEATURES, module_kfuncs_missing
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels import debian
from kfunc.kernels.apt import Apt, host_apt, private_apt
from kfunc.kernels.rootfs import Rootfs, ensure_rootfs
from kfunc.kernels.vmlinuz import extract_vmlinux
from kfunc.progress import Progress

__all__ = [
    "DEFAULT_KERNEL",
    "LOCAL_KERNELS_DIR",
    "SERIES",
    "Kernel",
    "Series",
    "cached_kernels",
    "find_release",
    "get_kernel",
    "known_kernels",
    "remove_kernel",
]


@dataclass(frozen=True)
class Series:
    """A kernel series Debian ships, and how its generic amd64 releases are named."""

    name: str
    release_pattern: str
    suite: str  # the Debian suite it comes from


SERIES: dict[str, Series] = {
    s.name: s
    for s in (
        Series("6.1", r"6\.1\.0-\d+-amd64", "bookworm"),
        Series("6.12", r"6\.12\.\d+\+deb12-amd64", "bookworm-security"),
        Series("7.2", r"7\.2\.\d+\+deb14-amd64", "sid"),
        Series("7.3", r"7\.3\.\d+\+deb13-amd64", "trixie-backports"),
    )
}
DEFAULT_KERNEL = "6.12"
# Where kfunc.kernels.local keeps its data about the user's kernels: beside
# kernels/, not in it, for a kfunc that predates them reads every
# kernels/*/kernel.json as a Debian kernel of its series.
LOCAL_KERNELS_DIR = "local-kernels"
# Debian's releases: 6.12.117+deb12-amd64 (the +debN names the distribution),
# and the older 6.1.0-56-amd64 (the ABI number of a stable release's kernel).
_RELEASE = re.compile(
    r"(?P<ver>\d+\.\d+\.\d+)\+deb(?P<deb>\d+)-amd64|(?P<abi>\d+\.\d+)\.0-\d+-amd64"
)
_DISTRO = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie", "14": "sid"}
_ABI_DISTRO = {"4.19": "buster", "5.10": "bullseye", "6.1": "bookworm"}
_RESOLVE_BTFIDS = Path("tools/bpf/resolve_btfids/resolve_btfids")


@dataclass(frozen=True)
class Kernel:
    """One unpacked target kernel."""

    release: str  # uname -r of the target, e.g. 6.12.117+deb12-amd64
    version: KernelVersion  # e.g. 6.12.117 (from the package version)
    series: str
    path: Path  # the kernel's directory in the cache
    suite: str = ""  # the Debian suite its packages came from
    rootfs: str | None = None  # the suite of the root filesystem it builds in, if not the host
    rootfs_packages: tuple[str, ...] = ()  # what its kbuild needs there (compiler, pahole ...)

    @property
    def root(self) -> Path:
        """The unpacked packages, laid out as a root filesystem."""
        return self.path / "root"

    def _boot_file(self, name: str) -> Path:
        # 7.x packages keep them in /usr/lib/modules/<release>/ (vmlinuz,
        # System.map, config); older ones in /boot/<name>-<release>.
        merged = self.root / "usr" / "lib" / "modules" / self.release / name
        return merged if merged.exists() else self.root / "boot" / f"{name}-{self.release}"

    @property
    def vmlinuz(self) -> Path:
        return self._boot_file("vmlinuz")

    @property
    def system_map(self) -> Path:
        return self._boot_file("System.map")

    @property
    def config(self) -> Path:
        return self._boot_file("config")

    @property
    def build_dir(self) -> Path:
        """The private kbuild tree (Debian's headers, made to build with BTF)."""
        return self.root / "usr" / "src" / f"linux-headers-{self.release}"

    @property
    def vmlinux(self) -> Path:
        """The target's vmlinux ELF, taken out of the bzImage: its ``.BTF`` is the kernel BTF."""
        return self.path / "vmlinux"

    @property
    def boot_path(self) -> Path:
        """What virtme-ng boots: the image (a kernel tree boots by its directory)."""
        return self.vmlinuz

    @property
    def modules_dir(self) -> Path:
        """``/lib/modules/<release>`` of the kernel."""
        return self.root / "lib" / "modules" / self.release

    def module_files(self) -> list[Path]:
        """The kernel's loadable modules (.ko, .ko.xz ...), sorted."""
        return sorted((self.modules_dir / "kernel").rglob("*.ko*"))

    @property
    def spec(self) -> str:
        """The ``--kernel`` argument that names this kernel."""
        return self.release

    @property
    def key(self) -> str:
        """What tells this kernel from every other in kfunc's cache (builds are keyed by it)."""
        return self.release

    def __str__(self) -> str:
        return f"{self.version} ({self.release})"

    @property
    def build_root(self) -> Rootfs | None:
        """The root filesystem kbuild and clang run in; None: the host."""
        if self.rootfs is None:
            return None
        return Rootfs(self.rootfs, cache_dir("rootfs") / self.rootfs)

    def tool_command(
        self, argv: list[str], binds: tuple[Path, ...] = (), cwd: Path | None = None
    ) -> list[str]:
        """``argv`` (make, clang ...) as it runs for this kernel: on the host, or in
        its root filesystem with kfunc's cache and ``binds`` mounted at their paths
        (there from ``cwd``, which the caller also runs it in on the host)."""
        root = self.build_root
        return argv if root is None else root.command(argv, (cache_dir(), *binds), cwd)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "debian",
            "release": self.release,
            "version": str(self.version),
            "series": self.series,
            "suite": self.suite,
            "rootfs": self.rootfs,
            "rootfs_packages": list(self.rootfs_packages),
        }

    @classmethod
    def from_dict(cls, info: dict[str, Any], path: Path) -> Kernel:
        if info.get("kind", "debian") != "debian":
            from kfunc.kernels.local import LocalKernel

            return LocalKernel.from_info(info, path)
        return cls(
            info["release"],
            KernelVersion.parse(info["version"]),
            info["series"],
            path,
            info.get("suite", ""),
            info.get("rootfs"),
            tuple(info.get("rootfs_packages", ())),
        )


def known_kernels() -> list[str]:
    """The names ``--kernel`` accepts besides exact releases."""
    return list(SERIES)


def _kernels_dir() -> Path:
    return cache_dir("kernels")


def cached_kernels(
    series: str | None = None, release: str | None = None, *, local: bool = False
) -> list[Kernel]:
    """The prepared Debian kernels in the cache, newest first; with ``local``, the
    local kernels used (installed ones, trees) too."""
    found = []
    metas = list(_kernels_dir().glob("*/kernel.json"))
    if local:
        metas += cache_dir(LOCAL_KERNELS_DIR).glob("*/kernel.json")
    for meta in metas:
        info = json.loads(meta.read_text())
        if info.get("kind", "debian") != "debian" and not local:
            continue
        if (series is None or info["series"] == series) and (
            release is None or info["release"] == release
        ):
            found.append(Kernel.from_dict(info, meta.parent))
    return sorted(found, key=lambda k: k.version, reverse=True)


def _series_of_release(release: str) -> Series | None:
    """The catalog's series of an exact release, or an ad-hoc one for any other
    release Debian names in its usual way (7.2.12+deb13-amd64 ...)."""
    known = next((s for s in SERIES.values() if re.fullmatch(s.release_pattern, release)), None)
    if known is not None:
        return known
    m = _RELEASE.fullmatch(release)
    if m is None:
        return None
    if m["abi"]:
        return Series(m["abi"], re.escape(release), _ABI_DISTRO.get(m["abi"], "?"))
    return Series(
        KernelVersion.parse(m["ver"]).series, re.escape(release), _DISTRO.get(m["deb"], "?")
    )


def _distro(release: str) -> str | None:
    m = _RELEASE.fullmatch(release)
    if m is None:
        return None
    return _ABI_DISTRO.get(m["abi"]) if m["abi"] else _DISTRO.get(m["deb"])


_MODULE_NEEDS = " and ".join(f"{n} ({c.release.series})" for n, c in MODULE_KFUNC_FEATURES)


def _refuse_old(name: str) -> None:
    """UnsupportedFeatureError for a kernel named ``name`` that predates module kfuncs."""
    try:
        version = KernelVersion.parse(name)
    except ValueError:
        return
    missing = module_kfuncs_missing(version)
    if missing is not None:
        feature, since = missing
        raise UnsupportedFeatureError(
            feature,
            since.series,
            f"{name} ({version.series})" if name != version.series else name,
            f"kfunc's modules need {_MODULE_NEEDS}: target {' or '.join(SERIES)}",
        )


def _host_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return ""
    m = re.search(r"^VERSION_CODENAME=(\S+)", text, re.M)
    return m[1] if m else ""


def find_release(
    series: Series, release: str | None, progress: Progress
) -> tuple[debian.Package, Apt] | None:
    """The newest image package of ``series`` (or ``release``), and the apt that has it:
    the host's lists first for the host's own suite, then kfunc's private ones."""
    pattern = re.escape(release) if release else series.release_pattern
    if series.suite.split("-")[0] in (_host_codename(), "?"):
        images = debian.find_images(host_apt(), pattern)
        if images:
            return images[0], host_apt()
    apt = private_apt()
    apt.refresh(progress)
    images = debian.find_images(apt, pattern)
    return (images[0], apt) if images else None


def get_kernel(name: str = DEFAULT_KERNEL, progress: Progress | None = None) -> Kernel:
    """Return the target kernel ``name``, fetching and preparing it on first use.

    ``name`` is a series (``6.1``, ``6.12``, ``7.2``, ``7.3``: the newest Debian
    release of it), an exact release (``6.12.117+deb12-amd64``), or a kernel
    the user has (``host``, an installed image, a build tree: see
    :mod:`kfunc.kernels.local`). A kernel
    already in the cache is used without asking apt. A kernel older than
    module kfuncs (Debian's 5.10) is refused before anything is downloaded.
    """
    progress = progress or Progress()
    from kfunc.kernels.local import is_local_spec, local_kernel

    if is_local_spec(name):
        return local_kernel(name, progress)
    name = name.removeprefix("linux-image-")
    series: Series | None
    if name in SERIES:
        series, release = SERIES[name], None
    else:
        _refuse_old(name)
        series, release = _series_of_release(name), name
    if series is None:
        raise KernelNotFoundError(
            f"kernel '{name}': unknown",
            f"use one of {', '.join(SERIES)}, or an exact Debian release such as "
            "6.12.117+deb12-amd64",
        )
    cached = cached_kernels(series.name, release)
    if cached:
        kernel = cached[0]
        if kernel.rootfs is not None:
            ensure_rootfs(kernel.rootfs, kernel.rootfs_packages, progress)
        return kernel
    found = find_release(series, release, progress)
    if found is None:
        raise KernelNotFoundError(
            f"kernel '{name}': no Debian package linux-image-{release or series.name + '*'} "
            f"(looked in the host's apt lists and kfunc's, {series.suite} included)",
            "check the name (`kfunc kernels` lists what Debian has); "
            "`kfunc kernels --refresh` updates kfunc's apt lists",
        )
    return _prepare(series, *found, progress)


def remove_kernel(kernel: Kernel) -> int:
    """Remove a kernel and its module builds from the cache; returns the bytes freed."""
    freed = 0
    for path in (kernel.path, cache_dir("builds") / kernel.key):
        if path.exists():
            freed += disk_usage(path)
            shutil.rmtree(path)
    return freed


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _host_glibc() -> KernelVersion:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):
        text = ""
    return KernelVersion.parse(text.split()[-1]) if text else KernelVersion(0, 0)


def _needs_rootfs(headers: dict[str, str], kbuild: dict[str, str]) -> str | None:
    """Why the kernel's build tools cannot run on the host, or None if they can."""
    libc = kbuild.get("libc6", "")
    m = re.match(r">=\s*(\d+\.\d+)", libc)
    if m and KernelVersion.parse(m[1]) > _host_glibc():
        return f"its kbuild tools need glibc >= {m[1]}, the host has {_host_glibc().series}"
    for dep in headers:
        cm = re.search(r"gcc-(\d+)", dep)
        if cm and not (
            shutil.which(f"x86_64-linux-gnu-gcc-{cm[1]}") or shutil.which(f"gcc-{cm[1]}")
        ):
            return f"it is built with gcc-{cm[1]}, which the host lacks"
    return None


def _prepare(series: Series, image: debian.Package, apt: Apt, progress: Progress) -> Kernel:
    release = image.name.removeprefix("linux-image-")
    path = _kernels_dir() / release
    with _locked(_kernels_dir() / f".{release}.lock"):
        if (path / "kernel.json").exists():
            return Kernel.from_dict(json.loads((path / "kernel.json").read_text()), path)
        with progress.step(f"kernel {release}: fetching Debian packages ({series.suite})"):
            headers = f"linux-headers-{release}"
            # 7.x's linux-image is a metapackage: the bzImage is in
            # linux-binary-*, the modules in linux-modules-*, System.map and
            # config in linux-base-*.
            # Each package at the version its dependent asks for (linux-kbuild-6.1
            # serves every 6.1 release: only its version tells them apart).
            wanted = {image.name: f"= {image.version}", headers: ""}
            for name, relation in debian.depends(apt, image.name, image.version).items():
                if name.startswith(("linux-binary-", "linux-modules-")):
                    wanted.setdefault(name, relation)
            header_deps = debian.depends(apt, headers)
            for name, relation in header_deps.items():
                if name.startswith(("linux-headers-", "linux-kbuild-", "linux-base-")):
                    wanted.setdefault(name, relation)
            kbuild = next((n for n in header_deps if n.startswith("linux-kbuild-")), None)
            kbuild_deps = debian.depends(apt, kbuild) if kbuild else {}
            why = _needs_rootfs(header_deps, kbuild_deps)
            rootfs = _distro(release) if why else None
            tools = tuple(
                sorted(n for n in {**header_deps, **kbuild_deps} if not n.startswith("linux-"))
            )
            kernel = Kernel(
                release, image.kernel_version, series.name, path, series.suite,
                rootfs, tools if rootfs else (),
            )  # fmt: skip
            packages = [debian.choose(apt, name, relation) for name, relation in wanted.items()]
            debs = debian.fetch(apt, packages, cache_dir("debs"), progress)
            shutil.rmtree(kernel.path, ignore_errors=True)
            debian.unpack(debs, kernel.root, progress)
        if rootfs is not None:
            with progress.step(f"rootfs {rootfs}: a {rootfs} root filesystem to build in") as step:
                progress.note(f"kernel {release}: building in a {rootfs} root filesystem: {why}")
                fs = ensure_rootfs(rootfs, kernel.rootfs_packages, progress)
                step.summary = f"rootfs {rootfs} ({fs.path})"
        with progress.step(f"kernel {release}: preparing a private kbuild tree with BTF"):
            _prepare_build_tree(kernel, progress)
        (kernel.path / "kernel.json").write_text(json.dumps(kernel.to_dict(), indent=2) + "\n")
    return kernel


def _prepare_build_tree(kernel: Kernel, progress: Progress) -> None:
    build = kernel.build_dir
    # 7.x's packages are /usr-merged (usr/lib/modules only): give the tree the
    # /lib of a merged system, for depmod and virtme-ng.
    if (kernel.root / "usr" / "lib" / "modules").is_dir() and not (kernel.root / "lib").exists():
        (kernel.root / "lib").symlink_to("usr/lib")
    # Debian's arch Makefile includes the common tree by absolute path (and
    # 7.x's sets KBUILD_OUTPUT to its own): point them at our unpacked copy,
    # so nothing in the host's /usr/src is used.
    makefile = build / "Makefile"
    makefile.write_text(
        re.sub(
            r"^(include |KBUILD_OUTPUT=)/usr/src/",
            rf"\g<1>{kernel.root}/usr/src/",
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
    images = debian.find_images(host_apt(), SERIES[DEFAULT_KERNEL].release_pattern)
    if not images:
        raise KernelNotFoundError(
            f"kernel {kernel.release}: kbuild lacks resolve_btfids and no "
            f"linux-kbuild-{DEFAULT_KERNEL}* package can provide it",
            "run `apt-get update` (as root)",
        )
    headers = f"linux-headers-{images[0].name.removeprefix('linux-image-')}"
    kbuild = [
        debian.choose(host_apt(), name, relation)
        for name, relation in debian.depends(host_apt(), headers).items()
        if name.startswith("linux-kbuild-")
    ]
    debs = debian.fetch(host_apt(), kbuild, cache_dir("debs"), progress)
    with tempfile.TemporaryDirectory(dir=donors) as tmp:
        debian.unpack(debs, Path(tmp), progress)
        found = next(Path(tmp).glob(f"usr/lib/linux-kbuild-*/{_RESOLVE_BTFIDS}"), None)
        if found is None:
            raise KernelNotFoundError(f"{debs[0].name}: has no {_RESOLVE_BTFIDS}")
        shutil.copy2(found, tool)
    return tool
