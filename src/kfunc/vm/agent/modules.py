"""Steps on kernel modules: insert, remove, and check a module's BTF."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from pathlib import Path
from typing import Any

from kfunc.vm.agent.state import State, StepFailed
from kfunc.vm.protocol import (
    BtfModule,
    BtfModuleReply,
    Insmod,
    InsmodReply,
    Rmmod,
    RmmodReply,
)

__all__ = ["HANDLERS"]

_SYS_FINIT_MODULE = 313  # x86_64
_SYS_DELETE_MODULE = 176

_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: Any) -> None:
    if _libc.syscall(number, *args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def insmod(state: State, op: Insmod) -> InsmodReply:
    fd = os.open(op.path, os.O_RDONLY)
    try:
        _syscall(_SYS_FINIT_MODULE, fd, op.params.encode(), 0)
    except OSError as exc:
        fixes = {
            errno.EEXIST: "a module of that name is already loaded",
            errno.ENOEXEC: "the .ko was built for another kernel: rebuild it for this target",
        }
        raise StepFailed(
            f"insmod {op.name}: {exc.strerror} (errno {exc.errno})",
            fixes.get(exc.errno or 0, "the module's init failed: read the kernel log lines"),
        ) from None
    finally:
        os.close(fd)
    state.modules.append(op.name)
    return {"module": op.name}


def rmmod(state: State, op: Rmmod) -> RmmodReply:
    name = op.name
    if name not in state.modules:
        return {"module": name, "skipped": "not loaded by this plan"}
    # A closed BPF program that called the module's kfunc drops its module
    # reference only after an RCU grace period: EAGAIN until then.
    deadline = time.monotonic() + op.wait
    while True:
        try:
            _syscall(_SYS_DELETE_MODULE, name.encode(), os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EBUSY) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise StepFailed(
                f"rmmod {name}: {exc.strerror}",
                "something still holds the module (a BPF program that calls its kfunc?)",
            ) from None
    state.modules.remove(name)
    gone = not Path("/sys/module", name).exists()
    return {"module": name, "unloaded": gone}


def btf_module(state: State, op: BtfModule) -> BtfModuleReply:
    from kfunc.libbpf.btf import find_funcs

    path = Path("/sys/kernel/btf", op.module)
    if not path.exists():
        raise StepFailed(
            f"{path}: missing, the module has no BTF",
            "build the module with BTF (kfunc build does) for this kernel",
        )
    found = find_funcs(path, Path("/sys/kernel/btf/vmlinux"), op.kfuncs)
    missing = [n for n, i in found.items() if i is None]
    if missing:
        raise StepFailed(
            f"{path}: no FUNC {', '.join(missing)}",
            "mark the kfunc __bpf_kfunc and list it in the module's BTF_ID_FLAGS set",
            kfuncs=found,
        )
    return {"path": str(path), "size": path.stat().st_size, "kfuncs": found}


HANDLERS: dict[type, Any] = {Insmod: insmod, Rmmod: rmmod, BtfModule: btf_module}
