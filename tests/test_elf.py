"""ELF sections: BTF of a clang-built BPF object, split BTF and kfunc ID sets
of Debian modules and vmlinux, cross-checked with bpftool; KF_* flags."""

from __future__ import annotations

import lzma
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import common_headers, modules_dir

from kfunc.btf import BTF, Datasec, Func, Struct, func_prototype, ksym_extern
from kfunc.btf import format as fmt
from kfunc.elf import ElfObject
from kfunc.errors import BTFError, ELFError
from kfunc.kernel_api.flags import BTF_SET8_KFUNCS, KF_FLAGS, kf_flag_names, kf_flag_value
from kfunc.kernels.target import Kernel

NF_CT_KFUNCS = {
    "bpf_xdp_ct_alloc": ["KF_ACQUIRE", "KF_RET_NULL"],
    "bpf_xdp_ct_lookup": ["KF_ACQUIRE", "KF_RET_NULL"],
    "bpf_skb_ct_alloc": ["KF_ACQUIRE", "KF_RET_NULL"],
    "bpf_skb_ct_lookup": ["KF_ACQUIRE", "KF_RET_NULL"],
    "bpf_ct_insert_entry": ["KF_ACQUIRE", "KF_RELEASE", "KF_RET_NULL"],
    "bpf_ct_release": ["KF_RELEASE"],
    "bpf_ct_set_timeout": ["KF_TRUSTED_ARGS"],
    "bpf_ct_change_timeout": ["KF_TRUSTED_ARGS"],
    "bpf_ct_set_status": ["KF_TRUSTED_ARGS"],
    "bpf_ct_change_status": ["KF_TRUSTED_ARGS"],
}

BPF_SOURCE = r"""
typedef unsigned int u32;
typedef unsigned long long u64;

struct packet_bits {
    u32 version: 4;
    u32 ihl: 4;
    u32 tos: 8;
    u64 stamp;
    const char *name;
    int (*cb)(void *ctx, u32 len);
    char tag[6];
};

extern u64 bpf_kfunc_call_test(u32 a, u64 b, u32 c, u64 d) __attribute__((section(".ksyms")));

__attribute__((section("kprobe/do_unlinkat"), used))
int handle(struct packet_bits *p)
{
    return bpf_kfunc_call_test(p->version, p->stamp, p->ihl, p->tos);
}

char LICENSE[] __attribute__((section("license"), used)) = "GPL";
"""


def headers_vmlinux(kernel: Kernel) -> Path:
    """Debian's BTF-only vmlinux of the 6.12 headers (with .symtab, unlike
    the one taken out of the vmlinuz)."""
    return kernel.build_dir / "vmlinux"


def bpftool(*args: str) -> list[str]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed (apt-get install bpftool)")
    return subprocess.run(
        ["bpftool", *args], capture_output=True, text=True, check=True
    ).stdout.splitlines()


