"""Projects: what `kfunc run` finds in a directory, and its errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES

from kfunc.errors import KfuncError
from kfunc.project import Project


def test_hello_project() -> None:
    project = Project.load(EXAMPLES / "hello")
    assert project.spec is None and project.has_module
    source = project.module_source()
    assert source is not None and source.name == "hello" and source.path == project.path
    assert [p.name for p in project.bpf_sources] == ["hello.bpf.c"]
    assert (project.trigger, project.expect) == ("unlink", "Result: 10")


def test_trigger_is_inferred_from_the_attach_point(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "hello", tmp_path / "p")
    (tmp_path / "p" / "kfunc.toml").unlink()
    project = Project.load(tmp_path / "p")
    assert (project.trigger, project.expect) == ("unlink", None)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, "neither a module nor BPF programs"),
        ({"x.bpf.c": "", "kfunc.toml": "[run\n"}, "kfunc.toml"),
        ({"x.bpf.c": "", "kfunc.toml": '[run]\nexpect = "("\n'}, "bad regex"),
    ],
)
def test_project_errors(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(KfuncError) as err:
        Project.load(tmp_path)
    assert expected in err.value.message
    assert err.value.fix or expected == "bad regex"


def test_spec_project_generates_its_module(tmp_path: Path) -> None:
    skip_build = shutil.ignore_patterns("build")
    shutil.copytree(EXAMPLES / "refobj", tmp_path / "refobj", ignore=skip_build)
    project = Project.load(tmp_path / "refobj")
    assert project.spec is not None and project.spec.name == "refobj"
    assert [(t.program, t.retval) for t in project.tests] == [("new_value_release", 42)]
    assert (project.trigger, project.expect) == (None, None)
    source = project.module_source()
    assert source is not None and source.path == (tmp_path / "refobj" / "build").resolve()
    assert {f.name for f in source.files} == {"refobj.c", "Kbuild", "refobj_kfuncs.h"}
    # The kfuncs kbuild will look for are the spec's, minus the destructor.
    assert [k for k, _ in source.kfuncs] == [
        "refobj_new", "refobj_value", "refobj_release", "refobj_live"
    ]  # fmt: skip


def test_test_run_packets() -> None:
    from kfunc.project import TestRun

    frame = TestRun("p", 0, packet=64).data()
    assert len(frame) == 64 and frame[12:14] == b"\x08\x00"
    assert TestRun("p", 0).data() == b""


def test_missing_directory() -> None:
    with pytest.raises(KfuncError) as err:
        Project.load("no/such/dir")
    assert err.value.message == "no/such/dir: no such project directory"
