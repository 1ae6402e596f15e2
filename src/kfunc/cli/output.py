"""How the CLI shows progress and errors: rich on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from kfunc.errors import GuestError, KfuncError
from kfunc.progress import Progress

__all__ = ["ConsoleProgress", "one_line", "print_error"]

# soft_wrap: a one-line error stays one line, whatever the terminal width.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class ConsoleProgress(Progress):
    """Draws each step as a spinner with its latest detail, then one line when it ends."""

    def __init__(self, console: Console = err_console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self._stack: list[tuple[str, float, Status | None]] = []

    def begin(self, title: str) -> None:
        status = None
        if not self.quiet and self.console.is_terminal:
            if self._stack and self._stack[-1][2] is not None:
                self._stack[-1][2].stop()
            status = self.console.status(escape(title))
            status.start()
        self._stack.append((title, time.monotonic(), status))

    def update(self, detail: str) -> None:
        if self._stack and self._stack[-1][2] is not None:
            title = self._stack[-1][0]
            self._stack[-1][2].update(f"{escape(title)} [dim]{escape(detail[:110])}[/]")

    def end(self, summary: str | None = None, *, ok: bool = True) -> None:
        title, start, status = self._stack.pop()
        if status is not None:
            status.stop()
        if self.quiet:
            return
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        took = time.monotonic() - start
        text = escape(summary or title)
        self.console.print(f"{mark} {text} [dim]({took:.1f} s)[/]")
        if self._stack and self._stack[-1][2] is not None:
            self._stack[-1][2].start()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]![/] {escape(text)}")


#: Control characters (a file name may hold a newline or a terminal escape)
#: shown escaped, so that an error stays one line and cannot drive the terminal.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x09: "\\t"}


def one_line(text: str) -> str:
    """``text`` with its control characters escaped: one line, inert on a terminal."""
    return text.translate(_CONTROL)


def print_error(exc: KfuncError, console: Console = err_console) -> None:
    """One line with the cause, one with the fix, and the guest's last kernel lines."""
    if isinstance(exc, GuestError) and exc.kernel_log:
        console.print("[dim]last kernel log lines:[/]")
        for line in exc.kernel_log[-15:]:
            console.print(f"  [dim]{escape(line)}[/]")
    console.print(f"[bold red]error:[/] {escape(one_line(exc.message))}")
    if exc.fix:
        console.print(f"[bold]fix:[/] {escape(one_line(exc.fix))}")
    sys.stderr.flush()
