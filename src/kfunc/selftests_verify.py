"""The kernel's own failure programs against a real verifier, and kfunc's
explanations of what it says.

:func:`compile_failure_files` builds selftests ``progs/*.c`` files with the
newest clang here against a target's vmlinux.h and the tree's own headers
(as the selftests' Makefile does, minus its generated headers: libbpf's
``bpf_helper_defs.h`` comes from the installed libbpf). :func:`verify_steps`
writes one guest ``bpf_verify`` step per failure program (each loaded alone,
as test_loader does); :func:`judge` compares each real log with the program's
``__msg`` and with kfunc's explanation of it.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError
from kfunc.verifier import RULES, explain_log
from kfunc.verifier_corpus import Expectation, Program, read_tree, sample_line
from kfunc.vm.protocol import BpfVerify

__all__ = [
    "Built",
    "CheckFigures",
    "Verdict",
    "check_corpus",
    "compile_failure_files",
    "failure_programs",
    "judge",
    "summarise",
    "verify_in_guest",
    "verify_steps",
]

#: The bpf_testmod module's BTF is needed by programs that call its kfuncs or
#: iterate its iterators; without it libbpf cannot resolve their externs.
NEEDS_TESTMOD = ("kfunc_call_fail.c", "iters_testmod.c", "iters_testmod_seq.c")


@dataclass(frozen=True)
class Built:
    """The objects built from selftests files, and the files that did not compile
    (with clang's first error)."""

    objects: dict[str, Path]
    failed: dict[str, str]


def compile_failure_files(progs: Path, files: list[str], vmlinux_h: Path, out: Path) -> Built:
    """Compile each selftests file of ``progs`` into ``out``."""
    from kfunc.clang import compile_bpf

    tree = progs.parent.parent.parent.parent.parent  # tools/testing/selftests/bpf/progs
    includes = [vmlinux_h.parent, progs, progs.parent, tree / "tools" / "lib",
                tree / "tools" / "include" / "uapi"]  # fmt: skip
    flags = ["-I/usr/include/bpf", "-idirafter", "/usr/include/x86_64-linux-gnu",
             "-mcpu=v3", "-Wno-error", "-Wno-compare-distinct-pointer-types"]  # fmt: skip
    objects: dict[str, Path] = {}
    failed: dict[str, str] = {}
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        try:
            objects[name] = compile_bpf(
                progs / name, out / f"{Path(name).stem}.bpf.o", include_dirs=includes,
                depends=[vmlinux_h], extra_flags=flags,
            )  # fmt: skip
        except KfuncError as exc:
            failed[name] = exc.message
    return Built(objects, failed)


def failure_programs(progs: Path, files: list[str]) -> list[Program]:
    """The programs of ``files`` that must fail to load, privileged, with a message
    (from their annotations, or from the older tables of ``prog_tests/``, as
    kfunc_call_fail.c's in kfunc_call.c)."""
    wanted = set(files)
    return [
        p
        for p in read_tree(progs, progs.parent / "prog_tests")
        if p.file in wanted and p.failure and any(not e.unpriv for e in p.rejection_expected)
    ]


def verify_steps(
    programs: list[Program], objects: dict[str, Path], rundir: Path
) -> list[BpfVerify]:
    """One guest ``bpf_verify`` step per program whose object was built (copied into
    ``rundir``, which the guest sees)."""
    steps = []
    copied: dict[str, str] = {}
    for p in programs:
        obj = objects.get(p.file)
        if obj is None:
            continue
        if p.file not in copied:
            copied[p.file] = str(shutil.copy2(obj, rundir))
        steps.append(BpfVerify(path=copied[p.file], program=p.name, log_level=1))
    return steps


@dataclass(frozen=True)
class Verdict:
    """What the verifier did with a failure program and how kfunc explained it.

    ``as_expected``: refused, and its log holds every expected message;
    ``rule``: the explanation's rule (None: not explained); ``expected_rules``:
    the rules that explain the program's expected messages (what a right
    explanation names); ``wrong``: refused as expected and explained by a rule
    none of them is.
    """

    program: Program
    loaded: bool
    as_expected: bool
    rule: str | None
    expected_rules: frozenset[str]
    line: str | None
    message: str

    @property
    def wrong(self) -> bool:
        """Refused for the expected reason, and explained as another one. (A program
        refused for another reason, which its log shows, is not judged here.)"""
        return (
            self.as_expected
            and self.rule is not None
            and bool(self.expected_rules)
            and self.rule not in self.expected_rules
        )


def _expected_in(log: str, e: Expectation) -> bool:
    if e.regex:
        return re.search(e.text, log) is not None
    parts = re.split(r"\{\{(.*?)\}\}", e.text)
    pattern = "".join(re.escape(x) if i % 2 == 0 else f"(?:{x})" for i, x in enumerate(parts))
    return re.search(pattern, log) is not None


def judge(program: Program, result: dict[str, Any]) -> Verdict:
    """The verdict on one ``bpf_verify`` result (:meth:`LoadOutcome.to_dict`)."""
    expected = [e for e in program.rejection_expected if not e.unpriv]
    log = f"{result.get('log', '')}\n{result.get('message', '')}"
    loaded = bool(result.get("loaded"))
    as_expected = not loaded and all(_expected_in(log, e) for e in expected)
    rules = set()
    for e in expected:
        x = explain_log(sample_line(e.text))
        if x is not None:
            rules.add(x.rule)
            # a summary's reason (printed just before it) names the same rejection
            rules.update(d for r in RULES if r.name == x.rule for d in r.defers_to)
    got: dict[str, Any] = result.get("explanation") or {}
    return Verdict(
        program, loaded, as_expected, got.get("rule"), frozenset(rules), got.get("line"),
        result.get("message", "") or result.get("error", ""),
    )  # fmt: skip


def summarise(verdicts: list[Verdict]) -> dict[str, int]:
    """Programs, refused as expected, explained, wrongly explained."""
    return {
        "programs": len(verdicts),
        "rejected_as_expected": sum(v.as_expected for v in verdicts),
        "explained": sum(v.rule is not None for v in verdicts),
        "explained_of_expected": sum(v.as_expected and v.rule is not None for v in verdicts),
        "wrongly_explained": sum(v.wrong for v in verdicts),
    }


def verify_in_guest(
    kernel: Any,
    programs: list[Program],
    objects: dict[str, Path],
    workdir: Path,
    timeout: float = 900.0,
    modules: tuple[Path, ...] = (),
) -> list[Verdict]:
    """Load each program alone in one boot of ``kernel`` and judge what its verifier
    said (programs whose object is missing are left out); ``modules`` (.ko files,
    bpf_testmod) are inserted first and removed at the end."""
    import json

    from kfunc.vm import protocol as proto
    from kfunc.vm.bundle import agent_argv
    from kfunc.vm.guest import Guest
    from kfunc.vm.protocol import Op

    rundir = workdir / "run"
    rundir.mkdir(parents=True, exist_ok=True)
    names = [ko.name.removesuffix(".ko") for ko in modules]
    steps: list[Op] = [
        proto.Insmod(path=str(shutil.copy2(ko, rundir)), name=n)
        for ko, n in zip(modules, names, strict=True)
    ]
    steps += verify_steps(programs, objects, rundir)
    steps += [proto.Rmmod(name=n, always=True) for n in reversed(names)]
    (rundir / "plan.json").write_text(json.dumps({"steps": proto.encode_steps(steps)}))
    argv = agent_argv(str(rundir / "plan.json"))
    run = Guest(kernel, timeout=timeout).run(argv, rundir)
    path = rundir / "events.jsonl"
    if not path.exists():
        tail = " | ".join(line.message for line in run.console[-5:])
        raise KfuncError(f"the guest agent reported nothing: {tail}", "read the console above")
    events = [json.loads(ln) for ln in path.read_text().splitlines()]
    results = [e["data"] for e in events if e["step"] == proto.BpfVerify.op]
    loaded = [p for p in programs if p.file in objects]
    if len(results) != len(loaded):
        raise KfuncError(
            f"guest answered {len(results)} of {len(loaded)} loads",
            f"read {rundir / 'events.jsonl'} and the console",
        )
    return [judge(p, r) for p, r in zip(loaded, results, strict=True)]


@dataclass(frozen=True)
class CheckFigures:
    """``kfunc check`` on selftests objects: failure programs it flags before loading
    (an error finding), and success programs it flags (false alarms, listed)."""

    failures: int
    flagged: int
    successes: int
    false_alarms: tuple[str, ...]
    flagged_by: dict[str, int]


def check_corpus(programs: list[Program], objects: dict[str, Path], view: Any) -> CheckFigures:
    """Run :func:`kfunc.check.check_object` on each object and sort its findings by
    the selftests' verdict on each program (``__failure`` or ``__success``)."""
    from collections import Counter

    from kfunc.check import check_object, read_bpf_object

    errors: dict[tuple[str, str], list[str]] = {}
    for file, obj in objects.items():
        for r in check_object(read_bpf_object(obj), view):
            for f in r.findings:
                if f.severity == "error":
                    errors.setdefault((file, r.call.program.name), []).append(f.message)
    failing = [p for p in programs if p.file in objects and p.failure]
    passing = [p for p in programs if p.file in objects and p.success and not p.failure]
    flagged = [p for p in failing if (p.file, p.name) in errors]
    kinds: Counter[str] = Counter()
    for p in flagged:
        kinds[_kind(errors[(p.file, p.name)][0])] += 1
    alarms = tuple(
        f"{p.file}:{p.name}: {errors[(p.file, p.name)][0]}"
        for p in passing
        if (p.file, p.name) in errors
    )
    return CheckFigures(len(failing), len(flagged), len(passing), alarms, dict(kinds))


def _kind(message: str) -> str:
    for key, words in (("not found", "neither in"), ("prototype", "declared as"),
                       ("program type", "may not call"), ("sleepable", "KF_SLEEPABLE"),
                       ("unreleased", "releases none")):  # fmt: skip
        if words in message:
            return key
    return "other"
