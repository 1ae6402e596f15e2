"""``kfunc run``: the tutorial, end to end, on a target kernel.

Build the module with BTF and the BPF programs against the target's
vmlinux.h, check that the calls can work there, boot the kernel, and in the
guest: insmod, check the kfunc's registration in /sys/kernel/btf, load and
attach the programs through libbpf, trigger them, read the trace, detach,
rmmod. The result is a :class:`RunReport`.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfunc.cache import cache_dir
from kfunc.check import check_calls, check_registrations, module_registrations, read_bpf_object
from kfunc.clang import compile_bpf
from kfunc.errors import CheckError, LostVMError
from kfunc.kbuild import ModuleBuild, build_module
from kfunc.kernels.facts import kfunc_hooks, vmlinux_h
from kfunc.kernels.target import Kernel, get_kernel
from kfunc.progress import Progress
from kfunc.project import Project
from kfunc.vm.agent import EVENT_PREFIX
from kfunc.vm.guest import ConsoleLine, Guest

__all__ = ["RunReport", "run_project"]


@dataclass
class RunReport:
    """What a run did and saw; ``ok`` when the result was seen and everything unloaded."""

    project: str
    kernel: dict[str, str]
    accel: str = ""
    module: dict[str, Any] | None = None
    objects: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    trace: list[str] = field(default_factory=list)
    result: str | None = None
    registered: dict[str, Any] | None = None
    unloaded: bool = False
    kernel_log: list[str] = field(default_factory=list)
    error: str | None = None
    fix: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.unloaded

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def build_bpf(project: Project, kernel: Kernel, progress: Progress | None = None) -> list[Path]:
    """Compile the project's BPF programs against the target's vmlinux.h."""
    header = vmlinux_h(kernel, progress)
    out_dir = cache_dir("builds", kernel.release, f"bpf-{project.name}")
    objects = []
    for src in project.bpf_sources:
        out = out_dir / (src.name.removesuffix(".c") + ".o")
        deps = [header, *sorted(src.parent.glob("*.h"))]
        objects.append(
            compile_bpf(src, out, include_dirs=[header.parent, src.parent], depends=deps)
        )
    return objects


def check_project(
    project: Project, kernel: Kernel, objects: list[Path], module: ModuleBuild | None
) -> None:
    """Raise CheckError when a kfunc call or registration cannot work on ``kernel``."""
    hooks = kfunc_hooks(kernel)
    problems = []
    for obj in objects:
        problems += check_calls(read_bpf_object(obj), kernel.version, hooks)
    if project.module is not None:
        regs = module_registrations(list(project.module.files))
        # A program type whose calls were refused above need not be told twice.
        regs = [r for r in regs if r not in {p.prog_type for p in problems}]
        problems += check_registrations(project.module.name, regs, kernel.version, hooks)
    if problems:
        raise CheckError([p.message for p in problems], problems[0].fix)


def _plan(project: Project, module: ModuleBuild | None, rundir: Path, objects: list[Path],
          trace_timeout: float) -> dict[str, Any]:  # fmt: skip
    steps: list[dict[str, Any]] = [{"op": "trace_clear"}]
    if module is not None:
        ko = shutil.copy2(module.ko, rundir)
        steps.append({"op": "insmod", "path": str(ko), "name": module.name})
        steps.append(
            {"op": "btf_module", "module": module.name, "kfuncs": [k.name for k in module.kfuncs]}
        )
    for obj in objects:
        steps.append({"op": "bpf_load", "path": str(shutil.copy2(obj, rundir))})
    if project.trigger == "unlink":
        steps.append({"op": "trigger", "kind": "unlink"})
    elif project.trigger:
        steps.append({"op": "trigger", "kind": "command", "command": project.trigger})
    steps.append({"op": "trace", "expect": project.expect, "timeout": trace_timeout})
    steps.append({"op": "bpf_unload", "always": True})
    if module is not None:
        steps.append({"op": "rmmod", "name": module.name, "always": True})
    return {"steps": steps}


def run_project(
    project: Project,
    kernel_name: str,
    progress: Progress | None = None,
    *,
    timeout: float = 180.0,
    trace_timeout: float = 10.0,
) -> RunReport:
    """Run ``project`` on the kernel ``kernel_name``; see the module docstring."""
    progress = progress or Progress()
    t0 = time.monotonic()
    with progress.step(f"kernel {kernel_name}") as step:
        kernel = get_kernel(kernel_name, progress)
        step.summary = f"kernel {kernel.version} ({kernel.release})"
    report = RunReport(project=str(project.path), kernel=kernel.to_dict())
    module = None
    if project.module is not None:
        with progress.step(f"module {project.module.name}: kbuild with BTF") as step:
            module = build_module(project.module, kernel, progress)
            kfuncs = ", ".join(f"{k.name} (BTF id {k.btf_id})" for k in module.kfuncs)
            cached = " [cached]" if module.cached else ""
            step.summary = f"module {module.name}.ko with BTF: {kfuncs}{cached}"
        report.module = module.to_dict()
    with progress.step("BPF programs: clang") as step:
        objects = build_bpf(project, kernel, progress)
        step.summary = f"BPF {', '.join(o.name for o in objects)} compiled against vmlinux.h"
    report.objects = [str(o) for o in objects]
    with progress.step(f"checking calls against {kernel.version}"):
        check_project(project, kernel, objects, module)
    report.seconds["prepare"] = round(time.monotonic() - t0, 2)

    rundir = Path(tempfile.mkdtemp(prefix="kfunc-run-"))
    try:
        plan = _plan(project, module, rundir, objects, trace_timeout)
        (rundir / "plan.json").write_text(json.dumps(plan, indent=2))
        guest = Guest(kernel, timeout=timeout)
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
                run = guest.run(argv, rundir, on_line)
                step.summary = f"guest {kernel.release} ({run.accel}): booted, ran, powered off"
            finally:
                events_file = rundir / "events.jsonl"
                events = (
                    [json.loads(ln) for ln in events_file.read_text().splitlines() if ln]
                    if events_file.exists()
                    else []
                )
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
    report.seconds["total"] = round(time.monotonic() - t0, 2)
    _read_events(report, events)
    if module is None:
        report.unloaded = True  # nothing to unload
    if not any(e["step"] == "done" for e in events):
        raise LostVMError(
            f"guest {kernel.release}: stopped before the run finished",
            run.kernel_log(last=20),
            "the guest's console above says why; rerun with --verbose for all of it",
        )
    return report


def _read_events(report: RunReport, events: list[dict[str, Any]]) -> None:
    for event in events:
        report.steps.append(event)
        report.kernel_log += event.get("kernel_log", [])
        data = event.get("data") or {}
        step = event["step"]
        if step == "trace":
            report.trace = data.get("lines", [])
            if event.get("ok"):
                report.result = data.get("matched")
        elif step == "btf_module" and event.get("ok"):
            report.registered = data
        elif step == "rmmod" and event.get("ok"):
            report.unloaded = bool(data.get("unloaded"))
        if event.get("ok") is False and report.error is None:
            report.error = event.get("error")
            report.fix = event.get("fix")
