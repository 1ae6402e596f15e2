"""Mutated real ELF files (a built .ko, a clang BPF object): only kfunc's own errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfunc.check import read_bpf_object
from kfunc.elf import ElfObject
from kfunc.errors import KfuncError
from kfunc.kbuild import ModuleBuild


@pytest.fixture(scope="module")
def ko_bytes(hello_612: ModuleBuild) -> bytes:
    return hello_612.ko.read_bytes()


def _read_all(path: Path) -> None:
    elf = ElfObject(path)
    if elf.has_section(".BTF"):
        elf.section(".BTF")
    if elf.has_section(".BTF_ids"):
        elf.btf_id_sets()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    edits=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 1 << 30)),
)
def test_mutated_module_raises_only_kfunc_errors(
    ko_bytes: bytes, tmp_path: Path, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(ko_bytes)
    for where, value in edits:
        # Most of a .ko is code; aim half the edits at the ELF and section headers.
        at = where % 64 if where & 1 else where % len(data)
        data[at] = value
    if cut is not None:
        del data[cut % len(data) :]
    path = tmp_path / "m.ko"
    path.write_bytes(bytes(data))
    try:
        _read_all(path)
        read_bpf_object(path)
    except KfuncError:
        pass
