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
    assert project.module is not None and project.module.name == "hello"
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
        ({}, "no BPF program"),
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


def test_missing_directory() -> None:
    with pytest.raises(KfuncError) as err:
        Project.load("no/such/dir")
    assert err.value.message == "no/such/dir: no such project directory"
