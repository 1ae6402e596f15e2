"""BPF objects, programs, links and maps over libbpf, with Python lifetimes.

Every failure raises :class:`~kfunc.errors.LibbpfError` whose message begins
with the object it concerns, as libbpf's own do
(``prog 'handle': BPF program load failed: Permission denied``), and which
keeps the positive ``errno`` and, for a rejected program, the verifier log.

libbpf's print callback goes to the ``kfunc.libbpf`` logger. While a call
whose failure becomes an exception runs, libbpf's messages are held back: on
success they are logged at their own level, on failure at DEBUG only, since
the exception already carries them.
"""

from __future__ import annotations

import ctypes
import errno as errnos
import logging
import mmap
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kfunc.errors import LibbpfError, VerifierError
from kfunc.libbpf import _ctypes as lib

__all__ = [
    "DEFAULT_LOG_SIZE",
    "BpfObject",
    "Link",
    "Map",
    "Program",
    "RunResult",
    "prog_type_by_section",
]

#: Bytes of verifier log kept per program. Too small a buffer makes the kernel
#: fail the load with ENOSPC (before 6.4) or drop the log's head (since).
#: The buffers are anonymous mappings: pages cost memory only once written.
DEFAULT_LOG_SIZE = 8 << 20

_logger = logging.getLogger("kfunc.libbpf")
_LEVELS = {
    lib.LIBBPF_WARN: logging.WARNING,
    lib.LIBBPF_INFO: logging.INFO,
    lib.LIBBPF_DEBUG: logging.DEBUG,
}
# libbpf's prefix on every message; the logger's name says it instead.
_PREFIX = "libbpf: "
_PROG_MESSAGE = re.compile(r"prog '([^']+)': ")
# libbpf's word (bpf_object_load_prog()) for a program the kernel refused.
_REFUSED = re.compile(r"prog '([^']+)': BPF program load failed")
# libbpf messages that already name their object.
_NAMED_MESSAGE = re.compile(r"(prog|map|object) '|extern ")
# Printed by libbpf next to the load failure; the log itself is in LibbpfError.log.
_LOAD_LOG_MARK = "-- BEGIN PROG LOAD LOG --"
# Warnings libbpf prints and then carries on.
_BENIGN = ("BTF is optional, ignoring", "Failed to bump RLIMIT_MEMLOCK")

_Record = tuple[int, str]
_capture = threading.local()


def _print_message(level: int, fmt: bytes, args: int) -> int:
    records: list[_Record] | None = getattr(_capture, "records", None)
    if records is None and not _logger.isEnabledFor(_LEVELS.get(level, logging.DEBUG)):
        return 0
    text = lib.vformat(fmt, args).removeprefix(_PREFIX).rstrip("\n")
    if records is not None:
        records.append((level, text))
    else:
        _emit(level, text)
    return 0


# The C callback libbpf keeps (module-level, so it lives as long as the process).
_print = lib.libbpf_print_fn_t(_print_message)
_print_lock = threading.Lock()
_print_routed = False


def _route_print() -> None:
    """Point libbpf's print callback at the ``kfunc.libbpf`` logger, once."""
    global _print_routed
    with _print_lock:
        if not _print_routed:
            lib.libbpf_set_print(_print)
            _print_routed = True


def _emit(level: int, text: str) -> None:
    pylevel = _LEVELS.get(level, logging.DEBUG)
    if _LOAD_LOG_MARK in text:
        pylevel = logging.DEBUG
    _logger.log(pylevel, "%s", text)


@contextmanager
def libbpf_messages(quiet: bool = False) -> Iterator[list[_Record]]:
    """Collect libbpf's messages during the block, then log them.

    They are logged at their own level if the block completes, at DEBUG if it
    raises (the exception is expected to carry what matters of them) or if
    ``quiet`` (the caller reports the outcome itself).
    """
    _route_print()
    records: list[_Record] = []
    outer = getattr(_capture, "records", None)
    _capture.records = records
    failed = True
    try:
        yield records
        failed = False
    finally:
        _capture.records = outer
        for level, text in records:
            _emit(lib.LIBBPF_DEBUG if failed or quiet else level, text)


