"""Which qemu accelerator works on this host: KVM where a probe shows it, else TCG.

A ``/dev/kvm`` that exists is not a KVM that runs stock kernels: some software
hypervisors (kvm-pvm) fail with "KVM internal error" or hang instead of
exiting. The probe boots the target kernel with KVM and no root filesystem;
a working KVM gets as far as the kernel's "VFS: Unable to mount root" panic in
a second or two. The answer is cached per host kernel and qemu binary.
"""

from __future__ import annotations

import json
import os
import platform
import selectors
import shutil
import signal
import subprocess
import time
from pathlib import Path

from kfunc.cache import cache_dir
from kfunc.procgroup import stop_group

__all__ = ["probe_accel"]

_PROBE_TIMEOUT = 20.0
_WORKS = ("Kernel panic", "VFS: Unable to mount root", "Run /init")
_FAILS = ("KVM internal error", "failed to set MSR", "Could not access KVM", "kvm: ")


def _cache_key(qemu: str) -> str:
    st = os.stat(qemu)
    return f"{platform.release()}:{qemu}:{st.st_size}:{int(st.st_mtime)}"


def probe_accel(vmlinuz: Path, qemu: str | None = None) -> str:
    """Return ``"kvm"`` when qemu can boot ``vmlinuz`` with KVM here, else ``"tcg"``."""
    forced = os.environ.get("KFUNC_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    qemu = qemu or shutil.which("qemu-system-x86_64")
    if qemu is None or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    cache = cache_dir("vm") / "accel.json"
    key = _cache_key(qemu)
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = _probe(qemu, vmlinuz)
        cache.write_text(json.dumps(known, indent=2) + "\n")
    return str(known[key])


def _probe(qemu: str, vmlinuz: Path) -> str:
    cmd = [
        qemu, "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults", "-display", "none",
        "-serial", "stdio", "-no-reboot", "-kernel", str(vmlinuz),
        "-append", "console=ttyS0 panic=-1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None
    answer = "tcg"
    seen = b""
    deadline = time.monotonic() + _PROBE_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen = (seen + chunk)[-4096:]
                text = seen.decode(errors="replace")
                if any(m in text for m in _FAILS):
                    break
                if any(m in text for m in _WORKS):
                    answer = "kvm"
                    break
        finally:
            stop_group(proc, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
    return answer
