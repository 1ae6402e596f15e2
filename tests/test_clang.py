"""kfunc.clang with the real clang: objects, up-to-date checks, one-line errors."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from kfunc.clang import (
    INCLUDE_PROBE,
    _major_version,
    bpf_cflags,
    compile_bpf,
    find_clang,
    system_include_dirs,
    up_to_date,
)
from kfunc.errors import BuildError, MissingToolError

needs_clang = pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed")

EM_BPF = 247

# No vmlinux.h needed: plain C with a header of its own.
GOOD_C = r"""
#include "answer.h"

__attribute__((section("syscall"), used))
int answer(void *ctx)
{
	return ANSWER;
}

char LICENSE[] __attribute__((section("license"), used)) = "GPL";
"""

BROKEN_C = r"""
int first(void *ctx)
{
	return undeclared_one;
}

int second(void *ctx)
{
	return undeclared_two;
}
"""


@pytest.fixture
def good(tmp_path: Path) -> tuple[Path, Path]:
    """A compilable source and the header it includes."""
    src = tmp_path / "good.bpf.c"
    src.write_text(GOOD_C)
    header = tmp_path / "answer.h"
    header.write_text("#define ANSWER 42\n")
    return src, header


def _age(path: Path, seconds: int) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - seconds * 1_000_000_000))


@needs_clang
def test_compiles_a_bpf_object(good: tuple[Path, Path], tmp_path: Path) -> None:
    src, header = good
    out = compile_bpf(src, tmp_path / "out" / "good.o", depends=[header])
    elf = out.read_bytes()
    assert elf[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", elf, 18)[0] == EM_BPF
    assert b".BTF" in elf  # -g gives the object BTF


@needs_clang
def test_default_output_beside_source(good: tuple[Path, Path]) -> None:
    src, _ = good
    assert compile_bpf(src) == src.with_suffix(".o")
    assert src.with_suffix(".o").is_file()


@needs_clang
def test_skips_when_up_to_date(good: tuple[Path, Path]) -> None:
    src, header = good
    _age(src, 20)
    _age(header, 20)
    out = compile_bpf(src, depends=[header])
    _age(out, 10)  # still newer than its inputs, and clearly older than "now"
    built = out.stat().st_mtime_ns
    assert up_to_date(out, [src, header])
    assert compile_bpf(src, depends=[header]).stat().st_mtime_ns == built

    os.utime(header)  # a dependency changed: rebuild
    assert not up_to_date(out, [src, header])
    assert compile_bpf(src, depends=[header]).stat().st_mtime_ns > built


@needs_clang
def test_error_is_one_line_and_log_is_full(tmp_path: Path) -> None:
    src = tmp_path / "broken.bpf.c"
    src.write_text(BROKEN_C)
    with pytest.raises(BuildError) as info:
        compile_bpf(src)
    error = info.value
    assert error.message == (
        f"clang: {src}:4:9: error: use of undeclared identifier 'undeclared_one'"
    )
    assert "\n" not in error.message
    assert "undeclared_two" in error.log
    assert not src.with_suffix(".o").exists()


@needs_clang
def test_missing_include_is_a_fatal_error(tmp_path: Path) -> None:
    src = tmp_path / "noinc.bpf.c"
    src.write_text('#include "vmlinux.h"\n')
    with pytest.raises(
        BuildError, match=r"^clang: .*noinc\.bpf\.c:1:10: fatal error: 'vmlinux\.h'"
    ):
        compile_bpf(src)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no such file"):
        compile_bpf(tmp_path / "absent.c")


def test_missing_dependency(good: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = good
    with pytest.raises(BuildError, match=r"missing dependency .*vmlinux\.h"):
        compile_bpf(src, depends=[tmp_path / "vmlinux.h"])


def test_missing_clang(good: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    src, _ = good
    monkeypatch.setenv("PATH", str(src.parent))
    with pytest.raises(MissingToolError) as info:
        compile_bpf(src)
    assert info.value.tool == "clang"
    assert "apt-get install clang" in str(info.value)


def test_the_newest_clang_is_used() -> None:
    # make deps installs clang-16 beside Debian 12's clang 14, which drops the
    # type tag of a kptr (examples/refobj stores one in a map).
    clang = find_clang()
    assert _major_version(clang) >= 16, clang
    assert _major_version(clang) >= _major_version(shutil.which("clang") or clang)


UAPI_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef unsigned int u32;

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	u32 len = ctx->data_end - ctx->data;

	return len ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
"""


@needs_clang
def test_linux_bpf_h_compiles_with_the_system_dirs_after(tmp_path: Path) -> None:
    """<linux/bpf.h> includes <asm/types.h>, in the multiarch dir that ``-target bpf``
    does not search: kfunc passes clang's own search list with -idirafter, as
    libbpf-bootstrap's Makefile does."""
    dirs = system_include_dirs((find_clang(), *INCLUDE_PROBE))
    assert "/usr/include" in dirs
    assert any(d.endswith("-linux-gnu") for d in dirs), dirs
    flags = bpf_cflags([tmp_path], "x86", dirs)
    assert flags.index(f"-I{tmp_path}") < flags.index("-idirafter/usr/include")
    src = tmp_path / "uapi.bpf.c"
    src.write_text(UAPI_C)
    out = compile_bpf(src, tmp_path / "uapi.o")
    assert out.read_bytes()[:4] == b"\x7fELF"
