"""``kfunc new NAME``: a project to start from, which builds and passes its test."""

from __future__ import annotations

import re
from pathlib import Path

from kfunc.errors import KfuncError

__all__ = ["scaffold"]

_SPEC = """\
# The kfunc module {name}: edit the kfuncs here; `kfunc build` generates the
# module into build/ and `kfunc run .` runs the tests below in a real kernel.
[module]
name = "{name}"
description = "kfuncs of {name}"
prog_types = ["syscall", "tracing"]

[[kfunc]]
name = "{name}_add"
proto = "u64 {name}_add(u64 a, u64 b)"
body = "return a + b;"

# BPF_PROG_TEST_RUN of a program of {name}.bpf.c, and what it must return.
[[run.test]]
program = "add"
retval = 42
"""

_BPF = """\
// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Calls {name}'s kfunc; `kfunc run .` test-runs it (see kfunc.toml). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "{name}_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("syscall")
int add(void *ctx)
{{
	return {name}_add(40, 2);
}}
"""

_TEST = '''\
"""{name}'s kfuncs, tested in real kernels: kfunc builds the module, boots each
kernel in a VM, loads the module and test-runs the BPF programs.

    KFUNC_KERNELS=6.1,6.12 pytest test_{name}.py
"""

import os
from pathlib import Path

import pytest

from kfunc.project import Project
from kfunc.run import run_projects

HERE = Path(__file__).resolve().parent
KERNELS = os.environ.get("KFUNC_KERNELS", "6.12").split(",")


@pytest.mark.parametrize("kernel", KERNELS)
def test_{name}_add(kernel: str) -> None:
    report = run_projects([Project.load(HERE)], kernel)
    (project,) = report.projects
    assert project.ok, f"{{project.error}} ({{project.fix}})"
    assert [t["retval"] for t in project.tests] == [42]
'''


def scaffold(name: str, parent: Path | str = ".") -> Path:
    """Write a new project ``name/`` under ``parent``: spec, BPF program and test."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise KfuncError(
            f"kfunc new: {name!r} is not a valid module name",
            "use lower-case letters, digits and underscores, not starting with a digit",
        )
    path = Path(parent) / name
    if path.exists():
        raise KfuncError(f"{path}: already exists", "choose another name or remove it")
    path.mkdir(parents=True)
    (path / "kfunc.toml").write_text(_SPEC.format(name=name))
    (path / f"{name}.bpf.c").write_text(_BPF.format(name=name))
    (path / f"test_{name}.py").write_text(_TEST.format(name=name))
    (path / ".gitignore").write_text("build/\n__pycache__/\n")
    return path
