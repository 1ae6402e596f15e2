"""kfunc inventories against the reference tools: bpftool and libbpf on the
host's BTF, symbol-located sets against the symbol-less scan, real Debian
kernels and modules, and the 6.1 -> 6.12 API difference."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import modules_dir, require
from test_btf import libbpf_declarations

from kfunc.apidiff import diff_inventories
from kfunc.btf import Func, parse_btf
from kfunc.btf.ids import scan_set8
from kfunc.elf import ElfObject
from kfunc.errors import BTFError, ELFError, KfuncError
from kfunc.inventory import (
    SOURCE_BTF_IDS,
    SOURCE_DECL_TAG,
    Inventory,
    Kfunc,
    elf_kfuncs,
    file_inventory,
    helper_count,
    host_inventory,
    kernel_inventory,
    kfunc_sets,
    ksym_header,
    set_kfuncs,
    tagged_kfuncs,
)
from kfunc.kbuild import ModuleBuild
from kfunc.kernel_api.flags import BTF_SET8_KFUNCS
from kfunc.kernels.target import Kernel

SYS_VMLINUX = Path("/sys/kernel/btf/vmlinux")
NF_CT_KFUNCS = {
    "bpf_xdp_ct_alloc": ("KF_ACQUIRE", "KF_RET_NULL"),
    "bpf_xdp_ct_lookup": ("KF_ACQUIRE", "KF_RET_NULL"),
    "bpf_skb_ct_alloc": ("KF_ACQUIRE", "KF_RET_NULL"),
    "bpf_skb_ct_lookup": ("KF_ACQUIRE", "KF_RET_NULL"),
    "bpf_ct_insert_entry": ("KF_ACQUIRE", "KF_RELEASE", "KF_RET_NULL"),
    "bpf_ct_release": ("KF_RELEASE",),
    "bpf_ct_set_timeout": ("KF_TRUSTED_ARGS",),
    "bpf_ct_change_timeout": ("KF_TRUSTED_ARGS",),
    "bpf_ct_set_status": ("KF_TRUSTED_ARGS",),
    "bpf_ct_change_status": ("KF_TRUSTED_ARGS",),
}


def bpftool(*args: str) -> list[str]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed (apt-get install bpftool)")
    return subprocess.run(
        ["bpftool", *args], capture_output=True, text=True, check=True
    ).stdout.splitlines()


def bpftool_funcs(path: Path) -> set[str]:
    """Names of the FUNCs bpftool finds in a BTF or ELF file."""
    return {
        line.split("'")[1]
        for line in bpftool("btf", "dump", "file", str(path))
        if " FUNC '" in line
    }


@pytest.fixture(scope="module")
def host() -> Inventory:
    if not SYS_VMLINUX.exists():
        pytest.skip(f"{SYS_VMLINUX} not present (the host kernel has no BTF)")
    return file_inventory(SYS_VMLINUX, cache=False)


# --- the host's BTF: decl tags ---------------------------------------------------


def test_host_count_matches_bpftool_decl_tags(host: Inventory) -> None:
    tags = bpftool("btf", "dump", "file", str(SYS_VMLINUX))
    assert len(host.kfuncs) == sum("DECL_TAG 'bpf_kfunc'" in line for line in tags) > 100
    assert {k.owner for k in host.kfuncs} == {"vmlinux"}
    assert {k.source for k in host.kfuncs} == {SOURCE_DECL_TAG}
    assert all(k.flags is None for k in host.kfuncs)  # tags carry no KF_* flags
    assert host.helpers is not None and host.helpers > 200


def test_host_prototypes_match_libbpf(host: Inventory) -> None:
    btf = parse_btf(SYS_VMLINUX.read_bytes(), name="vmlinux")
    funcs = [btf.find(k.name, Func) for k in host.kfuncs]
    assert all(funcs)
    refs = libbpf_declarations(SYS_VMLINUX, funcs)  # type: ignore[arg-type]
    for kfunc, ref in zip(host.kfuncs, refs, strict=True):
        # libbpf 1.1 writes `f()` for no parameters (newer ones `f(void)`) and
        # does not know type attributes (TYPE_TAG with kind_flag, libbpf 1.6).
        ref = ref.replace("()", "(void)")
        ref = ref.replace('btf_type_tag("address_space(1)")', "address_space(1)")
        assert kfunc.prototype == ref, kfunc.name


def test_host_inventory_is_cached_per_file(tmp_path: Path) -> None:
    if not SYS_VMLINUX.exists():
        pytest.skip(f"{SYS_VMLINUX} not present")
    copy = tmp_path / "vmlinux.btf"
    copy.write_bytes(SYS_VMLINUX.read_bytes())
    first = file_inventory(copy)
    assert file_inventory(copy) == first
    # A changed file (size, mtime, first bytes) is read again.
    blob = bytearray(copy.read_bytes())
    copy.write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(BTFError, match="runs past the end"):
        file_inventory(copy)
    assert host_inventory() == file_inventory(SYS_VMLINUX)


def test_header_for_host_kfuncs(host: Inventory) -> None:
    inv = host.select(names=["bpf_task_acquire", "bpf_task_release"])
    text = ksym_header(inv.kfuncs)
    assert "extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;" in text
    assert "extern void bpf_task_release(struct task_struct *p) __ksym;" in text
    weak = ksym_header(inv.kfuncs, weak=True)
    assert "bpf_task_release(struct task_struct *p) __ksym __weak;" in weak
    with pytest.raises(KfuncError, match="no kfunc bpf_nope"):
        host.select(names=["bpf_nope"])
    with pytest.raises(KfuncError, match="no kfuncs owned by 'nf_conntrack'"):
        host.select(module="nf_conntrack")


@pytest.mark.host
def test_weak_header_loads_where_a_kfunc_is_missing(host: Inventory, tmp_path: Path) -> None:
    """The weak header is C that clang and libbpf take: a kfunc the kernel has
    resolves, one it lacks is NULL (``bpf_ksym_exists()``), and the program loads."""
    require(os.geteuid() == 0, "loading BPF programs needs root")
    require(shutil.which("clang") is not None, "clang is needed")
    from kfunc.clang import compile_bpf
    from kfunc.libbpf import BpfObject, write_vmlinux_h

    missing = Kfunc("kfunc_no_such_kfunc", "int kfunc_no_such_kfunc(int x)", "vmlinux", None,
                    (), SOURCE_DECL_TAG)  # fmt: skip
    kfuncs = host.select(names=["bpf_task_release"]).kfuncs
    (tmp_path / "kfuncs.h").write_text(ksym_header([*kfuncs, missing], weak=True))
    write_vmlinux_h(SYS_VMLINUX, tmp_path / "vmlinux.h")
    src = tmp_path / "weak.bpf.c"
    src.write_text(
        '#include "vmlinux.h"\n#include <bpf/bpf_helpers.h>\n#include "kfuncs.h"\n'
        "#ifndef bpf_ksym_exists /* libbpf < 1.2 */\n#define bpf_ksym_exists(sym) (!!sym)\n#endif\n"
        'SEC("syscall") int weak(void *ctx)\n'
        "{ return (bpf_ksym_exists(bpf_task_release) ? 10 : 0) +\n"
        "         (bpf_ksym_exists(kfunc_no_such_kfunc) ? 1 : 2); }\n"
        'char LICENSE[] SEC("license") = "GPL";\n'
    )
    obj = compile_bpf(src, tmp_path / "weak.bpf.o", include_dirs=[tmp_path])
    with BpfObject(obj) as loaded:
        loaded.load()
        assert loaded.programs["weak"].test_run().retval == 12


# --- .BTF_ids: the scan against symbols ----------------------------------------


def test_scan_agrees_with_symbols_612(kernel_612: Kernel) -> None:
    # Debian's 6.12 headers ship a BTF-only vmlinux with a symbol table; the
    # scan must find exactly the set8s the symbols locate.
    elf = ElfObject(kernel_612.build_dir / "vmlinux")
    btf = elf.btf()
    by_symbol = [s for s in elf.btf_id_sets() if s.set8]
    scanned = scan_set8(elf.section(".BTF_ids"), btf)
    assert len(by_symbol) > 20
    assert [(s.flags, s.entries) for s in scanned] == [(s.flags, s.entries) for s in by_symbol]
    # So do the listings: the kernel's own vmlinux (out of the bzImage, no
    # symbols) lists what the symbol-located sets list.
    stripped = ElfObject(kernel_612.vmlinux)
    assert not stripped.has_section(".symtab")

    def unnamed(kfuncs: list[Kfunc]) -> list[tuple[str, str, tuple[str, ...] | None]]:
        return [(k.name, k.prototype, k.flags) for k in kfuncs]

    listed = elf_kfuncs(stripped, stripped.btf(), "vmlinux")
    assert unnamed(listed) == unnamed(set_kfuncs(btf, kfunc_sets(by_symbol), "vmlinux"))
    assert len(listed) > 100


def test_kfunc_sets_drop_fmodret_sets_from_69() -> None:
    from kfunc.btf.ids import BTFIdEntry, BTFIdSet

    kf = BTFIdSet("generic_btf_ids", True, BTF_SET8_KFUNCS, (BTFIdEntry(5, 1),))
    fmodret = BTFIdSet("bpf_mptcp_fmodret_ids", True, 0, (BTFIdEntry(6, 0),))
    plain = BTFIdSet("btf_allowlist", False, 0, (BTFIdEntry(7, 0),))
    assert kfunc_sets([kf, fmodret, plain]) == [kf]
    assert kfunc_sets([fmodret, plain]) == [fmodret]  # before 6.9: no way to tell


def test_scan_rejects_garbage(kernel_612: Kernel) -> None:
    btf = ElfObject(kernel_612.vmlinux).btf()
    assert scan_set8(b"", btf) == []
    assert scan_set8(bytes(64), btf) == []
    assert scan_set8(b"\xff" * 64, btf) == []


def test_61_vmlinux_kfuncs_by_scan(kernel_61: Kernel) -> None:
    elf = ElfObject(kernel_61.vmlinux)
    assert not elf.has_section(".symtab")
    btf = elf.btf()
    kfuncs = {k.name: k for k in elf_kfuncs(elf, btf, "vmlinux")}
    assert kfuncs["crash_kexec"].flags == ("KF_DESTRUCTIVE",)
    assert kfuncs["bpf_lookup_user_key"].flags == ("KF_ACQUIRE", "KF_RET_NULL", "KF_SLEEPABLE")
    assert kfuncs["cgroup_rstat_flush"].flags == ("KF_SLEEPABLE",)
    assert {k.source for k in kfuncs.values()} == {SOURCE_BTF_IDS}
    # Every one is a FUNC bpftool sees in that BTF.
    assert set(kfuncs) <= bpftool_funcs(kernel_61.vmlinux)


# --- modules ------------------------------------------------------------------------


def test_hello_module_lists_its_kfunc(hello_612: ModuleBuild, kernel_612: Kernel) -> None:
    inv = file_inventory(hello_612.ko, kernel_612.vmlinux, cache=False)
    (kfunc,) = inv.kfuncs
    assert kfunc == Kfunc(
        "bpf_kfunc_call_test",
        "u64 bpf_kfunc_call_test(u32 a, u64 b, u32 c, u64 d)",
        "hello",
        (),
        ("bpf_kfunc_example_ids_set",),
        SOURCE_BTF_IDS,
    )
    # Without --base, the vermagic names the kernel: the same answer.
    assert file_inventory(hello_612.ko, cache=False) == inv


def test_hello_module_61(hello_61: ModuleBuild, kernel_61: Kernel) -> None:
    inv = file_inventory(hello_61.ko, cache=False)
    assert [(k.name, k.owner, k.flags) for k in inv.kfuncs] == [
        ("bpf_kfunc_call_test", "hello", ())
    ]


@pytest.mark.parametrize("fixture", ["kernel_61", "kernel_612"])
def test_debian_nf_conntrack(fixture: str, request: pytest.FixtureRequest) -> None:
    kernel: Kernel = request.getfixturevalue(fixture)
    ko = next((modules_dir(kernel) / "net/netfilter").glob("nf_conntrack.ko*"))
    inv = file_inventory(ko, kernel.vmlinux, cache=False)
    assert {k.name: k.flags for k in inv.kfuncs} == {n: tuple(f) for n, f in NF_CT_KFUNCS.items()}
    assert {k.owner for k in inv.kfuncs} == {"nf_conntrack"}
    assert {k.sets for k in inv.kfuncs} == {("nf_ct_kfunc_set",)}
    release = next(k for k in inv.kfuncs if k.name == "bpf_ct_release")
    assert release.prototype == "void bpf_ct_release(struct nf_conn *nfct)"


# --- whole kernels and their difference ----------------------------------------------


def test_kernel_inventory_61(kernel_61: Kernel) -> None:
    inv = kernel_inventory(kernel_61)
    owners = {k.owner for k in inv.kfuncs}
    assert {"vmlinux", "nf_conntrack", "nf_nat", "tcp_bbr"} <= owners
    names = {k.name for k in inv.kfuncs}
    assert {"crash_kexec", "bpf_lookup_user_key", "bpf_ct_set_nat_info"} <= names
    assert inv.helpers == 210  # BPF_FUNC_unspec .. BPF_FUNC_user_ringbuf_drain (209)
    assert kernel_inventory(kernel_61) == inv  # from kfuncs.json now
    assert (kernel_61.path / "kfuncs.json").exists()


def test_diff_61_612(kernel_61: Kernel, kernel_612: Kernel) -> None:
    old, new = kernel_inventory(kernel_61), kernel_inventory(kernel_612)
    d = diff_inventories(old, new)
    added = {k.name for k in d.added}
    removed = {k.name for k in d.removed}
    # bpf_task_acquire (6.2) and the cpumask kfuncs (6.3) are FUNCs of 6.12's
    # BTF only; 6.1's vmlinux carries the test kfuncs that 6.12 moved to
    # bpf_testmod, which Debian does not ship.
    funcs61 = bpftool_funcs(kernel_61.vmlinux)
    funcs612 = bpftool_funcs(kernel_612.vmlinux)
    for name in ("bpf_task_acquire", "bpf_cpumask_create", "bpf_dynptr_from_skb"):
        assert name in added and name in funcs612 and name not in funcs61
    assert "bpf_kfunc_call_test_acquire" in removed
    assert "bpf_kfunc_call_test_acquire" in funcs61 - funcs612
    changed = {c.name: c for c in d.prototype_changed}
    assert changed["bpf_verify_pkcs7_signature"].old.startswith(
        "int bpf_verify_pkcs7_signature(struct bpf_dynptr_kern *"
    )
    assert changed["bpf_verify_pkcs7_signature"].new.startswith(
        "int bpf_verify_pkcs7_signature(struct bpf_dynptr *"
    )
    assert (old.helpers, new.helpers) == (210, 212)
    assert d.to_dict()["old"] == {"target": old.target, "kfuncs": len(old.kfuncs), "helpers": 210}


# --- errors -----------------------------------------------------------------------------


def test_bad_files(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.btf"
    if SYS_VMLINUX.exists():
        truncated.write_bytes(SYS_VMLINUX.read_bytes()[:1000])
        with pytest.raises(BTFError, match=r"runs past the end \(\d+ bytes after the header\)"):
            file_inventory(truncated)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, this is not BTF at all")
    with pytest.raises(BTFError, match=r"bad magic .* \(at offset 0x0\)"):
        file_inventory(junk)
    fake = tmp_path / "fake.ko"
    fake.write_bytes(b"\x7fELF" + b"\0" * 10)
    with pytest.raises(ELFError, match="malformed ELF file"):
        file_inventory(fake)
    with pytest.raises(KfuncError, match="no such file"):
        file_inventory(tmp_path / "missing")


def test_tagged_and_helpers_on_a_small_blob() -> None:
    # A BTF without tags or bpf_func_id lists nothing and counts no helpers.
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, 1)
    btf = parse_btf(header + b"\0", name="tiny")
    assert tagged_kfuncs(btf, "vmlinux") == []
    assert helper_count(btf) is None


def test_tags_and_sets_agree_where_a_kernel_has_both(kernel_73: Kernel) -> None:
    """Debian's 7.3 is built with pahole >= 1.27: its BTF tags kfuncs, and its
    .BTF_ids holds their sets (found by the scan: the vmlinux out of the
    bzImage has no symbols). Both paths must name the same kfuncs, alike."""
    from kfunc.inventory import kfunc_sets, set_kfuncs, tagged_kfuncs

    elf = ElfObject(kernel_73.vmlinux)
    assert not elf.has_section(".symtab")
    btf = elf.btf()
    tagged = {k.name: k.prototype for k in tagged_kfuncs(btf, "vmlinux")}
    from_sets = {
        k.name: k.prototype
        for k in set_kfuncs(btf, kfunc_sets(scan_set8(elf.section(".BTF_ids"), btf)), "vmlinux")
    }
    assert len(tagged) > 300
    assert tagged == from_sets
