"""The table of verifier rejections kfunc explains (see :mod:`kfunc.verifier`).

Each :class:`Rule` names the text the kernel prints (``source``: a fixed part
of the format string in ``kernel/bpf/verifier.c`` or the file ``source``
names, as grep finds it), the Debian kernel series whose source holds that
text (``kernels``: first and last of 6.1, 6.12, 7.3 where it was read; ``None``
as the last means "still in the newest"), a pattern for the printed line, the
cause in plain words, the fix, and real lines it was written from (``seen``,
each with the kernel or selftests tree that printed or expects it). A
rewording in a newer kernel makes the source test fail
(tests/test_verifier_corpus.py) instead of a silent miss.

Patterns accept the forms the kernels print: 6.1-6.12 name an argument
``arg#0``, 7.x names the register (``R1``); both land in ``{arg}``. Parts a
selftest leaves out are optional, so a fragment of a line is still explained.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["RULES", "Rule"]


@dataclass(frozen=True)
class Rule:
    """One kind of rejection: ``pattern`` matches the verifier's (or loader's) line;
    ``what`` and ``fix`` are ``str.format`` templates over its named groups (a
    group the line lacks reads as a generic word, see :data:`DEFAULTS`)."""

    name: str
    pattern: re.Pattern[str]
    what: str
    fix: str
    seen: tuple[str, ...]
    #: Fixed parts of the kernel's format strings the line comes from (one per wording
    #: the kernels in ``kernels`` print; empty for a loader's message).
    source: tuple[str, ...] = ()
    kernels: tuple[str, str | None] = ("6.1", None)
    #: The group naming the instruction the problem is about (else the last one
    #: the log shows before the line).
    insn_group: str | None = None
    #: A further condition on the log before the line and the match's groups.
    when: Callable[[Sequence[str], dict[str, str]], bool] | None = None
    #: The line sums up a reason the verifier printed just before it ("Caller passes
    #: invalid args", "BPF_EXIT ... would lead to reference leak"): when one of the
    #: lines just before is explained by one of these rules, that one wins.
    defers_to: tuple[str, ...] = ()
    #: The line is 7.x's diagnostic prose (kernel/bpf/diagnostics.c), printed after
    #: the classic verdict line: used only where no classic line is explained.
    prose: bool = False


#: What a template's group reads as when the line (a fragment) lacks it.
DEFAULTS = {
    "kfunc": "the kfunc", "helper": "the helper", "reg": "a register", "arg": "an argument",
    "ref": "?", "alloc": "?", "at_alloc": "", "glob": "", "got": "another type",
    "into": "memory the program can read back", "want": "the expected type",
    "type": "the object", "field": "special", "off": "?", "size": "?", "lock": "the lock",
    "kind": "map value, stack or packet", "prog_type": "this program type", "map": "the map",
    "n": "several", "func": "the function", "region": "a locked or protected region",
    "what": "it",
}  # fmt: skip


def _maybe_null(before: Sequence[str], groups: dict[str, str]) -> bool:
    """Whether the log last showed register ``reg`` as possibly NULL."""
    reg = groups.get("reg")
    if reg is None:
        return "or_null" in groups.get("got", "")
    state = re.compile(rf"\bR{reg}(?:_w)?=(\S+)")
    for line in reversed(before):
        m = state.search(line)
        if m:
            return "or_null" in m[1]
    return "or_null" in groups.get("got", "")


_RULES: list[Rule] = []
ARG = r"(?P<arg>arg ?#? ?\d+|R\d+)"
REG = r"R(?P<reg>\d+|\{\{[^}]*\}\})"


def rule(
    name: str,
    pattern: str,
    source: str | tuple[str, ...],
    kernels: tuple[str, str | None],
    what: str,
    fix: str,
    *seen: str,
    insn: str | None = None,
    when: Callable[[Sequence[str], dict[str, str]], bool] | None = None,
    defers_to: tuple[str, ...] = (),
    prose: bool = False,
) -> None:
    sources = (source,) if isinstance(source, str) else source
    _RULES.append(
        Rule(name, re.compile(pattern), what, fix, seen, tuple(x for x in sources if x),
             kernels, insn, when, defers_to, prose)
    )  # fmt: skip


#: The reasons a call's argument is refused (what "Caller passes invalid args" sums up).
_ARG_REASONS = (
    "dynptr_arg", "dynptr_uninit", "null_not_checked", "wrong_argument_type",
    "untrusted_argument", "ctx_argument", "map_argument", "local_kptr_argument",
    "out_of_bounds", "stack_uninit",
)  # fmt: skip
NULL_FIX = "test it first: `if (!p) return 0;` right after the call that returned it"
REF_FIX = (
    "release it on every path, early returns included, with the matching KF_RELEASE "
    "kfunc or helper (bpf_task_from_pid -> bpf_task_release, bpf_sk_lookup_tcp -> "
    "bpf_sk_release, bpf_ringbuf_reserve -> bpf_ringbuf_submit/discard), or move it "
    "into a map as a kptr with bpf_kptr_xchg()"
)
BOUNDS_FIX = (
    "check the offset against the object's size before the access (`if (off >= SIZE) "
    "return 0;`), so that the verifier knows every value it can take stays inside"
)

# --- kfunc calls: which, from where ---------------------------------------------------

rule(
    "kfunc_not_allowed",
    r"calling kernel function(?: (?P<kfunc>\w+)(?: is not allowed)?)?$",
    "calling kernel function %s is not allowed",
    ("6.1", None),
    "kfunc {kfunc} is not registered for this program's type on this kernel",
    "call it from a program type its kfunc set is registered for (`kfunc check OBJ "
    "--kernel VER` and `kfunc ls --probe` say which), or register the set for this "
    "type with register_btf_kfunc_id_set()",
    "6.18: calling kernel function bpf_task_from_pid is not allowed",
    "6.12: calling kernel function sleepable_nap is not allowed",
)
rule(
    "kfunc_not_found",
    r"extern \(func ksym\) '(?P<kfunc>\w+)': not found in kernel or module BTFs",
    "",
    ("6.1", None),
    "kfunc {kfunc} is not in the kernel's BTF nor in any loaded module's",
    "check the name against `kfunc ls`; if a module defines it, load the module first; "
    "or declare it __weak and test bpf_ksym_exists({kfunc}) before calling it",
    "libbpf 1.1 (6.18): extern (func ksym) 'bpf_no_such_kfunc': not found in kernel or module BTFs",
)
rule(
    "kfunc_not_found",
    r'kfunc "?(?P<kfunc>\w+)"?: not supported',
    "",
    ("6.1", None),
    "kfunc {kfunc} is not in the kernel's BTF nor in any loaded module's",
    "check the name against `kfunc ls`; if a module defines it, load the module first",
    'cilium/ebpf: kfunc "bpf_no_such_kfunc": not supported',
)
rule(
    "kfunc_no_address",
    r"cannot find address for kernel function (?P<kfunc>\w+)",
    "cannot find address for kernel function %s",
    ("6.1", None),
    "{kfunc} is in BTF but has no address in kallsyms: it is not a function the kernel "
    "built in (an _impl kfunc whose wrapper is a macro, or a static function's BTF)",
    "call the kfunc's public name (for an _impl kfunc, the wrapper of the kernel's "
    "bpf_experimental.h / `kfunc ls` shows it), on a kernel that builds it",
    "7.3 selftests: cannot find address for kernel function bpf_kfunc_implicit_arg_impl",
)
rule(
    "kfunc_btf_id_invalid",
    r"kernel btf_id (?P<id>\d+) is not a function",
    "kernel btf_id %",
    ("6.1", None),
    "the call names BTF id {id}, which is not a function of the kernel's BTF",
    "the loader resolved the kfunc against another kernel's BTF: resolve kfunc "
    "names against the running kernel's /sys/kernel/btf (libbpf does)",
    "kernel/bpf/verifier.c: kernel btf_id %u is not a function",
)
rule(
    "kfunc_proto_mismatch",
    r"extern \(func ksym\) '(?P<kfunc>\w+)': func_proto \[\d+\] incompatible with "
    r"(?P<owner>\S+) \[\d+\]",
    "",
    ("6.1", None),
    "the program's declaration of {kfunc} does not match its prototype in {owner} BTF",
    "declare it as the kernel does: `kfunc header --kfunc {kfunc}` writes the extern "
    "(a struct must be a full definition, not a forward declaration)",
    "libbpf 1.1 (6.18): extern (func ksym) 'bpf_task_release': func_proto [313] "
    "incompatible with kernel [48528]",
)
rule(
    "non_gpl",
    r"cannot call kernel function from non-GPL compatible program",
    "cannot call kernel function from non-GPL compatible program",
    ("6.1", None),
    "kfuncs may be called only from GPL-compatible programs",
    'declare a GPL-compatible license: char LICENSE[] SEC("license") = "GPL";',
    "kernel/bpf/verifier.c: cannot call kernel function from non-GPL compatible program",
)
rule(
    "sleepable_kfunc",
    r"program must be sleepable to call sleepable kfunc (?P<kfunc>\w+)",
    "program must be sleepable to call sleepable kfunc %s",
    ("6.12", None),
    "{kfunc} may sleep (KF_SLEEPABLE), and this program may not",
    'call it from a sleepable program: SEC("fentry.s/...") , "lsm.s/...", '
    '"uprobe.s/..." or "syscall"',
    "6.18: program must be sleepable to call sleepable kfunc bpf_copy_from_user_str",
)
rule(
    "sleepable_in_atomic",
    r"kernel func (?P<kfunc>\w+) is sleepable within (?P<region>[\w -]+?)(?: region)?$",
    "is sleepable within",
    ("6.12", None),
    "{kfunc} may sleep (KF_SLEEPABLE), but it is called inside {region} (between "
    "bpf_rcu_read_lock/bpf_preempt_disable/bpf_local_irq_save and their end)",
    "move the call out of the region, before the lock or after its unlock",
    "7.3 selftests: kernel func bpf_copy_from_user_str is sleepable within IRQ-disabled region",
)
rule(
    "sleepable_helper",
    r"sleepable helper (?P<helper>\w+)#(?:\S*)?(?: in (?P<region>.+))?",
    "sleepable helper %s#%d in",
    ("6.12", None),
    "helper {helper} may sleep, and this program (or this region of it) may not",
    'call it from a sleepable program (SEC("lsm.s/..."), "fentry.s/...", '
    '"uprobe.s/...", "syscall"), outside bpf_rcu_read_lock/preempt/irq regions',
    "6.12 selftests: sleepable helper bpf_copy_from_user#{{[0-9]+}} in non-sleepable prog",
)
rule(
    "sleepable_global_func",
    r"sleepable global function(?: (?P<func>\w+)\(\))?",
    "sleepable global function %s()",
    ("7.3", None),
    "a global function the program calls may sleep, and the call is made where the "
    "program may not sleep",
    "call it only from a sleepable program and outside RCU/preempt/irq regions, or "
    "make it a static function that does not call sleepable kfuncs or helpers",
    "7.3 selftests: sleepable global function",
)
rule(
    "destructive_kfunc",
    r"destructive kfunc calls require CAP_SYS_BOOT capabilit(?:y|ies)",
    "destructive kfunc calls require CAP_SYS_BOOT capabilit",
    ("6.1", None),
    "the program calls a KF_DESTRUCTIVE kfunc, which needs CAP_SYS_BOOT to load",
    "load it with CAP_SYS_BOOT (as root, without dropping it: `capsh --print` shows it)",
    "6.12: destructive kfunc calls require CAP_SYS_BOOT capability",
    "6.1: destructive kfunc calls require CAP_SYS_BOOT capabilities",
)
rule(
    "needs_cap_perfmon",
    r"(?P<what>\S+) is allowed only to CAP_PERFMON and CAP_SYS_ADMIN",
    "is allowed only to CAP_PERFMON and CAP_SYS_ADMIN",
    ("6.1", None),
    "{what} reads kernel memory and needs CAP_PERFMON (or CAP_SYS_ADMIN) to load",
    "load the program with CAP_PERFMON and CAP_BPF (or as root)",
    "7.3 selftests: bpf_rdonly_cast is allowed only to CAP_PERFMON and CAP_SYS_ADMIN",
)

# --- references: acquire, release ------------------------------------------------

rule(
    "unreleased_reference",
    r"(?:Unreleased|Leaking) reference(?: id(?:=(?P<ref>\d+|\{\{[^}]*\}\}))?)?"
    r"(?: alloc_insn=(?P<alloc>\d+)?)?",
    "reference id=%d alloc_insn=%d",
    ("6.1", None),
    "a reference acquired {at_alloc}(a KF_ACQUIRE kfunc's result, or an acquiring "
    "helper's: socket lookup, ring buffer reserve, dynptr) is not released on every "
    "path to exit",
    REF_FIX,
    "6.18: Unreleased reference id=2 alloc_insn=1",
    "6.12: Unreleased reference id=3 alloc_insn=3",
    "7.3 selftests: Leaking reference id={{[0-9]+}} alloc_insn={{[0-9]+}}. Release it first.",
    insn="alloc",
)
rule(
    "unreleased_reference",  # the same leak, said at the exit, tail call or packet load
    r"(?P<what>BPF_EXIT instruction in main prog|tail_call|BPF_LD_\[ABS\|IND\]) "
    r"would lead to reference leak",
    "would lead to reference leak",
    ("6.1", None),
    "{what} while the program still holds an acquired reference: the reference would "
    "never be released",
    REF_FIX + "; release before the exit, tail call or packet load",
    "6.12 selftests: tail_call would lead to reference leak",
    defers_to=("unreleased_reference",),
)
rule(
    "release_unacquired",
    r"release (?:kernel function|kfunc|helper) (?P<kfunc>\w+) expects"
    r"(?: (?:refcounted|referenced) PTR_TO_BTF_ID)?(?: passed to (?P<arg>\S+))?",
    ("expects refcounted PTR_TO_BTF_ID", "expects referenced PTR_TO_BTF_ID passed to"),
    ("6.1", None),
    "{kfunc} releases a reference, but its argument was not acquired by this program "
    "(or was already released)",
    "pass only a pointer returned by a KF_ACQUIRE kfunc (bpf_task_acquire(), "
    "bpf_task_from_pid() ...) and not yet released; drop the release of borrowed pointers",
    "6.18: release kernel function bpf_task_release expects refcounted PTR_TO_BTF_ID",
    "7.3 selftests: release kfunc bpf_task_release expects referenced PTR_TO_BTF_ID passed to R1",
)
rule(
    "release_unacquired",
    r"R(?P<reg>\d) must be referenced when passed to release function",
    "must be referenced when passed to release function",
    ("6.1", "6.12"),
    "R{reg} is passed to a KF_RELEASE kfunc but holds no acquired reference",
    "pass only a pointer returned by a KF_ACQUIRE kfunc and not yet released",
    "6.12: R1 must be referenced when passed to release function",
)
rule(
    "release_unacquired",
    r"(?:arg \d+ is an unacquired reference|reference has not been acquired before)",
    ("reference has not been acquired before", "is an unacquired reference"),
    ("6.1", "6.12"),
    "the helper releases a reference (bpf_sk_release, bpf_ringbuf_submit/discard ...) "
    "that this program does not hold: never acquired, or already released",
    "release each reference exactly once, and only what an acquiring helper returned",
    "6.12 selftests: arg 1 is an unacquired reference",
)
rule(
    "release_offset",
    r"R(?P<reg>\d+) must have zero offset when passed to release func",
    "must have zero offset when passed to release func",
    ("6.1", None),
    "R{reg} points inside the acquired object (base + offset), but a release kfunc needs "
    "the pointer it returned",
    "pass the pointer the acquire kfunc returned, not a pointer to one of its members",
    "6.12 selftests: R1 must have zero offset when passed to release func",
)
rule(
    "acquire_returns_non_btf",
    r"acquire kernel function does not return PTR_TO_BTF_ID",
    "acquire kernel function does not return PTR_TO_BTF_ID",
    ("6.1", None),
    "a kfunc flagged KF_ACQUIRE returns something other than a pointer to a kernel "
    "struct, which the verifier cannot track as a reference",
    "in the module, return a pointer to a struct from a KF_ACQUIRE kfunc (or drop the flag)",
    "6.12 selftests: acquire kernel function does not return PTR_TO_BTF_ID",
)

# --- NULL ------------------------------------------------------------------------

rule(
    "null_not_checked",
    REG + r" invalid mem access '(?:ptr_or_null_|[a-z_]*or_null)\w*'?",
    "invalid mem access '%s'",
    ("6.1", None),
    "R{reg} may be NULL here: it holds a result that can be NULL (a KF_RET_NULL kfunc's, "
    "a map lookup's, a socket lookup's) and is dereferenced without a check",
    "test it first: `if (!p) return 0;` right after the call",
    "6.18: R0 invalid mem access 'ptr_or_null_'",
)
rule(
    "null_not_checked",
    r"invalid mem access '(?P<got>\w*or_null\w*)'",
    "invalid mem access '%s'",
    ("6.1", None),
    "a pointer that may be NULL ({got}) is dereferenced without a check",
    NULL_FIX,
    "6.12 selftests: invalid mem access 'mem_or_null'",
)
rule(
    "null_not_checked",
    r"invalid dereference of R(?P<reg>\d+) \(a nullable",
    "invalid dereference of",
    ("7.3", None),
    "R{reg} may be NULL here (a map lookup's result) and is dereferenced without a check",
    NULL_FIX,
    "7.3 selftests: error: invalid dereference of R0 (a nullable map value pointer)",
)
rule(
    "null_not_checked",
    r"(?:Possibly )?NULL pointer passed(?: to (?:trusted|helper)(?: " + ARG + r")?)?",
    "Possibly NULL pointer passed to",
    ("6.12", None),
    "{arg} may be NULL (a KF_RET_NULL kfunc's or lookup's result, not yet checked) where "
    "the callee needs a valid pointer",
    NULL_FIX,
    "6.12: Possibly NULL pointer passed to trusted arg0",
    "7.3 selftests: Possibly NULL pointer passed to trusted R1",
)
rule(
    "null_passed",
    r"(?P<arg>\S+) is expected to be non-NULL",
    "is expected to be non-NULL",
    ("6.12", None),
    "{arg} of a global function is declared non-NULL (__arg_nonnull, or a trusted "
    "pointer) and the caller may pass NULL",
    "check the pointer before the call, or declare the argument __arg_nullable",
    "7.3 selftests: R1 is expected to be non-NULL",
)
rule(
    "null_passed",
    r"requires a non-NULL value",
    "requires a non-NULL value",
    ("7.3", None),
    "the argument must not be NULL here, and the program may pass NULL",
    "check the pointer before the call",
    "7.3 selftests: requires a non-NULL value of type (void *)",
    prose=True,
)
rule(
    "null_not_checked",
    REG + r" type=(?P<got>\S+) expected=(?P<want>\S+)",
    "type=%s expected=",
    ("6.1", None),
    "R{reg} may be NULL here: it holds a result that can be NULL (a KF_RET_NULL kfunc's) "
    "and is passed on without a check",
    NULL_FIX,
    "6.1: R1 type=ptr_ expected=fp (R1 shown before as ptr_or_null_refobj)",
    when=_maybe_null,
)

rule(
    "null_not_checked",
    r"^\s*(?:" + REG + r" )?type=(?P<got>\S*or_null\S*) expected",
    "type=%s expected=",
    ("6.1", None),
    "a pointer that may be NULL ({got}) is passed on without a check",
    NULL_FIX,
    "6.12 selftests: type=sock_or_null expected=sock",
)

# --- argument types --------------------------------------------------------------

rule(
    "wrong_argument_type",
    r"^\s*(?:" + REG + r" )?type=(?P<got>\S+) expected=?(?P<want>.*)",
    "type=%s expected=",
    ("6.1", None),
    "{got} is passed where the callee expects {want}: the argument is not the kind of "
    "pointer (or value) the helper's or kfunc's prototype asks for",
    "pass the kind of value the prototype asks for (`kfunc ls` shows a kfunc's); a "
    "NULL-able result must be checked first, a stack buffer passed as &buf",
    "kernel/bpf/verifier.c: R%d type=%s expected=%s",
    "6.12 selftests: type=mem expected=ringbuf_mem",
)
rule(
    "wrong_argument_type",
    r"(?:kernel function (?P<kfunc>\w+) |(?P<kfunc2>\w+) )?(?:args#(?P<n>\d+) |R\d+ )?"
    r"expected pointer to (?P<want>STRUCT \w+)(?: but (?P<reg>R\d+) has a pointer to "
    r"(?P<got>\w+ \w+))?",
    "expected pointer to %s %s but",
    ("6.1", None),
    "the argument must point to {want}, but the program passes a pointer to {got}",
    "pass a pointer to {want} (not a cast of another type): the verifier checks the BTF "
    "type of each pointer argument",
    "6.18: kernel function bpf_cgroup_acquire args#0 expected pointer to STRUCT cgroup "
    "but R1 has a pointer to STRUCT task_struct",
    "7.3 selftests: bpf_cpumask_set_cpu R2 expected pointer to STRUCT bpf_cpumask",
)
rule(
    "wrong_argument_type",
    r"(?:" + ARG + r" )?is fp expected (?P<want>STRUCT \w+)",
    "is %s expected %s %s",
    ("7.3", None),
    "{arg} points to the program's stack where the kfunc expects a pointer to {want}",
    "pass a pointer to a kernel object of that type (a KF_ACQUIRE result or a tracing "
    "argument), not the address of a local variable",
    "7.3 selftests: R1 is fp expected STRUCT task_struct",
)
rule(
    "wrong_argument_type",
    r"(?:" + ARG + r" )?pointer type (?P<want>STRUCT \w+) must point",
    "must point to %sscalar",
    ("6.1", "6.12"),
    "{arg} is a pointer to {want} that the verifier cannot treat as a kernel object of "
    "that type (from the stack, a map value or a cast), and such a pointer may only "
    "point to plain memory",
    "pass a trusted pointer to that struct: a KF_ACQUIRE result, a tracing program's "
    "argument, or bpf_get_current_task_btf()",
    "6.12 selftests: arg#0 pointer type STRUCT cgroup must point",
)
rule(
    "ctx_argument",
    r"(?:" + ARG + r" )?expect(?:s|ed) pointer to ctx(?:, but got (?P<got>\S+))?",
    "expected pointer to ctx, but got %s",
    ("6.1", None),
    "the argument must be the program's context (its ctx parameter), and it is {got}",
    "pass the program's own ctx argument unchanged",
    "kernel/bpf/verifier.c: arg#0 expected pointer to ctx, but got PTR",
    "7.3 selftests: R1 expected pointer to ctx, but got scalar",
)
rule(
    "untrusted_argument",
    r"(?:" + REG + r" )?must be (?:referenced or trusted|a rcu pointer|referenced)$",
    ("must be referenced or trusted", "R%d must be referenced\\n"),
    ("6.1", None),
    "R{reg} is passed to a kfunc that needs a trusted pointer (KF_TRUSTED_ARGS/KF_RCU), "
    "but it was loaded from memory (a field walk) or is otherwise untrusted",
    "pass a pointer the verifier trusts: a KF_ACQUIRE result, a tracing program's "
    "argument, or bpf_get_current_task_btf(); inside bpf_rcu_read_lock() for KF_RCU",
    "6.12: R1 must be referenced or trusted",
    "6.1: R1 must be referenced (bpf_get_current_task_btf() passed to a KF_TRUSTED_ARGS kfunc)",
)
rule(
    "untrusted_argument",
    r"^R(?P<reg>\d+) must be$",
    ("must be referenced or trusted", "R%d must be referenced\\n"),
    ("6.1", None),
    "R{reg} is passed to a kfunc that needs a trusted (or RCU-protected) pointer, and it is "
    "not one",
    "pass a KF_ACQUIRE result or a tracing program's argument",
    "6.12 selftests: R2 must be",
)
rule(
    "const_argument",
    r"(?:is not a const|must be a known constant|requires this memory size "
    r"to be a verifier-known constant)",
    ("must be a known constant", "is not a known constant"),
    ("6.1", None),
    "the argument must be a constant the verifier knows at load time (a size or a "
    "flag parameter, __sz/__k), and the program passes a value it computes",
    "pass a literal or a value the verifier can bound to one constant",
    "6.12 selftests: is not a const",
)
rule(
    "mem_len_pair",
    r"(?:memory, len pair )?leads to invalid memory access",
    "memory, len pair leads to invalid memory access",
    ("6.1", None),
    "a (pointer, size) argument pair describes memory beyond the object the pointer points to",
    "pass a size no larger than the buffer (sizeof(buf)), bounded before the call",
    "6.12 selftests: memory, len pair leads to invalid memory access",
    defers_to=("out_of_bounds", "stack_uninit"),
)
rule(
    "local_kptr_argument",
    r"arg#?\d* ?expected pointer to allocated object|R\d+ expected "
    r"pointer to allocated object|expects a pointer to a BPF-managed refcounted object",
    "expected pointer to allocated object",
    ("6.12", None),
    "the argument must be an object the program allocated with bpf_obj_new() (a "
    "local kptr), and it is not",
    "pass the pointer bpf_obj_new()/bpf_refcount_acquire() returned",
    "6.12 selftests: arg#1 expected pointer to allocated object",
)
rule(
    "obj_drop_argument",
    r"(?:" + ARG + r" )?expected for (?P<kfunc>\w+)\(\)",
    ("expected for bpf_obj_drop_impl()", "expected for bpf_obj_drop()"),
    ("6.12", None),
    "{kfunc} frees an object that bpf_obj_new()/bpf_percpu_obj_new() allocated, and the "
    "argument is not one (or is the wrong kind: percpu vs plain)",
    "drop with the matching call: bpf_obj_drop() for bpf_obj_new(), "
    "bpf_percpu_obj_drop() for bpf_percpu_obj_new()",
    "6.12 selftests: arg#0 expected for bpf_obj_drop_impl()",
)
rule(
    "obj_new_type",
    r"(?:bpf_obj_new|bpf_percpu_obj_new)\S* type (?:ID argument must|size)",
    "type ID argument must be of a struct",
    ("6.12", None),
    "bpf_obj_new()/bpf_percpu_obj_new() allocate a program-defined struct; the type given "
    "is not one it accepts (bpf_percpu_obj_new: only scalars, no special fields, at most "
    "512 bytes)",
    "allocate a struct defined in the program, within bpf_percpu_obj_new's limits",
    "6.12 selftests: bpf_percpu_obj_new type ID argument must be of a struct of scalars",
)
rule(
    "obj_new_type",
    r"local type ID argument must be in range|allocation size exceeds",
    "local type ID argument must be in range",
    ("6.12", None),
    "bpf_obj_new()'s type argument is not a valid local type (or its size is too large)",
    "use the bpf_obj_new(type) macro of bpf_experimental.h, which passes the type's id",
    "6.12 selftests: local type ID argument must be in range [0, U32_MAX]",
)
rule(
    "map_argument",
    r"(?:" + ARG + r" )?doesn't point to a map value|pointer in R\d+ isn't map pointer|"
    r"arg#\d+ expected pointer to map value|expected pointer to STRUCT bpf_map|"
    r"untrusted_ptr_bpf_map",
    ("doesn't point to a map value", "isn't map pointer"),
    ("6.12", None),
    "the argument must point into a map (a map value, or the map itself), and it does not",
    "pass &map (for a map argument) or a pointer returned by bpf_map_lookup_elem() on it",
    "6.12 selftests: arg#0 doesn't point to a map value",
)

# --- dynptrs and iterators ---------------------------------------------------------

rule(
    "dynptr_uninit",
    r"Expected an initialized dynptr(?: as (?P<arg>.+))?",
    "Expected an initialized dynptr as",
    ("6.1", None),
    "the dynptr passed as {arg} is not initialized (never created, or already released "
    "or invalidated by a write over it)",
    "create it first (bpf_dynptr_from_mem/bpf_ringbuf_reserve_dynptr ...) and use it "
    "only until it is submitted, discarded or overwritten",
    "6.12 selftests: Expected an initialized dynptr as arg #2",
    defers_to=("dynptr_offset",),
)
rule(
    "dynptr_reinit",
    r"Dynptr has to be an uninitialized dynptr|cannot overwrite referenced dynptr",
    "cannot overwrite referenced dynptr",
    ("6.12", None),
    "the stack slot passed to create a dynptr already holds a dynptr that owns a reference "
    "(a ring buffer record), which would be lost",
    "submit or discard the existing dynptr before reusing its stack slot",
    "6.12 selftests: cannot overwrite referenced dynptr",
    defers_to=("dynptr_offset",),
)
rule(
    "dynptr_offset",
    r"cannot pass in (?P<kind>dynptr|iter) at an offset|"
    r"dynptr has to be at a constant offset",
    ("cannot pass in %s at an offset", "cannot pass in dynptr at an offset"),
    ("6.1", None),
    "the {kind} is passed by a pointer into the middle of its stack slot (or at a "
    "variable offset); the verifier tracks a {kind} only as a whole object",
    "pass the address of the struct bpf_dynptr (or iterator) variable itself: &d",
    "6.12 selftests: cannot pass in dynptr at an offset=-8",
)
rule(
    "dynptr_type",
    r"Expected a dynptr of type (?P<type>\w+)",
    "Expected a dynptr of type %s as",
    ("6.1", None),
    "the kfunc needs a dynptr of type {type} and gets another kind",
    "create the dynptr with the constructor for {type} (e.g. bpf_dynptr_from_file)",
    "7.3 selftests: Expected a dynptr of type file as R1",
)
rule(
    "dynptr_write",
    r"potential write to dynptr at off=",
    "potential write to dynptr at off=",
    ("6.12", "6.12"),
    "the program writes over a stack slot that holds a dynptr, corrupting it",
    "do not write to a dynptr's memory directly; use bpf_dynptr_write()",
    "6.12 selftests: potential write to dynptr at off=-16",
)
rule(
    "dynptr_from_mem",
    r"Unsupported reg type (?P<got>\w+) for bpf_dynptr_from_mem data",
    "Unsupported reg type %s for bpf_dynptr_from_mem data",
    ("6.1", None),
    "bpf_dynptr_from_mem() accepts only map values (and, later, global data) as its "
    "memory, not {got}",
    "pass a pointer to a map value",
    "6.12 selftests: Unsupported reg type fp for bpf_dynptr_from_mem data",
)
rule(
    "dynptr_release_const",
    r"CONST_PTR_TO_DYNPTR cannot be released|cannot release unowned "
    r"const bpf_dynptr",
    "CONST_PTR_TO_DYNPTR cannot be released",
    ("6.12", None),
    "the dynptr was given to this callback by the kernel (const struct bpf_dynptr *): "
    "the program does not own it and may not release it",
    "do not submit or discard a dynptr the program did not create",
    "6.12 selftests: CONST_PTR_TO_DYNPTR cannot be released",
)
rule(
    "dynptr_arg",
    r"expected pointer to stack or const struct bpf_dynptr",
    "expected pointer to stack or const struct bpf_dynptr",
    ("6.12", None),
    "the dynptr argument must be a struct bpf_dynptr on the program's stack (or one the "
    "kernel passed in), and it is not",
    "declare `struct bpf_dynptr d;` as a local variable and pass &d",
    "6.12 selftests: arg#0 expected pointer to stack or const struct bpf_dynptr",
)
rule(
    "dynptr_slice_arith",
    r"(?:dereference of modified|negative offset) dynptr_ptr ptr|invalid mem access 'dynptr_ptr'",
    "dereference of modified %s ptr",
    ("6.1", None),
    "the program accesses a struct bpf_dynptr's own memory through a pointer (or moved "
    "it): the dynptr is opaque",
    "read and write its data with bpf_dynptr_read/write/data/slice",
    "6.12 selftests: dereference of modified dynptr_ptr ptr R1 off=16384 disallowed",
)
rule(
    "iter_uninit",
    r"expected an initialized(?: (?P<kind>\w+) as (?P<arg>.+))?$",
    "expected an initialized iter_%s as",
    ("6.12", None),
    "the {kind} iterator passed as {arg} is not initialized (no bpf_iter_*_new() before, "
    "or already destroyed)",
    "call bpf_iter_<kind>_new() on it first and bpf_iter_<kind>_destroy() once after",
    "6.12 selftests: expected an initialized iter_num as arg #0",
    defers_to=("dynptr_offset",),
)
rule(
    "iter_reinit",
    r"expected uninitialized(?: (?P<kind>[\w ]+?) as (?P<arg>.+))?$",
    "expected uninitialized",
    ("6.12", None),
    "the {kind} passed as {arg} is already initialized (a second _new() or save on a live "
    "iterator or irq flag)",
    "destroy (or restore) it before initializing it again, or use another variable",
    "6.12 selftests: expected uninitialized iter_num as arg #0",
)
rule(
    "iter_on_stack",
    r"expected pointer to an iterator on stack",
    "expected pointer to an iterator on stack",
    ("6.12", None),
    "an iterator kfunc needs a pointer to the iterator struct on the program's stack",
    "declare the iterator as a local variable and pass its address",
    "7.3 selftests: R1 expected pointer to an iterator on stack",
)
rule(
    "iter_rcu",
    r"expected an RCU CS when using (?P<kfunc>\w+)|kernel func (?P<kfunc2>\w+) "
    r"requires RCU critical section protection",
    "expected an RCU CS when using",
    ("6.12", None),
    "{kfunc} walks an RCU-protected kernel list and must be called inside an RCU critical section",
    "wrap the iteration in bpf_rcu_read_lock()/bpf_rcu_read_unlock() (or use a "
    "sleepable program type that is RCU-protected)",
    "6.12 selftests: expected an RCU CS when using bpf_iter_task_next",
)
rule(
    "iter_prog_type",
    r"css_task_iter is only allowed in bpf_lsm, bpf_iter and sleepable progs",
    "css_task_iter is only allowed in",
    ("6.12", None),
    "bpf_iter_css_task_new() may be called only from LSM, bpf_iter and sleepable programs",
    'move the iteration to an SEC("lsm/..."), SEC("iter/...") or sleepable program',
    "6.12 selftests: css_task_iter is only allowed in bpf_lsm, bpf_iter and sleepable progs",
)
rule(
    "infinite_loop",
    r"infinite loop detected(?: at insn (?P<at>\d+))?",
    "infinite loop detected at insn",
    ("6.1", None),
    "the verifier found a loop that repeats the same state: as written it never ends",
    "make the loop's exit depend on a bounded counter, or iterate with bpf_for()/bpf_loop()",
    "6.12 selftests: infinite loop detected at insn 1",
    insn="at",
)

# --- kptrs, local objects, collections ---------------------------------------------

rule(
    "kptr_access",
    r"invalid kptr access, (?:" + REG + r")?(?: type=(?P<got>\S+))?"
    r"(?: expected=(?P<want>\S+))?",
    "invalid kptr access, R%d type=%s",
    ("6.1", None),
    "the value stored into a kptr field of a map value is not a pointer of the field's "
    "type ({got} where {want} is declared), or is untrusted",
    "store only a pointer of the field's __kptr type, acquired by this program, with "
    "bpf_kptr_xchg()",
    "6.12 selftests: invalid kptr access, R2 type=ptr_prog_test_ref_kfunc "
    "expected=ptr_prog_test_member",
)
rule(
    "kptr_access",
    r"kptr access (?:size must be BPF_DW|cannot have variable offset|misaligned)",
    "kptr access size must be BPF_DW",
    ("6.1", "6.12"),
    "a kptr field is read or written other than as one whole 8-byte pointer at its constant offset",
    "access the field as a whole pointer (`p = v->kptr;`)",
    "6.12 selftests: kptr access size must be BPF_DW",
)
rule(
    "kptr_access",
    r"kptr cannot be accessed indirectly by helper",
    ("kptr cannot be accessed indirectly by helper", "%s cannot be accessed indirectly by helper"),
    ("6.1", None),
    "a helper was given memory that holds a kptr field (e.g. as a buffer to copy)",
    "pass helpers memory that does not include kptr fields",
    "6.12 selftests: kptr cannot be accessed indirectly by helper",
)
rule(
    "kptr_access",
    r"store to (?:referenced kptr|uptr) disallowed|BPF_ST imm must be 0 when "
    r"storing to kptr",
    "store to referenced kptr disallowed",
    ("6.1", None),
    "the program stores to a referenced kptr field directly; the reference it holds "
    "would leak or be forged",
    "exchange it with bpf_kptr_xchg(&v->field, new) and release what it returns",
    "6.12 selftests: store to referenced kptr disallowed",
)
rule(
    "kptr_xchg",
    r"off=\d+ kptr isn't referenced kptr|no referenced kptr at map value "
    r"offset=|has no valid kptr|doesn't point to kptr",
    "kptr isn't referenced kptr",
    ("6.1", None),
    "the address passed to bpf_kptr_xchg() (or a kptr kfunc) is not a referenced kptr "
    "field of a map value",
    "declare the field `struct T __kptr *f;` in the map value and pass &value->f",
    "6.12 selftests: off=8 kptr isn't referenced kptr",
)
rule(
    "special_field_offset",
    r"(?:" + REG + r" )?doesn't have constant offset(?:\. "
    r"(?P<field>\w+) has to be)?",
    "has to be at the constant offset",
    ("6.1", None),
    "the pointer to {field} (a bpf_spin_lock, bpf_timer, bpf_wq, kptr ...) inside a map "
    "value has a variable offset; the verifier must know which field it is",
    "pass &value->field directly, not through a computed offset",
    "6.12 selftests: R1 doesn't have constant offset. kptr has to be",
)
rule(
    "special_field_offset",
    r"off (?P<off>\d+) doesn't point to 'struct (?P<field>\w+)' "
    r"that is at (?P<at>\d+)",
    (
        "doesn't point to 'struct bpf_wq' that is at %d",
        "doesn't point to 'struct %s' that is at %d",
    ),
    ("6.12", None),
    "the pointer passed as a {field} points at offset {off} of the map value, but the "
    "{field} is at offset {at}",
    "pass the field's own address (&value->{field}_member)",
    "6.12 selftests: off 48 doesn't point to 'struct bpf_spin_lock' that is at 40",
)
rule(
    "special_field_missing",
    r"(?:map|local) '?(?P<map>[\w.]+)'? has no valid (?P<field>\w+)",
    "has no valid %s",
    ("7.3", None),
    "the map value (or object) has no {field} field for this call to use",
    "declare a {field} member in the value struct",
    "7.3 selftests: map 'res_spin.bss' has no valid bpf_res_spin_lock",
)
rule(
    "special_field_direct",
    r"direct access to (?P<field>\w+) is disallowed",
    "direct access to %s is disallowed",
    ("6.12", None),
    "the program reads or writes a {field} field directly; it may only be used through "
    "its kfuncs/helpers",
    "use the field only through its API (bpf_spin_lock(), bpf_list_push_front() ...)",
    "6.12 selftests: direct access to bpf_list_head is disallowed",
)
rule(
    "graph_field",
    r"(?P<field>bpf_list_head|bpf_list_node|bpf_rb_root|bpf_rb_node) not found "
    r"at offset=(?P<off>\d+)",
    "not found at offset=",
    ("6.12", None),
    "the pointer passed as a {field} does not point to a {field} field (offset {off} "
    "of its struct)",
    "pass &obj->member where member is declared as {field}",
    "6.12 selftests: bpf_list_head not found at offset=0",
)
rule(
    "graph_field",
    r"(?:arg#\d+ offset=\d+, but expected|operation on \w+ expects arg#\d+) "
    r"(?P<field>\w+)",
    "but expected %s at offset=%d in struct %s",
    ("6.12", None),
    "the node passed is not the {field} member the list or tree head was declared to "
    "hold (__contains(struct, member))",
    "pass &obj->member for the struct and member of the head's __contains() annotation",
    "6.12 selftests: arg#1 offset=0, but expected bpf_list_node at offset=48 in struct foo",
)
rule(
    "graph_lock",
    r"bpf_spin_lock at off=\d+ must be held for (?P<field>\w+)",
    "must be held for %s",
    ("6.12", None),
    "the {field} is changed without holding the bpf_spin_lock that protects it",
    "call bpf_spin_lock(&lock) before and bpf_spin_unlock(&lock) after the operation",
    "6.12 selftests: bpf_spin_lock at off=16 must be held for bpf_rb_root",
)
rule(
    "graph_node_ref",
    r"rbtree_remove node input must be non-owning ref|is neither owning or "
    r"non-owning ref|can only take non-owning or refcounted",
    "is neither owning or non-owning ref",
    ("6.12", None),
    "the rb-tree node passed is not a reference the verifier can tie to the tree (an "
    "owning or a non-owning reference from the same locked region)",
    "pass a node obtained from bpf_rbtree_first()/add() under the same lock",
    "6.12 selftests: rbtree_remove node input must be non-owning ref",
)
rule(
    "graph_in_callback",
    r"(?:rbtree_remove not allowed|can't (?:res_)?spin_\{lock,unlock\}) "
    r"in rbtree cb",
    "in rbtree cb",
    ("6.12", None),
    "the rb-tree's less() callback may not change the tree or take locks",
    "compare the two nodes only; do removals and locking outside the callback",
    "6.12 selftests: rbtree_remove not allowed in rbtree cb",
)
rule(
    "tracing_special_fields",
    r"tracing progs cannot use (?P<field>\S+) yet",
    "tracing progs cannot use",
    ("6.1", None),
    "tracing programs (kprobe, fentry, tracepoint ...) may not use maps with {field}: it "
    "could deadlock if the traced code holds it",
    "use the map from a non-tracing program (tc, xdp, syscall, lsm ...), or drop the field",
    "6.12 selftests: tracing progs cannot use bpf_spin_lock yet",
)
rule(
    "nmi_unsafe",
    r"cannot be used in tracing programs on types with NMI unsafe fields",
    "NMI unsafe",
    ("7.3", None),
    "bpf_obj_drop() would run a destructor that is not NMI safe from a tracing program",
    "drop such objects from non-tracing programs",
    "7.3 selftests: bpf_obj_drop cannot be used in tracing programs on types with NMI "
    "unsafe fields",
)
rule(
    "struct_access",
    r"access beyond (?:struct|the end of member)(?: (?P<type>\w+))?",
    "access beyond struct %s at off %u size %u",
    ("6.1", None),
    "the program reads past the end of {type} (a kernel struct or a member of it)",
    "read only fields the struct has on this kernel (check with `kfunc ls`/pahole; "
    "use CO-RE bpf_core_field_exists for optional ones)",
    "6.12 selftests: access beyond struct prog_test_ref_kfunc at off 32 size 4",
)
rule(
    "struct_access",
    r"cannot access ptr member (?P<field>\w+) with moff",
    "cannot access ptr member %s with moff",
    ("6.1", None),
    "the program reads part of the pointer member {field} (a misaligned or partial load)",
    "read pointer members whole",
    "7.3 selftests: cannot access ptr member ops with moff 0 in struct bpf_map with off 1 size 4",
)
rule(
    "struct_access",
    r"memory access is .* outside of the object of size",
    "outside of the object of size",
    ("7.3", None),
    "the program accesses memory outside the object the pointer points to",
    BOUNDS_FIX,
    "7.3 selftests: memory access is {{.*}} and is outside of the object of size 64",
    prose=True,
)
rule(
    "struct_write",
    r"(?:no write support to (?P<type>\w+)|only read (?:from bpf_array )?is "
    r"supported|write into (?:map|memory) forbidden|read from map forbidden)",
    "only read is supported",
    ("6.1", None),
    "the program writes to memory this program type may only read (a kernel struct, a "
    "read-only map)",
    "write only to your own memory (stack, map values of writable maps)",
    "6.12 selftests: write into map forbidden, value_size=16 off=8 size=8",
)

# --- locks, RCU, preemption, irq, exceptions --------------------------------------------

rule(
    "unbalanced_region",
    r"(?:BPF_EXIT instruction in main prog|bpf_throw|tail_call) cannot be used inside "
    r"(?P<region>\S+?)-ed region",
    (
        "cannot be used inside bpf_rcu_read_lock-ed region",
        "cannot be used inside bpf_local_irq_save-ed region",
    ),
    ("6.12", None),
    "the program leaves (exit, bpf_throw, tail call) while still inside a {region} region",
    "end the region (unlock, bpf_rcu_read_unlock(), bpf_preempt_enable(), "
    "bpf_local_irq_restore()) on every path before leaving",
    "6.12 selftests: bpf_throw cannot be used inside bpf_rcu_read_lock-ed region",
)
rule(
    "unbalanced_region",
    r"BPF_EXIT instruction in main prog cannot be used inside "
    r"bpf_spin_lock-ed region|bpf_spin_unlock is missing|unlock is missing",
    "cannot be used inside bpf_spin_lock-ed region",
    ("6.1", None),
    "the program exits while holding a bpf_spin_lock",
    "call bpf_spin_unlock() on every path before returning",
    "6.12 selftests: BPF_EXIT instruction in main prog cannot be used inside "
    "bpf_spin_lock-ed region",
)
rule(
    "unbalanced_region",
    r"(?:(?P<n>\d+) )?bpf_preempt_enable(?:\(s\))? (?:is|are) missing",
    "bpf_preempt_enable",
    ("6.12", None),
    "the program exits with preemption still disabled ({n} bpf_preempt_disable() "
    "without bpf_preempt_enable())",
    "call bpf_preempt_enable() once for each bpf_preempt_disable() on every path",
    "6.12 selftests: 2 bpf_preempt_enable(s) are missing",
)
rule(
    "unbalanced_region",
    r"(?:bpf_spin_unlock|unlock) of different lock|cannot restore irq "
    r"state out of order|bpf_res_spin_unlock cannot be out of order",
    "unlock of different lock",
    ("6.1", None),
    "locks (or saved irq states) are released in another order than taken, or a lock is "
    "released that is not the one held",
    "release in the reverse order of acquiring, the same lock that was taken",
    "6.12 selftests: bpf_spin_unlock of different lock",
)
rule(
    "lock_not_held",
    r"without taking a lock",
    "without taking a lock",
    ("6.1", None),
    "bpf_spin_unlock() is called without holding the lock",
    "call bpf_spin_lock() first on the same lock",
    "6.12 selftests: without taking a lock",
)
rule(
    "irq_flag",
    r"doesn't point to an irq flag on stack",
    "irq flag on stack",
    ("7.3", None),
    "bpf_local_irq_save/restore need a pointer to an unsigned long flag on the stack",
    "declare `unsigned long flags;` as a local variable and pass &flags",
    "7.3 selftests: R1 doesn't point to an irq flag on stack",
)
rule(
    "deadlock",
    r"AA deadlock detected",
    "AA deadlock detected",
    ("7.3", None),
    "the program takes a resilient spin lock it already holds",
    "unlock it before taking it again",
    "7.3 selftests: AA deadlock detected",
)
rule(
    "call_in_region",
    r"(?:(?P<glob>global )?function calls are not allowed(?: while holding a lock| with "
    r"preemption disabled| in rbtree cb)?|calls are not allowed$)",
    "function calls are not allowed while holding a lock",
    ("6.1", None),
    "the program calls a {glob}function inside a bpf_spin_lock or preempt-disabled "
    "region; only a few kfuncs (list/rbtree ops, the unlock) may be called there",
    "move the call after the unlock (or before the lock)",
    "6.12 selftests: function calls are not allowed while holding a lock",
)
rule(
    "spin_lock_in_map",
    r"inside bpf_spin_lock",
    "inside bpf_spin_lock",
    ("6.1", None),
    "the operation is not allowed while a bpf_spin_lock is held",
    "release the lock first",
    "6.12 selftests: inside bpf_spin_lock",
)
rule(
    "callback_call",
    r"cannot (?:be called from callback(?: subprog)?|tail call within "
    r"callback|use BPF_LD_\[ABS\|IND\] within callback)|cannot call exception cb directly",
    "cannot be called from callback",
    ("6.12", None),
    "the operation (bpf_throw, a tail call, a packet load, a direct call of the exception "
    "callback) is not allowed inside a callback function (bpf_loop, timer, rbtree less ...)",
    "do it in the main program, after the helper that runs the callback returns",
    "6.12 selftests: cannot be called from callback subprog",
)
rule(
    "exception_cb",
    r"exception cb (?:only supports single integer argument|cannot return void)"
    r"|multiple exception callback tags",
    "exception cb only supports",
    ("6.12", None),
    "the exception callback (__exception_cb) must be one function taking one u64 and "
    "returning an int",
    "declare it `int cb(u64 cookie)` and name it in one __exception_cb() only",
    "6.12 selftests: exception cb only supports single integer argument",
)
rule(
    "return_range",
    r"(?:At (?:program exit|callback return) the register R\d+ has|^R\d+ has (?:smin|unknown "
    r"scalar value)|^smin=|should have been in)(?: .*)?$|^At (?:program exit|callback return) "
    r"the register R0 has value",
    "should have been in",
    ("6.1", None),
    "the program (or callback) returns a value this program type does not accept (its "
    "return range is fixed: e.g. 0/1 for cgroup and LSM hooks, [-4095, 0] for others)",
    "return only values in the range the message gives (constants, or bound a computed value)",
    "6.12 selftests: At program exit the register R0 has smin=64 smax=64 should",
)
rule(
    "return_not_known",
    r"(?:At program exit the register )?R\d+ is not a known value(?: \((?P<got>\w+)\))?",
    "is not a known value",
    ("6.1", None),
    "the program returns a pointer (or a value it cannot know) where its type must return "
    "a known integer",
    "return an integer; check and convert pointers before returning",
    "7.3 selftests: At program exit the register R0 is not a known value (ptr_or_null_)",
)
rule(
    "global_func_return",
    r"(?P<func>\w+)\(\) doesn't return scalar",
    "doesn't return scalar",
    ("6.1", "6.12"),
    "global function {func}() must return a scalar (int) type",
    "make it return int (or make it static)",
    "6.12 selftests: Global function exception_cb_bad_ret_type() doesn't return scalar.",
)
rule(
    "global_func_args",
    r"Caller passes invalid args into func#\d+",
    "Caller passes invalid args into func#",
    ("6.1", None),
    "the arguments given to a global function do not match what its declaration lets "
    "the verifier assume (a NULL for a non-null pointer, packet data that may change ...)",
    "pass what the declaration promises (check for NULL, cast or re-derive pointers)",
    "6.12 selftests: Caller passes invalid args into func#1",
    defers_to=_ARG_REASONS,
)
rule(
    "global_func_args",
    r"R\d+ is a packet pointer, but func#\S+ may change packet data",
    "may change packet data",
    ("7.3", None),
    "a packet pointer is used after a call to a function that can change the packet, "
    "which invalidates it",
    "reload data/data_end from the context after the call and re-check bounds",
    "7.3 selftests: R2 is a packet pointer, but func#{{[0-9]+}} may change packet data",
)
rule(
    "global_func_args",
    r"arg#\d+ (?:reference type\(|untrusted cannot be combined)",
    "untrusted cannot be combined with any other tags",
    ("7.3", None),
    "a global function's argument has a type or tag combination the verifier does not accept",
    "declare the argument with a supported type and a single __arg_* tag",
    "6.12 selftests: arg#0 untrusted cannot be combined with any other tags",
)
rule(
    "global_func_args",
    r"func '(?P<func>\w+)' doesn't have \d+-th argument",
    "doesn't have %d-th argument",
    ("6.1", None),
    "the program reads an argument that the traced function {func} does not have",
    "read only the arguments of the traced function's prototype",
    "6.12 selftests: func 'bpf_multi_func' doesn't have 1-th argument",
)

# --- arena -----------------------------------------------------------------------

rule(
    "arena",
    r"arena pointer (?:cannot be a stack argument|requires a program with an "
    r"associated arena)|is not a pointer to arena or scalar|same insn cannot be used with and "
    r"without arena pointer",
    "arena pointer",
    ("6.12", None),
    "an arena pointer is used where it may not be (an arena needs a map of type "
    "BPF_MAP_TYPE_ARENA in the program; arena and non-arena pointers cannot share an "
    "instruction)",
    "declare the arena map and use __arena pointers consistently",
    "6.12 selftests: arena pointer cannot be a stack argument",
)

# --- memory bounds ---------------------------------------------------------------

rule(
    "out_of_bounds",
    r"invalid access to (?P<kind>map value|memory|packet|flow keys)|^value_size=\d+ off=",
    "invalid access to map value, value_size=%d off=%d size=%d",
    ("6.1", None),
    "the access falls outside the {kind} (offset + size beyond its size, or negative)",
    BOUNDS_FIX,
    "6.12 selftests: invalid access to map value, value_size=48 off=48 size=1",
)
rule(
    "out_of_bounds",
    r"(?:(?:" + REG + r" )?(?:min|max|\{\{min\|max\}\}) )?value is outside "
    r"of the allowed memory range|outside of the allowed memory range",
    "value is outside of the allowed memory range",
    ("6.1", None),
    "an offset the program adds to a pointer may take values that fall outside the object "
    "(the verifier tracks the smallest and largest value it can have)",
    BOUNDS_FIX,
    "6.12 selftests: R0 min value is outside of the allowed memory range",
)
rule(
    "out_of_bounds",
    r"(?:" + REG + r" )?min value is negative|^min value is negative",
    "min value is negative",
    ("6.1", None),
    "an index or size may be negative (the verifier sees a signed value with no lower bound)",
    "make it unsigned, or check `if (i < 0) return 0;` (or `i &= MASK`)",
    "6.12 selftests: R2 min value is negative, either use unsigned or 'var &= const'",
)
rule(
    "out_of_bounds",
    r"(?:" + REG + r" )?unbounded memory access",
    "unbounded memory access",
    ("6.1", None),
    "a size or offset has no upper bound the verifier can see",
    BOUNDS_FIX,
    "6.12 selftests: R0 unbounded memory access, make sure to bounds check any such access",
)
rule(
    "out_of_bounds",
    r"(?:" + REG + r" )?invalid zero-sized read",
    "invalid zero-sized read",
    ("6.1", None),
    "a size passed to a helper may be 0 where the helper reads at least one byte",
    "check `if (len == 0) return 0;` (or use a helper that accepts __sz of 0)",
    "6.12 selftests: R2 invalid zero-sized read",
)
rule(
    "out_of_bounds",
    r"(?:" + REG + r" )?memory size \d+ is too large|R\d+ offset is outside "
    r"of the packet|invalid (?:negative|variable) \w* ?buffer offset",
    "is too large",
    ("6.1", None),
    "a size or offset is larger than the memory the pointer refers to",
    BOUNDS_FIX,
    "6.12 selftests: R1 offset is outside of the packet",
)
rule(
    "pointer_math",
    r"math between (?P<kind>\w+) pointer and (?:register with unbounded|"
    r"-?\d+)|(?:pointer offset|value) -?\d+(?: makes \w+ pointer be out of bounds)?|"
    r"^register with unbounded min value|^math between \w+ pointer(?: and register)?$|"
    r"^unbounded min value|^(?:fp|map_value) pointer (?:and|"
    r"offset)",
    "math between %s pointer and",
    ("6.1", None),
    "the program adds to a {kind} pointer an offset that is unbounded or too large; the "
    "result could point anywhere",
    BOUNDS_FIX,
    "6.12 selftests: math between map_value pointer and register with "
    "unbounded min value is not allowed",
)
rule(
    "pointer_math",
    r"(?:" + REG + r" )?pointer arithmetic on (?P<kind>\w+)",
    "pointer arithmetic on %s prohibited",
    ("6.1", None),
    "R{reg} is a {kind} pointer, a kind the program may not move at all (sockets, map "
    "pointers, flow keys, pkt_end and pointers not yet checked for NULL)",
    "use the pointer as it is (check NULL-able ones first); read what it points to through "
    "its fields or helpers, not by offsetting it",
    "6.12 selftests: R1 pointer arithmetic on map_ptr prohibited",
)
rule(
    "pointer_math",
    r"(?:" + REG + r" )?(?:pointer [-+]= pointer|tried to subtract pointer from scalar|"
    r"\d+-bit pointer arithmetic|bitwise operator \S+ on pointer|pointer arithmetic with \S+ "
    r"operator|has pointer with unsupported alu|pointer arithmetic(?: prohibited)?$|"
    r"sign-extension part of pointer|partial copy)",
    ("pointer += pointer", "bitwise operator %s on pointer"),
    ("6.1", None),
    "R{reg} holds a pointer, and the operation is not one the verifier allows on pointers "
    "(only adding or subtracting a scalar, in 64 bits; no pointer + pointer, no bitwise or "
    "32-bit operations, no partial copies)",
    "compute an integer offset and add it to the pointer; cast to an integer only to "
    "compare or print",
    "6.12 selftests: R0 pointer += pointer prohibited",
)
rule(
    "pointer_math",
    r"(?:" + REG + r" )?(?:pointer arithmetic of map value goes out of range|stack pointer "
    r"arithmetic goes out of range|tried to add from different|has unknown scalar with mixed "
    r"signed bounds|subtraction from stack pointer)",
    ("goes out of range", "tried to add from different"),
    ("6.1", None),
    "an unprivileged program's pointer arithmetic could go out of bounds under speculative "
    "execution (mixed or unknown bounds, or pointers from different maps or paths), which "
    "the verifier refuses without CAP_BPF",
    "load with CAP_BPF, or bound the offset (`off &= MASK`) and keep each pointer on one path",
    "6.12 selftests: R1 tried to add from different maps, paths or scalars",
)
rule(
    "pointer_compare",
    r"(?:" + REG + r" )?pointer comparison(?: prohibited)?",
    "pointer comparison prohibited",
    ("6.1", None),
    "an unprivileged program compares a pointer (only comparisons with NULL, and packet "
    "pointers, are allowed)",
    "load with CAP_BPF, or compare integers instead",
    "6.12 selftests: R1 pointer comparison prohibited",
)
rule(
    "pointer_leak",
    r"(?:" + REG + r" )?leaks addr(?: into (?P<into>\w+)| as return value)?|"
    r"leaking pointer from stack",
    "leaks addr into",
    ("6.1", None),
    "an unprivileged program would expose a kernel address (writing a pointer into "
    "{into}, or returning one)",
    "load with CAP_BPF (or as root), or store values, not pointers",
    "6.12 selftests: R0 leaks addr as return value",
)
rule(
    "unpriv",
    r"(?:" + REG + r" )?(?:variable stack access prohibited for !root|"
    r"avoid BPF function references in unprivileged|loading/calling other bpf or kernel "
    r"functions)",
    "for !root",
    ("6.1", None),
    "the program does something unprivileged programs may not (needs CAP_BPF)",
    "load it with CAP_BPF, or avoid the construct",
    "6.12 selftests: R2 variable stack access prohibited for !root",
)
rule(
    "unpriv",
    r"same insn cannot be used with different pointers|tail_call abusing map_ptr",
    "same insn cannot be used with different pointers",
    ("6.1", None),
    "one instruction is reached with pointers of different kinds (or different tail call "
    "maps) on different paths",
    "keep each load/store/call on one kind of pointer: duplicate the code per path",
    "6.12 selftests: same insn cannot be used with different pointers",
)

# --- stack ----------------------------------------------------------------------

rule(
    "stack_uninit",
    r"invalid (?:indirect )?read from stack|invalid (?:variable-offset |"
    r"unbounded variable-offset )?(?:indirect )?access to stack|invalid variable-offset read from "
    r"stack",
    "invalid read from stack",
    ("6.1", None),
    "the program (or a helper it passes the buffer to) reads stack bytes that were never "
    "written on this path, or outside the stack",
    "initialise the variable (`= {{}}` or __builtin_memset) before passing or reading it",
    "6.12 selftests: invalid indirect read from stack",
)
rule(
    "stack_write",
    r"invalid (?:variable-offset |unbounded variable-offset )?write to stack|"
    r"frame pointer is read only|attempt to corrupt spilled|^invalid variable-offset$",
    "invalid%s stack ",
    ("6.1", None),
    "the program writes outside its 512-byte stack, at a variable offset, to R10 itself, "
    "or over a saved pointer",
    "write only to local variables at fixed offsets",
    "6.12 selftests: invalid write to stack",
)
rule(
    "stack_size",
    r"combined stack size of \d+ calls|stack size \d+\(extra \d+\) is too large|"
    r"the call stack of \d+ frames",
    "combined stack size of %d calls is %d. Too large",
    ("6.1", None),
    "the program's stack (512 bytes), summed over nested calls, or its call depth (8 "
    "frames) is exceeded",
    "use smaller local variables (keep large buffers in a per-CPU array map) and fewer "
    "nested calls",
    "6.12 selftests: combined stack size of 2 calls is",
)
rule(
    "misaligned",
    r"misaligned (?P<kind>stack|value|packet) access",
    ("misaligned %saccess off %s+%d+%d size %d", "misaligned %saccess off %s+%d size %d"),
    ("6.1", None),
    "the {kind} access is not aligned to its size (strict alignment, or a pointer spill)",
    "align the access (use offsets that are multiples of the size), or copy with __builtin_memcpy",
    "6.12 selftests: misaligned stack access off -8+2 size 8",
)
rule(
    "register_fill",
    r"invalid size of register fill|^invalid size$",
    "invalid size of register fill",
    ("6.1", None),
    "a saved pointer is read back from the stack with a narrower load than it was stored",
    "read spilled values with the width they were written",
    "6.12 selftests: invalid size of register fill",
)

# --- registers, ctx, access kinds ---------------------------------------------------

rule(
    "uninit_register",
    r"(?:" + REG + r" )?!read_ok|R\d+ has never been initialized",
    "!read_ok",
    ("6.1", None),
    "the program reads a register that holds no value on this path (an uninitialised "
    "variable, or a caller-saved register after a call)",
    "initialise the variable on every path; registers R1-R5 are clobbered by calls",
    "6.12 selftests: R1 !read_ok",
)
rule(
    "bad_register",
    r"R\d+ is invalid|r11 load must be before",
    "is invalid",
    ("6.1", None),
    "the instruction names a register that does not exist (R0-R10 only)",
    "fix the hand-written instruction (or the compiler flags)",
    "6.12 selftests: R11 is invalid",
)
rule(
    "scalar_deref",
    REG + r" invalid mem access 'scalar'",
    "invalid mem access '%s'",
    ("6.1", None),
    "R{reg} is dereferenced but holds a number, not a pointer (a pointer that was "
    "released, overwritten, or never a pointer)",
    "dereference only pointers the verifier knows: do not use a pointer after releasing "
    "it, and do not cast integers to pointers (use bpf_probe_read_kernel)",
    "6.12 selftests: R0 invalid mem access 'scalar'",
)
rule(
    "scalar_deref",
    r"invalid mem access '(?P<got>\w+)'|^(?:R\d+ )?invalid mem access$",
    "invalid mem access '%s'",
    ("6.1", None),
    "the program dereferences a value that may not be dereferenced this way (a number, a "
    "released pointer, or a pointer kind that allows no such access)",
    "dereference only pointers to memory (map values, stack, ctx fields, trusted kernel "
    "pointers); check NULL-able ones first",
    "6.12 selftests: invalid mem access 'scalar'",
)
rule(
    "ctx_access",
    r"invalid (?:bpf_context|sock|sock_common|tcp_sock|xdp_sock|tcp) access",
    "invalid bpf_context access off=%d size=%d",
    ("6.1", None),
    "the program reads (or writes) a context field that this program type does not have "
    "or may not access that way (offset or size), or a field after its reference was "
    "released",
    "access only the fields this program type's context allows, with their own width "
    "(see the program type's ctx struct); do not keep using a released pointer",
    "6.12 selftests: invalid bpf_context access off=76 size=4",
)
rule(
    "ctx_access",
    r"(?:dereference of modified (?P<kind>\S+) ptr|negative offset (?P<kind2>\S+) "
    r"ptr|modified ctx ptr|variable (?P<kind3>\S+) access var_off)",
    "dereference of modified %s ptr",
    ("6.1", None),
    "a context (or kernel struct) pointer is moved before it is dereferenced; such "
    "pointers may be read only at constant offsets from their start",
    "read the field directly (ctx->field), not through pointer arithmetic",
    "6.12 selftests: dereference of modified ctx ptr R1 off=8 disallowed",
)
rule(
    "ctx_access",
    r"BPF_ATOMIC (?:loads from|stores into) R\d+ (?P<kind>\w+) is not allowed",
    "BPF_ATOMIC stores into R%d %s is not allowed",
    ("6.1", None),
    "atomic operations are allowed only on stack, map values and arena memory, not on {kind}",
    "copy the value to a map value or the stack and operate there",
    "6.12 selftests: BPF_ATOMIC stores into R1 ctx is not allowed",
)
rule(
    "readonly",
    r"(?:" + REG + r" )?cannot write into (?P<kind>\w+)|the prog does not allow "
    r"writes to packet data|cannot write into packet",
    "cannot write into %s",
    ("6.1", None),
    "the program writes to read-only memory ({kind}: a kfunc's or helper's read-only "
    "result, a socket, or packet data of a program type that may not change it)",
    "write to a copy on the stack or in a map value; for packets use a program type that "
    "may write (tc, xdp)",
    "6.12 selftests: R0 cannot write into rdonly_mem",
)
rule(
    "div_by_zero",
    r"div by zero",
    "div by zero",
    ("6.1", None),
    "the program divides by a constant zero",
    "check the divisor, or divide by non-zero",
    "6.12 selftests: div by zero",
)

# --- control flow and size ------------------------------------------------------------

rule(
    "back_edge",
    r"back-edge(?: from insn (?P<from>\d+) to (?P<to>\d+))?|^loop detected",
    "back-edge from insn %d to %d",
    ("6.1", None),
    "the program has a loop the verifier cannot prove bounded (or, unprivileged, any loop)",
    "bound the loop with a constant count the compiler keeps, or use bpf_for()/bpf_loop()",
    "6.12 selftests: back-edge from insn 10 to 11",
    insn="from",
)
rule(
    "unreachable",
    r"unreachable insn (?P<at>\d+)|^unreachable$",
    "unreachable insn %d",
    ("6.1", None),
    "instruction {at} can never run (dead code after a jump or exit)",
    "remove the dead code (usually hand-written assembly)",
    "6.12 selftests: unreachable insn 1",
    insn="at",
)
rule(
    "jump_range",
    r"jump out of range|jump table for insn \d+ points outside|no jump tables "
    r"found",
    "jump out of range",
    ("6.1", None),
    "a jump targets an instruction outside the program (or its subprogram)",
    "fix the hand-written jump offsets",
    "6.12 selftests: jump out of range",
)
rule(
    "too_large",
    r"(?:BPF )?program is too large",
    "program is too large",
    ("6.1", None),
    "the verifier explored more than 1 million instructions (or the program has too many)",
    "shorten loops, split the program with tail calls or bpf_loop(), and make branches "
    "prune (fewer distinct states)",
    "6.12 selftests: BPF program is too large.",
)
rule(
    "too_large",
    r"liveness analysis exceeded complexity limit",
    "liveness analysis exceeded complexity limit",
    ("7.3", None),
    "the verifier's analysis of the program gave up: it is too complex",
    "simplify the program: fewer nested loops and branches",
    "7.3 selftests: liveness analysis exceeded complexity limit",
)
rule(
    "recursion",
    r"recursive call from",
    "recursive call from",
    ("7.3", None),
    "a function calls itself (directly or indirectly): BPF has no recursion",
    "rewrite the recursion as a bounded loop",
    "6.12 selftests: recursive call from",
)

# --- helpers and program types ---------------------------------------------------------

rule(
    "helper_not_allowed",
    r"program of this type cannot use helper (?P<helper>\w+)",
    "program of this type cannot use helper %s",
    ("6.12", None),
    "helper {helper} is not available to this program type",
    "use a program type that offers {helper} (bpftool feature probe lists them), or an "
    "equivalent kfunc",
    "6.12 selftests: program of this type cannot use helper bpf_sk_release",
)
rule(
    "helper_not_allowed",
    r"helper call is not allowed in probe|points to disabled hook|"
    r"unknown func (?P<helper>\w+)",
    ("unknown func %s", "helper call is not allowed in probe"),
    ("6.1", None),
    "the helper cannot be called here (unknown to this kernel, or refused in this program)",
    "check the helper against this kernel and program type (`bpftool feature probe`)",
    "6.12 selftests: helper call is not allowed in probe",
)
rule(
    "map_type",
    r"cannot pass map_type (?P<map>\d+) into func (?P<helper>\w+)|expected prog "
    r"array map for tail call|cannot update sockmap in this context|get_local_storage\(\) doesn't "
    r"support non-zero flags",
    "cannot pass map_type %d into func %s",
    ("6.1", None),
    "this map's type cannot be used with {helper} (each helper accepts certain map types)",
    "use a map of a type the helper supports (e.g. a BPF_MAP_TYPE_PROG_ARRAY for bpf_tail_call)",
    "6.12 selftests: cannot pass map_type 7 into func bpf_map_lookup_elem",
)
rule(
    "map_fd",
    r"fd \d+ is not pointing to valid bpf_map",
    "is not pointing to valid bpf_map",
    ("6.1", None),
    "an instruction names a map fd that is not an open map",
    'let libbpf create and relocate maps (declare them in SEC(".maps"))',
    "6.12 selftests: fd 0 is not pointing to valid bpf_map",
)
rule(
    "const_string",
    r"doesn't point to a const string|cannot be used as const string",
    "doesn't point to a const string",
    ("6.12", None),
    "the helper needs a read-only, NUL-terminated string from a frozen map (a const "
    "global), and gets other memory",
    "pass a string literal or a `const char[]` global",
    "6.12 selftests: R2 doesn't point to a const string",
)
rule(
    "attach",
    r"attach to unsupported member (?P<member>\w+) of struct (?P<type>\w+)",
    "attach to unsupported member %s of struct %s",
    ("6.1", None),
    "struct_ops member {member} of {type} cannot be implemented in BPF",
    "implement only the members the struct_ops type supports",
    "6.12 selftests: attach to unsupported member test_2 of struct bpf_dummy_ops",
)
rule(
    "prog_type_sleepable",
    r"Program of this type cannot be sleepable|Sleepable program cannot "
    r"attach to non-faultable tracepoint",
    "Program of this type cannot be sleepable",
    ("7.3", None),
    "this program type (or attach point) cannot be sleepable",
    'drop the ".s" from the section name, or attach to a faultable (syscall) tracepoint',
    "7.3 selftests: Program of this type cannot be sleepable",
)
rule(
    "ld_abs",
    r"BPF_LD_\[ABS\|IND\] cannot be mixed with socket references|LD_ABS is only "
    r"allowed in functions that return 'int'",
    "cannot be mixed with socket references",
    ("6.1", "6.12"),
    "a legacy packet load (LD_ABS/LD_IND) is used where it cannot be (with a held socket "
    "reference, or in a function that does not return int)",
    "read packet data with bpf_skb_load_bytes() instead",
    "6.12 selftests: BPF_LD_[ABS|IND] cannot be mixed with socket references",
)
rule(
    "tail_call_ref",
    r"program with __ref argument cannot tail call",
    "cannot tail call",
    ("6.12", None),
    "a struct_ops program that receives a reference (__ref) may not tail call",
    "release or return the reference instead of tail calling",
    "6.12 selftests: program with __ref argument cannot tail call",
)

rule(
    "struct_access",
    r"is (?:ptr_)?\w+ invalid negative access",
    "invalid negative access: off=%d",
    ("6.1", None),
    "the program reads before the start of a kernel object (a negative offset)",
    "read only fields of the object, at their offsets",
    "6.12 selftests: R1 is bpf_array invalid negative access: off=-8",
)
rule(
    "special_field_direct",
    r"(?P<field>\w+)? ?cannot be accessed directly(?: by load/store)?",
    "cannot be accessed directly by load/store",
    ("6.1", None),
    "the program reads or writes a {field} field with a plain load or store; it may be "
    "used only through its helpers or kfuncs",
    "use the field only through its API (bpf_spin_lock(), bpf_timer_*(), bpf_wq_*() ...)",
    "6.12 selftests: cannot be accessed directly",
)
rule(
    "pkt_helper",
    r"helper access to the packet",
    "helper access to the packet is not allowed",
    ("6.1", None),
    "a helper is given a packet pointer, which this program type may not pass to helpers",
    "copy the bytes with bpf_skb_load_bytes() into a stack buffer and pass that",
    "6.12 selftests: helper access to the packet",
)
rule(
    "map_mismatch",
    r"(?:\w+ pointer in R\d+ map_uid=\d+ )?doesn't match map pointer in R\d+",
    "doesn't match map pointer in",
    ("6.1", None),
    "the bpf_timer/bpf_wq (or kptr) argument lives in another map than the map argument "
    "of the same call",
    "pass the map whose value holds the timer/workqueue: bpf_wq_init(&v->wq, &map, 0) "
    "with v looked up in that map",
    "6.12 selftests: workqueue pointer in R1 map_uid=0 doesn't match map pointer in R2 map_uid=0",
)
rule(
    "global_func_return",
    r"Global function (?P<func>\w+)\(\) return value not void or scalar",
    "return value not void or scalar",
    ("7.3", None),
    "global function {func}() must return void or a scalar (int) type",
    "make it return int or void (or make it static)",
    "7.3 selftests: Global function exception_cb_bad_ret_type1() return value not void or scalar.",
)
rule(
    "global_func_args",
    r"reference type\('(?P<type>[^']+)'\) size cannot be determined",
    "size cannot be determined",
    ("6.1", None),
    "a global function takes a pointer to {type}, a type without a complete definition, "
    "so the verifier cannot check accesses through it",
    "include the struct's full definition (or pass void * with a size argument)",
    "6.12 selftests: reference type('FWD S') size cannot be determined",
)
rule(
    "kfunc_arg_fragment",
    r"kernel function (?P<kfunc>\w+) args#(?P<n>\d+)$",
    "kernel function %s args#%d expected pointer to",
    ("6.1", "6.12"),
    "argument {n} of {kfunc} is not the kind of pointer its prototype asks for",
    "pass the type the prototype names (`kfunc ls` shows it)",
    "6.1 selftests: kernel function bpf_kfunc_call_test_kptr_get args#0",
)
rule(
    "may_write_memory",
    r"(?P<func>\w+)\(\) may write into memory|^write into memory$",
    "may write into memory pointed by",
    ("6.12", None),
    "{func}() writes into the memory passed, and that memory is read-only",
    "pass writable memory (a stack buffer or a map value)",
    "7.3 selftests: write into memory",
)
rule(
    "arg_kind",
    r"(?P<got>\w+), but this argument accepts (?P<want>\w+)",
    "but this argument accepts",
    ("7.3", None),
    "the argument is {got} where the callee accepts {want}",
    "pass a {want} (check a NULL-able value first)",
    "7.3 selftests: map_ptr_or_null, but this argument accepts map_ptr",
    prose=True,
)
rule(
    "local_kptr_argument",
    r"(?:" + ARG + r" )?doesn't point to map value or allocated object|"
    r"^point to map value or allocated object",
    "doesn't point to map value or allocated object",
    ("7.3", None),
    "the argument must point into a map value or an object from bpf_obj_new(), and it does not",
    "pass &value->field of a map value, or of an object the program allocated",
    "7.3 selftests: point to map value or allocated object",
)
rule(
    "out_of_bounds",
    r"access may be outside object bounds",
    "access may be outside object bounds",
    ("7.3", None),
    "an access may fall outside the object the pointer points to",
    BOUNDS_FIX,
    "7.3 selftests: access may be outside object bounds",
    prose=True,
)
rule(
    "uninit_trap",
    r"unexpected __bpf_trap\(\) due to uninitialized variable",
    "unexpected __bpf_trap() due to uninitialized variable",
    ("7.3", None),
    "clang inserted a trap where the program uses an uninitialised variable",
    "initialise the variable on every path",
    "7.3 selftests: unexpected __bpf_trap() due to uninitialized variable?",
)
rule(
    "insn_array",
    r"Invalid read of \d+ bytes from insn_array|has type \w+, expected PTR_TO_INSN",
    "from insn_array",
    ("7.3", None),
    "an instruction-array map (jump table) is read other than as one 8-byte address, or "
    "an indirect jump uses something else",
    "read jump-table entries whole, as the compiler emits them",
    "7.3 selftests: Invalid read of 1 bytes from insn_array",
    prose=True,
)

rule(
    "attach_not_sleepable",
    r"(?P<func>\w+) is not sleepable$",
    "%s is not sleepable",
    ("6.1", None),
    "the program is sleepable (a .s section), but {func}, its attach target, is not a "
    "function a sleepable program may attach to: only error-injectable functions "
    "(ALLOW_ERROR_INJECTION, on kernels built with CONFIG_FUNCTION_ERROR_INJECTION) and "
    "LSM hooks are",
    'attach without ".s" (SEC("fentry/{func}")), or sleep from an LSM hook '
    '(SEC("lsm.s/...")) or a syscall program',
    "6.12 (Debian): __x64_sys_getpgid is not sleepable",
)

RULES: tuple[Rule, ...] = tuple(_RULES)
