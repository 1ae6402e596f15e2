"""Verifier logs: find what went wrong, where, and the fix.

The kernel's verifier tells why it rejected a program in one line near the
end of its log ("calling kernel function X is not allowed", "Unreleased
reference id=2 alloc_insn=1" ...). This module keeps a table of
:class:`Rule`, each a pattern for such a line, the plain sentence and the
fix it stands for, and the real log lines it was written from (with the
kernel that printed them). :func:`explain_log` finds the rule that matches a
log, the instruction it concerns and, from the ``; source`` comments the
verifier prints for programs with BTF line info (``-g``), the source line:
6.8+ kernels print ``; text @ file.c:12``, older ones only ``; text``, which
the object's own line info (``.BTF.ext``, see :func:`kfunc.check.read_line_info`)
turns into a file and a line.

It reads a log from any loader: libbpf's (C, Python, bpftool: ``libbpf:``
prefixes and ``-- BEGIN PROG LOAD LOG --`` marks), cilium/ebpf's and aya's
(the kernel's lines unchanged). Nothing here touches the kernel.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kfunc.errors import KfuncError

__all__ = [
    "RULES",
    "Explanation",
    "LineInfo",
    "Rule",
    "SourceLine",
    "VerifierError",
    "explain_log",
    "parse_log",
]


@dataclass(frozen=True)
class Rule:
    """One kind of rejection: ``pattern`` matches the verifier's (or loader's) line;
    ``what`` and ``fix`` are ``str.format`` templates over its named groups.
    ``seen`` holds real lines it was written from, each with the kernel (or
    loader) that printed it."""

    name: str
    pattern: re.Pattern[str]
    what: str
    fix: str
    seen: tuple[str, ...]
    #: The group naming the instruction the problem is about (else the last one
    #: the log shows before the line).
    insn_group: str | None = None
    #: A further condition on the log before the line and the match's groups.
    when: Callable[[Sequence[str], dict[str, str]], bool] | None = None


def _rule(
    name: str,
    pattern: str,
    what: str,
    fix: str,
    *seen: str,
    insn: str | None = None,
    when: Callable[[Sequence[str], dict[str, str]], bool] | None = None,
) -> Rule:
    return Rule(name, re.compile(pattern), what, fix, seen, insn, when)


def _maybe_null(before: Sequence[str], groups: dict[str, str]) -> bool:
    """Whether the log last showed register ``reg`` as possibly NULL."""
    state = re.compile(rf"\bR{groups['reg']}(?:_w)?=(\S+)")
    for line in reversed(before):
        m = state.search(line)
        if m:
            return "or_null" in m[1]
    return False


# The first rule that matches a line of the log wins; rules are tried on the
# log's lines from the end, so the verifier's last word decides.
RULES: tuple[Rule, ...] = (
    _rule(
        "kfunc_not_allowed",
        r"calling kernel function (?P<kfunc>\w+) is not allowed",
        "kfunc {kfunc} is not registered for this program's type on this kernel",
        "call it from a program type its kfunc set is registered for (`kfunc check OBJ "
        "--kernel VER` and `kfunc ls --probe` say which), or register the set for this "
        "type with register_btf_kfunc_id_set()",
        "6.18: calling kernel function bpf_task_from_pid is not allowed",
        "6.12: calling kernel function sleepable_nap is not allowed",
    ),
    _rule(
        "kfunc_not_found",
        r"extern \(func ksym\) '(?P<kfunc>\w+)': not found in kernel or module BTFs",
        "kfunc {kfunc} is not in the kernel's BTF nor in any loaded module's",
        "check the name against `kfunc ls`; if a module defines it, load the module first; "
        "or declare it __weak and test bpf_ksym_exists({kfunc}) before calling it",
        "libbpf 1.1 (6.18): extern (func ksym) 'bpf_no_such_kfunc': not found in kernel "
        "or module BTFs",
    ),
    _rule(
        "kfunc_not_found",
        r'kfunc "?(?P<kfunc>\w+)"?: not supported',
        "kfunc {kfunc} is not in the kernel's BTF nor in any loaded module's",
        "check the name against `kfunc ls`; if a module defines it, load the module first",
        'cilium/ebpf: kfunc "bpf_no_such_kfunc": not supported',
    ),
    _rule(
        "kfunc_btf_id_invalid",
        r"kernel btf_id (?P<id>\d+) is not a function",
        "the call names BTF id {id}, which is not a function of the kernel's BTF",
        "the loader resolved the kfunc against another kernel's BTF: resolve kfunc "
        "names against the running kernel's /sys/kernel/btf (libbpf does)",
        "kernel/bpf/verifier.c: kernel btf_id %u is not a function",
    ),
    _rule(
        "kfunc_proto_mismatch",
        r"extern \(func ksym\) '(?P<kfunc>\w+)': func_proto \[\d+\] incompatible with "
        r"(?P<owner>\S+) \[\d+\]",
        "the program's declaration of {kfunc} does not match its prototype in {owner} BTF",
        "declare it as the kernel does: `kfunc header --kfunc {kfunc}` writes the extern "
        "(a struct must be a full definition, not a forward declaration)",
        "libbpf 1.1 (6.18): extern (func ksym) 'bpf_task_release': func_proto [313] "
        "incompatible with kernel [48528]",
    ),
    _rule(
        "unreleased_reference",
        r"Unreleased reference id=(?P<ref>\d+) alloc_insn=(?P<alloc>\d+)",
        "a reference acquired at insn {alloc} (a KF_ACQUIRE kfunc's result) is not "
        "released on every path to exit",
        "release it on each path, including early returns, with the matching KF_RELEASE "
        "kfunc (bpf_task_from_pid -> bpf_task_release), or store it in a map as a kptr",
        "6.18: Unreleased reference id=2 alloc_insn=1",
        "6.12: Unreleased reference id=3 alloc_insn=3",
        insn="alloc",
    ),
    _rule(
        "release_unacquired",
        r"release kernel function (?P<kfunc>\w+) expects refcounted PTR_TO_BTF_ID",
        "{kfunc} releases a reference, but its argument was not acquired by this program",
        "pass only a pointer returned by a KF_ACQUIRE kfunc (bpf_task_acquire(), "
        "bpf_task_from_pid() ...) and not yet released; drop the release of borrowed pointers",
        "6.18: release kernel function bpf_task_release expects refcounted PTR_TO_BTF_ID",
    ),
    _rule(
        "release_unacquired",
        r"R(?P<reg>\d) must be referenced when passed to release function",
        "R{reg} is passed to a KF_RELEASE kfunc but holds no acquired reference",
        "pass only a pointer returned by a KF_ACQUIRE kfunc and not yet released",
        "6.12: R1 must be referenced when passed to release function",
    ),
    _rule(
        "null_not_checked",
        r"R(?P<reg>\d+) invalid mem access '(?:ptr_or_null_|[a-z_]*or_null)\w*'",
        "R{reg} may be NULL here: it holds a result that can be NULL (a KF_RET_NULL kfunc's) "
        "and is dereferenced without a check",
        "test it first: `if (!p) return 0;` right after the call",
        "6.18: R0 invalid mem access 'ptr_or_null_'",
    ),
    _rule(
        "null_not_checked",
        r"Possibly NULL pointer passed to trusted arg(?P<arg>\d+)",
        "argument {arg} may be NULL (a KF_RET_NULL kfunc's result, not yet checked) where "
        "the kfunc needs a valid pointer",
        "test it first: `if (!p) return 0;` right after the call that returned it",
        "6.12: Possibly NULL pointer passed to trusted arg0",
    ),
    _rule(
        "null_not_checked",
        r"R(?P<reg>\d+) type=(?P<got>\S+) expected=(?P<want>\S+)",
        "R{reg} may be NULL here: it holds a result that can be NULL (a KF_RET_NULL kfunc's) "
        "and is passed on without a check",
        "test it first: `if (!p) return 0;` right after the call that returned it",
        "6.1: R1 type=ptr_ expected=fp (R1 shown before as ptr_or_null_refobj)",
        when=_maybe_null,
    ),
    _rule(
        "wrong_argument_type",
        r"R(?P<reg>\d+) type=(?P<got>\S+) expected=(?P<want>\S+)",
        "R{reg} holds {got} where {want} is expected",
        "pass the kind of value the kfunc's prototype asks for (`kfunc ls` shows it)",
        "kernel/bpf/verifier.c: R%d type=%s expected=%s",
    ),
    _rule(
        "sleepable_kfunc",
        r"program must be sleepable to call sleepable kfunc (?P<kfunc>\w+)",
        "{kfunc} may sleep (KF_SLEEPABLE), and this program may not",
        'call it from a sleepable program: SEC("fentry.s/...") , "lsm.s/...", '
        '"uprobe.s/..." or "syscall"',
        "6.18: program must be sleepable to call sleepable kfunc bpf_copy_from_user_str",
    ),
    _rule(
        "destructive_kfunc",
        r"destructive kfunc calls require CAP_SYS_BOOT capabilit(?:y|ies)",
        "the program calls a KF_DESTRUCTIVE kfunc, which needs CAP_SYS_BOOT to load",
        "load it with CAP_SYS_BOOT (as root, without dropping it: `capsh --print` shows it)",
        "6.12: destructive kfunc calls require CAP_SYS_BOOT capability",
        "6.1: destructive kfunc calls require CAP_SYS_BOOT capabilities",
    ),
    _rule(
        "wrong_argument_type",
        r"kernel function (?P<kfunc>\w+) args#(?P<arg>\d+) expected pointer to "
        r"(?P<want>\w+ \w+) but R(?P<reg>\d+) has a pointer to (?P<got>\w+ \w+)",
        "argument {arg} of {kfunc} must point to {want}, but R{reg} points to {got}",
        "pass a pointer to {want} (not a cast of another type): the verifier checks the "
        "BTF type of each pointer argument",
        "6.18: kernel function bpf_cgroup_acquire args#0 expected pointer to STRUCT cgroup "
        "but R1 has a pointer to STRUCT task_struct",
    ),
    _rule(
        "wrong_argument_type",
        r"arg#(?P<arg>\d+) expected pointer to (?P<want>.+?)(?:, but got| but) (?P<got>.+)",
        "argument {arg} must be a pointer to {want}, but the program passes {got}",
        "pass the kind of pointer the kfunc's prototype asks for (`kfunc ls` shows it)",
        "kernel/bpf/verifier.c: arg#0 expected pointer to ctx, but got PTR",
    ),
    _rule(
        "untrusted_argument",
        r"R(?P<reg>\d+) must be (?:referenced or trusted|a rcu pointer|referenced)$",
        "R{reg} is passed to a kfunc that needs a trusted pointer (KF_TRUSTED_ARGS/KF_RCU), "
        "but it was loaded from memory or is otherwise untrusted",
        "pass a pointer the verifier trusts: a KF_ACQUIRE result, a tracing program's "
        "argument, or bpf_get_current_task_btf()",
        "6.12: R1 must be referenced or trusted",
        "6.1: R1 must be referenced (bpf_get_current_task_btf() passed to a KF_TRUSTED_ARGS kfunc)",
    ),
    _rule(
        "non_gpl",
        r"cannot call kernel function from non-GPL compatible program",
        "kfuncs may be called only from GPL-compatible programs",
        'declare a GPL-compatible license: char LICENSE[] SEC("license") = "GPL";',
        "kernel/bpf/verifier.c: cannot call kernel function from non-GPL compatible program",
    ),
)

_INSN = re.compile(r"^(?P<idx>\d+): \((?P<op>[0-9a-f]{2})\) (?P<text>.*?)(?:\s+; .*)?$")
_SOURCE = re.compile(r"^; (?P<text>.*?)(?: @ (?P<file>[^ :]+):(?P<line>\d+))?$")
_PROG = re.compile(r"prog '(?P<prog>[^']+)': BPF program load failed")
_PREFIXES = ("libbpf: ",)


@dataclass(frozen=True)
class SourceLine:
    """A line of the program's source: ``file`` and ``line`` where known."""

    text: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else ""
        return f"{where}{self.text}"


