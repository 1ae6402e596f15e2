"""The stable API that ``kfunc/__init__.py`` re-exports, and what ``import kfunc`` costs."""

import subprocess
import sys

import kfunc


def test_every_name_in_all_resolves() -> None:
    for name in kfunc.__all__:
        value = getattr(kfunc, name)
        if name != "__version__":
            # The object itself, defined in kfunc, under the name it is exported as.
            assert value.__name__ == name, name
            assert value.__module__.startswith("kfunc."), (name, value.__module__)
    assert sorted(kfunc.__all__) == sorted(set(kfunc.__all__))
    assert set(kfunc.__all__) <= set(dir(kfunc))


def test_the_names_are_those_of_their_modules() -> None:
    """What the docs' examples import from kfunc is what their modules define."""
    from kfunc.build import build_project
    from kfunc.errors import KfuncError, LibbpfError
    from kfunc.kbuild import ModuleSource, build_module
    from kfunc.kernels.target import get_kernel
    from kfunc.libbpf import BpfObject, RingBuffer
    from kfunc.project import Project
    from kfunc.run import run_projects
    from kfunc.vm.remote import GuestModule, RemoteObject
    from kfunc.vm.session import GuestSession

    assert kfunc.get_kernel is get_kernel
    assert kfunc.build_module is build_module and kfunc.ModuleSource is ModuleSource
    assert kfunc.Project is Project and kfunc.build_project is build_project
    assert kfunc.run_projects is run_projects
    assert kfunc.BpfObject is BpfObject
    assert kfunc.RingBuffer is RingBuffer  # the host's, not vm.remote's proxy
    assert kfunc.GuestSession is GuestSession
    assert kfunc.GuestModule is GuestModule and kfunc.RemoteObject is RemoteObject
    assert issubclass(kfunc.LibbpfError, KfuncError) and kfunc.LibbpfError is LibbpfError


def test_every_error_is_exported() -> None:
    """A caller catches any of kfunc's errors by ``from kfunc import ...``."""
    import kfunc.errors

    assert set(kfunc.errors.__all__) <= set(kfunc.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        kfunc.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("kfunc.no_such_name resolved")


def _imported(code: str) -> tuple[set[str], dict[str, int]]:
    """The modules a fresh interpreter imports to run ``code``, and each one's cumulative µs."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    modules: set[str] = set()
    cumulative: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, total, name = line.split("|", 2)
            if not total.strip().isdigit():
                continue  # the header line
            modules.add(name.strip())
            cumulative[name.strip()] = int(total)
    return modules, cumulative


def test_import_kfunc_imports_nothing_else() -> None:
    """``import kfunc`` (every command's first import) costs no module of its API.

    Compared with a bare interpreter in the same run: the difference is kfunc
    itself, whatever the machine's speed (the time is printed, not asserted).
    """
    bare, _ = _imported("pass")
    with_kfunc, us = _imported("import kfunc")
    assert with_kfunc - bare == {"kfunc"}, sorted(with_kfunc - bare)
    print(f"import kfunc: {us['kfunc']} µs, site: {us['site']} µs")
    # And the first use of a name imports its module, and only then.
    touched, _ = _imported("import kfunc; kfunc.KfuncError")
    assert "kfunc.errors" in touched and "msgspec" not in touched