@pytest.fixture(scope="module")
def bpf_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("clang") is None:
        pytest.skip("clang not installed (apt-get install clang)")
    src = tmp_path_factory.mktemp("bpf") / "prog.bpf.c"
    src.write_text(BPF_SOURCE)
    obj = src.with_suffix(".o")
    subprocess.run(
        ["clang", "-g", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True
    )
    return obj


@pytest.fixture(scope="module")
def vmlinux612(kernel_612: Kernel) -> BTF:
    return ElfObject(headers_vmlinux(kernel_612)).btf()


@pytest.fixture(scope="module")
def nf_conntrack612(kernel_612: Kernel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ko = tmp_path_factory.mktemp("ko") / "nf_conntrack.ko"
    xz = modules_dir(kernel_612) / "net/netfilter/nf_conntrack.ko.xz"
    ko.write_bytes(lzma.decompress(xz.read_bytes()))
    return ko


# --- a BPF object built by clang --------------------------------------------


def test_bpf_object_btf(bpf_object: Path) -> None:
    elf = ElfObject(bpf_object)
    assert elf.has_section(".BTF") and not elf.has_section(".BTF_ids")
    btf = elf.btf()
    ref = bpftool("btf", "dump", "file", str(bpf_object))
    assert len(btf) - 1 == sum(line.startswith("[") for line in ref)

    kfunc = btf.find("bpf_kfunc_call_test", Func)
    assert kfunc is not None and kfunc.linkage == fmt.BTF_FUNC_EXTERN
    # clang keeps no parameter names for an extern's prototype.
    assert func_prototype(btf, kfunc) == "u64 bpf_kfunc_call_test(u32, u64, u32, u64)"
    assert ksym_extern(btf, kfunc) == "extern u64 bpf_kfunc_call_test(u32, u64, u32, u64) __ksym;"
    handle = btf.find("handle", Func)
    assert handle is not None
    assert func_prototype(btf, handle) == "int handle(struct packet_bits *p)"
    ksyms = btf.find(".ksyms", Datasec)
    assert ksyms is not None and [v.type for v in ksyms.vars] == [kfunc.id]

    bits = btf.find("packet_bits", Struct)
    assert bits is not None
    layout = [(m.name, m.bit_offset, m.bitfield_size) for m in bits.members]
    assert layout == [
        ("version", 0, 4),
        ("ihl", 4, 4),
        ("tos", 8, 8),
        ("stamp", 64, 0),
        ("name", 128, 0),
        ("cb", 192, 0),
        ("tag", 256, 0),
    ]
    # The same facts as bpftool prints them.
    block = ref[ref.index(next(x for x in ref if "STRUCT 'packet_bits'" in x)) + 1 :][:7]
    assert [re.sub(r" type_id=\d+", "", x.strip()) for x in block] == [
        f"'{name}' bits_offset={off}" + (f" bitfield_size={size}" if size else "")
        for name, off, size in layout
    ]


# --- kfunc ID sets ------------------------------------------------------------


def test_module_kfunc_set_612(kernel_612: Kernel, vmlinux612: BTF, nf_conntrack612: Path) -> None:
    elf = ElfObject(nf_conntrack612)
    module = elf.btf(vmlinux612)
    (kfunc_set,) = [s for s in elf.btf_id_sets() if s.set8]
    assert kfunc_set.name == "nf_ct_kfunc_set"
    assert kfunc_set.flags == BTF_SET8_KFUNCS  # BTF_KFUNCS_START, 6.9+
    found = {}
    for entry in kfunc_set.entries:
        func = module[entry.btf_id]
        assert isinstance(func, Func)
        found[func.name] = entry.flag_names
    assert found == NF_CT_KFUNCS
    # bpftool names the same ids.
    base = headers_vmlinux(kernel_612)
    ref = bpftool("-B", str(base), "btf", "dump", "file", str(nf_conntrack612))
    for entry in kfunc_set.entries:
        assert any(line.startswith(f"[{entry.btf_id}] FUNC '") for line in ref)


def test_compressed_module_reads_the_same(kernel_612: Kernel, nf_conntrack612: Path) -> None:
    xz = modules_dir(kernel_612) / "net/netfilter/nf_conntrack.ko.xz"
    assert ElfObject(xz).btf_id_sets() == ElfObject(nf_conntrack612).btf_id_sets()
    assert ElfObject(xz).section(".BTF") == ElfObject(nf_conntrack612).section(".BTF")


def test_vmlinux_sets_use_virtual_addresses(kernel_612: Kernel, vmlinux612: BTF) -> None:
    sets = ElfObject(headers_vmlinux(kernel_612)).btf_id_sets()
    by_name = {s.name: s for s in sets}
    rstat = by_name["bpf_rstat_kfunc_ids"]
    names = {vmlinux612[e.btf_id].name: e.flag_names for e in rstat.entries}
    assert names == {"cgroup_rstat_updated": [], "cgroup_rstat_flush": ["KF_SLEEPABLE"]}
    # resolve_btfids sorts a set8 by id, for the kernel's bsearch.
    assert [e.btf_id for e in rstat.entries] == sorted(e.btf_id for e in rstat.entries)
    # Every kfunc set of the kernel holds FUNCs only.
    kfunc_sets = [s for s in sets if s.set8 and s.flags & BTF_SET8_KFUNCS]
    assert len(kfunc_sets) > 10
    for s in kfunc_sets:
        assert all(isinstance(vmlinux612[e.btf_id], Func) for e in s.entries), s.name
    # Plain btf_id_set sets are read too (their entries carry no flags).
    plain = [s for s in sets if not s.set8]
    assert plain and all(e.flags == 0 for s in plain for e in s.entries)


def test_module_kfunc_set_61(kernel_61: Kernel) -> None:
    ko = modules_dir(kernel_61) / "net/netfilter/nf_conntrack.ko"  # 6.1's are uncompressed
    elf = ElfObject(ko)
    (kfunc_set,) = [s for s in elf.btf_id_sets() if s.set8]
    assert kfunc_set.name == "nf_ct_kfunc_set"
    assert kfunc_set.flags == 0  # BTF_SET8_START before 6.9 has no kfunc flag
    flags = sorted(e.flag_names for e in kfunc_set.entries)
    assert flags == sorted(NF_CT_KFUNCS.values())
    assert all(e.btf_id for e in kfunc_set.entries)
    # Split over the 6.1 vmlinux (extracted from vmlinuz), as bpftool reads it.
    module = elf.btf(ElfObject(kernel_61.vmlinux).btf())
    assert {module[e.btf_id].name: e.flag_names for e in kfunc_set.entries} == NF_CT_KFUNCS
    ref = bpftool("-B", str(kernel_61.vmlinux), "btf", "dump", "file", str(ko))
    assert len(module) - module.start_id == sum(line.startswith("[") for line in ref)


def test_stripped_vmlinux_has_no_set_symbols(kernel_61: Kernel) -> None:
    # vmlinux extracted from a vmlinuz keeps .BTF_ids but no .symtab to find sets by.
    elf = ElfObject(kernel_61.vmlinux)
    assert elf.has_section(".BTF_ids") and not elf.has_section(".symtab")
    assert elf.btf_id_sets() == []


def test_corrupt_set_count_is_an_elf_error(nf_conntrack612: Path, tmp_path: Path) -> None:
    data = bytearray(nf_conntrack612.read_bytes())
    elf = ElfObject(nf_conntrack612)
    ids = elf._elf.get_section_by_name(".BTF_ids")  # the set sits at offset 8
    struct.pack_into("<I", data, ids["sh_offset"] + 8, 0x0FFFFFFF)
    bad = tmp_path / "bad.ko"
    bad.write_bytes(bytes(data))
    with pytest.raises(ELFError, match=r"set 'nf_ct_kfunc_set' at offset 0x8: \d+ entries run"):
        ElfObject(bad).btf_id_sets()


# --- errors ---------------------------------------------------------------------


def test_elf_errors(tmp_path: Path, bpf_object: Path) -> None:
    with pytest.raises(ELFError, match="cannot read"):
        ElfObject(tmp_path / "missing.ko")
    text = tmp_path / "notes.txt"
    text.write_text("not an ELF file\n")
    with pytest.raises(ELFError, match="malformed ELF file"):
        ElfObject(text)
    empty = tmp_path / "empty.o"
    empty.touch()
    with pytest.raises(ELFError, match="malformed ELF file"):
        ElfObject(empty)
    bad_xz = tmp_path / "bad.ko.xz"
    bad_xz.write_bytes(b"garbage")
    with pytest.raises(ELFError, match="cannot decompress"):
        ElfObject(bad_xz)
    truncated = tmp_path / "truncated.o"
    truncated.write_bytes(bpf_object.read_bytes()[:200])
    with pytest.raises(ELFError, match="malformed ELF file"):
        ElfObject(truncated).section(".BTF")
    with pytest.raises(ELFError, match=r"no \.nothing section"):
        ElfObject(bpf_object).section(".nothing")
    no_btf = tmp_path / "plain.o"
    src = tmp_path / "plain.c"
    src.write_text("int x;\n")
    subprocess.run(
        ["clang", "-O2", "-target", "bpf", "-c", str(src), "-o", str(no_btf)], check=True
    )
    with pytest.raises(ELFError, match=r"no \.BTF section") as err:
        ElfObject(no_btf).btf()
    assert err.value.fix is not None
    assert ElfObject(no_btf).btf_id_sets() == []
    corrupt = bytearray(bpf_object.read_bytes())
    btf_at = corrupt.find(fmt.BTF_MAGIC.to_bytes(2, "little"))
    corrupt[btf_at + 2] = 9  # BTF version
    bad_btf = tmp_path / "bad_btf.o"
    bad_btf.write_bytes(bytes(corrupt))
    with pytest.raises(BTFError, match="unsupported BTF version 9"):
        ElfObject(bad_btf).btf()


# --- KF_* flags -------------------------------------------------------------------


def test_kf_flags_table() -> None:
    assert [f.bit for f in KF_FLAGS] == list(range(len(KF_FLAGS)))
    assert kf_flag_names(0) == []
    assert kf_flag_names(1 << 0 | 1 << 2 | 1 << 5) == ["KF_ACQUIRE", "KF_RET_NULL", "KF_SLEEPABLE"]
    assert kf_flag_names(1 << 11) == ["KF_RCU_PROTECTED"]
    assert kf_flag_names(1 << 30) == ["0x40000000"]
    assert kf_flag_value(["KF_ACQUIRE", "KF_RET_NULL"]) == 0b101
    assert kf_flag_value(kf_flag_names(0x1FFFF)) == 0x1FFFF
    with pytest.raises(KeyError):
        kf_flag_value(["KF_NOPE"])
    kptr_get = next(f for f in KF_FLAGS if f.name == "KF_KPTR_GET")
    assert (kptr_get.value, kptr_get.since, kptr_get.removed) == (8, "6.0", "6.4")


@pytest.mark.parametrize("fixture", ["kernel_61", "kernel_612"])
def test_kf_flags_match_kernel_headers(fixture: str, request: pytest.FixtureRequest) -> None:
    kernel: Kernel = request.getfixturevalue(fixture)
    text = (common_headers(kernel) / "include/linux/btf.h").read_text()
    defined = {
        name: 1 << int(bit) for name, bit in re.findall(r"#define (KF_\w+)\s+\(1 << (\d+)\)", text)
    }
    assert defined
    ours = {f.name: f.value for f in KF_FLAGS if f.name in defined}
    assert ours == defined
    major, minor = map(int, kernel.series.split("."))
    for flag in KF_FLAGS:
        since = tuple(map(int, flag.since.split(".")))
        gone = flag.removed and tuple(map(int, flag.removed.split("."))) <= (major, minor)
        assert (flag.name in defined) == (since <= (major, minor) and not gone), flag.name