@dataclass(frozen=True)
class LineInfo:
    """One record of a program's BTF line info: instruction ``insn`` starts ``line``."""

    insn: int
    file: str
    line: int
    column: int
    text: str


@dataclass(frozen=True)
class Instruction:
    idx: int
    text: str
    source: SourceLine | None


@dataclass(frozen=True)
class VerifierLog:
    """A log cut into what :func:`explain_log` needs."""

    lines: tuple[str, ...]
    instructions: dict[int, Instruction]
    order: tuple[int, ...]  # instruction indexes in the order the log shows them
    program: str | None


@dataclass(frozen=True)
class Explanation:
    """What went wrong (``message``), where (``insn``, ``source``), and ``fix``;
    ``line`` is the log line that said so, ``rule`` the rule's name."""

    rule: str
    message: str
    fix: str
    line: str
    program: str | None = None
    insn: int | None = None
    insn_text: str | None = None
    source: SourceLine | None = None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``insn 1 (call bpf_task_from_pid#65914), task_leak.bpf.c:12: <source>``."""
        parts = []
        if self.insn is not None:
            parts.append(f"insn {self.insn}" + (f" ({self.insn_text})" if self.insn_text else ""))
        if self.source is not None:
            parts.append(str(self.source))
        return ", ".join(parts)

    def summary(self) -> str:
        """One line: the program, what went wrong and where."""
        prog = f"prog '{self.program}': " if self.program else ""
        at = f" (at {self.where})" if self.where else ""
        return f"{prog}{self.message}{at}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "message": self.message,
            "fix": self.fix,
            "line": self.line,
            "program": self.program,
            "insn": self.insn,
            "insn_text": self.insn_text,
            "source": None
            if self.source is None
            else {"file": self.source.file, "line": self.source.line, "text": self.source.text},
        }


