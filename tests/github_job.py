"""One job of a GitHub Actions workflow, run as GitHub runs it in a ``container:``
job, inside a fresh Debian root filesystem instead of a Docker container.

What GitHub does, and what stands in for it here:

- the container image (``debian:bookworm``, a minbase Debian): a root
  filesystem made by ``mmdebstrap --variant=minbase`` from Debian's archive,
  kept as a tarball in kfunc's cache (``ci/``, keyed by what goes into it) and
  unpacked afresh for every job;
- ``--privileged``: the step runs as root in a mount namespace of its own with
  the host's /dev, /proc, /sys, a /dev/pts of its own and a 64 MiB /dev/shm
  (Docker's default size);
  the mounts go away with that namespace, and after every step
  :func:`kfunc.kernels.rootfs.check_no_mounts` checks that none is left on
  the host;
- a ``run:`` step: ``bash -e`` on the step's script, in the workspace
  (``/__w/<repo>/<repo>``), with the environment GitHub gives a container
  step (``HOME=/github/home``, ``CI``, ``GITHUB_*``), the job's and the step's
  ``env``, and ``${{ }}`` expressions substituted (matrix values, step outputs;
  any other expression fails the job here, as nothing would stand for it);
  ``$GITHUB_PATH``, ``$GITHUB_ENV`` and ``$GITHUB_OUTPUT`` work as on GitHub;
- ``actions/checkout``: a copy of the project into the workspace;
  ``actions/cache``: restores from ``caches`` (a dict of key -> directory:
  empty, a first run, misses) and records what its post step would save;
  ``actions/upload-artifact``: records the paths, which must exist.

The host's network is not the runner's: where this machine reaches PyPI
through a TLS proxy, its CA certificates are placed in the root filesystem
(where the job's ``ca-certificates`` install picks them up) and pip is told to
use the system's bundle. That is setup of the machine, not a step of the job.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML  # check-jsonschema's YAML reader (the test extra)

from kfunc.cache import cache_dir
from kfunc.kernels.apt import ARCHIVE, SECURITY
from kfunc.kernels.rootfs import check_no_mounts

#: What debian:bookworm's sources list has: the suite, its updates, security.
BOOKWORM_SOURCES = (
    f"deb {ARCHIVE} bookworm main",
    f"deb {ARCHIVE} bookworm-updates main",
    f"deb {SECURITY} bookworm-security main",
)
#: The container image's PATH (Docker's debian images set this one).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STEP_TIMEOUT = 45 * 60
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def bookworm_image(log: Callable[[str], None] = print) -> Path:
    """A tarball of a minbase bookworm (what ``debian:bookworm`` holds), made once."""
    spec = {"variant": "minbase", "suite": "bookworm", "sources": BOOKWORM_SOURCES}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    image = cache_dir("ci") / f"bookworm-minbase-{key}.tar"
    with (image.parent / ".image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.exists():
            return image
        tmp = image.with_suffix(".tmp.tar")
        start = time.monotonic()
        subprocess.run(
            # Its own mount namespace: whatever mmdebstrap mounts goes away with it.
            ["unshare", "--mount", "--propagation", "private",
             "mmdebstrap", "--variant=minbase", "--quiet",
             "--aptopt=Acquire::Languages \"none\"", "bookworm", str(tmp), *BOOKWORM_SOURCES],
            check=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        tmp.rename(image)
        log(f"bookworm image: made in {time.monotonic() - start:.0f} s ({image})")
    return image


@dataclass
class StepResult:
    name: str
    returncode: int
    seconds: float
    output: str = ""
    skipped: bool = False


@dataclass
class JobRun:
    steps: list[StepResult] = field(default_factory=list)
    cache_keys: list[str] = field(default_factory=list)
    cache_paths: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.returncode == 0 for s in self.steps if not s.skipped)

    def summary(self) -> str:
        rows = [f"{s.seconds:7.1f} s  {'skipped' if s.skipped else s.returncode}  {s.name}"
                for s in self.steps]  # fmt: skip
        return "\n".join(rows)


class Container:
    """A fresh root filesystem standing for the job's container."""

    def __init__(self, root: Path, repo: str) -> None:
        self.root = root
        self.workspace = f"/__w/{repo}/{repo}"
        self.temp = "/__w/_temp"

    def inside(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @classmethod
    def create(cls, image: Path, root: Path, repo: str) -> Container:
        root.mkdir(parents=True)
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-xpf", str(image)], check=True)
        box = cls(root, repo)
        for d in (box.workspace, box.temp, "/github/home", "/github/workflow"):
            box.inside(d).mkdir(parents=True, exist_ok=True)
        for name in ("resolv.conf", "hosts"):  # Docker writes these into a container
            shutil.copy(f"/etc/{name}", box.inside(f"/etc/{name}"))
        box._machine_network()
        return box

    def _machine_network(self) -> None:
        """This machine's TLS proxy CAs (see the module's docstring)."""
        cas = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        if not cas:
            return
        dest = self.inside("/usr/local/share/ca-certificates")
        dest.mkdir(parents=True, exist_ok=True)
        for ca in cas:
            shutil.copy(ca, dest / ca.name)
        self.inside("/etc/pip.conf").write_text(
            "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
        )

    def command(self, script: str, env: dict[str, str], cwd: str) -> list[str]:
        """``bash -e script`` inside, as root, in a private mount namespace."""
        root = shlex.quote(str(self.root))
        setup = "\n".join([
            "set -e",
            f"mount -t proc proc {root}/proc",
            f"mount --bind /dev {root}/dev",
            f"mount -t tmpfs -o mode=1777,size=64m shm {root}/dev/shm",
            f"mount -t devpts -o newinstance,ptmxmode=0666 devpts {root}/dev/pts",
            f"mount --bind {root}/dev/pts/ptmx {root}/dev/ptmx",
            f"mount -t sysfs sysfs {root}/sys",
            f"exec chroot {root} /usr/bin/env -i "
            + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
            + " /bin/sh -c " + shlex.quote(f"cd {shlex.quote(cwd)} && exec bash -e {script}"),
        ])  # fmt: skip
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup]

    def kill_all(self) -> None:
        """Kill whatever still runs inside (the end of a container kills it too)."""
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                if os.readlink(pid_dir / "root") == str(self.root):
                    os.kill(int(pid_dir.name), signal.SIGKILL)
            except OSError:
                continue

    def check_clean(self) -> None:
        check_no_mounts(self.root)

    def remove(self) -> None:
        """Remove the root filesystem (about 2 GB after a job), never through a mount."""
        self.kill_all()
        self.check_clean()
        shutil.rmtree(self.root)


