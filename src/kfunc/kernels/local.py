"""Kernels the user has: an installed kernel, a kernel build tree, the running kernel.

``--kernel`` takes, besides Debian releases (:mod:`kfunc.kernels.target`):

- a path to an installed kernel's image, ``ROOT/boot/vmlinuz-<release>`` (or
  ``ROOT/usr/lib/modules/<release>/vmlinuz``), its modules in
  ``ROOT/lib/modules/<release>`` and its kbuild in ``ROOT/lib/modules/<release>/build``,
  as distributions install them. ``--kernel-root ROOT`` names another root
  than the one the path is in (a release or ``/boot/vmlinuz-<release>`` is
  then looked up there);
- a kernel build tree (``make bzImage modules`` done: ``arch/x86/boot/bzImage``,
  ``vmlinux``, ``Module.symvers``, ``.config``);
- ``host``: the running kernel, as installed in ``/boot``.

Each is a :class:`LocalKernel`: the same interface as a Debian target (the
image to boot, a kbuild tree, a vmlinux whose ``.BTF`` is the kernel's BTF,
its config), with kfunc's own data about it (the extracted vmlinux, kfunc
lists, probe results) in a cache directory of its own. Nothing is written
into the user's files: an installed kernel's kbuild is used through a
directory of links in the cache (its Makefile re-rooted where the kernel is
installed under another root, and its vmlinux the one with BTF).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfunc.cache import cache_dir, file_identity
from kfunc.errors import KernelNotFoundError, KfuncError
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels.target import LOCAL_KERNELS_DIR, Kernel
from kfunc.kernels.vmlinuz import bzimage_release, extract_vmlinux
from kfunc.progress import Progress

__all__ = [
    "HOST",
    "INSTALLED",
    "KFUNC_CONFIG",
    "TREE",
    "LocalKernel",
    "check_host_modules",
    "is_local_spec",
    "local_kernel",
    "missing_config",
    "program_config",
    "require_config",
    "rooted_spec",
]

HOST = "host"
INSTALLED = "installed"
TREE = "tree"
# What every target needs to build and load a module that registers kfuncs:
# loadable modules, and BTF of vmlinux and of modules (the kfunc set is
# resolved against the module's own BTF).
KFUNC_CONFIG = ("CONFIG_MODULES", "CONFIG_DEBUG_INFO_BTF", "CONFIG_DEBUG_INFO_BTF_MODULES")
# What programs of a section need of the kernel beyond that: libbpf attaches
# kprobes through the kprobe PMU or tracefs kprobe_events, both
# CONFIG_KPROBE_EVENTS (on CONFIG_KPROBES).
_SECTION_CONFIG = {
    ("kprobe", "kretprobe", "ksyscall", "kretsyscall"): ("CONFIG_KPROBES", "CONFIG_KPROBE_EVENTS"),
}
# The files a built tree has (after ``make bzImage modules``).
_TREE_FILES = ("Makefile", ".config", "vmlinux", "Module.symvers", "arch/x86/boot/bzImage")
_RESOLVE_BTFIDS = Path("tools/bpf/resolve_btfids/resolve_btfids")
_LOCAL_PREFIX = "local-"


@dataclass(frozen=True)
class LocalKernel(Kernel):
    """An installed kernel or a build tree; ``path`` is kfunc's cache directory for it."""

    kind: str = INSTALLED
    source: str = ""  # installed: its vmlinuz; tree: the tree's top directory
    system_root: str = "/"  # installed: the root it is installed in
    identity: tuple[str | int, ...] = ()  # the image's file identity when it was prepared

    @property
    def tree(self) -> Path:
        return Path(self.source)

    @property
    def root(self) -> Path:
        return self.tree if self.kind == TREE else Path(self.system_root)

    @property
    def vmlinuz(self) -> Path:
        return self.tree / "arch/x86/boot/bzImage" if self.kind == TREE else Path(self.source)

    @property
    def boot_path(self) -> Path:
        # virtme-ng boots a tree by its directory, and takes the guest's
        # modules from its modules.order / modules.builtin.
        return self.tree if self.kind == TREE else self.vmlinuz

    @property
    def system_map(self) -> Path:
        if self.kind == TREE:
            return self.tree / "System.map"
        return self.root / "boot" / f"System.map-{self.release}"

    @property
    def modules_dir(self) -> Path:
        merged = self.root / "usr/lib/modules" / self.release
        return merged if merged.is_dir() else self.root / "lib/modules" / self.release

    @property
    def kbuild(self) -> Path:
        """The kernel's own kbuild directory (``/lib/modules/<release>/build``), resolved
        inside its root."""
        if self.kind == TREE:
            return self.tree
        return _in_root(self.root, self.modules_dir / "build")

    @property
    def config(self) -> Path:
        if self.kind == TREE:
            return self.tree / ".config"
        boot = self.root / "boot" / f"config-{self.release}"
        merged = self.modules_dir / "config"
        return next((p for p in (boot, merged) if p.exists()), self.kbuild / ".config")

    @property
    def build_dir(self) -> Path:
        return self.tree if self.kind == TREE else self.path / "kbuild"

    @property
    def vmlinux(self) -> Path:
        return self.tree / "vmlinux" if self.kind == TREE else self.path / "vmlinux"

    def module_files(self) -> list[Path]:
        if self.kind != TREE:
            return super().module_files()
        # A tree's modules are where kbuild built them, listed in modules.order
        # (as .o files since 6.1, as .ko before).
        order = self.tree / "modules.order"
        names = order.read_text().split() if order.exists() else []
        kos = (self.tree / (n.removesuffix(".o").removesuffix(".ko") + ".ko") for n in names)
        return sorted(p for p in kos if p.exists())

    @property
    def key(self) -> str:
        return self.path.name

    @property
    def spec(self) -> str:
        return self.source

    def __str__(self) -> str:
        return f"{self.version} ({self.release}, {self.kind} {self.source})"

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "kind": self.kind,
            "source": self.source,
            "system_root": self.system_root,
            "identity": list(self.identity),
        }

    @classmethod
    def from_info(cls, info: dict[str, Any], path: Path) -> LocalKernel:
        return cls(
            info["release"], KernelVersion.parse(info["version"]), info["series"], path,
            kind=info["kind"], source=info["source"], system_root=info["system_root"],
            identity=tuple(info.get("identity", ())),
        )  # fmt: skip


