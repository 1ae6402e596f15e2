"""One C function prototype, as a kfunc spec writes it: parsed, and nothing more.

A spec's ``proto`` is copied into the generated module and into the BPF-side
header, so it must be exactly one function declaration: a return type, the
function's name, its parameters, and at most a closing ``;``. Anything more
(a second declaration, a body, a preprocessor line, a comment, an initializer)
is refused here, before it can reach C source.

The grammar is the part of C's declarations a kfunc uses: type specifiers
(keywords, typedef names such as ``u64``, ``struct``/``union``/``enum`` tags),
qualifiers, annotation macros (``__user``), pointers, arrays and
function-pointer parameters (``int (*cb)(void *)``). Typedef names cannot be
told from annotation macros without the kernel's headers; kbuild judges those.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["C_KEYWORDS", "CProtoError", "Prototype", "parse_prototype"]

# C11's keywords (6.4.1) and the GNU ones gcc and clang take in kernel code.
C_KEYWORDS = frozenset((
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic", "_Bool",
    "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local", "asm",
    "typeof", "__asm__", "__attribute__", "__typeof__", "__inline__", "__restrict",
    "__restrict__", "__volatile__", "__const__", "__signed__", "__extension__",
    "__builtin_va_list",
))  # fmt: skip
_TYPE_KEYWORDS = frozenset((
    "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "_Bool",
    "_Complex", "__signed__", "__builtin_va_list",
))  # fmt: skip
_QUALIFIERS = frozenset((
    "const", "volatile", "restrict", "__restrict", "__restrict__", "__const__", "__volatile__",
    "_Atomic",
))  # fmt: skip
_TAGS = frozenset(("struct", "union", "enum"))
_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<ident>[A-Za-z_]\w*)|(?P<number>\d\w*)|(?P<punct>\.\.\.|[*(),\[\];])"
    r"|(?P<other>.)"
)


class CProtoError(ValueError):
    """A prototype that is not exactly one C function declaration."""


@dataclass(frozen=True)
class Prototype:
    """``u64 f(u32 a, struct x *p)``: its parts, as written."""

    name: str
    return_type: str  # "u64", "struct refobj *"
    params: str  # the text between the parentheses, "void" when there are none
    param_names: tuple[str, ...]


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    start: int


def _tokens(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # "other" matches any character
        kind = m.lastgroup or ""
        if kind != "space":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return toks


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def at(self, text: str, offset: int = 0) -> bool:
        tok = self.peek(offset)
        return tok is not None and tok.kind != "ident" and tok.text == text

    def take(self, text: str) -> _Tok:
        tok = self.peek()
        if tok is None or tok.text != text:
            found = "the end" if tok is None else repr(tok.text)
            raise CProtoError(f"expected {text!r}, found {found}")
        self.i += 1
        return tok

    def specifiers(self) -> bool:
        """A run of specifiers, qualifiers and annotations; whether it names a type.

        An identifier right before ``( ) , [ ;`` or the end, after a type, is
        the declarator's name and ends the run.
        """
        has_type = False
        while (tok := self.peek()) is not None and tok.kind == "ident":
            word = tok.text
            if has_type and word not in C_KEYWORDS:
                after = self.peek(1)
                if after is None or after.text in ("(", ")", ",", "[", ";"):
                    break
            if word in ("static", "extern", "inline", "__inline__", "typedef", "register",
                        "auto", "_Noreturn", "_Thread_local"):  # fmt: skip
                raise CProtoError(
                    f"{word!r} does not belong in a prototype (kfunc adds what it needs)"
                )
            if word in ("__attribute__", "asm", "__asm__", "typeof", "__typeof__"):
                raise CProtoError(f"{word} is not supported in a prototype")
            self.i += 1
            if word in _TAGS:
                tag = self.peek()
                if tag is None or tag.kind != "ident" or tag.text in C_KEYWORDS:
                    raise CProtoError(f"{word} needs a tag name (an inline {word} body is refused)")
                self.i += 1
                has_type = True
            elif word in _TYPE_KEYWORDS:
                has_type = True
            elif word in _QUALIFIERS:
                pass
            elif word in C_KEYWORDS:
                raise CProtoError(f"{word!r} is a C keyword, not a type")
            else:
                has_type = True  # a typedef name (u64) or an annotation (__user)
        return has_type

    def declarator(self) -> tuple[str | None, list[str]]:
        """A (possibly abstract) declarator: its name, and its derivations from the name out."""
        pointers = 0
        while self.at("*"):
            self.i += 1
            pointers += 1
            while (tok := self.peek()) is not None and tok.text in _QUALIFIERS:
                self.i += 1
        name: str | None = None
        derivations: list[str] = []
        tok = self.peek()
        if tok is not None and tok.kind == "ident":
            if tok.text in C_KEYWORDS:
                raise CProtoError(f"{tok.text!r} is a C keyword, not a name")
            name = tok.text
            self.i += 1
        elif self.at("(") and self.at("*", 1):
            self.i += 1
            name, derivations = self.declarator()
            self.take(")")
        while True:
            if self.at("("):
                self.i += 1
                self.parameters()
                derivations.append("function")
            elif self.at("["):
                self.i += 1
                tok = self.peek()
                if tok is not None and tok.kind in ("number", "ident"):
                    self.i += 1
                self.take("]")
                derivations.append("array")
            else:
                break
        return name, derivations + ["pointer"] * pointers

    def parameter(self) -> str | None:
        if not self.specifiers():
            tok = self.peek()
            found = "the end" if tok is None else repr(tok.text)
            raise CProtoError(f"a parameter needs a type, found {found}")
        name, _ = self.declarator()
        return name

    def parameters(self) -> tuple[str, ...]:
        """After ``(``: the parameters up to and including ``)``."""
        names: list[str] = []
        if self.at(")"):
            self.i += 1
            return ()
        tok = self.peek()
        if tok is not None and tok.text == "void" and self.at(")", 1):
            self.i += 2
            return ()
        while True:
            if self.at("..."):
                raise CProtoError("a kfunc cannot take variable arguments (...)")
            name = self.parameter()
            if name is not None:
                names.append(name)
            if self.at(","):
                self.i += 1
                continue
            self.take(")")
            return tuple(names)


def parse_prototype(text: str) -> Prototype:
    """Parse ``text`` as one function declaration; CProtoError says what else it holds."""
    p = _Parser(text)
    if not p.toks:
        raise CProtoError("it is empty")
    if not p.specifiers():
        raise CProtoError("it has no return type")
    while p.at("*"):
        p.i += 1
        while (tok := p.peek()) is not None and tok.text in _QUALIFIERS:
            p.i += 1
    tok = p.peek()
    if p.at("(") and p.at("*", 1):
        raise CProtoError("it declares a pointer to a function, not a function")
    if p.at("(") and p.i > 0 and p.toks[p.i - 1].kind == "ident":
        last = p.toks[p.i - 1].text
        if last in C_KEYWORDS:
            raise CProtoError(f"{last!r} is a C keyword, not a function name")
        raise CProtoError(f"it has no return type before {last}(...)")
    if tok is None or tok.kind != "ident" or not p.at("(", 1):
        found = "the end" if tok is None else repr(tok.text)
        raise CProtoError(f"expected the function's name and '(', found {found}")
    if tok.text in C_KEYWORDS:
        raise CProtoError(f"{tok.text!r} is a C keyword, not a function name")
    name_tok = tok
    p.i += 2
    open_paren = p.toks[p.i - 1].start
    param_names = p.parameters()
    close_paren = p.toks[p.i - 1].start
    if p.at(";"):
        p.i += 1
    rest = p.peek()
    if rest is not None:
        raise CProtoError(
            f"it must be one declaration, but {text[rest.start :].strip()[:40]!r} follows "
            f"{name_tok.text}(...)"
        )
    params = text[open_paren + 1 : close_paren].strip()
    return Prototype(name_tok.text, text[: name_tok.start].strip(), params or "void", param_names)
