"""``kfunc run``: projects, end to end, on a target kernel, in one boot.

For each project: build the module with BTF and the BPF programs against the
target's vmlinux.h, and check that the calls can work there. Then boot the
kernel once, and in the guest, project after project: insmod, check the
kfuncs' registration in /sys/kernel/btf, load and attach the programs through
libbpf, trigger them and read the trace, test-run programs, detach, rmmod.
The result is a :class:`RunReport` with one :class:`ProjectReport` each.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfunc.build import ProjectBuild, build_project
from kfunc.errors import GuestPanicError, KfuncError, LostVMError
from kfunc.kernels.local import check_host_modules, program_config, require_config
from kfunc.kernels.target import Kernel, get_kernel
from kfunc.progress import Progress
from kfunc.project import Project, TestRun, bpf_sections, unpicked_bpf_sources
from kfunc.vm import protocol as proto
from kfunc.vm.bundle import agent_argv
from kfunc.vm.client import AgentClient
from kfunc.vm.guest import ConsoleLine, Guest
from kfunc.vm.keeper import find_kept
from kfunc.vm.machine import BootedSession, machine_supported
from kfunc.vm.protocol import EVENT_PREFIX, Event, Op, encode_request, encode_steps

__all__ = [
    "KernelOutcome",
    "ProjectReport",
    "RunReport",
    "check_runnable",
    "plan_test_run",
    "printk_message",
    "run_matrix",
    "run_projects",
]


@dataclass
class ProjectReport:
    """What one project did and saw in the guest."""

    project: str
    module: dict[str, Any] | None = None
    objects: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: list[Event] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    result: str | None = None
    tests: list[dict[str, Any]] = field(default_factory=list)
    registered: dict[str, Any] | None = None
    unloaded: bool = False
    kernel_log: list[str] = field(default_factory=list)
    error: str | None = None
    fix: str | None = None
    expects_trace: bool = True

    @property
    def ok(self) -> bool:
        seen = self.result is not None or not self.expects_trace
        return self.error is None and seen and self.unloaded


@dataclass
class RunReport:
    """A run of projects in one boot of a kernel; ``ok`` when every project was."""

    kernel: dict[str, str]
    projects: list[ProjectReport] = field(default_factory=list)
    accel: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.projects) and all(p.ok for p in self.projects)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        for p, pd in zip(self.projects, d["projects"], strict=True):
            pd["ok"] = p.ok
        return d


def _project_steps(built: ProjectBuild, group: int, rundir: Path, trace_timeout: float) -> list[Op]:
    project, module, objects = built.project, built.module, built.objects
    own = rundir / str(group)
    own.mkdir()
    g = group
    steps: list[Op] = [proto.TraceClear(group=g)]
    if module is not None:
        ko = shutil.copy2(module.ko, own)
        steps.append(proto.Insmod(path=str(ko), name=module.name, group=g))
        steps.append(
            proto.BtfModule(module=module.name, kfuncs=[k.name for k in module.kfuncs], group=g)
        )
    staged = {obj: str(shutil.copy2(obj, own)) for obj in objects}
    for obj in objects:
        steps.append(proto.BpfLoad(path=staged[obj], group=g))
    steps += [_test_run_op(test, objects, staged, g) for test in project.tests]
    if project.trigger == "unlink":
        steps.append(proto.Trigger(kind="unlink", group=g))
    elif project.trigger:
        steps.append(proto.Trigger(kind="command", command=project.trigger, group=g))
    if project.trigger or project.expect:
        # without expect, any line the trigger caused
        steps.append(proto.Trace(expect=project.expect or "", timeout=trace_timeout, group=g))
    steps.append(proto.BpfUnload(always=True, group=g))
    if module is not None:
        steps.append(proto.Rmmod(name=module.name, always=True, group=g))
    return steps


def plan_test_run(test: TestRun, objects: list[Path], staged: dict[Path, str]) -> dict[str, Any]:
    """The agent's ``test_run`` step (as JSON) for one ``[[run.test]]``: the object
    that holds the program, whether to load it alone, and the input as bytes."""
    return _test_run_op(test, objects, staged, 0).to_json()


def _test_run_op(
    test: TestRun, objects: list[Path], staged: dict[Path, str], group: int
) -> proto.TestRun:
    from kfunc.check import read_bpf_object

    def stem(obj: Path) -> str:
        return obj.name.removesuffix(".o").removesuffix(".bpf")

    mine = [o for o in objects if test.object is None or stem(o) == test.object]
    if not mine:
        raise KfuncError(
            f"[[run.test]] {test.program}: no object {test.object!r}",
            f"name one of: {', '.join(stem(o) for o in objects)}",
        )
    found = [(obj, p) for obj in mine for p in read_bpf_object(obj).programs
             if p.name == test.program]  # fmt: skip
    if len({obj for obj, _ in found}) > 1:
        raise KfuncError(
            f"[[run.test]] {test.program}: several objects have it "
            f"({', '.join(stem(o) for o, _ in found)})",
            f'say which: object = "{stem(found[0][0])}"',
        )
    if not found:
        have = sorted(p.name for obj in mine for p in read_bpf_object(obj).programs)
        raise KfuncError(
            f"[[run.test]] {test.program}: no program of that name in "
            f"{', '.join(o.name for o in objects) or 'the project (no BPF object)'}",
            f"name one of: {', '.join(have) or 'none'}",
        )
    obj, prog = found[0]
    alone = test.alone if test.alone is not None else prog.section.startswith("?")
    ctx = test.ctx_bytes(obj)
    return proto.TestRun(
        program=test.program, path=staged[obj], alone=alone, retval=test.retval,
        data=test.data().hex(), ctx=None if ctx is None else ctx.hex(), rejected=test.rejected,
        log=test.log, error=test.error, group=group,
    )  # fmt: skip


def check_runnable(projects: list[Project]) -> None:
    """Refuse a project with no BPF program to run, before a kernel is fetched."""
    for project in projects:
        if project.bpf_sources:
            continue
        unpicked = unpicked_bpf_sources(project)
        above = project.path.parent
        message = f"{project.path}: no BPF program (*.bpf.c) to run"
        if unpicked:
            names = ", ".join(str(p.relative_to(project.path)) for p in unpicked)
            message += f"; {names} has SEC() programs, but kfunc takes *.bpf.c files only"
            first = unpicked[0].relative_to(project.path)
            fix = (
                f"rename {first} to {str(first)[:-2]}.bpf.c, or list it in kfunc.toml: "
                f'[bpf] sources = ["{first}"]'
            )
        elif any(above.glob("*.bpf.c")):
            fix = (
                f"run kfunc on {above}, the project: its programs are there, and it finds the "
                "module in its subdirectory"
            )
        else:
            fix = "add a BPF C program that calls the kfunc, or use `kfunc build` for the module"
        raise KfuncError(message, fix)


def run_projects(
    projects: list[Project],
    kernel_name: str,
    progress: Progress | None = None,
    *,
    timeout: float = 180.0,
    trace_timeout: float = 10.0,
    use_kept: bool = True,
    session: AgentClient | None = None,
    on_host: bool = False,
) -> RunReport:
    """Run ``projects`` on the kernel ``kernel_name`` in one boot; see the module docstring.

    Where a kept guest of that kernel is up (``kfunc vm start``), the plan goes
    to it instead, and nothing boots; else a guest restored from the kernel's
    snapshot runs it (:mod:`kfunc.vm.snapshot`; ``use_kept=False`` boots). So
    it does to ``session``, a guest of that kernel already serving (a test's
    GuestSession). ``on_host``: the plan runs in the running kernel
    (``kernel_name`` must be ``host``), where it can load modules.
    """
    progress = progress or Progress()
    check_runnable(projects)
    if os.geteuid() != 0:
        # virtme-ng runs the guest as the user who starts it: only root may
        # insert modules and load BPF programs there.
        raise KfuncError(
            "kfunc run: needs root (the guest loads modules and BPF programs as the user "
            "that starts it)",
            "run it as root, or with sudo",
        )
    if on_host:
        check_host_modules()
    t0 = time.monotonic()
    with progress.step(f"kernel {kernel_name}") as step:
        kernel = get_kernel(kernel_name, progress)
        step.summary = f"kernel {kernel.version} ({kernel.release})"
    report = RunReport(kernel=kernel.to_dict())
    for project in projects:
        options = program_config(bpf_sections(project.bpf_sources))
        require_config(kernel, options, f"{project.name}'s programs")
    kept = find_kept(kernel) if use_kept and session is None and not on_host else None
    # A fresh guest runs on kfunc's machine (vm.machine): restored from the
    # kernel's snapshot, or booted (--boot). virtme-ng boots it where the
    # machine cannot run the kernel, or a trigger may run a host tool the
    # machine's root (busybox) lacks.
    on_machine = (
        not on_host
        and session is None
        and kept is None
        and machine_supported(kernel)
        and not any(_runs_host_tools(p) for p in projects)
    )
    restore = on_machine and use_kept
    with contextlib.ExitStack() as stack:
        # A fresh guest that boots does so while the projects build.
        fresh = booting = None
        if on_machine and not use_kept:
            booting = BootedSession(kernel)
            stack.callback(booting.close)
            booting.launch()
        elif not on_host and session is None and kept is None and not restore:
            fresh = stack.enter_context(_BootingGuest(kernel, progress))
        prepared = []
        for project in projects:
            built = build_project(project, kernel, progress)
            preport = ProjectReport(
                project=str(project.path),
                module=built.module.to_dict() if built.module else None,
                objects=[str(o) for o in built.objects],
                warnings=built.warnings,
                expects_trace=bool(project.trigger or project.expect),
            )
            prepared.append(built)
            report.projects.append(preport)
        report.seconds["prepare"] = round(time.monotonic() - t0, 2)

        if on_host:
            events = _run_on_host(prepared, report, progress, trace_timeout)
        elif session is not None:
            events = _run_in_session(session, "session", prepared, report, progress, timeout,
                                     trace_timeout)  # fmt: skip
        elif kept is not None:
            events = _run_in_session(kept.client, f"kept guest {kept.release}", prepared,
                                     report, progress, timeout, trace_timeout)  # fmt: skip
        elif restore:
            events = _run_in_restored_guest(kernel, prepared, report, progress, timeout,
                                            trace_timeout)  # fmt: skip
        elif booting is not None:
            events = _run_in_booted_guest(booting, prepared, report, progress, timeout,
                                          trace_timeout)  # fmt: skip
        else:
            assert fresh is not None
            events = _run_in_new_guest(fresh, prepared, report, progress, timeout,
                                       trace_timeout)  # fmt: skip
    report.seconds["total"] = round(time.monotonic() - t0, 2)
    for group, (preport, built) in enumerate(zip(report.projects, prepared, strict=True)):
        _read_events(preport, [e for e in events if e.get("group") == group])
        if built.module is None:
            preport.unloaded = True  # nothing to unload
    return report


def _plan(prepared: list[ProjectBuild], rundir: Path, trace_timeout: float) -> list[Op]:
    """The steps of every project, each project a group of its own."""
    steps: list[Op] = []
    for group, built in enumerate(prepared):
        steps += _project_steps(built, group, rundir, trace_timeout)
    return steps


def _run_in_session(
    client: AgentClient, label: str, prepared: list[ProjectBuild], report: RunReport,
    progress: Progress, timeout: float, trace_timeout: float,
) -> list[Event]:  # fmt: skip
    """Send the plan to a guest that serves (kept, or a session): no boot."""
    rundir = Path(tempfile.mkdtemp(prefix="run-", dir=client.directory))
    try:
        steps = _plan(prepared, rundir, trace_timeout)
        t1 = time.monotonic()
        with progress.step(f"{label}: run") as step:
            events = client.call(encode_request(steps), timeout)
            step.summary = f"{label}: ran {len(steps)} steps"
        report.accel = "kept guest" if label.startswith("kept") else label
        report.seconds["guest"] = report.seconds["steps"] = round(time.monotonic() - t1, 2)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    return events


def _run_on_host(
    prepared: list[ProjectBuild], report: RunReport, progress: Progress, trace_timeout: float
) -> list[Event]:
    """Carry out the plan in the running kernel, with the guest agent's own steps
    (their rmmod runs on every exit path, Ctrl-C included)."""
    from kfunc.vm.agent import run_plan

    rundir = Path(tempfile.mkdtemp(prefix="kfunc-host-"))
    events: list[Event] = []
    try:
        steps = _plan(prepared, rundir, trace_timeout)
        t1 = time.monotonic()
        with progress.step(f"host {os.uname().release}: run") as step:
            run_plan({"steps": steps}, rundir, events.append)
            step.summary = f"host {os.uname().release}: ran {len(steps)} steps"
        report.accel = "host"
        report.seconds["guest"] = report.seconds["steps"] = round(time.monotonic() - t1, 2)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    return events


def _runs_host_tools(project: Project) -> bool:
    """Whether the project's trigger is a shell command: it may run a host tool that
    only a guest with the host's root (a vng boot) has, not the restored guest's
    initramfs (busybox)."""
    return project.trigger not in (None, "unlink")


def _run_in_restored_guest(
    kernel: Kernel, prepared: list[ProjectBuild], report: RunReport, progress: Progress,
    timeout: float, trace_timeout: float,
) -> list[Event]:  # fmt: skip
    """Restore a fresh guest of ``kernel`` from its snapshot (booted and saved
    the first time), carry out the plan, end it."""
    from kfunc.vm.snapshot import SnapshotSession

    t1 = time.monotonic()
    session = SnapshotSession(kernel)
    try:
        with progress.step(f"guest {kernel.release}: restore") as step:
            step.summary = f"guest {kernel.release}: restored from its snapshot"
            session.start()
            if not session.restored:
                step.summary = f"guest {kernel.release}: booted and saved a snapshot (once)"
        label = f"guest {kernel.release}"
        events = _run_in_session(session, label, prepared, report, progress, timeout,
                                 trace_timeout)  # fmt: skip
    finally:
        session.close()
    report.accel = f"{session.accel}, restored" if session.restored else session.accel
    report.seconds["restore"] = round(session.timings.get("first_answer", 0.0), 2)
    report.seconds["guest"] = round(time.monotonic() - t1, 2)
    return events


def _run_in_booted_guest(
    guest: BootedSession, prepared: list[ProjectBuild], report: RunReport, progress: Progress,
    timeout: float, trace_timeout: float,
) -> list[Event]:  # fmt: skip
    """Wait for the guest launched before the build to answer, carry out the plan,
    end it."""
    release = guest.kernel.release
    built = time.monotonic()
    with progress.step(f"guest {release}: boot") as step:
        guest.start()
        step.summary = f"guest {release} ({guest.accel}): booted"
    assert guest.machine is not None
    launched = guest.machine.start
    events = _run_in_session(guest, f"guest {release}", prepared, report, progress, timeout,
                             trace_timeout)  # fmt: skip
    stopping = time.monotonic()
    guest.close()
    done = time.monotonic()
    report.accel = guest.accel
    # Where the guest's time went, as for a virtme-ng boot: the boot to the
    # agent's first answer, the wait for the host's build when the boot was
    # the faster, the steps, and power-off.
    booted = guest.timings["first_answer"]
    report.seconds["boot"] = round(booted, 2)
    for phase in ("kernel", "python", "agent"):  # the boot, as the guest saw it
        if phase in guest.timings:
            report.seconds[f"boot_{phase}"] = round(guest.timings[phase], 2)
    report.seconds["wait_build"] = round(max(0.0, built - launched - booted), 2)
    report.seconds["poweroff"] = round(done - stopping, 2)
    report.seconds["guest"] = round(done - launched, 2)
    return events


class _BootingGuest:
    """A fresh guest, started before the projects build: its agent imports what the
    steps need and waits for the plan while the host builds (see
    :func:`kfunc.vm.agent.serve.run_plan_file`). A context manager: the guest
    and its run directory go on every exit path."""

    def __init__(self, kernel: Kernel, progress: Progress) -> None:
        self.kernel = kernel
        self.progress = progress
        self.live = False  # console lines go to the progress line once the run is the step
        self.marks: dict[str, float] = {}
        self.rundir = Path(tempfile.mkdtemp(prefix="kfunc-run-"))
        self.started = time.monotonic()
        try:
            argv = agent_argv(str(self.rundir / "plan.json"))
            self.process = Guest(kernel).start(argv, self.rundir, self._on_line)
        except BaseException:
            shutil.rmtree(self.rundir, ignore_errors=True)
            raise

    def _on_line(self, line: ConsoleLine) -> None:
        now = time.monotonic()
        self.marks.setdefault("console", now)
        if line.text.startswith(EVENT_PREFIX):
            event = json.loads(line.text[len(EVENT_PREFIX) :])
            self.marks.setdefault(event["step"], now)
            if self.live:
                state = {True: "ok", False: "FAILED", None: "skipped"}[event.get("ok")]
                self.progress.update(f"{event['step']}: {state}")
        elif line.is_kernel and self.live:
            self.progress.update(line.message[:100])

    def __enter__(self) -> _BootingGuest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()
        shutil.rmtree(self.rundir, ignore_errors=True)


def _run_in_new_guest(
    guest: _BootingGuest, prepared: list[ProjectBuild], report: RunReport, progress: Progress,
    timeout: float, trace_timeout: float,
) -> list[Event]:  # fmt: skip
    """Hand the plan to the booting guest, let it run, power off."""
    kernel, rundir, marks = guest.kernel, guest.rundir, guest.marks
    events: list[Event] = []
    steps = _plan(prepared, rundir, trace_timeout)
    partial = rundir / "plan.json.tmp"
    partial.write_text(json.dumps({"steps": encode_steps(steps)}, indent=2))
    partial.rename(rundir / "plan.json")
    guest.live = True
    with progress.step(f"guest {kernel.release}: boot and run") as step:
        try:
            run = guest.process.finish(timeout)
            step.summary = f"guest {kernel.release} ({run.accel}): booted, ran, powered off"
        except (LostVMError, GuestPanicError) as exc:
            raise _while_step(exc, steps, rundir / "events.jsonl") from None
        finally:
            events_file = rundir / "events.jsonl"
            if events_file.exists():
                events = [json.loads(ln) for ln in events_file.read_text().splitlines() if ln]
    report.accel = run.accel
    t2 = time.monotonic()
    report.seconds["guest"] = round(t2 - guest.started, 2)
    # Where the guest's time went: qemu start, kernel boot to our agent (ready),
    # waiting for the build (when it was the slower), the steps, and power-off.
    if {"console", proto.BOOT, proto.DONE} <= marks.keys():
        ready = marks.get(proto.READY, marks[proto.BOOT])
        report.seconds["vm_start"] = round(marks["console"] - guest.started, 2)
        report.seconds["boot"] = round(ready - marks["console"], 2)
        report.seconds["wait_build"] = round(marks[proto.BOOT] - ready, 2)
        report.seconds["steps"] = round(marks[proto.DONE] - marks[proto.BOOT], 2)
        report.seconds["poweroff"] = round(t2 - marks[proto.DONE], 2)
    if not any(e["step"] == proto.DONE for e in events):
        # The console's tail, the agent's own lines too: a Python error or an
        # oops that killed the agent shows there.
        raise LostVMError(
            f"guest {kernel.release}: stopped before the run finished",
            [line.message for line in run.console[-25:]],
            "the guest's console above says why",
        )
    return events


def _while_step(
    exc: LostVMError | GuestPanicError, steps: list[Op], events_file: Path
) -> LostVMError | GuestPanicError:
    """``exc`` (of its class), saying which step of the plan the guest was in when it
    was lost."""
    done = 0
    if events_file.exists():
        done = sum(1 for ln in events_file.read_text().splitlines() if ln) - 1  # minus boot
    if done < 0:
        where = "before the agent started"
    elif done < len(steps):
        where = f"during step {steps[done].label()}"
    else:
        where = "after the last step"
    return type(exc)(f"{exc.message} ({where})", exc.kernel_log, exc.fix)


def _read_events(report: ProjectReport, events: list[Event]) -> None:
    for event in events:
        report.steps.append(event)
        report.kernel_log += event.get("kernel_log", [])
        data = event.get("data") or {}
        step = event["step"]
        if step == proto.Trace.op:
            report.trace = data.get("lines", [])
            if event.get("ok"):
                report.result = data.get("matched")
        elif step == proto.TestRun.op and event.get("ok") is not None:
            report.tests.append(data)
        elif step == proto.BtfModule.op and event.get("ok"):
            report.registered = data
        elif step == proto.Rmmod.op and event.get("ok"):
            report.unloaded = bool(data.get("unloaded"))
        if event.get("ok") is False and report.error is None:
            report.error = event.get("error")
            report.fix = event.get("fix")


@dataclass
class KernelOutcome:
    """What a run on one kernel of a matrix came to: a report (it booted), or the
    error that stopped it; ``refused`` when that was before any boot (a check)."""

    kernel: str
    report: RunReport | None = None
    error: str | None = None
    fix: str | None = None
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.report is not None and self.report.ok

    def summary(self) -> str:
        """One line: the result seen, or why there is none."""
        if self.report is None:
            return ("refused before boot: " if self.refused else "failed: ") + (self.error or "")
        projects = self.report.projects
        results = [
            (Path(p.project).name + ": " if len(projects) > 1 else "") + printk_message(p.result)
            for p in projects
            if p.result
        ]
        if self.report.ok:
            if results:
                return "; ".join(results)
            return f"{sum(len(p.tests) for p in self.report.projects)} test run(s) passed"
        failed = next((p for p in self.report.projects if not p.ok), None)
        return f"failed: {(failed.error if failed else None) or 'the run did not show its result'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "ok": self.ok,
            "refused": self.refused,
            "summary": self.summary(),
            "error": self.error,
            "fix": self.fix,
            "report": self.report.to_dict() if self.report else None,
        }


def printk_message(line: str) -> str:
    """A trace line's bpf_printk message (the whole line if it is not one)."""
    _, _, message = line.partition("bpf_trace_printk: ")
    return (message or line).strip()


def run_matrix(
    projects: list[Project],
    kernels: list[str],
    progress: Progress | None = None,
    **options: Any,
) -> list[KernelOutcome]:
    """Run ``projects`` on each of ``kernels``, one boot each where the checks
    pass; a kernel whose checks refuse the projects is not booted."""
    from kfunc.errors import BuildError, CheckError

    check_runnable(projects)
    outcomes = []
    for name in kernels:
        try:
            outcomes.append(KernelOutcome(name, run_projects(projects, name, progress, **options)))
        except (CheckError, BuildError) as exc:  # found on the host: nothing booted
            outcomes.append(KernelOutcome(name, error=exc.message, fix=exc.fix, refused=True))
        except KfuncError as exc:
            outcomes.append(KernelOutcome(name, error=exc.message, fix=exc.fix))
    return outcomes
