"""The guest side: carry out a plan of steps inside the booted target kernel.

Run as ``python -m kfunc.vm.agent PLAN.json`` in the guest. Each step reports
one event (a JSON object) to ``events.jsonl`` beside the plan, and echoes it to
the console for live progress. A step that fails stops the plan, except for
the cleanup steps (``always``), which run on every path so that links, BPF
objects and modules go away before the guest powers off.

This module uses only the library's kernel-facing parts (libbpf, BTF,
tracefs): the same code a user scripts with on a real machine.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError

__all__ = ["KernelLog", "main"]

EVENT_PREFIX = "KFUNC-EVENT "
_SYS_FINIT_MODULE = 313  # x86_64
_SYS_DELETE_MODULE = 176
_CLAIM_TIMEOUT = 10.0  # seconds a claimed request number may stay empty
# Program types libbpf attaches from their section name alone; the others
# (syscall, xdp, tc ...) are exercised with BPF_PROG_TEST_RUN instead.
_ATTACHABLE = {"kprobe", "tracepoint", "raw_tracepoint", "tracing", "lsm"}


class StepFailed(Exception):
    def __init__(self, message: str, fix: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.fix = fix
        self.data = data


class KernelLog:
    """New records of /dev/kmsg since the last read."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self) -> list[str]:
        lines = []
        while True:
            try:
                record = os.read(self.fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError as exc:  # EPIPE: records were overwritten; go on
                if exc.errno == errno.EPIPE:
                    continue
                raise
            if not record:
                break
            _, _, text = record.partition(";")
            lines.append(text.split("\n", 1)[0])
        return lines


@dataclass
class State:
    workdir: Path
    objects: dict[str, Any] = field(default_factory=dict)  # by object path
    links: list[Any] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)


