"""Writing a survey as CSV and JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from kfunc.outputs import open_output, write_output
from kfunc.survey.model import Survey

__all__ = ["RELEASE_COLUMNS", "first_seen_csv_path", "write_csv", "write_json"]

RELEASE_COLUMNS = ("release", "date", "date_source", "helpers", "kfuncs", "source")


def first_seen_csv_path(path: Path) -> Path:
    """Where the first appearances go beside a releases CSV: ``x.csv`` -> ``x-first-seen.csv``."""
    return path.with_name(f"{path.stem}-first-seen{path.suffix or '.csv'}")


def write_csv(survey: Survey, path: str | Path) -> list[Path]:
    """One row per release in ``path``; with first appearances, one row per name
    in ``<stem>-first-seen.csv`` beside it. Returns the files written."""
    path = Path(path)
    written = [path]
    with open_output(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(RELEASE_COLUMNS)
        for r in survey.releases:
            d = r.to_dict(names=False)
            w.writerow([d[c] if d[c] is not None else "" for c in RELEASE_COLUMNS])
    if survey.first_seen:
        extra = first_seen_csv_path(path)
        with open_output(extra, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("date", "kind", "name", "commit"))
            for s in sorted(survey.first_seen, key=lambda s: (s.date, s.kind, s.name)):
                w.writerow((s.date.isoformat(), s.kind, s.name, s.commit))
        written.append(extra)
    return written


def write_json(survey: Survey, path: str | Path) -> Path:
    """The whole survey, names included, as one JSON document."""
    path = Path(path)
    write_output(path, json.dumps(survey.to_dict(), indent=2) + "\n")
    return path
