"""kfunc.toml: the one schema of a project's file, and its one reader.

Every table and key a kfunc.toml may hold is a field below; each key's type
is checked (a string where a list belongs is refused, ``optional = "false"``
is not true), and an unknown key is an error that names its path and the
nearest known key: ``kfunc[2].flagz: unknown key (did you mean flags?)``.
Paths count array entries from 0, as TOML tools and JSON paths do.

This layer knows TOML types only. The kernel's rules (what a name may be,
KF_* flags, program types, prototypes) are :mod:`kfunc.spec`'s; how a project
is laid out (module path, BPF sources) is :mod:`kfunc.project`'s.

To add a key, add a field to its table's class here (a type, and a default
unless it is required); the reader then accepts it, checks its type and
suggests it for typos. Then give it a meaning where the table is used:
``[module]`` and ``[[kfunc]]`` in :func:`kfunc.spec.spec_from_toml`, ``[bpf]``
and ``[run]`` in :meth:`kfunc.project.Project.load`, ``[test]`` in
:func:`kfunc.testrun.project_kernels`, and document it in docs/projects.md.

The typed layer is msgspec (strict conversion of tomllib's output, unknown
fields forbidden); its messages are reworded here so that every error is one
line naming the file and the key's path.
"""

from __future__ import annotations

import difflib
import re
import stat
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import msgspec

from kfunc.errors import SpecError

__all__ = [
    "BpfTable",
    "KfuncTable",
    "KfuncToml",
    "ModuleTable",
    "RunTable",
    "RunTestTable",
    "SpecError",
    "TestTable",
    "read_kfunc_toml",
]

FILE_NAME = "kfunc.toml"


class _Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class ModuleTable(_Table, frozen=True):
    """``[module]``: a module to generate (name, ...) or a hand-written one's ``path``."""

    name: str | None = None
    description: str = ""
    prog_types: list[str] = []
    includes: list[str] = []
    helpers: str = ""
    license: str = "GPL"
    path: str | None = None  # a hand-written module's directory, relative to the project


class KfuncTable(_Table, frozen=True):
    """``[[kfunc]]``: one kfunc of a generated module."""

    name: str
    proto: str
    body: str
    flags: list[str] = []
    prog_types: list[str] | None = None  # None: the module's
    optional: bool = False
    dtor_for: str | None = None


class BpfTable(_Table, frozen=True):
    """``[bpf]``: where the BPF programs are, and extra include directories for clang."""

    sources: list[str] | None = None  # globs relative to the project; None: every *.bpf.c
    include: list[str] = []


# A test run's frame fits in a page: the kernel's bpf_test_init() (net/bpf/test_run.c)
# refuses skb data larger than PAGE_SIZE less its head- and tailroom.
_Packet = Annotated[int, msgspec.Meta(ge=0, le=4096)]


class RunTestTable(_Table, frozen=True):
    """``[[run.test]]``: one BPF_PROG_TEST_RUN of a program and what it must give
    (see :class:`kfunc.project.TestRun`)."""

    program: str
    object: str | None = None  # the object (source file name, no suffix) that holds it
    retval: int | None = None
    packet: _Packet | str = 0  # bytes of an Ethernet frame, or a named one ("pkt_v4")
    data: str | None = None  # the exact packet, hex
    ctx: str | dict[str, Any] | None = None  # the context: hex bytes, or the struct's fields
    alone: bool | None = None  # load the program alone; default: if its section is "?..."
    rejected: str | None = None  # the verifier must refuse it, its log containing this
    log: str | None = None  # its verifier log must contain this
    error: str | None = None  # the test run must fail with this errno name


class RunTable(_Table, frozen=True):
    """``[run]``: how ``kfunc run`` exercises the programs and what success looks like."""

    trigger: str | None = None
    expect: str | None = None
    test: list[RunTestTable] = []


class TestTable(_Table, frozen=True):
    """``[test]``: ``kfunc test``'s kernel matrix."""

    kernels: list[str] | None = None


class KfuncToml(_Table, frozen=True):
    """A whole kfunc.toml."""

    module: ModuleTable | None = None
    kfunc: list[KfuncTable] = []
    bpf: BpfTable | None = None
    run: RunTable | None = None
    test: TestTable | None = None


def read_kfunc_toml(path: Path) -> KfuncToml:
    """Read and check ``path`` (a kfunc.toml); SpecError names what is wrong and where."""
    data = _load(path)
    if not data:
        raise SpecError(
            f"{path}: the file is empty",
            "declare a module ([module] name + [[kfunc]]), point at one ([module] path = DIR), "
            "or say how to run the programs ([run]); or delete the file",
        )
    _check_keys(data, KfuncToml, "", path)
    try:
        return msgspec.convert(data, KfuncToml, strict=True)
    except msgspec.ValidationError as exc:
        raise _type_error(str(exc), path) from None


