r"""The call rules: which kfunc calls of a BPF object cannot work on a target kernel.

Each rule answers with :class:`~kfunc.check.finding.Finding`\ s: a call that
does not resolve, a declaration libbpf will refuse (:mod:`kfunc.check.compat`),
a program type that may not call the kfunc (the kernel's kfunc hooks, the
module's registrations, the probe's answer), a reference acquired and never
released, a sleepable kfunc called from a program that may not sleep. Nothing
here touches a kernel: :class:`KernelView` is what it is told of one.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kfunc.btf import types as bt
from kfunc.btf.render import declaration
from kfunc.check.bpf_object import BPF_FUNC_KPTR_XCHG, BpfObjectInfo, KfuncCall
from kfunc.check.compat import int_size_warnings, prototypes_compatible
from kfunc.check.finding import Finding
from kfunc.check.registration import Registration
from kfunc.kernel_api.hooks import PROG_TYPE_HOOK, kfunc_hook_missing
from kfunc.kernel_api.version import KernelVersion

if TYPE_CHECKING:
    from kfunc.btf.parse import BTF
    from kfunc.inventory import Kfunc

__all__ = [
    "VMLINUX",
    "CallReport",
    "KernelView",
    "check_calls",
    "check_module_calls",
    "check_object",
    "check_registrations",
]

VMLINUX = "vmlinux"


def _from(prog_type: str) -> str:
    """The release from which ``prog_type`` programs may call kfuncs (kernel_api.hooks)."""
    since = PROG_TYPE_HOOK[prog_type].since
    assert since is not None
    return since.series


_FIX = {
    "kprobe": 'attach with fentry instead (SEC("fentry/<function>")) and register the kfunc '
    f"set for BPF_PROG_TYPE_TRACING, or target a kernel >= {_from('kprobe')} (--kernel 6.12)",
    "tracepoint": "attach with tp_btf or fentry instead, and register the kfunc set for "
    f"BPF_PROG_TYPE_TRACING, or target a kernel >= {_from('tracepoint')}",
    "perf_event": f"target a kernel >= {_from('perf_event')} (--kernel 6.12)",
    "unspec": "register the set for the program types that call its kfuncs (e.g. "
    f"BPF_PROG_TYPE_TRACING), or target a kernel >= {_from('unspec')}",
}


def check_calls(
    info: BpfObjectInfo,
    version: KernelVersion,
    hooks: set[str] | None,
    common: Iterable[str] = (),
) -> list[Finding]:
    """The calls of ``info`` that cannot work on this kernel. ``common`` kfuncs are
    in the common hook (registered for BPF_PROG_TYPE_UNSPEC), which the verifier
    looks in first for every program type, with a hook of its own or not."""
    everywhere = set(common) if hooks is None or "COMMON" in hooks else set()
    problems = []
    for call in info.calls:
        prog = call.program
        if prog.prog_type is None or call.kfunc in everywhere:
            continue
        why = kfunc_hook_missing(prog.prog_type, version, hooks)
        if why:
            problems.append(
                Finding(
                    "error",
                    f"prog '{prog.name}' ({prog.section}) calls kfunc {call.kfunc}, but {why}",
                    _FIX.get(prog.prog_type),
                    prog.prog_type,
                )
            )
    return problems


def check_registrations(
    module: str, prog_types: list[str], version: KernelVersion, hooks: set[str] | None
) -> list[Finding]:
    """Problems with a module's register_btf_kfunc_id_set() calls on this kernel."""
    problems = []
    for prog_type in prog_types:
        why = kfunc_hook_missing(prog_type, version, hooks)
        if why:
            problems.append(
                Finding(
                    "error",
                    f"module {module} registers its kfunc set for "
                    f"BPF_PROG_TYPE_{prog_type.upper()}, which fails with -EINVAL: {why}",
                    _FIX.get(prog_type),
                    prog_type,
                )
            )
    return problems


@dataclass
class KernelView:
    """What :func:`check_object` knows of a target kernel.

    ``kfuncs`` by name (vmlinux's and modules'); ``btf_of(owner)`` the BTF
    holding that owner's FUNCs (None if it cannot be read); ``registrations``
    of modules by name; ``probed``: for vmlinux kfuncs, what the kernel's own
    verifier accepted per program type (``kfunc ls --probe``), None if not probed.
    """

    name: str
    version: KernelVersion
    hooks: set[str] | None
    kfuncs: dict[str, Kfunc]
    btf_of: Callable[[str], BTF | None]
    registrations: dict[str, Registration] = field(default_factory=dict)
    probed: dict[str, dict[str, bool]] | None = None


