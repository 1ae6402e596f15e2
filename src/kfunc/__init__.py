"""kfunc: author, build, load and test eBPF kfuncs defined in kernel modules.

The stable API is re-exported here (``from kfunc import get_kernel,
build_project``); everything else is reached through its module, named after
its concept (``docs/architecture.md`` maps them). The names are imported on
first use (PEP 562): ``import kfunc``, which every ``kfunc`` command does
first, imports nothing else, so that ``kfunc ls`` pays only for what it uses.
"""

__version__ = "0.1.0"

# Each name of the stable API and the module it lives in.
_HOME = {
    # Errors: one line naming the cause, and the fix (docs/architecture.md).
    **dict.fromkeys(
        [
            "BTFError",
            "BuildError",
            "CheckError",
            "ELFError",
            "GuestError",
            "GuestPanicError",
            "KernelNotFoundError",
            "KfuncError",
            "LibbpfError",
            "LostVMError",
            "MissingToolError",
            "RunError",
            "SpecError",
            "UnsupportedFeatureError",
            "VerifierError",
        ],
        "kfunc.errors",
    ),
    # Target kernels.
    **dict.fromkeys(["Kernel", "get_kernel"], "kfunc.kernels.target"),
    # Projects: found, built, run in one boot.
    "Project": "kfunc.project",
    **dict.fromkeys(["ProjectBuild", "build_project"], "kfunc.build"),
    **dict.fromkeys(["ProjectReport", "RunReport", "run_projects"], "kfunc.run"),
    # Modules built with BTF by kbuild.
    **dict.fromkeys(["ModuleBuild", "ModuleSource", "build_module"], "kfunc.kbuild"),
    # libbpf from Python, on the host.
    **dict.fromkeys(["BpfObject", "RingBuffer", "RunResult"], "kfunc.libbpf"),
    # Guests: one boot, many requests; the libbpf API over it.
    "GuestSession": "kfunc.vm.session",
    **dict.fromkeys(["GuestModule", "RemoteObject"], "kfunc.vm.remote"),
    # The pytest plugin's `bpf` fixture, for a test's annotations.
    "BpfLoader": "kfunc.pytest_plugin",
    # BTF, and what a kernel exports.
    **dict.fromkeys(["BTF", "load_vmlinux_btf", "parse_btf_file"], "kfunc.btf"),
    **dict.fromkeys(["Inventory", "Kfunc", "kernel_inventory"], "kfunc.inventory"),
    "diff_inventories": "kfunc.apidiff",
    # Before and after the verifier.
    "check_object": "kfunc.check",
    "explain_log": "kfunc.verifier",
}

__all__ = [
    "BTF",
    "BTFError",
    "BpfLoader",
    "BpfObject",
    "BuildError",
    "CheckError",
    "ELFError",
    "GuestError",
    "GuestModule",
    "GuestPanicError",
    "GuestSession",
    "Inventory",
    "Kernel",
    "KernelNotFoundError",
    "Kfunc",
    "KfuncError",
    "LibbpfError",
    "LostVMError",
    "MissingToolError",
    "ModuleBuild",
    "ModuleSource",
    "Project",
    "ProjectBuild",
    "ProjectReport",
    "RemoteObject",
    "RingBuffer",
    "RunError",
    "RunReport",
    "RunResult",
    "SpecError",
    "UnsupportedFeatureError",
    "VerifierError",
    "__version__",
    "build_module",
    "build_project",
    "check_object",
    "diff_inventories",
    "explain_log",
    "get_kernel",
    "kernel_inventory",
    "load_vmlinux_btf",
    "parse_btf_file",
    "run_projects",
]

# Seen by type checkers only: at run time the names come from __getattr__.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from kfunc.apidiff import diff_inventories
    from kfunc.btf import BTF, load_vmlinux_btf, parse_btf_file
    from kfunc.build import ProjectBuild, build_project
    from kfunc.check import check_object
    from kfunc.errors import (
        BTFError,
        BuildError,
        CheckError,
        ELFError,
        GuestError,
        GuestPanicError,
        KernelNotFoundError,
        KfuncError,
        LibbpfError,
        LostVMError,
        MissingToolError,
        RunError,
        SpecError,
        UnsupportedFeatureError,
        VerifierError,
    )
    from kfunc.inventory import Inventory, Kfunc, kernel_inventory
    from kfunc.kbuild import ModuleBuild, ModuleSource, build_module
    from kfunc.kernels.target import Kernel, get_kernel
    from kfunc.libbpf import BpfObject, RingBuffer, RunResult
    from kfunc.project import Project
    from kfunc.pytest_plugin import BpfLoader
    from kfunc.run import ProjectReport, RunReport, run_projects
    from kfunc.verifier import explain_log
    from kfunc.vm.remote import GuestModule, RemoteObject
    from kfunc.vm.session import GuestSession


def __getattr__(name: str) -> object:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # __import__ rather than importlib: importlib is not loaded at start-up.
    value = getattr(__import__(home, fromlist=[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