def _in_root(root: Path, path: Path, links: int = 0) -> Path:
    """``path`` (under ``root``) with its symbolic links resolved as they are inside
    ``root``: an absolute link target is taken relative to ``root``."""
    if root == Path("/") or not path.is_relative_to(root):
        return path.resolve()  # a relative link out of the root is followed as it is
    parts = path.relative_to(root).parts
    here = root
    for i, part in enumerate(parts):
        here = here / part
        if here.is_symlink() and links < 40:
            link = Path(os.readlink(here))
            target = root / link.relative_to("/") if link.is_absolute() else here.parent / link
            rest = parts[i + 1 :]
            return _in_root(root, Path(os.path.normpath(target.joinpath(*rest))), links + 1)
    return here


def is_local_spec(spec: str) -> bool:
    """Whether ``--kernel spec`` names a local kernel (``host`` or a path), not a Debian one."""
    if spec == HOST or os.sep in spec or spec.startswith("."):
        return True
    # A directory or file here ("linux", "vmlinuz-6.12.1"), never a Debian name.
    return not spec[:1].isdigit() and not spec.startswith("linux-image-") and Path(spec).exists()


def rooted_spec(spec: str, root: str | None) -> str:
    """``--kernel spec --kernel-root root`` as one spec: the image's absolute path."""
    if root is None:
        return spec
    base = Path(root).resolve()
    if not base.is_dir():
        raise KernelNotFoundError(
            f"--kernel-root {root}: no such directory",
            "name the directory a kernel is installed in (it holds boot/ and lib/modules/)",
        )
    if spec == HOST:
        spec = os.uname().release
    path = Path(spec)
    if os.sep not in spec:  # a release
        candidates = [base / "boot" / f"vmlinuz-{spec}", base / f"usr/lib/modules/{spec}/vmlinuz"]
        found = next((p for p in candidates if p.exists()), candidates[0])
        return str(found)
    if path.is_absolute() and not path.resolve().is_relative_to(base):
        return str(base / path.relative_to("/"))
    return str(path.resolve())