class VerifierError(KfuncError):
    """A program the verifier (or the loader before it) rejected, explained.

    Prints like cilium/ebpf's: the explanation, then the fix; ``log`` keeps the
    whole log, ``explanation`` the :class:`Explanation` (None if no rule matched).
    """

    def __init__(self, explanation: Explanation | None, log: str, fallback: str) -> None:
        if explanation is None:
            last = [ln for ln in _clean(log.splitlines()) if ln.strip()]
            omitted = f" ({len(last) - 1} line(s) omitted)" if len(last) > 1 else ""
            message = f"{fallback}: {last[-1]}{omitted}" if last else fallback
            super().__init__(message, "read the whole verifier log (--verbose)")
        else:
            super().__init__(explanation.summary(), explanation.fix)
        self.explanation = explanation
        self.log = log


def _clean(lines: Iterable[str]) -> list[str]:
    out = []
    for line in lines:
        line = line.rstrip("\r\n")
        for prefix in _PREFIXES:
            line = line.removeprefix(prefix)
        out.append(line)
    return out


#: Lines a verifier log ends with after the rejection: statistics, libbpf's frame.
_TRAILER = re.compile(
    r"^(processed \d+ insns|verification time|stack depth|-- (BEGIN|END) PROG LOAD LOG --|$)"
)