def _load(path: Path) -> dict[str, Any]:
    """The TOML of ``path``, read through :mod:`kfunc.inputs` (a 1 MiB cap)."""
    from kfunc.inputs import InputError, TooBigError, check_file, read_bytes

    if path.is_dir():
        raise SpecError(
            f"{path}: is a directory", f"{FILE_NAME} must be a file: remove or rename the directory"
        )
    try:
        if not stat.S_ISREG(check_file(path, "toml").st_mode):  # a FIFO would block
            raise SpecError(f"{path}: not a regular file", f"make {FILE_NAME} a file")
        raw = read_bytes(path, "toml")
    except TooBigError as exc:
        raise SpecError(
            f"{path}: larger than {exc.cap >> 20} MiB",
            f"is this a {FILE_NAME}? it holds a few tables",
        ) from None
    except InputError as exc:
        raise SpecError(exc.message, exc.fix) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"{path}: line {line}: not UTF-8 (byte {raw[exc.start]:#04x})",
            "TOML files are UTF-8: save it as UTF-8",
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}", "fix the TOML syntax") from None


def _tables_in(tp: Any) -> tuple[bool, type[_Table] | None]:
    """For a field's type: (is it a list, the table class inside, if any)."""
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(tp) if a is not type(None)] if union else [tp]
    for arg in args:
        if typing.get_origin(arg) is list:
            (item,) = typing.get_args(arg)
            if isinstance(item, type) and issubclass(item, _Table):
                return True, item
        elif isinstance(arg, type) and issubclass(arg, _Table):
            return False, arg
    return False, None


def _check_keys(data: dict[str, Any], table: type[_Table], where: str, path: Path) -> None:
    """Refuse keys ``table`` does not have, naming the nearest one; recurse into sub-tables."""
    fields = {f.name: f.type for f in msgspec.structs.fields(table)}
    for key, value in data.items():
        key_path = f"{where}.{key}" if where else key
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else ""
            what = "table" if isinstance(value, dict) and not where else "key"
            known = ", ".join(fields)
            fix = (
                f"rename it to {near[0]}"
                if near
                else f"remove it; {where or 'the file'} takes: {known}"
            )
            raise SpecError(f"{path}: {key_path}: unknown {what}{hint}", fix)
        is_list, sub = _tables_in(fields[key])
        if sub is None:
            continue
        if is_list and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    _check_keys(item, sub, f"{key_path}[{i}]", path)
        elif not is_list and isinstance(value, dict):
            _check_keys(value, sub, key_path, path)


_MSGSPEC_ERROR = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_TYPE_NAMES = {
    "str": "a string",
    "int": "an integer",
    "bool": "true or false",
    "array": "a list",
    "object": "a table",
    "float": "a number with a fraction",
    "datetime": "a date-time",
    "date": "a date",
    "time": "a time",
}
# What a list key holds, for the fix of a key written as something else.
_LIST_EXAMPLES = {
    "flags": '["KF_ACQUIRE", "KF_RET_NULL"]',
    "prog_types": '["tracing", "syscall"]',
    "includes": '["linux/slab.h"]',
    "kernels": '["6.1", "6.12"]',
    "sources": '["*.bpf.c"]',
    "include": '["include"]',
}
_EXAMPLES = {
    "true or false": "true or false, without quotes",
    "an integer": "a whole number without quotes, e.g. 0",
    "a string": 'a string in quotes, e.g. "name"',
    "a table": "a [table] (or [[table]] entries for a list of tables)",
}


# Lists of tables, written as [[...]] entries.
_TABLE_LISTS = {"kfunc": "[[kfunc]] tables, one per kfunc", "test": "[[run.test]] tables"}


def _example(want: str, key_path: str) -> str:
    if want == "a list":
        key = key_path.rsplit(".", 1)[-1]
        if key in _TABLE_LISTS:
            return _TABLE_LISTS[key]
        return f"a list in brackets, e.g. {key} = {_LIST_EXAMPLES.get(key, '[...]')}"
    return _EXAMPLES.get(want, want)


def _type_error(message: str, path: Path) -> SpecError:
    """msgspec's ``Expected `str`, got `int` - at `$.kfunc[0].name``` as one line of ours."""
    m = _MSGSPEC_ERROR.match(message)
    assert m is not None
    key_path = (m["path"] or "").lstrip(".") or "(top level)"
    what = m["what"]
    if missing := re.fullmatch(r"Object missing required field `(\w+)`", what):
        return SpecError(f"{path}: {key_path}: no {missing[1]} key", f"add {missing[1]} = ...")
    if got := re.fullmatch(r"Expected `([\w |]+)`, got `(\w+)`", what):
        # "array | null": TOML has no null, a key is absent instead
        wanted = [w for w in got[1].split(" | ") if w != "null"]
        want = " or ".join(_TYPE_NAMES.get(w, w) for w in wanted)
        return SpecError(
            f"{path}: {key_path}: must be {want}, not {_TYPE_NAMES.get(got[2], got[2])}",
            f"write it as {_example(want, key_path)}",
        )
    if bound := re.fullmatch(r"Expected `int` ([<>]=) (-?\d+)", what):
        words = {">=": "at least", "<=": "at most"}[bound[1]]
        return SpecError(f"{path}: {key_path}: must be {words} {bound[2]}", "change the value")
    return SpecError(f"{path}: {key_path}: {what}", "fix the value")