def local_kernel(spec: str, progress: Progress | None = None) -> LocalKernel:
    """The local kernel ``spec`` names (``host``, an image, a tree), prepared once
    (and again when its image changes)."""
    progress = progress or Progress()
    if spec == HOST:
        return _host(progress)
    path = Path(spec)
    if path.is_dir():
        return _tree(Path(os.path.abspath(path)), progress)
    if path.is_file():
        return _installed(Path(os.path.abspath(path)), progress)
    raise KernelNotFoundError(
        f"kernel {spec}: no such file or directory",
        "pass an installed kernel's image (/boot/vmlinuz-RELEASE, with --kernel-root DIR for "
        "another root), a kernel build tree, 'host', or a Debian release (6.1, 6.12 ...)",
    )


def _host(progress: Progress) -> LocalKernel:
    release = os.uname().release
    image = next(
        (p for p in (Path("/boot") / f"vmlinuz-{release}",
                     Path("/usr/lib/modules") / release / "vmlinuz") if p.exists()),
        None,
    )  # fmt: skip
    if image is None:
        raise KernelNotFoundError(
            f"kernel host ({release}): the running kernel is not installed here "
            f"(no /boot/vmlinuz-{release} or /usr/lib/modules/{release}/vmlinuz)",
            f"install its image and headers (Debian: apt install linux-image-{release} "
            f"linux-headers-{release}), or target another kernel: --kernel 6.12",
        )
    return _installed(image, progress)


def _known(
    kind: str, source: Path, release: str, made: Path, root: Path = Path("/")
) -> tuple[LocalKernel, bool]:
    """The kernel at ``source``, and whether kfunc's data about it is current: it
    was prepared from the same ``made`` file (the image, the tree's vmlinux)."""
    identity = file_identity(made)
    digest = hashlib.sha256(f"{kind}\0{source}".encode()).hexdigest()[:12]
    path = cache_dir(LOCAL_KERNELS_DIR) / f"{_LOCAL_PREFIX}{kind}-{digest}"
    try:
        info = json.loads((path / "kernel.json").read_text())
    except (OSError, ValueError):
        info = {}
    if info.get("identity") == identity:
        return LocalKernel.from_info(info, path), True
    version = _version(release)
    kernel = LocalKernel(
        release, version, version.series, path,
        kind=kind, source=str(source), system_root=str(root), identity=tuple(identity),
    )  # fmt: skip
    return kernel, False


def _installed(image: Path, progress: Progress) -> LocalKernel:
    release = bzimage_release(image)
    root = _root_of(image, release)
    kernel, known = _known(INSTALLED, image, release, image, root)
    if known:
        return kernel
    path = kernel.path
    with progress.step(f"kernel {release}: reading the kernel installed in {root}"):
        if not kernel.modules_dir.is_dir():
            raise KernelNotFoundError(
                f"kernel {release}: no modules directory {kernel.modules_dir}",
                f"install its modules (the linux-image-{release} package), or pass "
                "--kernel-root DIR where it is installed",
            )
        if not (kernel.kbuild / "Makefile").exists():
            raise KernelNotFoundError(
                f"kernel {release}: no kbuild tree at {kernel.modules_dir / 'build'}",
                f"install its headers (Debian, Ubuntu: linux-headers-{release}; "
                "Fedora: kernel-devel; Arch: linux-headers)",
            )
        require_config(kernel, KFUNC_CONFIG, "kfunc's modules")
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        btf_from = _vmlinux_with_btf(kernel, progress)
        _link_kbuild(kernel, btf_from)
        _write(kernel)
    return kernel


