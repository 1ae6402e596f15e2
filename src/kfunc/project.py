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
    packet = 64               # an Ethernet frame of this many bytes (xdp, tc)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfunc.codegen import generate
from kfunc.errors import KfuncError
from kfunc.inputs import read_text
from kfunc.kbuild import ModuleSource
from kfunc.spec import ModuleSpec, load_spec

__all__ = ["GENERATED_DIR", "Project", "TestRun"]

GENERATED_DIR = "build"
# Attach points a built-in trigger reaches, by a word in the section name.
_TRIGGERS = {"unlink": "unlink"}


@dataclass(frozen=True)
class TestRun:
    """One BPF_PROG_TEST_RUN of a program and the return value it must give."""

    program: str
    retval: int
    packet: int = 0  # bytes of an Ethernet/IPv4 frame to pass as data_in

    def data(self) -> bytes:
        """An Ethernet frame: zero MACs, IPv4 ethertype, zero payload."""
        if not self.packet:
            return b""
        return (bytes(12) + b"\x08\x00" + bytes(self.packet))[: max(self.packet, 14)]


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
        """Where the BPF programs find their headers (the generated kfunc header too)."""
        return [self.path, self.generated_dir] if self.spec else [self.path]

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
                data = tomllib.loads(read_text(toml, "toml"))
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
            text = " ".join(read_text(p, "source", errors="replace") for p in bpf)
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
        tests = []
        for i, t in enumerate(run.get("test", [])):
            if not isinstance(t, dict) or "program" not in t or "retval" not in t:
                raise KfuncError(
                    f"{toml}: [[run.test]] #{i + 1} needs program and retval",
                    'e.g. program = "handle", retval = 0',
                )
            tests.append(TestRun(str(t["program"]), int(t["retval"]), int(t.get("packet", 0))))
        return cls(
            path,
            spec,
            bpf,
            None if trigger is None else str(trigger),
            None if expect is None else str(expect),
            tuple(tests),
        )
