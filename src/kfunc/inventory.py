"""A kernel's kfunc inventory: every kfunc with its C prototype, owner and KF_* flags.

Kernels say which functions are kfuncs in two ways, and kfunc reads both:

- BTF decl tags: pahole >= 1.27 tags each kfunc's FUNC with ``bpf_kfunc``
  (:mod:`kfunc.kernel_api.btf_tags`). The tags carry no KF_* flags.
- The kfunc ID sets in ``.BTF_ids`` (``BTF_KFUNCS_START``, before 6.9
  ``BTF_SET8_START``): a ``btf_id_set8`` of (BTF id, KF_* flags) pairs that
  ``resolve_btfids`` filled in. Module sets are found by their
  ``__BTF_ID__set8__`` symbols. A vmlinux taken out of a bzImage has no
  symbols (and Debian's System.map is a placeholder), so its sets are found by
  :func:`kfunc.btf.ids.scan_set8`, a validated scan of the section.

Where the BTF has tags they say which functions are kfuncs, and the sets of the
same ELF file give their flags; otherwise the sets alone. Raw BTF (the running
kernel's ``/sys/kernel/btf/vmlinux``) has tags but no ``.BTF_ids``: no flags. Listings of whole
kernels are cached as JSON: a target's in its cache directory, a file's keyed
by its path, size, mtime and first bytes.

A listing is read far more often than it is made, so what only making one
needs is imported only there: the BTF reader where BTF is parsed,
``kfunc.elf`` (pyelftools) where an ELF file is read, the kernel targets
where a kernel is. A cached ``kfunc ls`` imports none of them.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kfunc.btf.kernel import SYS_BTF
from kfunc.cache import cache_dir, file_identity, read_json, record_name, write_json
from kfunc.errors import BTFError, ELFError, KfuncError
from kfunc.inputs import check_file, os_error, read_bytes, read_head
from kfunc.kernel_api.btf_tags import KFUNC_DECL_TAG

if TYPE_CHECKING:
    from kfunc.btf.ids import BTFIdSet
    from kfunc.btf.parse import BTF
    from kfunc.elf import ElfObject
    from kfunc.kernels.target import Kernel
    from kfunc.progress import Progress

__all__ = [
    "HOST",
    "SOURCE_BOTH",
    "SOURCE_BTF_IDS",
    "SOURCE_DECL_TAG",
    "VMLINUX",
    "Inventory",
    "Kfunc",
    "PublicForm",
    "default_base",
    "elf_kfuncs",
    "file_inventory",
    "helper_count",
    "host_files",
    "host_inventory",
    "inventory_of",
    "kernel_inventory",
    "kfunc_sets",
    "ksym_header",
    "merge_flags",
    "module_base",
    "module_name",
    "modules_dir",
    "public_form",
    "set_kfuncs",
    "tagged_kfuncs",
]

VMLINUX = "vmlinux"
#: The running kernel, as :func:`inventory_of` names it.
HOST = "host"
SOURCE_DECL_TAG = "decl_tag"
SOURCE_BTF_IDS = "btf_ids"
SOURCE_BOTH = "decl_tag+btf_ids"

#: Bumped whenever what an inventory holds changes, to invalidate caches.
_CACHE_VERSION = 2  # 2: decl tags merged with the .BTF_ids sets' flags
_ELF_MAGIC = b"\x7fELF"


class Kfunc(NamedTuple):
    """One kfunc. ``flags`` are KF_* names, None where the source has none (decl
    tags); ``sets`` names the ID sets holding it (``.BTF_ids+0x1a8`` for a set
    found by scanning); ``source`` is ``decl_tag`` or ``btf_ids``."""

    name: str
    prototype: str
    owner: str
    flags: tuple[str, ...] | None
    sets: tuple[str, ...]
    source: str

    def extern(self, weak: bool = False) -> str:
        """``extern <prototype> __ksym;`` (``__ksym __weak`` with ``weak``): see
        :func:`kfunc.btf.render.ksym_declaration`."""
        from kfunc.btf.render import ksym_declaration

        return ksym_declaration(self.prototype, weak)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "prototype": self.prototype,
            "owner": self.owner,
            "flags": None if self.flags is None else list(self.flags),
            "sets": list(self.sets),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Kfunc:
        flags = d["flags"]
        return cls(
            d["name"],
            d["prototype"],
            d["owner"],
            None if flags is None else tuple(flags),
            tuple(d["sets"]),
            d["source"],
        )


class Inventory(NamedTuple):
    """The kfuncs of one target (a kernel, a BTF or ELF file, a module), sorted
    vmlinux first, then by owner and name; ``helpers`` is the number of BPF
    helpers (``enum bpf_func_id``) of its vmlinux, None if its BTF lacks it."""

    target: str
    kfuncs: tuple[Kfunc, ...]
    helpers: int | None

    def select(self, module: str | None = None, names: Iterable[str] = ()) -> Inventory:
        """The kfuncs owned by ``module`` (``vmlinux`` or a module name) and named
        in ``names`` (all if empty); an unknown name raises KfuncError."""
        kfuncs = self.kfuncs
        if module is not None:
            kfuncs = tuple(k for k in kfuncs if k.owner == module.replace("-", "_"))
            if not kfuncs:
                owners = sorted({k.owner for k in self.kfuncs})
                raise KfuncError(
                    f"{self.target}: no kfuncs owned by {module!r}",
                    f"pick one of: {', '.join(owners)}" if owners else None,
                )
        wanted = list(dict.fromkeys(names))
        if wanted:
            by_name = {k.name: k for k in kfuncs}
            missing = [n for n in wanted if n not in by_name]
            if missing:
                raise KfuncError(
                    f"{self.target}: no kfunc {', '.join(missing)}",
                    "list the available ones with `kfunc ls` (same selectors)",
                )
            kfuncs = tuple(by_name[n] for n in wanted)
        return Inventory(self.target, kfuncs, self.helpers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "helpers": self.helpers,
            "kfuncs": [k.to_dict() for k in self.kfuncs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Inventory:
        return cls(d["target"], tuple(Kfunc.from_dict(k) for k in d["kfuncs"]), d["helpers"])


def _sorted(kfuncs: Iterable[Kfunc]) -> tuple[Kfunc, ...]:
    return tuple(sorted(kfuncs, key=lambda k: (k.owner != VMLINUX, k.owner, k.name)))


def helper_count(btf: BTF) -> int | None:
    """The number of BPF helpers: the enumerators of ``enum bpf_func_id``, less its
    ``__BPF_FUNC_MAX_ID`` sentinel (``BPF_FUNC_unspec``, id 0, counts as in
    the kernel's own ``__BPF_FUNC_MAX_ID``). None if the BTF has no such enum."""
    from kfunc.btf.types import Enum

    enum = btf.find("bpf_func_id", Enum)
    if enum is None:
        return None
    return sum(1 for v in enum.values if v.name != "__BPF_FUNC_MAX_ID")


def ksym_header(kfuncs: Iterable[Kfunc], weak: bool = False, guard: str = "__KFUNCS_H__") -> str:
    """A C header declaring ``kfuncs`` for a BPF program, to include after
    vmlinux.h (which defines the types the prototypes use). ``weak`` declares
    them ``__weak`` so a program loads where some are missing (test with
    ``bpf_ksym_exists()``)."""
    lines = [
        "/* Generated by kfunc: kfunc declarations; include after vmlinux.h. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#ifndef __ksym",
        '#define __ksym __attribute__((section(".ksyms")))',
        "#endif",
    ]
    if weak:
        lines += ["#ifndef __weak", "#define __weak __attribute__((weak))", "#endif"]
    lines.append("")
    owner = None
    for k in kfuncs:
        if k.owner != owner:
            owner = k.owner
            lines.append(f"/* {owner} */")
        flags = f" /* {' | '.join(k.flags)} */" if k.flags else ""
        lines.append(k.extern(weak) + flags)
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)


