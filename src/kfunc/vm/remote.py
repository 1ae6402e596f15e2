"""kfunc.libbpf's API for objects that live in a guest: the same names, over a session.

In a :class:`~kfunc.vm.session.GuestSession` the BPF objects and modules are
loaded by the guest's agent; these proxies send it one request per call and
give back what :mod:`kfunc.libbpf` would on the host::

    with GuestSession(get_kernel("6.12")) as session:
        module = GuestModule(session, built.module)          # insmod, checks its BTF
        obj = RemoteObject(session, "prog.bpf.o").load()     # as BpfObject(...).load()
        assert obj.programs["add"].test_run().retval == 42   # a RunResult
        counts = obj.maps["counts"]
        counts.update(struct.pack("I", 1), struct.pack("Q", 7))
        ring = RingBuffer(obj.maps["events"], event_type=Event)  # a ctypes Structure
        events = list(ring.events(timeout=1.0))
        obj.close()
        module.unload()

Files are copied into the session's shared directory before the guest opens
them, so any host path works. A failed load, attach, test run or map access
raises :class:`~kfunc.errors.LibbpfError` as on the host (with the verifier
log); other failed steps raise :class:`~kfunc.errors.GuestError` with the
kernel log lines the step caused.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from kfunc.errors import GuestError, LibbpfError
from kfunc.kbuild import ModuleBuild
from kfunc.libbpf.object import RunResult, load_error
from kfunc.libbpf.ringbuf import EventType, event_decoder
from kfunc.vm import protocol as proto
from kfunc.vm.client import AgentClient

__all__ = [
    "GuestModule",
    "RemoteLink",
    "RemoteMap",
    "RemoteObject",
    "RemoteProgram",
    "RingBuffer",
    "call",
    "read_trace",
    "stage",
]

Buffer = bytes | bytearray | memoryview | Any  # anything with the buffer protocol (ctypes too)


def call(session: AgentClient, op: proto.Op, wait: float = 120.0) -> dict[str, Any]:
    """Run ``op`` in the guest, waiting up to ``wait`` s for it; its reply, or its
    error raised."""
    (event,) = session.run_steps([op], timeout=wait)
    if event["ok"]:
        return event.get("data") or {}
    data = event.get("data") or {}
    if "errno" in data:
        # A program the guest's kernel refused: VerifierError, as on the host. The
        # guest words it with its explanation and keeps libbpf's words in "loader".
        raise load_error(event["error"], data["errno"] or 0, data.get("log", ""), event.get("fix"),
                         loader=data.get("loader"))  # fmt: skip
    raise GuestError(event["error"], event.get("kernel_log"), event.get("fix"))


def stage(session: AgentClient, path: str | os.PathLike[str]) -> str:
    """Copy a host file where the guest can read it; the guest's path."""
    return session.stage(path)


def _bytes(value: Buffer) -> bytes:
    return bytes(memoryview(value))  # bytes, bytearray, ctypes objects; not an int


def read_trace(session: AgentClient, expect: str | None = None, timeout: float = 2.0) -> list[str]:
    """trace_pipe lines until one matches ``expect`` (a regex) or ``timeout`` s pass."""
    op = proto.Trace(expect=expect, timeout=timeout, required=False, settle=None)
    return list(call(session, op, timeout + 60.0)["lines"])


class GuestModule:
    """A module inserted into the guest (and its kfuncs checked in /sys/kernel/btf)."""

    def __init__(self, session: AgentClient, build: ModuleBuild, params: str = "") -> None:
        self.session = session
        self.build = build
        self.name = build.name
        path = stage(session, build.ko)
        events = session.run_steps(
            [
                proto.Insmod(path=path, name=build.name, params=params),
                proto.BtfModule(module=build.name, kfuncs=[k.name for k in build.kfuncs]),
            ]
        )
        self.kernel_log: list[str] = [line for e in events for line in e.get("kernel_log", [])]
        self.loaded = events[0]["ok"]
        failed = next((e for e in events if not e["ok"]), None)
        if failed is not None:
            if self.loaded:
                self.unload()
            raise GuestError(failed["error"], self.kernel_log, failed.get("fix"))
        #: kfunc name -> BTF id, as the guest's /sys/kernel/btf/<module> has them
        self.kfuncs: dict[str, int] = events[1]["data"]["kfuncs"]
        self.btf_path: str = events[1]["data"]["path"]

    def unload(self) -> list[str]:
        """rmmod; the kernel log lines it caused (idempotent)."""
        if not self.loaded:
            return []
        self.loaded = False
        (event,) = self.session.run_steps([proto.Rmmod(name=self.name)])
        lines = event.get("kernel_log", [])
        self.kernel_log += lines
        if not event["ok"]:
            raise GuestError(event["error"], lines, event.get("fix"))
        return lines

    def __enter__(self) -> GuestModule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unload()

    def __repr__(self) -> str:
        return f"<GuestModule {self.name!r} {'loaded' if self.loaded else 'unloaded'}>"