def rejection_line(log: str) -> str | None:
    """The line of ``log`` that says why the program was rejected, as far as a
    log without a matching rule tells: its last line that is not statistics,
    an instruction, a source line or a register state; None for an empty log."""
    lines = [ln.strip() for ln in _clean(log.splitlines())]
    for line in reversed(lines):
        if _TRAILER.match(line) or _INSN.match(line) or _SOURCE.match(line):
            continue
        if re.match(r"^\d+: (R\d|frame)", line):  # a register state
            continue
        return line
    return next((ln for ln in reversed(lines) if ln), None)


def parse_log(log: str, line_info: Iterable[LineInfo] = ()) -> VerifierLog:
    """The instructions a log shows, each with the source line before it.

    ``line_info`` (the program's, from its object) fills in the file and line
    where the log's ``;`` comments have none (kernels before 6.8), and gives a
    source line to instructions the log shows without one.
    """
    lines = tuple(_clean(log.splitlines()))
    by_insn = sorted(line_info, key=lambda li: li.insn)
    instructions: dict[int, Instruction] = {}
    order: list[int] = []
    source: SourceLine | None = None
    program = None
    for line in lines:
        m = _PROG.search(line)
        if m and program is None:
            program = m["prog"]
        m = _SOURCE.match(line)
        if m:
            file, num = m["file"], int(m["line"]) if m["line"] else None
            source = SourceLine(m["text"], file, num)
            continue
        m = _INSN.match(line)
        if m:
            idx = int(m["idx"])
            src = source
            if by_insn and (src is None or src.line is None):
                src = _from_line_info(by_insn, idx, src)
            if idx not in instructions:
                instructions[idx] = Instruction(idx, f"({m['op']}) {m['text']}", src)
            order.append(idx)
    return VerifierLog(lines, instructions, tuple(order), program)


def _from_line_info(
    line_info: list[LineInfo], idx: int, seen: SourceLine | None
) -> SourceLine | None:
    best = None
    for li in line_info:
        if li.insn > idx:
            break
        best = li
    if best is None:
        return seen
    return SourceLine(seen.text if seen else best.text.strip(), best.file, best.line)


def explain_log(
    log: str, line_info: Iterable[LineInfo] = (), program: str | None = None
) -> Explanation | None:
    """The explanation of a verifier (or loader) log, None if no rule knows it."""
    parsed = parse_log(log, line_info)
    for pos in range(len(parsed.lines) - 1, -1, -1):
        line = parsed.lines[pos]
        for rule in RULES:
            m = rule.pattern.search(line)
            if m is None:
                continue
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            if rule.when is not None and not rule.when(parsed.lines[:pos], groups):
                continue
            insn = _insn_for(parsed, pos, groups.get(rule.insn_group or ""))
            ins = parsed.instructions.get(insn) if insn is not None else None
            source = ins.source if ins else None
            if source is None and insn is not None and line_info:
                source = _from_line_info(sorted(line_info, key=lambda li: li.insn), insn, None)
            return Explanation(
                rule=rule.name,
                message=rule.what.format(**groups),
                fix=rule.fix.format(**groups),
                line=line.strip(),
                program=program or parsed.program,
                insn=insn,
                insn_text=ins.text if ins else None,
                source=source,
                fields=groups,
            )
    return None


def _insn_for(parsed: VerifierLog, pos: int, named: str | None) -> int | None:
    """The instruction a problem is about: the one the rule names, else the last
    instruction the log showed before the problem's line."""
    if named is not None:
        return int(named)
    last = None
    for line in parsed.lines[:pos]:
        m = _INSN.match(line)
        if m:
            last = int(m["idx"])
    return last
