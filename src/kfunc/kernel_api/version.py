"""Kernel version numbers, ordered, and parsed from the places they appear."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KernelVersion"]

_VERSION_RE = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, order=True)
class KernelVersion:
    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> KernelVersion:
        """Parse the leading ``X.Y[.Z]`` of a release or package version string."""
        m = _VERSION_RE.match(text.strip().lstrip("v"))
        if not m:
            raise ValueError(f"not a kernel version: {text!r}")
        return cls(int(m[1]), int(m[2]), int(m[3] or 0))

    @property
    def series(self) -> str:
        return f"{self.major}.{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"
