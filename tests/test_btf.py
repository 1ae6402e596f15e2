"""The BTF reader against the reference tools: bpftool's raw and C dumps and
libbpf's btf_dump, on the host's vmlinux BTF and a Debian module's split BTF;
malformed blobs from a small writer here and from mutating real BTF."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import lzma
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import modules_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfunc.btf import (
    BTF,
    DeclTag,
    Func,
    FuncProto,
    Int,
    Ptr,
    Struct,
    Typedef,
    declaration,
    func_prototype,
    ksym_extern,
    load_module_btf,
    load_vmlinux_btf,
    module_names,
    parse_btf,
    parse_btf_file,
    type_name,
)
from kfunc.btf import format as fmt
from kfunc.btf import types as t
from kfunc.elf import ElfObject
from kfunc.errors import BTFError
from kfunc.kernels.target import Kernel

SYS_VMLINUX = Path("/sys/kernel/btf/vmlinux")


def bpftool(*args: str) -> list[str]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed (apt-get install bpftool)")
    return subprocess.run(
        ["bpftool", *args], capture_output=True, text=True, check=True
    ).stdout.splitlines()


@pytest.fixture(scope="module")
def vmlinux_bytes() -> bytes:
    if not SYS_VMLINUX.exists():
        pytest.skip(f"{SYS_VMLINUX} not present (the host kernel has no BTF)")
    return SYS_VMLINUX.read_bytes()


@pytest.fixture(scope="module")
def vmlinux(vmlinux_bytes: bytes) -> BTF:
    return parse_btf(vmlinux_bytes, name="vmlinux")


def raw_dump(btf: BTF) -> list[str]:
    """This BTF's own types in `bpftool btf dump file X` (raw) format."""
    lines = []
    for typ in btf.types():
        head = f"[{typ.id}] {fmt.KIND_NAMES[typ.KIND]} '{typ.name or '(anon)'}'"
        sub: list[str] = []
        match typ:
            case t.Int():
                enc = {1: "SIGNED", 2: "CHAR", 4: "BOOL"}.get(typ.encoding, "(none)")
                head += f" size={typ.size} bits_offset={typ.offset} nr_bits={typ.bits}"
                head += f" encoding={enc}"
            case t.Ptr() | t.Const() | t.Volatile() | t.Restrict() | t.Typedef() | t.TypeTag():
                head += f" type_id={typ.type}"
            case t.Array():
                head += f" type_id={typ.type} index_type_id={typ.index_type}"
                head += f" nr_elems={typ.nelems}"
            case t.Struct() | t.Union():
                head += f" size={typ.size} vlen={len(typ.members)}"
                for m in typ.members:
                    line = f"\t'{m.name or '(anon)'}' type_id={m.type} bits_offset={m.bit_offset}"
                    sub.append(line + (f" bitfield_size={m.bitfield_size}" * bool(m.bitfield_size)))
            case t.Enum() | t.Enum64():
                head += f" encoding={'SIGNED' if typ.signed else 'UNSIGNED'} size={typ.size}"
                head += f" vlen={len(typ.values)}"
                suffix = "" if isinstance(typ, t.Enum) else ("LL" if typ.signed else "ULL")
                sub += [f"\t'{v.name}' val={v.value}{suffix}" for v in typ.values]
            case t.Fwd():
                head += f" fwd_kind={'union' if typ.is_union else 'struct'}"
            case t.Func():
                head += f" type_id={typ.type} linkage={fmt.FUNC_LINKAGE_NAMES[typ.linkage]}"
            case t.FuncProto():
                head += f" ret_type_id={typ.return_type} vlen={len(typ.params)}"
                sub += [f"\t'{p.name or '(anon)'}' type_id={p.type}" for p in typ.params]
            case t.Var():
                head += f" type_id={typ.type}, linkage={fmt.VAR_LINKAGE_NAMES[typ.linkage]}"
            case t.Datasec():
                head += f" size={typ.size} vlen={len(typ.vars)}"
                sub += [
                    f"\ttype_id={v.type} offset={v.offset} size={v.size} (VAR '{btf[v.type].name}')"
                    for v in typ.vars
                ]
            case t.Float():
                head += f" size={typ.size}"
            case t.DeclTag():
                head += f" type_id={typ.type} component_idx={typ.component_idx}"
        lines.append(head)
        lines += sub
    return lines