# --- how users call a kfunc ---------------------------------------------------------

#: The implicit arguments of an ``_impl`` kfunc, which the verifier fills in:
#: ``void *meta__ign`` (the type's record) and ``u64 off`` (the node's offset).
#: Before 7.0 bpf_experimental.h's macros pass them (``bpf_obj_new(type)`` is
#: ``bpf_obj_new_impl(bpf_core_type_id_local(type), NULL)``); from 7.0 the
#: kernel exports the public kfunc itself, flagged KF_IMPLICIT_ARGS, and keeps
#: the ``_impl`` one for older programs (7.3's kernel/bpf/verifier.c,
#: find_kfunc_impl_proto).
_IMPLICIT = re.compile(r",\s*void \*\w+__ign(?:,\s*u64 off)?\)$")


class PublicForm(NamedTuple):
    """How a program calls an ``_impl`` kfunc: ``name``, its user-facing
    ``prototype`` (implicit arguments hidden), and ``how`` (``kfunc``: the kernel
    exports it with KF_IMPLICIT_ARGS; ``macro``: bpf_experimental.h's)."""

    name: str
    prototype: str
    how: str


def public_form(k: Kfunc, inventory: Iterable[Kfunc]) -> PublicForm | None:
    """The public form of ``k`` if it is an ``_impl`` kfunc, else None."""
    if not k.name.endswith("_impl"):
        return None
    name = k.name.removesuffix("_impl")
    for other in inventory:
        if other.name == name and "KF_IMPLICIT_ARGS" in (other.flags or ()):
            return PublicForm(name, other.prototype, "kfunc")
    proto = _IMPLICIT.sub(")", k.prototype).replace(f"{k.name}(", f"{name}(", 1)
    return PublicForm(name, proto, "macro")


