"""The root of a snapshot-able guest: one initramfs (cpio) built from the host.

A guest that QEMU can save to a file cannot have a 9p or virtiofs mount (both
block migration), and Debian's kernels build virtio_blk, ext4 and overlay as
modules. An initramfs needs neither: the kernel unpacks it into its tmpfs
root before it runs ``/init``. This one holds what the guest agent runs on
and nothing else:

- busybox (static) for ``/init`` and the shell of a ``trigger`` command;
- the host's python3, the standard-library packages the agent imports and
  every single-file module of the standard library,
  with the shared libraries the agent's process maps (libbpf, libelf, libffi
  and libc among them), found by importing the agent on the host and reading
  ``/proc/self/maps`` rather than by a list written by hand;
- kfunc's package and the third-party packages it imports.

Every file keeps its host path, so the guest's ``sys.path`` is the host's.
Nothing is mounted over them: the root (the kernel's tmpfs, in RAM) is
writable as it is, so /tmp stays the archive's own directory (a checkout of
kfunc under /tmp, as a CI clone may be, stays visible).
The archive is cached under :func:`inputs_key`: the content of kfunc's
files, and the identity of python, its library directory, libbpf and busybox.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path

from kfunc.cache import file_identity
from kfunc.errors import KfuncError, MissingToolError
from kfunc.vm.port import AGENT_IMPORTS

__all__ = ["archive_path", "build_initramfs", "inputs_key", "python_path", "with_modules"]

BUSYBOX = "/bin/busybox"
_SKIP_DIRS = {"__pycache__", "test", "tests", "idle_test"}
_INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
for m in /kfunc-boot/*.ko; do [ -e "$m" ] && insmod "$m"; done
export PYTHONPATH={pythonpath} PYTHONDONTWRITEBYTECODE=1 PATH=/usr/bin:/usr/sbin HOME=/tmp
{python} -S -m kfunc.vm.agent --port
poweroff -f
"""
_COLLECT = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
files = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
libs = sorted({line.split()[-1] for line in open("/proc/self/maps")
               if ".so" in line.split()[-1] and line.split()[-1].startswith("/")})
print(json.dumps({"modules": files, "libs": libs, "path": sys.path}))
"""


def _python() -> str:
    return os.path.realpath(sys.executable)


def _package_roots() -> list[Path]:
    """The directories the host's ``kfunc`` and its third-party imports live in."""
    import kfunc

    roots = [Path(kfunc.__file__).parent]
    for name in ("elftools", "msgspec"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        roots.append(Path(str(module.__file__)).parent)
    return roots


def inputs_key() -> str:
    """What the archive is made from, hashed: the content of kfunc's own files
    (the agent among them); the identity of python, its standard library,
    libbpf, busybox and the third-party packages. Cheap: no subprocess."""
    h = hashlib.sha256()
    h.update(sys.version.encode())
    for root in _package_roots():
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".so") and "__pycache__" not in path.parts:
                h.update(str(path).encode())
                h.update(path.read_bytes())
    identities: list[object] = [file_identity(_python())]
    stdlib = Path(os.__file__).parent
    identities.append(file_identity(stdlib / "os.py"))
    identities.append(os.stat(stdlib / "lib-dynload").st_mtime_ns)
    for lib in ("/usr/lib/x86_64-linux-gnu/libbpf.so.1", BUSYBOX):
        if os.path.exists(lib):
            identities.append(file_identity(lib))
    h.update(json.dumps(identities).encode())
    h.update(_INIT.encode() + _COLLECT.encode())
    return h.hexdigest()


def _collect() -> dict[str, list[str]]:
    """Import the agent in a host python; the files and libraries that took."""
    proc = subprocess.run(
        [sys.executable, "-S", "-c", _COLLECT, *AGENT_IMPORTS],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(python_path())),
    )  # fmt: skip
    if proc.returncode != 0:
        raise KfuncError(
            f"guest root: importing the agent on the host failed: {proc.stderr.strip()[-300:]}",
            "reinstall kfunc (make deps)",
        )
    data: dict[str, list[str]] = json.loads(proc.stdout)
    return data


