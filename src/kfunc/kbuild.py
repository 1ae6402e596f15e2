"""Building kernel modules with BTF against a target kernel's kbuild tree.

The module's sources are copied into a private build directory per target
(kbuild writes its objects beside the sources), built with
``make -C <target build tree> M=<dir> modules``, and the result is checked:
the .ko must carry ``.BTF`` and ``.BTF_ids``, and every kfunc the sources list
in a ``BTF_ID_FLAGS(func, ...)`` set must sit in a kfunc set with a resolved,
non-zero BTF id that names a FUNC of that name in the module's BTF.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kfunc.cache import cache_dir
from kfunc.csource import ModuleC, read_module_c
from kfunc.errors import BuildError, MissingToolError
from kfunc.inputs import read_bytes
from kfunc.kernels.target import Kernel
from kfunc.procgroup import stop_group
from kfunc.progress import Progress
from kfunc.spec import MODULE_NAME_MAX, module_name_problem

__all__ = [
    "BuiltKfunc",
    "ModuleBuild",
    "ModuleSource",
    "build_module",
    "kbuild_file",
    "kbuild_modules",
    "kfunc_api_gap",
    "recipes_tabbed",
    "verify_module",
]

_OBJ_M = re.compile(r"^[ \t]*obj-m[ \t]*[+:]?=(.*)$", re.M)
_VAR = re.compile(r"^[ \t]*(\w+)[ \t]*[:?]?=[ \t]*(\S*)[ \t]*$", re.M)
_SKIPPING_BTF = "Skipping BTF generation"
_DIAGNOSTIC = re.compile(
    r"^(?P<file>[^:\s]+):(?P<line>\d+):(?:\d+:)? (?:fatal )?error: (?P<msg>.*)$"
)
# Everything in a module directory that is not source: kbuild's outputs and
# the BPF side, which clang builds.
_NOT_MODULE_SOURCE = re.compile(
    r"(\.bpf\.c|\.o|\.ko|\.mod|\.mod\.c|\.cmd|\.order|\.symvers|vmlinux\.h|\.skel\.h)$"
)
# Directories never part of a module or project: kbuild's and kfunc's outputs, VCS data.
SKIPPED_DIRS = frozenset(("build", "node_modules", "__pycache__"))
# A module's tree is copied for each build: more files than this is not a module.
MAX_MODULE_FILES = 2000
MAX_MODULE_BYTES = 64 << 20
# A kbuild file larger than this is not one.
_MAX_KBUILD_SIZE = 1 << 20


def kbuild_file(path: Path) -> Path | None:
    """The file kbuild reads in ``path`` with M=: ``Kbuild`` if there is one, else ``Makefile``."""
    return next((p for p in (path / "Kbuild", path / "Makefile") if p.is_file()), None)


def kbuild_modules(kbuild: Path) -> list[str]:
    """The modules a kbuild file builds: its ``obj-m`` entries without ``.o``.

    Continuation lines are joined, and ``$(NAME)``/``${NAME}`` of a simple
    assignment in the same file is expanded (``obj-m += $(MODULE).o``).
    """
    try:
        if kbuild.stat().st_size > _MAX_KBUILD_SIZE:
            return []
        text = kbuild.read_text(errors="replace").replace("\\\n", " ")
    except OSError:
        return []
    variables = dict(_VAR.findall(text))

    def expand(m: re.Match[str]) -> str:
        return variables.get(m[1] or m[2], m[0])

    names = []
    for entries in _OBJ_M.findall(text):
        for entry in re.sub(r"\$\((\w+)\)|\$\{(\w+)\}", expand, entries.split("#")[0]).split():
            if entry.endswith(".o"):
                names.append(entry.removesuffix(".o"))
    return names


def _module_files(path: Path) -> list[Path]:
    """The files of the module whose kbuild file is in ``path``, subdirectories included
    (headers in include/, tracepoint headers), less outputs, hidden and BPF files."""
    files: list[Path] = []
    size = 0
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS)
        for name in sorted(names):
            f = Path(root, name)
            if name.startswith(".") or _NOT_MODULE_SOURCE.search(name) or not f.is_file():
                continue
            files.append(f)
            size += f.stat().st_size
            if len(files) > MAX_MODULE_FILES or size > MAX_MODULE_BYTES:
                raise BuildError(
                    f"{path}: more than {MAX_MODULE_FILES} files or {MAX_MODULE_BYTES >> 20} MiB "
                    "under the module's directory: not a module's sources",
                    fix="put the module in a directory of its own and name it with [module] "
                    "path in kfunc.toml (or --module DIR)",
                )
    return files


@dataclass(frozen=True)
class ModuleSource:
    """A directory of hand-written (or generated) module sources."""

    path: Path
    name: str  # the module name: obj-m's first entry, without .o
    files: tuple[Path, ...]
    c: ModuleC  # what its C declares (sets, registrations, macros), read once here

    @property
    def kfuncs(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(name, KF_* flags) of every kfunc its sources put in a set."""
        return self.c.kfuncs

    @classmethod
    def find(cls, path: Path | str) -> ModuleSource:
        """The module whose kbuild file (Kbuild, else Makefile) is in ``path``."""
        path = Path(path).resolve()
        kbuild = kbuild_file(path)
        if kbuild is None:
            raise BuildError(
                f"{path}: no Kbuild or Makefile",
                fix="add a Kbuild file with `obj-m += NAME.o` beside the module's C source",
            )
        names = kbuild_modules(kbuild)
        if not names:
            raise BuildError(
                f"{kbuild}: no `obj-m += NAME.o` line: not a kbuild file",
                fix="point kfunc at the module's directory ([module] path in kfunc.toml, or "
                "--module DIR), or add `obj-m += NAME.o` there",
            )
        name = names[0]
        if problem := module_name_problem(name):
            raise BuildError(
                f"{kbuild}: module name {problem}",
                fix=f"rename {name}.o in obj-m (and its -objs/-y list) to a C identifier of at "
                f"most {MODULE_NAME_MAX} characters",
            )
        files = tuple(_module_files(path))
        return cls(path, name, files, read_module_c(files))

    def digest(self, kernel: Kernel) -> str:
        h = hashlib.sha256(kernel.key.encode())
        for f in self.files:
            h.update(
                str(f.relative_to(self.path)).encode() + b"\0" + read_bytes(f, "source") + b"\0"
            )
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class BuiltKfunc:
    name: str
    btf_id: int
    flags: tuple[str, ...]
    set_name: str


