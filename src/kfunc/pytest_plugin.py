"""pytest fixtures for kfunc projects: a booted kernel, the loaded module, BPF objects.

Registered through the ``pytest11`` entry point ``kfunc``: installed with
kfunc, it is active in every pytest run. A test in a project directory (a
module spec or sources, and ``*.bpf.c`` programs) asks for what it needs::

    def test_add(bpf):                       # the project's module is loaded too
        obj = bpf.load()                     # build/<name>.bpf.o, built for this kernel
        assert obj.programs["add"].test_run().retval == 42

Fixtures:

``kernel``
    A :class:`~kfunc.vm.session.GuestSession`: the target kernel booted in a
    VM, once per kernel per test session. Tests that use it run once per
    kernel of the matrix: ``--kernels 6.1,6.12``, else the ``kfunc_kernels``
    ini setting, else ``$KFUNC_KERNELS``, else 6.12.
``kfunc_project`` / ``kfunc_build``
    The :class:`~kfunc.project.Project` of the test file's directory (or of
    ``@pytest.mark.kfunc_project(PATH)``), and its build for the kernel.
``kfunc_kernel_names``
    The kernel matrix, as a list of names.
``module``
    The project's module inserted (a :class:`~kfunc.vm.remote.GuestModule`),
    removed after the test.
``bpf``
    A :class:`BpfLoader`: loads the project's objects or any ``.bpf.c`` /
    ``.o``, reads the trace; everything it loaded is closed after the test.

``@pytest.mark.min_kernel("6.10")`` skips a test on older kernels. Tests that
use a kernel get the ``vm`` mark. A failing test's report carries the tail of
the guest's kernel log. Without root, or where a kernel cannot be had, those
tests are skipped with the reason (failed where ``KFUNC_REQUIRE_VM=1``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kfunc.errors import KfuncError

# Imported where used: pytest loads this plugin in every run of the venv, and
# the build and libbpf modules need clang, libbpf.so ... only when a test does.
if TYPE_CHECKING:
    from kfunc.build import ProjectBuild
    from kfunc.project import Project
    from kfunc.vm.keeper import KeptSession
    from kfunc.vm.remote import GuestModule, RemoteObject
    from kfunc.vm.session import GuestSession
    from kfunc.vm.snapshot import SnapshotSession

__all__ = ["BpfLoader", "kernel_names"]

DEFAULT_KERNEL = "6.12"  # kfunc.kernels.target.DEFAULT_KERNEL (tests/test_pytest_plugin.py)

_LOG_LINES = 40
_builds: dict[tuple[Path, str], ProjectBuild] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kfunc", "kfunc: tests in real kernels")
    group.addoption(
        "--kernels",
        default=None,
        help="comma-separated target kernels for tests that use `kernel` (default: "
        f"kfunc_kernels ini, $KFUNC_KERNELS, or {DEFAULT_KERNEL})",
    )
    group.addoption(
        "--kfunc-report",
        default=None,
        metavar="FILE",
        help="write each test's outcome per kernel as JSON (kfunc test reads it)",
    )
    group.addoption(
        "--kfunc-module",
        default=None,
        metavar="DIR",
        help="the project's module directory, for kfunc_project (kfunc test --module)",
    )
    parser.addini("kfunc_kernels", "comma-separated target kernels", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: boots a target kernel in qemu")
    config.addinivalue_line(
        "markers", "kfunc_project(path): the kfunc project a test's fixtures build and load"
    )
    config.addinivalue_line(
        "markers", "min_kernel(version): skip the test on kernels older than version"
    )
    report = config.getoption("--kfunc-report")
    if report:
        config.pluginmanager.register(_Recorder(Path(report)), "kfunc-report")


def kernel_names(config: pytest.Config) -> list[str]:
    """The kernel matrix: --kernels, the kfunc_kernels ini, $KFUNC_KERNELS, or the default."""
    raw = (
        config.getoption("--kernels")
        or str(config.getini("kfunc_kernels") or "")
        or os.environ.get("KFUNC_KERNELS", "")
        or DEFAULT_KERNEL
    )
    return [k.strip() for k in raw.split(",") if k.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kernel" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "kernel" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test gives its own kernel values
    if not _ours(metafunc.fixturenames):
        return  # a conftest's own `kernel` fixture
    names = kernel_names(metafunc.config)
    metafunc.parametrize("kernel", names, indirect=True, scope="session", ids=names)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (callspec is not None and "kernel" in callspec.params
                and _ours(getattr(item, "fixturenames", ()))):  # fmt: skip
            item.add_marker(pytest.mark.vm)


def _ours(fixturenames: Sequence[str]) -> bool:
    """Whether the ``kernel`` fixture in force is this plugin's: only it asks for
    :func:`kfunc_kernel_names` (pytest's public view of a test's fixture closure)."""
    return "kernel" in fixturenames and "kfunc_kernel_names" in fixturenames


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("KFUNC_REQUIRE_VM") == "1":
        pytest.fail(f"prerequisite missing (KFUNC_REQUIRE_VM=1): {reason}", pytrace=False)
    pytest.skip(reason)


def _fail(exc: KfuncError) -> None:
    pytest.fail(exc.message + (f"\nfix: {exc.fix}" if exc.fix else ""), pytrace=False)


def _version(text: str) -> tuple[int, ...]:
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2])) if m else (0, 0)


@pytest.fixture(scope="session")
def kfunc_kernel_names(pytestconfig: pytest.Config) -> list[str]:
    """The kernel matrix (:func:`kernel_names`)."""
    return kernel_names(pytestconfig)


@pytest.fixture(scope="session")
def kernel(
    request: pytest.FixtureRequest, kfunc_kernel_names: list[str]
) -> Iterator[GuestSession | KeptSession | SnapshotSession]:
    """The target kernel, serving: restored from its snapshot (a SnapshotSession),
    else booted (a GuestSession); one guest per kernel and test session.

    Where a kept guest of the kernel is up (``kfunc vm start``), the tests use
    it instead and nothing boots.
    """
    from kfunc.kernels.target import get_kernel
    from kfunc.vm.session import GuestSession

    name = getattr(request, "param", None) or kfunc_kernel_names[0]
    _require(os.geteuid() == 0, "booting kernels and loading BPF needs root")
    try:
        target = get_kernel(name)
    except KfuncError as exc:
        _require(False, f"kernel {name} not available: {exc.message}")
        raise
    from kfunc.vm.keeper import KeptSession, find_kept
    from kfunc.vm.machine import machine_supported
    from kfunc.vm.snapshot import SnapshotSession

    kept = find_kept(target)
    if kept is not None:  # `kfunc vm start`: no boot
        session: GuestSession | KeptSession | SnapshotSession = KeptSession(kept, target)
    else:
        # restored from the kernel's snapshot (KFUNC_SNAPSHOT=0: a vng boot)
        if machine_supported(target):
            session = SnapshotSession(target)
        else:
            session = GuestSession(target, idle=3600.0)
        try:
            session.start()
        except KfuncError as exc:
            _fail(exc)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def kfunc_project(request: pytest.FixtureRequest) -> Project:
    """The project under test: @pytest.mark.kfunc_project(PATH), else the test's directory."""
    from kfunc.project import Project

    mark = request.node.get_closest_marker("kfunc_project")
    path = Path(request.path).parent
    if mark is not None:
        path = (path / mark.args[0]).resolve()
    try:
        return Project.load(path, module=request.config.getoption("--kfunc-module"))
    except KfuncError as exc:
        _fail(exc)
        raise