def libbpf_error(
    records: list[_Record],
    default: str,
    err: int,
    *,
    subject: str = "",
    fix: str | None = None,
) -> LibbpfError:
    """A LibbpfError worded as libbpf's first fatal warning, or as ``default``.

    ``subject`` (``prog 'x'``) is put in front of a message that does not
    already name its object. The error's ``log`` is everything libbpf
    printed during the call.
    """
    warnings = [
        text.splitlines()[0]
        for level, text in records
        if level == lib.LIBBPF_WARN and text and not any(b in text for b in _BENIGN)
    ]
    message = warnings[0] if warnings else default
    if subject and not message.startswith(subject) and not _NAMED_MESSAGE.match(message):
        message = f"{subject}: {message}"
    log = "\n".join(text for _, text in records)
    return LibbpfError(message, errno=err, log=log, fix=fix)


def load_error(
    message: str, errno: int, log: str, fix: str | None, *, loader: str | None = None
) -> LibbpfError:
    """The error of a failed object load: a :class:`~kfunc.errors.VerifierError`
    where libbpf says the kernel refused a program (``prog 'x': BPF program load
    failed: ...``; ``log`` is then the verifier's), else a LibbpfError (an
    extern not found, a map refused ...). ``loader`` is libbpf's own message
    where ``message`` is another (the guest's explanation of it)."""
    refused = _REFUSED.match(loader or message)
    if refused is not None:
        return VerifierError(message, errno, log, fix, program=refused.group(1))
    return LibbpfError(message, errno, log, fix)


def _fix_for(err: int, message: str, verifier_log: str = "") -> str | None:
    if message.startswith("extern ") and "not found" in message:
        return (
            "the running kernel does not export it: check the name, load the module "
            "that defines it, or declare it __weak and test bpf_ksym_exists()"
        )
    if "load failed" in message and verifier_log:
        return (
            "read the verifier log for the instruction it rejected: `kfunc run --verbose` "
            "prints it whole, `kfunc explain LOGFILE` explains it"
        )
    if "load failed" in message:
        return (
            "the kernel refused the program before verifying it: check that it supports "
            "this program type and attach point"
        )
    if err in (errnos.EPERM, errnos.EACCES):
        return "run as root (BPF needs CAP_BPF and CAP_PERFMON or CAP_SYS_ADMIN)"
    return None


def prog_type_by_section(section: str) -> str | None:
    """libbpf's program type name (``tracing``, ``kprobe``, ``syscall`` ...) for an ELF
    section name (``fentry/do_unlinkat``, ``kprobe/x``, ``syscall``), None if libbpf
    knows no such section. Pure: the same answer on every machine.
    """
    prog_type, attach_type = ctypes.c_int(), ctypes.c_int()
    with libbpf_messages(quiet=True):
        ret = lib.libbpf_prog_type_by_name(
            section.encode(), ctypes.byref(prog_type), ctypes.byref(attach_type)
        )
    if ret:
        return None
    return _cstr(lib.libbpf_bpf_prog_type_str(prog_type.value)) or None


def _cstr(value: bytes | None) -> str:
    return value.decode("utf-8", "replace") if value is not None else ""


@dataclass(frozen=True)
class RunResult:
    """What ``BPF_PROG_TEST_RUN`` returned.

    ``retval`` is the program's return value as a signed 32-bit int,
    ``duration`` the mean run time in ns, ``data_out`` the packet after the
    run and ``ctx_out`` the context after the run.
    """

    retval: int
    duration: int
    data_out: bytes
    ctx_out: bytes


