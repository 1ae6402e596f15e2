"""The kernel's BPF selftests as a corpus of verifier rejections.

Each program in ``tools/testing/selftests/bpf/progs/*.c`` carries what the
selftests' test_loader expects of it as BTF decl tags, written through the
macros of ``progs/bpf_misc.h``: ``__failure`` (the load must fail),
``__msg("...")`` (words the verifier log must contain) and ``__success``
(all in 6.1's bpf_misc.h); their unprivileged twins ``__failure_unpriv`` and
``__msg_unpriv`` (in 6.12's, not 6.1's); inside a message, ``{{...}}`` is a
POSIX extended regular expression (6.12's test_loader.c, not 6.1's). Programs
older than test_loader keep their expected message in a table of the matching
``prog_tests/*.c``: ``{"prog_name", "message"}`` (6.1's dynptr.c, and 6.12's
linked_list.c still), or ``TC_FAIL(name, 0, "message")`` (kfunc_call.c).

This module reads those annotations without compiling anything:
:func:`read_programs` gives each program of a file with its expectations,
:func:`rejection_messages` the distinct messages that name a rejection (the
verifier's one-line reason, not a register state, an instruction dump or a
source line that a test also matches), and :func:`sample_line` turns a
message with ``{{regex}}`` parts into a line the verifier could print.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kfunc.survey.cparse import strip_comments

__all__ = [
    "KFUNC_FEATURE_WORDS",
    "CorpusFigures",
    "Coverage",
    "Expectation",
    "Program",
    "corpus_figures",
    "coverage",
    "is_kfunc_feature_file",
    "is_rejection_message",
    "read_programs",
    "read_tree",
    "rejection_messages",
    "sample_line",
]

#: A file is about a kfunc feature when its name holds one of these words.
KFUNC_FEATURE_WORDS = (
    "kfunc", "iter", "cpumask", "dynptr", "rbtree", "linked_list", "local_kptr",
    "refcounted_kptr", "arena", "exceptions", "percpu_alloc", "irq", "preempt",
    "rcu_read_lock", "kptr", "wq", "timer", "bits", "crypto", "task", "cgrp", "css",
)  # fmt: skip


def is_kfunc_feature_file(name: str) -> bool:
    """Whether the selftests file ``name`` (``cpumask_failure.c``) is about kfuncs."""
    return any(word in name for word in KFUNC_FEATURE_WORDS)


@dataclass(frozen=True)
class Expectation:
    """One expected text: ``text`` as written, ``regex`` for ``__regex`` (the whole
    text is an expression), ``unpriv`` for the unprivileged load's."""

    text: str
    regex: bool = False
    unpriv: bool = False


@dataclass(frozen=True)
class Program:
    """A program of a selftests file and what its tests expect of it."""

    file: str
    name: str
    section: str | None
    failure: bool = False
    failure_unpriv: bool = False
    success: bool = False
    success_unpriv: bool = False
    expected: tuple[Expectation, ...] = ()
    log_level: int | None = None
    flags: tuple[str, ...] = field(default=())

    @property
    def rejection_expected(self) -> tuple[Expectation, ...]:
        """The texts expected of a load that must fail: ``__msg`` of a ``__failure``
        program, ``__msg_unpriv`` of one that fails unprivileged."""
        out = []
        for e in self.expected:
            if e.unpriv:
                if self.failure_unpriv or (self.failure and not self.success_unpriv):
                    out.append(e)
            elif self.failure:
                out.append(e)
        return tuple(out)


# --- C text, enough of it ----------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_ANNOTATION = re.compile(
    r"\b(?P<tag>__msg_unpriv|__msg|__regex_unpriv|__regex|__failure_unpriv|__failure"
    r"|__success_unpriv|__success|__log_level|__flag|SEC)\b"
)
#: Wrappers whose first argument is the program's name: BPF_PROG(name, ...).
_NAME_IN_FIRST_ARG = re.compile(r"^[A-Z_0-9]+$")