# --- the host's vmlinux against bpftool -------------------------------------


def test_vmlinux_matches_bpftool_raw_dump(vmlinux: BTF) -> None:
    ref = bpftool("btf", "dump", "file", str(SYS_VMLINUX))
    assert len(vmlinux) - 1 == sum(line.startswith("[") for line in ref)
    assert raw_dump(vmlinux) == ref


def test_vmlinux_struct_members_and_typedefs_match_format_c(vmlinux: BTF) -> None:
    header = "\n".join(bpftool("btf", "dump", "file", str(SYS_VMLINUX), "format", "c"))
    # bpftool renames types whose names clash (dma_chan___2); we do not.
    typedefs = {re.sub(r"___\d+\b", "", d) for d in re.findall(r"^typedef (.*);$", header, re.M)}
    checked = 0
    for td in vmlinux.types(Typedef):
        decl = declaration(vmlinux, td.type, td.name)
        # bpftool inlines anonymous bodies and special-cases two typedefs.
        if "{...}" in decl or td.name in ("__builtin_va_list", "u8"):
            continue
        assert decl in typedefs
        checked += 1
    assert checked > 2000
    structs = 0
    padding = re.compile(r"^(char|short|int|long|long long)(: \d+)?;$")
    for m in re.finditer(r"^(struct|union) (\w+) \{\n(.*?)\n\}", header, re.M | re.S):
        keyword, name, body = m.groups()
        if "{" in body or "___" in body + name:
            continue
        typ = vmlinux.find(name, Struct if keyword == "struct" else t.Union)
        assert typ is not None
        lines = [line.strip() for line in body.splitlines()]
        lines = [
            line.removesuffix(" __attribute__((packed));").removesuffix(";")
            for line in lines
            if not padding.match(line)
        ]
        ours = [
            declaration(vmlinux, mem.type, mem.name)
            + (f": {mem.bitfield_size}" if mem.bitfield_size else "")
            for mem in typ.members
        ]
        assert ours == lines, name
        structs += 1
    assert structs > 5000


class _DeclOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("field_name", ctypes.c_char_p),
        ("indent_level", ctypes.c_int),
        ("strip_mods", ctypes.c_bool),
    ]


def libbpf_declarations(path: Path, funcs: list[Func]) -> list[str]:
    """Each FUNC's prototype from libbpf's btf_dump__emit_type_decl, which is
    what bpftool uses to write kfunc declarations into vmlinux.h."""
    so = ctypes.util.find_library("bpf")
    if so is None:
        pytest.skip("libbpf not installed (apt-get install libbpf1)")
    lib = ctypes.CDLL(so)
    libc = ctypes.CDLL(None)
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    printf_fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
    lib.btf__parse_raw.restype = ctypes.c_void_p
    lib.btf__parse_raw.argtypes = [ctypes.c_char_p]
    lib.btf_dump__new.restype = ctypes.c_void_p
    lib.btf_dump__new.argtypes = [ctypes.c_void_p, printf_fn, ctypes.c_void_p, ctypes.c_void_p]
    lib.btf_dump__emit_type_decl.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.POINTER(_DeclOpts),
    ]
    lib.btf_dump__free.argtypes = [ctypes.c_void_p]
    lib.btf__free.argtypes = [ctypes.c_void_p]
    chunks: list[str] = []
    buf = ctypes.create_string_buffer(1 << 16)

    @printf_fn
    def collect(ctx: object, fmt_: bytes, args: int) -> None:
        # x86-64 passes va_list as a pointer, so vsnprintf can take it as is.
        libc.vsnprintf(buf, len(buf), fmt_, args)
        chunks.append(buf.value.decode())

    btf = lib.btf__parse_raw(str(path).encode())
    dump = lib.btf_dump__new(btf, collect, None, None)
    out = []
    for func in funcs:
        chunks.clear()
        opts = _DeclOpts(ctypes.sizeof(_DeclOpts), func.name.encode(), 0, False)
        assert lib.btf_dump__emit_type_decl(dump, func.type, ctypes.byref(opts)) == 0
        out.append("".join(chunks))
    lib.btf_dump__free(dump)
    lib.btf__free(btf)
    return out