# --- kfuncs from BTF decl tags -------------------------------------------------


def tagged_kfuncs(btf: BTF, owner: str) -> list[Kfunc]:
    """This BTF's own FUNCs tagged ``bpf_kfunc`` (pahole >= 1.27), unsorted."""
    from kfunc.btf.render import func_prototype

    return [
        Kfunc(f.name, func_prototype(btf, f), owner, None, (), SOURCE_DECL_TAG)
        for f in btf.funcs(KFUNC_DECL_TAG)
    ]


# --- kfuncs from .BTF_ids sets ---------------------------------------------------


def kfunc_sets(sets: Iterable[BTFIdSet]) -> list[BTFIdSet]:
    """The kfunc sets among ``sets``: every set8 or, where any set8 carries the
    BTF_SET8_KFUNCS flag (6.9+, ``BTF_KFUNCS_START``), only those. Before 6.9 an
    fmodret set (``register_btf_fmodret_id_set``) looks the same and is kept."""
    from kfunc.kernel_api.flags import BTF_SET8_KFUNCS

    set8 = [s for s in sets if s.set8]
    if any(s.flags & BTF_SET8_KFUNCS for s in set8):
        return [s for s in set8 if s.flags & BTF_SET8_KFUNCS]
    return set8


def set_kfuncs(btf: BTF, sets: Iterable[BTFIdSet], owner: str) -> list[Kfunc]:
    """The FUNCs of ``btf`` named by the kfunc ``sets``, unsorted; a kfunc in
    several sets is listed once with the union of its flags."""
    from kfunc.btf import format as fmt
    from kfunc.btf.render import func_prototype
    from kfunc.btf.types import Func
    from kfunc.kernel_api.flags import kf_flag_names

    found: dict[int, tuple[int, list[str]]] = {}
    for s in sets:
        for entry in s.entries:
            fid = entry.btf_id
            if fid < btf.start_id or fid >= len(btf) or btf.kind(fid) != fmt.BTF_KIND_FUNC:
                continue  # 0 (not resolved at build time) or another BTF's id
            flags, names = found.get(fid, (0, []))
            found[fid] = (flags | entry.flags, [*names, s.name])
    out = []
    for fid, (flags, names) in found.items():
        func = btf[fid]
        assert isinstance(func, Func)
        out.append(
            Kfunc(
                func.name,
                func_prototype(btf, func),
                owner,
                tuple(kf_flag_names(flags)),
                tuple(dict.fromkeys(names)),
                SOURCE_BTF_IDS,
            )
        )
    return out


# --- files ----------------------------------------------------------------------


def elf_kfuncs(elf: ElfObject, btf: BTF, owner: str) -> list[Kfunc]:
    """The kfuncs an ELF file defines: by decl tags where its BTF has them, with the
    KF_* flags of the ``.BTF_ids`` kfunc sets that hold them (see :func:`kfunc_sets`
    and :func:`merge_flags`); by the sets alone where the BTF has no tags."""
    from_sets = set_kfuncs(btf, kfunc_sets(elf.btf_id_sets(btf)), owner)
    tagged = tagged_kfuncs(btf, owner)
    return merge_flags(tagged, from_sets) if tagged else from_sets


def merge_flags(tagged: list[Kfunc], from_sets: list[Kfunc]) -> list[Kfunc]:
    """Tagged kfuncs with the flags and sets of the set entries of the same name
    (source ``decl_tag+btf_ids``); a tagged kfunc in no set keeps ``None`` flags
    (unknown), a set's kfunc without a tag is kept as the set has it."""
    by_name = {k.name: k for k in from_sets}
    out = []
    for k in tagged:
        s = by_name.pop(k.name, None)
        out.append(k if s is None else k._replace(flags=s.flags, sets=s.sets, source=SOURCE_BOTH))
    return out + list(by_name.values())


