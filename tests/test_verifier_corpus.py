"""The verifier rules against the kernel's own corpus: the BPF selftests'
expected messages and the verifier's source, of each target kernel.

Both come from Debian's linux-source packages at test time (kfunc.selftests
extracts them once into kfunc's cache); nothing of them is in this repository.
A rule whose message a newer kernel rewords fails test_rule_source_in_its_kernels
for that kernel; a rule lost to an earlier one fails the share tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from conftest import require

from kfunc.errors import KfuncError
from kfunc.kernel_api.version import KernelVersion
from kfunc.selftests import SelftestsTree, selftests_tree, verifier_source_tree
from kfunc.verifier import RULES, explain_log, rejection_line, verifier_error
from kfunc.verifier_corpus import (
    corpus_figures,
    is_kfunc_feature_file,
    is_rejection_message,
    read_programs,
    sample_line,
)

SERIES = ("6.1", "6.12", "7.3")
T = TypeVar("T")


def _available(get: Callable[[str], T], series: str) -> T:
    """``get(series)`` (extracting from linux-source-<series>), or skip saying why."""
    try:
        return get(series)
    except KfuncError as exc:
        require(False, f"linux-source-{series} not available: {exc}")
        raise


def _tree(series: str) -> SelftestsTree:
    return _available(selftests_tree, series)


def _source(series: str) -> Path:
    return _available(verifier_source_tree, series)


@pytest.mark.parametrize("series", SERIES)
def test_recognised_share_of_the_selftests_messages(series: str) -> None:
    tree = _tree(series)
    f = corpus_figures(series, tree.progs, tree.prog_tests)
    assert len(f.kfunc.messages) >= 40 and len(f.all.messages) >= 60, f
    assert f.kfunc.share >= 0.95, f.kfunc.missed
    assert f.all.share >= 0.60, f.all.missed


@pytest.mark.parametrize("series", SERIES)
def test_rule_source_in_its_kernels(series: str) -> None:
    """Each rule's printing text is in the verifier's source of exactly the kernels
    its range names: a reworded message fails here, not silently in a user's log."""
    root = _source(series)
    text = "\n".join(
        p.read_text(errors="replace") for p in sorted(root.rglob("*.[ch]")) if p.is_file()
    )
    here = KernelVersion.parse(series)
    wrong = []
    for rule in RULES:
        if not rule.source:
            continue  # a loader's message (libbpf, cilium/ebpf)
        first, last = rule.kernels
        inside = here >= KernelVersion.parse(first) and (
            last is None or here <= KernelVersion.parse(last)
        )
        found = any(fragment in text for fragment in rule.source)
        if found != inside:
            wrong.append((rule.name, rule.source, rule.kernels, "found" if found else "absent"))
    assert not wrong


def test_failure_programs_and_messages_of_a_real_file() -> None:
    tree = _tree("6.12")
    path = tree.progs / "cpumask_failure.c"
    programs = {p.name: p for p in read_programs(path)}
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", path.read_text(), flags=re.S)
    assert sum(p.failure for p in programs.values()) == len(re.findall(r"\b__failure\b", text))
    p = programs["test_mutate_cpumask"]
    assert p.failure and p.section == "tp_btf/task_newtask"
    assert [e.text for e in p.rejection_expected] == [
        "bpf_cpumask_set_cpu args#1 expected pointer to STRUCT bpf_cpumask"
    ]
    x = explain_log(p.rejection_expected[0].text)
    assert x is not None and x.rule == "wrong_argument_type"
    assert "STRUCT bpf_cpumask" in x.message
    assert is_kfunc_feature_file(path.name) and not is_kfunc_feature_file("verifier_and.c")


def test_what_counts_as_a_rejection_message() -> None:
    assert is_rejection_message("Unreleased reference id=2 alloc_insn=1")
    assert is_rejection_message("R1 must be referenced or trusted")
    for state in (
        "7: (1f) r0 -= r6 {{.*}} R0=scalar(smin=-655)",
        ": R0_w=0x7fffffff",
        "R{{.}}=scalar(id=1,smax=0)",
        "R0_w=ptr_foo(id=2,ref_obj_id=2)",
        "; return 0; @ foo.c:12",
        "mark_precise: frame0: regs=r0 stack= before 2: (b7) r0 = 1",
        "from 10 to 12: frame1: R0=scalar(smin=umin=1001",
        "*(u8 *)(r7 +0) = r0",
        "",
    ):
        assert not is_rejection_message(state), state
    fragment = "R{{[0-9]+}} invalid mem access 'scalar'"
    assert sample_line(fragment) == "R0 invalid mem access 'scalar'"
    assert sample_line("id={{[0-9]+}} alloc_insn={{.*}}") == "id=0 alloc_insn="


def test_the_verdict_is_never_the_statistics_line() -> None:
    log = (
        "0: R1=ctx() R10=fp0\n"
        "0: (85) call bpf_foo#123\n"
        "the verifier said something new\n"
        "processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 "
        "peak_states 0 mark_read 0\n"
    )
    assert rejection_line(log) == "the verifier said something new"
    err = verifier_error(None, log, "prog 'p': load failed")
    assert err.message.startswith("prog 'p': load failed: the verifier said something new")
    known = log.replace("the verifier said something new", "div by zero")
    x = explain_log(known)
    assert x is not None and x.line == "div by zero" and x.insn == 0