@dataclass(frozen=True)
class ModuleBuild:
    """A module built for one kernel and verified."""

    name: str
    ko: Path
    kernel: str
    kfuncs: tuple[BuiltKfunc, ...]
    cached: bool
    log: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ko"] = str(self.ko)
        del d["log"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], log: str = "") -> ModuleBuild:
        kfuncs = tuple(
            BuiltKfunc(k["name"], k["btf_id"], tuple(k["flags"]), k["set_name"])
            for k in d["kfuncs"]
        )
        return cls(d["name"], Path(d["ko"]), d["kernel"], kfuncs, True, log)


def build_module(
    source: ModuleSource, kernel: Kernel, progress: Progress | None = None
) -> ModuleBuild:
    """Build ``source`` for ``kernel`` (or reuse the build of identical sources)."""
    progress = progress or Progress()
    if kernel.build_root is None and shutil.which("make") is None:
        raise MissingToolError("make", "make")
    if kernel.build_root is None and shutil.which("pahole") is None:
        raise MissingToolError("pahole", "dwarves")
    workdir = cache_dir("builds", kernel.key) / f"{source.name}-{source.digest(kernel)}"
    ko = workdir / f"{source.name}.ko"
    log_file, record = workdir / "build.log", workdir / "build.json"
    if ko.exists() and record.exists():
        # Verified when it was built: the inputs are the same, so is the .ko.
        return ModuleBuild.from_dict(json.loads(record.read_text()), log_file.read_text())
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    for f in source.files:  # the module's tree, as kbuild sees it with M=<dir>
        copy = workdir / f.relative_to(source.path)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, copy)
        if f.name == "Makefile" and (tabbed := recipes_tabbed(f.read_text(errors="replace"))):
            copy.write_text(tabbed)
            progress.note(f"{f}: recipe lines indented with spaces; kbuild reads them as tabs")
    cmd = ["make", "-C", str(kernel.build_dir), f"M={workdir}", "-j2", "modules"]
    # An out-of-tree module's BTF is split over a "distilled" copy of the base
    # (.BTF.base) from 6.11 on (pahole >= 1.28: MODULE_PAHOLE_FLAGS; 7.x:
    # resolve_btfids --distill_base), for modules meant to load into other
    # builds of the kernel. kfunc builds for one exact release and reads the
    # .ko's BTF over the target's vmlinux, as the kernel shows it: no distilled base.
    cmd += ["MODULE_PAHOLE_FLAGS=", "RESOLVE_BTFIDS_FLAGS="]
    where = f" (in the {kernel.rootfs} root filesystem)" if kernel.rootfs else ""
    progress.update(" ".join(cmd[:1] + cmd[3:6]) + where)
    try:
        returncode, output = _run_kbuild(kernel.tool_command(cmd, cwd=workdir), workdir)
    except BaseException:  # Ctrl-C: no half-built module for the next run
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    log = output.replace(str(workdir), str(source.path))
    if returncode != 0 or not ko.exists():
        shutil.rmtree(workdir, ignore_errors=True)
        gap = kfunc_api_gap(source, kernel)
        if gap is not None:  # the error is what the kfunc API's history makes of it
            raise BuildError(f"{_first_error(log, source)}: {gap[0]}", log=log, fix=gap[1])
        raise BuildError(_first_error(log, source), log=log, fix="fix the C source and rebuild")
    if _SKIPPING_BTF in log:
        shutil.rmtree(workdir, ignore_errors=True)
        raise BuildError(
            f"{source.name}.ko: kbuild skipped BTF generation (no vmlinux in {kernel.build_dir})",
            log=log,
            fix="remove the kernel from the cache and let kfunc prepare it again",
        )
    log_file.write_text(log)
    build = verify_module(source, kernel, ko, log, cached=False)
    record.write_text(json.dumps(build.to_dict(), indent=2) + "\n")
    return build


