"""Version shims: what a generated module needs to build on every kernel from 6.1 on,
and the rules for what cannot be shimmed.

The kfunc API moved three times between 6.1 and 6.9 (``__bpf_kfunc``,
``__bpf_kfunc_start_defs()``, ``BTF_KFUNCS_START``: :mod:`kfunc.kernel_api.macros`
has each with its release); each has a fallback that older kernels understand.
Flags (:mod:`kfunc.kernel_api.flags`) are different: a flag a kernel lacks
changes what the verifier enforces, so a flag is shimmed only where the
fallback keeps calls working (KF_RCU: before it the verifier checks no pointer
provenance at all, and the kfunc must cope; KF_FASTCALL is a hint), with a
warning that says what is lost; the rest are an error on kernels without them.
Newer kernels drop flags too: once KF_TRUSTED_ARGS became the default for every
kfunc, it is defined as 0 (nothing is lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kfunc.kernel_api.flags import KF_FLAGS
from kfunc.kernel_api.hooks import PROG_TYPE_HOOK, kfunc_hook_missing
from kfunc.kernel_api.macros import KFUNC_API, KfuncApi
from kfunc.kernel_api.version import KernelVersion
from kfunc.spec import ModuleSpec

__all__ = [
    "API_SHIMS",
    "FLAG_SHIMS",
    "OLDEST",
    "Verdict",
    "api_missing",
    "api_shims",
    "compat_header",
    "flag_shims",
    "judge",
    "registration_guard",
]

#: The oldest kernel generated modules support.
OLDEST = KernelVersion(6, 1)


def api_shims(apis: Iterable[KfuncApi] = KFUNC_API) -> str:
    """``#ifndef`` fallbacks for ``apis``, each marked with its release."""
    out = ["/* The kfunc API as of 6.9, for older kernels. */\n"]
    for api in apis:
        out.append(f"#ifndef {api.names[0]}\t\t/* {api.since.series}: {api.added} */\n")
        out.append(api.fallback)
        out.append("#endif\n")
    return "".join(out)


#: The fallbacks a generated module carries.
API_SHIMS = api_shims()


def api_missing(used: Iterable[str], defined: Iterable[str]) -> list[KfuncApi]:
    """The kfunc API macros among ``used`` (identifiers of a module's sources) that
    ``defined`` (the target's headers' macros and the module's own) lacks."""
    used, defined = set(used), set(defined)
    return [a for a in KFUNC_API if set(a.names) & used and not set(a.names) & defined]


def compat_header(defined: Iterable[str] | None = None, kernel: str = "") -> str:
    """The shim header that lets a hand-written kfunc module build from 6.1 to 7.x:
    the API fallbacks, and the flags with a safe fallback (see FLAG_SHIMS) or that
    became the default (KF_TRUSTED_ARGS, 7.0). With ``defined`` (a target's header
    macros), only what that kernel lacks."""
    apis = (
        list(KFUNC_API)
        if defined is None
        else api_missing((n for a in KFUNC_API for n in a.names), defined)
    )
    where = f" for Linux {kernel}" if kernel else ", Linux 6.1 to 7.x"
    lines = [
        f"/* compat.h: the kfunc API{where}. Written by `kfunc compat`. */",
        "#ifndef KFUNC_COMPAT_H",
        "#define KFUNC_COMPAT_H",
        "#include <linux/btf.h>",
        "#include <linux/btf_ids.h>",
        "",
        "",
    ]
    body = api_shims(apis) if apis else ""
    names = {f.name for f in KF_FLAGS if f.default_since} | set(FLAG_SHIMS)
    flags = _flag_fallbacks(names - set(defined or ()))
    return "\n".join(lines) + body + "\n".join(flags) + ("\n" if flags else "") + "#endif\n"


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
    lines = _flag_fallbacks({f for k in spec.kfuncs for f in k.flags})
    return "\n".join(lines) + ("\n" if lines else "")


def _flag_fallbacks(used: set[str]) -> list[str]:
    """The ``#ifndef`` fallback lines of the flags among ``used`` that have one."""
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
            lines += [
                f"#ifndef {name}\t\t\t/* {_FLAGS[name].since}; before it, {fallback}: {why} */",
                f"#define {name} {fallback}",
                "#endif",
            ]
    return lines


def registration_guard(prog_type: str) -> KernelVersion | None:
    """The release from which registering kfuncs for ``prog_type`` works, if after OLDEST."""
    since = PROG_TYPE_HOOK[prog_type].since
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
