"""The guest agent's protocol: its operations, their arguments and their replies.

Host and guest share this module and nothing else of each other. One
operation (an *op*) is one frozen dataclass: its class names the op on the
wire (``op``), its fields are the op's arguments. A plan or a request is a
list of ops; the agent answers each with one :class:`Event`, whose ``data``
is the op's reply (the TypedDict named after the op).

On the wire an op is a JSON object, ``{"op": "insmod", "path": ..., "name":
...}``, plus two fields of every op: ``group`` (the project it belongs to: a
failed step skips the rest of its group) and ``always`` (a cleanup step that
runs even after a failure of its group). How a request travels is not this
module's business: see :mod:`kfunc.vm.session` (a directory both sides
share) and :func:`kfunc.vm.agent.main` (a plan file, events on the console).

This module runs in the guest, where every import is paid under TCG: the
standard library only, and little of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NotRequired, Required, TypedDict

from kfunc.errors import KfuncError

__all__ = [
    "BOOT",
    "DONE",
    "EVENT_PREFIX",
    "OPS",
    "READY",
    "BpfClose",
    "BpfDescribe",
    "BpfLoad",
    "BpfUnload",
    "BpfVerify",
    "BtfModule",
    "Event",
    "Insmod",
    "MapKeys",
    "MapLookup",
    "MapUpdate",
    "Op",
    "ProbeKfuncs",
    "ProgAttach",
    "ProgDetach",
    "ProtocolError",
    "RingbufConsume",
    "Rmmod",
    "TestRun",
    "Trace",
    "TraceClear",
    "Trigger",
    "decode_op",
    "decode_request",
    "encode_request",
    "encode_steps",
]

#: The prefix of an event the agent echoes on the guest's console (one JSON object).
EVENT_PREFIX = "KFUNC-EVENT "
#: The ``step`` of the events that are no op's: the agent started a plan, the
#: agent serves requests, a plan or request is finished (``ok``: every step was).
BOOT, READY, DONE = "boot", "ready", "done"

#: Every op class, by its wire name.
OPS: dict[str, type[Op]] = {}


class ProtocolError(KfuncError):
    """A request the agent cannot read: an unknown op, or arguments it does not take."""


@dataclass(frozen=True, kw_only=True)
class Op:
    """One step of a plan. ``group``: the project it belongs to; ``always``: it runs
    after a failed step of its group too (cleanup)."""

    op: ClassVar[str]
    group: int = 0
    always: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        OPS[cls.op] = cls

    def to_json(self) -> dict[str, Any]:
        """The op as the agent reads it (``group`` and ``always`` only when set)."""
        out: dict[str, Any] = {"op": self.op}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name not in ("group", "always") or value != f.default:
                out[f.name] = value
        return out

    def label(self) -> str:
        """``op`` and what it works on, for a message: ``insmod hello``."""
        what = next(
            (getattr(self, n) for n in ("name", "path", "program") if getattr(self, n, None)), ""
        )
        if what and "/" in what:
            what = what.rsplit("/", 1)[1]
        return f"{self.op} {what}".strip()


def decode_op(raw: dict[str, Any]) -> Op:
    """The op of a JSON object; :class:`ProtocolError` names what is wrong with it."""
    args = dict(raw)
    name = args.pop("op", None)
    cls = OPS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ProtocolError(f"agent: unknown op {name!r}", f"use one of: {', '.join(sorted(OPS))}")
    try:
        return cls(**args)
    except TypeError as exc:
        raise ProtocolError(
            f"agent: op {name}: {exc}".replace(f"{cls.__qualname__}.__init__() ", ""),
            f"its arguments: {', '.join(f.name for f in fields(cls))}",
        ) from None


def encode_steps(steps: Sequence[Op | dict[str, Any]]) -> list[dict[str, Any]]:
    """Ops as JSON objects; a JSON object given is checked by decoding it first."""
    return [(s if isinstance(s, Op) else decode_op(s)).to_json() for s in steps]


def encode_request(steps: Sequence[Op | dict[str, Any]] | None) -> dict[str, Any]:
    """A request of a session: carry out ``steps``, or (None) unload everything and stop."""
    return {"stop": True} if steps is None else {"steps": encode_steps(steps)}


def decode_request(raw: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The steps of a request (still JSON: each is decoded as it runs), or None for stop."""
    return None if raw.get("stop") else list(raw["steps"])