@pytest.fixture
def kfunc_build(kernel: GuestSession, kfunc_project: Project) -> ProjectBuild:
    """The project built for the kernel (module with BTF, BPF objects); cached per session."""
    from kfunc.build import build_project

    key = (kfunc_project.path, kernel.kernel.key)
    if key not in _builds:
        try:
            _builds[key] = build_project(kfunc_project, kernel.kernel)
        except KfuncError as exc:
            _fail(exc)
    return _builds[key]


@pytest.fixture
def module(kernel: GuestSession, kfunc_build: ProjectBuild) -> Iterator[GuestModule]:
    """The project's module, inserted for the test and removed after it."""
    from kfunc.vm.remote import GuestModule

    if kfunc_build.module is None:
        pytest.fail(f"{kfunc_build.project.path}: the project has no module", pytrace=False)
    try:
        loaded = GuestModule(kernel, kfunc_build.module)
    except KfuncError as exc:
        _fail(exc)
        raise
    yield loaded
    loaded.unload()


class BpfLoader:
    """The ``bpf`` fixture: loads BPF objects into the guest and reads its trace.

    Usable outside pytest too, over any session and project build.
    """

    def __init__(self, session: GuestSession, build: ProjectBuild | None = None) -> None:
        self.session = session
        self.build = build
        self.objects: list[RemoteObject] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="kfunc-bpf-"))

    def load(
        self,
        source: str | os.PathLike[str] | None = None,
        *,
        attach: bool = True,
        programs: list[str] | None = None,
        log_level: int = 0,
    ) -> RemoteObject:
        """Load and (with ``attach``) attach a BPF object in the guest.

        ``source``: None for the project's object (the only one, or name it:
        ``"xdp"``, ``"xdp.bpf.c"``), a ``.o`` file, a ``.c`` file compiled as the
        project's programs are, or C source text. ``programs``: load only these
        (an autoload-off ``SEC("?tc")`` program too), as a selftest loads one
        program at a time; ``log_level`` 1 keeps each program's verifier log.
        """
        from kfunc.vm.remote import RemoteObject

        path = self._resolve(source)
        obj = RemoteObject(self.session, path).load(attach=attach, programs=programs,
                                                    log_level=log_level)  # fmt: skip
        self.objects.append(obj)
        return obj

    def _resolve(self, source: str | os.PathLike[str] | None) -> Path:
        build = self.build
        if source is None:
            return self._project_object(None)
        if "\n" in str(source):  # C source text
            path = self._tmp / f"inline{len(self.objects)}.bpf.c"
            path.write_text(str(source))
        else:
            path = Path(source)
            if not path.exists() and build is not None:
                if (build.project.path / path).exists():
                    path = build.project.path / path
                else:
                    return self._project_object(str(source))
        if path.suffix != ".c":
            return path
        if build is None:
            raise KfuncError(f"{path}: compiling needs a project build", "pass a .o file")
        from kfunc.build import compile_bpf_source

        out = self._tmp / (path.name.removesuffix(".c") + ".o")
        return compile_bpf_source(build, self.session.kernel, path, out)

    def _project_object(self, name: str | None) -> Path:
        objects = self.build.objects if self.build is not None else []
        if not objects:
            raise KfuncError("bpf.load(): the project has no BPF object", "pass a .c or .o path")
        if name is None:
            if len(objects) > 1:
                names = ", ".join(o.name for o in objects)
                raise KfuncError(
                    f"bpf.load(): the project has several objects ({names})",
                    "name one: bpf.load('name')",
                )
            return objects[0]
        stem = name.removesuffix(".c").removesuffix(".o").removesuffix(".bpf")
        for obj in objects:
            if obj.name.removesuffix(".o").removesuffix(".bpf") == stem:
                return obj
        raise KfuncError(
            f"bpf.load(): no file or project object {name!r}",
            f"name one of {', '.join(o.name for o in objects)}, or pass an existing path",
        )

    def trace(self, expect: str | None = None, timeout: float = 2.0) -> list[str]:
        """trace_pipe lines (bpf_printk) until one matches ``expect`` or ``timeout`` s pass."""
        from kfunc.vm.remote import read_trace

        return read_trace(self.session, expect, timeout)

    def trace_clear(self) -> None:
        """Empty the trace buffer."""
        from kfunc.vm.protocol import TraceClear

        self.session.run_steps([TraceClear()])

    def trigger(self, command: str | None = None) -> dict[str, Any]:
        """Run ``command`` (a shell command) in the guest, or unlink a file if None."""
        from kfunc.vm.protocol import Trigger

        kind = "unlink" if command is None else "command"
        (event,) = self.session.run_steps([Trigger(kind=kind, command=command)])
        return event.get("data") or {}

    def close(self) -> None:
        """Close every object it loaded."""
        while self.objects:
            self.objects.pop().close()
        for leftover in self._tmp.iterdir():
            leftover.unlink()
        self._tmp.rmdir()


