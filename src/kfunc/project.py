"""A kfunc project: a directory with a module and the BPF programs that call it.

The module is either hand-written, as in the tutorial (C sources with a
Kbuild or Makefile: ``obj-m += NAME.o``), or declared in ``kfunc.toml``'s
``[module]`` and ``[[kfunc]]`` tables (see :mod:`kfunc.spec`), from which
kfunc generates it into ``build/``.

Where things are, as real repositories lay them out:

- the hand-written module is in the directory given by ``--module DIR``, else
  by kfunc.toml's ``[module] path``, else in the one directory of the project
  tree whose kbuild file (``Kbuild``, else ``Makefile``) has an ``obj-m``
  line. A Makefile without ``obj-m`` (libbpf-bootstrap's userspace one) is
  not kbuild's and is ignored.
- the BPF programs are kfunc.toml's ``[bpf] sources`` (globs), else every
  ``*.bpf.c`` in the tree; ``[bpf] include`` adds include directories.

The tree walks skip hidden directories and ``build/``, ``node_modules/``,
``__pycache__/``. kfunc.toml's ``[run]`` table says how to exercise the
programs::

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
    # object = "kfunc_call_test_subprog"  # the object that holds it, where several do
    # alone = true            # load this program alone (the default for SEC("?...")):
                              # its object's other programs stay unloaded
    # rejected = "R0 cannot write into rdonly_mem"  # the verifier must refuse it, thus
    # log = "processed 4 insns"  # its verifier log must contain this
    # error = "EINVAL"        # the test run must fail with this errno
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfunc.codegen import generate
from kfunc.errors import KfuncError, SpecError
from kfunc.kbuild import SKIPPED_DIRS, ModuleSource, kbuild_file, kbuild_modules
from kfunc.schema import FILE_NAME, KfuncToml, RunTestTable, read_kfunc_toml
from kfunc.spec import ModuleSpec, spec_from_toml
from kfunc.testinput import PACKETS, ctx_from_fields, frame, parse_hex

__all__ = ["GENERATED_DIR", "Project", "TestRun", "find_modules"]

GENERATED_DIR = "build"
# Attach points a built-in trigger reaches, by a word in the section name.
_TRIGGERS = {"unlink": "unlink"}
# A project tree is walked to find its module and programs: past this many
# directories it is not a project (a home directory, a kernel tree).
MAX_WALK_DIRS = 5000
_LOOKED_IN = "hidden directories and build/ skipped"
_IDENT = re.compile(r"[A-Za-z_]\w*")


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
    object: str | None = None  # which object holds the program, where several have one

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
    def from_toml(cls, t: RunTestTable, where: str) -> TestRun:
        """A ``[[run.test]]`` table (its keys' types checked by :mod:`kfunc.schema`);
        SpecError naming ``where`` for what the types cannot say."""
        if t.retval is None and t.rejected is None and t.error is None:
            raise SpecError(
                f"{where}: program {t.program}: no retval, rejected or error: nothing to check",
                'say what it must give: retval = 0, rejected = "words of the verifier log", '
                'or error = "EINVAL"',
            )
        if isinstance(t.packet, str) and t.packet not in PACKETS:
            raise SpecError(
                f"{where}.packet: no packet named {t.packet!r}",
                f"name one of {', '.join(PACKETS)}, give a size, or the exact bytes in data",
            )
        if t.error is not None and not hasattr(errno, t.error):
            raise SpecError(f"{where}.error: {t.error}: not an errno name", 'e.g. "EINVAL"')
        ctx: bytes | dict[str, Any] | None = (
            parse_hex(t.ctx, f"{where}.ctx") if isinstance(t.ctx, str) else t.ctx
        )
        data = None if t.data is None else parse_hex(t.data, f"{where}.data")
        return cls(t.program, t.retval, t.packet, data, ctx, t.alone, t.rejected, t.log, t.error,
                   t.object)  # fmt: skip


@dataclass(frozen=True)
class Project:
    path: Path
    spec: ModuleSpec | None
    bpf_sources: tuple[Path, ...]
    trigger: str | None
    expect: str | None
    tests: tuple[TestRun, ...] = ()
    module_dir: Path | None = None  # a hand-written module's directory
    bpf_include: tuple[Path, ...] = ()  # [bpf] include

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def generated_dir(self) -> Path:
        return self.path / GENERATED_DIR

    @property
    def has_module(self) -> bool:
        return self.spec is not None or self.module_dir is not None

    def module_source(self) -> ModuleSource | None:
        """The module's sources; a spec'd module is generated into ``build/`` first."""
        if self.spec is not None:
            return ModuleSource.find(generate(self.spec, self.generated_dir))
        return ModuleSource.find(self.module_dir) if self.module_dir is not None else None

    @property
    def include_dirs(self) -> list[Path]:
        """Where the BPF programs find their headers (the generated kfunc header too,
        ``build/<module>_kfuncs.h``, for a spec'd or a hand-written module)."""
        dirs = [self.path, *self.bpf_include]
        return [*dirs, self.generated_dir] if self.has_module else dirs

    @classmethod
    def load(cls, path: Path | str, module: Path | str | None = None) -> Project:
        """The project in ``path``; ``module`` (``--module DIR``) is its module's directory."""
        path = Path(path)
        if not path.is_dir():
            raise KfuncError(
                f"{path}: no such project directory",
                "pass a directory holding a module (Kbuild/Makefile + .c, or kfunc.toml) and "
                "*.bpf.c programs, e.g. examples/hello",
            )
        path = path.resolve()
        toml = path / FILE_NAME
        doc = read_kfunc_toml(toml) if toml.exists() or toml.is_symlink() else KfuncToml()
        spec = spec_from_toml(doc, toml)
        module_dir = _module_dir(path, toml, doc, spec, module)
        bpf = _bpf_sources(path, toml, doc)
        if not bpf and spec is None and module_dir is None:
            raise KfuncError(f"{path}: {_nothing_found(path)}", _NOTHING_FIX)
        include = []
        for i, inc in enumerate(doc.bpf.include if doc.bpf else []):
            d = path / inc
            if not d.is_dir():
                raise SpecError(f"{toml}: bpf.include[{i}]: {inc}: no such directory under {path}",
                                "list directories relative to the project")  # fmt: skip
            include.append(d.resolve())
        run = doc.run
        trigger = run.trigger if run else None
        if trigger is None:
            text = " ".join(_head(p) for p in bpf)
            sections = re.findall(r'SEC\("([^"]+)"\)', text)
            trigger = next(
                (t for word, t in _TRIGGERS.items() for s in sections if word in s), None
            )
        expect = run.expect if run else None
        if expect is not None:
            try:
                re.compile(expect)
            except re.error as exc:
                raise SpecError(
                    f"{toml}: run.expect: bad regex: {exc}",
                    "write a Python regular expression, e.g. 'Result: \\d+'",
                ) from None
        tests = tuple(
            TestRun.from_toml(t, f"{toml}: run.test[{i}]")
            for i, t in enumerate(run.test if run else [])
        )
        for i, t in enumerate(tests):
            if not _IDENT.fullmatch(t.program):
                raise SpecError(
                    f"{toml}: run.test[{i}].program: {t.program!r} is not a C identifier",
                    "name the BPF program by its C function name",
                )
        return cls(path, spec, bpf, trigger, expect, tests, module_dir, tuple(include))


def _head(source: Path, limit: int = 4 << 20) -> str:
    """The first ``limit`` bytes of a BPF source, as text (for its SEC() names)."""
    with source.open("rb") as f:
        return f.read(limit).decode(errors="replace")


_NOTHING_FIX = (
    "add a module (C sources with a Kbuild file: obj-m += NAME.o) or a kfunc.toml spec "
    "(kfunc new NAME starts one), and *.bpf.c programs; or name them: --module DIR, "
    "kfunc.toml's [module] path and [bpf] sources"
)


def _nothing_found(path: Path) -> str:
    """What was looked for under ``path``, for a project where nothing was found."""
    ignored = [
        f.name
        for f in (path / "Makefile", path / "Kbuild")
        if f.is_file() and not kbuild_modules(f)
    ]
    note = f"; {', '.join(ignored)} has no obj-m line: not kbuild's, ignored" if ignored else ""
    return (
        f"neither a module nor BPF programs: looked for kfunc.toml's [module], a Kbuild or "
        f"Makefile with obj-m, and *.bpf.c files in this tree ({_LOOKED_IN}){note}"
    )


def _walk(path: Path) -> Iterator[tuple[Path, list[str]]]:
    """The project's directories (and their file names), less hidden and output ones."""
    for seen, (root, dirs, files) in enumerate(os.walk(path), 1):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        if seen > MAX_WALK_DIRS:
            raise KfuncError(
                f"{path}: more than {MAX_WALK_DIRS} directories: not a project directory",
                "run kfunc on the project's own directory, or name the module and programs "
                "in kfunc.toml ([module] path, [bpf] sources)",
            )
        yield Path(root), sorted(files)


def find_modules(path: Path) -> list[Path]:
    """The directories under ``path`` whose kbuild file builds a module (has obj-m)."""
    found = []
    for root, files in _walk(path):
        has_kbuild = "Kbuild" in files or "Makefile" in files
        if has_kbuild and (kbuild := kbuild_file(root)) and kbuild_modules(kbuild):
            found.append(root)
    return found


def _module_dir(
    path: Path, toml: Path, doc: KfuncToml, spec: ModuleSpec | None, module: Path | str | None
) -> Path | None:
    """The hand-written module's directory: --module, else [module] path, else the one found."""
    if module is not None:
        given = Path(module)
        if not given.is_dir():
            raise KfuncError(
                f"--module {module}: no such directory",
                "pass the directory that holds the module's Kbuild or Makefile",
            )
        if spec is not None:
            raise KfuncError(
                f"--module {module}: {toml} declares a module for kfunc to generate",
                "drop --module, or remove [module] and [[kfunc]] from kfunc.toml",
            )
        return _checked_module_dir(given.resolve(), f"--module {module}")
    if doc.module is not None and doc.module.path is not None:
        given = path / doc.module.path
        if not given.is_dir():
            raise SpecError(
                f"{toml}: module.path: {doc.module.path}: no such directory under {path}",
                "give the module's directory relative to the project",
            )
        return _checked_module_dir(given.resolve(), f"{toml}: module.path")
    if spec is not None:
        return None
    found = find_modules(path)
    if len(found) > 1:
        names = ", ".join(str(d.relative_to(path)) or "." for d in found)
        raise KfuncError(
            f"{path}: {len(found)} kbuild files with obj-m ({names}): which is the module?",
            f'say it in kfunc.toml: [module] path = "{found[0].relative_to(path)}" '
            "(or pass --module DIR)",
        )
    return found[0] if found else None


def _checked_module_dir(directory: Path, where: str) -> Path:
    kbuild = kbuild_file(directory)
    if kbuild is None or not kbuild_modules(kbuild):
        what = f"{kbuild.name} has no obj-m line" if kbuild else "no Kbuild or Makefile"
        raise KfuncError(
            f"{where}: {directory}: {what}",
            "name the directory whose Kbuild (or Makefile) says obj-m += NAME.o",
        )
    return directory


def _bpf_sources(path: Path, toml: Path, doc: KfuncToml) -> tuple[Path, ...]:
    """[bpf] sources (globs relative to the project), else every *.bpf.c in the tree."""
    if doc.bpf is None or doc.bpf.sources is None:
        return tuple(root / f for root, files in _walk(path) for f in files
                     if f.endswith(".bpf.c") and (root / f).is_file())  # fmt: skip
    sources: list[Path] = []
    for i, pattern in enumerate(doc.bpf.sources):
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise SpecError(f"{toml}: bpf.sources[{i}]: {pattern}: not inside the project",
                            "give globs relative to the project, e.g. src/*.bpf.c")  # fmt: skip
        try:
            matched = sorted(p for p in path.glob(pattern) if p.is_file())
        except ValueError as exc:  # an empty or malformed pattern
            raise SpecError(
                f"{toml}: bpf.sources[{i}]: {pattern!r}: {exc}",
                "give globs relative to the project, e.g. src/*.bpf.c",
            ) from None
        if not matched:
            raise SpecError(f"{toml}: bpf.sources[{i}]: {pattern}: matches no file under {path}",
                            "fix the glob, or remove it")  # fmt: skip
        sources += [p.resolve() for p in matched if p.resolve() not in sources]
    return tuple(sources)