class RemoteObject:
    """A BPF object in the guest, as :class:`kfunc.libbpf.BpfObject`; a context manager."""

    def __init__(self, session: AgentClient, path: str | os.PathLike[str]) -> None:
        self.session = session
        self.path = Path(path)
        self.name = self.path.name
        self.loaded = False
        self.programs: dict[str, RemoteProgram] = {}
        self.maps: dict[str, RemoteMap] = {}
        self._guest_path: str | None = None

    def load(
        self, attach: bool = False, *, programs: list[str] | None = None, log_level: int = 0
    ) -> RemoteObject:
        """Load maps and programs in the guest; with ``attach``, attach every program
        that libbpf can attach from its section name (fentry, kprobe, tp ...).

        The programs loaded are those the object's sections autoload (not
        ``SEC("?tc")``), or ``programs`` only, as a selftest sets autoload.
        ``log_level`` 1 keeps each program's verifier log (``RemoteProgram.log``)
        of a successful load too. A refused program raises VerifierError (a
        LibbpfError) whose ``log`` is the verifier's."""
        path = self._guest_path = self.session.stage(self.path)
        try:
            call(self.session, proto.BpfLoad(path=path, attach=attach, programs=programs,
                                             log_level=log_level))  # fmt: skip
        except LibbpfError:
            call(self.session, proto.BpfClose(path=path))  # a refused object goes
            raise
        self.loaded = True
        info = call(self.session, proto.BpfDescribe(path=path))
        self.programs = {p["name"]: RemoteProgram(self, p) for p in info["programs"]}
        self.maps = {m["name"]: RemoteMap(self, m) for m in info["maps"]}
        return self

    def _call(
        self, op: Callable[..., proto.Op], wait: float = 120.0, **args: Any
    ) -> dict[str, Any]:
        """``op`` on this object (its ``path``) in the guest."""
        if not self.loaded or self._guest_path is None:
            raise LibbpfError(
                f"object '{self.name}': not loaded", fix="load it first (RemoteObject.load())"
            )
        return call(self.session, op(path=self._guest_path, **args), wait)

    def close(self) -> None:
        """Destroy its links and close it in the guest (idempotent)."""
        if self.loaded and self._guest_path is not None:
            self.loaded = False
            call(self.session, proto.BpfClose(path=self._guest_path))

    def __enter__(self) -> RemoteObject:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "closed"
        return f"<RemoteObject {self.name!r} {state} programs={list(self.programs)}>"


class RemoteProgram:
    """A program of a :class:`RemoteObject`: ``name``, ``section``, ``type_name``."""

    def __init__(self, obj: RemoteObject, info: dict[str, Any]) -> None:
        self._obj = obj
        self.name: str = info["name"]
        self.section: str = info["section"]
        self.type_name: str = info["type"]
        self.attached: bool = info["attached"]
        #: whether it was loaded (its section's autoload, or chosen in ``load(programs=)``)
        self.autoload: bool = info.get("autoload", True)
        #: the verifier's log of its load (empty unless loaded with ``log_level``)
        self.log: str = info.get("log", "")

    def attach(self) -> RemoteLink:
        """Attach as the section name says; detach with the link's ``destroy()``."""
        self._obj._call(proto.ProgAttach, program=self.name)
        self.attached = True
        return RemoteLink(self)

    def test_run(
        self, data_in: Buffer = b"", ctx_in: Buffer | None = None, repeat: int = 1
    ) -> RunResult:
        """``BPF_PROG_TEST_RUN`` in the guest, as :meth:`kfunc.libbpf.Program.test_run`."""
        ctx = None if ctx_in is None else _bytes(ctx_in).hex()
        got = self._obj._call(
            proto.TestRun, program=self.name, data=_bytes(data_in).hex(), ctx=ctx, repeat=repeat
        )
        return RunResult(
            retval=got["retval"],
            duration=got["duration_ns"],
            data_out=bytes.fromhex(got["data_out"]),
            ctx_out=bytes.fromhex(got["ctx_out"]),
        )

    def __repr__(self) -> str:
        return f"<RemoteProgram {self.name!r} section={self.section!r}>"


