"""The kernel's own failure programs in a real 6.12 guest (one boot), and
kfunc's explanations of what its verifier says.

The failure programs of the kfunc files (task_kfunc_failure.c,
cgrp_kfunc_failure.c, cpumask_failure.c, iters_task_failure.c,
verifier_kfunc*.c: about 50 programs; ``bench/explain_corpus.py --guest 6.12``
runs all of #17.2's files, iters*.c and dynptr_fail.c too, ~150 programs) come
from Debian's linux-source-6.12 at test time, are built with the newest clang
here, and each is loaded alone, as the selftests' test_loader does. Each
real log must hold the program's ``__msg`` (rejected as expected), and kfunc
must explain it with the rule that explains that message (or the reason the
message sums up). kfunc_call_fail.c (its expectations in prog_tests'
kfunc_call.c table) and iters_testmod*.c call bpf_testmod's kfuncs: the
module, built from the same package, is inserted first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require

from kfunc.errors import KfuncError
from kfunc.kernels.facts import vmlinux_h
from kfunc.kernels.target import Kernel
from kfunc.selftests import build_testmod, selftests_tree
from kfunc.selftests_verify import (
    NEEDS_TESTMOD,
    compile_failure_files,
    failure_programs,
    summarise,
    verify_in_guest,
)

pytestmark = pytest.mark.vm

PATTERNS = ("task_kfunc_failure.c", "cgrp_kfunc_failure.c", "cpumask_failure.c",
            "iters_task_failure.c", "verifier_kfunc*.c", "kfunc_call_fail.c",
            "iters_testmod*.c")  # fmt: skip


def test_selftests_failure_programs_612(kernel_612: Kernel, tmp_path: Path) -> None:
    try:
        tree = selftests_tree("6.12")
    except KfuncError as exc:
        require(False, f"linux-source-6.12 not available: {exc}")
        raise
    files = sorted({p.name for pat in PATTERNS for p in tree.progs.glob(pat)})
    assert set(NEEDS_TESTMOD) <= set(files)
    testmod = build_testmod(kernel_612).ko
    built = compile_failure_files(tree.progs, files, vmlinux_h(kernel_612), tmp_path / "obj")
    assert not built.failed, built.failed  # clang-16 builds every one of them
    programs = failure_programs(tree.progs, files)
    assert len(programs) >= 40
    verdicts = verify_in_guest(kernel_612, programs, built.objects, tmp_path, modules=(testmod,))
    figures = summarise(verdicts)
    print(f"6.12 guest: {figures}")
    assert not [v for v in verdicts if v.loaded], "a failure program loaded"
    assert figures["rejected_as_expected"] >= 0.9 * len(programs), figures
    unexplained = [(v.program.name, v.message) for v in verdicts if v.as_expected and not v.rule]
    assert not unexplained
    wrong = [(v.program.name, v.rule, sorted(v.expected_rules), v.line) for v in verdicts
             if v.wrong]  # fmt: skip
    assert not wrong
