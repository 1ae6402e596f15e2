"""Steps on BPF objects and their programs: load, describe, attach, test-run, close."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from kfunc.errors import KfuncError
from kfunc.vm.agent.state import State, StepFailed, libbpf_failed
from kfunc.vm.protocol import (
    BpfClose,
    BpfCloseReply,
    BpfDescribe,
    BpfDescribeReply,
    BpfLoad,
    BpfLoadReply,
    BpfUnload,
    BpfUnloadReply,
    BpfVerify,
    ProbeKfuncs,
    ProgAttach,
    ProgAttachReply,
    ProgDetach,
    ProgDetachReply,
    ProgramInfo,
    TestRun,
    TestRunReply,
)

__all__ = ["HANDLERS", "loaded_object"]

# Program types libbpf attaches from their section name alone; the others
# (syscall, xdp, tc ...) are exercised with BPF_PROG_TEST_RUN instead.
_ATTACHABLE = {"kprobe", "tracepoint", "raw_tracepoint", "tracing", "lsm"}


def _no_program(obj: Any, program: str) -> StepFailed:
    return StepFailed(
        f"object '{obj.name}': no program {program!r}",
        f"name one of its programs: {', '.join(obj.programs) or 'none'}",
    )


def loaded_object(state: State, path: str) -> Any:
    """The object loaded from ``path``."""
    obj = state.objects.get(path)
    if obj is None:
        raise StepFailed(f"object '{Path(path).name}': not loaded", "load it first (bpf_load)")
    return obj


def _program(state: State, path: str, program: str) -> Any:
    obj = loaded_object(state, path)
    if program not in obj.programs:
        raise _no_program(obj, program)
    return obj.programs[program]


def _explain(log: str, path: str) -> Any:
    """The verifier rules' explanation of a failed load (None if none applies)."""
    from kfunc.explain import explain_with_object

    try:
        return explain_with_object(log, path)
    except KfuncError:
        return None


def bpf_load(state: State, op: BpfLoad) -> BpfLoadReply:
    from kfunc.libbpf import BpfObject

    path = op.path
    obj = BpfObject(path, log_level=op.log_level)
    state.objects[path] = obj
    if op.programs is not None:
        missing = [p for p in op.programs if p not in obj.programs]
        if missing:
            raise _no_program(obj, missing[0])
        for prog in obj.programs.values():
            prog.autoload = prog.name in op.programs
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
    loaded: list[ProgramInfo] = []
    for prog in obj.programs.values():
        info: ProgramInfo = {"name": prog.name, "section": prog.section, "type": prog.type_name,
                             "autoload": prog.autoload}  # fmt: skip
        if op.attach and prog.autoload and prog.type_name in _ATTACHABLE:
            try:
                state.links.append(prog.attach())
            except KfuncError as exc:
                raise StepFailed(exc.message, exc.fix) from None
            info["attached"] = True
        loaded.append(info)
    return {"object": path, "programs": loaded}


def bpf_unload(state: State, op: BpfUnload) -> BpfUnloadReply:
    links, objects = len(state.links), len(state.objects)
    while state.links:
        state.links.pop().destroy()
    state.rings.clear()
    while state.objects:
        state.objects.popitem()[1].close()
    return {"links": links, "objects": objects}


def bpf_close(state: State, op: BpfClose) -> BpfCloseReply:
    obj = state.objects.pop(op.path, None)
    if obj is None:
        return {"object": op.path, "skipped": "not loaded"}
    links = [link for link in state.links if link.program._obj is obj]
    for link in links:
        state.links.remove(link)
        link.destroy()
    for key in [k for k in state.rings if k[0] == op.path]:
        del state.rings[key]
    obj.close()
    return {"object": op.path, "links": len(links)}


def bpf_describe(state: State, op: BpfDescribe) -> BpfDescribeReply:
    obj = loaded_object(state, op.path)
    attached = {link.program.name for link in state.links if link.program._obj is obj}
    programs: list[ProgramInfo] = [
        {"name": p.name, "section": p.section, "type": p.type_name,
         "attached": p.name in attached, "autoload": p.autoload, "log": p.log}
        for p in obj.programs.values()
    ]  # fmt: skip
    maps = [{"name": m.name, "type": m.type_name, "key_size": m.key_size,
             "value_size": m.value_size, "max_entries": m.max_entries}
            for m in obj.maps.values()]  # fmt: skip
    return {"object": op.path, "programs": programs, "maps": maps}  # type: ignore[typeddict-item]


