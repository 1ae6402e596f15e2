"""How long steps report progress without the library printing anything.

The library calls a :class:`Progress`; the CLI passes one that draws with
rich, tests pass the silent default or one that records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Progress", "Step"]


class Progress:
    """Receives the steps of a long operation. The base class ignores them."""

    def begin(self, title: str) -> None:
        """A step starts."""

    def update(self, detail: str) -> None:
        """The running step made progress (a line of output, a byte count ...)."""

    def end(self, summary: str | None = None, *, ok: bool = True) -> None:
        """The running step ended."""

    def note(self, text: str) -> None:
        """Something worth telling outside any step (a warning, a skipped step)."""

    @contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """Run a block as one step; it ends as failed if the block raises.

        The block may set ``summary`` on the yielded step to say how it ended.
        """
        step = Step(self)
        self.begin(title)
        try:
            yield step
        except BaseException:
            self.end(step.summary, ok=False)
            raise
        self.end(step.summary)


class Step:
    """A running step: ``update()`` reports progress, ``summary`` its outcome."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.summary: str | None = None

    def update(self, detail: str) -> None:
        self.progress.update(detail)
