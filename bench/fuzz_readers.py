"""A longer fuzz run of the BTF and ELF readers than the test suite's.

Mutates real inputs — a BPF object built from examples/refobj (its ELF and
its standalone .BTF) and the hello module built for 6.12 — with random byte
and word edits and truncations, for a fixed time, and counts the cases and
the crashes: any exception other than kfunc's own errors (BTFError, ELFError
...), which must be 0. A fixed seed makes a run repeatable.

    python bench/fuzz_readers.py [--seconds 120] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import traceback
from pathlib import Path

from kfunc.btf import BTF, Datasec, DeclTag, Var, parse_btf
from kfunc.btf.render import declaration
from kfunc.build import build_project
from kfunc.check import read_bpf_object
from kfunc.elf import ElfObject
from kfunc.errors import KfuncError
from kfunc.kernels.target import get_kernel
from kfunc.project import Project

ROOT = Path(__file__).resolve().parent.parent
EDGE = [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFF, 0x0D000000, 0x04FFFF00]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out))
        if rng.random() < 0.3 and at + 4 <= len(out):
            out[at & ~3 : (at & ~3) + 4] = rng.choice(EDGE).to_bytes(4, "little")
        else:
            out[at] = rng.randrange(256)
    if rng.random() < 0.2:
        del out[rng.randrange(len(out)) :]
    return bytes(out)


def exercise_btf(data: bytes) -> None:
    """Parse validating up front, then lazily (each record checked when read, as
    ``kfunc ls`` does), and render every type either way."""
    refused: KfuncError | None = None
    for validate in (True, False):
        try:
            btf = parse_btf(data, validate=validate)
            btf.funcs("bpf_kfunc")
            for typ in btf.types():
                if not isinstance(typ, DeclTag | Var | Datasec):  # no C declaration
                    declaration(btf, typ.id, "x")
        except KfuncError as exc:
            refused = exc
    if refused is not None:
        raise refused


def exercise_elf(path: Path, base: BTF | None) -> None:
    """Every reader of the file, each on its own: one refusal does not hide the others."""
    refused: KfuncError | None = None
    readers = [
        lambda: ElfObject(path).btf(base),
        lambda: list(ElfObject(path).btf(base, validate=False).types()),
        lambda: ElfObject(path).btf_id_sets(),
        lambda: read_bpf_object(path) if base is None else None,
    ]
    for read in readers:
        try:
            read()
        except KfuncError as exc:
            refused = exc
    if refused is not None:
        raise refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    kernel = get_kernel("6.12")
    refobj = build_project(Project.load(ROOT / "examples/refobj"), kernel)
    hello = build_project(Project.load(ROOT / "examples/hello"), kernel)
    assert hello.module is not None
    bpf_obj = refobj.objects[0].read_bytes()
    vmlinux = ElfObject(kernel.vmlinux).btf()
    inputs = {
        "btf (BPF object's .BTF)": ("btf", ElfObject(refobj.objects[0]).section(".BTF"), None),
        "elf (BPF object)": ("elf", bpf_obj, None),
        "elf (module .ko)": ("elf", hello.module.ko.read_bytes(), vmlinux),
    }
    rng = random.Random(args.seed)
    cases = dict.fromkeys(inputs, 0)
    rejected = dict.fromkeys(inputs, 0)
    crashes: list[str] = []
    deadline = time.monotonic() + args.seconds
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        while time.monotonic() < deadline:
            name = rng.choice(list(inputs))
            kind, seed, base = inputs[name]
            data = mutate(seed, rng)
            cases[name] += 1
            try:
                if kind == "btf":
                    exercise_btf(data)
                else:
                    path.write_bytes(data)
                    exercise_elf(path, base)
            except KfuncError:
                rejected[name] += 1
            except Exception:
                crashes.append(f"{name}: {traceback.format_exc(limit=3)}")
    print(f"fuzzed for {args.seconds:.0f} s, seed {args.seed}")
    print(f"{'input':<26} {'cases':>7} {'rejected':>9}")
    for name in inputs:
        print(f"{name:<26} {cases[name]:>7} {rejected[name]:>9}")
    print(f"crashes: {len(crashes)}")
    for crash in crashes[:5]:
        print(crash)
    raise SystemExit(1 if crashes else 0)


if __name__ == "__main__":
    main()