def bpf_verify(state: State, op: BpfVerify) -> dict[str, Any]:
    from kfunc.caps import in_child
    from kfunc.explain import try_load

    if not op.drop_caps:
        return try_load(op.path, op.program, op.log_level).to_dict()
    return in_child(lambda: try_load(op.path, op.program, op.log_level).to_dict(), op.drop_caps)


def probe_kfuncs(state: State, op: ProbeKfuncs) -> dict[str, Any]:
    from kfunc.probe import run_probe

    return run_probe(op.programs, op.types, op.out)


def prog_attach(state: State, op: ProgAttach) -> ProgAttachReply:
    prog = _program(state, op.path, op.program)
    try:
        state.links.append(prog.attach())
    except KfuncError as exc:
        raise libbpf_failed(exc) from None
    return {"program": op.program, "section": prog.section}


def prog_detach(state: State, op: ProgDetach) -> ProgDetachReply:
    prog = _program(state, op.path, op.program)
    links = [link for link in state.links if link.program is prog]
    for link in links:
        state.links.remove(link)
        link.destroy()
    return {"program": op.program, "links": len(links)}


def test_run(state: State, op: TestRun) -> TestRunReply:
    if op.alone:
        if op.path is None:
            raise StepFailed(f"test_run {op.program}: alone needs the object's path")
        return _test_run_alone(op, op.path)
    if op.rejected is not None:
        raise StepFailed(
            f"test_run {op.program}: rejected needs the program loaded alone",
            "set alone = true in its [[run.test]]",
        )
    # the program of the object at ``path`` (two objects may have programs of one name)
    objects = [state.objects[op.path]] if op.path in state.objects else list(state.objects.values())
    prog = next((o.programs[op.program] for o in objects if op.program in o.programs), None)
    if prog is not None and prog.fd < 0:
        raise StepFailed(
            f"test_run: program {op.program!r} was not loaded with its object (autoload off?)",
            "load it alone: alone = true in its [[run.test]]",
        )
    if prog is None:
        raise StepFailed(
            f"test_run: no program {op.program!r} loaded",
            "name a function of the BPF object (its SEC(...) program) in [[run.test]]",
        )
    return _run_checked(prog, op)


def _run_checked(prog: Any, op: TestRun) -> TestRunReply:
    ctx_in = None if op.ctx is None else bytes.fromhex(op.ctx)
    got: TestRunReply = {"program": prog.name, "expected": op.retval}
    try:
        result = prog.test_run(data_in=bytes.fromhex(op.data), ctx_in=ctx_in, repeat=op.repeat)
    except KfuncError as exc:
        err = getattr(exc, "errno", 0)
        name = errno.errorcode.get(err, str(err))
        if op.error is not None and name == op.error:
            return {**got, "error": name, "retval": -err, "expected": f"-{op.error}"}
        raise StepFailed(exc.message, exc.fix, **got, errno=err,
                         log=getattr(exc, "log", "")) from None  # fmt: skip
    got["retval"], got["duration_ns"] = result.retval, result.duration
    got["data_out"], got["ctx_out"] = result.data_out.hex(), result.ctx_out.hex()
    if op.error is not None:
        raise StepFailed(
            f"test_run {prog.name}: returned {result.retval}, expected it to fail with {op.error}",
            None, **got,
        )  # fmt: skip
    if op.retval is not None and result.retval != op.retval:
        raise StepFailed(
            f"test_run {prog.name}: returned {result.retval}, expected {op.retval}", None, **got
        )
    return got


def _test_run_alone(op: TestRun, path: str) -> TestRunReply:
    from kfunc.libbpf import BpfObject

    program, rejected = op.program, op.rejected
    log_level = 0 if op.log is None and rejected is None else 1
    with BpfObject(path, log_level=log_level) as obj:
        if program not in obj.programs:
            raise _no_program(obj, program)
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
            return {"program": program, "expected": op.retval, "rejected": rejected,
                    "loader": exc.message}  # fmt: skip
        if rejected is not None:
            raise StepFailed(
                f"test_run {program}: loaded, but the verifier was to refuse it ({rejected!r})",
                None, log=prog.log,
            )  # fmt: skip
        if op.log is not None and op.log not in prog.log:
            raise StepFailed(
                f"test_run {program}: its verifier log lacks {op.log!r}", None, log=prog.log
            )
        got = _run_checked(prog, op)
        return {**got, "alone": True}


HANDLERS: dict[type, Any] = {
    BpfLoad: bpf_load,
    BpfUnload: bpf_unload,
    BpfClose: bpf_close,
    BpfDescribe: bpf_describe,
    BpfVerify: bpf_verify,
    ProbeKfuncs: probe_kfuncs,
    ProgAttach: prog_attach,
    ProgDetach: prog_detach,
    TestRun: test_run,
}