@pytest.fixture
def bpf(request: pytest.FixtureRequest, kernel: GuestSession) -> Iterator[BpfLoader]:
    """Loads BPF objects into the guest (the project's module first, if it has one)."""
    build: ProjectBuild | None = None
    if _has_project(request):
        build = request.getfixturevalue("kfunc_build")
        if build.module is not None:
            request.getfixturevalue("module")  # set up first, so torn down last
    loader = BpfLoader(kernel, build)
    try:
        yield loader
    finally:
        loader.close()


def _has_project(request: pytest.FixtureRequest) -> bool:
    if request.node.get_closest_marker("kfunc_project") is not None:
        return True
    here = Path(request.path).parent
    return any(here.glob("*.bpf.c")) or (here / "kfunc.toml").exists()


def pytest_runtest_setup(item: pytest.Item) -> None:
    mark = item.get_closest_marker("min_kernel")
    callspec = getattr(item, "callspec", None)
    if mark is None or callspec is None or "kernel" not in callspec.params:
        return
    name = str(callspec.params["kernel"])
    if _version(name) < _version(str(mark.args[0])):
        pytest.skip(f"needs kernel >= {mark.args[0]} (this is {name})")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Whatever the test's "kernel" fixture gave: a guest session has a kernel log.
    session: Any = getattr(item, "funcargs", {}).get("kernel")
    if report.failed and hasattr(session, "kernel_log") and hasattr(session, "kernel"):
        lines = session.kernel_log(last=_LOG_LINES)
        title = f"kernel log of {session.kernel.release} (last {len(lines)} lines)"
        report.sections.append((title, "\n".join(lines) or "(empty)"))
    return report


