"""The guest side: carry out steps inside the booted target kernel.

Run as ``python -m kfunc.vm.agent PLAN.json`` (one plan) or ``python -m
kfunc.vm.agent --serve DIR [IDLE]`` (requests until stopped) in the guest;
see :mod:`kfunc.vm.agent.serve`. What a step may be, its arguments and its
reply are declared in :mod:`kfunc.vm.protocol`. A step that fails stops the
plan (or the steps of its group), except for the cleanup steps (``always``),
which run on every path so that links, BPF objects and modules go away
before the guest powers off.

The handlers are grouped by what they touch: :mod:`~kfunc.vm.agent.modules`,
:mod:`~kfunc.vm.agent.bpf` (objects and programs),
:mod:`~kfunc.vm.agent.maps`, :mod:`~kfunc.vm.agent.tracing`. They use only
the library's kernel-facing parts (libbpf, BTF, tracefs): the same code a
user scripts with on a real machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

from kfunc.vm.agent.runner import run_plan, run_steps
from kfunc.vm.agent.serve import run_plan_file, serve_directory
from kfunc.vm.agent.state import KernelLog, State
from kfunc.vm.protocol import EVENT_PREFIX

__all__ = ["EVENT_PREFIX", "KernelLog", "State", "main", "run_plan", "run_steps"]


def main(argv: list[str] | None = None) -> int:
    """``PLAN.json``, ``--serve DIR [IDLE]`` or ``--port``; the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--port":  # a snapshot-able guest's /init (kfunc.vm.port)
        from kfunc.vm.port import serve_port

        return serve_port()
    if args and args[0] == "--serve":
        return serve_directory(Path(args[1]), float(args[2]) if len(args) > 2 else 600.0)
    return run_plan_file(Path(args[0]))
