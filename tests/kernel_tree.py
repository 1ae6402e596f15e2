"""A small kernel build tree for the ``--kernel PATH`` tests, built once into kfunc's cache.

Debian's ``linux-source-6.12`` tarball, configured from ``tinyconfig`` plus
``tests/data/tree/kfunc.config`` (modules, BPF with vmlinux and module BTF,
kprobes, tracefs, and what virtme-ng needs to boot it), built with ``make
bzImage modules`` at low priority. The result is a tree as a kernel developer
has one: ``arch/x86/boot/bzImage``, ``vmlinux``, ``Module.symvers``,
``.config``, ``modules.order``.

Run as a script (``make test-tree``) it builds the tree and prints where it is
and how long the build took; the tests use :func:`kernel_tree`, which returns
the cached tree or None (never builds inside a test run).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from kfunc.cache import cache_dir

SERIES = "6.12"
FRAGMENT = Path(__file__).parent / "data" / "tree" / "kfunc.config"
_DONE = ".kfunc-tree-built"


def tree_dir() -> Path:
    """Where the tree lives in kfunc's cache."""
    return cache_dir("trees") / f"linux-{SERIES}"


def _fragment_digest() -> str:
    return hashlib.sha256(FRAGMENT.read_bytes()).hexdigest()[:12]


def _built(tree: Path) -> dict[str, object] | None:
    """The record of the tree's last build, if it was of the current fragment."""
    try:
        record = json.loads((tree / _DONE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("fragment") != _fragment_digest():
        return None
    return record


def kernel_tree() -> Path | None:
    """The built tree, or None when ``make test-tree`` has not built it (for the
    current fragment) yet."""
    tree = tree_dir()
    return tree if _built(tree) else None


def _unpack(deb: Path, dest: Path) -> None:
    """Debian's source tarball, unpacked as ``dest`` (its top directory renamed)."""
    tmp = dest.with_name(dest.name + ".unpack")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "deb")], check=True)
    tarball = next((tmp / "deb" / "usr" / "src").glob("linux-source-*.tar.*"))
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(tmp)], check=True)
    top = next(tmp.glob("linux-source-*/"))
    top.rename(dest)
    shutil.rmtree(tmp)


def build_tree(jobs: int = 2) -> tuple[Path, float]:
    """Build (or reuse) the tree; returns it and the seconds this call spent
    building. A changed fragment reconfigures the tree and builds again what
    the change touches (kbuild's own dependency tracking)."""
    from kfunc.survey.debian import fetch_source_package

    tree = tree_dir()
    with (tree.parent / f".{tree.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _built(tree):
            return tree, 0.0
        start = time.monotonic()
        if not (tree / "Makefile").exists():
            shutil.rmtree(tree, ignore_errors=True)
            _unpack(fetch_source_package(SERIES), tree)
        nice = ["nice", "-n", "10"]
        make = [*nice, "make", "-C", str(tree), f"-j{jobs}"]
        subprocess.run([*make, "tinyconfig"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [*nice, str(tree / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(tree),
             str(tree / ".config"), str(FRAGMENT)],
            cwd=tree, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        subprocess.run([*make, "olddefconfig"], check=True, stdout=subprocess.DEVNULL)
        _check_config(tree)
        subprocess.run([*make, "bzImage", "modules"], check=True)
        seconds = time.monotonic() - start
        record = {"fragment": _fragment_digest(), "seconds": round(seconds)}
        (tree / _DONE).write_text(json.dumps(record) + "\n")
        return tree, seconds


def _check_config(tree: Path) -> None:
    """Every option the fragment asks for made it into .config (Kconfig drops
    the ones whose dependencies are unmet, silently)."""
    have = set((tree / ".config").read_text().splitlines())
    wanted = [line for line in FRAGMENT.read_text().splitlines() if line.startswith("CONFIG_")]
    lost = [w for w in wanted if w not in have and not w.endswith("=n")]
    if lost:
        raise SystemExit(f"{tree}/.config lacks {', '.join(lost)}: fix {FRAGMENT}")


if __name__ == "__main__":
    built, seconds = build_tree(int(os.environ.get("JOBS", "2")))
    print(f"{built}: built in {seconds:.0f} s" if seconds else f"{built}: already built")
    sys.exit(0)