def python_path() -> list[str]:
    """The guest's ``sys.path`` entries besides the standard library: where
    kfunc and its third-party imports are on the host."""
    return sorted({str(root.parent) for root in _package_roots()})


def _files(collected: dict[str, list[str]]) -> set[str]:
    """Every file of the archive (host paths), symlinks not yet resolved."""
    stdlib = Path(os.__file__).parent
    files: set[str] = {_python(), BUSYBOX}
    tops: set[Path] = set(_package_roots())
    for name in collected["modules"]:
        path = Path(name)
        # A package goes whole (its lazily imported submodules too): the
        # top-level directory under the standard library or a sys.path entry.
        for base in (stdlib, *(Path(p) for p in python_path())):
            if path.is_relative_to(base) and len(path.relative_to(base).parts) > 1:
                top = base / path.relative_to(base).parts[0]
                if top.name != "lib-dynload":
                    tops.add(top)
                    break
        else:
            files.add(str(path))
    for top in tops:
        for dirpath, dirnames, names in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
            files.update(os.path.join(dirpath, n) for n in names if n.endswith((".py", ".so")))
    for lib in collected["libs"]:
        files.add(lib)
        # the names the loader looks for (libbpf.so.1 -> libbpf.so.1.1.2)
        libdir = os.path.dirname(lib)
        for name in os.listdir(libdir):
            other = os.path.join(libdir, name)
            if os.path.islink(other) and os.path.realpath(other) == os.path.realpath(lib):
                files.add(other)
    files.update(("/lib64/ld-linux-x86-64.so.2", "/etc/ld.so.cache"))
    files.add(str(stdlib / "os.py"))  # python's landmark for its prefix
    files.update(_fallback_modules())
    return {f for f in files if os.path.lexists(f)}


