"""The bad-input corpus: what a hostile or careless user hands kfunc, through the
real command, each ending in one clear line, the right exit code, bounded memory.

Every row runs ``python -m kfunc ARGV`` in a child of its own and states: the
argv, the input (files in its working directory, stdin, environment), the exit
code, the words the one-line error (``error: ...`` + ``fix: ...``, or the JSON
object with --json) must contain, and a cap on the child's peak RSS, measured
for that child alone with ``os.wait4``'s rusage. Every row also checks what
every failure owes the user: no traceback, and nothing left in its TMPDIR.

A child must never boot a VM, download or touch the network. Each gets an empty
``KFUNC_CACHE``, an empty ``PATH`` (no apt-get, dpkg-deb, qemu, vng, clang or
make: a command that would fetch a kernel or boot one fails at once with
"apt-get: not found on PATH"), HTTP(S) proxies pointing at a closed port, and
a timeout. Kernel names that exist (6.1, 6.12) therefore cost nothing: with an
empty cache they cannot be fetched.

The children run a few at a time (they are mostly Python start-up): the whole
table takes ~30 s of wall time on a loaded 2-core machine. The property test at
the end throws random command lines and file contents at every subcommand under
the same guards.
"""

from __future__ import annotations

import json
import lzma
import os
import random
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zstandard
from conftest import require
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: The wall time a child may take before it is killed (and its row fails): the
#: slowest rows start Python, rich and pyelftools on a loaded machine.
TIMEOUT = 60
#: Children run at once.
WORKERS = 4
MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One row: ``kfunc ARGV`` with its input, and what it must answer."""

    id: str
    argv: tuple[str, ...]
    status: int
    words: tuple[str, ...] = ()
    #: files to make in the working directory: name -> content (a str is
    #: written as UTF-8; "@mkdir", "@fifo", "@link:TARGET" make those)
    files: dict[str, bytes | str] = field(default_factory=dict)
    #: bytes: fed through a pipe; str: a path opened as stdin
    stdin: bytes | str | None = None
    #: None: a file; "/dev/full"; "closed": a pipe whose reader has left
    stdout: str | None = None
    #: environment changes (None: unset), after the guards
    env: dict[str, str | None] = field(default_factory=dict)
    cwd: str | None = None
    json: bool = False
    rss_mb: int = 200
    xfail: str | None = None
    #: an extra check, given the working directory
    after: Callable[[Path], None] | None = None
    #: "kernels": needs the 6.1 and 6.12 kernels in kfunc's cache (files only);
    #: "root": needs root (a device node made with mknod)
    needs: str | None = None
    #: the child's RLIMIT_FSIZE (prlimit): a write past it fails with EFBIG,
    #: as on a full disk
    fsize: int | None = None


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    rss_mb: float
    tmp_left: list[str]
    work: Path


# --- inputs that take some making ------------------------------------------------

BPF_C = """\
#define SEC(n) __attribute__((section(n), used))
extern void bpf_rcu_read_lock(void) __attribute__((section(".ksyms")));
extern void bpf_rcu_read_unlock(void) __attribute__((section(".ksyms")));
SEC("fentry/do_unlinkat") int f(void *ctx) { bpf_rcu_read_lock(); bpf_rcu_read_unlock(); return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def _zeros_compressed(suffix: str, size: int) -> bytes:
    """``size`` zero bytes compressed as ``suffix`` says, made a MiB at a time."""
    chunk = bytes(MiB)
    if suffix == ".xz":
        c = lzma.LZMACompressor(preset=0)
        return b"".join(c.compress(chunk) for _ in range(size // MiB)) + c.flush()
    if suffix == ".gz":
        co = __import__("zlib").compressobj(1, wbits=31)
        return b"".join(co.compress(chunk) for _ in range(size // MiB)) + co.flush()
    z = zstandard.ZstdCompressor(level=1).compressobj()
    return b"".join(z.compress(chunk) for _ in range(size // MiB)) + z.flush()


def _patch_section_size(obj: bytes, name: bytes, size: int) -> bytes:
    """``obj`` (an ELF64 LE relocatable) with section ``name`` claiming ``size`` bytes."""
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", obj, 0x3A)
    (strtab_off,) = struct.unpack_from("<Q", obj, shoff + shstrndx * shentsize + 0x18)
    out = bytearray(obj)
    for i in range(shnum):
        hdr = shoff + i * shentsize
        (name_off,) = struct.unpack_from("<I", obj, hdr)
        end = obj.index(b"\0", strtab_off + name_off)
        if obj[strtab_off + name_off : end] == name:
            struct.pack_into("<Q", out, hdr + 0x20, size)
            return bytes(out)
    raise AssertionError(f"no section {name!r}")


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Inputs shared by the rows: a real vmlinux BTF, BPF objects built with and
    without -g, broken and oversized files. Read-only for the children."""
    a = tmp_path_factory.mktemp("assets")
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    require(vmlinux.exists(), "the running kernel has no BTF (/sys/kernel/btf/vmlinux)")
    require(shutil.which("clang") is not None, "clang is not installed")
    btf = vmlinux.read_bytes()
    (a / "vmlinux.btf").write_bytes(btf)
    (a / "half.btf").write_bytes(btf[: len(btf) // 2])
    (a / "header.btf").write_bytes(btf[:24])
    rng = random.Random(15)
    noise = rng.randbytes(4096)
    (a / "noise.bin").write_bytes(noise)
    (a / "magic.btf").write_bytes(btf[:24] + noise)
    (a / "elfnoise.o").write_bytes(b"\x7fELF\x02\x01\x01" + noise)
    src = a / "k.bpf.c"
    src.write_text(BPF_C)
    for name, extra in (("g.o", ["-g"]), ("nog.o", [])):
        subprocess.run(
            ["clang", "-O2", "-target", "bpf", *extra, "-c", str(src), "-o", str(a / name)],
            check=True,
        )
    g = (a / "g.o").read_bytes()
    (a / "bigsec.o").write_bytes(_patch_section_size(g, b".BTF", 1 << 30))
    (a / "bigsec.ko").write_bytes(_patch_section_size(g, b".BTF", 1 << 30))
    (a / "cutbtf.o").write_bytes(_patch_section_size(g, b".BTF", 40))
    (a / "g.ko").write_bytes(g)
    (a / "half.ko").write_bytes(g[: len(g) // 2])
    (a / "g.ko.xz").write_bytes(lzma.compress(g))
    (a / "cut.ko.xz").write_bytes(lzma.compress(g)[:200])
    (a / "noise.ko.gz").write_bytes(noise)
    for suffix in (".xz", ".gz", ".zst"):
        (a / f"bomb.ko{suffix}").write_bytes(_zeros_compressed(suffix, 160 * MiB))
    for name, head in (("sparse.bin", b""), ("sparse.o", g[:64]), ("sparse.log", b"")):
        with open(a / name, "wb") as f:
            f.write(head)
            f.truncate(2 << 30)
    (a / "big.toml").write_bytes(b"# " + b"x" * (2 * MiB) + b"\n")
    (a / "big.log").write_bytes(b"a line no verifier prints\n" * 300_000)  # ~7.5 MB
    tree = a / "tree.tar.xz"
    with tarfile.open(tree, "w:xz", preset=0) as tar:
        info = tarfile.TarInfo("linux-6.12/kernel/bpf/helpers.c")
        info.size = 20 * MiB
        tar.addfile(info, _Zeros(info.size))
    (a / "notatar.tar.xz").write_bytes(noise)
    (a / "bomb.deb").write_bytes(_deb_with_changelog(_zeros_compressed(".gz", 20 * MiB)))
    os.link(a / "vmlinux.btf", a / "hardlink.btf")
    return a


def _deb_with_changelog(changelog_gz: bytes) -> bytes:
    """A Debian package (an ar archive) whose data.tar holds ``changelog_gz``."""
    import io

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info = tarfile.TarInfo("./usr/share/doc/linux-source-6.12/changelog.Debian.gz")
        info.size = len(changelog_gz)
        tar.addfile(info, io.BytesIO(changelog_gz))
    data = tar_bytes.getvalue()
    header = f"{'data.tar':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return b"!<arch>\n" + header + data + b"\n" * (len(data) & 1)


class _Zeros:
    """A file-like object of ``n`` zero bytes, for tarfile."""

    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


@pytest.fixture(scope="module")
def kernels_files(request: pytest.FixtureRequest) -> dict[str, str]:
    """Files of Debian's 6.1 and 6.12 kernels, fetched (as the kernel tests
    fetch them) when a selected row needs them; {} where they cannot be had
    (not root, no network): those rows then skip, or fail under CI."""
    from kfunc.errors import KfuncError
    from kfunc.kernels.target import get_kernel

    needed = any(
        item.callspec.params["case"].needs == "kernels"
        for item in request.session.items
        if hasattr(item, "callspec") and "case" in item.callspec.params
    )
    if not needed or os.geteuid() != 0:
        return {}
    out = {}
    for series, key in (("6.1", "K61"), ("6.12", "K612")):
        try:
            k = get_kernel(series)
        except KfuncError:
            return {}
        mods = k.root / "lib" / "modules" / k.release / "kernel" / "net" / "netfilter"
        ko = next(iter(sorted(mods.glob("nf_conntrack.ko*"))), None)
        if ko is None or not k.vmlinux.is_file():
            return {}
        out[f"{key}_KO"] = str(ko)
        out[f"{key}_VMLINUX"] = str(k.vmlinux)
    return out


# --- the table --------------------------------------------------------------------

SPEC_OK = """\
[module]
name = "demo"
prog_types = ["syscall"]

[[kfunc]]
name = "demo_add"
proto = "u64 demo_add(u64 a, u64 b)"
body = "return a + b;"
"""


def spec(extra_kfunc: str = "", *, module: str = "demo", tail: str = "") -> str:
    """A kfunc.toml like ``kfunc new``'s, with lines added to its first kfunc."""
    text = SPEC_OK.replace('name = "demo"', f'name = "{module}"')
    return text + extra_kfunc + "\n" + tail


def _unchanged(name: str, asset: str) -> Callable[[Path], None]:
    def check(work: Path) -> None:
        assert (work / name).read_bytes() == (work / asset).read_bytes(), f"{name} was changed"
        temporaries = [p.name for p in work.iterdir() if p.name.endswith(".tmp")]
        assert not temporaries, f"left behind: {temporaries}"

    return check


def _still_a_device(name: str) -> Callable[[Path], None]:
    def check(work: Path) -> None:
        assert stat.S_ISCHR((work / name).lstat().st_mode), f"{name} was replaced by a file"
        temporaries = [p.name for p in work.iterdir() if p.name.startswith(".")]
        assert not temporaries, f"left behind: {temporaries}"

    return check


def _absent(*names: str) -> Callable[[Path], None]:
    def check(work: Path) -> None:
        left = [n for n in names if os.path.lexists(work / n)]
        left += [p.name for p in work.iterdir() if p.name.startswith(".kfunc-new-")]
        assert not left, f"left behind: {left}"

    return check


LONG = "a" * 255
HUGE = "x" * 100_000

CASES: list[Case] = [
    # -- BTF files: ls --btf --------------------------------------------------------
    Case("ls-dev-zero", ("ls", "--btf", "/dev/zero"), 1, ("/dev/zero", "64 MiB")),
    Case("ls-sparse-2g", ("ls", "--btf", "{A}/sparse.bin"), 1, ("2048 MiB", "over the 64 MiB")),
    Case("ls-empty-file", ("ls", "--btf", "empty"), 1, ("empty", "shorter than"), {"empty": b""}),
    Case("ls-noise", ("ls", "--btf", "{A}/noise.bin"), 1, ("bad magic",)),
    Case("ls-magic-noise", ("ls", "--btf", "{A}/magic.btf"), 1, ("magic.btf",)),
    Case("ls-truncated-btf", ("ls", "--btf", "{A}/half.btf"), 1, ("runs past the end",)),
    Case("ls-header-only", ("ls", "--btf", "{A}/header.btf"), 1, ("header.btf",)),
    Case("ls-directory", ("ls", "--btf", "d"), 1, ("d: a directory",), {"d": "@mkdir"}),
    Case("ls-missing", ("ls", "--btf", "nosuch"), 1, ("nosuch: no such file",)),
    Case("ls-dangling", ("ls", "--btf", "l"), 1, ("dangling symlink",), {"l": "@link:nowhere"}),
    Case(
        "ls-loop",
        ("ls", "--btf", "a"),
        1,
        ("symbolic links", "loop"),
        {"a": "@link:b", "b": "@link:a"},
    ),
    Case("ls-proc-status", ("ls", "--btf", "/proc/self/status"), 1, ("bad magic",)),
    Case("ls-proc-mem", ("ls", "--btf", "/proc/self/mem"), 1, ("Input/output error",)),
    Case("ls-stdin-zero", ("ls", "--btf", "/dev/stdin"), 1, ("64 MiB",), stdin="/dev/zero"),
    Case(
        "ls-stdin-pipe-noise",
        ("ls", "--btf", "/dev/stdin"),
        1,
        ("bad magic",),
        stdin=random.Random(1).randbytes(50_000),
    ),
    Case("ls-empty-path", ("ls", "--btf", ""), 1, ("a directory",)),
    Case("ls-long-path", ("ls", "--btf", HUGE), 1, ("File name too long", "characters")),
    Case("ls-name-255", ("ls", "--btf", LONG + "b"), 1, ("File name too long",)),
    Case("ls-elf-no-btf", ("ls", "--btf", "{A}/nog.o"), 1, ("no .BTF section",)),
    Case("ls-elf-noise", ("ls", "--btf", "{A}/elfnoise.o"), 1, ("malformed ELF",)),
    Case(
        "ls-elf-huge-section",
        ("ls", "--btf", "{A}/bigsec.o"),
        1,
        ("section .BTF claims 1073741824 bytes",),
    ),
    Case("ls-elf-cut-btf", ("ls", "--btf", "{A}/cutbtf.o"), 1, ("cutbtf.o",)),
    Case("ls-elf-sparse-2g", ("ls", "--btf", "{A}/sparse.o"), 1, ("sparse.o",)),
    Case("ls-json-dev-zero", ("ls", "--json", "--btf", "/dev/zero"), 1, ("64 MiB",), json=True),
    Case("ls-module-nosuch", ("ls", "--module", "nosuch"), 1, ("no BTF for module 'nosuch'",)),
    Case(
        "ls-module-nosuch-json",
        ("ls", "--json", "--module", "nosuch"),
        1,
        ("no BTF for module 'nosuch'",),
        json=True,
    ),
    Case(
        "ls-module-traversal", ("ls", "--module", "../../../etc/passwd"), 1, ("not a module name",)
    ),
    Case("ls-module-empty", ("ls", "--module", ""), 1, ("not a module name",)),
    Case("ls-module-huge", ("ls", "--module", HUGE), 1, ("too long",)),
    Case("ls-base-alone", ("ls", "--base", "{A}/vmlinux.btf"), 1, ("--base: no split BTF",)),
    Case(
        "ls-base-missing",
        ("ls", "--btf", "{A}/vmlinux.btf", "--base", "nosuch"),
        1,
        ("nosuch: no such file",),
    ),
    Case("ls-base-dev-zero", ("ls", "--ko", "{A}/g.ko", "--base", "/dev/zero"), 1, ("64 MiB",)),
    Case("ls-probe-no-kernel", ("ls", "--probe"), 1, ("--probe needs a target kernel",)),
    Case("ls-kernel-too-old", ("ls", "--kernel", "5.10"), 1, ("5.10",)),
    Case("ls-kernel-unknown", ("ls", "--kernel", "banana"), 1, ("kernel 'banana': unknown",)),
    Case("ls-kernel-negative", ("ls", "--kernel", "-1"), 1, ("kernel '-1': unknown",)),
    Case("ls-kernel-no-fetch", ("ls", "--kernel", "6.12"), 1, ("not found on PATH",)),
    Case(
        "ls-to-dev-full",
        ("ls", "--btf", "{A}/vmlinux.btf"),
        1,
        ("No space left on device",),
        stdout="/dev/full",
    ),
    Case(
        "ls-json-to-dev-full",
        ("ls", "--json", "--btf", "{A}/vmlinux.btf"),
        1,
        ("No space left on device",),
        stdout="/dev/full",
    ),
    Case("ls-closed-pipe", ("ls", "--btf", "{A}/vmlinux.btf"), 141, stdout="closed"),
    Case(
        "ls-home-unset",
        ("ls", "--btf", "{A}/vmlinux.btf"),
        0,
        ("kfunc(s) in",),
        env={"HOME": None, "KFUNC_CACHE": None, "XDG_CACHE_HOME": "/proc/none"},
    ),
    Case(
        "ls-home-proc",
        ("ls", "--btf", "{A}/vmlinux.btf"),
        0,
        ("kfunc(s) in",),
        env={"HOME": "/proc", "KFUNC_CACHE": None},
    ),
    Case(
        "ls-cache-unwritable",
        ("ls", "--btf", "{A}/vmlinux.btf"),
        0,
        ("kfunc(s) in",),
        env={"KFUNC_CACHE": "/proc/kfunc"},
    ),
    Case(
        "ls-cache-is-a-file",
        ("ls", "--btf", "{A}/vmlinux.btf"),
        0,
        ("kfunc(s) in",),
        env={"KFUNC_CACHE": "/dev/null"},
    ),
    Case("ls-hardlink-ok", ("ls", "--btf", "{A}/hardlink.btf"), 0, ("kfunc(s) in",)),
    # -- modules: ls --ko -------------------------------------------------------------
    Case("ko-dev-null", ("ls", "--ko", "/dev/null"), 1, ("/dev/null",)),
    Case("ko-noise", ("ls", "--ko", "{A}/elfnoise.o"), 1, ("malformed ELF",)),
    Case("ko-half", ("ls", "--ko", "{A}/half.ko"), 1, ("half.ko",)),
    Case("ko-no-vermagic", ("ls", "--ko", "{A}/g.ko"), 1, ("no vermagic",)),
    Case("ko-xz-no-vermagic", ("ls", "--ko", "{A}/g.ko.xz"), 1, ("no vermagic",)),
    Case("ko-xz-truncated", ("ls", "--ko", "{A}/cut.ko.xz"), 1, ("cannot decompress", "truncated")),
    Case("ko-gz-noise", ("ls", "--ko", "{A}/noise.ko.gz"), 1, ("cannot decompress",)),
    Case("ko-xz-bomb", ("ls", "--ko", "{A}/bomb.ko.xz"), 1, ("decompressed", "128 MiB")),
    Case("ko-gz-bomb", ("ls", "--ko", "{A}/bomb.ko.gz"), 1, ("decompressed", "128 MiB")),
    Case("ko-zst-bomb", ("ls", "--ko", "{A}/bomb.ko.zst"), 1, ("decompressed", "128 MiB")),
    Case(
        "ko-huge-section",
        ("ls", "--ko", "{A}/bigsec.ko", "--base", "{A}/vmlinux.btf"),
        1,
        ("claims 1073741824 bytes",),
    ),
    Case("ko-dir-named-ko", ("ls", "--ko", "m.ko.xz"), 1, ("a directory",), {"m.ko.xz": "@mkdir"}),
    Case(
        "ko-base-other-kernel",
        ("ls", "--ko", "{K61_KO}", "--base", "{K612_VMLINUX}"),
        1,
        ("built for kernel 6.1.0", "the vmlinux of kernel 6.12"),
        needs="kernels",
    ),
    Case(
        "ko-base-other-kernel-xz",
        ("ls", "--ko", "{K612_KO}", "--base", "{K61_VMLINUX}"),
        1,
        ("built for kernel 6.12", "the vmlinux of kernel 6.1.0"),
        needs="kernels",
    ),
    Case(
        "ko-base-running-kernel",
        ("ls", "--ko", "{K612_KO}", "--base", "/sys/kernel/btf/vmlinux"),
        1,
        ("built for kernel 6.12", "/sys/kernel/btf/vmlinux"),
        needs="kernels",
    ),
    Case(
        "ko-base-same-kernel",
        ("ls", "--ko", "{K61_KO}", "--base", "{K61_VMLINUX}"),
        0,
        ("bpf_ct_release",),
        needs="kernels",
    ),
    # -- header -----------------------------------------------------------------------
    Case("header-module-nosuch", ("header", "--module", "nosuch"), 1, ("nosuch",)),
    Case(
        "header-o-is-input",
        ("header", "--btf", "v.btf", "-o", "v.btf"),
        1,
        ("-o v.btf", "input"),
        {"v.btf": "@copy:vmlinux.btf"},
        after=_unchanged("v.btf", "v.orig"),
    ),
    Case(
        "header-o-is-input-link",
        ("header", "--btf", "v.btf", "-o", "l.btf"),
        1,
        ("input",),
        {"v.btf": "@copy:vmlinux.btf", "l.btf": "@link:v.btf"},
        after=_unchanged("v.btf", "v.orig"),
    ),
    Case(
        "header-o-is-input-dotted",
        ("header", "--btf", "v.btf", "-o", "./d/../v.btf"),
        1,
        ("input",),
        {"v.btf": "@copy:vmlinux.btf", "d": "@mkdir"},
        after=_unchanged("v.btf", "v.orig"),
    ),
    Case(
        "header-o-no-dir",
        ("header", "--btf", "{A}/vmlinux.btf", "-o", "no/dir/x.h"),
        1,
        ("cannot write",),
    ),
    Case(
        "header-o-dir",
        ("header", "--btf", "{A}/vmlinux.btf", "-o", "d"),
        1,
        ("a directory",),
        {"d": "@mkdir"},
    ),
    Case(
        "header-o-dev-full",
        ("header", "--btf", "{A}/vmlinux.btf", "-o", "/dev/full"),
        1,
        ("No space left",),
    ),
    Case(
        "header-o-proc",
        ("header", "--btf", "{A}/vmlinux.btf", "-o", "/proc/x.h"),
        1,
        ("cannot write",),
    ),
    Case(
        "header-stdout-full",
        ("header", "--btf", "{A}/vmlinux.btf"),
        1,
        ("No space left",),
        stdout="/dev/full",
    ),
    Case(
        "header-o-disk-full",
        ("header", "--btf", "{A}/vmlinux.btf", "-o", "out.h"),
        1,
        ("out.h: cannot write: File too large",),
        {"out.h": "@copy:k.bpf.c"},
        fsize=4096,
        after=_unchanged("out.h", "out.orig"),
    ),
    Case(
        "header-o-eacces",
        ("header", "--btf", "{A}/vmlinux.btf", "-o", "/sys/kernel/x.h"),
        1,
        ("/sys/kernel/x.h: cannot write: Permission denied",),
    ),
    Case("new-eperm", ("new", "x"), 1, ("Operation not permitted",), cwd="/sys/kernel"),
    Case(
        "header-o-device",
        ("header", "--btf", "{A}/vmlinux.btf", "-o", "null"),
        0,
        ("null: ",),
        {"null": "@null"},
        after=_still_a_device("null"),
        needs="root",
    ),
    Case(
        "compat-o-device",
        ("compat", "-o", "null"),
        0,
        ("null: written",),
        {"null": "@null"},
        after=_still_a_device("null"),
        needs="root",
    ),
    Case(
        "compat-o-no-dir",
        ("compat", "-o", "no/such/compat.h"),
        1,
        ("cannot write: No such file or directory",),
    ),
    Case(
        "compat-o-dir",
        ("compat", "-o", "d"),
        1,
        ("d: a directory",),
        {"d": "@mkdir"},
    ),
    Case("compat-old-kernel", ("compat", "--kernel", "5.10"), 1, ("5.10",)),
    Case("header-sparse", ("header", "--btf", "{A}/sparse.bin"), 1, ("2048 MiB",)),
    # -- diff -------------------------------------------------------------------------
    Case("diff-dev-zero", ("diff", "/dev/zero", "host"), 1, ("64 MiB",)),
    Case("diff-missing", ("diff", "./nosuch", "host"), 1, ("nosuch",)),
    Case(
        "diff-noise-json", ("diff", "--json", "{A}/noise.bin", "host"), 1, ("bad magic",), json=True
    ),
    Case("diff-old-kernel", ("diff", "5.10", "6.1"), 1, ("5.10",)),
    Case("diff-dir", ("diff", "d/", "host"), 1, ("a directory",), {"d": "@mkdir"}),
    Case("diff-truncated", ("diff", "{A}/half.btf", "{A}/vmlinux.btf"), 1, ("runs past the end",)),
    # -- check ------------------------------------------------------------------------
    Case("check-without-g", ("check", "{A}/nog.o"), 1, ("built without -g", "clang -g")),
    Case(
        "check-without-g-json",
        ("check", "--json", "{A}/nog.o"),
        1,
        ("built without -g",),
        json=True,
    ),
    Case(
        "check-without-g-full",
        ("check", "--json", "{A}/nog.o"),
        1,
        ("built without -g",),
        stdout="/dev/full",
    ),
    Case("check-dev-null", ("check", "/dev/null"), 1, ("/dev/null",)),
    Case("check-dir", ("check", "d"), 1, ("a directory",), {"d": "@mkdir"}),
    Case("check-not-bpf", ("check", sys.executable), 1, ("not a BPF object",)),
    Case("check-noise", ("check", "{A}/elfnoise.o"), 1, ("not a BPF object",)),
    Case("check-sparse", ("check", "{A}/sparse.o"), 1, ("2048 MiB", "64 MiB")),
    Case("check-huge-section", ("check", "{A}/bigsec.o"), 1, ("claims 1073741824 bytes",)),
    Case("check-missing", ("check", "nosuch.o"), 1, ("nosuch.o",)),
    Case("check-old-kernel", ("check", "{A}/g.o", "--kernel", "5.10"), 1, ("5.10",)),
    Case("check-unknown-kernel", ("check", "{A}/g.o", "--kernel", "x"), 1, ("kernel 'x'",)),
    Case("check-no-fetch", ("check", "{A}/g.o", "--kernel", "6.12"), 1, ("not found on PATH",)),
    Case(
        "check-home-proc",
        ("check", "{A}/g.o", "--kernel", "6.12"),
        1,
        ("KFUNC_CACHE",),
        env={"HOME": "/proc", "KFUNC_CACHE": None},
    ),
    Case(
        "check-cache-proc",
        ("check", "{A}/g.o", "--kernel", "6.12"),
        1,
        ("KFUNC_CACHE",),
        env={"KFUNC_CACHE": "/proc/kfunc"},
    ),
    Case(
        "check-cache-proc-json",
        ("check", "--json", "{A}/g.o"),
        1,
        ("KFUNC_CACHE",),
        env={"KFUNC_CACHE": "/proc/kfunc"},
        json=True,
    ),
    # -- explain ----------------------------------------------------------------------
    Case("explain-dev-zero", ("explain", "/dev/zero"), 1, ("64 MiB", "verifier log")),
    Case("explain-stdin-zero", ("explain", "-"), 1, ("stdin", "64 MiB"), stdin="/dev/zero"),
    Case("explain-sparse", ("explain", "{A}/sparse.log"), 1, ("2048 MiB",)),
    Case("explain-dir", ("explain", "d"), 1, ("a directory",), {"d": "@mkdir"}),
    Case("explain-missing", ("explain", "nosuch"), 1, ("nosuch", "No such file")),
    Case("explain-empty", ("explain", "-"), 1, ("no rule explains", "empty"), stdin=b""),
    Case(
        "explain-no-rule-json",
        ("explain", "--json"),
        1,
        ("no rule explains",),
        stdin=b"0: (85) call bpf_x#1\nsomething odd happened\nprocessed 2 insns\n",
        json=True,
    ),
    Case("explain-not-utf8", ("explain", "-"), 1, ("no rule explains",), stdin=b"\xff\xfe\x00"),
    Case("explain-big-log", ("explain", "{A}/big.log"), 1, ("no rule explains",)),
    Case(
        "explain-obj-missing", ("explain", "--obj", "nosuch.o", "-"), 1, ("nosuch.o",), stdin=b"x\n"
    ),
    Case(
        "explain-obj-dir",
        ("explain", "--obj", "d", "-"),
        1,
        ("a directory",),
        {"d": "@mkdir"},
        stdin=b"x\n",
    ),
    Case(
        "explain-to-dev-full",
        ("explain", "--json"),
        1,
        ("No space left",),
        stdin=b"R1 invalid mem access 'scalar'\n",
        stdout="/dev/full",
    ),
    Case(
        "explain-home-unset",
        ("explain", "-"),
        1,
        ("no rule explains",),
        stdin=b"x\n",
        env={"HOME": None, "KFUNC_CACHE": None, "XDG_CACHE_HOME": "/proc/none"},
    ),
    # -- new --------------------------------------------------------------------------
    Case(
        "new-255", ("new", LONG), 1, ("255 characters, over the kernel's 55",), after=_absent(LONG)
    ),
    Case("new-dangling", ("new", "x"), 1, ("dangling symlink",), {"x": "@link:nowhere"}),
    Case("new-exists", ("new", "x"), 1, ("already exists",), {"x": "@mkdir"}),
    Case("new-unwritable", ("new", "x"), 1, ("cannot create",), cwd="/proc"),
    Case("new-digit", ("new", "1x"), 1, ("not a valid module name",), after=_absent("1x")),
    Case("new-empty", ("new", ""), 1, ("not a valid module name",)),
    Case("new-slash", ("new", "a/b"), 1, ("not a valid module name",), after=_absent("a")),
    Case("new-huge", ("new", HUGE), 1, ("100000 characters",)),
    Case(
        "new-vmlinux",
        ("new", "vmlinux"),
        1,
        ("'vmlinux' is the kernel's own",),
        after=_absent("vmlinux"),
    ),
    Case("new-keyword", ("new", "int"), 1, ("'int' is a C keyword",), after=_absent("int")),
    Case("new-ok", ("new", "demo"), 0, ("created demo/",)),
    Case(
        "new-disk-full", ("new", "demo"), 1, ("File too large",), fsize=300, after=_absent("demo")
    ),
    # -- kfunc.toml (build reads it before anything else) --------------------------------
    Case(
        "toml-not-utf8",
        ("build", "p"),
        1,
        ("not UTF-8", "line 2"),
        {"p/kfunc.toml": b'[module]\nname = "d\xff"\n'},
    ),
    Case(
        "toml-directory",
        ("build", "p"),
        1,
        ("kfunc.toml: is a directory",),
        {"p/kfunc.toml": "@mkdir"},
    ),
    Case("toml-syntax", ("build", "p"), 1, ("fix the TOML syntax",), {"p/kfunc.toml": "[module\n"}),
    Case(
        "toml-huge", ("build", "p"), 1, ("larger than 1 MiB",), {"p/kfunc.toml": "@copy:big.toml"}
    ),
    Case(
        "toml-dev-zero",
        ("build", "p"),
        1,
        ("not a regular file",),
        {"p/kfunc.toml": "@link:/dev/zero"},
    ),
    Case(
        "toml-retval-abc",
        ("build", "p"),
        1,
        ("run.test[0].retval",),
        {"p/kfunc.toml": spec(tail='[[run.test]]\nprogram = "add"\nretval = "abc"\n')},
    ),
    Case(
        "toml-packet-big",
        ("build", "p"),
        1,
        ("run.test[0].packet: no packet named 'big'",),
        {"p/kfunc.toml": spec(tail='[[run.test]]\nprogram = "add"\nretval = 0\npacket = "big"\n')},
    ),
    Case(
        "toml-run-5",
        ("build", "p"),
        1,
        ("run: ",),
        {"p/kfunc.toml": "run = 5\n" + SPEC_OK},
    ),
    Case(
        "toml-flagz",
        ("build", "p"),
        1,
        ("kfunc[0].flagz: unknown key (did you mean flags?)",),
        {"p/kfunc.toml": spec('flagz = ["KF_RCU"]')},
    ),
    Case(
        "toml-prog-type-typo",
        ("build", "p"),
        1,
        ("prog_type", "did you mean prog_types?"),
        {"p/kfunc.toml": spec('prog_type = ["tracing"]')},
    ),
    Case(
        "toml-optional-string",
        ("build", "p"),
        1,
        ("kfunc[0].optional",),
        {"p/kfunc.toml": spec('optional = "false"')},
    ),
    Case(
        "toml-flags-string",
        ("build", "p"),
        1,
        ("kfunc[0].flags",),
        {"p/kfunc.toml": spec('flags = "KF_RCU"')},
    ),
    Case(
        "toml-proto-extra-c",
        ("build", "p"),
        1,
        ("kfunc[0].proto",),
        {
            "p/kfunc.toml": SPEC_OK.replace(
                'proto = "u64 demo_add(u64 a, u64 b)"',
                'proto = "u64 demo_add(u64 a); int evil(void) { return 0; } u64 demo_add(u64 a)"',
            )
        },
    ),
    Case(
        "toml-kfunc-int",
        ("build", "p"),
        1,
        ("kfunc[0].name", "keyword"),
        {
            "p/kfunc.toml": SPEC_OK.replace('name = "demo_add"', 'name = "int"').replace(
                "demo_add(", "int("
            )
        },
    ),
    Case(
        "toml-module-vmlinux",
        ("build", "p"),
        1,
        ("module.name", "vmlinux"),
        {"p/kfunc.toml": spec(module="vmlinux")},
    ),
    Case(
        "toml-module-60",
        ("build", "p"),
        1,
        ("module.name", "55"),
        {"p/kfunc.toml": spec(module="m" * 60)},
    ),
    Case(
        "toml-empty",
        ("build", "p"),
        1,
        ("kfunc.toml", "empty"),
        {"p/kfunc.toml": ""},
    ),
    Case(
        "toml-valid-no-fetch", ("build", "p"), 1, ("not found on PATH",), {"p/kfunc.toml": SPEC_OK}
    ),
    Case(
        "run-toml-dir", ("run", "p"), 1, ("kfunc.toml: is a directory",), {"p/kfunc.toml": "@mkdir"}
    ),
    # -- survey -----------------------------------------------------------------------
    Case(
        "survey-empty-tree",
        ("survey", "--tree", "t"),
        1,
        ("no BPF helpers and no kfuncs",),
        {"t": "@mkdir"},
    ),
    Case("survey-nothing", ("survey",), 1, ("nothing to count",)),
    Case("survey-dev-zero-tree", ("survey", "--tree", "/dev/zero"), 1, ("no such source tree",)),
    Case(
        "survey-noise-tarball",
        ("survey", "--tree", "{A}/notatar.tar.xz"),
        1,
        ("cannot read as a source tarball",),
    ),
    Case(
        "survey-deb-changelog-bomb",
        ("survey", "--tree", "{A}/bomb.deb"),
        1,
        ("changelog.Debian.gz (decompressed)", "16 MiB"),
    ),
    # A 24 MB member (generated headers of that size are real) is passed over unread.
    Case(
        "survey-tar-bomb", ("survey", "--tree", "{A}/tree.tar.xz"), 1, ("no kernel sources found",)
    ),
    Case("survey-btf-dev-zero", ("survey", "--btf", "/dev/zero"), 1, ("64 MiB",)),
    Case(
        "survey-csv-is-input",
        ("survey", "--tree", "t", "--csv", "t"),
        1,
        ("--csv t", "input"),
        {"t": "@mkdir"},
    ),
    Case("survey-chart-not-png", ("survey", "--tree", "t", "--chart", "c.txt"), 1, ("not a .png",)),
    Case("survey-tags-no-git", ("survey", "--tags", "v6.1"), 1, ("only with --git",)),
    Case("survey-git-no-git", ("survey", "--git", "nosuch"), 1, ("git: not found on PATH",)),
    # -- run, build, test, vm, bench, kernels ------------------------------------------
    Case("run-missing", ("run", "nosuch"), 1, ("nosuch",)),
    Case("run-dev-null", ("run", "/dev/null"), 1, ("/dev/null",)),
    Case("run-empty-dir", ("run", "d"), 1, ("neither a module nor BPF programs",), {"d": "@mkdir"}),
    Case("version", ("--version",), 0, ("kfunc 0.",)),
    Case(
        "run-a-file", ("run", "d/hello.c"), 1, ("a file, not a project", "(d)"), {"d/hello.c": ""}
    ),
    Case("run-timeout-zero", ("run", "d", "--timeout", "0"), 2, ("above 0",), {"d": "@mkdir"}),
    Case("run-timeout-nan", ("run", "d", "--timeout", "nan"), 2, ("above 0",), {"d": "@mkdir"}),
    Case("vm-lifetime-negative", ("vm", "start", "--lifetime", "-1"), 2, ("above 0",)),
    Case(
        "run-kernel-commas", ("run", "d", "-k", ","), 1, ("no kernel named",), {"d/p.bpf.c": BPF_C}
    ),
    Case(
        # The seed tutorial's program saved as kfunc.c (the name of its loader):
        # refused before a kernel is fetched, naming the file and the fix.
        "run-bpf-program-named-c",
        ("run", "d"),
        1,
        ("kfunc.c has SEC() programs", "rename kfunc.c to kfunc.bpf.c", 'sources = ["kfunc.c"]'),
        {"d/kfunc.c": BPF_C, "d/Makefile": "obj-m += hello.o\n", "d/hello.c": ""},
    ),
    Case(
        "run-bpf-program-named-c-alone",
        ("run", "d"),
        1,
        ("neither a module nor BPF programs", "kfunc.c has SEC() programs"),
        {"d/kfunc.c": BPF_C},
    ),
    Case("check-project-dir", ("check", "d"), 1, ("a directory", "kfunc build d"), {"d": "@mkdir"}),
    Case(
        "check-c-source",
        ("check", "d/p.bpf.c"),
        1,
        ("C source", "kfunc build d", "clang -g -O2 -target bpf -c d/p.bpf.c -o d/p.bpf.o"),
        {"d/p.bpf.c": BPF_C},
    ),
    Case("build-missing", ("build", "nosuch"), 1, ("nosuch",)),
    Case(
        "build-cache-proc-json",
        ("build", "--json", "p"),
        1,
        ("KFUNC_CACHE",),
        {"p/kfunc.toml": SPEC_OK},
        env={"KFUNC_CACHE": "/proc/kfunc"},
        json=True,
    ),
    Case("test-missing", ("test", "nosuch"), 1, ("nosuch",)),
    Case(
        "vm-status-cache-proc",
        ("vm", "status"),
        1,
        ("KFUNC_CACHE",),
        env={"KFUNC_CACHE": "/proc/kfunc"},
    ),
    Case("vm-bogus", ("vm", "bogus"), 2, ("invalid choice",)),
    Case("bench-no-fetch", ("bench", "calls", "--kernel", "5.10"), 1, ("5.10",)),
    Case("kernels-no-apt", ("kernels",), 0, ("SERIES",)),  # without apt: newest unknown
    Case(
        "kernels-cache-proc-json",
        ("kernels", "--json"),
        1,
        ("KFUNC_CACHE",),
        env={"KFUNC_CACHE": "/proc/kfunc"},
        json=True,
    ),
    Case(
        "vm-status-cache-proc-json",
        ("vm", "status", "--json"),
        1,
        ("KFUNC_CACHE",),
        env={"KFUNC_CACHE": "/proc/kfunc"},
        json=True,
    ),
    Case(
        "bench-old-kernel-json",
        ("bench", "calls", "--json", "-k", "5.10"),
        1,
        ("requires >= 5.16",),
        json=True,
    ),
    Case(
        "run-missing-json",
        ("run", "--json", "nosuch"),
        1,
        ("no such project directory",),
        json=True,
    ),
    Case(
        "diff-home-unset",
        ("diff", "host", "host"),
        0,
        ("0 added",),
        env={"HOME": None, "KFUNC_CACHE": None, "XDG_CACHE_HOME": "/proc/none"},
    ),
    Case(
        "survey-home-unset",
        ("survey", "--btf"),
        0,
        ("built kernel",),
        env={"HOME": None, "KFUNC_CACHE": None, "XDG_CACHE_HOME": "/proc/none"},
    ),
    Case(
        "header-home-proc",
        ("header", "--btf", "{A}/vmlinux.btf"),
        0,
        ("__ksym",),
        env={"HOME": "/proc", "KFUNC_CACHE": None},
    ),
    Case(
        "test-cache-proc",
        ("test", "p"),
        1,
        ("neither a module nor BPF programs",),
        {"p": "@mkdir"},
        env={"KFUNC_CACHE": "/proc/kfunc"},
    ),
    # -- command lines ----------------------------------------------------------------
    Case("argv-none", (), 2, ("required",)),
    Case("argv-unknown-command", ("nosuch",), 2, ("invalid choice",)),
    Case("argv-unknown-option", ("ls", "--bogus"), 2, ("unrecognized arguments: --bogus",)),
    Case("argv-unknown-option-json", ("ls", "--bogus", "--json"), 2, ("--bogus",), json=True),
    Case("argv-missing-value", ("ls", "--btf"), 2, ("expected one argument",)),
    Case("argv-missing-object", ("check",), 2, ("required",)),
    Case("argv-missing-object-json", ("check", "--json"), 2, ("required",), json=True),
    Case("argv-btf-and-ko", ("ls", "--btf", "a", "--ko", "b"), 2, ("not allowed with",)),
    Case("argv-non-utf8", ("ls", "--btf", "\udcff.btf"), 1, ("no such file",)),
    Case("argv-newline-path", ("ls", "--btf", "a\nb"), 1, ("a\\nb: no such file",)),
    Case("argv-escape-path", ("ls", "--btf", "\x1b[2J"), 1, ("\\x1b[2J: no such file",)),
]


# --- running the rows -----------------------------------------------------------


def _environment(case: Case, root: Path) -> dict[str, str]:
    """The guards, then the row's own changes."""
    for sub in ("home", "cache", "tmp", "bin"):
        (root / sub).mkdir(exist_ok=True)
    env = {
        "PATH": str(root / "bin"),  # empty: no apt-get, qemu, vng, clang, make
        "HOME": str(root / "home"),
        "KFUNC_CACHE": str(root / "cache"),
        "TMPDIR": str(root / "tmp"),
        "LANG": "C.UTF-8",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "COLUMNS": "200",
    }
    for key, value in case.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _make_files(case: Case, work: Path, assets: Path) -> None:
    for name, content in case.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "@mkdir":
            path.mkdir()
        elif isinstance(content, str) and content.startswith("@link:"):
            path.symlink_to(content.removeprefix("@link:"))
        elif isinstance(content, str) and content.startswith("@null"):
            # A character device of our own (1:3 is /dev/null's): an output
            # that renames a file over a device would replace this one only.
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        elif isinstance(content, str) and content.startswith("@copy:"):
            shutil.copy(assets / content.removeprefix("@copy:"), path)
            shutil.copy(path, path.with_suffix(".orig"))
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())


def _fill(arg: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        arg = arg.replace("{" + key + "}", value)
    return arg


def run_kfunc(
    argv: list[str],
    *,
    cwd: Path,
    logs: Path,
    env: dict[str, str],
    stdin: bytes | str | None = None,
    stdout: str | None = None,
    timeout: float = TIMEOUT,
    fsize: int | None = None,
) -> Outcome:
    """``python -m kfunc ARGV`` as its own child; its peak RSS as GNU time reports it.

    Not from this process's own ``os.wait4``: a child forked (or vforked) from
    pytest starts with pytest's memory, and Linux keeps the larger of the two
    high-water marks across exec (``exec_mmap`` records the old mm's), so a
    late test in a long session measured pytest, not kfunc (269 MB for a
    ``kfunc compat`` of 15 MB). ``/usr/bin/time`` is a small process that forks
    kfunc and reports that child's own peak.
    """
    out_path, err_path = logs / "stdout", logs / "stderr"
    usage_path = logs / "rusage"
    closers = []
    if stdout == "closed":
        read_end, write_end = os.pipe()
        os.close(read_end)
        out: int | object = write_end
        closers.append(write_end)
    elif stdout is not None:
        out = open(stdout, "wb")  # noqa: SIM115 - closed below
    else:
        out = open(out_path, "wb")  # noqa: SIM115 - closed below
    inp: object = subprocess.DEVNULL
    if isinstance(stdin, str):
        inp = open(stdin, "rb")  # noqa: SIM115 - closed below
    elif isinstance(stdin, bytes):
        inp = subprocess.PIPE
    with open(err_path, "wb") as err:
        limit = [] if fsize is None else ["/usr/bin/prlimit", f"--fsize={fsize}"]
        timer = ["/usr/bin/time", "-f", "%M", "-o", str(usage_path)]
        proc = subprocess.Popen(
            [*timer, *limit, sys.executable, "-m", "kfunc", *argv],
            cwd=cwd,
            env=env,
            stdin=inp,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    if isinstance(stdin, bytes):
        assert proc.stdin is not None

        def feed() -> None:
            try:
                proc.stdin.write(stdin)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

        threading.Thread(target=feed, daemon=True).start()
    killer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
    killer.start()
    try:
        _, wstatus, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
        for fd in closers:
            os.close(fd)
        for f in (out, inp):
            if hasattr(f, "close"):
                f.close()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(wstatus)
    rss_kb = usage.ru_maxrss  # if time itself was killed (the timeout): an upper bound
    report = usage_path.read_text().splitlines() if usage_path.exists() else []
    if report and report[-1].isdigit():
        rss_kb = int(report[-1])
        # time exits 128+N for a child killed by signal N; say -N, as wait4 would.
        m = re.match(r"Command terminated by signal (\d+)", report[0])
        if m:
            proc.returncode = -int(m[1])
    tmp = Path(env["TMPDIR"]) if "TMPDIR" in env else None
    return Outcome(
        proc.returncode,
        out_path.read_text(errors="replace") if out_path.exists() else "",
        err_path.read_text(errors="replace"),
        rss_kb / 1024,
        sorted(p.name for p in tmp.iterdir()) if tmp and tmp.exists() else [],
        cwd,
    )


def _run_case(case: Case, base: Path, values: dict[str, str], assets: Path) -> Outcome:
    # Named by number: a row's words must not match its own directory's name.
    root = base / f"c{CASES.index(case)}"
    work = root / "work"
    work.mkdir(parents=True)
    _make_files(case, work, assets)
    return run_kfunc(
        [_fill(a, values) for a in case.argv],
        cwd=Path(case.cwd) if case.cwd else work,
        logs=root,
        env=_environment(case, root),
        stdin=case.stdin,
        stdout=case.stdout,
        fsize=case.fsize,
    )


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest,
    assets: Path,
    kernels_files: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Outcome]:
    """Every selected row, run a few at a time."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if hasattr(item, "callspec")
        and "case" in item.callspec.params
        and item.module is request.module
    }
    values = {"A": str(assets), **kernels_files}
    able = {None, "kernels"} if kernels_files else {None}
    if os.geteuid() == 0:
        able.add("root")
    cases = [c for c in CASES if c.id in selected and c.needs in able]
    base = tmp_path_factory.mktemp("bad-input")
    with ThreadPoolExecutor(WORKERS) as pool:
        done = pool.map(lambda c: (c.id, _run_case(c, base, values, assets)), cases)
        return dict(done)


def _error_text(case: Case, out: Outcome) -> str:
    """The one error a failed row shows, as one string (message and fix)."""
    if case.json:
        lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
        obj = json.loads(out.stdout)
        assert isinstance(obj, dict) and obj.get("error"), out.stdout
        assert obj.get("ok") is False and "fix" in obj, obj
        assert "error:" not in out.stderr, out.stderr
        assert lines, out.stdout
        return f"{obj['error']} {obj['fix']}"
    if out.status == 2:  # argparse: usage, then one "kfunc CMD: error: ..." line
        errors = [ln for ln in out.stderr.splitlines() if ": error: " in ln]
        assert len(errors) == 1, out.stderr
        return errors[0]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    fixes = [ln for ln in out.stderr.splitlines() if ln.startswith("fix: ")]
    assert len(errors) == 1 and len(fixes) == 1, out.stderr
    return f"{errors[0]} {fixes[0]}"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail, strict=False)])
        if c.xfail
        else pytest.param(c, id=c.id)
        for c in CASES
    ],
)
def test_bad_input(case: Case, outcomes: dict[str, Outcome], kernels_files: dict) -> None:
    if case.needs == "kernels":
        require(bool(kernels_files), "Debian's 6.1 and 6.12 kernels could not be had")
    if case.needs == "root":
        require(os.geteuid() == 0, "making a device node (mknod) needs root")
    out = outcomes[case.id]
    assert "Traceback" not in out.stderr, out.stderr
    assert out.status == case.status, (out.status, out.stdout[-2000:], out.stderr[-2000:])
    assert out.rss_mb < case.rss_mb, f"peak RSS {out.rss_mb:.0f} MB"
    assert out.tmp_left == [], f"left in TMPDIR: {out.tmp_left}"
    if case.status in (0, 141):
        text = out.stdout + out.stderr
        if case.status == 141:
            assert out.stderr == "", out.stderr
    else:
        text = _error_text(case, out)
    for word in case.words:
        assert word in text, f"{word!r} not in: {text}"
    if case.after is not None:
        case.after(out.work)


def test_corpus_is_large_and_covers_every_command() -> None:
    assert len(CASES) >= 100
    # A row without KFUNC_CACHE must not reach the user's real cache (HOME
    # unset falls back to the password database's home).
    for c in CASES:
        if "KFUNC_CACHE" in c.env and c.env["KFUNC_CACHE"] is None:
            assert c.env.get("XDG_CACHE_HOME") or c.env.get("HOME"), c.id
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.argv[0] for c in CASES if c.argv and not c.argv[0].startswith("-")}
    from kfunc.cli import _COMMANDS

    assert set(_COMMANDS) <= commands | {"nosuch"}, set(_COMMANDS) - commands


# --- Ctrl-C ---------------------------------------------------------------------


def test_ctrl_c_while_reading_a_fifo(tmp_path: Path) -> None:
    """Interrupted while blocked reading its input (explain of a FIFO no one
    writes): exit 130, one line, no traceback, nothing left in TMPDIR."""
    work = tmp_path / "work"
    work.mkdir()
    fifo = work / "log"
    os.mkfifo(fifo)
    env = _environment(Case("x", (), 0), tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kfunc", "explain", str(fifo)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Ready when it has opened the FIFO to read it (a non-blocking open for
        # writing fails with ENXIO until then); it then waits in read().
        deadline = time.monotonic() + TIMEOUT
        writer = None
        while writer is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.05)
        assert writer is not None, proc.communicate()
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    os.close(writer)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted: stopped and cleaned up"], err
    assert list((tmp_path / "tmp").iterdir()) == []


def test_ctrl_c_at_any_moment(tmp_path: Path) -> None:
    """SIGINT at moments from the start to the end of a `kfunc ls`: kfunc
    answers 130 and one line. Before kfunc's first line runs the interpreter
    is starting: the signal's default action ends it (-SIGINT, nothing said)
    or, inside Python's own start-up, Python reports it; kfunc's code is never
    in a traceback."""
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(Case("x", (), 0), tmp_path)
    seen: dict[int, int] = {}
    for delay in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "kfunc", "ls", "--btf", "/dev/zero"],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
        seen[proc.returncode] = seen.get(proc.returncode, 0) + 1
        # No frame of kfunc's code but its two first lines (kfunc/__init__.py,
        # the top of kfunc/__main__.py, which installs the handler).
        frames = [ln for ln in err.splitlines() if ln.strip().startswith('File "')]
        ours = [f for f in frames if "/kfunc/" in f and "__init__.py" not in f]
        assert not [f for f in ours if not f.endswith("in <module>")], err
        if proc.returncode == 130:  # one line; after the error if it came as kfunc ended
            *before, last = err.strip().splitlines()
            assert last.startswith("interrupted"), err
            assert [ln.split(":")[0] for ln in before] in ([], ["error", "fix"]), err
        elif "64 MiB" in err:  # it refused /dev/zero before the signal came (or as
            # the interpreter was ending, when Python restores SIGINT's default)
            assert proc.returncode in (1, -signal.SIGINT), err
        else:  # the interpreter was starting: Python's own way to end
            assert proc.returncode == -signal.SIGINT or "KeyboardInterrupt" in err, err
    assert seen.get(130), seen


# --- the property test ------------------------------------------------------------

_SUBCOMMANDS = [
    "compat",
    "new",
    "build",
    "run",
    "test",
    "vm",
    "bench",
    "kernels",
    "ls",
    "header",
    "diff",
    "check",
    "explain",
    "survey",
]
_OPTIONS = [
    "--btf",
    "--ko",
    "--base",
    "--module",
    "--kernel",
    "--json",
    "--probe",
    "--obj",
    "-o",
    "--kfunc",
    "--weak",
    "--tree",
    "--csv",
    "--chart",
    "--tags",
    "--git",
    "--repeat",
    "--timeout",
    "--program",
    "--kernels",
    "--remove",
    "--refresh",
    "-k",
    "-m",
    "-p",
    "-v",
    "--help",
    "-",
    "--",
]
_PATHS = [
    "in.bin",
    "in.ko",
    "in.ko.xz",
    "in.o",
    "p",
    "p/kfunc.toml",
    "/dev/zero",
    "/dev/null",
    "/proc/self/status",
    "/nonexistent",
    "",
    ".",
    "..",
    "host",
]
_MAGICS = [b"", b"\x9f\xeb\x01\x00", b"\x7fELF\x02\x01\x01", b"\xfd7zXZ\x00", b"[module]\n"]
#: Kernel names that exist: with an empty cache and no apt-get they cannot be
#: fetched, but leave them out all the same, with what would boot a guest.
_NEVER = {"6.1", "6.12", "7.2", "7.3", "start", "calls"}

_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
_token = st.one_of(
    st.sampled_from(_OPTIONS),
    st.sampled_from(_PATHS),
    _text,
    st.integers(-(2**64), 2**64).map(str),
).filter(lambda t: t not in _NEVER)


#: Examples per run: 30 keep the test ~15 s; KFUNC_FUZZ_EXAMPLES=1000 for a hunt.
FUZZ_EXAMPLES = int(os.environ.get("KFUNC_FUZZ_EXAMPLES", "30"))


def _grammar(command: str) -> tuple[list[tuple[str, int]], int]:
    """``command``'s options (each with how many values it takes, -1: some) and
    its number of positionals, read from kfunc's own parser."""
    import argparse

    from kfunc.cli import build_parser

    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options, positionals = [], 0
    for action in sub.choices[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        takes = 0 if action.nargs == 0 else 1 if action.nargs in (None, "?") else -1
        if action.option_strings:
            options.append((action.option_strings[-1], takes))
        elif isinstance(action, argparse._SubParsersAction):
            options += [(name, 0) for name in action.choices]
        else:
            positionals += 1
    return options, positionals


#: Read once, at collection: a strategy must not import (tempfile seeds `random`).
_GRAMMARS = {command: _grammar(command) for command in _SUBCOMMANDS}
_value = st.one_of(st.sampled_from(_PATHS), _token)


@st.composite
def _command_line(draw: st.DrawFn) -> list[str]:
    """A command line of one subcommand, mostly shaped as its parser accepts."""
    command = draw(st.sampled_from(_SUBCOMMANDS))
    options, positionals = _GRAMMARS[command]
    argv = [command]
    for _ in range(draw(st.integers(0, 4))):
        option, takes = draw(st.sampled_from(options)) if options else ("--json", 0)
        argv.append(option)
        argv += [draw(_value) for _ in range(takes if takes >= 0 else draw(st.integers(1, 3)))]
    argv += [draw(_value) for _ in range(draw(st.integers(0, positionals + 1)))]
    if draw(st.booleans()) and draw(st.booleans()):
        argv += draw(st.lists(_token, max_size=3))  # and some noise
    return [a for a in argv if a not in _NEVER]


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    argv=_command_line(),
    magic=st.sampled_from(_MAGICS),
    content=st.binary(max_size=2048),
    toml=st.text(max_size=200),
)
def test_random_command_lines(
    tmp_path_factory: pytest.TempPathFactory,
    argv: list[str],
    magic: bytes,
    content: bytes,
    toml: str,
) -> None:
    """Whatever the command line and the files: no traceback, an exit code in
    {0, 1, 2, 130}, bounded RSS, nothing left in TMPDIR."""
    root = tmp_path_factory.mktemp("random")
    work = root / "work"
    (work / "p").mkdir(parents=True)
    for name in ("in.bin", "in.ko", "in.ko.xz", "in.o"):
        (work / name).write_bytes(magic + content)
    (work / "p" / "kfunc.toml").write_text(toml)
    env = _environment(Case("x", (), 0), root)
    out = run_kfunc(argv, cwd=work, logs=root, env=env, stdin=content)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.status in (0, 1, 2, 130), (out.status, out.stderr[-2000:])
    assert out.rss_mb < 200, f"peak RSS {out.rss_mb:.0f} MB"
    assert out.tmp_left == [], out.tmp_left


def test_fifo_and_special_inputs_are_not_stat_only(tmp_path: Path) -> None:
    """A FIFO passes the stat check (its size is 0) and is read up to the cap."""
    from kfunc.inputs import InputError, check_file, read_bytes

    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(check_file(fifo, "log").st_mode)

    def writer() -> None:
        with open(fifo, "wb") as f:
            f.write(b"hello")

    threading.Thread(target=writer).start()
    assert read_bytes(fifo, "log") == b"hello"
    with pytest.raises(InputError, match="64 MiB"):
        read_bytes("/dev/zero", "log")
