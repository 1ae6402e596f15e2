"""``kfunc run``: projects, end to end, on a target kernel, in one boot.

For each project: build the module with BTF and the BPF programs against the
target's vmlinux.h, and check that the calls can work there. Then boot the
kernel once, and in the guest, project after project: insmod, check the
kfuncs' registration in /sys/kernel/btf, load and attach the programs through
libbpf, trigger them and read the trace, test-run programs, detach, rmmod.
The result is a :class:`RunReport` with one :class:`ProjectReport` each.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfunc.build import ProjectBuild, build_project
from kfunc.errors import KfuncError, LostVMError
from kfunc.kernels.target import Kernel, get_kernel
from kfunc.progress import Progress
from kfunc.project import Project, TestRun
from kfunc.vm.agent import EVENT_PREFIX
from kfunc.vm.guest import ConsoleLine, Guest
from kfunc.vm.keeper import find_kept
from kfunc.vm.session import SessionClient

__all__ = ["ProjectReport", "RunReport", "plan_test_run", "run_projects"]


@dataclass
class ProjectReport:
    """What one project did and saw in the guest."""

    project: str
    module: dict[str, Any] | None = None
    objects: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
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


def _project_steps(
    built: ProjectBuild, group: int, rundir: Path, trace_timeout: float
) -> list[dict[str, Any]]:
    project, module, objects = built.project, built.module, built.objects
    own = rundir / str(group)
    own.mkdir()
    steps: list[dict[str, Any]] = [{"op": "trace_clear"}]
    if module is not None:
        ko = shutil.copy2(module.ko, own)
        steps.append({"op": "insmod", "path": str(ko), "name": module.name})
        steps.append(
            {"op": "btf_module", "module": module.name, "kfuncs": [k.name for k in module.kfuncs]}
        )
    staged = {obj: str(shutil.copy2(obj, own)) for obj in objects}
    for obj in objects:
        steps.append({"op": "bpf_load", "path": staged[obj]})
    steps += [plan_test_run(test, objects, staged) for test in project.tests]
    if project.trigger == "unlink":
        steps.append({"op": "trigger", "kind": "unlink"})
    elif project.trigger:
        steps.append({"op": "trigger", "kind": "command", "command": project.trigger})
    if project.trigger or project.expect:
        steps.append({"op": "trace", "expect": project.expect, "timeout": trace_timeout})
    steps.append({"op": "bpf_unload", "always": True})
    if module is not None:
        steps.append({"op": "rmmod", "name": module.name, "always": True})
    for step in steps:
        step["group"] = group
    return steps


def plan_test_run(test: TestRun, objects: list[Path], staged: dict[Path, str]) -> dict[str, Any]:
    """The agent's ``test_run`` step for one ``[[run.test]]``: the object that holds
    the program, whether to load it alone, and the input as bytes."""
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
    return {
        "op": "test_run", "program": test.program, "path": staged[obj], "alone": alone,
        "retval": test.retval, "data": test.data().hex(), "ctx": None if ctx is None else ctx.hex(),
        "rejected": test.rejected, "log": test.log, "error": test.error,
    }  # fmt: skip


def run_projects(
    projects: list[Project],
    kernel_name: str,
    progress: Progress | None = None,
    *,
    timeout: float = 180.0,
    trace_timeout: float = 10.0,
    use_kept: bool = True,
    session: SessionClient | None = None,
) -> RunReport:
    """Run ``projects`` on the kernel ``kernel_name`` in one boot; see the module docstring.

    Where a kept guest of that kernel is up (``kfunc vm start``), the plan goes
    to it instead, and nothing boots; so it does to ``session``, a guest of
    that kernel already serving (a test's GuestSession).
    """
    progress = progress or Progress()
    if os.geteuid() != 0:
        # virtme-ng runs the guest as the user who starts it: only root may
        # insert modules and load BPF programs there.
        raise KfuncError(
            "kfunc run: needs root (the guest loads modules and BPF programs as the user "
            "that starts it)",
            "run it as root, or with sudo",
        )
    t0 = time.monotonic()
    with progress.step(f"kernel {kernel_name}") as step:
        kernel = get_kernel(kernel_name, progress)
        step.summary = f"kernel {kernel.version} ({kernel.release})"
    report = RunReport(kernel=kernel.to_dict())
    prepared = []
    for project in projects:
        if not project.bpf_sources:
            above = project.path.parent
            fix = (
                f"run kfunc on {above}, the project: its programs are there, and it finds the "
                "module in its subdirectory"
                if any(above.glob("*.bpf.c"))
                else "add a BPF C program that calls the kfunc, or use `kfunc build` for the module"
            )
            raise KfuncError(f"{project.path}: no BPF program (*.bpf.c) to run", fix)
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

    kept = find_kept(kernel) if use_kept and session is None else None
    if session is not None:
        events = _run_in_session(session, "session", prepared, report, progress, timeout,
                                 trace_timeout)  # fmt: skip
    elif kept is not None:
        events = _run_in_session(kept.client, f"kept guest {kept.release}", prepared, report,
                                 progress, timeout, trace_timeout)  # fmt: skip
    else:
        events = _run_in_new_guest(kernel, prepared, report, progress, timeout, trace_timeout)
    report.seconds["total"] = round(time.monotonic() - t0, 2)
    for group, (preport, built) in enumerate(zip(report.projects, prepared, strict=True)):
        _read_events(preport, [e for e in events if e.get("group") == group])
        if built.module is None:
            preport.unloaded = True  # nothing to unload
    return report


def _plan(prepared: list[ProjectBuild], rundir: Path, trace_timeout: float) -> list[dict[str, Any]]:
    """The steps of every project, each project a group of its own."""
    steps: list[dict[str, Any]] = []
    for group, built in enumerate(prepared):
        steps += _project_steps(built, group, rundir, trace_timeout)
    return steps


def _run_in_session(
    client: SessionClient, label: str, prepared: list[ProjectBuild], report: RunReport,
    progress: Progress, timeout: float, trace_timeout: float,
) -> list[dict[str, Any]]:  # fmt: skip
    """Send the plan to a guest that serves (kept, or a session): no boot."""
    rundir = Path(tempfile.mkdtemp(prefix="run-", dir=client.directory))
    try:
        steps = _plan(prepared, rundir, trace_timeout)
        t1 = time.monotonic()
        with progress.step(f"{label}: run") as step:
            events = client.call({"steps": steps}, timeout)
            step.summary = f"{label}: ran {len(steps)} steps"
        report.accel = "kept guest" if label.startswith("kept") else label
        report.seconds["guest"] = report.seconds["steps"] = round(time.monotonic() - t1, 2)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    return events


def _run_in_new_guest(
    kernel: Kernel, prepared: list[ProjectBuild], report: RunReport, progress: Progress,
    timeout: float, trace_timeout: float,
) -> list[dict[str, Any]]:  # fmt: skip
    """Boot ``kernel``, carry out the plan, power off."""
    rundir = Path(tempfile.mkdtemp(prefix="kfunc-run-"))
    events: list[dict[str, Any]] = []
    try:
        steps = _plan(prepared, rundir, trace_timeout)
        (rundir / "plan.json").write_text(json.dumps({"steps": steps}, indent=2))
        argv = [sys.executable, "-m", "kfunc.vm.agent", str(rundir / "plan.json")]
        marks: dict[str, float] = {}

        def on_line(line: ConsoleLine) -> None:
            marks.setdefault("console", time.monotonic())
            if line.text.startswith(EVENT_PREFIX):
                event = json.loads(line.text[len(EVENT_PREFIX) :])
                marks.setdefault(event["step"], time.monotonic())
                state = {True: "ok", False: "FAILED", None: "skipped"}[event.get("ok")]
                progress.update(f"{event['step']}: {state}")
            elif line.is_kernel:
                progress.update(line.message[:100])

        t1 = time.monotonic()
        with progress.step(f"guest {kernel.release}: boot and run") as step:
            try:
                run = Guest(kernel, timeout=timeout).run(argv, rundir, on_line)
                step.summary = f"guest {kernel.release} ({run.accel}): booted, ran, powered off"
            except LostVMError as exc:
                raise _while_step(exc, steps, rundir / "events.jsonl") from None
            finally:
                events_file = rundir / "events.jsonl"
                if events_file.exists():
                    events = [json.loads(ln) for ln in events_file.read_text().splitlines() if ln]
        report.accel = run.accel
        t2 = time.monotonic()
        report.seconds["guest"] = round(t2 - t1, 2)
        # Where the guest's time went: qemu start, kernel boot to our agent,
        # the steps, and power-off.
        if {"console", "boot", "done"} <= marks.keys():
            report.seconds["vm_start"] = round(marks["console"] - t1, 2)
            report.seconds["boot"] = round(marks["boot"] - marks["console"], 2)
            report.seconds["steps"] = round(marks["done"] - marks["boot"], 2)
            report.seconds["poweroff"] = round(t2 - marks["done"], 2)
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    if not any(e["step"] == "done" for e in events):
        # The console's tail, the agent's own lines too: a Python error or an
        # oops that killed the agent shows there.
        raise LostVMError(
            f"guest {kernel.release}: stopped before the run finished",
            [line.message for line in run.console[-25:]],
            "the guest's console above says why",
        )
    return events


def _while_step(exc: LostVMError, steps: list[dict[str, Any]], events_file: Path) -> LostVMError:
    """``exc``, saying which step of the plan the guest was in when it was lost."""
    done = 0
    if events_file.exists():
        done = sum(1 for ln in events_file.read_text().splitlines() if ln) - 1  # minus boot
    if done < 0:
        where = "before the agent started"
    elif done < len(steps):
        step = steps[done]
        what = step.get("name") or Path(str(step.get("path", ""))).name or step.get("program")
        where = f"during step {step['op']}" + (f" {what}" if what else "")
    else:
        where = "after the last step"
    return LostVMError(f"{exc.message} ({where})", exc.kernel_log, exc.fix)


def _read_events(report: ProjectReport, events: list[dict[str, Any]]) -> None:
    for event in events:
        report.steps.append(event)
        report.kernel_log += event.get("kernel_log", [])
        data = event.get("data") or {}
        step = event["step"]
        if step == "trace":
            report.trace = data.get("lines", [])
            if event.get("ok"):
                report.result = data.get("matched")
        elif step == "test_run" and event.get("ok") is not None:
            report.tests.append(data)
        elif step == "btf_module" and event.get("ok"):
            report.registered = data
        elif step == "rmmod" and event.get("ok"):
            report.unloaded = bool(data.get("unloaded"))
        if event.get("ok") is False and report.error is None:
            report.error = event.get("error")
            report.fix = event.get("fix")
