"""A kfunc project: a directory with a module and the BPF programs that call it.

The module is either hand-written, as in the tutorial (C sources with a
Kbuild or Makefile: ``obj-m += NAME.o``), or declared in ``kfunc.toml``'s
``[module]`` and ``[[kfunc]]`` tables (see :mod:`kfunc.spec`), from which
kfunc generates it into ``build/``. The BPF programs are the ``*.bpf.c``
files. ``kfunc.toml``'s ``[run]`` table says how to exercise them::

    [run]
    trigger = "unlink"        # or a shell command run in the guest
    expect = "Result: 10"     # a trace line matching this regex means success

    [[run.test]]              # BPF_PROG_TEST_RUN of one program
    program = "new_and_release"
    retval = 42
    packet = 64               # an Ethernet frame of this many bytes (xdp, tc),
                              # or "pkt_v4" / "pkt_v6" (the selftests' test vectors)
    # data = "45000..."       # or the exact packet, as hex
    # ctx = "0a000000"        # the context: exact bytes as hex,
    # ctx = { size = 10 }     # or fields of the struct the program takes
    # alone = true            # load this program alone (the default for SEC("?...")):
                              # its object's other programs stay unloaded
    # rejected = "R0 cannot write into rdonly_mem"  # the verifier must refuse it, thus
    # log = "processed 4 insns"  # its verifier log must contain this
    # error = "EINVAL"        # the test run must fail with this errno
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfunc.codegen import generate
from kfunc.errors import KfuncError
from kfunc.kbuild import ModuleSource
from kfunc.spec import ModuleSpec, load_spec
from kfunc.testinput import PACKETS, ctx_from_fields, frame, parse_hex

__all__ = ["GENERATED_DIR", "Project", "TestRun"]

GENERATED_DIR = "build"
# Attach points a built-in trigger reaches, by a word in the section name.
_TRIGGERS = {"unlink": "unlink"}


@dataclass(frozen=True)
class TestRun:
    """One BPF_PROG_TEST_RUN of a program and what it must give.

    Success is ``retval``; or, with ``rejected``, the verifier's refusal with
    that text in its log; or, with ``error``, a test run that fails with that
    errno (``log`` is then text of the successful load's verifier log).
    """

    __test__ = False  # not a pytest test class

    program: str
    retval: int | None = None
    packet: int | str = 0  # bytes of an Ethernet/IPv4 frame, or a name in PACKETS
    data_in: bytes | None = None  # the exact packet
    ctx: bytes | dict[str, Any] | None = field(default=None, hash=False)  # bytes or fields
    alone: bool | None = None  # load only this program of its object; None: if SEC("?...")
    rejected: str | None = None
    log: str | None = None
    error: str | None = None

    def data(self) -> bytes:
        """The packet (``data_in``): the exact bytes, a named packet, or a frame."""
        if self.data_in is not None:
            return self.data_in
        if isinstance(self.packet, str):
            return PACKETS[self.packet]
        return frame(self.packet)

    def ctx_bytes(self, obj: Path) -> bytes | None:
        """The context: given as bytes, or laid out from fields by ``obj``'s BTF."""
        if self.ctx is None or isinstance(self.ctx, bytes):
            return self.ctx
        return ctx_from_fields(obj, self.program, self.ctx)

    @classmethod
    def from_toml(cls, t: Any, where: str) -> TestRun:
        """A ``[[run.test]]`` table; KfuncError naming ``where`` for a bad one."""
        if not isinstance(t, dict) or "program" not in t:
            raise KfuncError(f"{where} needs program", 'e.g. program = "handle", retval = 0')
        unknown = sorted(set(t) - _TEST_KEYS)
        if unknown:
            raise KfuncError(
                f"{where}: unknown key {unknown[0]!r}", f"use {', '.join(sorted(_TEST_KEYS))}"
            )
        if not {"retval", "rejected", "error"} & set(t):
            raise KfuncError(
                f"{where} ({t['program']}) needs retval, rejected or error",
                'e.g. retval = 0, or rejected = "the verifier\'s words"',
            )
        for key, kind in _TEST_TYPES.items():
            if key in t and not isinstance(t[key], kind):
                raise KfuncError(f"{where}: {key} has the wrong type ({t[key]!r})",
                                 _TEST_HINTS[key])  # fmt: skip
        packet = t.get("packet", 0)
        if isinstance(packet, str) and packet not in PACKETS:
            raise KfuncError(
                f"{where}: no packet named {packet!r}",
                f"name one of {', '.join(PACKETS)}, give a size, or exact bytes in data",
            )
        ctx = t.get("ctx")
        if isinstance(ctx, str):
            ctx = parse_hex(ctx, f"{where} ctx")
        data = t.get("data")
        return cls(
            str(t["program"]),
            t.get("retval"),
            packet,
            None if data is None else parse_hex(data, f"{where} data"),
            ctx,
            t.get("alone"),
            t.get("rejected"),
            t.get("log"),
            t.get("error"),
        )


_TEST_TYPES: dict[str, type | tuple[type, ...]] = {
    "program": str, "retval": int, "packet": (int, str), "data": str, "ctx": (str, dict),
    "alone": bool, "rejected": str, "log": str, "error": str,
}  # fmt: skip
_TEST_KEYS = set(_TEST_TYPES)
_TEST_HINTS = {
    "program": 'program = "handle"', "retval": "retval = 0", "packet": 'packet = 64 or "pkt_v4"',
    "data": 'data = "0011..." (hex)', "ctx": 'ctx = "0a00..." (hex) or ctx = { size = 10 }',
    "alone": "alone = true", "rejected": 'rejected = "text of the verifier log"',
    "log": 'log = "processed 4 insns"', "error": 'error = "EINVAL"',
}  # fmt: skip


@dataclass(frozen=True)
class Project:
    path: Path
    spec: ModuleSpec | None
    bpf_sources: tuple[Path, ...]
    trigger: str | None
    expect: str | None
    tests: tuple[TestRun, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def generated_dir(self) -> Path:
        return self.path / GENERATED_DIR

    @property
    def has_module(self) -> bool:
        return self.spec is not None or any(
            (self.path / f).exists() for f in ("Kbuild", "Makefile")
        )

    def module_source(self) -> ModuleSource | None:
        """The module's sources; a spec'd module is generated into ``build/`` first."""
        if self.spec is not None:
            return ModuleSource.find(generate(self.spec, self.generated_dir))
        return ModuleSource.find(self.path) if self.has_module else None

    @property
    def include_dirs(self) -> list[Path]:
        """Where the BPF programs find their headers (the generated kfunc header too,
        ``build/<module>_kfuncs.h``, for a spec'd or a hand-written module)."""
        return [self.path, self.generated_dir] if self.has_module else [self.path]

    @classmethod
    def load(cls, path: Path | str) -> Project:
        path = Path(path)
        if not path.is_dir():
            raise KfuncError(
                f"{path}: no such project directory",
                "pass a directory holding a module (Kbuild/Makefile + .c, or kfunc.toml) and "
                "*.bpf.c programs, e.g. examples/hello",
            )
        path = path.resolve()
        toml = path / "kfunc.toml"
        data: dict[str, Any] = {}
        if toml.exists():
            try:
                data = tomllib.loads(toml.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise KfuncError(f"{toml}: {exc}", "fix the TOML syntax") from None
        spec = load_spec(toml) if "module" in data else None
        bpf = tuple(sorted(path.glob("*.bpf.c")))
        if (
            not bpf
            and spec is None
            and not (path / "Kbuild").exists()
            and not (path / "Makefile").exists()
        ):
            raise KfuncError(
                f"{path}: neither a module nor BPF programs",
                "add a kfunc.toml spec (kfunc new NAME starts one), or module sources with a "
                "Kbuild file, and *.bpf.c programs",
            )
        run = data.get("run", {})
        trigger = run.get("trigger")
        if trigger is None:
            text = " ".join(p.read_text(errors="replace") for p in bpf)
            sections = re.findall(r'SEC\("([^"]+)"\)', text)
            trigger = next(
                (t for word, t in _TRIGGERS.items() for s in sections if word in s), None
            )
        expect = run.get("expect")
        if expect is not None:
            try:
                re.compile(str(expect))
            except re.error as exc:
                raise KfuncError(f"{toml}: [run] expect: bad regex: {exc}") from None
        tests = [
            TestRun.from_toml(t, f"{toml}: [[run.test]] #{i + 1}")
            for i, t in enumerate(run.get("test", []))
        ]
        return cls(
            path,
            spec,
            bpf,
            None if trigger is None else str(trigger),
            None if expect is None else str(expect),
            tuple(tests),
        )
