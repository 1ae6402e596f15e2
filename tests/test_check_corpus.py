"""``kfunc check`` measured on the kernel's own programs: the kfunc-feature files
of linux-source-6.12's selftests, built with the newest clang here.

No false alarm: every ``__success`` program passes the check. Some
``__failure`` programs are flagged before loading (a leaked KF_ACQUIRE
reference, a kfunc the kernel lacks, a program type without the kfunc hook);
the rest is the verifier's to decide, and check says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import require

from kfunc.check import check_object, kernel_view, read_bpf_object
from kfunc.errors import KfuncError
from kfunc.kernels.facts import vmlinux_h
from kfunc.kernels.target import Kernel
from kfunc.selftests import selftests_tree
from kfunc.selftests_verify import NEEDS_TESTMOD, check_corpus, compile_failure_files
from kfunc.verifier_corpus import is_kfunc_feature_file, read_programs


def test_check_on_the_612_selftests(kernel_612: Kernel, tmp_path: Path) -> None:
    require(shutil.which("clang") is not None or shutil.which("clang-16") is not None,
            "clang is needed")  # fmt: skip
    try:
        tree = selftests_tree("6.12")
    except KfuncError as exc:
        require(False, f"linux-source-6.12 not available: {exc}")
        raise
    names = sorted(p.name for p in tree.progs.glob("*.c")
                   if is_kfunc_feature_file(p.name) and p.name not in NEEDS_TESTMOD)  # fmt: skip
    programs = [p for n in names for p in read_programs(tree.progs / n)]
    files = sorted({p.file for p in programs if p.failure or p.success})
    built = compile_failure_files(tree.progs, files, vmlinux_h(kernel_612), tmp_path)
    view = kernel_view(kernel_612)
    figures = check_corpus(programs, built.objects, view)
    print(f"6.12 check: {figures}")
    assert figures.successes >= 50 and figures.failures >= 200
    assert not figures.false_alarms
    assert figures.flagged_by.get("unreleased", 0) >= 3
    leak = [r for r in check_object(read_bpf_object(built.objects["task_kfunc_failure.c"]), view)
            if r.call.program.name == "task_kfunc_acquire_unreleased"]  # fmt: skip
    assert any("Unreleased reference" in f.message for r in leak for f in r.findings)