class BpfObject:
    """An ELF BPF object opened by libbpf; use as a context manager.

    ``programs`` and ``maps`` map names to :class:`Program` and :class:`Map`.
    Each program gets a verifier log buffer of ``log_size`` bytes; with
    ``log_level`` 0 the kernel fills it only for a program it rejects.
    Closing the object destroys the links and ring buffers made from it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        btf_custom_path: str | os.PathLike[str] | None = None,
        log_level: int = 0,
        log_size: int = DEFAULT_LOG_SIZE,
    ) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self._ptr: int | None = None
        self._cleanups: list[Callable[[], None]] = []
        if not self.path.is_file():
            raise LibbpfError(
                f"object '{self.path}': no such file",
                errno=errnos.ENOENT,
                fix="compile the BPF program first (kfunc.clang.compile_bpf)",
            )
        opts = lib.bpf_object_open_opts(sz=ctypes.sizeof(lib.bpf_object_open_opts))
        if btf_custom_path is not None:
            opts.btf_custom_path = os.fsencode(btf_custom_path)
        with libbpf_messages() as records:
            ptr = lib.bpf_object__open_file(os.fsencode(self.path), ctypes.byref(opts))
            if not ptr:
                err = ctypes.get_errno()
                raise libbpf_error(
                    records,
                    f"failed to open: {lib.strerror(err)}",
                    err,
                    subject=f"object '{self.path.name}'",
                )
        self._ptr = ptr
        self.loaded = False
        try:
            self.name = _cstr(lib.bpf_object__name(ptr))
            self.programs = {p.name: p for p in self._iter_programs(log_level, log_size)}
            self.maps = {m.name: m for m in self._iter_maps()}
        except BaseException:
            self.close()
            raise

    def _iter_programs(self, log_level: int, log_size: int) -> Iterator[Program]:
        prog = lib.bpf_object__next_program(self._ptr, None)
        while prog:
            yield Program(self, prog, log_level, log_size)
            prog = lib.bpf_object__next_program(self._ptr, prog)

    def _iter_maps(self) -> Iterator[Map]:
        map_ = lib.bpf_object__next_map(self._ptr, None)
        while map_:
            yield Map(self, map_)
            map_ = lib.bpf_object__next_map(self._ptr, map_)

    def _check_open(self) -> int:
        if self._ptr is None:
            raise LibbpfError(f"object '{self.path.name}': already closed", errno=errnos.EBADF)
        return self._ptr

    def load(self) -> BpfObject:
        """Load maps and programs into the kernel; returns ``self``.

        A program the kernel refuses raises VerifierError (a LibbpfError) with
        libbpf's message (``prog 'x': BPF program load failed: ...``) and the
        verifier log; other failures raise LibbpfError.
        """
        ptr = self._check_open()
        with libbpf_messages() as records:
            ret = lib.bpf_object__load(ptr)
            if ret:
                raise self._load_error(records, -ret)
        self.loaded = True
        return self

    def _load_error(self, records: list[_Record], err: int) -> LibbpfError:
        error = libbpf_error(
            records, f"failed to load: {lib.strerror(err)}", err, subject=f"object '{self.name}'"
        )
        match = _PROG_MESSAGE.match(error.message)
        verifier_log = ""
        if match and match.group(1) in self.programs:
            verifier_log = self.programs[match.group(1)].log
        fix = _fix_for(err, error.message, verifier_log)
        return load_error(error.message, err, verifier_log or error.log, fix)

    def close(self) -> None:
        """Destroy dependent links and ring buffers, then close the object (idempotent)."""
        if self._ptr is None:
            return
        ptr, self._ptr = self._ptr, None
        # every callback runs even if one raises; the object closes last
        with ExitStack() as stack:
            stack.callback(lib.bpf_object__close, ptr)
            for cleanup in self._cleanups.copy():
                stack.callback(cleanup)

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else "loaded" if self.loaded else "open"
        return f"<BpfObject {self.name!r} {state} programs={list(self.programs)}>"


class Program:
    """A program of a :class:`BpfObject`: ``name``, ``section``, type, fd, verifier log."""

    def __init__(self, obj: BpfObject, ptr: int, log_level: int, log_size: int) -> None:
        self._obj = obj
        self._ptr = ptr
        self.name = _cstr(lib.bpf_program__name(ptr))
        self.section = _cstr(lib.bpf_program__section_name(ptr))
        self._log_buf = (ctypes.c_char * log_size).from_buffer(mmap.mmap(-1, log_size))
        if lib.bpf_program__set_log_buf(ptr, self._log_buf, log_size):
            raise LibbpfError(f"prog '{self.name}': cannot set log buffer", errno=errnos.EINVAL)
        if log_level and lib.bpf_program__set_log_level(ptr, log_level):
            raise LibbpfError(
                f"prog '{self.name}': invalid log level {log_level}", errno=errnos.EINVAL
            )

    @property
    def type(self) -> int:
        """The ``enum bpf_prog_type`` value."""
        return lib.bpf_program__type(self._ptr_checked())

    @property
    def type_name(self) -> str:
        """libbpf's name of the program type: ``syscall``, ``xdp``, ``sched_cls`` ..."""
        return _cstr(lib.libbpf_bpf_prog_type_str(self.type))

    @property
    def fd(self) -> int:
        """The program's fd, or a negative number before it is loaded."""
        return lib.bpf_program__fd(self._ptr_checked())

    @property
    def autoload(self) -> bool:
        """Whether :meth:`BpfObject.load` loads this program."""
        return lib.bpf_program__autoload(self._ptr_checked())

    @autoload.setter
    def autoload(self, value: bool) -> None:
        ret = lib.bpf_program__set_autoload(self._ptr_checked(), value)
        if ret:
            raise LibbpfError(f"prog '{self.name}': cannot change autoload after load", errno=-ret)

    @property
    def log(self) -> str:
        """The verifier's log of the last load of this program ("" if none was asked)."""
        return self._log_buf.value.decode("utf-8", "replace")

    def _ptr_checked(self) -> int:
        self._obj._check_open()
        return self._ptr

    def _fd_checked(self) -> int:
        fd = self.fd
        if fd < 0:
            raise LibbpfError(
                f"prog '{self.name}': not loaded",
                errno=errnos.EBADF,
                fix="load its object first (BpfObject.load())",
            )
        return fd

    def attach(self) -> Link:
        """Attach as the section name says (``fentry/...``, ``tp/...``, ``xdp`` ...)."""
        ptr = self._ptr_checked()
        self._fd_checked()
        with libbpf_messages() as records:
            link = lib.bpf_program__attach(ptr)
            if not link:
                err = ctypes.get_errno()
                raise libbpf_error(
                    records,
                    f"failed to attach: {lib.strerror(err)}",
                    err,
                    subject=f"prog '{self.name}'",
                    fix=_fix_for(err, ""),
                )
        return Link(self, link)

    def test_run(
        self, data_in: bytes = b"", ctx_in: bytes | None = None, repeat: int = 1
    ) -> RunResult:
        """Run the program once per ``repeat`` with ``BPF_PROG_TEST_RUN``.

        A ``syscall`` program takes only ``ctx_in`` (its arguments), runs once,
        and may write to it; the result's ``ctx_out`` holds what it wrote.
        """
        fd = self._fd_checked()
        syscall = self.type == lib.BPF_PROG_TYPE_SYSCALL
        if syscall and data_in:
            raise LibbpfError(
                f"prog '{self.name}': a syscall program takes ctx_in, not data_in",
                errno=errnos.EINVAL,
            )
        opts = lib.bpf_test_run_opts(sz=ctypes.sizeof(lib.bpf_test_run_opts))
        data_in_buf = ctypes.create_string_buffer(data_in, len(data_in))
        # room for programs that grow the packet (bpf_xdp_adjust_head/tail ...)
        data_out_buf = ctypes.create_string_buffer(len(data_in) + 4096 if data_in else 0)
        if data_in:
            opts.data_in = ctypes.addressof(data_in_buf)
            opts.data_size_in = len(data_in)
            opts.data_out = ctypes.addressof(data_out_buf)
            opts.data_size_out = len(data_out_buf)
        ctx_buf = ctypes.create_string_buffer(ctx_in or b"", len(ctx_in or b""))
        ctx_out_buf = ctypes.create_string_buffer(len(ctx_buf))
        if ctx_in is not None:
            opts.ctx_in = ctypes.addressof(ctx_buf)
            opts.ctx_size_in = len(ctx_buf)
            if not syscall:
                opts.ctx_out = ctypes.addressof(ctx_out_buf)
                opts.ctx_size_out = len(ctx_out_buf)
        # The kernel refuses repeat for syscall programs: they run exactly once.
        opts.repeat = 0 if syscall else repeat
        ret = lib.bpf_prog_test_run_opts(fd, ctypes.byref(opts))
        if ret:
            raise LibbpfError(
                f"prog '{self.name}': test run failed: {lib.strerror(-ret)}", errno=-ret
            )
        return RunResult(
            retval=ctypes.c_int32(opts.retval).value,
            duration=opts.duration,
            data_out=data_out_buf.raw[: opts.data_size_out] if data_in else b"",
            ctx_out=ctx_buf.raw if syscall else ctx_out_buf.raw[: opts.ctx_size_out],
        )

    def __repr__(self) -> str:
        return f"<Program {self.name!r} section={self.section!r}>"