class _Recorder:
    """Each test's outcome per kernel, written as JSON at the end (``--kfunc-report``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = report.outcome
        elif report.when == "teardown" and report.failed:
            outcome = "failed"
        else:
            return
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            lines = (crash.message if crash else report.longreprtext).strip().splitlines()
            reason = (lines[0] if crash else lines[-1]) if lines else ""
        self.records.append({"nodeid": report.nodeid, "when": report.when, "outcome": outcome,
                             "reason": reason, "seconds": round(report.duration, 3)})  # fmt: skip

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        kernels = {}
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            if callspec is not None and "kernel" in callspec.params:
                kernels[item.nodeid] = (str(callspec.params["kernel"]), callspec.id)
        for record in self.records:
            kernel_name, ids = kernels.get(record["nodeid"], ("", ""))
            record["kernel"] = kernel_name
            record["test"] = _test_name(record["nodeid"], kernel_name, ids)
        data = {"kernels": kernel_names(session.config), "results": self.records}
        self.path.write_text(json.dumps(data, indent=1))


def _test_name(nodeid: str, kernel_name: str, ids: str) -> str:
    """The node id without the kernel's part of its parameter id."""
    if not kernel_name or not nodeid.endswith(f"[{ids}]"):
        return nodeid
    parts = ids.split("-")
    rest = list(parts)
    width = len(kernel_name.split("-"))
    for i in range(len(parts) - width + 1):
        if "-".join(parts[i : i + width]) == kernel_name:
            rest = parts[:i] + parts[i + width :]
            break
    base = nodeid[: -len(ids) - 2]
    return f"{base}[{'-'.join(rest)}]" if rest else base