def module_name(path: Path) -> str:
    """A module's name from its file, as the kernel spells it (``nf_conntrack``)."""
    name = path.name
    for suffix in (".xz", ".gz", ".zst", ".ko"):
        name = name.removesuffix(suffix)
    return name.replace("-", "_")


def _is_elf(path: Path, head: bytes) -> bool:
    return head.startswith(_ELF_MAGIC) or path.suffix in (".xz", ".gz", ".zst")


def _load_btf(path: Path, base: BTF | None) -> tuple[BTF, ElfObject | None]:
    """The BTF of a raw BTF file or of an ELF file's ``.BTF`` (and the ELF)."""
    from kfunc.elf import ElfObject

    if not stat.S_ISREG(check_file(path, "elf").st_mode):
        # A FIFO or a device is read once (up to a module's cap), then told apart.
        data = read_bytes(path, "btf")
        if _is_elf(path, data[:4]):
            elf = ElfObject(path, data)
            return elf.btf(base, validate=False), elf
    elif _is_elf(path, read_head(path)):
        elf = ElfObject(path)
        return elf.btf(base, validate=False), elf
    else:
        data = read_bytes(path, "btf")
    from kfunc.btf.parse import parse_btf

    return parse_btf(data, base, name=str(path), validate=False), None


def file_inventory(
    path: str | os.PathLike[str], base: str | os.PathLike[str] | None = None, cache: bool = True
) -> Inventory:
    """The kfuncs of a file: raw BTF (``/sys/kernel/btf/*``, a ``.BTF`` dump) or
    an ELF file (vmlinux, a .ko, compressed or not). Split BTF (a module's) needs
    ``base``, its vmlinux (raw BTF or ELF); a .ko without one gets the vmlinux of
    the kernel its ``vermagic`` names (see :func:`module_base`).

    With ``cache``, the answer is kept under kfunc's cache, valid while each
    file keeps its path, size, mtime and first 4 KiB.
    """
    path = _existing(path)
    base_path: Path | None
    if base is not None:
        base_path = _existing(base)
        _check_base(path, base_path)
    else:
        base_path = default_base(path)
    keyed = [path] if base_path is None else [path, base_path]
    try:
        # Only regular files have an identity: a FIFO's content is read once.
        ident = [file_identity(p) for p in keyed] if all(p.is_file() for p in keyed) else None
    except OSError as e:
        raise os_error(str(e.filename), e) from None
    store = None
    if cache and ident is not None:
        try:
            store = cache_dir("inventory") / record_name([_CACHE_VERSION, ident])
        except KfuncError:  # an unusable cache only costs the next run its speed
            store = None
    if store is not None:
        cached = read_json(store)
        if cached and cached.get("version") == _CACHE_VERSION and cached.get("files") == ident:
            return Inventory.from_dict(cached["inventory"])
    base_btf = _load_btf(base_path, None)[0] if base_path is not None else None
    btf, elf = _load_btf(path, base_btf)
    if base_path is not None and elf is not None:
        _check_sets_resolved(path, base_path, elf, btf)
    owner = VMLINUX if base_btf is None else module_name(path)
    kfuncs = elf_kfuncs(elf, btf, owner) if elf else tagged_kfuncs(btf, owner)
    inv = Inventory(str(path), _sorted(kfuncs), helper_count(btf))
    if store is not None:
        with contextlib.suppress(OSError):  # an unusable cache is no error
            write_json(
                store, {"version": _CACHE_VERSION, "files": ident, "inventory": inv.to_dict()}
            )
    return inv


def default_base(path: str | os.PathLike[str]) -> Path | None:
    """The base :func:`file_inventory` reads ``path`` over when given none: for a
    .ko, the vmlinux its ``vermagic`` names (:func:`module_base`); else None."""
    path = _existing(path)
    if not path.is_file():  # a FIFO or a device: read once, by file_inventory
        return None
    if _is_elf(path, read_head(path)) and _looks_like_module(path):
        return module_base(path)
    return None