def test_every_func_prototype_matches_libbpf(vmlinux: BTF) -> None:
    funcs = vmlinux.funcs()
    kfuncs = {f.id for f in vmlinux.funcs("bpf_kfunc")}
    mismatched = []
    for func, ref in zip(funcs, libbpf_declarations(SYS_VMLINUX, funcs), strict=True):
        # libbpf 1.1 writes `f()` for no parameters (newer ones `f(void)`) and
        # does not know type attributes (TYPE_TAG with kind_flag, libbpf 1.6).
        ref = ref.replace("()", "(void)")
        ref = ref.replace('btf_type_tag("address_space(1)")', "address_space(1)")
        ours = func_prototype(vmlinux, func)
        if ours != ref:
            mismatched.append((ours, ref))
            # Only libbpf's renaming of clashing type names (walk_control___2).
            assert func.id not in kfuncs
            assert re.sub(r"___\d+\b", "", ref) == ours
    assert len(mismatched) < 20


def test_lazy_parse_of_vmlinux_agrees(vmlinux_bytes: bytes, vmlinux: BTF) -> None:
    # What kfunc ls reads: the layout only, then each type checked as it is read.
    lazy = parse_btf(vmlinux_bytes, name="vmlinux", validate=False)
    assert len(lazy) == len(vmlinux)
    tagged = lazy.funcs("bpf_kfunc")
    assert tagged == vmlinux.funcs("bpf_kfunc")
    assert [func_prototype(lazy, f) for f in tagged] == [func_prototype(vmlinux, f) for f in tagged]
    assert lazy.find("bpf_func_id", t.Enum) == vmlinux.find("bpf_func_id", t.Enum)
    lazy.validate()  # the host's BTF is well formed: every record passes
    assert bytes(lazy.kind(i) for i in range(len(lazy))) == bytes(
        vmlinux.kind(i) for i in range(len(vmlinux))
    )
    sample = range(1, len(vmlinux), 97)
    assert [lazy[i] for i in sample] == [vmlinux[i] for i in sample]


def test_kfunc_helpers(vmlinux: BTF) -> None:
    ref = bpftool("btf", "dump", "file", str(SYS_VMLINUX))
    tagged = sum("DECL_TAG 'bpf_kfunc'" in line for line in ref)
    kfuncs = vmlinux.funcs("bpf_kfunc")
    assert len(kfuncs) == tagged > 100
    names = {f.name for f in kfuncs}
    assert {"bpf_task_acquire", "bpf_obj_drop_impl", "bpf_dynptr_slice"} <= names
    acquire = vmlinux.find("bpf_task_acquire", Func)
    assert acquire is not None and acquire in kfuncs
    tags = vmlinux.decl_tags_for(acquire.id)
    assert any(isinstance(d, DeclTag) and d.name == "bpf_kfunc" for d in tags)
    assert func_prototype(vmlinux, acquire) == (
        "struct task_struct *bpf_task_acquire(struct task_struct *p)"
    )
    assert ksym_extern(vmlinux, acquire) == (
        "extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;"
    )
    assert ksym_extern(vmlinux, acquire, weak=True).endswith(") __ksym __weak;")
    assert vmlinux.find("bpf_task_acquire", Struct) is None
    assert vmlinux.find("no_such_type_anywhere") is None


