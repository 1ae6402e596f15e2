"""`kfunc new`: a project that builds, with a test that passes (in the VM matrix)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kfunc.build import build_project
from kfunc.errors import KfuncError
from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.scaffold import scaffold


def test_new_writes_a_project(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "new", "mykf"], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    path = tmp_path / "mykf"
    assert sorted(p.name for p in path.iterdir()) == [
        ".gitignore", "kfunc.toml", "mykf.bpf.c", "test_mykf.py"
    ]  # fmt: skip
    project = Project.load(path)
    assert project.spec is not None and project.spec.kfuncs[0].name == "mykf_add"
    assert [(t.program, t.retval) for t in project.tests] == [("add", 42)]
    compile(path.joinpath("test_mykf.py").read_text(), "test_mykf.py", "exec")


@pytest.mark.parametrize("name", ["My-Module", "1abc", "a b", "../x"])
def test_new_refuses_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(KfuncError) as err:
        scaffold(name, tmp_path)
    assert "not a valid module name" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_an_existing_directory(tmp_path: Path) -> None:
    scaffold("twice", tmp_path)
    with pytest.raises(KfuncError) as err:
        scaffold("twice", tmp_path)
    assert "already exists" in err.value.message


@pytest.mark.parametrize("fixture", ["kernel_612", "kernel_61"])
def test_scaffold_builds(fixture: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    kernel: Kernel = request.getfixturevalue(fixture)
    built = build_project(Project.load(scaffold("fresh", tmp_path)), kernel)
    assert built.module is not None and [k.name for k in built.module.kfuncs] == ["fresh_add"]
    assert built.header == tmp_path / "fresh" / "build" / "fresh_kfuncs.h"
    assert "extern u64 fresh_add(u64 a, u64 b) __ksym;" in built.header.read_text()
    assert [o.name for o in built.objects] == ["fresh.bpf.o"]