_RULE = re.compile(r"^[^\s#][^=#]*?(?<![:+?!])::?(?!=)")


def recipes_tabbed(makefile: str) -> str | None:
    """``makefile`` with the recipe lines of its rules indented by a tab where they
    are indented by spaces (as a Makefile copied from a web page is: make then
    stops at "missing separator"); None if there are none."""
    out, in_rule, changed = [], False, False
    for line in makefile.split("\n"):
        if _RULE.match(line):
            in_rule = True
        elif in_rule and line.startswith(" ") and line.strip():
            line = "\t" + line.lstrip(" ")
            changed = True
        elif line and not line.startswith(("\t", " ")):
            in_rule = False
        out.append(line)
    return "\n".join(out) if changed else None


def _run_kbuild(cmd: list[str], workdir: Path) -> tuple[int, str]:
    """Run make in a process group of its own, from the module's copy in ``workdir``,
    with its temporary files in ``workdir/.tmp``.

    make runs there with ``PWD`` set to it, as when its author runs make in the
    module's directory: kbuild files that say ``-I$(PWD)/include`` (make takes
    PWD from the environment) find their headers. On any exit path (Ctrl-C
    included) the whole group, make and its compilers, is stopped, and the
    temporary directory removed: gcc killed mid-way leaves its ``cc*.s``.
    """
    tmp = workdir / ".tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        cwd=workdir,
        env=dict(os.environ, TMPDIR=str(tmp), PWD=str(workdir)),
    )
    try:
        output, _ = proc.communicate()
        return proc.returncode, output
    finally:
        # SIGINT first: gcc removes its temporaries on it.
        stop_group(proc, signal.SIGINT, 5.0)
        shutil.rmtree(tmp, ignore_errors=True)


