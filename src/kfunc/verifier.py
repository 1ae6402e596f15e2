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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kfunc.errors import VerifierError
from kfunc.verifier_rules import DEFAULTS, RULES, Rule

__all__ = [
    "RULES",
    "Explanation",
    "LineInfo",
    "Rule",
    "SourceLine",
    "explain_log",
    "parse_log",
    "rejection_line",
    "verifier_error",
]


_INSN = re.compile(r"^(?P<idx>\d+): \((?P<op>[0-9a-f]{2})\) (?P<text>.*?)(?:\s+; .*)?$")
_SOURCE = re.compile(r"^; (?P<text>.*?)(?: @ (?P<file>[^ :]+):(?P<line>\d+))?$")
_NOT_A_VERDICT = re.compile(
    r"^(?:; |\d+: (?:\([0-9a-f]{2}\) |R\d|frame\d)|from \d+ to \d+|mark_precise:|"
    r"processed \d+ insns|\s*\||\s*contract: )"
)
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


def verifier_error(explanation: Explanation | None, log: str, fallback: str) -> VerifierError:
    """A :class:`~kfunc.errors.VerifierError` that prints like cilium/ebpf's: the
    explanation, then its fix; without one, ``fallback``, the log's rejection
    line and "(N line(s) omitted)". ``log`` stays whole in the error."""
    if explanation is not None:
        return VerifierError(
            explanation.summary(), log=log, fix=explanation.fix,
            program=explanation.program, explanation=explanation,
        )  # fmt: skip
    lines = [ln for ln in _clean(log.splitlines()) if ln.strip()]
    last = rejection_line(log)
    omitted = f" ({len(lines) - 1} line(s) omitted)" if len(lines) > 1 else ""
    message = f"{fallback}: {last}{omitted}" if last else fallback
    return VerifierError(message, log=log, fix="read the whole verifier log (--verbose)")


#: Lines a verifier log ends with after its verdict: the statistics
#: (``processed 2 insns (limit 1000000) ...``, ``verification time 35 usec``,
#: ``stack depth 8``, 6.x) and the loaders' frames around the log.
_AFTER_VERDICT = re.compile(
    r"^(?:processed \d+ insns|verification time \d+|stack depth [\d+]|"
    r"-- (?:BEGIN|END) PROG LOAD LOG --|prog '[^']*': (?:-- (?:BEGIN|END)|failed to load)|"
    r"failed to load (?:object|BPF skeleton)|Error: failed to load)"
)


def _clean(lines: Iterable[str]) -> list[str]:
    out = []
    for line in lines:
        line = line.rstrip("\r\n")
        for prefix in _PREFIXES:
            line = line.removeprefix(prefix)
        out.append(line)
    return out


def rejection_line(log: str) -> str | None:
    """The line of ``log`` that says why the program was rejected, as far as a
    log without a matching rule tells: its last line that is not statistics or
    a loader's frame (``processed N insns ...`` follows the rejection in every
    kernel's log), an instruction, a source line or a register state; None for
    an empty log."""
    lines = [ln.strip() for ln in _clean(log.splitlines())]
    for line in reversed(lines):
        if not line or _AFTER_VERDICT.search(line) or _INSN.match(line) or _SOURCE.match(line):
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
    for prose in (False, True):  # 7.x's diagnostic prose only where no classic line explains
        x = _explain(parsed, line_info, program, prose)
        if x is not None:
            return x
    return None


def _explain(
    parsed: VerifierLog, line_info: Iterable[LineInfo], program: str | None, prose: bool
) -> Explanation | None:
    for pos in range(len(parsed.lines) - 1, -1, -1):
        line = parsed.lines[pos]
        if _NOT_A_VERDICT.match(line):
            continue  # a source line, an instruction or a state: their text is the program's
        for rule in RULES:
            if rule.prose and not prose:
                continue
            m = rule.pattern.search(line)
            if m is None:
                continue
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            if rule.when is not None and not rule.when(parsed.lines[:pos], groups):
                continue
            if rule.defers_to and _reason_before(parsed.lines, pos, rule.defers_to):
                break  # the reason, a line or two up, explains it better
            insn = _insn_for(parsed, pos, groups.get(rule.insn_group or ""))
            ins = parsed.instructions.get(insn) if insn is not None else None
            source = ins.source if ins else None
            if source is None and insn is not None and line_info:
                source = _from_line_info(sorted(line_info, key=lambda li: li.insn), insn, None)
            return Explanation(
                rule=rule.name,
                message=rule.what.format_map(_Fill(groups)),
                fix=rule.fix.format_map(_Fill(groups)),
                line=line.strip(),
                program=program or parsed.program,
                insn=insn,
                insn_text=ins.text if ins else None,
                source=source,
                fields=groups,
            )
    return None


def _reason_before(
    lines: tuple[str, ...], pos: int, rules: tuple[str, ...], reach: int = 6
) -> bool:
    """Whether one of the ``reach`` lines before ``pos`` (states and instructions
    aside) is explained by one of ``rules``."""
    seen = 0
    for line in reversed(lines[:pos]):
        if _NOT_A_VERDICT.match(line) or not line.strip():
            continue
        if any(r.name in rules and r.when is None and r.pattern.search(line) for r in RULES):
            return True
        seen += 1
        if seen >= reach:
            break
    return False


class _Fill(dict[str, str]):
    """A rule's groups; a group the line lacks (a fragment) reads as a generic word."""

    def __missing__(self, key: str) -> str:
        if key == "at_alloc":
            return f"at insn {self['alloc']} " if self.get("alloc") else ""
        for k, v in self.items():
            if k.startswith(key) and v:
                return v  # kfunc2 stands in for kfunc
        return DEFAULTS.get(key, "?")


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