def _existing(path: str | os.PathLike[str]) -> Path:
    """``path``, if it is a file kfunc may read BTF from (see :mod:`kfunc.inputs`)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise KfuncError(f"{path}: no such file", "pass a BTF file, a vmlinux or a .ko")
    check_file(path, "elf")
    return path


def host_files(module: str | None = None) -> list[Path]:
    """The files :func:`host_inventory` reads: vmlinux's BTF, then ``module``'s."""
    vmlinux = SYS_BTF / VMLINUX
    if module is None:
        return [vmlinux]
    if not module or "/" in module or module in (".", "..") or "\0" in module:
        raise KfuncError(
            f"module {module!r}: not a module name", "pass a module's name, e.g. nf_conntrack"
        )
    return [vmlinux, SYS_BTF / module.replace("-", "_")]


def _looks_like_module(path: Path) -> bool:
    return ".ko" in path.suffixes


_VERMAGIC = re.compile(rb"vermagic=(\S+)")
# init/version.c's linux_banner: "Linux version <release> (<builder>) ...".
_BANNER = re.compile(rb"Linux version (\S+) \(")


def module_release(elf: ElfObject) -> str | None:
    """The release a module was built for: the first word of its ``vermagic``."""
    m = _VERMAGIC.search(elf.section(".modinfo")) if elf.has_section(".modinfo") else None
    return m.group(1).decode(errors="replace") if m else None


def vmlinux_release(path: Path) -> str | None:
    """The release of the kernel whose vmlinux ``path`` is, where it says: the
    running kernel's for its ``/sys/kernel/btf/vmlinux``, the ``linux_banner``
    in an ELF vmlinux's ``.rodata``; None for other raw BTF (it names no release)."""
    from kfunc.elf import ElfObject

    if path.resolve() == (SYS_BTF / VMLINUX).resolve():
        return os.uname().release
    if not path.is_file() or not _is_elf(path, read_head(path)):
        return None
    elf = ElfObject(path)
    m = _BANNER.search(elf.section(".rodata")) if elf.has_section(".rodata") else None
    return m.group(1).decode(errors="replace") if m else None


def _check_base(path: Path, base: Path) -> None:
    """Refuse a --base from another kernel than the module ``path`` was built for:
    its split BTF read over it would name the wrong types (and list no kfuncs)."""
    from kfunc.elf import ElfObject

    if not (path.is_file() and _is_elf(path, read_head(path)) and _looks_like_module(path)):
        return
    built_for = module_release(ElfObject(path))
    base_release = vmlinux_release(base)
    if built_for and base_release and built_for != base_release:
        raise KfuncError(
            f"{path}: built for kernel {built_for}, but the base {base} is the vmlinux of "
            f"kernel {base_release}",
            f"pass the vmlinux of {built_for} with --base, or no --base to let kfunc find it",
        )


def _check_sets_resolved(path: Path, base: Path, elf: ElfObject, btf: BTF) -> None:
    """Where the base names no release (raw BTF): refuse it if none of the module's
    kfunc set ids names a FUNC over it, as happens over another kernel's BTF."""
    from kfunc.btf import format as fmt

    ids = [e.btf_id for s in kfunc_sets(elf.btf_id_sets(btf)) for e in s.entries if e.btf_id]
    if ids and not any(
        btf.start_id <= i < len(btf) and btf.kind(i) == fmt.BTF_KIND_FUNC for i in ids
    ):
        release = module_release(elf)
        raise KfuncError(
            f"{path}: none of its {len(ids)} kfunc set ids names a function over the base "
            f"{base}: the base is another kernel's BTF",
            f"pass the vmlinux of {release or 'the kernel it was built for'} with --base",
        )


def module_base(path: Path) -> Path:
    """The vmlinux to read a .ko's split BTF over: the running kernel's BTF if the
    module's ``vermagic`` names the running kernel, else the target kernel of
    that release (fetched if need be)."""
    from kfunc.elf import ElfObject
    from kfunc.kernels.target import get_kernel

    release = module_release(ElfObject(path))
    if release is None:
        raise ELFError(
            f"{path}: no vermagic in .modinfo to tell which kernel it was built for",
            "pass its vmlinux BTF with --base",
        )
    if release == os.uname().release and (SYS_BTF / VMLINUX).exists():
        return SYS_BTF / VMLINUX
    try:
        return get_kernel(release).vmlinux
    except KfuncError as e:
        raise KfuncError(
            f"{path}: built for kernel {release}, whose BTF kfunc cannot get: {e.message}",
            "pass its vmlinux BTF with --base",
        ) from e


