"""Projects: what `kfunc run` finds in a directory, and its errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, EXAMPLES, LIBBPF_BOOTSTRAP_MAKEFILE, tutorial_repo

from kfunc.errors import KfuncError
from kfunc.kernels.target import Kernel
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
        ({}, "neither a module nor BPF programs: looked for kfunc.toml's [module], a Kbuild"),
        (
            {"Makefile": LIBBPF_BOOTSTRAP_MAKEFILE},
            "Makefile has no obj-m line: not kbuild's, ignored",
        ),
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
    assert TestRun("p", 0, packet="pkt_v4").data()[12:14] == b"\x08\x00"
    assert TestRun("p", 0, packet="pkt_v4", data_in=b"\x01").data() == b"\x01"


def test_run_test_keys(tmp_path: Path) -> None:
    """[[run.test]] as the selftests need it: packets by name or as bytes, ctx as bytes
    or fields, a program alone, a refusal, an errno."""
    (tmp_path / "p.bpf.c").write_text("")
    (tmp_path / "kfunc.toml").write_text(
        '[[run.test]]\nprogram = "a"\nretval = 12\npacket = "pkt_v6"\n'
        '[[run.test]]\nprogram = "b"\nretval = 0\ndata = "00 11:22"\nctx = "0x0a000000"\n'
        '[[run.test]]\nprogram = "c"\nretval = 0\nctx = { size = 10, data = [1, 2] }\n'
        '[[run.test]]\nprogram = "d"\nrejected = "R0 cannot write into rdonly_mem"\n'
        '[[run.test]]\nprogram = "e"\nerror = "EINVAL"\nlog = "processed 4 insns"\n'
        "alone = true\n"
    )
    a, b, c, d, e = Project.load(tmp_path).tests
    assert len(a.data()) == 74 and a.data()[12:14] == b"\x86\xdd"
    assert (b.data(), b.ctx) == (b"\x00\x11\x22", b"\x0a\x00\x00\x00")
    assert c.ctx == {"size": 10, "data": [1, 2]}
    assert (d.retval, d.rejected, d.alone) == (None, "R0 cannot write into rdonly_mem", None)
    assert (e.error, e.log, e.alone) == ("EINVAL", "processed 4 insns", True)


@pytest.mark.parametrize(
    ("test", "message"),
    [
        ('program = "p"\n', "run.test[0]: program p: no retval, rejected or error"),
        ('program = "p"\nretval = 0\npacket = "big"\n', "run.test[0].packet: no packet named"),
        ('program = "p"\nretval = 0\nctx = "xyz"\n', "run.test[0].ctx: 'xyz' is not hex"),
        ('program = "p"\nerror = "ENOPE"\n', "run.test[0].error: ENOPE: not an errno name"),
    ],
)  # fmt: skip
def test_run_test_errors(tmp_path: Path, test: str, message: str) -> None:
    (tmp_path / "p.bpf.c").write_text("")
    (tmp_path / "kfunc.toml").write_text("[[run.test]]\n" + test)
    with pytest.raises(KfuncError) as err:
        Project.load(tmp_path)
    assert message in err.value.message and err.value.fix


def test_missing_directory() -> None:
    with pytest.raises(KfuncError) as err:
        Project.load("no/such/dir")
    assert err.value.message == "no/such/dir: no such project directory"


def test_module_in_a_subdirectory_is_found_by_its_obj_m(tmp_path: Path) -> None:
    repo = tutorial_repo(tmp_path / "repo")
    project = Project.load(repo)
    assert project.spec is None and project.module_dir == repo / "module"
    assert project.bpf_sources == (repo / "hello.bpf.c",)
    assert project.trigger == "unlink"
    source = project.module_source()
    assert source is not None and source.name == "hello"
    assert [f.name for f in source.files] == ["Makefile", "compat.h", "hello.c"]
    assert source.kfuncs == (("bpf_kfunc_call_test", ()),)


def test_module_path_and_module_argument(tmp_path: Path) -> None:
    repo = tutorial_repo(tmp_path / "repo")
    (repo / "module").rename(repo / "kmod")
    shutil.copytree(repo / "kmod", repo / "other")  # two kbuild files: which?
    with pytest.raises(KfuncError) as err:
        Project.load(repo)
    assert (
        err.value.message
        == f"{repo}: 2 kbuild files with obj-m (kmod, other): which is the module?"
    )
    assert err.value.fix == 'say it in kfunc.toml: [module] path = "kmod" (or pass --module DIR)'
    assert Project.load(repo, module=repo / "other").module_dir == repo / "other"
    (repo / "kfunc.toml").write_text('[module]\npath = "kmod"\n')
    assert Project.load(repo).module_dir == repo / "kmod"
    assert Project.load(repo, module=repo / "other").module_dir == repo / "other"


@pytest.mark.parametrize(
    ("toml", "module", "message"),
    [
        ('[module]\npath = "nope"\n', None, "module.path: nope: no such directory under"),
        ('[module]\npath = "src"\n', None, "module.path: {repo}/src: no Kbuild or Makefile"),
        ("", "{repo}/nope", "--module {repo}/nope: no such directory"),
        ("", "{repo}", "--module {repo}: {repo}: Makefile has no obj-m line"),
        ('[bpf]\nsources = ["src/*.bpf.c"]\n', None, "src/*.bpf.c: matches no file"),
        ('[bpf]\nsources = ["../*.c"]\n', None, "bpf.sources[0]: ../*.c: not inside the project"),
        ('[bpf]\ninclude = ["inc"]\n', None, "bpf.include[0]: inc: no such directory"),
        ('[run]\nexpect = "("\n', None, "run.expect: bad regex"),
        ('[[run.test]]\nprogram = "a b"\nretval = 0\n', None,
         "run.test[0].program: 'a b' is not a C identifier"),
        ('[module]\nname = "hello"\nprog_types = ["kprobe"]\n'
         '[[kfunc]]\nname = "f"\nproto = "int f(void)"\nbody = ""\n', "{repo}/module",
         "declares a module for kfunc to generate"),
    ],
)  # fmt: skip
def test_layout_errors(tmp_path: Path, toml: str, module: str | None, message: str) -> None:
    repo = tutorial_repo(tmp_path / "repo")
    (repo / "src").mkdir()
    if toml:
        (repo / "kfunc.toml").write_text(toml)
    with pytest.raises(KfuncError) as err:
        Project.load(repo, module=module.format(repo=repo) if module else None)
    assert message.format(repo=repo) in err.value.message
    assert err.value.fix


def test_bpf_sources_and_include(tmp_path: Path) -> None:
    repo = tutorial_repo(tmp_path / "repo")
    (repo / "src" / "bpf").mkdir(parents=True)
    (repo / "hello.bpf.c").rename(repo / "src" / "bpf" / "hello.bpf.c")
    (repo / "src" / "bpf" / "other.c").write_text("")
    (repo / "include").mkdir()
    # Found anywhere in the tree, but not in hidden or output directories.
    for skipped in (".output", "build", "node_modules"):
        (repo / skipped).mkdir()
        (repo / skipped / "x.bpf.c").write_text("")
    assert Project.load(repo).bpf_sources == (repo / "src" / "bpf" / "hello.bpf.c",)
    (repo / "kfunc.toml").write_text(
        '[bpf]\nsources = ["src/**/*.c", "src/bpf/hello.bpf.c"]\ninclude = ["include"]\n'
    )
    project = Project.load(repo)
    assert project.bpf_sources == (repo / "src/bpf/hello.bpf.c", repo / "src/bpf/other.c")
    # and build/, where kfunc writes the module's <name>_kfuncs.h
    assert project.include_dirs == [repo, repo / "include", repo / "build"]


def test_kbuild_modules_reads_obj_m_as_make_would(tmp_path: Path) -> None:
    from kfunc.kbuild import kbuild_modules

    kbuild = tmp_path / "Kbuild"
    kbuild.write_text(
        "MODNAME := mymod\n"
        "obj-m += $(MODNAME).o \\\n  second.o  # a comment.o\n"
        "obj-y += builtin.o\n"
    )
    assert kbuild_modules(kbuild) == ["mymod", "second"]
    assert kbuild_modules(DATA / "multimod" / "Makefile") == ["multimod"]


def test_long_module_name_is_refused_before_kbuild(tmp_path: Path) -> None:
    from kfunc.kbuild import ModuleSource

    name = "m" * 56
    (tmp_path / "Kbuild").write_text(f"obj-m += {name}.o\n")
    with pytest.raises(KfuncError) as err:
        ModuleSource.find(tmp_path)
    assert "is 56 characters, over the kernel's 55" in err.value.message


def test_build_takes_the_module_from_the_command_line(kernel_612: Kernel, tmp_path: Path) -> None:
    repo = tutorial_repo(tmp_path / "repo")
    shutil.copytree(repo / "module", repo / "module-v2")  # two modules: --module says which

    def kfunc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kfunc", *args],
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip

    out = kfunc("build", "repo", "--module", "repo/module-v2", "--json")
    assert out.returncode == 0, out.stderr
    built = json.loads(out.stdout)
    assert built["module"]["name"] == "hello"
    assert [k["name"] for k in built["module"]["kfuncs"]] == ["bpf_kfunc_call_test"]
    assert [Path(o).name for o in built["objects"]] == ["hello.bpf.o"]
    out = kfunc("build", "repo")
    assert out.returncode == 1 and "2 kbuild files with obj-m" in out.stderr
    assert "Traceback" not in out.stderr
    out = kfunc("run", "repo", "repo", "--module", "repo/module")
    assert out.returncode == 1 and "names the module of one project, but 2" in out.stderr


def test_run_test_events_as_kfunc_run_prints_them() -> None:
    """The agent's test_run events (a retval, a refusal, an errno) in `kfunc run`'s words."""
    from kfunc.cli.run import _describe

    def line(**data: object) -> str:
        return _describe({"step": "test_run", "ok": True, "data": {"program": "p", **data}})

    assert line(retval=12) == "test run p: returned 12"
    assert line(retval=0, alone=True) == "test run p (loaded alone): returned 0"
    assert line(rejected="R0 cannot write") == (
        "test run p: refused by the verifier with 'R0 cannot write'"
    )
    assert line(error="EINVAL", retval=-22, alone=True) == (
        "test run p (loaded alone): failed with EINVAL, as expected"
    )