def _unescape(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


def _call_args(text: str, start: int) -> tuple[str, int]:
    """The text between the parenthesis at ``start`` and its match, and the end."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == '"':
            m = _STRING.match(text, i)
            i = m.end() if m else i + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return text[start + 1 :], len(text)


def _literal(args: str) -> str | None:
    """Adjacent string literals joined (C concatenation); None if anything else."""
    parts = _STRING.findall(args)
    rest = _STRING.sub("", args).strip()
    if not parts or rest:
        return None
    return "".join(_unescape(p) for p in parts)


@dataclass
class _Notes:
    section: str | None = None
    failure: bool = False
    failure_unpriv: bool = False
    success: bool = False
    success_unpriv: bool = False
    expected: list[Expectation] = field(default_factory=list)
    log_level: int | None = None
    flags: list[str] = field(default_factory=list)

    def merge(self, other: _Notes) -> _Notes:
        return _Notes(
            self.section or other.section,
            self.failure or other.failure,
            self.failure_unpriv or other.failure_unpriv,
            self.success or other.success,
            self.success_unpriv or other.success_unpriv,
            self.expected + other.expected,
            self.log_level if self.log_level is not None else other.log_level,
            self.flags + other.flags,
        )

    def any(self) -> bool:
        return bool(self.failure or self.failure_unpriv or self.success or self.expected)


def _notes(text: str) -> _Notes:
    notes = _Notes()
    for m in _ANNOTATION.finditer(text):
        tag = m["tag"]
        if tag in ("__failure", "__failure_unpriv", "__success", "__success_unpriv"):
            setattr(notes, tag.removeprefix("__"), True)
            continue
        paren = text.find("(", m.end())
        if paren < 0 or text[m.end() : paren].strip():
            continue
        args, _ = _call_args(text, paren)
        if tag == "SEC":
            notes.section = _literal(args)
        elif tag == "__log_level":
            notes.log_level = int(args) if args.strip().isdigit() else None
        elif tag == "__flag":
            notes.flags.append(args.strip())
        else:
            lit = _literal(args)
            if lit is not None:
                notes.expected.append(
                    Expectation(lit, regex=tag.startswith("__regex"), unpriv="unpriv" in tag)
                )
    return notes


def _defines(text: str) -> tuple[str, dict[str, str]]:
    """``text`` without preprocessor lines, and function-like macros' bodies."""
    text = text.replace("\\\n", " ")
    macros: dict[str, str] = {}
    kept = []
    for line in text.split("\n"):
        s = line.lstrip()
        if s.startswith("#"):
            m = re.match(r"#\s*define\s+(\w+)\(", s)
            if m:
                macros[m[1]] = s
            kept.append("")
        else:
            kept.append(line)
    return "\n".join(kept), macros


def _top_level(text: str) -> Iterator[tuple[str, str]]:
    """Top-level chunks of C: (declarator text, "{" or ";")."""
    depth = 0
    start = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"' or c == "'":
            m = (
                _STRING.match(text, i)
                if c == '"'
                else re.compile(r"'(?:[^'\\]|\\.)*'").match(text, i)
            )
            i = m.end() if m else i + 1
            continue
        if c == "{":
            if depth == 0:
                yield text[start:i], "{"
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                start = i + 1
        elif c == ";" and depth == 0:
            yield text[start:i], ";"
            start = i + 1
        i += 1


def _function_name(decl: str) -> str | None:
    """The function a declarator defines: ``foo`` of ``int foo(void *ctx)``, ``name`` of
    ``int BPF_PROG(name, ...)``."""
    decl = decl.rstrip()
    if not decl.endswith(")"):
        return None
    depth = 0
    for i in range(len(decl) - 1, -1, -1):
        if decl[i] == ")":
            depth += 1
        elif decl[i] == "(":
            depth -= 1
            if depth == 0:
                m = re.search(r"(\w+)\s*$", decl[:i])
                if m is None:
                    return None
                name = m[1]
                if _NAME_IN_FIRST_ARG.match(name):
                    first = decl[i + 1 : -1].split(",")[0].strip()
                    return first if re.fullmatch(r"\w+", first) else None
                return name
    return None


def _macro_program(decl: str, macros: dict[str, str]) -> tuple[str | None, str | None]:
    """A program that a macro of the file defines (``check_assert(s64, ==, eq_zero, 0);``):
    its name (the macro's and its arguments) and the macro's text."""
    for m in re.finditer(r"\b(\w+)\s*\(", decl):
        if m[1] not in macros:
            continue
        args, end = _call_args(decl, m.end() - 1)
        if decl[end:].strip():
            continue
        return f"{m[1]}({', '.join(a.strip() for a in args.split(','))})", macros[m[1]]
    return None, None


def read_programs(path: Path) -> list[Program]:
    """The programs of one ``progs/*.c`` file, each with its annotations."""
    text, macros = _defines(strip_comments(path.read_text(errors="replace")))
    programs = []
    for decl, end in _top_level(text):
        notes = _notes(decl)
        name: str | None = None
        if end == "{":
            name = _function_name(decl)
        else:
            name, body = _macro_program(decl, macros)
            if body is not None:
                notes = notes.merge(_notes(body))
        if name is None or not (notes.any() or notes.section):
            continue
        programs.append(
            Program(
                path.name, name, notes.section, notes.failure, notes.failure_unpriv,
                notes.success, notes.success_unpriv, tuple(notes.expected), notes.log_level,
                tuple(notes.flags),
            )
        )  # fmt: skip
    return programs


def _legacy_tables(prog_tests: Path, by_name: dict[str, list[Program]]) -> Iterator[Program]:
    """Failure programs that the pre-test_loader tests list in a table of their
    ``prog_tests/*.c``: ``{"prog_name", "expected message"}`` (6.1's dynptr.c,
    cb_refs.c, map_kptr.c ...), or ``X(name, ..., "message")`` (kfunc_call.c)."""
    entry = re.compile(r'\{\s*"(?P<prog>\w+)"\s*,\s*(?P<msg>(?:"(?:[^"\\]|\\.)*"\s*)+)\}')
    macro = re.compile(
        r"\b\w*FAIL\(\s*(?P<prog>\w+)\s*,[^;]*?,\s*(?P<msg>(?:\"(?:[^\"\\]|\\.)*\"\s*)+)\)"
    )
    for test in sorted(prog_tests.glob("*.c")):
        text = strip_comments(test.read_text(errors="replace"))
        for pat in (entry, macro):
            for m in pat.finditer(text):
                msg = _literal(m["msg"])
                for prog in by_name.get(m["prog"], []):
                    if prog.failure or msg is None or msg.startswith("processed "):
                        continue
                    yield Program(
                        prog.file, prog.name, prog.section, failure=True,
                        expected=(Expectation(msg),),
                    )  # fmt: skip


def read_tree(progs: Path, prog_tests: Path | None = None) -> list[Program]:
    """Every annotated program of a selftests ``progs/`` directory; with
    ``prog_tests``, also the failure programs its older tables list."""
    programs: list[Program] = []
    for path in sorted(progs.glob("*.c")):
        programs.extend(read_programs(path))
    if prog_tests is not None and prog_tests.is_dir():
        by_name: dict[str, list[Program]] = {}
        for p in programs:
            by_name.setdefault(p.name, []).append(p)
        seen = {(p.file, p.name) for p in programs if p.failure}
        for p in _legacy_tables(prog_tests, by_name):
            if (p.file, p.name) not in seen:
                programs.append(p)
    return programs


# --- which expected texts are rejections --------------------------------------------

#: What a test matches besides the rejection, each pattern anchored at the text's start:
_NOT_A_REJECTION = (
    # an instruction as the log prints it, "7: (1f) r0 -= r6", "1: R1=ctx()", or the
    # verifier's walk, "from 3 to 5:", "mark_precise: frame0: ...", "last_idx 4 first_idx 0"
    re.compile(r"\s*(?:\{\{[^}]*\}\}|\d+)?\s*:"),
    re.compile(r"\s*\(\w\w\) "),
    re.compile(
        r"\s*(?:from \d+ to \d+|mark_precise|last_idx|regs=|parent |frame\d|func#\d|"
        r"propagating|caller|callee|stack=|Live regs|Validating|Func#|returning from callee|"
        r"\.\.\.|r\d+ = |call |exit|if |goto |processed )"
    ),
    # a register or stack slot's state, "R0_w=scalar(...)", "fp-8=...", "=mmmm"
    re.compile(r"\s*(?:[Rr]|fp-?)?(?:\d+|\{\{[^}]*\}\})(?:_w|_rw|_r)?=", re.I),
    re.compile(r"\s*[=(]"),
    # a source line the log quotes
    re.compile(r"\s*; "),
    # an instruction of inline assembly ("r1 = 0", "*(u64 *)(r10 -8) = r1", "call bpf_...")
    re.compile(r"\s*\*\(u\d+ \*\)"),
)  # fmt: skip


def is_rejection_message(text: str) -> bool:
    """Whether an expected text names a rejection rather than showing state.

    Left out: texts that begin as an instruction line of the log (``N:`` or
    ``(op)``), a verifier walk or precision-tracking line (``from 3 to 5``,
    ``mark_precise``, ``last_idx``, ``frame0``, ``func#``, ``Global function
    ... is``, ``processed N insns``, ...), a register or stack slot state
    (``R0_w=``, ``fp-8=``), a source line (``; ...``), inline assembly
    (``r1 = ...``, ``*(u64 *)...``, ``call ...``, ``exit``), or that are empty.
    """
    if not text.strip() or "\n" in text.strip():
        return False
    return not any(p.match(text) for p in _NOT_A_REJECTION)


def rejection_messages(programs: Iterable[Program]) -> list[str]:
    """The distinct expected rejection texts of the failure programs, sorted."""
    out: set[str] = set()
    for p in programs:
        for e in p.rejection_expected:
            if is_rejection_message(e.text):
                out.add(f"{{{{{e.text}}}}}" if e.regex else e.text)
    return sorted(out)


# --- a line the verifier could print for a message -------------------------------

_PIECE = re.compile(r"\{\{(.*?)\}\}")
_SAMPLES = {
    r"\d": "0", r"\w": "a", r"\s": " ", ".": "x",
}  # fmt: skip


def sample_line(message: str) -> str:
    """``message`` with each ``{{regex}}`` part replaced by a short text it matches
    (``R{{[0-9]+}} invalid`` -> ``R0 invalid``); checked by matching it back."""
    pattern = "".join(
        re.escape(part) if i % 2 == 0 else f"(?:{part})"
        for i, part in enumerate(_PIECE.split(message))
    )
    line = _PIECE.sub(lambda m: _sample(m[1]), message)
    if re.fullmatch(pattern, line) is None:
        raise ValueError(f"cannot make a sample of {message!r}")
    return line


def _sample(regex: str) -> str:
    """The shortest text of a small regex (what the selftests use in ``{{}}``)."""
    out = []
    i = 0
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex):
            token = regex[i : i + 2]
            out.append(_SAMPLES.get(token, regex[i + 1]))
            i += 2
        elif c == "[":
            end = regex.index("]", i + 2 if regex[i + 1 : i + 2] in ("^", "]") else i + 1)
            cls = regex[i + 1 : end]
            out.append("0" if "0" in cls else ("a" if cls[:1] == "^" else cls[0]))
            i = end + 1
        elif c == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(regex[j], 0)
                j += 1
            inner = regex[i + 1 : j - 1].removeprefix("?:")
            out.append(_sample(inner.split("|")[0]))
            i = j
        elif c in "*?":
            out.pop()
            i += 1
        elif c == "+":
            i += 1
        elif c == "{":
            end = regex.index("}", i)
            low = int(regex[i + 1 : end].split(",")[0] or 0)
            out[-1] = out[-1] * low
            i = end + 1
        elif c == "|":
            break
        elif c in "^$":
            i += 1
        else:
            out.append(_SAMPLES.get(c, c))
            i += 1
    return "".join(out)


