"""``kfunc new NAME``: start a kfunc project."""

from __future__ import annotations

import argparse
from typing import Any

from kfunc.scaffold import DEFAULT_KERNELS, scaffold

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "new",
        help="start a project: a kfunc module spec, a BPF program and a Python test",
        description="Create NAME/ with kfunc.toml (the module's kfuncs), NAME.bpf.c (a program "
        "that calls them) and test_NAME.py (a pytest test that runs them in a real kernel).",
    )
    p.add_argument("name", help="the module's name (a C identifier)")
    p.add_argument(
        "--kernels", default=",".join(DEFAULT_KERNELS),
        help="the test matrix: kernels for `kfunc test` and the CI workflow's jobs "
        f"(default: {','.join(DEFAULT_KERNELS)})",
    )  # fmt: skip
    p.set_defaults(func=_new)


def _new(args: argparse.Namespace) -> int:
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    path = scaffold(args.name, kernels=kernels)
    print(
        f"created {path}/: kfunc.toml, {args.name}.bpf.c, test_{args.name}.py, "
        ".github/workflows/kfunc.yml"
    )
    print(f"next: kfunc build {path}  (module + header), kfunc test {path}  (its tests, in VMs)")
    return 0
