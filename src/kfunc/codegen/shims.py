"""Version shims: what a generated module needs to build on every kernel from 6.1 on,
and the rules for what cannot be shimmed.

The kfunc API moved three times between 6.1 and 6.9 (``__bpf_kfunc`` in 6.3,
``__bpf_kfunc_start_defs()`` in 6.7, ``BTF_KFUNCS_START`` in 6.9); each has a
fallback that older kernels understand. Flags are different: a flag a kernel
lacks changes what the verifier enforces, so a flag is shimmed only where the
fallback keeps calls working (KF_RCU: before 6.2 the verifier checks no
pointer provenance at all, and the kfunc must cope; KF_FASTCALL is a hint),
with a warning that says what is lost; the rest are an error on kernels
without them. Newer kernels drop flags too: 7.0 made KF_TRUSTED_ARGS the
default for every kfunc, so from 7.0 on it is defined as 0 (nothing is lost).
"""

from __future__ import annotations

from dataclasses import dataclass

from kfunc.history import PROG_TYPE_HOOK, kfunc_hook_missing
from kfunc.kernels.version import KernelVersion
from kfunc.kf_flags import KF_FLAGS
from kfunc.spec import ModuleSpec

__all__ = [
    "API_SHIMS",
    "FLAG_SHIMS",
    "OLDEST",
    "Verdict",
    "flag_shims",
    "judge",
    "registration_guard",
]

#: The oldest kernel generated modules support.
OLDEST = KernelVersion(6, 1)

#: The kfunc API macros, the release that brought each, and its fallback.
API_SHIMS = """\
/* The kfunc API as of 6.9, for older kernels. */
#ifndef __bpf_kfunc\t\t\t/* 6.3 */
#define __bpf_kfunc __used noinline
#endif
#ifndef __bpf_kfunc_start_defs\t\t/* 6.7 */
#define __bpf_kfunc_start_defs()\t\t\t\t\t\\
\t__diag_push();\t\t\t\t\t\t\t\\
\t__diag_ignore_all("-Wmissing-prototypes",\t\t\t\\
\t\t\t  "Global kfuncs as their definitions will be in BTF")
#define __bpf_kfunc_end_defs() __diag_pop()
#endif
#ifndef BTF_KFUNCS_START\t\t/* 6.9 */
#define BTF_KFUNCS_START(name) BTF_SET8_START(name)
#define BTF_KFUNCS_END(name) BTF_SET8_END(name)
#endif
"""

#: Flags newer than OLDEST that have a safe fallback: (fallback, why).
FLAG_SHIMS: dict[str, tuple[str, str]] = {
    "KF_RCU": ("0", "the verifier does not check that the pointer is RCU-protected or trusted"),
    "KF_FASTCALL": ("0", "a hint to the JIT; calls work without it"),
}

_FLAGS = {f.name: f for f in KF_FLAGS}


@dataclass
class Verdict:
    """What building ``spec`` for one kernel means: warnings to show, errors that stop it."""

    warnings: list[str]
    errors: list[tuple[str, str]]  # (message, fix)


def flag_shims(spec: ModuleSpec) -> str:
    """``#ifndef`` fallbacks for the shimmable flags the spec uses: older kernels'
    missing flags (FLAG_SHIMS), and flags newer kernels dropped because their
    behaviour became the default (KF_TRUSTED_ARGS, 7.0)."""
    used = {f for k in spec.kfuncs for f in k.flags}
    lines = []
    for flag in KF_FLAGS:
        if flag.default_since and flag.name in used:
            lines += [
                f"#ifndef {flag.name}\t\t/* {flag.default_since}: the default for every kfunc */",
                f"#define {flag.name} 0",
                "#endif",
            ]
    for name, (fallback, why) in FLAG_SHIMS.items():
        if name in used:
            since = _FLAGS[name].since
            lines += [
                f"#ifndef {name}\t\t\t/* {since}; before it, {fallback}: {why} */",
                f"#define {name} {fallback}",
                "#endif",
            ]
    return "\n".join(lines) + ("\n" if lines else "")


def registration_guard(prog_type: str) -> KernelVersion | None:
    """The release from which registering kfuncs for ``prog_type`` works, if after OLDEST."""
    since = PROG_TYPE_HOOK[prog_type][1]
    return since if since is not None and since > OLDEST else None


def judge(spec: ModuleSpec, version: KernelVersion, hooks: set[str] | None) -> Verdict:
    """Apply the rules for building ``spec`` against a kernel of ``version``."""
    verdict = Verdict([], [])
    for k in spec.kfuncs:
        for name in k.flags:
            flag = _FLAGS[name]
            since = KernelVersion.parse(flag.since)
            if flag.removed and version >= KernelVersion.parse(flag.removed):
                verdict.errors.append(
                    (
                        f"kfunc {k.name}: {name} was removed in {flag.removed} (target {version})",
                        f"drop {name}",
                    )
                )
            elif version < since:
                if name in FLAG_SHIMS:
                    fallback, why = FLAG_SHIMS[name]
                    verdict.warnings.append(
                        f"kfunc {k.name}: {name} arrived in {flag.since}; on {version} it is "
                        f"{fallback} ({why})"
                    )
                else:
                    verdict.errors.append(
                        (
                            f"kfunc {k.name}: {name} arrived in {flag.since}, target is {version}",
                            f"target a kernel >= {flag.since}, or drop {name}",
                        )
                    )
    for set_name, prog_types, kfuncs in spec.sets():
        missing = {t: kfunc_hook_missing(t, version, hooks) for t in prog_types}
        refused = {t: why for t, why in missing.items() if why}
        if refused and len(refused) == len(prog_types):
            t, why = next(iter(refused.items()))
            verdict.errors.append(
                (
                    f"kfunc set {set_name} ({', '.join(k.name for k in kfuncs)}): {why}",
                    "register the set for a program type this kernel has, e.g. tracing",
                )
            )
        else:
            for t, why in refused.items():
                verdict.warnings.append(f"{set_name}: not registered for {t} here: {why}")
    return verdict
