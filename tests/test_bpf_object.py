"""The BPF object model (kfunc.check.bpf_object) against reference tools, on the
kernel's own selftests programs as clang built them: its section-name table
(kfunc.check.sections) against the host's libbpf (``libbpf_prog_type_by_name``,
also on edge cases of libbpf's matching rules), its programs and kfunc call
relocations against binutils' readelf."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import require

from kfunc.cache import cache_dir
from kfunc.check import prog_type_of_section, read_bpf_object
from kfunc.errors import KfuncError
from kfunc.kernels.facts import vmlinux_h
from kfunc.kernels.target import Kernel
from kfunc.libbpf import libbpf_version, prog_type_by_section
from kfunc.selftests import selftests_tree
from kfunc.selftests_verify import compile_failure_files

#: The table is libbpf 1.1's: compared with a host libbpf of that release only.
libbpf_11 = pytest.mark.skipif(
    libbpf_version()[:2] != (1, 1), reason="the section table follows libbpf 1.1"
)

_SEC = re.compile(r'\bSEC\("([^"]+)"\)')


@libbpf_11
@pytest.mark.parametrize(
    "section",
    [
        "kprobe", "kprobe/do_unlinkat", "kprobex", "kprobe.multi/x", "kprobe.session/x",
        "uprobe.s/bin:f", "usdt", "ksyscall/unlinkat", "tc", "tc/ingress", "tcx/ingress",
        "classifier", "action", "xdp", "xdp/foo", "xdp.frags", "xdp.frags/devmap",
        "xdp/cpumap", "sk_reuseport/migrate", "sk_reuseport/x", "sk_skb/stream_verdict",
        "sk_skb/verdict", "sk_skb/x", "cgroup/skb", "cgroup/skbx", "cgroup/sock",
        "cgroup/connect_unix", "fentry", "fentry/x", "fentry.s/x", "fentryx/x",
        "fmod_ret/x", "tp_btf/sys_enter", "tp_btf.s/x", "tp/a/b", "tracepoint.s/a/b",
        "raw_tp.w/x", "raw_tp.s/x", "lsm_cgroup/x", "lsm.s/x", "iter/task", "iter.s/task",
        "syscall", "syscall/x", "struct_ops/x", "struct_ops.s/x", "netfilter", "freplace/x",
        "perf_event", "lwt_seg6local", "sk_lookup", "sk_lookup/x", "", "?", "license",
        ".text", "probe/0",
    ],
)  # fmt: skip
def test_section_table_agrees_with_libbpf(section: str) -> None:
    assert prog_type_of_section(section) == prog_type_by_section(section)


def _one_file_per_section_kind(progs: Path) -> list[str]:
    """Of the selftests' progs/*.c, one file per kind of SEC() name (the text
    before its first '/'), so that the built objects cover every kind."""
    chosen: dict[str, str] = {}
    for src in sorted(progs.glob("*.c")):
        for section in _SEC.findall(src.read_text(errors="replace")):
            chosen.setdefault(section.split("/")[0], src.name)
    return sorted(set(chosen.values()))


@pytest.fixture(scope="module")
def selftests_objects(kernel_612: Kernel) -> list[Path]:
    """Objects built from linux-source-6.12's progs/, one file per kind of section."""
    require(shutil.which("clang") is not None or shutil.which("clang-16") is not None,
            "clang is needed")  # fmt: skip
    try:
        tree = selftests_tree("6.12")
    except KfuncError as exc:
        require(False, f"linux-source-6.12 not available: {exc}")
        raise
    files = _one_file_per_section_kind(tree.progs)
    # Built once into the cache (compile_bpf skips what is up to date).
    out = cache_dir("builds", kernel_612.key, "selftests-sections")
    built = compile_failure_files(tree.progs, files, vmlinux_h(kernel_612), out)
    assert len(built.objects) >= 40, built.failed
    return sorted(built.objects.values())


@libbpf_11
def test_section_table_on_the_612_selftests_objects(selftests_objects: list[Path]) -> None:
    sections = {
        prog.section
        for obj in selftests_objects
        for prog in read_bpf_object(obj, require_btf=False).programs
    }
    kinds = {s.split("/")[0] for s in sections}
    assert len(kinds) >= 40, sorted(kinds)
    differ = {s: (prog_type_of_section(s), prog_type_by_section(s)) for s in sorted(sections)
              if prog_type_of_section(s) != prog_type_by_section(s)}  # fmt: skip
    assert not differ
    # Both know many of them; both know none of those newer than libbpf 1.1
    # (tcx/, struct_ops.s ...) nor "?"-prefixed ones (libbpf strips the "?" of
    # a program's section before it asks the table).
    assert sum(prog_type_of_section(s) is not None for s in sections) >= 100
    assert prog_type_of_section("?fentry") is None


_RELOC = re.compile(r"^([0-9a-f]+)\s+[0-9a-f]+\s+\S+\s+[0-9a-f]+\s+(\S+)")


def test_programs_and_kfunc_relocations_match_readelf(selftests_objects: list[Path]) -> None:
    require(shutil.which("readelf") is not None, "readelf (binutils) is needed")
    calls = 0
    for obj in selftests_objects:
        info = read_bpf_object(obj, require_btf=False)
        symbols = subprocess.run(["readelf", "-sW", str(obj)], capture_output=True, text=True,
                                 check=True).stdout  # fmt: skip
        functions = {f[7] for f in (ln.split() for ln in symbols.splitlines())
                     if len(f) == 8 and f[3] == "FUNC" and f[4] in ("GLOBAL", "WEAK")}  # fmt: skip
        assert {p.name for p in info.programs} == functions, obj.name
        relocs = subprocess.run(["readelf", "-rW", str(obj)], capture_output=True, text=True,
                                check=True).stdout  # fmt: skip
        theirs, section = set(), ""
        for line in relocs.splitlines():
            head = re.match(r"^Relocation section '\.rel(.*)' at offset", line)
            if head:
                section = head.group(1)
            elif (m := _RELOC.match(line)) and m.group(2) in info.kfuncs:
                theirs.add((section, int(m.group(1), 16), m.group(2)))
        mine = {(r.section, r.offset, r.symbol) for r in info.relocations
                if r.symbol in info.kfuncs}  # fmt: skip
        assert mine == theirs, obj.name
        calls += len(mine)
    assert calls >= 50
