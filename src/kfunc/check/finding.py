"""The one result type of every check: a :class:`Finding`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Finding"]


@dataclass(frozen=True)
class Finding:
    """One thing found: ``severity`` is ``error`` (it cannot work), ``warning`` (it
    may not work as meant) or ``note``; ``fix`` says what to do about it, and
    ``prog_type`` names the program type it concerns, where it concerns one."""

    severity: str
    message: str
    fix: str | None = None
    prog_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "message": self.message, "fix": self.fix}
