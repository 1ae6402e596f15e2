"""A kfunc project: a directory with a module's sources and BPF programs.

The layout is the tutorial's: the module's C sources with a Kbuild or Makefile
(``obj-m += NAME.o``), and one or more ``*.bpf.c`` programs that call its
kfuncs. An optional ``kfunc.toml`` says how ``kfunc run`` exercises it::

    [run]
    trigger = "unlink"        # or a shell command run in the guest
    expect = "Result: 10"     # a trace line matching this regex means success
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kfunc.errors import KfuncError
from kfunc.kbuild import ModuleSource

__all__ = ["Project"]

# Attach points a built-in trigger reaches, by a word in the section name.
_TRIGGERS = {"unlink": "unlink"}


@dataclass(frozen=True)
class Project:
    path: Path
    module: ModuleSource | None
    bpf_sources: tuple[Path, ...]
    trigger: str | None
    expect: str | None

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def load(cls, path: Path | str) -> Project:
        path = Path(path)
        if not path.is_dir():
            raise KfuncError(
                f"{path}: no such project directory",
                "pass a directory holding a module (Kbuild/Makefile + .c) and *.bpf.c programs, "
                "e.g. examples/hello",
            )
        path = path.resolve()
        config: dict[str, object] = {}
        toml = path / "kfunc.toml"
        if toml.exists():
            try:
                config = tomllib.loads(toml.read_text()).get("run", {})
            except tomllib.TOMLDecodeError as exc:
                raise KfuncError(f"{toml}: {exc}", "fix the TOML syntax") from None
        has_module = (path / "Kbuild").exists() or (path / "Makefile").exists()
        module = ModuleSource.find(path) if has_module else None
        bpf = tuple(sorted(path.glob("*.bpf.c")))
        if not bpf:
            raise KfuncError(
                f"{path}: no BPF program (*.bpf.c)",
                "add a BPF C program that calls the kfunc, e.g. hello.bpf.c",
            )
        trigger = config.get("trigger")
        if trigger is None:
            text = " ".join(p.read_text(errors="replace") for p in bpf)
            sections = re.findall(r'SEC\("([^"]+)"\)', text)
            trigger = next(
                (t for word, t in _TRIGGERS.items() for s in sections if word in s), None
            )
        expect = config.get("expect")
        if expect is not None:
            try:
                re.compile(str(expect))
            except re.error as exc:
                raise KfuncError(f"{toml}: [run] expect: bad regex: {exc}") from None
        return cls(
            path,
            module,
            bpf,
            None if trigger is None else str(trigger),
            None if expect is None else str(expect),
        )