class _Cpio:
    """A newc-format archive, written as it goes (directories before their files)."""

    def __init__(self, out: Path, mode: str = "wb") -> None:
        self.f = out.open(mode)
        self.ino = 1
        self.dirs: set[str] = {"/"}

    def _entry(self, name: str, mode: int, data: bytes, mtime: int = 0) -> None:
        encoded = name.lstrip("/").encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(encoded), 0)
        self.ino += 1
        head = b"070701" + b"".join(b"%08X" % v for v in fields) + encoded
        self.f.write(head + b"\0" * (-len(head) % 4))
        self.f.write(data + b"\0" * (-len(data) % 4))

    def mkdir(self, path: str) -> None:
        if path in self.dirs:
            return
        self.mkdir(os.path.dirname(path))
        self.dirs.add(path)
        self._entry(path, stat.S_IFDIR | 0o755, b"")

    def add(self, path: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        self.mkdir(os.path.dirname(path))
        self._entry(path, stat.S_IFREG | mode, data, mtime)

    def symlink(self, path: str, target: str) -> None:
        self.mkdir(os.path.dirname(path))
        self._entry(path, stat.S_IFLNK | 0o777, target.encode())

    def close(self) -> None:
        self._entry("TRAILER!!!", 0, b"")
        self.f.close()


_STRIP_ABOVE = 4 << 20  # bytes: pyenv's libpython is 23 MB, 6 MB without debug info


def _read(path: str, size: int) -> bytes:
    """The file's bytes; a large ELF file without its debug sections (every byte
    of the archive is guest memory, and every byte of guest memory is in the
    snapshot)."""
    data = Path(path).read_bytes()
    strip = shutil.which("strip")
    if size < _STRIP_ABOVE or not data.startswith(b"\x7fELF") or strip is None:
        return data
    with tempfile.TemporaryDirectory(prefix="kfunc-strip-") as tmp:
        out = os.path.join(tmp, "stripped")
        proc = subprocess.run([strip, "--strip-debug", "-o", out, path], capture_output=True,
                              timeout=120, check=False)  # fmt: skip
        return Path(out).read_bytes() if proc.returncode == 0 else data


def _compiled(path: str, tmp: str) -> bytes:
    """The module's bytecode (its .pyc, stamped with the source's mtime and size,
    as the archive keeps them): a restored guest that imports a module lazily
    must not compile it under TCG each time, and the restored root is never
    written back."""
    out = os.path.join(tmp, "module.pyc")
    py_compile.compile(path, cfile=out, doraise=True)
    return Path(out).read_bytes()


def _fallback_modules() -> set[str]:
    """Every single-file module of the standard library (about 5 MB of source):
    a lazy import that the agent's import on the host did not take (pprint,
    from pyelftools on a verifier refusal) must not fail in the guest. Those
    the agent did not import go without bytecode: the rare guest that needs
    one compiles it."""
    return {str(p) for p in Path(os.__file__).parent.glob("*.py")}


def _write(
    out: Path, files: Iterable[str], scratch: str, no_bytecode: AbstractSet[str] = frozenset()
) -> None:
    cpio = _Cpio(out)
    # merged /usr: /bin, /lib, /lib64, /sbin are links on the host as in the guest
    for top in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{top}"):
            cpio.symlink(f"/{top}", os.readlink(f"/{top}"))
            cpio.dirs.add(f"/{top}")
    for d in ("/proc", "/sys", "/dev", "/tmp", "/run"):
        cpio.mkdir(d)
    for name in sorted(files):
        # The host path, with links of its directories resolved (/lib -> /usr/lib).
        path = os.path.join(os.path.realpath(os.path.dirname(name)), os.path.basename(name))
        if os.path.islink(path):
            cpio.symlink(path, os.readlink(path))
            continue
        st = os.stat(path)
        cpio.add(path, _read(path, st.st_size), stat.S_IMODE(st.st_mode), int(st.st_mtime))
        if path.endswith(".py") and name not in no_bytecode:
            cpio.add(importlib.util.cache_from_source(path), _compiled(path, scratch))
    busybox = os.path.realpath(BUSYBOX)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        link = f"/usr/bin/{applet}"
        if applet != "busybox" and link not in files and not os.path.exists(f"/usr/sbin/{applet}"):
            cpio.symlink(link, busybox)
    for applet in ("poweroff", "mount"):
        cpio.symlink(f"/usr/sbin/{applet}", busybox)
    init = _INIT.format(pythonpath=":".join(python_path()), python=_python())
    cpio.add("/init", init.replace("#!/bin/sh", f"#!{busybox} sh").encode(), 0o755)
    cpio.close()


def archive_path(directory: Path) -> Path:
    """Where :func:`build_initramfs` keeps the archive for the host as it is now."""
    return directory / f"root-{inputs_key()[:16]}.cpio"


def build_initramfs(directory: Path) -> Path:
    """The archive for the host as it is now: cached in ``directory`` by :func:`inputs_key`."""
    if not os.path.exists(BUSYBOX):
        raise MissingToolError("busybox", "busybox-static")
    out = archive_path(directory)
    if out.exists():
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    try:
        with tempfile.TemporaryDirectory(prefix="kfunc-initramfs-") as scratch:
            collected = _collect()
            imported = set(collected["modules"])
            _write(tmp, _files(collected), scratch, _fallback_modules() - imported)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def with_modules(archive: Path, modules: list[tuple[str, bytes]], out: Path) -> Path:
    """``archive`` and, after it, a second archive of ``modules`` (name, the
    ``.ko``'s bytes) in ``/kfunc-boot/``, which ``/init`` inserts in name order
    before the agent starts: the drivers a kernel builds as modules that the
    guest needs first (the kernel unpacks concatenated archives one after the
    other). Made once: ``out`` is kept as it is when it exists."""
    if out.exists():
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    try:
        shutil.copyfile(archive, tmp)
        cpio = _Cpio(tmp, "ab")
        for name, data in modules:
            cpio.add(f"/kfunc-boot/{name}", data)
        cpio.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