def test_lookup_and_model(vmlinux: BTF) -> None:
    task = vmlinux.find("task_struct", Struct)
    assert task is not None and task.size > 1000
    assert vmlinux[task.id] is task  # cached
    comm = next(m for m in task.members if m.name == "comm")
    assert declaration(vmlinux, comm.type, "comm") == "char comm[16]"
    assert vmlinux.kind(task.id) == fmt.BTF_KIND_STRUCT
    u64 = vmlinux.find("u64", Typedef)
    assert u64 is not None
    base = vmlinux.resolve(u64.id)
    assert isinstance(base, Int) and base.size == 8 and not base.is_signed
    assert type_name(vmlinux, 0) == "void"
    assert vmlinux.string(0) == ""
    assert len(vmlinux.find_all("task_struct")) >= 1
    assert sum(1 for _ in vmlinux.types(FuncProto)) > 1000
    with pytest.raises(KeyError):
        vmlinux[-1]
    with pytest.raises(IndexError):
        vmlinux[len(vmlinux)]


def test_kernel_module_reads_sys(vmlinux: BTF) -> None:
    assert len(load_vmlinux_btf()) == len(vmlinux)
    names = module_names()
    assert "vmlinux" not in names
    with pytest.raises(BTFError, match="no BTF for module 'no_such_module'"):
        load_module_btf("no_such_module", vmlinux)
    assert len(parse_btf_file(SYS_VMLINUX)) == len(vmlinux)
    with pytest.raises(BTFError, match="cannot read"):
        parse_btf_file("/nonexistent/btf")


# --- split BTF: a Debian 6.12 module over the 6.12 vmlinux ------------------


@pytest.fixture(scope="module")
def debian_vmlinux(kernel_612: Kernel) -> BTF:
    # Debian's BTF-only vmlinux, shipped in the 6.12 headers.
    return ElfObject(kernel_612.build_dir / "vmlinux").btf()


def test_split_module_matches_bpftool(
    kernel_612: Kernel, debian_vmlinux: BTF, tmp_path: Path
) -> None:
    ko = tmp_path / "nf_conntrack.ko"
    xz = modules_dir(kernel_612) / "net/netfilter/nf_conntrack.ko.xz"
    ko.write_bytes(lzma.decompress(xz.read_bytes()))
    module = ElfObject(ko).btf(debian_vmlinux)
    assert module.start_id == len(debian_vmlinux)
    # The raw dump carries the ids, so this checks start_id against bpftool too.
    ref = bpftool("-B", str(kernel_612.build_dir / "vmlinux"), "btf", "dump", "file", str(ko))
    assert raw_dump(module) == ref
    lookup = module.find("bpf_skb_ct_lookup", Func)
    assert lookup is not None and lookup.id >= module.start_id
    assert func_prototype(module, lookup) == (
        "struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb_ctx, "
        "struct bpf_sock_tuple *bpf_tuple, u32 tuple__sz, struct bpf_ct_opts *opts, "
        "u32 opts__sz)"
    )
    # Base types resolve through the split BTF; no pahole >= 1.27 tags on Debian 6.12.
    assert module.find("sk_buff", Struct) == debian_vmlinux.find("sk_buff", Struct)
    assert module.funcs("bpf_kfunc") == []
    assert "over 'vmlinux'" in repr(module)


def test_split_btf_without_base_says_so(kernel_612: Kernel) -> None:
    data = ElfObject(modules_dir(kernel_612) / "net/ipv4/tcp_bbr.ko.xz").section(".BTF")
    with pytest.raises(BTFError) as err:
        parse_btf(data, name="tcp_bbr")
    assert err.value.fix is not None and "base" in err.value.fix


# --- malformed BTF from a small writer --------------------------------------


