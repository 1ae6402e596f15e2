"""Process capabilities: drop one before loading BPF, as an unprivileged loader would.

Used to show the verifier's view of a loader without CAP_SYS_BOOT (which
KF_DESTRUCTIVE kfuncs need) or CAP_BPF. Dropping is for good: do it in a
child process (:func:`in_child`).
"""

from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable
from typing import Any

from kfunc.errors import KfuncError

__all__ = ["CAPABILITIES", "drop_capabilities", "in_child"]

#: Capability numbers from include/uapi/linux/capability.h.
CAPABILITIES = {"CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_PERFMON": 38, "CAP_BPF": 39}
_VERSION_3 = 0x20080522
_SYS_CAPGET, _SYS_CAPSET = 125, 126  # x86_64


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities(names: list[str]) -> None:
    """Drop ``names`` (``CAP_SYS_BOOT`` ...) from this process's capability sets."""
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.syscall(_SYS_CAPGET, ctypes.byref(header), data):
        raise KfuncError(f"capget: {os.strerror(ctypes.get_errno())}")
    for name in names:
        if name not in CAPABILITIES:
            raise KfuncError(f"unknown capability {name}", f"use one of {', '.join(CAPABILITIES)}")
        word, bit = divmod(CAPABILITIES[name], 32)
        mask = ~(1 << bit) & 0xFFFFFFFF
        data[word].effective &= mask
        data[word].permitted &= mask
        data[word].inheritable &= mask
    if libc.syscall(_SYS_CAPSET, ctypes.byref(header), data):
        raise KfuncError(f"capset: {os.strerror(ctypes.get_errno())}")


def in_child(func: Callable[[], dict[str, Any]], drop: list[str]) -> dict[str, Any]:
    """Run ``func`` in a forked child without the capabilities ``drop``; its JSON result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        code = 0
        try:
            drop_capabilities(drop)
            result = func()
        except BaseException as exc:  # report everything to the parent
            result, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
        with os.fdopen(write_fd, "w") as out:
            out.write(json.dumps(result))
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as inp:
        text = inp.read()
    os.waitpid(pid, 0)
    return json.loads(text) if text else {"error": "the child reported nothing"}