class Event(TypedDict, total=False):
    """What the agent reports of one step (or of ``boot``, ``ready``, ``done``)."""

    step: Required[str]
    group: int
    #: True, False, or None for a step skipped after a failure in its group
    ok: Required[bool | None]
    skipped: bool
    data: dict[str, Any]
    error: str
    fix: str | None
    seconds: float
    #: the kernel log lines (/dev/kmsg) the step caused
    kernel_log: list[str]


# -- modules


@dataclass(frozen=True, kw_only=True)
class Insmod(Op):
    """Insert the module ``path`` (finit_module), known as ``name``, with ``params``."""

    op: ClassVar[str] = "insmod"
    path: str
    name: str
    params: str = ""


class InsmodReply(TypedDict):
    module: str


@dataclass(frozen=True, kw_only=True)
class Rmmod(Op):
    """Remove the module ``name`` if this agent inserted it, waiting up to ``wait`` s
    for the references of closed BPF programs to go."""

    op: ClassVar[str] = "rmmod"
    name: str
    wait: float = 10.0


class RmmodReply(TypedDict):
    module: str
    unloaded: NotRequired[bool]
    skipped: NotRequired[str]


@dataclass(frozen=True, kw_only=True)
class BtfModule(Op):
    """Check that ``/sys/kernel/btf/<module>`` has a FUNC of each of ``kfuncs``."""

    op: ClassVar[str] = "btf_module"
    module: str
    kfuncs: list[str]


class BtfModuleReply(TypedDict):
    path: str
    size: int
    #: kfunc name -> its BTF id in the module's BTF
    kfuncs: dict[str, int | None]


# -- BPF objects and their programs


@dataclass(frozen=True, kw_only=True)
class BpfLoad(Op):
    """Load the object ``path`` (the programs its sections autoload, or ``programs``),
    and with ``attach`` attach what libbpf attaches from a section name."""

    op: ClassVar[str] = "bpf_load"
    path: str
    attach: bool = True
    programs: list[str] | None = None
    log_level: int = 0


class ProgramInfo(TypedDict):
    name: str
    section: str
    type: str
    autoload: bool
    attached: NotRequired[bool]
    log: NotRequired[str]


class BpfLoadReply(TypedDict):
    object: str
    programs: list[ProgramInfo]


@dataclass(frozen=True, kw_only=True)
class BpfUnload(Op):
    """Destroy every link and close every object the agent holds."""

    op: ClassVar[str] = "bpf_unload"


class BpfUnloadReply(TypedDict):
    links: int
    objects: int


@dataclass(frozen=True, kw_only=True)
class BpfClose(Op):
    """Close the object ``path``: its links and ring buffers go with it."""

    op: ClassVar[str] = "bpf_close"
    path: str


class BpfCloseReply(TypedDict):
    object: str
    links: NotRequired[int]
    skipped: NotRequired[str]


@dataclass(frozen=True, kw_only=True)
class BpfDescribe(Op):
    """The programs and maps of the loaded object ``path``."""

    op: ClassVar[str] = "bpf_describe"
    path: str


class MapInfo(TypedDict):
    name: str
    type: str
    key_size: int
    value_size: int
    max_entries: int


class BpfDescribeReply(TypedDict):
    object: str
    programs: list[ProgramInfo]
    maps: list[MapInfo]


@dataclass(frozen=True, kw_only=True)
class BpfVerify(Op):
    """Load ``path`` (or only its ``program``), which may be refused, and report the
    verifier's answer without failing; ``drop_caps`` are dropped first (in a child)."""

    op: ClassVar[str] = "bpf_verify"
    path: str
    program: str | None = None
    drop_caps: list[str] | None = None
    log_level: int = 0


@dataclass(frozen=True, kw_only=True)
class ProbeKfuncs(Op):
    """``kfunc ls --probe``: load each of ``programs`` as each of ``types``; the
    verdicts go to the file ``out`` (see :func:`kfunc.probe.run_probe`)."""

    op: ClassVar[str] = "probe_kfuncs"
    programs: list[dict[str, Any]]
    types: list[dict[str, Any]]
    out: str


@dataclass(frozen=True, kw_only=True)
class ProgAttach(Op):
    """Attach ``program`` of the loaded object ``path`` as its section name says."""

    op: ClassVar[str] = "prog_attach"
    path: str
    program: str


class ProgAttachReply(TypedDict):
    program: str
    section: str