class RemoteLink:
    """An attachment of a remote program; ``destroy()`` detaches. A context manager."""

    def __init__(self, program: RemoteProgram) -> None:
        self.program = program
        self.destroyed = False

    def destroy(self) -> None:
        if self.destroyed:
            return
        self.destroyed = True
        if self.program._obj.loaded:
            self.program._obj._call(proto.ProgDetach, program=self.program.name)
        self.program.attached = False

    def __enter__(self) -> RemoteLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


class RemoteMap:
    """A map of a :class:`RemoteObject`, read and written as raw bytes (as ``Map``).

    Keys and values may be anything with the buffer protocol: bytes, or a
    ctypes Structure instance.
    """

    def __init__(self, obj: RemoteObject, info: dict[str, Any]) -> None:
        self._obj = obj
        self.name: str = info["name"]
        self.type_name: str = info["type"]
        self.key_size: int = info["key_size"]
        self.value_size: int = info["value_size"]
        self.max_entries: int = info["max_entries"]

    def lookup(self, key: Buffer) -> bytes | None:
        """The value stored under ``key``, or None if there is none."""
        value = self._obj._call(proto.MapLookup, map=self.name, key=_bytes(key).hex())["value"]
        return None if value is None else bytes.fromhex(value)

    def update(self, key: Buffer, value: Buffer, flags: int = 0) -> None:
        """Store ``value`` under ``key`` (``flags``: BPF_ANY, BPF_NOEXIST, BPF_EXIST)."""
        self._obj._call(
            proto.MapUpdate, map=self.name, key=_bytes(key).hex(), value=_bytes(value).hex(),
            flags=flags,
        )  # fmt: skip

    def keys(self) -> Iterator[bytes]:
        """The map's keys, in the kernel's order (read in one request)."""
        keys = self._obj._call(proto.MapKeys, map=self.name)["keys"]
        return iter([bytes.fromhex(k) for k in keys])

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs; a key deleted meanwhile is left out."""
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def __repr__(self) -> str:
        return f"<RemoteMap {self.name!r} type={self.type_name}>"


class RingBuffer:
    """Events of a remote ring buffer map, as :class:`kfunc.libbpf.RingBuffer`.

    The guest reads the ring; each :meth:`poll` brings what it has (or what
    comes within the timeout) over in one request. ``event_type`` decodes
    each event (a ctypes Structure, a ``struct`` format, a callable).
    """

    def __init__(
        self,
        map_: RemoteMap,
        callback: Callable[[Any], object] | None = None,
        *,
        event_type: EventType | None = None,
    ) -> None:
        if map_.type_name != "ringbuf":
            raise LibbpfError(
                f"map '{map_.name}': not a ring buffer (type {map_.type_name})",
                fix="declare it with __uint(type, BPF_MAP_TYPE_RINGBUF)",
            )
        self.map = map_
        self._callback = callback
        self._decode = event_decoder(event_type)
        self._queue: deque[Any] = deque()

    def poll(self, timeout: float | None = 1.0) -> int:
        """Bring over the events there are, waiting up to ``timeout`` s for one; how many."""
        wait = 3600.0 if timeout is None else max(0.0, timeout)
        got = self.map._obj._call(
            proto.RingbufConsume, wait + 60.0, map=self.map.name, timeout=wait
        )
        events = [bytes.fromhex(e) for e in got["events"]]
        for raw in events:
            event = raw if self._decode is None else self._decode(raw)
            if self._callback is None:
                self._queue.append(event)
            else:
                self._callback(event)
        return len(events)

    def consume(self) -> int:
        """Bring over the events there are now, without waiting."""
        return self.poll(0)

    def read(self) -> list[Any]:
        """The events there are now, as a list."""
        self.consume()
        out = list(self._queue)
        self._queue.clear()
        return out

    def events(self, timeout: float | None = 1.0) -> Iterator[Any]:
        """Yield events until ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._queue:
                yield self._queue.popleft()
                if timeout is not None:
                    deadline = time.monotonic() + timeout
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            if not self.poll(remaining) and remaining is not None:
                return

    def close(self) -> None:
        """Nothing to free on this side (the guest's ring goes with its object)."""

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