# --- how much of it the rules explain -----------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """Of ``messages``, those a one-line log of which the rules explain (``explained``)."""

    messages: tuple[str, ...]
    explained: tuple[str, ...]

    @property
    def missed(self) -> tuple[str, ...]:
        got = set(self.explained)
        return tuple(m for m in self.messages if m not in got)

    @property
    def share(self) -> float:
        return len(self.explained) / len(self.messages) if self.messages else 0.0


def coverage(messages: Iterable[str]) -> Coverage:
    """Each message as a one-line log through :func:`kfunc.verifier.explain_log`."""
    from kfunc.verifier import explain_log

    msgs = tuple(messages)
    return Coverage(msgs, tuple(m for m in msgs if explain_log(sample_line(m)) is not None))


@dataclass(frozen=True)
class CorpusFigures:
    """A selftests tree's failure programs and how much of them the rules explain."""

    series: str
    programs: int
    files: int
    kfunc_files: int
    kfunc: Coverage
    all: Coverage


def corpus_figures(series: str, progs: Path, prog_tests: Path | None = None) -> CorpusFigures:
    """The figures of one tree: distinct expected rejection messages of the failure
    programs in kfunc-feature files and in all files, each explained or not."""
    failing = [p for p in read_tree(progs, prog_tests) if p.failure or p.failure_unpriv]
    files = {p.file for p in failing}
    kfunc_failing = [p for p in failing if is_kfunc_feature_file(p.file)]
    return CorpusFigures(
        series,
        len(failing),
        len(files),
        len({p.file for p in kfunc_failing}),
        coverage(rejection_messages(kfunc_failing)),
        coverage(rejection_messages(failing)),
    )
