"""libbpf from Python: open, load, attach and test-run BPF objects; ring buffers; vmlinux.h.

Two layers: :mod:`kfunc.libbpf._ctypes` declares libbpf's C API under its own
names; this package wraps it in context managers, iterators and
:class:`~kfunc.errors.LibbpfError`. libbpf's messages go to the
``kfunc.libbpf`` logger.
"""

from kfunc.libbpf import _ctypes
from kfunc.libbpf.object import (
    DEFAULT_LOG_SIZE,
    BpfObject,
    Link,
    Map,
    Program,
    RunResult,
    prog_type_by_section,
)
from kfunc.libbpf.ringbuf import EventType, RingBuffer, event_decoder
from kfunc.libbpf.vmlinux_h import KERNEL_BTF, dump_vmlinux_h, write_vmlinux_h

__all__ = [
    "DEFAULT_LOG_SIZE",
    "KERNEL_BTF",
    "BpfObject",
    "EventType",
    "Link",
    "Map",
    "Program",
    "RingBuffer",
    "RunResult",
    "dump_vmlinux_h",
    "event_decoder",
    "libbpf_version",
    "prog_type_by_section",
    "write_vmlinux_h",
]


def libbpf_version() -> tuple[int, int]:
    """The (major, minor) version of the libbpf.so in use."""
    return _ctypes.libbpf_major_version(), _ctypes.libbpf_minor_version()
