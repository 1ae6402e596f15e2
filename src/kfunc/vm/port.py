"""The agent's channel in a snapshot-restored guest: a virtio-serial port.

QEMU connects the port (named ``kfunc``) to a unix socket on the host. Each
message is a frame: 4 bytes of length (big-endian), then that many bytes. A
request is one JSON frame, answered by one JSON frame:

- ``{"ping": true}``: the agent is up; ``{"ok": true, "release": ...}``;
- ``{"preload": true}``: import :data:`AGENT_IMPORTS` now (before a snapshot
  is saved; a guest that boots for one run imports only what its steps use);
- ``{"clock": NS, "seed": HEX}``: set the guest's CLOCK_REALTIME (a restored
  guest wakes with the time of its snapshot) and mix the host's random bytes
  into the kernel's pool and Python's ``random`` (it wakes with the same
  random state every time); the answer's ``uptime`` says when, after the
  kernel started, python started and the agent was imported;
- ``{"put": PATH, "mode": M}``, followed by a frame of the file's bytes:
  write it at PATH in the guest (the run's modules and BPF objects travel so,
  at their host paths, so that steps name them as they are on the host);
- ``{"steps": [...]}`` or ``{"stop": true}``: as in a served session
  (:func:`kfunc.vm.protocol.encode_request`); the answer is ``{"events": [...]}``.

The host side is :class:`PortClient`, a :class:`kfunc.vm.client.AgentClient`
as the shared-directory :class:`~kfunc.vm.session.SessionClient` is; the
guest side is :func:`serve_port`.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import random
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfunc.errors import GuestError
from kfunc.vm.client import AgentClient
from kfunc.vm.protocol import EVENT_PREFIX, Event

__all__ = ["AGENT_IMPORTS", "PortClient", "serve_port"]

PORT_NAME = "kfunc"
_LEN = struct.Struct(">I")
_RNDRESEEDCRNG = 0x5207  # _IO('R', 0x07), include/uapi/linux/random.h (v4.17)
# What the agent imports lazily in its steps: imported before a snapshot is
# taken (the ``preload`` request: no restored guest pays for them), and packed
# in the archive (kfunc.vm.initramfs).
AGENT_IMPORTS = (
    "kfunc.vm.agent",
    "kfunc.vm.port",
    "kfunc.libbpf",
    "kfunc.libbpf.btf",
    "kfunc.explain",
    "kfunc.check.bpf_object",  # explain's line info (pyelftools), on a refusal
    "kfunc.tracefs",
    "kfunc.caps",
    "kfunc.probe",
)

# Step arguments that name a file the guest reads (uploaded before the steps).
_FILE_ARGS = ("path",)


# -- guest side ---------------------------------------------------------------


def _find_port(timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        base = Path("/sys/class/virtio-ports")
        for entry in base.glob("vport*") if base.exists() else ():
            if (entry / "name").read_text().strip() == PORT_NAME:
                return f"/dev/{entry.name}"
        if time.monotonic() > deadline:
            raise OSError(f"no virtio-serial port named {PORT_NAME!r}")
        time.sleep(0.05)


class _GuestPort:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR)

    def _read(self, n: int) -> bytes | None:
        """``n`` bytes; None when the host went away (the message is dropped)."""
        chunks, got = [], 0
        while got < n:
            chunk = os.read(self.fd, min(n - got, 1 << 20))
            if not chunk:  # no host connected: nothing to read until one is
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def receive(self) -> bytes:
        while True:
            head = self._read(_LEN.size)
            if head is None:
                time.sleep(0.01)
                continue
            body = self._read(_LEN.unpack(head)[0])
            if body is not None:
                return body

    def send(self, data: bytes) -> None:
        view = memoryview(_LEN.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view) :]


def _emit(events: list[Event], event: Event) -> None:
    """Keep ``event`` for the answer, and say on the console that its step ended:
    a host that gives up on a step that hangs can tell which one it was."""
    events.append(event)
    print(EVENT_PREFIX + json.dumps({"step": event["step"], "ok": event.get("ok")}), flush=True)


def _uptimes(serving: float) -> dict[str, float]:
    """Where a fresh boot's time went, in seconds since the kernel started (the
    guest's CLOCK_MONOTONIC): python's process started (``/proc/self/stat``'s
    starttime), the agent imported, now. A restored guest answers with its
    snapshot's."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5)
    return {"python": started, "agent": serving, "now": time.monotonic()}