def host_inventory(module: str | None = None) -> Inventory:
    """The running kernel's kfuncs from ``/sys/kernel/btf`` (decl tags only: the
    running kernel's ``.BTF_ids`` is not readable); with ``module``, that loaded
    module's. Read-only, and cached like :func:`file_inventory`."""
    vmlinux, *module_btf = host_files(module)
    if not vmlinux.exists():
        raise BTFError(
            f"{vmlinux}: not found: the running kernel has no BTF",
            fix="pick a kernel with --kernel VER, or a file with --btf FILE",
        )
    if not module_btf:
        return file_inventory(vmlinux)
    (path,) = module_btf
    if not path.exists():
        raise BTFError(
            f"{path}: no BTF for module {module!r}: not loaded, or built without BTF",
            fix="load it first, or read its .ko with --ko FILE",
        )
    return file_inventory(path, vmlinux)


def inventory_of(spec: str, progress: Progress | None = None) -> Inventory:
    """The inventory ``spec`` names: ``host`` (the running kernel), a file (BTF,
    vmlinux or .ko), or a target kernel (``6.1``, ``6.12.117+deb12-amd64``, an
    installed kernel's image, a kernel build tree)."""
    if spec == HOST:
        return host_inventory()
    from kfunc.kernels.target import get_kernel

    if (os.sep in spec or Path(spec).exists()) and not _names_kernel(Path(spec)):
        return file_inventory(spec)

    return kernel_inventory(get_kernel(spec, progress), progress)


def _names_kernel(path: Path) -> bool:
    """Whether ``path`` is a kernel rather than a BTF file: a directory (a tree),
    or an x86 boot image (``HdrS`` at 0x202)."""
    if path.is_dir():
        return True
    try:
        with path.open("rb") as f:
            f.seek(0x202)
            return f.read(4) == b"HdrS"
    except OSError:
        return False


# --- kernel targets ---------------------------------------------------------------


def kernel_inventory(kernel: Kernel, progress: Progress | None = None) -> Inventory:
    """Every kfunc of a target kernel: its vmlinux's and those of each module of
    its image package that has kfunc sets. Computed once (tens of seconds:
    every module is read) and cached as ``kfuncs.json`` in the kernel's cache
    directory."""
    from kfunc.elf import ElfObject

    store = kernel.path / "kfuncs.json"
    cached = read_json(store)
    if cached and cached.get("version") == _CACHE_VERSION:
        return Inventory.from_dict(cached["inventory"])
    # Debian's 6.12 headers ship a vmlinux with symbols; it has the same .BTF
    # and .BTF_ids as the one out of the bzImage, which has none.
    headers_vmlinux = kernel.build_dir / VMLINUX
    symbols = headers_vmlinux.exists() and headers_vmlinux.resolve() != kernel.vmlinux.resolve()
    vmlinux = ElfObject(headers_vmlinux if symbols else kernel.vmlinux)
    if progress:
        progress.update(f"reading {vmlinux.path}")
    base = vmlinux.btf(validate=False)
    kfuncs = elf_kfuncs(vmlinux, base, VMLINUX)
    modules = kernel.module_files()
    for path in _with_kfunc_sets(modules, progress):
        elf = ElfObject(path)
        kfuncs += elf_kfuncs(elf, elf.btf(base, validate=False), module_name(path))
    inv = Inventory(str(kernel), _sorted(kfuncs), helper_count(base))
    write_json(store, {"version": _CACHE_VERSION, "inventory": inv.to_dict()})
    return inv


def modules_dir(kernel: Kernel) -> Path:
    """Where the kernel's image package keeps its modules."""
    return kernel.modules_dir / "kernel"


def _has_set8(path: Path) -> bool:
    from kfunc.elf import ElfObject

    elf = ElfObject(path)
    return elf.has_section(".BTF_ids") and any(s.set8 for s in elf.btf_id_sets())


def _with_kfunc_sets(paths: list[Path], progress: Progress | None) -> Iterator[Path]:
    """The modules among ``paths`` that have a set8 in ``.BTF_ids``, checked over
    all CPUs (most modules are .ko.xz, and decompressing them dominates)."""
    from concurrent.futures import ProcessPoolExecutor  # only here: it costs 15 ms to import

    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        hits = pool.map(_has_set8, paths, chunksize=32)
        for n, (path, hit) in enumerate(zip(paths, hits, strict=True), 1):
            if progress and n % 200 == 0:
                progress.update(f"scanned {n}/{len(paths)} modules")
            if hit:
                yield path
