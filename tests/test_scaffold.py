"""`kfunc new`: a project that builds, with a test that passes (in the VM matrix)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kfunc.build import build_project
from kfunc.errors import KfuncError
from kfunc.kernels.target import Kernel
from kfunc.project import Project
from kfunc.scaffold import scaffold
from kfunc.testrun import project_kernels


def test_new_writes_a_project(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "new", "mykf"], cwd=tmp_path, capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    path = tmp_path / "mykf"
    assert sorted(p.name for p in path.iterdir()) == [
        ".github", ".gitignore", "kfunc.toml", "mykf.bpf.c", "test_mykf.py"
    ]  # fmt: skip
    project = Project.load(path)
    assert project.spec is not None and project.spec.kfuncs[0].name == "mykf_add"
    assert [(t.program, t.retval) for t in project.tests] == [("add", 42)]
    compile(path.joinpath("test_mykf.py").read_text(), "test_mykf.py", "exec")
    assert project_kernels(path) == ["6.1", "6.12"]


def test_new_writes_a_valid_ci_workflow(tmp_path: Path) -> None:
    """The GitHub Actions workflow passes the GitHub workflow schema (check-jsonschema's
    vendored copy: no network), and runs one `kfunc test` job per kernel of the matrix,
    with the kernel packages cached."""
    path = scaffold("wf", tmp_path, kernels=["6.1", "6.12", "7.3"])
    workflow = path / ".github" / "workflows" / "kfunc.yml"
    lint = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("check-jsonschema not installed (pip install -e .[test])")
    out = subprocess.run(
        [lint, "--builtin-schema", "vendor.github-workflows", str(workflow)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    from ruamel.yaml import YAML  # check-jsonschema's YAML reader

    job = YAML(typ="safe").load(workflow.read_text())["jobs"]["test"]
    assert job["strategy"]["matrix"]["kernel"] == ["6.1", "6.12", "7.3"]
    assert project_kernels(path) == ["6.1", "6.12", "7.3"]
    steps = {step.get("uses", step.get("id")): step for step in job["steps"]}
    cache = steps["actions/cache@v4"]["with"]
    assert job["env"]["KFUNC_CACHE"] == "/root/.cache/kfunc"
    assert cache["path"].split() == [job["env"]["KFUNC_CACHE"], "!/root/.cache/kfunc/debs"]
    # keyed by kfunc's version and the kernel's release (tests/test_workflow.py runs it)
    assert cache["key"] == "${{ steps.cache-key.outputs.key }}"
    assert 'kfunc kernels --release "${{ matrix.kernel }}"' in steps["cache-key"]["run"]
    run = next(s["run"] for s in job["steps"] if "kfunc test" in s.get("run", ""))
    assert run.startswith('kfunc test . --kernels "${{ matrix.kernel }}" --junit ')


def test_new_refuses_a_workflow_lint_failure(tmp_path: Path) -> None:
    """The lint is a real check: a workflow without jobs fails it."""
    lint = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("check-jsonschema not installed (pip install -e .[test])")
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\n")
    out = subprocess.run(
        [lint, "--builtin-schema", "vendor.github-workflows", str(bad)], capture_output=True
    )
    assert out.returncode == 1


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