def _root_of(image: Path, release: str) -> Path:
    """The root an image is installed in: ``ROOT/boot/vmlinuz-R`` or
    ``ROOT/usr/lib/modules/R/vmlinuz``."""
    if image.parent.name == "boot":
        return image.parent.parent
    if image.parent.name == release and image.parent.parent.name == "modules":
        lib = image.parent.parent.parent
        return lib.parent.parent if lib.parent.name == "usr" else lib.parent
    raise KernelNotFoundError(
        f"{image}: not where an installed kernel's image is (ROOT/boot/vmlinuz-{release} "
        f"or ROOT/usr/lib/modules/{release}/vmlinuz)",
        "pass the image where it is installed, or its release with --kernel-root DIR",
    )


def _version(release: str) -> KernelVersion:
    try:
        return KernelVersion.parse(release)
    except ValueError:
        raise KernelNotFoundError(
            f"kernel {release}: its release does not start with a version (X.Y)",
            "pass a Linux kernel image",
        ) from None


def _has_btf(path: Path) -> bool:
    from kfunc.elf import ElfObject

    try:
        return path.exists() and ElfObject(path).has_section(".BTF")
    except KfuncError:
        return False


def _vmlinux_with_btf(kernel: LocalKernel, progress: Progress) -> Path:
    """Put the kernel's vmlinux with ``.BTF`` at ``kernel.vmlinux``: out of its
    image, else its headers' vmlinux. Returns the one kbuild builds module BTF
    over: the headers' where it has BTF (and symbols), else the image's."""
    progress.update("extracting vmlinux from the image")
    try:
        extract_vmlinux(kernel.vmlinuz, kernel.vmlinux)
    except KfuncError:
        kernel.vmlinux.unlink(missing_ok=True)
    headers = kernel.kbuild / "vmlinux"
    if _has_btf(headers):
        # Debian's and Ubuntu's headers ship one with symbols (kfunc sets named),
        # the same kernel's BTF.
        if not _has_btf(kernel.vmlinux):
            kernel.vmlinux.unlink(missing_ok=True)
            kernel.vmlinux.symlink_to(headers)
        return headers
    if _has_btf(kernel.vmlinux):
        return kernel.vmlinux
    raise KfuncError(
        f"kernel {kernel.release}: no BTF in its image ({kernel.vmlinuz}) nor in its headers' "
        f"vmlinux ({headers})",
        "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu, Fedora and Arch "
        "kernels are)",
    )


def _link_kbuild(kernel: LocalKernel, btf_from: Path) -> None:
    """kfunc's view of the kernel's kbuild: a directory of links to it, whose
    Makefile includes the common tree where this root has it, and whose vmlinux
    has BTF (kbuild makes module BTF only over one)."""
    real = kernel.kbuild
    view = kernel.build_dir
    view.mkdir()
    for entry in real.iterdir():
        if entry.name in ("Makefile", "vmlinux"):
            continue
        (view / entry.name).symlink_to(entry)
    makefile = (real / "Makefile").read_text()
    if kernel.root != Path("/"):
        makefile = re.sub(
            r"^(include |KBUILD_OUTPUT=)/",
            rf"\g<1>{kernel.root}/",
            makefile,
            flags=re.M,
        )
    (view / "Makefile").write_text(makefile)
    (view / "vmlinux").symlink_to(btf_from.resolve())
    if not (view / _RESOLVE_BTFIDS).exists():
        raise KfuncError(
            f"kernel {kernel.release}: its kbuild ({real}) has no {_RESOLVE_BTFIDS}, which "
            "builds module BTF",
            "install the kernel's complete headers (Debian: linux-kbuild-*), or build the tree",
        )