def _first_error(log: str, source: ModuleSource) -> str:
    for line in log.splitlines():
        m = _DIAGNOSTIC.match(line.strip())
        if m:
            return f"{m['file']}:{m['line']}: error: {m['msg']}"
    tail = [ln for ln in log.splitlines() if ln.strip()][-1:] or ["no output"]
    return f"module {source.name}: build failed: {tail[0].strip()}"


def kfunc_api_gap(source: ModuleSource, kernel: Kernel) -> tuple[str, str] | None:
    """(what, fix) when ``source`` uses kfunc API macros that the target's headers
    lack and the module does not define itself (see
    :data:`kfunc.kernel_api.macros.KFUNC_API`); None if it uses none such."""
    from kfunc.codegen.shims import api_missing
    from kfunc.kernels.facts import header_macros

    c = source.c
    missing = api_missing(c.words, header_macros(kernel) | c.defines)
    if not missing:
        return None
    names = ", ".join(f"{n} ({a.since.series})" for a in missing for n in a.names if n in c.words)
    newest = max(a.since for a in missing)
    return (
        f"module {source.name} uses the kfunc API of Linux {newest.series}: {names}; "
        f"Linux {kernel.version}'s headers define none of these",
        f"write the shims with `kfunc compat -o {source.path / 'compat.h'}` and add "
        '#include "compat.h" after the kernel headers',
    )


def verify_module(
    source: ModuleSource, kernel: Kernel, ko: Path, log: str = "", cached: bool = False
) -> ModuleBuild:
    """Check that ``ko`` has BTF and that its kfunc sets hold the declared kfuncs."""
    from kfunc.btf import types as bt
    from kfunc.elf import ElfObject

    elf = ElfObject(ko)
    if not elf.has_section(".BTF"):
        raise BuildError(f"{ko.name}: no .BTF section", log=log, fix="install pahole (dwarves)")
    btf = elf.btf(base=ElfObject(kernel.vmlinux).btf())
    sets = [s for s in elf.btf_id_sets() if s.set8] if elf.has_section(".BTF_ids") else []
    if not sets:
        raise BuildError(
            f"{ko.name}: no kfunc set in .BTF_ids",
            log=log,
            fix="declare the kfuncs between BTF_KFUNCS_START(set) and BTF_KFUNCS_END(set)",
        )
    built: list[BuiltKfunc] = []
    for kset in sets:
        for entry in kset.entries:
            if entry.btf_id == 0:
                raise BuildError(
                    f"{ko.name}: kfunc set {kset.name} holds an unresolved BTF id 0",
                    log=log,
                    fix="resolve_btfids did not run: check that the kernel's build tree has it",
                )
            t = btf[entry.btf_id]
            if not isinstance(t, bt.Func):
                raise BuildError(
                    f"{ko.name}: set {kset.name} id {entry.btf_id} is not a FUNC", log=log
                )
            built.append(BuiltKfunc(t.name, entry.btf_id, tuple(entry.flag_names), kset.name))
    have = {k.name for k in built}
    missing = [name for name, _ in source.kfuncs if name not in have]
    if missing:
        raise BuildError(
            f"{ko.name}: kfunc set lacks {', '.join(missing)}",
            log=log,
            fix="mark each kfunc __bpf_kfunc so that it keeps a BTF FUNC",
        )
    return ModuleBuild(source.name, ko, kernel.release, tuple(built), cached, log)
