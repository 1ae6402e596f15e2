"""Module specs: what a kfunc.toml may say, and the errors for what it may not."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXAMPLES

from kfunc.spec import KfuncSpec, ModuleSpec, SpecError, load_spec


def spec(**kw) -> ModuleSpec:
    kfunc = kw.pop("kfunc", KfuncSpec("m_add", "u64 m_add(u64 a, u64 b)", "return a + b;"))
    return ModuleSpec(**{"name": "m", "kfuncs": (kfunc,), "prog_types": ("syscall",), **kw})


def test_examples_load() -> None:
    refobj = load_spec(EXAMPLES / "refobj")
    assert refobj.name == "refobj"
    assert [k.name for k in refobj.kfuncs] == [
        "refobj_new", "refobj_value", "refobj_release", "refobj_live", "refobj_dtor"
    ]  # fmt: skip
    assert refobj.kfuncs[0].flags == ("KF_ACQUIRE", "KF_RET_NULL")
    assert refobj.kfuncs[0].return_type == "struct refobj *"
    assert refobj.kfuncs[0].params == "u64 value"
    # The destructor is in no kfunc set: BPF programs do not call it.
    ((set_name, types, kfuncs),) = refobj.sets()
    assert (set_name, types) == ("refobj_kfunc_ids", ("syscall", "tracing"))
    assert [k.name for k in kfuncs] == [
        "refobj_new", "refobj_value", "refobj_release", "refobj_live"
    ]  # fmt: skip


def test_kfuncs_with_their_own_program_types_get_their_own_set() -> None:
    s = ModuleSpec(
        "m",
        (
            KfuncSpec("m_a", "int m_a(void)", "return 0;"),
            KfuncSpec("m_b", "int m_b(void)", "return 1;", prog_types=("xdp",)),
        ),
        ("syscall",),
    )
    assert [(n, t, [k.name for k in ks]) for n, t, ks in s.sets()] == [
        ("m_syscall_kfunc_ids", ("syscall",), ["m_a"]),
        ("m_xdp_kfunc_ids", ("xdp",), ["m_b"]),
    ]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "my-mod"}, "is not a C identifier"),
        ({"name": "x; rm -rf /"}, "is not a C identifier"),
        ({"kfunc": KfuncSpec("1x", "int 1x(void)", "")}, "is not a C identifier"),
        ({"kfunc": KfuncSpec("m_a", "int m_b(void)", "")}, "kfunc[0].proto: declares m_b(), not"),
        ({"kfunc": KfuncSpec("m_a", "m_a", "")}, "kfunc[0].proto: expected the function's name"),
        ({"kfunc": KfuncSpec("int", "int int(void)", "")}, "kfunc[0].name: 'int' is a C keyword"),
        ({"name": "vmlinux"}, "module.name: 'vmlinux' is the kernel's own BTF object"),
        ({"name": "while"}, "module.name: 'while' is a C keyword"),
        ({"name": "m" * 56}, "is 56 characters, over the kernel's 55"),
        (
            {
                "kfunc": KfuncSpec(
                    "m_f", "u64 m_f(u64 a); int evil(void) { return 0; } u64 m_f(u64 a)", ""
                )
            },
            "kfunc[0].proto: it must be one declaration, but 'int evil(void)",
        ),
        ({"kfunc": KfuncSpec("m_f", "u64 m_f(u64 a) { return a; }", "")}, "one declaration"),
        ({"kfunc": KfuncSpec("m_f", "#define X\nu64 m_f(void)", "")}, "kfunc[0].proto"),
        ({"kfunc": KfuncSpec("m_f", "u64 m_f(u64 a) /* c */", "")}, "one declaration"),
        ({"kfunc": KfuncSpec("m_f", "int m_f(int a, ...)", "")}, "variable arguments"),
        ({"kfunc": KfuncSpec("m_a", "int m_a(void)", "", ("KF_MAGIC",))}, "unknown flag KF_MAGIC"),
        ({"kfunc": KfuncSpec("m_a", "int m_a(void)", "", ("KF_RELEASE",))}, "pointer argument"),
        ({"prog_types": ("flow_dissector",)}, "cannot call kfuncs"),
        ({"prog_types": ()}, "no program types"),
        ({"includes": ("../../etc/passwd",)}, "is not a header path"),
        ({"includes": ("linux/slab.h>\n#include <x.h",)}, "is not a header path"),
        ({"description": "evil */ int x; /*"}, "description must be one line"),
        ({"description": 'a "quoted" word'}, "description must be one line"),
        ({"license": "Proprietary"}, "GPL-compatible"),
        (
            {"kfunc": KfuncSpec("m_d", "void m_d(int x)", "", dtor_for="obj")},
            "must be declared void m_d(void *p)",
        ),
    ],
)
def test_bad_specs_are_refused(kw: dict, message: str) -> None:
    with pytest.raises(SpecError) as err:
        spec(**kw)
    assert message in err.value.message


def test_module_name_of_55_characters_is_accepted() -> None:
    assert spec(name="m" * 55).name == "m" * 55


def test_duplicate_kfunc(tmp_path: Path) -> None:
    k = KfuncSpec("m_a", "int m_a(void)", "return 0;")
    with pytest.raises(SpecError) as err:
        ModuleSpec("m", (k, k), ("syscall",))
    assert "declared twice" in err.value.message


_MODULE = '[module]\nname = "m"\nprog_types = ["syscall"]\n'
_KFUNC = '[[kfunc]]\nname = "m_a"\nproto = "int m_a(void)"\nbody = "return 0;"\n'


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[module\n", "Expected"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ('title = "x"\n', "title: unknown key"),
        ('[modul]\nname = "m"\n', "modul: unknown table (did you mean module?)"),
        ('[module]\nname = "m"\nprog_types = ["syscall"]\n', "module: no [[kfunc]]"),
        ('[module]\nname = "m"\n[[kfunc]]\nname = "m_a"\n', "kfunc[0]: no proto key"),
        (_MODULE + _KFUNC + _KFUNC.replace("m_a", "m_b") + 'flagz = ["KF_RCU"]\n',
         "kfunc[1].flagz: unknown key (did you mean flags?)"),
        (_MODULE + _KFUNC + 'prog_type = ["xdp"]\n',
         "kfunc[0].prog_type: unknown key (did you mean prog_types?)"),
        (_MODULE + _KFUNC + 'flags = "KF_RCU"\n', "kfunc[0].flags: must be a list, not a string"),
        (_MODULE + _KFUNC + 'optional = "false"\n',
         "kfunc[0].optional: must be true or false, not a string"),
        (_MODULE + _KFUNC + "optional = 0\n", "kfunc[0].optional: must be true or false"),
        ('[module]\nname = "m"\nprog_types = "syscall"\n' + _KFUNC,
         "module.prog_types: must be a list, not a string"),
        ('[module]\nname = "m"\nprog_types = ["syscall"]\nincludes = [1]\n' + _KFUNC,
         "module.includes[0]: must be a string, not an integer"),
        ('[module]\nname = 5\n' + _KFUNC, "module.name: must be a string, not an integer"),
        ('[module]\nname = "vmlinux"\nprog_types = ["syscall"]\n' + _KFUNC, "module.name"),
        (_KFUNC, "[[kfunc]] without a [module] table"),
        ('[module]\npath = "mod"\nname = "m"\n', "module.path names a hand-written module"),
        (_MODULE + _KFUNC + "[run]\nretval = 1\n", "run.retval: unknown key"),
        (_MODULE + _KFUNC + '[[run.test]]\nprogram = "p"\nretval = "abc"\n',
         "run.test[0].retval: must be an integer, not a string"),
        (_MODULE + _KFUNC + '[[run.test]]\nprogram = "p"\nretval = 0\npacket = true\n',
         "run.test[0].packet: must be an integer or a string, not true or false"),
        (_MODULE + _KFUNC + '[[run.test]]\nprogram = "p"\nretval = 0\nctx = 5\n',
         "run.test[0].ctx: must be a string or a table, not an integer"),
        (_MODULE + _KFUNC + '[[run.test]]\nprogram = "p"\nretval = 0\npacket = -1\n',
         "run.test[0].packet: must be at least 0"),
        ("run = 5\n" + _MODULE + _KFUNC, "run: must be a table, not an integer"),
        (_MODULE + _KFUNC + '[test]\nkernels = "6.12"\n',
         "test.kernels: must be a list, not a string"),
        (_MODULE + _KFUNC + "[bpf]\nsources = 1\n", "bpf.sources: must be a list"),
    ],
)  # fmt: skip
def test_bad_toml(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "kfunc.toml").write_text(toml)
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    assert message in err.value.message
    assert err.value.message.startswith(f"{tmp_path / 'kfunc.toml'}: ")
    assert err.value.fix
    assert "\n" not in err.value.message


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'[module]\nname = "m\xff"\n', "line 2: not UTF-8 (byte 0xff)"),
        (b"x" * ((1 << 20) + 1), "larger than 1 MiB"),
    ],
)
def test_unreadable_toml(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "kfunc.toml").write_bytes(content)
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    assert message in err.value.message


def test_kfunc_toml_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "kfunc.toml")
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    assert err.value.message == f"{tmp_path / 'kfunc.toml'}: not a regular file"


def test_kfunc_toml_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "kfunc.toml").mkdir()
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    assert err.value.message == f"{tmp_path / 'kfunc.toml'}: is a directory"


def test_every_example_toml_is_read_by_the_schema() -> None:
    from kfunc.schema import read_kfunc_toml

    tomls = sorted(EXAMPLES.glob("*/kfunc.toml"))
    assert len(tomls) >= 8
    for toml in tomls:
        read_kfunc_toml(toml)  # raises on an unknown key or a wrong type


def test_ls_does_not_import_the_schema_library() -> None:
    """kfunc.toml's typed layer (msgspec) is paid for by the commands that read projects only."""
    import subprocess
    import sys

    code = (
        "import contextlib, io, sys\n"
        "from kfunc.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['ls', '--btf', '/sys/kernel/btf/vmlinux'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('msgspec', 'kfunc.schema'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