def _tree(tree: Path, progress: Progress) -> LocalKernel:
    missing = [f for f in _TREE_FILES if not (tree / f).exists()]
    if len(missing) == len(_TREE_FILES):
        raise KernelNotFoundError(
            f"kernel {tree}: a directory, but not a kernel build tree (no {', '.join(missing)})",
            "pass a kernel tree, an installed kernel's image (/boot/vmlinuz-RELEASE), or a "
            "Debian release",
        )
    if missing:
        raise KernelNotFoundError(
            f"kernel {tree}: the tree is not built (no {', '.join(missing)})",
            f"build it: make -C {tree} bzImage modules",
        )
    release = (tree / "include/config/kernel.release").read_text().strip()
    kernel, known = _known(TREE, tree, release, tree / "vmlinux")
    if known:
        return kernel
    path = kernel.path
    with progress.step(f"kernel {release}: reading the tree {tree}"):
        require_config(kernel, KFUNC_CONFIG, "kfunc's modules")
        if not _has_btf(kernel.vmlinux):
            raise KfuncError(
                f"kernel {tree}: its vmlinux has no .BTF",
                f"build it with CONFIG_DEBUG_INFO_BTF=y: scripts/config -e DEBUG_INFO_BTF && "
                f"make -C {tree} olddefconfig bzImage modules",
            )
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        _write(kernel)
    return kernel


def _write(kernel: LocalKernel) -> None:
    (kernel.path / "kernel.json").write_text(json.dumps(kernel.to_dict(), indent=2) + "\n")


def missing_config(kernel: Kernel, options: tuple[str, ...]) -> list[str]:
    """Which of ``options`` the kernel's config does not set (=y or =m)."""
    try:
        text = kernel.config.read_text(errors="replace")
    except OSError:
        raise KfuncError(
            f"kernel {kernel.release}: no config to check ({kernel.config})",
            f"install its config as /boot/config-{kernel.release}, or pass a tree with .config",
        ) from None
    have = set(re.findall(r"^(CONFIG_\w+)=[ym]$", text, re.M))
    return [o for o in options if o not in have]


def require_config(kernel: Kernel, options: tuple[str, ...], what: str) -> None:
    """Refuse a kernel whose config lacks any of ``options`` (needed by ``what``)."""
    missing = missing_config(kernel, options)
    if missing:
        raise KfuncError(
            f"kernel {kernel.release}: {what} need {', '.join(missing)}, which its config "
            f"({kernel.config}) does not set",
            f"rebuild the kernel with {' '.join(m + '=y' for m in missing)}, or target "
            "another kernel (Debian's 6.12 has them all)",
        )


def check_host_modules(root: Path = Path("/")) -> None:
    """Refuse (KfuncError) where the running kernel cannot take kfunc's modules:
    no CONFIG_MODULES, module loading disabled, signatures enforced (kfunc's
    modules are unsigned), or lockdown (which enforces them too)."""
    release = os.uname().release
    where = f"the running kernel ({release})"
    guest = "run it in a guest instead: drop --on-host (kfunc run boots the target in a VM)"
    if not (root / "proc/modules").exists():
        raise KfuncError(
            f"--on-host: {where} cannot load modules: it is built without CONFIG_MODULES "
            "(no /proc/modules)",
            guest,
        )
    if _read(root / "proc/sys/kernel/modules_disabled") == "1":
        raise KfuncError(
            f"--on-host: {where} has module loading disabled (kernel.modules_disabled=1, "
            "until the next boot)",
            guest,
        )
    if _read(root / "sys/module/module/parameters/sig_enforce") == "Y":
        raise KfuncError(
            f"--on-host: {where} loads only signed modules (module.sig_enforce=Y) and kfunc's "
            "are unsigned",
            "sign the .ko with a key the kernel trusts (scripts/sign-file), or " + guest,
        )
    lockdown = re.search(r"\[(\w+)\]", _read(root / "sys/kernel/security/lockdown"))
    if lockdown and lockdown[1] != "none":
        raise KfuncError(
            f"--on-host: {where} is locked down ({lockdown[1]}): it loads only signed modules",
            "sign the .ko with a key the kernel trusts, disable Secure Boot's lockdown, or "
            + guest,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def program_config(sections: list[str]) -> tuple[str, ...]:
    """The config options BPF programs of ``sections`` need (kprobes for kprobe/...)."""
    needed: dict[str, None] = {}
    for prefixes, options in _SECTION_CONFIG.items():
        if any(re.split(r"[/.]", s, maxsplit=1)[0] in prefixes for s in sections):
            needed.update(dict.fromkeys(options))
    return tuple(needed)
