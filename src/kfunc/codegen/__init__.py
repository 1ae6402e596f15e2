"""Code generation: a module spec becomes a kernel module source tree and a BPF header."""

from __future__ import annotations

from pathlib import Path

from kfunc.codegen.header import render_bpf_header, render_bpf_header_from_btf
from kfunc.codegen.module import render_kbuild, render_module
from kfunc.codegen.shims import Verdict, judge
from kfunc.spec import ModuleSpec

__all__ = [
    "Verdict",
    "generate",
    "judge",
    "render_bpf_header",
    "render_bpf_header_from_btf",
    "render_kbuild",
    "render_module",
    "write_if_changed",
]


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless the file already holds it (keeps mtimes for the build caches)."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def generate(spec: ModuleSpec, out_dir: Path) -> Path:
    """Write the module source, its Kbuild and the BPF header into ``out_dir``."""
    write_if_changed(out_dir / f"{spec.name}.c", render_module(spec))
    write_if_changed(out_dir / "Kbuild", render_kbuild(spec))
    write_if_changed(out_dir / f"{spec.name}_kfuncs.h", render_bpf_header(spec))
    return out_dir
