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
"""

from __future__ import annotations

import argparse
import json
import sys

from kfunc.errors import KfuncError
from kfunc.selftests import selftests_tree
from kfunc.verifier_corpus import corpus_figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("series", nargs="*", default=["6.1", "6.12", "7.3"])
    parser.add_argument("--missed", action="store_true", help="list the messages not recognised")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