def blob(
    types: list[list[int]], strings: bytes = b"\0int\0", *, order: str = "<", **header: int
) -> bytes:
    """A BTF blob from type records given as lists of u32 words."""
    words = [w for record in types for w in record]
    type_bytes = struct.pack(f"{order}{len(words)}I", *words)
    fields = {
        "magic": fmt.BTF_MAGIC,
        "version": 1,
        "flags": 0,
        "hdr_len": 24,
        "type_off": 0,
        "type_len": len(type_bytes),
        "str_off": len(type_bytes),
        "str_len": len(strings),
    }
    fields.update(header)
    return struct.pack(order + fmt.HEADER_FORMAT, *fields.values()) + type_bytes + strings


def info(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    return kflag << 31 | kind << 24 | vlen


INT = [1, info(fmt.BTF_KIND_INT), 4, 1 << 24 | 32]  # int, signed, 32 bits
PTR = [0, info(fmt.BTF_KIND_PTR), 1]


def test_writer_blob_parses_in_both_byte_orders() -> None:
    proto = [0, info(fmt.BTF_KIND_FUNC_PROTO, 1), 1, 1, 2]
    func = [1, info(fmt.BTF_KIND_FUNC, fmt.BTF_FUNC_GLOBAL), 3]
    for order in "<>":
        btf = parse_btf(blob([INT, PTR, proto, func], order=order))
        assert btf[1] == Int(1, "int", 4, fmt.BTF_INT_SIGNED, 0, 32)
        assert func_prototype(btf, btf[4]) == "int int(int *int)"  # type: ignore[arg-type]
        # Lookups by name search the records' bytes in the blob's own order.
        assert btf.find("int", Int) == btf[1]
        assert [typ.id for typ in btf.find_all("int")] == [1, 4]
        assert [typ.id for typ in btf.find_all("int")] == [1, 4]  # now from the index


@pytest.mark.parametrize(
    ("data", "message", "offset"),
    [
        (b"\x9f\xeb\x01", "shorter than the 24-byte header", 0),
        (blob([INT], magic=0x1234), "bad magic 0x1234", 0),
        (blob([INT], version=2), "unsupported BTF version 2", 2),
        (blob([INT], hdr_len=8), "bad header length 8", 4),
        (blob([INT], type_len=18), "not 4-byte aligned", 8),
        (blob([INT], type_len=400), "type section 0+400 runs past the end", 8),
        (blob([INT], str_len=99), "string section 16+99 runs past the end", 16),
        (blob([INT], str_off=8), "overlap", 8),
        (blob([INT], b"x\0"), "does not start with an empty string", 40),
        (blob([INT], b"\0int"), "not NUL-terminated", 43),
        (blob([INT, [0, 0]]), "type [2]: truncated record", 40),
        (blob([[0, info(25), 0]]), "type [1]: unknown kind 25", 28),
        (blob([[0, info(0), 0]]), "type [1]: unknown kind 0", 28),
        (blob([[0, info(fmt.BTF_KIND_PTR, 2), 0]]), "PTR with vlen 2", 28),
        (blob([[0, info(fmt.BTF_KIND_STRUCT, 2), 4, 0, 0, 0]]), "runs past the end", 24),
        (blob([[99, info(fmt.BTF_KIND_PTR), 0]]), "name offset 99 past", 24),
        (blob([INT, [0, info(fmt.BTF_KIND_STRUCT, 1), 4, 77, 1, 0]]), "name offset 77", 52),
        (blob([INT, PTR, [0, info(fmt.BTF_KIND_PTR), 9]]), "type [3]: references type id 9", 60),
        (
            blob([INT, [0, info(fmt.BTF_KIND_FUNC_PROTO, 1), 1, 0, 5]]),
            "type [2]: references type id 5",
            56,
        ),
        (blob([INT, [1, info(fmt.BTF_KIND_FUNC), 1]]), "which is not a FUNC_PROTO", 48),
        (blob([[1, info(fmt.BTF_KIND_FUNC, 7), 0]]), "unknown linkage 7", 28),
        (blob([[1, info(fmt.BTF_KIND_INT), 3, 8]]), "INT of size 3", 32),
        (blob([[1, info(fmt.BTF_KIND_INT), 4, 33]]), "INT of 33 bits", 36),
        (blob([[1, info(fmt.BTF_KIND_ENUM), 3]]), "enum of size 3", 32),
        (blob([INT, [1, info(fmt.BTF_KIND_VAR), 1, 9]]), "VAR with unknown linkage 9", 52),
        (
            blob([INT, [1, info(fmt.BTF_KIND_DECL_TAG), 1, 0xFFFFFFFE]]),
            "component index -2",
            52,
        ),
    ],
)
@pytest.mark.parametrize("validate", [True, False], ids=["eager", "lazy"])
def test_malformed_blob_names_offset_and_problem(
    data: bytes, message: str, offset: int, validate: bool
) -> None:
    # Lazily, a bad layout fails at once and a bad record once it is read:
    # either way with the same message and offset as the eager walk.
    with pytest.raises(BTFError, match=re.escape(message)) as err:
        btf = parse_btf(data, validate=validate)
        list(btf.types())
    assert err.value.offset == offset


def test_lazy_btf_checks_only_what_it_reads() -> None:
    bad_ptr = [0, info(fmt.BTF_KIND_PTR), 9]  # [3] references a type that does not exist
    data = blob([INT, PTR, bad_ptr])
    btf = parse_btf(data, validate=False)
    assert btf[2] == Ptr(2, "", 1)  # the good records read fine
    assert btf.find("int", Int) == btf[1]
    with pytest.raises(BTFError, match=re.escape("type [3]: references type id 9")):
        btf[3]
    with pytest.raises(BTFError, match=re.escape("type [3]: references type id 9")):
        btf.validate()
    good = parse_btf(blob([INT, PTR]), validate=False)
    good.validate()
    assert list(good.types()) == list(parse_btf(blob([INT, PTR])).types())


def test_cyclic_types_raise_btf_error() -> None:
    # [1] const -> [2] const -> [1]: valid references, but no base type.
    cyclic = [[0, info(fmt.BTF_KIND_CONST), 2], [0, info(fmt.BTF_KIND_CONST), 1]]
    btf = parse_btf(blob(cyclic))
    with pytest.raises(BTFError, match="cyclic"):
        btf.resolve(1)
    with pytest.raises(BTFError, match="type chain too long"):
        declaration(btf, 1, "x")
    proto = [[0, info(fmt.BTF_KIND_FUNC_PROTO, 1), 0, 0, 2], [0, info(fmt.BTF_KIND_PTR), 1]]
    with pytest.raises(BTFError, match="nested too deep"):
        declaration(parse_btf(blob(proto)), 1, "f")


# --- mutating real BTF: only BTFError may come out ---------------------------


def _seed(vmlinux: BTF, count: int = 3000) -> bytes:
    """The first ``count`` vmlinux types re-encoded as a self-contained blob:
    references past the prefix become void (FUNCs: the first FUNC_PROTO)."""
    strings = bytearray(b"\0")
    offsets: dict[str, int] = {"": 0}

    def s(name: str) -> int:
        if name not in offsets:
            offsets[name] = len(strings)
            strings.extend(name.encode() + b"\0")
        return offsets[name]

    first_proto = next(i for i in range(1, count) if vmlinux.kind(i) == fmt.BTF_KIND_FUNC_PROTO)

    def r(type_id: int, fallback: int = 0) -> int:
        return type_id if type_id < count else fallback

    records = []
    for type_id in range(1, count):
        typ = vmlinux[type_id]
        kflag, vlen = False, 0
        match typ:
            case t.Int():
                extra = [typ.size, typ.encoding << 24 | typ.offset << 16 | typ.bits]
            case t.Array():
                extra = [0, r(typ.type), r(typ.index_type), typ.nelems]
            case t.Struct() | t.Union():
                kflag, vlen = any(m.bitfield_size for m in typ.members), len(typ.members)
                extra = [typ.size]
                for m in typ.members:
                    extra += [s(m.name), r(m.type), m.bitfield_size << 24 | m.bit_offset]
            case t.Enum():
                kflag, vlen = typ.signed, len(typ.values)
                extra = [typ.size]
                for v in typ.values:
                    extra += [s(v.name), v.value & 0xFFFFFFFF]
            case t.FuncProto():
                vlen = len(typ.params)
                extra = [r(typ.return_type)]
                for p in typ.params:
                    extra += [s(p.name), r(p.type)]
            case t.Func():
                vlen = typ.linkage
                extra = [r(typ.type, first_proto)]
            case t.Fwd():
                kflag = typ.is_union
                extra = [0]
            case t.Ptr() | t.Const() | t.Volatile() | t.Restrict() | t.Typedef():
                extra = [r(typ.type)]
            case _:
                pytest.fail(f"seed needs an encoding for {typ}")
        records.append([s(typ.name), info(typ.KIND, vlen, kflag), *extra])
    return blob(records, bytes(strings))


@pytest.fixture(scope="module")
def seed(vmlinux: BTF) -> bytes:
    data = _seed(vmlinux)
    assert 100_000 < len(data) < 1_000_000
    return data


def _exercise(data: bytes, validate: bool = True) -> None:
    btf = parse_btf(data, validate=validate)
    # Lookups by name and kind before anything is read: lazily, nothing is checked yet.
    btf.find("task_struct")
    btf.find("bpf_func_id", t.Enum)
    btf.funcs("bpf_kfunc")
    for typ in btf.types():
        if isinstance(typ, Func):
            func_prototype(btf, typ)
        elif not isinstance(typ, t.DeclTag | t.Var | t.Datasec):
            declaration(btf, typ.id, "x")


def test_seed_is_valid_and_renders(seed: bytes) -> None:
    _exercise(seed)
    _exercise(seed, validate=False)


_EDGE_WORDS = [0, 1, 2999, 3000, 0xFFFF, 0xFFFFFFFF, info(fmt.BTF_KIND_STRUCT, 0xFFFF), info(31)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    byte_edits=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=6),
    word_edits=st.lists(
        st.tuples(st.integers(0, 1 << 30), st.sampled_from(_EDGE_WORDS)), max_size=3
    ),
    header_edit=st.one_of(st.none(), st.tuples(st.integers(0, 23), st.integers(0, 255))),
    cut=st.one_of(st.none(), st.tuples(st.booleans(), st.integers(0, 1 << 30))),
)
def test_mutated_real_btf_raises_only_btf_error(
    seed: bytes,
    byte_edits: list[tuple[int, int]],
    word_edits: list[tuple[int, int]],
    header_edit: tuple[int, int] | None,
    cut: tuple[bool, int] | None,
) -> None:
    mutated = bytearray(seed)
    body = len(seed) - fmt.HEADER_SIZE
    for where, value in byte_edits:
        mutated[fmt.HEADER_SIZE + where % body] = value
    for where, value in word_edits:
        at = fmt.HEADER_SIZE + 4 * (where % (body // 4))
        mutated[at : at + 4] = value.to_bytes(4, "little")
    if header_edit is not None:
        mutated[header_edit[0]] = header_edit[1]
    if cut is not None:
        raw, where = cut
        if raw:  # a truncated file
            del mutated[where % len(mutated) :]
        else:  # a shorter type section, with the header's lengths fixed to match
            _, _, _, hdr_len, _, type_len, _, str_len = struct.unpack_from(
                "<" + fmt.HEADER_FORMAT, mutated
            )
            drop = 4 * (where % (type_len // 4 + 1))
            del mutated[hdr_len + type_len - drop : hdr_len + type_len]
            struct.pack_into("<III", mutated, 12, type_len - drop, type_len - drop, str_len)
    for validate in (True, False):
        with contextlib.suppress(BTFError):
            _exercise(bytes(mutated), validate)
