"""Write one API reference page per module of the kfunc package (run by mkdocs-gen-files).

The pages are found by walking ``src/kfunc`` at build time, so a module that is
added, renamed or turned into a package shows up in the reference without an
edit to ``mkdocs.yml``. Private modules (``_name.py``) and ``__main__`` are
left out; a package's page is its ``__init__``.
"""

from pathlib import Path

import mkdocs_gen_files

SRC = Path(__file__).resolve().parents[2] / "src"

nav = mkdocs_gen_files.Nav()
for path in sorted((SRC / "kfunc").rglob("*.py")):
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    elif parts[-1].startswith("_"):
        continue
    if any(part.startswith("_") for part in parts):
        continue
    doc_path = Path("reference", *parts).with_suffix(".md")
    if path.name == "__init__.py":
        doc_path = Path("reference", *parts, "index.md")
    nav[tuple(parts)] = Path(*doc_path.parts[1:]).as_posix()
    with mkdocs_gen_files.open(doc_path, "w") as page:
        page.write(f"::: {'.'.join(parts)}\n")
    mkdocs_gen_files.set_edit_path(doc_path, path.relative_to(SRC.parent))

with mkdocs_gen_files.open("reference/SUMMARY.md", "w") as summary:
    summary.writelines(nav.build_literate_nav())
