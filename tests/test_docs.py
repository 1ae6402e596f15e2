"""The README's links into docs/ and bench/: each exists, and each guide is reachable from it.

``make docs`` checks the links between the pages of docs/ (mkdocs --strict);
the README is outside that site, so its links are checked here.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_links_exist_and_reach_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = {
        m.split("#", 1)[0]
        for m in re.findall(r"\]\(([^)\s]+)\)", readme)
        if not re.match(r"[a-z]+:", m)
    }
    missing = sorted(t for t in targets if not (ROOT / t).exists())
    assert not missing, f"README links to missing files: {missing}"
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} - {"docs/index.md"}
    assert pages <= targets, f"docs pages the README does not link: {sorted(pages - targets)}"
    for section in ("## Two commands", "## A short tour", "## Limits"):
        assert section in readme
