"""Load a BPF object and, when the kernel refuses it, explain why.

The glue between the loader (:mod:`kfunc.libbpf`), the object's own line
info (:func:`kfunc.check.read_line_info`) and the verifier rules
(:mod:`kfunc.verifier`). Used by the guest agent for ``kfunc run`` and by
``kfunc explain --obj``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfunc.errors import ELFError, LibbpfError
from kfunc.verifier import Explanation, LineInfo, explain_log

__all__ = ["LoadOutcome", "explain_failure", "explain_with_object", "try_load"]


@dataclass(frozen=True)
class LoadOutcome:
    """What happened when an object was loaded: ``loaded``, else libbpf's
    ``message``, the ``errno``, the verifier ``log`` and its ``explanation``."""

    path: str
    loaded: bool
    message: str = ""
    errno: int = 0
    log: str = ""
    explanation: Explanation | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "loaded": self.loaded,
            "message": self.message,
            "errno": self.errno,
            "log": self.log,
            "explanation": self.explanation.to_dict() if self.explanation else None,
        }


def explain_with_object(
    log: str, obj: str | os.PathLike[str] | None, program: str | None = None
) -> Explanation | None:
    """:func:`explain_log`, with the source lines of ``obj``'s line info where the log
    lacks them (the program is the one the log names, or ``program``, or the
    object's only one)."""
    line_info: list[LineInfo] = []
    first = explain_log(log, program=program)
    if obj is not None:
        from kfunc.check import read_line_info

        try:
            infos = read_line_info(Path(obj))
        except ELFError:
            infos = {}
        name = program or (first.program if first else None)
        if name is None and len(infos) == 1:
            name = next(iter(infos))
        line_info = infos.get(name or "", [])
        if line_info:
            return explain_log(log, line_info, program=name)
    return first


def explain_failure(
    exc: LibbpfError, obj: str | os.PathLike[str] | None, program: str | None = None
) -> Explanation | None:
    """The explanation of a failed :meth:`BpfObject.load`: its log and its message."""
    return explain_with_object(f"{exc.log}\n{exc.message}", obj, program)


def try_load(
    path: str | os.PathLike[str], program: str | None = None, log_level: int = 0
) -> LoadOutcome:
    """Load ``path`` with libbpf, close it again, and say how it went. With
    ``program``, only that program of the object is loaded (others' autoload off,
    as the kernel's selftests load their failure programs one at a time)."""
    from kfunc.libbpf import BpfObject

    try:
        with BpfObject(path, log_level=log_level) as obj:
            if program is not None:
                if program not in obj.programs:
                    raise LibbpfError(
                        f"object '{obj.name}': no program '{program}'",
                        fix=f"name one of: {', '.join(sorted(obj.programs))}",
                    )
                for name, prog in obj.programs.items():
                    prog.autoload = name == program
            obj.load()
    except LibbpfError as exc:
        return LoadOutcome(str(path), False, exc.message, exc.errno, exc.log,
                           explain_failure(exc, path, program))  # fmt: skip
    return LoadOutcome(str(path), True)