def serve_port() -> int:
    """Serve requests on the ``kfunc`` port until asked to stop (the guest's /init)."""
    import importlib

    serving = time.monotonic()  # the agent imported
    from kfunc.vm.agent.runner import cleanup, run_steps
    from kfunc.vm.agent.state import KernelLog, State
    from kfunc.vm.protocol import DONE, decode_request

    port = _GuestPort(_find_port())
    state = State(Path("/tmp"))
    kmsg = KernelLog()
    while True:
        request = json.loads(port.receive())
        reply: dict[str, Any] = {"ok": True}
        if "ping" in request:
            reply["release"] = os.uname().release
        elif "preload" in request:
            for name in AGENT_IMPORTS:
                importlib.import_module(name)
        elif "clock" in request:
            reply["uptime"] = _uptimes(serving)
            time.clock_settime_ns(time.CLOCK_REALTIME, int(request["clock"]))
            # Every restore starts with the same random state: mix in the host's.
            seed = bytes.fromhex(request.get("seed", ""))
            with open("/dev/urandom", "wb") as pool:
                pool.write(seed)
                fcntl.ioctl(pool, _RNDRESEEDCRNG)  # new keys now, not in a minute
            random.seed(seed)
        elif "put" in request:
            data = port.receive()
            path = Path(request["put"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(request.get("mode", 0o644))
        elif "mkdir" in request:
            Path(request["mkdir"]).mkdir(parents=True, exist_ok=True)
        elif (steps := decode_request(request)) is None:
            cleanup(state, kmsg)
            port.send(json.dumps({"events": [{"step": DONE, "ok": True}]}).encode())
            return 0
        else:
            events: list[Event] = []
            ok = run_steps(steps, state, kmsg, functools.partial(_emit, events))
            events.append({"step": DONE, "ok": ok})
            reply = {"events": events}
        port.send(json.dumps(reply).encode())


# -- host side ----------------------------------------------------------------


class PortClient(AgentClient):
    """Talks to an agent on a virtio-serial port through QEMU's unix socket.

    Before each request, the files its steps name (``path``) are sent to the
    guest at the same path, once each (while they stay unchanged); the
    directories named by a step's ``workdir``-like arguments are made.
    """

    def __init__(
        self, socket_path: Path, directory: Path, alive: Callable[[], bool] | None = None
    ) -> None:
        self.socket_path = socket_path
        self.directory = directory  # host scratch space, as a SessionClient has
        self._alive = alive or (lambda: True)
        self._sock: socket.socket | None = None
        self._sent: dict[str, tuple[int, int]] = {}
        self._made: set[str] = set()

    def connect(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
                self._sock = sock
                return
            except OSError as exc:
                sock.close()
                if not self._alive() or time.monotonic() > deadline:
                    raise self._lost(f"no channel to connect to ({exc})") from None
                time.sleep(0.01)

    def close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _lost(self, why: str) -> Exception:
        from kfunc.errors import LostVMError

        return LostVMError(f"guest: {why}", fix="the guest's console log shows why")

    def _send(self, data: bytes, deadline: float) -> None:
        assert self._sock is not None
        self._sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            self._sock.sendall(_LEN.pack(len(data)) + data)
        except OSError as exc:
            raise self._lost(f"channel closed while sending ({exc})") from None

    def _recv_exact(self, n: int, deadline: float, timeout: float) -> bytes:
        assert self._sock is not None
        chunks, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout(timeout)
            # short waits: a guest that died is noticed, and Ctrl-C works
            self._sock.settimeout(min(0.5, remaining))
            try:
                chunk = self._sock.recv(min(n - got, 1 << 20))
            except TimeoutError:
                if not self._alive():
                    raise self._lost("powered off before it answered") from None
                continue
            except OSError as exc:
                raise self._lost(f"channel broke before it answered ({exc})") from None
            if not chunk:
                raise self._lost("closed its channel before it answered")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _timeout(self, timeout: float) -> Exception:
        from kfunc.errors import LostVMError

        return LostVMError(
            f"guest: no answer within {timeout:.0f} s",
            fix="a step hangs in the guest: look at its kernel log",
        )

    def request(
        self, message: dict[str, Any], timeout: float = 120.0, data: bytes | None = None
    ) -> dict[str, Any]:
        """One request (and its data frame, if any); its JSON answer."""
        if self._sock is None:
            raise self._lost("not connected")
        deadline = time.monotonic() + timeout
        self._send(json.dumps(message).encode(), deadline)
        if data is not None:
            self._send(data, deadline)
        (length,) = _LEN.unpack(self._recv_exact(_LEN.size, deadline, timeout))
        answer: dict[str, Any] = json.loads(self._recv_exact(length, deadline, timeout))
        return answer

    def put(self, path: str | os.PathLike[str], timeout: float = 60.0) -> None:
        """Send a host file to the guest, at the same path."""
        st = os.stat(path)
        key = os.path.abspath(path)
        if self._sent.get(key) == (st.st_size, st.st_mtime_ns):
            return
        self.request({"put": key, "mode": st.st_mode & 0o777}, timeout, Path(path).read_bytes())
        self._sent[key] = (st.st_size, st.st_mtime_ns)

    def _upload(self, steps: list[dict[str, Any]], timeout: float) -> None:
        for step in steps:
            for name in _FILE_ARGS:
                value = step.get(name)
                if isinstance(value, str) and os.path.isfile(value):
                    self.put(value, timeout)
            for value in step.values():
                # the run's directory (a trigger makes its files there)
                if isinstance(value, str) and os.path.isdir(value) and value not in self._made:
                    self.request({"mkdir": value}, timeout)
                    self._made.add(value)

    def call(self, request: dict[str, Any], timeout: float = 120.0) -> list[Event]:
        """Send ``request`` (:func:`~kfunc.vm.protocol.encode_request`); return its events."""
        if "steps" in request:
            self._upload(request["steps"], timeout)
        events: list[Event] = self.request(request, timeout)["events"]
        return events

    def stage(self, path: str | os.PathLike[str]) -> str:
        """Send a host file to the guest now, at the same path; that path."""
        if not Path(path).is_file():
            raise GuestError(f"{path}: no such file", fix="build it first (kfunc build)")
        self.put(path)
        return os.path.abspath(path)
