"""Target kernels: versions, Debian package resolution, vmlinux out of a bzImage."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from kfunc.elf import ElfObject
from kfunc.errors import KernelNotFoundError, KfuncError
from kfunc.kernel_api.version import KernelVersion
from kfunc.kernels.target import SERIES, Kernel, get_kernel
from kfunc.kernels.vmlinuz import extract_vmlinux


def test_versions_order_and_parse() -> None:
    assert KernelVersion.parse("6.12.117-1~deb12u1") == KernelVersion(6, 12, 117)
    assert KernelVersion.parse("v6.1") == KernelVersion(6, 1, 0)
    assert KernelVersion(6, 9) < KernelVersion(6, 10) < KernelVersion(6, 12, 1)
    assert KernelVersion(6, 12, 117).series == "6.12"
    with pytest.raises(ValueError):
        KernelVersion.parse("bookworm")


def test_unknown_kernel_names_the_known_ones() -> None:
    with pytest.raises(KernelNotFoundError) as err:
        get_kernel("9.9")
    assert "kernel '9.9': unknown" in err.value.message
    assert err.value.fix is not None
    for series in SERIES:
        assert series in err.value.fix


@pytest.mark.parametrize("fixture", ["kernel_612", "kernel_61"])
def test_vmlinux_from_bzimage_carries_the_kernels_btf(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    kernel: Kernel = request.getfixturevalue(fixture)
    out = extract_vmlinux(kernel.vmlinuz, tmp_path / "vmlinux")
    elf = ElfObject(out)
    assert elf.has_section(".BTF") and elf.has_section(".BTF_ids")
    btf = elf.btf()
    assert btf.find("bpf_prog") is not None
    # Debian's 6.12 headers ship a BTF-only vmlinux of the same build: the
    # same bytes. (6.1's headers ship none; that is why we extract it.)
    headers_vmlinux = kernel.build_dir / "vmlinux"
    if not headers_vmlinux.is_symlink():
        assert ElfObject(headers_vmlinux).section(".BTF") == elf.section(".BTF")


def test_private_build_tree_builds_btf_on_61(kernel_61: Kernel) -> None:
    build = kernel_61.build_dir
    # Nothing of the host: the Makefile includes our unpacked common tree.
    assert f"include {kernel_61.root}/usr/src/" in (build / "Makefile").read_text()
    assert (build / "vmlinux").resolve() == kernel_61.vmlinux
    assert (build / "tools/bpf/resolve_btfids/resolve_btfids").exists()


def test_cached_kernel_is_reused_without_apt(kernel_612: Kernel, monkeypatch) -> None:
    import kfunc.kernels.debian as debian

    def no_apt(*args: str) -> str:
        raise AssertionError(f"apt was asked: {args}")

    monkeypatch.setattr(debian.Apt, "query", no_apt)
    monkeypatch.setattr(debian.Apt, "download", no_apt)
    assert get_kernel("6.12") == kernel_612
    assert get_kernel(kernel_612.release) == kernel_612


def _bzimage(payload: bytes, setup_sects: int = 1) -> bytes:
    image = bytearray(0x260 + (setup_sects + 1) * 512)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x20F)
    struct.pack_into("<II", image, 0x248, 0, len(payload))
    image[(setup_sects + 1) * 512 :] = b""
    return bytes(image) + payload


def test_vmlinuz_errors_name_the_problem(tmp_path: Path) -> None:
    import gzip

    cases = {
        b"not a kernel at all" * 40: "not a bzImage",
        _bzimage(b"")[:0x260]: "lies outside the file",
        _bzimage(b"\x00\x01\x02\x03" * 4 + struct.pack("<I", 64)): "unknown compression",
        _bzimage(gzip.compress(b"not an elf") + struct.pack("<I", 10)): "not an ELF",
        _bzimage(b"\x1f\x8b\x08\x00garbage!" + struct.pack("<I", 10)): "does not decompress",
        _bzimage(b"\x1f\x8b" + bytes(10) + struct.pack("<I", 0xFFFFFFF0)): "not plausible",
    }
    for i, (data, expected) in enumerate(cases.items()):
        path = tmp_path / f"vmlinuz-{i}"
        path.write_bytes(data)
        with pytest.raises(KfuncError) as err:
            extract_vmlinux(path, tmp_path / f"out-{i}")
        assert expected in err.value.message, (expected, err.value.message)
        assert str(path) in err.value.message
        assert not (tmp_path / f"out-{i}").exists()


def test_gzip_payload_roundtrip(tmp_path: Path) -> None:
    import gzip

    elf = b"\x7fELF" + bytes(60)
    path = tmp_path / "vmlinuz"
    path.write_bytes(_bzimage(gzip.compress(elf) + struct.pack("<I", len(elf))))
    assert extract_vmlinux(path, tmp_path / "vmlinux").read_bytes() == elf


def test_release_of_refuses_a_name_that_is_no_kernel() -> None:
    """`kfunc kernels --release` (the CI workflow's cache key) never echoes a typo
    back as if it were a release; a release or a local kernel is its own answer."""
    from kfunc.kernels.catalog import release_of

    with pytest.raises(KernelNotFoundError, match="neither a series nor a Debian release"):
        release_of("banana")
    assert release_of("6.12.117+deb12-amd64") == "6.12.117+deb12-amd64"
    assert release_of("host") == "host"