@dataclass(frozen=True)
class CallReport:
    """A kfunc call checked against a kernel."""

    call: KfuncCall
    owner: str | None  # vmlinux, a module, None where it does not resolve
    prototype: str | None  # the kernel's
    allowed: bool | None  # may this program type call it; None: cannot tell
    allowed_by: str | None  # what said so
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        p = self.call.program
        return {
            "program": p.name,
            "section": p.section,
            "prog_type": p.prog_type,
            "kfunc": self.call.kfunc,
            "weak": self.call.weak,
            "owner": self.owner,
            "prototype": self.prototype,
            "allowed": self.allowed,
            "allowed_by": self.allowed_by,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
        }


def _hook(prog_type: str) -> str | None:
    entry = PROG_TYPE_HOOK.get(prog_type)
    return entry.hook if entry else None


def _allowed(
    call: KfuncCall, kfunc: Kfunc, view: KernelView
) -> tuple[bool | None, str | None, Finding | None]:
    """May ``call``'s program type call ``kfunc`` on this kernel: (verdict, by what, finding)."""
    prog = call.program
    ptype = prog.prog_type
    assert ptype is not None
    subject = f"prog '{prog.name}' ({prog.section}) calls kfunc {kfunc.name}"
    if kfunc.owner == VMLINUX and view.probed is not None and kfunc.name in view.probed:
        verdict = view.probed[kfunc.name].get(ptype)
        if verdict is not None:
            if verdict:
                return True, "probe", None
            ok_types = sorted(t for t, v in view.probed[kfunc.name].items() if v)
            return (
                False,
                "probe",
                Finding(
                    "error",
                    f"{subject}, but {view.name}'s verifier refuses it from {ptype} programs "
                    f"(probed: calling kernel function {kfunc.name} is not allowed)",
                    f"call it from {_some(ok_types)} programs"
                    if ok_types
                    else "no program type may call it on this kernel",
                ),
            )
    why = kfunc_hook_missing(ptype, view.version, view.hooks)
    if why and kfunc.owner == VMLINUX:
        # The common set (registered for BPF_PROG_TYPE_UNSPEC: iterators, RCU locks,
        # bpf_obj_new ...) is looked up first for every program type, hook or not
        # (btf_kfunc_id_set_contains, kernel/bpf/btf.c, 6.12 and 7.3).
        if _COMMON_SET in kfunc.sets:
            return True, "common kfunc set", None
        if all(s.startswith(".BTF_ids+") for s in kfunc.sets):  # sets found unnamed
            return (
                None,
                "kernel rules",
                Finding(
                    "note",
                    f"{subject}: {ptype} programs have no kfunc hook of their own; they may "
                    "call the kfuncs of the common set (registered for all program types), "
                    f"and whether {kfunc.name} is one is known only to the kernel",
                    f"run `kfunc ls --kernel {view.version.series} --probe` once to ask its "
                    "verifier",
                ),
            )
    if why and not (kfunc.owner == VMLINUX and view.probed is None and ptype in _NO_HOOK_OK):
        return False, "kernel rules", Finding("error", f"{subject}, but {why}", _FIX.get(ptype))
    if kfunc.owner == VMLINUX:
        return (
            None,
            "kernel rules",
            Finding(
                "note",
                f"{subject}: {ptype} programs have a kfunc hook on {view.name}; whether "
                f"{kfunc.name}'s set is registered for it is known only to the kernel",
                f"run `kfunc ls --kernel {view.version.series} --probe` once to ask its verifier",
            ),
        )
    reg = view.registrations.get(kfunc.owner)
    if reg is None:
        return (
            None,
            None,
            Finding(
                "note",
                f"{subject}: module {kfunc.owner}'s registrations are unknown",
                "pass the module's project directory or sources with --module to check them",
            ),
        )
    refused = _unregistered(subject, kfunc.name, ptype, reg, view.version, view.hooks)
    if refused is None:
        return True, reg.source, None
    return False, reg.source, refused