_libc = ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: Any) -> None:
    if _libc.syscall(number, *args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def step_insmod(state: State, path: str, name: str, params: str = "") -> dict[str, Any]:
    fd = os.open(path, os.O_RDONLY)
    try:
        _syscall(_SYS_FINIT_MODULE, fd, params.encode(), 0)
    except OSError as exc:
        fixes = {
            errno.EEXIST: "a module of that name is already loaded",
            errno.ENOEXEC: "the .ko was built for another kernel: rebuild it for this target",
        }
        raise StepFailed(
            f"insmod {name}: {exc.strerror} (errno {exc.errno})",
            fixes.get(exc.errno or 0, "the module's init failed: read the kernel log lines"),
        ) from None
    finally:
        os.close(fd)
    state.modules.append(name)
    return {"module": name}


def step_rmmod(state: State, name: str, wait: float = 10.0) -> dict[str, Any]:
    if name not in state.modules:
        return {"module": name, "skipped": "not loaded by this plan"}
    # A closed BPF program that called the module's kfunc drops its module
    # reference only after an RCU grace period: EAGAIN until then.
    deadline = time.monotonic() + wait
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


def step_btf_module(state: State, module: str, kfuncs: list[str]) -> dict[str, Any]:
    from kfunc.libbpf.btf import find_funcs

    path = Path("/sys/kernel/btf", module)
    if not path.exists():
        raise StepFailed(
            f"{path}: missing, the module has no BTF",
            "build the module with BTF (kfunc build does) for this kernel",
        )
    found = find_funcs(path, Path("/sys/kernel/btf/vmlinux"), kfuncs)
    missing = [n for n, i in found.items() if i is None]
    if missing:
        raise StepFailed(
            f"{path}: no FUNC {', '.join(missing)}",
            "mark the kfunc __bpf_kfunc and list it in the module's BTF_ID_FLAGS set",
            kfuncs=found,
        )
    return {"path": str(path), "size": path.stat().st_size, "kfuncs": found}


def step_bpf_load(
    state: State, path: str, attach: bool = True, programs: list[str] | None = None,
    log_level: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """Load the object at ``path`` (the programs its sections autoload, or only
    ``programs``) and attach what can be attached from its section name."""
    from kfunc.libbpf import BpfObject

    obj = BpfObject(path, log_level=log_level)
    state.objects[path] = obj
    if programs is not None:
        missing = [p for p in programs if p not in obj.programs]
        if missing:
            raise StepFailed(
                f"object '{obj.name}': no program {missing[0]!r}",
                f"name one of its programs: {', '.join(obj.programs) or 'none'}",
            )
        for prog in obj.programs.values():
            prog.autoload = prog.name in programs
    try:
        obj.load()
    except KfuncError as exc:
        log = getattr(exc, "log", "")
        explained = _explain(f"{log}\n{exc.message}", path)
        raise StepFailed(
            explained.summary() if explained else exc.message,
            explained.fix if explained else exc.fix,
            log=log,
            errno=getattr(exc, "errno", 0),
            loader=exc.message,
            explanation=explained.to_dict() if explained else None,
        ) from None
    loaded = []
    for prog in obj.programs.values():
        info: dict[str, Any] = {"name": prog.name, "section": prog.section, "type": prog.type_name,
                                "autoload": prog.autoload}  # fmt: skip
        if attach and prog.autoload and prog.type_name in _ATTACHABLE:
            try:
                state.links.append(prog.attach())
            except KfuncError as exc:
                raise StepFailed(exc.message, exc.fix) from None
            info["attached"] = True
        loaded.append(info)
    return {"object": path, "programs": loaded}


def step_bpf_unload(state: State) -> dict[str, Any]:
    links, objects = len(state.links), len(state.objects)
    while state.links:
        state.links.pop().destroy()
    while state.objects:
        state.objects.popitem()[1].close()
    return {"links": links, "objects": objects}


def step_test_run(
    state: State, program: str, retval: int | None = None, data: str = "", repeat: int = 1,
    ctx: str | None = None, path: str | None = None, alone: bool = False,
    rejected: str | None = None, log: str | None = None, error: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """BPF_PROG_TEST_RUN of ``program`` with ``data`` and ``ctx`` (hex), checked against
    ``retval``; or, with ``rejected``, its load must fail with that text in the
    verifier log; with ``error``, the run must fail with that errno name.

    ``alone``: the program is loaded by itself from the object at ``path``
    (every other program's autoload off), run, and closed, as upstream's
    selftests load their ``SEC("?...")`` programs; else it is the program of
    an object loaded before (``bpf_load``).
    """
    if alone:
        if path is None:
            raise StepFailed(f"test_run {program}: alone needs the object's path")
        return _test_run_alone(path, program, retval, data, repeat, ctx, rejected, log, error)
    if rejected is not None:
        raise StepFailed(
            f"test_run {program}: rejected needs the program loaded alone",
            "set alone = true in its [[run.test]]",
        )
    # the program of the object at ``path`` (two objects may have programs of one name)
    objects = [state.objects[path]] if path in state.objects else list(state.objects.values())
    prog = next((o.programs[program] for o in objects if program in o.programs), None)
    if prog is not None and prog.fd < 0:
        raise StepFailed(
            f"test_run: program {program!r} was not loaded with its object (autoload off?)",
            "load it alone: alone = true in its [[run.test]]",
        )
    if prog is None:
        raise StepFailed(
            f"test_run: no program {program!r} loaded",
            "name a function of the BPF object (its SEC(...) program) in [[run.test]]",
        )
    return _run_checked(prog, retval, data, ctx, repeat, error)


def _run_checked(
    prog: Any, retval: int | None, data: str, ctx: str | None, repeat: int, error: str | None
) -> dict[str, Any]:
    ctx_in = None if ctx is None else bytes.fromhex(ctx)
    got: dict[str, Any] = {"program": prog.name, "expected": retval}
    try:
        result = prog.test_run(data_in=bytes.fromhex(data), ctx_in=ctx_in, repeat=repeat)
    except KfuncError as exc:
        err = getattr(exc, "errno", 0)
        name = errno.errorcode.get(err, str(err))
        if error is not None and name == error:
            return {**got, "error": name, "retval": -err, "expected": f"-{error}"}
        raise StepFailed(exc.message, exc.fix, **got) from None
    got.update(retval=result.retval, duration_ns=result.duration)
    if error is not None:
        raise StepFailed(
            f"test_run {prog.name}: returned {result.retval}, expected it to fail with {error}",
            None, **got,
        )  # fmt: skip
    if retval is not None and result.retval != retval:
        raise StepFailed(
            f"test_run {prog.name}: returned {result.retval}, expected {retval}", None, **got
        )
    return got


def _test_run_alone(
    path: str, program: str, retval: int | None, data: str, repeat: int, ctx: str | None,
    rejected: str | None, log: str | None, error: str | None,
) -> dict[str, Any]:  # fmt: skip
    from kfunc.libbpf import BpfObject

    with BpfObject(path, log_level=0 if log is None and rejected is None else 1) as obj:
        if program not in obj.programs:
            raise StepFailed(
                f"object '{obj.name}': no program {program!r}",
                f"name one of its programs: {', '.join(obj.programs) or 'none'}",
            )
        for prog in obj.programs.values():
            prog.autoload = prog.name == program
        prog = obj.programs[program]
        try:
            obj.load()
        except KfuncError as exc:
            verifier_log = getattr(exc, "log", "") or prog.log
            if rejected is None:
                raise StepFailed(exc.message, exc.fix, log=verifier_log) from None
            if rejected not in verifier_log:
                raise StepFailed(
                    f"test_run {program}: refused, but its verifier log lacks {rejected!r}",
                    "compare the log with the text expected", log=verifier_log,
                ) from None  # fmt: skip
            return {"program": program, "rejected": rejected, "loader": exc.message}
        if rejected is not None:
            raise StepFailed(
                f"test_run {program}: loaded, but the verifier was to refuse it ({rejected!r})",
                None, log=prog.log,
            )  # fmt: skip
        if log is not None and log not in prog.log:
            raise StepFailed(
                f"test_run {program}: its verifier log lacks {log!r}", None, log=prog.log
            )
        got = _run_checked(prog, retval, data, ctx, repeat, error)
        return {**got, "alone": True}


def step_trace_clear(state: State) -> dict[str, Any]:
    from kfunc.tracefs import TRACEFS, ensure_tracefs

    ensure_tracefs()
    (TRACEFS / "trace").write_text("")
    return {"tracefs": str(TRACEFS)}


def step_trigger(state: State, kind: str, command: str | None = None) -> dict[str, Any]:
    if kind == "unlink":
        fd, name = tempfile.mkstemp(prefix="kfunc-trigger-", dir=state.workdir)
        os.close(fd)
        os.unlink(name)
        return {"unlinked": name, "pid": os.getpid()}
    if kind == "command" and command:
        proc = subprocess.run(
            command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            check=False,
        )  # fmt: skip
        return {"command": command, "exit": proc.returncode, "output": proc.stdout[-2000:]}
    raise StepFailed(f"trigger: unknown kind {kind!r}")


# After the expected line: read on until no line came for this long (seconds).
_TRACE_QUIET = 0.3
_TRACE_MAX_LINES = 10_000


def step_trace(state: State, expect: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    from kfunc.tracefs import TracePipe, ensure_tracefs

    pattern = re.compile(expect) if expect else None
    lines: list[str] = []
    matched = None
    deadline = time.monotonic() + timeout
    ensure_tracefs()
    with TracePipe() as pipe:
        while time.monotonic() < deadline:
            line = pipe.readline(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                continue
            if not line.strip():  # a format's own "\n" leaves an empty line
                continue
            lines.append(line)
            if pattern is None or pattern.search(line):
                matched = line
                break
        # Every line the trigger caused, not only the first: what is already
        # there, and what follows within a short quiet spell.
        while matched is not None and len(lines) < _TRACE_MAX_LINES:
            line = pipe.readline(timeout=_TRACE_QUIET)
            if line is None:
                break
            if line.strip():
                lines.append(line)
    if matched is None:
        raise StepFailed(
            f"trace: no line matching {expect!r} within {timeout:g} s"
            if expect
            else f"trace: no output within {timeout:g} s",
            "check that the program attached where the trigger goes, and that it calls bpf_printk",
            lines=lines,
        )
    return {"lines": lines, "matched": matched}


def _explain(log: str, path: str) -> Any:
    """The verifier rules' explanation of a failed load (None if none applies)."""
    from kfunc.explain import explain_with_object

    try:
        return explain_with_object(log, path)
    except KfuncError:
        return None


def step_bpf_verify(
    state: State,
    path: str,
    drop_caps: list[str] | None = None,
    program: str | None = None,
    log_level: int = 0,
) -> dict[str, Any]:
    """Load an object (or only its ``program``) that may be refused, and report the
    verifier's answer (explained) without failing the plan; ``drop_caps`` are
    dropped first, in a child process (without, the load runs in the agent)."""
    from kfunc.caps import in_child
    from kfunc.explain import try_load

    if not drop_caps:
        return try_load(path, program, log_level).to_dict()
    return in_child(lambda: try_load(path, program, log_level).to_dict(), drop_caps)


def step_probe_kfuncs(
    state: State, programs: list[dict[str, Any]], types: list[dict[str, Any]], out: str
) -> dict[str, Any]:
    """``kfunc ls --probe``: which program types the verifier lets call which kfunc."""
    from kfunc.probe import run_probe

    return run_probe(programs, types, out)


# -- steps of the remote libbpf API (kfunc.vm.remote): one object, program or map


def _object(state: State, path: str) -> Any:
    obj = state.objects.get(path)
    if obj is None:
        raise StepFailed(f"object '{Path(path).name}': not loaded", "load it first (bpf_load)")
    return obj


def _libbpf_failed(exc: KfuncError) -> StepFailed:
    return StepFailed(exc.message, exc.fix, errno=getattr(exc, "errno", 0),
                      log=getattr(exc, "log", ""))  # fmt: skip


def step_bpf_describe(state: State, path: str) -> dict[str, Any]:
    """The programs and maps of a loaded object, and which programs are attached."""
    obj = _object(state, path)
    attached = {link.program.name for link in state.links if link.program._obj is obj}
    programs = [{"name": p.name, "section": p.section, "type": p.type_name,
                 "attached": p.name in attached, "autoload": p.autoload, "log": p.log}
                for p in obj.programs.values()]  # fmt: skip
    maps = [{"name": m.name, "type": m.type_name, "key_size": m.key_size,
             "value_size": m.value_size, "max_entries": m.max_entries}
            for m in obj.maps.values()]  # fmt: skip
    return {"object": path, "programs": programs, "maps": maps}


def step_bpf_close(state: State, path: str) -> dict[str, Any]:
    """Close one object: its links and ring buffers go with it."""
    obj = state.objects.pop(path, None)
    if obj is None:
        return {"object": path, "skipped": "not loaded"}
    links = [link for link in state.links if link.program._obj is obj]
    for link in links:
        state.links.remove(link)
        link.destroy()
    obj.close()
    return {"object": path, "links": len(links)}


def _program(state: State, path: str, program: str) -> Any:
    obj = _object(state, path)
    if program not in obj.programs:
        raise StepFailed(
            f"object '{obj.name}': no program {program!r}",
            f"name one of its programs: {', '.join(obj.programs) or 'none'}",
        )
    return obj.programs[program]


def step_prog_attach(state: State, path: str, program: str) -> dict[str, Any]:
    prog = _program(state, path, program)
    try:
        state.links.append(prog.attach())
    except KfuncError as exc:
        raise _libbpf_failed(exc) from None
    return {"program": program, "section": prog.section}


def step_prog_detach(state: State, path: str, program: str) -> dict[str, Any]:
    prog = _program(state, path, program)
    links = [link for link in state.links if link.program is prog]
    for link in links:
        state.links.remove(link)
        link.destroy()
    return {"program": program, "links": len(links)}


def step_prog_test_run(
    state: State, path: str, program: str, data: str = "", ctx: str | None = None,
    repeat: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """BPF_PROG_TEST_RUN with any input; the result whatever it is (no expectation)."""
    prog = _program(state, path, program)
    try:
        result = prog.test_run(bytes.fromhex(data), None if ctx is None else bytes.fromhex(ctx),
                               repeat)  # fmt: skip
    except KfuncError as exc:
        raise _libbpf_failed(exc) from None
    return {"program": program, "retval": result.retval, "duration": result.duration,
            "data_out": result.data_out.hex(), "ctx_out": result.ctx_out.hex()}  # fmt: skip


def _map(state: State, path: str, name: str) -> Any:
    obj = _object(state, path)
    if name not in obj.maps:
        raise StepFailed(
            f"object '{obj.name}': no map {name!r}",
            f"name one of its maps: {', '.join(obj.maps) or 'none'}",
        )
    return obj.maps[name]


def step_map_lookup(state: State, path: str, map: str, key: str) -> dict[str, Any]:
    try:
        value = _map(state, path, map).lookup(bytes.fromhex(key))
    except KfuncError as exc:
        raise _libbpf_failed(exc) from None
    return {"map": map, "value": None if value is None else value.hex()}


def step_map_update(
    state: State, path: str, map: str, key: str, value: str, flags: int = 0
) -> dict[str, Any]:
    try:
        _map(state, path, map).update(bytes.fromhex(key), bytes.fromhex(value), flags)
    except KfuncError as exc:
        raise _libbpf_failed(exc) from None
    return {"map": map}


def step_map_keys(state: State, path: str, map: str) -> dict[str, Any]:
    try:
        return {"map": map, "keys": [k.hex() for k in _map(state, path, map)]}
    except KfuncError as exc:
        raise _libbpf_failed(exc) from None


_RINGS: dict[tuple[str, str], Any] = {}  # open ring buffers, by object path and map


def step_ringbuf_consume(
    state: State, path: str, map: str, timeout: float = 0.0, max_events: int = 100_000
) -> dict[str, Any]:
    """Events of a ring buffer map (hex): what is there, or what comes within ``timeout``."""
    from kfunc.libbpf import RingBuffer

    map_ = _map(state, path, map)
    ring = _RINGS.get((path, map))
    if ring is None or ring.map is not map_ or ring._closed:
        try:
            ring = _RINGS[(path, map)] = RingBuffer(map_)
        except KfuncError as exc:
            raise _libbpf_failed(exc) from None
    events = ring.read(max_events)
    if not events and timeout > 0:
        ring.poll(timeout)
        events = ring.read(max_events)
    return {"map": map, "events": [e.hex() for e in events]}


def step_trace_read(
    state: State, timeout: float = 1.0, expect: str | None = None, max_lines: int = 10_000
) -> dict[str, Any]:
    """trace_pipe lines until one matches ``expect``, or ``timeout`` s pass; never fails."""
    from kfunc.tracefs import TracePipe, ensure_tracefs

    pattern = re.compile(expect) if expect else None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    ensure_tracefs()
    with TracePipe() as pipe:
        while len(lines) < max_lines:
            remaining = deadline - time.monotonic()
            line = pipe.readline(timeout=max(0.0, remaining))
            if line is None:
                if remaining <= 0:
                    break
                continue
            lines.append(line)
            if pattern is not None and pattern.search(line):
                break
    return {"lines": lines}


STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "bpf_verify": step_bpf_verify,
    "probe_kfuncs": step_probe_kfuncs,
    "insmod": step_insmod,
    "rmmod": step_rmmod,
    "btf_module": step_btf_module,
    "bpf_load": step_bpf_load,
    "bpf_unload": step_bpf_unload,
    "trace_clear": step_trace_clear,
    "trigger": step_trigger,
    "trace": step_trace,
    "test_run": step_test_run,
    "bpf_describe": step_bpf_describe,
    "bpf_close": step_bpf_close,
    "prog_attach": step_prog_attach,
    "prog_detach": step_prog_detach,
    "prog_test_run": step_prog_test_run,
    "map_lookup": step_map_lookup,
    "map_update": step_map_update,
    "map_keys": step_map_keys,
    "ringbuf_consume": step_ringbuf_consume,
    "trace_read": step_trace_read,
}


Emit = Callable[[dict[str, Any]], None]


def run_steps(steps: list[dict[str, Any]], state: State, kmsg: KernelLog, emit: Emit) -> bool:
    """Carry out ``steps``, emitting one event each; True when every step succeeded."""
    failed: set[int] = set()  # groups (projects) with a failed step
    for spec in steps:
        spec = dict(spec)
        op = spec.pop("op")
        always = spec.pop("always", False)
        group = spec.pop("group", 0)
        if group in failed and not always:
            emit({"step": op, "group": group, "ok": None, "skipped": True})
            continue
        event: dict[str, Any] = {"step": op, "group": group}
        start = time.monotonic()
        try:
            event["data"] = STEPS[op](state, **spec)
            event["ok"] = True
        except StepFailed as exc:
            event.update(ok=False, error=str(exc), fix=exc.fix, data=exc.data)
        except KfuncError as exc:
            event.update(ok=False, error=exc.message, fix=exc.fix)
        except Exception as exc:  # report, never lose the cleanup steps
            event.update(ok=False, error=f"{op}: {type(exc).__name__}: {exc}")
        event["seconds"] = round(time.monotonic() - start, 3)
        event["kernel_log"] = kmsg.read()
        if not event["ok"]:
            failed.add(group)
        emit(event)
    return not failed


def run_plan(plan: dict[str, Any], workdir: Path, emit: Emit) -> int:
    """Carry out ``plan``; return 0 when every step succeeded."""
    state = State(workdir)
    kmsg = KernelLog()
    emit({"step": "boot", "ok": True, "data": {"release": os.uname().release}})
    try:
        ok = run_steps(plan["steps"], state, kmsg, emit)
    except BaseException:
        # Interrupted (Ctrl-C where it runs on the host): what the plan loaded is
        # unloaded all the same.
        _cleanup(state, kmsg)
        raise
    emit({"step": "done", "ok": ok})
    return 0 if ok else 1


def _cleanup(state: State, kmsg: KernelLog) -> None:
    """What a served session left loaded: links, objects, then modules."""
    steps: list[dict[str, Any]] = [{"op": "bpf_unload"}]
    steps += [{"op": "rmmod", "name": name} for name in reversed(state.modules)]
    run_steps(steps, state, kmsg, lambda event: None)


def serve(directory: Path, idle: float) -> int:
    """Serve requests until asked to stop, or ``idle`` seconds pass without one.

    The host writes ``req-N.json`` (``{"steps": [...]}`` or ``{"stop": true}``,
    N = 0, 1, ...), renamed into place when complete; the answer is
    ``resp-N.jsonl``, one event a line, renamed into place when the last
    (``done``) is written. State (modules, BPF objects, links) carries over
    from one request to the next. A client claims N by creating
    ``claim-N``; a claim whose request never comes is skipped after a while.
    """
    state = State(directory)
    kmsg = KernelLog()
    (directory / "ready.tmp").write_text(json.dumps({"release": os.uname().release}))
    (directory / "ready.tmp").rename(directory / "ready")
    print(EVENT_PREFIX + json.dumps({"step": "ready", "ok": True}), flush=True)
    n, last = 0, time.monotonic()
    claimed_at: float | None = None
    while True:
        req = directory / f"req-{n}.json"
        now = time.monotonic()
        if not req.exists():
            if (directory / f"claim-{n}").exists():
                claimed_at = claimed_at or now
                if now - claimed_at > _CLAIM_TIMEOUT:
                    n, claimed_at = n + 1, None  # the client went away
                    continue
            elif now - last > idle:
                _cleanup(state, kmsg)
                return 0
            time.sleep(0.02)
            continue
        plan = json.loads(req.read_text())
        partial = directory / f"resp-{n}.jsonl.tmp"
        with partial.open("w") as out:

            def emit(event: dict[str, Any], out: Any = out) -> None:
                out.write(json.dumps(event) + "\n")
                out.flush()

            if plan.get("stop"):
                _cleanup(state, kmsg)
                emit({"step": "done", "ok": True})
            else:
                ok = run_steps(plan["steps"], state, kmsg, emit)
                emit({"step": "done", "ok": ok})
        partial.rename(directory / f"resp-{n}.jsonl")
        if plan.get("stop"):
            return 0
        n, last, claimed_at = n + 1, time.monotonic(), None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--port":  # a snapshot-able guest's /init (kfunc.vm.port)
        from kfunc.vm.port import serve_port

        return serve_port()
    if args and args[0] == "--serve":
        return serve(Path(args[1]), float(args[2]) if len(args) > 2 else 600.0)
    plan_path = Path(args[0])
    workdir = plan_path.parent
    out = (workdir / "events.jsonl").open("a")

    def emit(event: dict[str, Any]) -> None:
        text = json.dumps(event)
        out.write(text + "\n")
        out.flush()
        print(EVENT_PREFIX + text, flush=True)

    try:
        return run_plan(json.loads(plan_path.read_text()), workdir, emit)
    finally:
        out.close()


if __name__ == "__main__":
    sys.exit(main())