@dataclass(frozen=True, kw_only=True)
class ProgDetach(Op):
    """Destroy the links of ``program`` of the object ``path``."""

    op: ClassVar[str] = "prog_detach"
    path: str
    program: str


class ProgDetachReply(TypedDict):
    program: str
    links: int


@dataclass(frozen=True, kw_only=True)
class TestRun(Op):
    """BPF_PROG_TEST_RUN of ``program`` with ``data`` and ``ctx`` (hex), ``repeat`` times.

    The program is that of the loaded object ``path`` (any loaded object's
    without ``path``); with ``alone``, it is loaded by itself from ``path``
    (every other program's autoload off), run and closed, as upstream's
    selftests load their ``SEC("?...")`` programs.

    Expectations, each checked when given (the step fails otherwise): the
    return value ``retval``; ``error``, the errno name the run fails with;
    ``rejected``, a text of the verifier log of a load that must fail
    (``alone`` only); ``log``, a text of the verifier log of the load.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class
    op: ClassVar[str] = "test_run"
    program: str
    path: str | None = None
    data: str = ""
    ctx: str | None = None
    repeat: int = 1
    alone: bool = False
    retval: int | None = None
    error: str | None = None
    rejected: str | None = None
    log: str | None = None


class TestRunReply(TypedDict):
    program: str
    #: the expected return value (``-ENAME`` when an error was expected)
    expected: int | str | None
    retval: NotRequired[int]
    duration_ns: NotRequired[int]
    data_out: NotRequired[str]
    ctx_out: NotRequired[str]
    #: the errno name of a run that failed as expected
    error: NotRequired[str]
    alone: NotRequired[bool]
    #: a refused load as expected: the text found, and the loader's message
    rejected: NotRequired[str]
    loader: NotRequired[str]


# -- maps


@dataclass(frozen=True, kw_only=True)
class MapLookup(Op):
    """The value under ``key`` (hex) of ``map`` of the object ``path``."""

    op: ClassVar[str] = "map_lookup"
    path: str
    map: str
    key: str


class MapLookupReply(TypedDict):
    map: str
    value: str | None


@dataclass(frozen=True, kw_only=True)
class MapUpdate(Op):
    """Store ``value`` under ``key`` (hex) with ``flags`` (BPF_ANY ...)."""

    op: ClassVar[str] = "map_update"
    path: str
    map: str
    key: str
    value: str
    flags: int = 0


class MapUpdateReply(TypedDict):
    map: str


@dataclass(frozen=True, kw_only=True)
class MapKeys(Op):
    """The keys of ``map``, in the kernel's order."""

    op: ClassVar[str] = "map_keys"
    path: str
    map: str


class MapKeysReply(TypedDict):
    map: str
    keys: list[str]


@dataclass(frozen=True, kw_only=True)
class RingbufConsume(Op):
    """The events of the ring buffer ``map`` (hex): those there, or those that come
    within ``timeout`` s."""

    op: ClassVar[str] = "ringbuf_consume"
    path: str
    map: str
    timeout: float = 0.0
    max_events: int = 100_000


class RingbufConsumeReply(TypedDict):
    map: str
    events: list[str]


# -- tracing and the system


@dataclass(frozen=True, kw_only=True)
class TraceClear(Op):
    """Empty the trace buffer (mounting tracefs if needed)."""

    op: ClassVar[str] = "trace_clear"


class TraceClearReply(TypedDict):
    tracefs: str


@dataclass(frozen=True, kw_only=True)
class Trace(Op):
    """trace_pipe lines (bpf_printk), blank ones left out.

    With ``expect`` (a regex; ``""`` matches any line), read until a line
    matches it, up to ``timeout`` s; then, with ``settle``, read on until no
    line came for ``settle`` s (every line the trigger caused, not only the
    first). Without a match the step fails when ``required``. Without
    ``expect``, read for ``timeout`` s.
    """

    op: ClassVar[str] = "trace"
    expect: str | None = None
    timeout: float = 5.0
    required: bool = True
    settle: float | None = 0.3
    max_lines: int = 10_000


class TraceReply(TypedDict):
    lines: list[str]
    matched: str | None


@dataclass(frozen=True, kw_only=True)
class Trigger(Op):
    """Make the attached programs run: ``kind`` "unlink" unlinks a file;
    "command" runs ``command`` in a shell."""

    op: ClassVar[str] = "trigger"
    kind: str
    command: str | None = None