def substitute(text: str, context: dict[str, Any]) -> str:
    """``${{ a.b.c }}`` from ``context``; an expression it does not hold is an error."""

    def one(m: re.Match[str]) -> str:
        value: Any = context
        for part in m[1].split("."):
            if not isinstance(value, dict) or part not in value:
                raise KeyError(f"workflow expression not simulated here: {m[0]}")
            value = value[part]
        return str(value)

    return _EXPR.sub(one, text)


def _read_pairs(path: Path) -> dict[str, str]:
    """``name=value`` and ``name<<DELIM`` ... ``DELIM`` lines (GITHUB_OUTPUT, GITHUB_ENV)."""
    pairs: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            end = lines.index(delim, i + 1)
            pairs[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
            continue
        if "=" in line:
            name, value = line.split("=", 1)
            pairs[name] = value
        i += 1
    return pairs


def run_job(
    workflow: Path,
    job_id: str,
    matrix: dict[str, str],
    box: Container,
    *,
    project: Path,
    env_override: dict[str, str],
    caches: dict[str, Path],
    log: Callable[[str], None] = print,
    log_dir: Path,
) -> JobRun:
    """Run ``job_id`` of ``workflow`` in ``box``, its steps in order."""
    job = YAML(typ="safe").load(workflow.read_text())["jobs"][job_id]
    context: dict[str, Any] = {"matrix": matrix, "steps": {}, "env": {}}
    job_env = {k: substitute(str(v), context) for k, v in (job.get("env") or {}).items()}
    job_env.update(env_override)
    context["env"] = job_env
    path_extra: list[str] = []
    extra_env: dict[str, str] = {}
    run = JobRun()
    try:
        for n, step in enumerate(job["steps"]):
            name = substitute(step.get("name") or step.get("uses") or step["run"][:40], context)
            condition = step.get("if")
            if condition not in (None, "always()"):
                raise ValueError(f"step {name!r}: condition {condition!r} not simulated here")
            if not run.ok and condition != "always()":
                run.steps.append(StepResult(name, 0, 0.0, skipped=True))
                continue
            start = time.monotonic()
            log(f"step {n}: {name}")
            if "uses" in step:
                rc, output = _action(step, context, box, project, caches, run)
                run.steps.append(StepResult(name, rc, time.monotonic() - start, output))
                continue
            files = {k: f"{box.temp}/_runner_file_commands/{k.lower()}_{n}"
                     for k in ("GITHUB_PATH", "GITHUB_ENV", "GITHUB_OUTPUT")}  # fmt: skip
            for f in files.values():
                box.inside(f).parent.mkdir(parents=True, exist_ok=True)
                box.inside(f).touch()
            script = f"{box.temp}/step_{n}.sh"
            box.inside(script).write_text(substitute(step["run"], context) + "\n")
            env = {
                "PATH": ":".join([*reversed(path_extra), IMAGE_PATH]),
                "HOME": "/github/home",
                "CI": "true",
                "GITHUB_ACTIONS": "true",
                "GITHUB_WORKSPACE": box.workspace,
                "RUNNER_OS": "Linux",
                "RUNNER_TEMP": box.temp,
                **files,
                **job_env,
                **extra_env,
                **{k: substitute(str(v), context) for k, v in (step.get("env") or {}).items()},
            }
            logfile = log_dir / f"step_{n}.log"
            rc = _run_logged(box.command(script, env, box.workspace), logfile, STEP_TIMEOUT)
            box.check_clean()
            output = logfile.read_text(errors="replace")
            run.steps.append(StepResult(name, rc, time.monotonic() - start, output))
            log(f"step {n}: exit {rc} after {time.monotonic() - start:.1f} s")
            path_extra += [
                p for p in box.inside(files["GITHUB_PATH"]).read_text().splitlines() if p
            ]
            extra_env.update(_read_pairs(box.inside(files["GITHUB_ENV"])))
            if "id" in step:
                outputs = _read_pairs(box.inside(files["GITHUB_OUTPUT"]))
                context["steps"][step["id"]] = {"outputs": outputs}
    finally:
        box.kill_all()
        box.check_clean()
    return run


def _run_logged(argv: list[str], logfile: Path, timeout: float) -> int:
    with logfile.open("w") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            out.write(f"\n(killed after {timeout} s)\n")
            return -9


def _action(
    step: dict[str, Any],
    context: dict[str, Any],
    box: Container,
    project: Path,
    caches: dict[str, Path],
    run: JobRun,
) -> tuple[int, str]:
    uses = step["uses"]
    args = {k: substitute(str(v), context) for k, v in (step.get("with") or {}).items()}
    action = uses.split("@")[0]
    if action == "actions/checkout":
        shutil.copytree(project, box.inside(box.workspace), dirs_exist_ok=True, symlinks=True)
        return 0, f"copied {project}"
    if action == "actions/cache":
        paths = [p for p in args["path"].splitlines() if p.strip()]
        run.cache_keys.append(args["key"])
        run.cache_paths += paths
        saved = caches.get(args["key"])
        if saved is None:
            return 0, f"cache miss: {args['key']}"
        target = box.inside(paths[0])
        shutil.copytree(saved, target, dirs_exist_ok=True, symlinks=True)
        return 0, f"cache hit: {args['key']}"
    if action == "actions/upload-artifact":
        run.artifacts.append(args["path"])
        found = (box.inside(box.workspace) / args["path"]).exists()
        return (0, f"artifact {args['path']}") if found else (1, f"no {args['path']}")
    raise ValueError(f"action {uses} not simulated here")
