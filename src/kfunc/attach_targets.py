"""Whether a BPF program's attach target exists in the target kernel, before a boot.

A program's section names what it attaches to (``kprobe/do_unlinkat``,
``fentry/X``, ``tp_btf/sched_switch``, ``tracepoint/syscalls/sys_enter_unlinkat``).
On a kernel without that function or tracepoint, the load (fentry, tp_btf) or
the attach (kprobe, tracepoint) fails in the guest. The target's BTF says what
it has: a FUNC for each function (Debian's System.map is a placeholder that
points to the -dbg package, so BTF is what there is), a ``btf_trace_<name>``
typedef for each tracepoint, and the ``__x64_sys_<name>`` entry of each system
call (the ``syscalls`` events). Functions of the project's own module count too.

Where upstream renamed a function (:mod:`kfunc.kernel_api.renames`), the refusal
names the new one.
"""

from __future__ import annotations

from collections.abc import Set

from kfunc.check.bpf_object import BpfObjectInfo
from kfunc.check.finding import Finding
from kfunc.kernel_api.renames import RENAMED, renamed_from
from kfunc.kernel_api.version import KernelVersion

__all__ = ["attach_target", "missing_attach_targets"]

# section prefix -> what follows it names: a function or a tracepoint
_FUNCTION = ("kprobe/", "kretprobe/", "fentry/", "fexit/", "fmod_ret/", "fentry.s/",
             "fexit.s/", "fmod_ret.s/")  # fmt: skip
_TRACEPOINT = ("tp_btf/", "raw_tp/", "raw_tracepoint/", "raw_tp.w/", "raw_tracepoint.w/")
_EVENT = ("tracepoint/", "tp/")


def attach_target(section: str) -> tuple[str, str] | None:
    """(kind, name) of what a section attaches to: kind is ``function``,
    ``tracepoint`` or ``event`` (``category/name``); None for other sections,
    for a module's function (``fentry/mod:func``) and for a kprobe at an address
    or with an offset."""
    for kind, prefixes in (("function", _FUNCTION), ("tracepoint", _TRACEPOINT), ("event", _EVENT)):
        for prefix in prefixes:
            if section.startswith(prefix):
                name = section[len(prefix) :]
                if not name or any(c in name for c in ":+") or name.startswith("0x"):
                    return None
                if kind == "function" and "." in name:  # foo.isra.0: a compiler's clone
                    return None
                return kind, name
    return None


def missing_attach_targets(
    info: BpfObjectInfo,
    version: KernelVersion,
    functions: Set[str],
    tracepoints: Set[str],
    module: str | None = None,
) -> list[Finding]:
    """The programs of ``info`` whose attach target the kernel (the ``functions``
    and ``tracepoints`` of its BTF and of the project's ``module``) lacks."""
    problems = []
    for prog in info.programs:
        target = attach_target(prog.section)
        if target is None:
            continue
        kind, name = target
        if kind == "function" and name in functions:
            continue
        if kind == "tracepoint" and name in tracepoints:
            continue
        if kind == "event":
            category, _, event = name.partition("/")
            syscall = event.removeprefix("sys_enter_").removeprefix("sys_exit_")
            if category == "syscalls" and syscall != event:
                if f"__x64_sys_{syscall}" in functions or f"__do_sys_{syscall}" in functions:
                    continue
            elif event in tracepoints:
                continue
        what = kind
        subject = f"prog '{prog.name}' ({prog.section}) attaches to {what} {name}"
        where = f"Linux {version} has no {what} {name}"
        if kind == "function" and module:
            where += f" (neither in its BTF nor in module {module})"
        renamed = RENAMED.get(name)
        back = renamed_from(name)
        if renamed is not None and version >= renamed.since:
            fix_section = prog.section.replace(name, renamed.new)
            problems.append(
                Finding(
                    "error",
                    f"{subject}, but {where}: it is {renamed.new} from {renamed.since.series} "
                    f"on ({renamed.change.cited()})",
                    f"attach to {renamed.new} on {renamed.since.series} and later: "
                    f'SEC("{fix_section}")',
                    prog.prog_type or "",
                )
            )
        elif back is not None and version < back[1].since:
            old, r = back
            problems.append(
                Finding(
                    "error",
                    f"{subject}, but {where}: before {r.since.series} it is {old} "
                    f"({r.change.cited()})",
                    f"attach to {old} before {r.since.series}: "
                    f'SEC("{prog.section.replace(name, old)}")',
                    prog.prog_type or "",
                )
            )
        else:
            problems.append(
                Finding(
                    "error",
                    f"{subject}, but {where}",
                    f"attach to a {what} this kernel has (`kfunc ls` lists kfuncs; the "
                    f"kernel's BTF, `bpftool btf dump`, lists functions and btf_trace_* "
                    f"tracepoints)",
                    prog.prog_type or "",
                )
            )
    return problems