class Link:
    """An attachment of a program; destroying it detaches. A context manager."""

    def __init__(self, program: Program, ptr: int) -> None:
        self.program = program
        self._ptr: int | None = ptr
        program._obj._cleanups.append(self.destroy)

    def destroy(self) -> None:
        """Detach and free the link; calling it again does nothing."""
        if self._ptr is None:
            return
        ptr, self._ptr = self._ptr, None
        self.program._obj._cleanups.remove(self.destroy)
        ret = lib.bpf_link__destroy(ptr)
        if ret:
            raise LibbpfError(
                f"prog '{self.program.name}': failed to detach: {lib.strerror(-ret)}",
                errno=-ret,
            )

    def __enter__(self) -> Link:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()

    def __repr__(self) -> str:
        state = "destroyed" if self._ptr is None else "attached"
        return f"<Link prog={self.program.name!r} {state}>"


_PERCPU_MAP_TYPES = frozenset(
    {
        lib.BPF_MAP_TYPE_PERCPU_HASH,
        lib.BPF_MAP_TYPE_PERCPU_ARRAY,
        lib.BPF_MAP_TYPE_LRU_PERCPU_HASH,
        lib.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
    }
)


class Map:
    """A map of a :class:`BpfObject`, read and written as raw bytes.

    For per-CPU maps a value is every possible CPU's value in turn, each
    padded to 8 bytes, as the kernel lays it out.
    """

    def __init__(self, obj: BpfObject, ptr: int) -> None:
        self._obj = obj
        self._ptr = ptr
        self.name = _cstr(lib.bpf_map__name(ptr))
        self.type = lib.bpf_map__type(ptr)
        self.type_name = _cstr(lib.libbpf_bpf_map_type_str(self.type))
        self.key_size = lib.bpf_map__key_size(ptr)
        self.value_size = lib.bpf_map__value_size(ptr)
        self.max_entries = lib.bpf_map__max_entries(ptr)

    @property
    def fd(self) -> int:
        """The map's fd, or a negative number before its object is loaded."""
        self._obj._check_open()
        return lib.bpf_map__fd(self._ptr)

    @property
    def _full_value_size(self) -> int:
        if self.type in _PERCPU_MAP_TYPES:
            return (self.value_size + 7) // 8 * 8 * lib.libbpf_num_possible_cpus()
        return self.value_size

    def _fd_checked(self) -> int:
        fd = self.fd
        if fd < 0:
            raise LibbpfError(
                f"map '{self.name}': not loaded",
                errno=errnos.EBADF,
                fix="load its object first (BpfObject.load())",
            )
        return fd

    def _check_size(self, what: str, data: bytes, size: int) -> None:
        if len(data) != size:
            raise LibbpfError(
                f"map '{self.name}': {what} is {len(data)} bytes, the map's is {size}",
                errno=errnos.EINVAL,
            )

    def lookup(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None if there is none."""
        fd = self._fd_checked()
        self._check_size("key", key, self.key_size)
        value = ctypes.create_string_buffer(self._full_value_size)
        ret = lib.bpf_map_lookup_elem(fd, key, value)
        if ret == -errnos.ENOENT:
            return None
        if ret:
            raise LibbpfError(f"map '{self.name}': lookup failed: {lib.strerror(-ret)}", errno=-ret)
        return value.raw

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        """Store ``value`` under ``key`` (``flags``: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
        fd = self._fd_checked()
        self._check_size("key", key, self.key_size)
        self._check_size("value", value, self._full_value_size)
        ret = lib.bpf_map_update_elem(fd, key, value, flags)
        if ret:
            raise LibbpfError(f"map '{self.name}': update failed: {lib.strerror(-ret)}", errno=-ret)

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def keys(self) -> Iterator[bytes]:
        """Iterate over the map's keys, in the kernel's order."""
        fd = self._fd_checked()
        key: bytes | None = None
        next_key = ctypes.create_string_buffer(self.key_size)
        while True:
            ret = lib.bpf_map_get_next_key(fd, key, next_key)
            if ret == -errnos.ENOENT:
                return
            if ret:
                raise LibbpfError(
                    f"map '{self.name}': get next key failed: {lib.strerror(-ret)}",
                    errno=-ret,
                )
            key = next_key.raw
            yield key

    def __repr__(self) -> str:
        return f"<Map {self.name!r} type={self.type_name}>"
