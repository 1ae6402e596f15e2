"""The exception tree of kfunc.

Every failure a user can cause is a :class:`KfuncError`. Each one carries a
one-line ``message`` that names the object it concerns and what went wrong,
and a ``fix`` that says what to do about it. The CLI is the only place that
prints them and exits; the library only raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfunc.check.finding import Finding
    from kfunc.verifier import Explanation

__all__ = [
    "BTFError",
    "BuildError",
    "CheckError",
    "ELFError",
    "GuestError",
    "GuestPanicError",
    "KernelNotFoundError",
    "KfuncError",
    "LibbpfError",
    "LostVMError",
    "MissingToolError",
    "RunError",
    "SpecError",
    "UnsupportedFeatureError",
    "VerifierError",
]


class KfuncError(Exception):
    """Base of every error kfunc reports to a user."""

    #: The fix of an error of this class raised without one.
    default_fix: str | None = None

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix or self.default_fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message} (fix: {self.fix})"
        return self.message


class MissingToolError(KfuncError):
    """A program kfunc needs (clang, qemu, pahole ...) is not installed."""

    def __init__(self, tool: str, package: str) -> None:
        super().__init__(
            f"{tool}: not found on PATH",
            f"install it: apt-get install {package} (or run `make deps`)",
        )
        self.tool = tool
        self.package = package


class SpecError(KfuncError):
    """A kfunc.toml, or a spec made in Python, that cannot be used: names the key and the fix."""


class KernelNotFoundError(KfuncError):
    """A kernel named by the user is unknown or its packages are not available."""


class UnsupportedFeatureError(KfuncError):
    """The target kernel lacks a feature; prints like cilium/ebpf's error of that name."""

    def __init__(self, name: str, minimum_version: str, kernel: str, fix: str | None) -> None:
        super().__init__(
            f"{name} not supported by kernel {kernel} (requires >= {minimum_version})", fix
        )
        self.name = name
        self.minimum_version = minimum_version
        self.kernel = kernel


class BTFError(KfuncError):
    """Malformed or unexpected BTF; ``offset`` is the byte offset in the blob, if known.
    ``offset`` and ``fix`` are keyword-only: a fix passed where the offset goes
    once crashed the message's formatting."""

    default_fix = (
        "pass intact BTF: /sys/kernel/btf/*, a .BTF section dump, or an ELF file with .BTF"
    )

    def __init__(self, message: str, *, offset: int | None = None, fix: str | None = None) -> None:
        if offset is not None:
            message = f"{message} (at offset {offset:#x})"
        super().__init__(message, fix)
        self.offset = offset


class ELFError(KfuncError):
    """Malformed ELF, or an ELF file without the sections kfunc needs."""

    default_fix = "pass an intact ELF file: a .ko, a vmlinux or a BPF object"


class BuildError(KfuncError):
    """kbuild or clang failed; ``log`` keeps the compiler's full output."""

    def __init__(self, message: str, log: str = "", fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.log = log


class CheckError(KfuncError):
    """A BPF object or module cannot work on the target kernel, found before loading it.

    ``findings`` keeps every problem with its own fix; the message joins their
    messages, the fix each distinct fix once.
    """

    def __init__(self, findings: Sequence[Finding]) -> None:
        fixes = dict.fromkeys(f.fix for f in findings if f.fix)
        super().__init__("; ".join(f.message for f in findings), "; ".join(fixes) or None)
        self.findings = list(findings)

    @property
    def problems(self) -> list[str]:
        """The message of each problem."""
        return [f.message for f in self.findings]


class LibbpfError(KfuncError):
    """A libbpf call failed; ``errno`` is the positive error number, ``log`` the verifier log."""

    def __init__(self, message: str, errno: int = 0, log: str = "", fix: str | None = None) -> None:
        super().__init__(message, fix)
        self.errno = errno
        self.log = log


class VerifierError(LibbpfError):
    """The kernel refused to load a program: its verifier, or the checks before it.

    ``program`` names the program, ``log`` keeps the verifier's whole log and
    ``errno`` the error of the load; ``explanation`` is kfunc's reading of the
    log (a :class:`kfunc.verifier.Explanation`), None where none was made or no
    rule matched (see :func:`kfunc.verifier.verifier_error`).
    """

    def __init__(
        self,
        message: str,
        errno: int = 0,
        log: str = "",
        fix: str | None = None,
        *,
        program: str | None = None,
        explanation: Explanation | None = None,
    ) -> None:
        super().__init__(message, errno, log, fix)
        self.program = program
        self.explanation = explanation


class GuestError(KfuncError):
    """A step inside the guest failed; ``kernel_log`` holds the guest's last kernel lines."""

    def __init__(
        self, message: str, kernel_log: list[str] | None = None, fix: str | None = None
    ) -> None:
        super().__init__(message, fix)
        self.kernel_log = kernel_log or []

    def __str__(self) -> str:
        # The CLI shows the lines itself; a traceback or a test report gets them here.
        tail = "".join(f"\n    {line}" for line in self.kernel_log[-15:])
        return super().__str__() + (f"\n  the guest's last lines:{tail}" if tail else "")


class LostVMError(GuestError):
    """The VM died, hung or timed out without reporting its status.

    It may be the machine's fault (a loaded host, a TCG hiccup): the test
    suite reruns a test that raised it once. A guest whose kernel panicked
    raises :class:`GuestPanicError` instead.
    """


class GuestPanicError(GuestError):
    """The guest's kernel panicked (or oopsed): deterministic, so never worth a rerun.

    ``kernel_log`` holds the lines around the panic; a module's init or exit
    is the usual cause.
    """


class RunError(KfuncError):
    """A run finished but did not show what it was meant to (no result, dirty unload)."""
