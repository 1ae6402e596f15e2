"""The guest agent's Python modules in one file, so that the agent starts fast.

The guest reads the host's root filesystem over 9p, where every stat and
open is a round trip through an emulated virtio queue, and under TCG every
line of Python is emulated too. A plain ``python -m kfunc.vm.agent`` makes
about a thousand such calls before its first step: site's .pth files, and
for each of some 110 imports a walk over ``sys.path`` by importlib's path
finder, itself Python code.

The bundle holds the compiled code of every pure-Python module the agent
imports (kfunc's and the standard library's), in one marshal file in
kfunc's cache. The guest's Python starts isolated and without site (``-I
-S``) and a finder placed first serves those modules from memory; any other
module is found as usual on the host's ``sys.path``, which the bundle also
carries. A bundle is rebuilt when one of its files changed (size or mtime),
or the Python that runs it is another.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import struct
import subprocess
import sys
from pathlib import Path

from kfunc.cache import cache_dir

__all__ = ["AGENT_IMPORTS", "agent_argv", "bundle_path"]

#: What the agent imports before or during the common steps (load, attach,
#: trace, test runs, maps): the modules of the bundle are these and theirs.
AGENT_IMPORTS = ("kfunc.vm.agent", "kfunc.libbpf", "kfunc.libbpf.btf", "kfunc.tracefs")

# The guest's Python runs this script (written beside the bundle): install the
# bundle's finder, then the agent. argv: SCRIPT AGENT-ARGS...; the bundle is
# the script's path with the suffix .marshal. (Not -c: vng passes the command
# in the kernel's command line, whose 2048 bytes a long one overflows.)
_BOOT = """\
import marshal, sys
with open(sys.argv[0][: -len(".py")] + ".marshal", "rb") as f:
    _b = marshal.loads(f.read())
_spec = sys.modules["_frozen_importlib"].ModuleSpec
_mods = _b["modules"]
class _Bundled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        entry = _mods.get(name)
        if entry is None:
            return None
        spec = _spec(name, _Bundled, origin=entry[1], is_package=entry[0])
        spec.has_location = True
        if entry[0]:
            spec.submodule_search_locations = [entry[1].rpartition("/")[0]]
        return spec
    @staticmethod
    def create_module(spec):
        return None
    @staticmethod
    def exec_module(module):
        exec(marshal.loads(_mods[module.__spec__.name][2]), module.__dict__)
sys.meta_path.insert(0, _Bundled)
sys.path[:] = _b["path"]
from kfunc.vm.agent import main
sys.exit(main(sys.argv[1:]))
"""


def agent_argv(*args: str) -> list[str]:
    """The guest's command line that runs the agent with ``args`` from the bundle."""
    return [sys.executable, "-I", "-S", str(bundle_path().with_suffix(".py")), *args]


def _key() -> str:
    kfunc_dir = Path(__file__).resolve().parent.parent
    seed = f"{sys.executable}\0{sys.version}\0{kfunc_dir}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def bundle_path() -> Path:
    """The agent's bundle for this Python and this kfunc, built if missing or stale."""
    path = cache_dir("agent") / f"bundle-{_key()}.marshal"
    manifest = path.with_suffix(".json")
    try:
        files = json.loads(manifest.read_text())
        fresh = path.exists() and path.with_suffix(".py").read_text() == _BOOT
        if fresh and all(_stamp(f) == stamp for f, stamp in files.items()):
            return path
    except (OSError, ValueError):
        pass
    _build(path, manifest)
    return path


def _stamp(file: str) -> list[int]:
    st = os.stat(file)
    return [st.st_size, st.st_mtime_ns]


_LIST = """\
import importlib.util, json, sys
for name in sys.argv[1:]:
    __import__(name)
out = {}
for name, module in sorted(sys.modules.items()):
    spec = getattr(module, "__spec__", None)
    if spec is not None and spec.origin and spec.origin.endswith(".py") and spec.has_location:
        out[name] = [spec.submodule_search_locations is not None, spec.origin]
print(json.dumps({"path": sys.path[1:], "modules": out}))
"""


def _code(origin: str, stamp: list[int]) -> bytes:
    """The marshalled code of the module at ``origin``: from its .pyc when that is
    up to date (the listing's imports wrote it), else compiled."""
    size, mtime_ns = stamp
    try:
        pyc = Path(importlib.util.cache_from_source(origin)).read_bytes()
        flags, mtime, pyc_size = struct.unpack("<3I", pyc[4:16])
        if (pyc[:4], flags, mtime, pyc_size) == (
            importlib.util.MAGIC_NUMBER,
            0,
            (mtime_ns // 10**9) & 0xFFFFFFFF,
            size & 0xFFFFFFFF,
        ):
            return pyc[16:]
    except (OSError, ValueError, struct.error):
        pass
    code = compile(Path(origin).read_bytes(), origin, "exec", dont_inherit=True)
    return marshal.dumps(code)


def _build(path: Path, manifest: Path) -> None:
    # What a fresh interpreter imports for the agent (this one has imported more).
    listed = subprocess.run(
        [sys.executable, "-c", _LIST, *AGENT_IMPORTS],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = json.loads(listed.stdout)
    modules: dict[str, tuple[bool, str, bytes]] = {}
    stamps: dict[str, list[int]] = {}
    for name, (is_package, origin) in found["modules"].items():
        stamps[origin] = _stamp(origin)
        modules[name] = (is_package, origin, _code(origin, stamps[origin]))
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(marshal.dumps({"path": found["path"], "modules": modules}))
    tmp.replace(path)
    tmp = path.with_name(f"{path.stem}.py.{os.getpid()}.tmp")
    tmp.write_text(_BOOT)
    tmp.replace(path.with_suffix(".py"))
    tmp = manifest.with_name(f"{manifest.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stamps))
    tmp.replace(manifest)
