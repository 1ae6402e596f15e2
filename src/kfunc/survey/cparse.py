"""The little C the survey needs: comments out, continuation lines joined, macro
bodies and balanced argument lists.

This is not a preprocessor: it reads kernel sources the way a reviewer does,
without configuration, so every ``#ifdef`` branch counts.
"""

from __future__ import annotations

import re

__all__ = ["call_args", "defines", "drop_if0", "strip_comments"]

_COMMENT_OR_STRING = re.compile(
    r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S
)


def strip_comments(text: str) -> str:
    """``text`` without C comments (strings are kept; a comment's newlines are kept
    so that line-anchored patterns still work)."""

    def repl(m: re.Match[str]) -> str:
        s = m[0]
        if s.startswith("/"):
            return "\n" * s.count("\n") or " "
        return s

    return _COMMENT_OR_STRING.sub(repl, text)


_CONDITIONAL = re.compile(r"^[ \t]*#[ \t]*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")


def drop_if0(text: str) -> str:
    """``text`` with what ``#if 0`` (or the ``#else`` of ``#if 1``) leaves out
    blanked; every other conditional's branches are all kept, as a reviewer
    reads them. Lines keep their numbers."""
    # A stack of (branch is dead, condition is literal: 0 or 1, or None).
    stack: list[tuple[bool, str | None]] = []
    out = []
    for line in text.split("\n"):
        m = _CONDITIONAL.match(line)
        dead_before = any(dead for dead, _ in stack)
        if m:
            word, rest = m[1], m[2].strip()
            if word == "if":
                literal = rest if rest in ("0", "1") else None
                stack.append((literal == "0", literal))
            elif word in ("ifdef", "ifndef"):
                stack.append((False, None))
            elif word in ("else", "elif") and stack:
                # After #if 1 every other branch is dead; after #if 0 the next
                # one is live (an #elif's own condition is not evaluated).
                literal = stack[-1][1]
                stack[-1] = (True, "1") if literal == "1" else (False, None)
            elif word == "endif" and stack:
                stack.pop()
            out.append("" if dead_before else line)
            continue
        out.append("" if dead_before else line)
    return "\n".join(out)


def join_continuations(text: str) -> str:
    return re.sub(r"\\[ \t]*\n", " ", text)


_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?[ \t]*(.*)$", re.M)


def defines(text: str) -> dict[str, tuple[list[str] | None, str]]:
    """Every ``#define`` of ``text`` (comments stripped, continuations joined):
    name -> (parameter names or None for an object-like macro, body)."""
    out: dict[str, tuple[list[str] | None, str]] = {}
    for m in _DEFINE.finditer(join_continuations(text)):
        params = None
        if m[2] is not None:
            params = [p.strip() for p in m[2][1:-1].split(",") if p.strip()]
        out[m[1]] = (params, m[3].strip())
    return out


def call_args(text: str, open_paren: int) -> tuple[list[str], int] | None:
    """The top-level arguments of the call whose ``(`` is at ``open_paren``, and
    the index just past its ``)``; None if the parentheses do not balance."""
    depth = 0
    args: list[str] = []
    start = open_paren + 1
    for i in range(open_paren, len(text)):
        c = text[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:i].strip())
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(text[start:i].strip())
            start = i + 1
    return None


def calls(text: str, name: str) -> list[list[str]]:
    """The argument lists of every call of macro ``name`` in ``text``."""
    out = []
    for m in re.finditer(rf"\b{re.escape(name)}\s*\(", text):
        got = call_args(text, m.end() - 1)
        if got is not None:
            out.append(got[0])
    return out
