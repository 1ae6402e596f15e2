"""How much of the kernel's own verifier corpus `kfunc explain` recognises.

For each kernel series, the BPF selftests of Debian's linux-source package
(extracted once into kfunc's cache by kfunc.selftests) give the failure
programs of ``progs/*.c`` and the messages their tests expect the verifier to
print (``__msg``/``__msg_unpriv`` of ``__failure``/``__failure_unpriv``
programs, and the older ``prog_tests`` tables). Of those, the distinct
rejection messages (kfunc.verifier_corpus.is_rejection_message says which
texts are left out: instruction dumps, register states, source lines) are
each fed to kfunc's explain path as a one-line log; a message counts as
recognised when a rule explains it. Two selections: files whose name names a
kfunc feature (kfunc.verifier_corpus.KFUNC_FEATURE_WORDS), and all files.

    .venv/bin/python bench/explain_corpus.py [6.1 6.12 7.3] [--missed] [--json]

With ``--guest VER``, the failure programs of the kfunc-feature files that
#17.2 names (task/cgrp kfunc, cpumask, iters*, dynptr, verifier_kfunc*,
kfunc_call_fail with bpf_testmod inserted) are built with the newest clang here and each is
loaded alone in one boot of kernel VER: programs, rejected as expected (the
log holds every __msg), explained, wrongly explained (by a rule other than the
one that explains the __msg).

With ``--check VER``, ``kfunc check`` runs on the objects of every kfunc-feature
file (bpf_testmod's aside): failure programs it flags before loading, and
success programs it flags (false alarms).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kfunc.errors import KfuncError
from kfunc.selftests import selftests_tree
from kfunc.verifier_corpus import corpus_figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", nargs="*", default=["6.1", "6.12", "7.3"])
    parser.add_argument("--missed", action="store_true", help="list the messages not recognised")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--guest", metavar="VER", help="load the programs in kernel VER")
    parser.add_argument("--check", metavar="VER", help="run kfunc check against kernel VER")
    args = parser.parse_args()
    if args.guest:
        return _guest(args.guest)
    if args.check:
        return _check(args.check)
    rows = []
    for series in args.series:
        try:
            tree = selftests_tree(series)
        except KfuncError as exc:
            print(f"{series}: {exc}", file=sys.stderr)
            return 1
        rows.append(corpus_figures(series, tree.progs, tree.prog_tests))
    if args.json:
        out = [
            {
                "series": f.series,
                "failure_programs": f.programs,
                "failure_files": f.files,
                "kfunc_files": f.kfunc_files,
                **{
                    sel: {
                        "messages": len(c.messages),
                        "recognised": len(c.explained),
                        "share": round(c.share, 4),
                        **({"missed": list(c.missed)} if args.missed else {}),
                    }
                    for sel, c in (("kfunc", f.kfunc), ("all", f.all))
                },
            }
            for f in rows
        ]
        print(json.dumps(out, indent=1))
        return 0
    kf_head, all_head = "kfunc-feature files: recognised", "all failure files: recognised"
    print(f"{'kernel':7} {'failure programs':>16} {'files':>6}   {kf_head:>32}   {all_head:>30}")
    for f in rows:
        kf = f"{len(f.kfunc.explained)}/{len(f.kfunc.messages)} ({f.kfunc.share:.0%})"
        al = f"{len(f.all.explained)}/{len(f.all.messages)} ({f.all.share:.0%})"
        print(f"{f.series:7} {f.programs:>16} {f.files:>6}   {kf:>32}   {al:>30}")
    if args.missed:
        for f in rows:
            print(f"\n{f.series}: not recognised")
            for m in f.all.missed:
                kfunc = "K" if m in f.kfunc.messages else " "
                print(f"  {kfunc} {m}")
    return 0


GUEST_FILES = ("task_kfunc_failure.c", "cgrp_kfunc_failure.c", "cpumask_failure.c",
               "iters*.c", "dynptr_fail.c", "verifier_kfunc*.c")  # fmt: skip


def _prepared(version: str) -> Any:
    """The Debian kernel ``version`` as kfunc prepared it (its directory is named by its
    release; another record of the same release, such as an installed one, is skipped)."""
    from kfunc.kernels.target import cached_kernels, get_kernel

    prepared = [k for k in cached_kernels(version) if k.path.name == k.release]
    return prepared[0] if prepared else get_kernel(version)


def _check(version: str) -> int:
    import tempfile
    from pathlib import Path

    from kfunc.check import kernel_view
    from kfunc.kernels.facts import vmlinux_h
    from kfunc.selftests import build_testmod
    from kfunc.selftests_verify import check_corpus, compile_failure_files
    from kfunc.verifier_corpus import is_kfunc_feature_file, read_programs

    kernel = _prepared(version)
    tree = selftests_tree(kernel.version.series)
    names = sorted(p.name for p in tree.progs.glob("*.c") if is_kfunc_feature_file(p.name))
    programs = [p for n in names for p in read_programs(tree.progs / n)]
    files = sorted({p.file for p in programs if p.failure or p.success})
    testmod = build_testmod(kernel).ko  # some files call its kfuncs: check knows them
    with tempfile.TemporaryDirectory(prefix="kfunc-explain-check-") as tmp:
        built = compile_failure_files(tree.progs, files, vmlinux_h(kernel), Path(tmp))
        f = check_corpus(programs, built.objects, kernel_view(kernel, [testmod]))
    print(f"{kernel}: {len(built.objects)} files built ({len(built.failed)} not); failure "
          f"programs flagged before loading: {f.flagged}/{f.failures} "
          f"({f.flagged / max(f.failures, 1):.0%}) by {f.flagged_by}; false alarms on "
          f"success programs: {len(f.false_alarms)}/{f.successes}")  # fmt: skip
    for a in f.false_alarms:
        print(f"  false alarm: {a}")
    return 0


def _guest(version: str) -> int:
    import tempfile
    import time
    from pathlib import Path

    from kfunc.kernels.facts import vmlinux_h
    from kfunc.selftests import build_testmod
    from kfunc.selftests_verify import (
        NEEDS_TESTMOD,
        compile_failure_files,
        failure_programs,
        summarise,
        verify_in_guest,
    )

    kernel = _prepared(version)
    tree = selftests_tree(kernel.version.series)
    files = sorted({p.name for pat in GUEST_FILES for p in tree.progs.glob(pat)})
    files += [f for f in NEEDS_TESTMOD if (tree.progs / f).exists() and f not in files]
    testmod = build_testmod(kernel).ko
    with tempfile.TemporaryDirectory(prefix="kfunc-explain-guest-") as tmp:
        built = compile_failure_files(tree.progs, files, vmlinux_h(kernel), Path(tmp) / "obj")
        programs = failure_programs(tree.progs, files)
        start = time.monotonic()
        verdicts = verify_in_guest(
            kernel, programs, built.objects, Path(tmp), timeout=3600, modules=(testmod,)
        )
        took = time.monotonic() - start
    print(f"{kernel}: {summarise(verdicts)} in one boot, {took:.0f} s")
    print(f"  files: {len(files)} (with bpf_testmod inserted); not compiled: "
          f"{built.failed or 'none'}")  # fmt: skip
    for v in verdicts:
        if not v.as_expected or v.rule is None or v.wrong:
            print(f"  {v.program.file}:{v.program.name}: expected={v.as_expected} "
                  f"rule={v.rule} want={sorted(v.expected_rules)} line={v.line!r} "
                  f"{v.message[:80]!r}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
