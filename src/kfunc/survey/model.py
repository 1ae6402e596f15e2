"""What a survey finds: per release, the helpers and kfuncs of its sources; over
history, the date each name first appeared."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FirstSeen", "ReleaseCount", "Survey"]


@dataclass
class ReleaseCount:
    """The helpers and kfuncs of one kernel tree (a release tag, a tarball ...)."""

    release: str  # "v6.12", "6.12.117", a directory's name
    date: dt.date | None
    helpers: list[str]
    kfuncs: dict[str, str]  # name -> file that declares its set
    source: str  # where it was read: a path, "git:<sha>"
    date_source: str = ""  # how the date is known
    # Registered with the same macros but not counted (test_run.c, fmodret sets).
    not_counted: dict[str, str] = field(default_factory=dict)

    @property
    def n_helpers(self) -> int:
        return len(self.helpers)

    @property
    def n_kfuncs(self) -> int:
        return len(self.kfuncs)

    def to_dict(self, names: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "release": self.release,
            "date": self.date.isoformat() if self.date else None,
            "date_source": self.date_source,
            "helpers": self.n_helpers,
            "kfuncs": self.n_kfuncs,
            "source": self.source,
        }
        if names:
            d["helper_names"] = self.helpers
            d["kfunc_names"] = dict(sorted(self.kfuncs.items()))
        return d


@dataclass(frozen=True)
class FirstSeen:
    """The first commit (on the first-parent history) whose tree has ``name``."""

    name: str
    kind: str  # "helper" or "kfunc"
    date: dt.datetime
    commit: str

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "date": self.date.isoformat(),
            "commit": self.commit,
        }


@dataclass
class Survey:
    releases: list[ReleaseCount] = field(default_factory=list)
    first_seen: list[FirstSeen] = field(default_factory=list)
    # Counts on built kernels (kfunc.survey.built.BuiltCount), beside the sources'.
    built: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "releases": [r.to_dict() for r in self.releases],
            "first_seen": [f.to_dict() for f in self.first_seen],
            "built": [b.to_dict() for b in self.built],
        }
