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
        ({"kfunc": KfuncSpec("m_a", "int m_b(void)", "")}, "does not declare m_a()"),
        ({"kfunc": KfuncSpec("m_a", "m_a", "")}, "does not declare m_a()"),
        ({"kfunc": KfuncSpec("m_a", "int m_a(void)", "", ("KF_MAGIC",))}, "unknown flag KF_MAGIC"),
        ({"kfunc": KfuncSpec("m_a", "int m_a(void)", "", ("KF_RELEASE",))}, "pointer argument"),
        ({"prog_types": ("cgroup_sysctl",)}, "cannot call kfuncs"),
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


def test_duplicate_kfunc(tmp_path: Path) -> None:
    k = KfuncSpec("m_a", "int m_a(void)", "return 0;")
    with pytest.raises(SpecError) as err:
        ModuleSpec("m", (k, k), ("syscall",))
    assert "declared twice" in err.value.message


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[module\n", "Expected"),
        ('title = "x"\n', "no [module] table"),
        ('[module]\nname = "m"\nprog_types = ["syscall"]\n', "no [[kfunc]]"),
        ('[module]\nname = "m"\n[[kfunc]]\nname = "m_a"\n', "needs name, proto and body"),
        ('[module]\nname = "m"\nprog_types = "syscall"\nincludes = [1]\n', "list of strings"),
    ],
)
def test_bad_toml(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "kfunc.toml").write_text(toml)
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path)
    assert message in err.value.message
    assert str(tmp_path / "kfunc.toml") in err.value.message