def _unregistered(
    subject: str,
    kfunc: str,
    prog_type: str,
    reg: Registration,
    version: KernelVersion,
    hooks: set[str] | None,
) -> Finding | None:
    """The error for a call to a module's ``kfunc`` from ``prog_type`` programs
    when the module registers it for none whose hook is theirs (or COMMON's);
    None if the call is registered."""
    types = reg.types_for(kfunc)
    registered = {_hook(t) for t in types if not kfunc_hook_missing(t, version, hooks)}
    if _hook(prog_type) in registered or "COMMON" in registered:
        return None
    return Finding(
        "error",
        f"{subject}, but module {reg.module} registers it for "
        f"{', '.join(types) or 'no program type'} only ({reg.source}): the verifier will "
        f"say 'calling kernel function {kfunc} is not allowed'",
        f"call it from {_some(types)} programs, or add {prog_type!r} to the program types it "
        "is registered for",
    )


def check_module_calls(
    info: BpfObjectInfo,
    kfuncs: Iterable[str],
    reg: Registration,
    version: KernelVersion,
    hooks: set[str] | None,
) -> list[Finding]:
    """The calls of ``info`` to ``kfuncs`` (a module's, registered as ``reg``)
    from program types the module does not register them for: the verifier
    refuses each. A program type with no kfunc hook at all on this kernel is
    :func:`check_calls`' to report."""
    names = set(kfuncs)
    problems = []
    for call in info.calls:
        prog = call.program
        ptype = prog.prog_type
        if call.kfunc not in names or ptype is None or kfunc_hook_missing(ptype, version, hooks):
            continue
        subject = f"prog '{prog.name}' ({prog.section}) calls kfunc {call.kfunc}"
        refused = _unregistered(subject, call.kfunc, ptype, reg, version, hooks)
        if refused is not None:
            problems.append(dataclasses.replace(refused, prog_type=ptype))
    return problems


# Program types without a hook of their own may still call kfuncs of the common
# set (BPF_PROG_TYPE_UNSPEC registrations: bpf_cast_to_kern_ctx ...).
_NO_HOOK_OK: frozenset[str] = frozenset()
#: vmlinux's kfunc set registered for every program type (kernel/bpf/helpers.c).
_COMMON_SET = "common_btf_ids"


def _some(types: Iterable[str]) -> str:
    types = list(types)
    return " or ".join(types) if len(types) < 3 else ", ".join(types[:-1]) + " or " + types[-1]


def check_object(info: BpfObjectInfo, view: KernelView) -> list[CallReport]:
    """Every kfunc call of ``info`` checked against ``view``: does it resolve (in
    vmlinux or a module), does the declaration agree with the kernel's prototype
    (as libbpf checks it, plus a warning where integer sizes differ), may the
    program's type call it, and is it weak. Pure: nothing is loaded."""
    obj_btf = info.btf
    protos = info.protos
    reports = []
    for call in info.calls:
        reports.append(_check_call(call, view, obj_btf, protos))
    return _unreleased(info, view, reports)


#: kfuncs that take ownership of an object without being KF_RELEASE (the graph
#: insertions of bpf_experimental.h, 6.2+): an acquired node may end there.
_TAKES_OWNERSHIP = re.compile(r"^bpf_(?:list_push_(?:front|back)|rbtree_add|list_add)(?:_impl)?$")


def _unreleased(
    info: BpfObjectInfo, view: KernelView, reports: list[CallReport]
) -> list[CallReport]:
    """Add to each KF_ACQUIRE call of a program whose own instructions release
    nothing (no KF_RELEASE kfunc, no ownership-taking kfunc, no bpf_kptr_xchg) and
    call no subprogram (which might) an error: the reference leaks on every path."""
    by_program: dict[str, list[CallReport]] = {}
    for r in reports:
        by_program.setdefault(r.call.program.name, []).append(r)
    out = []
    for r in reports:
        k = view.kfuncs.get(r.call.kfunc)
        prog = r.call.program
        if k is None or "KF_ACQUIRE" not in (k.flags or ()) or prog.calls_subprograms:
            out.append(r)
            continue
        if BPF_FUNC_KPTR_XCHG in prog.helpers or any(
            "KF_RELEASE" in ((view.kfuncs[o.call.kfunc].flags or ()) if o.call.kfunc in view.kfuncs
                             else ()) or _TAKES_OWNERSHIP.match(o.call.kfunc)
            for o in by_program[prog.name]
        ):  # fmt: skip
            out.append(r)
            continue
        leak = Finding(
            "error",
            f"prog '{prog.name}' ({prog.section}) acquires a reference with {r.call.kfunc} "
            "(KF_ACQUIRE) and releases none: no KF_RELEASE kfunc, bpf_kptr_xchg or "
            "ownership-taking kfunc in its code; the verifier will say 'Unreleased reference'",
            "release it on every path with the matching KF_RELEASE kfunc, or store it in a "
            "map with bpf_kptr_xchg()",
        )
        out.append(dataclasses.replace(r, findings=(*r.findings, leak)))
    return out


