"""A change to the kernel's API: the release that first shipped it and the upstream commit."""

from __future__ import annotations

from dataclasses import dataclass

from kfunc.kernel_api.version import KernelVersion

__all__ = ["Change"]


@dataclass(frozen=True)
class Change:
    """What brought a fact of the API: the first ``release`` with it, and the
    upstream commit: ``commit``, its abbreviated hash, and ``title``, its subject
    line. Where the commit is not known, ``commit`` is None and ``title`` says
    where the fact was read instead."""

    release: KernelVersion
    title: str
    commit: str | None = None

    def __str__(self) -> str:
        """``57e7c169cd6a bpf: Add __bpf_kfunc tag ...``, as ``git log --oneline`` shows it."""
        return f"{self.commit} {self.title}" if self.commit else self.title

    def cited(self) -> str:
        """``commit e50aae1d39ac, "title"``: the change as a sentence cites it."""
        return f'commit {self.commit}, "{self.title}"' if self.commit else f'"{self.title}"'