def _check_call(
    call: KfuncCall, view: KernelView, obj_btf: BTF | None, protos: dict[str, int]
) -> CallReport:
    prog = call.program
    subject = f"prog '{prog.name}' ({prog.section}) calls kfunc {call.kfunc}"
    findings: list[Finding] = []
    kfunc = view.kfuncs.get(call.kfunc)
    if kfunc is None:
        close = difflib.get_close_matches(call.kfunc, view.kfuncs, n=2)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        if call.weak:
            findings.append(
                Finding(
                    "warning",
                    f"{subject} (__weak), which {view.name} does not have{hint}: "
                    "bpf_ksym_exists() is false there",
                    f"guard the call with if (bpf_ksym_exists({call.kfunc}))",
                )
            )
        else:
            findings.append(
                Finding(
                    "error",
                    f"{subject}, which is neither in {view.name}'s vmlinux nor in the given "
                    f"modules{hint}: libbpf will say 'extern (func ksym) '{call.kfunc}': not found "
                    "in kernel or module BTFs'",
                    "check the name with `kfunc ls`; pass the module that defines it with "
                    "--module; or declare it __weak and guard it with bpf_ksym_exists()",
                )
            )
        return CallReport(call, None, None, None, None, tuple(findings))
    if call.weak:
        findings.append(Finding("note", f"{subject}: declared __weak (optional)"))
    kbtf = view.btf_of(kfunc.owner)
    local_id = protos.get(call.kfunc)
    if kbtf is not None and obj_btf is not None and local_id is not None:
        func = kbtf.find(call.kfunc, bt.Func)
        if func is not None:
            if not prototypes_compatible(obj_btf, local_id, kbtf, func.type):
                mine = declaration(obj_btf, local_id, call.kfunc)
                findings.append(
                    Finding(
                        "error",
                        f"{subject} declared as `{mine}`, but {kfunc.owner} on {view.name} has "
                        f"`{kfunc.prototype}`: libbpf will say 'func_proto [N] incompatible with "
                        "kernel [M]'",
                        f"declare it as the kernel does: {kfunc.extern()} "
                        f"(`kfunc header --kfunc {call.kfunc}`); a struct must be defined, not "
                        "only forward-declared",
                    )
                )
            else:
                for w in int_size_warnings(obj_btf, local_id, kbtf, func.type):
                    findings.append(
                        Finding(
                            "warning",
                            f"{subject}: {w}; libbpf accepts it, the value is truncated or "
                            "extended",
                            f"declare it as the kernel does: {kfunc.extern()}",
                        )
                    )
    allowed, by, finding = (None, None, None)
    if prog.prog_type is None:
        finding = Finding(
            "warning",
            f"{subject}: libbpf knows no program type for section {prog.section!r}",
            'use a section name libbpf knows (SEC("fentry/..."), "syscall" ...)',
        )
    else:
        allowed, by, finding = _allowed(call, kfunc, view)
    if finding is not None:
        findings.append(finding)
    flags = kfunc.flags or ()
    if "KF_DESTRUCTIVE" in flags:
        findings.append(
            Finding("note", f"{subject}: KF_DESTRUCTIVE, the loader needs CAP_SYS_BOOT")
        )
    if (
        "KF_SLEEPABLE" in flags
        and prog.prog_type not in (None, "syscall")
        and (".s/" not in prog.section and not prog.section.endswith(".s"))
    ):
        findings.append(
            Finding(
                "error",
                f"{subject}, which is KF_SLEEPABLE, from a program that may not sleep: the "
                f"verifier will say 'program must be sleepable to call sleepable kfunc "
                f"{call.kfunc}'",
                'use a sleepable section (SEC("fentry.s/..."), "lsm.s/...", "syscall")',
            )
        )
    return CallReport(call, kfunc.owner, kfunc.prototype, allowed, by, tuple(findings))
