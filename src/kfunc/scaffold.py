"""``kfunc new NAME``: a project to start from, which builds and passes its test."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from kfunc import __version__
from kfunc.errors import KfuncError
from kfunc.spec import module_name_problem

__all__ = ["DEFAULT_KERNELS", "scaffold"]

_SPEC = """\
# The kfunc module {name}: edit the kfuncs here; `kfunc build` generates the
# module into build/ and `kfunc run .` runs the tests below in a real kernel.
[module]
name = "{name}"
description = "kfuncs of {name}"
prog_types = ["syscall", "tracing"]

[[kfunc]]
name = "{name}_add"
proto = "u64 {name}_add(u64 a, u64 b)"
body = "return a + b;"

# BPF_PROG_TEST_RUN of a program of {name}.bpf.c, and what it must return.
[[run.test]]
program = "add"
retval = 42

# The kernels `kfunc test` (and the CI workflow) run test_{name}.py on.
[test]
kernels = {kernels}
"""

_BPF = """\
// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Calls {name}'s kfunc; `kfunc run .` test-runs it (see kfunc.toml). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "{name}_kfuncs.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("syscall")
int add(void *ctx)
{{
	return {name}_add(40, 2);
}}
"""

_TEST = '''\
"""{name}'s kfuncs, tested in real kernels with kfunc's pytest fixtures.

    kfunc test .                     # every kernel of kfunc.toml's [test] kernels
    pytest --kernels 6.12 -x         # the same, with pytest's own options

`kernel` is a booted guest (one boot per kernel), `module` the module built
for it and inserted, `bpf` loads {name}.bpf.o (built for that kernel) there.
"""


def test_{name}_kfunc_is_registered(module):
    assert "{name}_add" in module.kfuncs  # in /sys/kernel/btf/{name}, with its BTF id


def test_{name}_add(bpf):
    obj = bpf.load()
    assert obj.programs["add"].test_run().retval == 42
'''

# GitHub Actions: one job per kernel, in a Debian container (kfunc takes the
# kernels from Debian's packages and is tested with bookworm's clang, libbpf and
# qemu), kfunc's cache (kernels, root filesystems, snapshots) kept between runs.
# tests/test_workflow.py runs this job's steps in a fresh bookworm root filesystem.
_WORKFLOW = """\
name: kfunc

on:
  push:
  pull_request:
  workflow_dispatch:

jobs:
  test:
    name: kernel ${{{{ matrix.kernel }}}}
    runs-on: ubuntu-latest
    container:
      image: debian:bookworm
      options: --privileged  # BPF, and the runner's /dev/kvm for the test guests
    strategy:
      fail-fast: false
      matrix:
        kernel: {kernels}
    env:
      KFUNC_CACHE: /root/.cache/kfunc
      KFUNC_REQUIRE_VM: "1"  # a test that cannot boot its kernel fails instead of skipping
      # The kfunc to install: a pip requirement (the version that wrote this file),
      # a git URL (git+https://...) or a path in the checkout.
      KFUNC_INSTALL: "kfunc=={version}"
    steps:
      - uses: actions/checkout@v4
      - name: /dev/kvm
        # GitHub's ubuntu runners have /dev/kvm; --privileged passes it into this
        # container, where the job runs as root and opens it as it is (kfunc
        # probes it and falls back to TCG where KVM does not work). A job run on
        # the runner itself (no container) runs as a user outside the kvm group:
        # there, the udev rule libbpf's CI uses opens it (a container has no udev).
        run: |
          if [ -e /dev/kvm ] && [ ! -w /dev/kvm ]; then
            echo 'KERNEL=="kvm", GROUP="kvm", MODE="0666", OPTIONS+="static_node=kvm"' \\
              | sudo tee /etc/udev/rules.d/99-kvm4all.rules
            sudo udevadm control --reload-rules
            sudo udevadm trigger --name-match=kvm
          fi
          if [ -w /dev/kvm ]; then echo "/dev/kvm: the guests may use KVM"
          else echo "no /dev/kvm: the guests run under TCG (slower)"; fi
      - name: Tools (clang, libbpf, pahole, qemu)
        run: |
          apt-get update -q
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
            python3 python3-venv git ca-certificates clang clang-16 llvm libbpf1 libbpf-dev \\
            bpftool dwarves qemu-system-x86 busybox-static kmod cpio make gcc-12 libelf1 zstd \\
            xz-utils dpkg-dev file mmdebstrap debian-archive-keyring
      - name: kfunc
        run: |
          python3 -m venv /opt/kfunc
          /opt/kfunc/bin/pip install -q "$KFUNC_INSTALL" pytest
          echo /opt/kfunc/bin >> "$GITHUB_PATH"
      - name: Cache key (kfunc version, kernel release)
        id: cache-key
        run: |
          release=$(kfunc kernels --release "${{{{ matrix.kernel }}}}")
          echo "key=kfunc-$(kfunc --version | cut -d' ' -f2)-$release" >> "$GITHUB_OUTPUT"
      - name: kfunc's cache (kernels, root filesystems, snapshots)
        # No restore-keys: kfunc uses a cached kernel of the series as it is, so
        # an older release restored under a new key would be tested in its place.
        uses: actions/cache@v4
        with:
          path: |
            /root/.cache/kfunc
            !/root/.cache/kfunc/debs
          key: ${{{{ steps.cache-key.outputs.key }}}}
      - name: kfunc test (${{{{ matrix.kernel }}}})
        run: >-
          kfunc test . --kernels "${{{{ matrix.kernel }}}}"
          --junit "junit-${{{{ matrix.kernel }}}}.xml"
      - name: Test results
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: junit-${{{{ matrix.kernel }}}}
          path: junit-${{{{ matrix.kernel }}}}.xml
"""

DEFAULT_KERNELS = ("6.1", "6.12")


def scaffold(name: str, parent: Path | str = ".", kernels: Sequence[str] = DEFAULT_KERNELS) -> Path:
    """Write a new project ``name/`` under ``parent``: spec, BPF program, test, CI workflow.

    ``kernels`` is the project's test matrix (kfunc.toml's ``[test] kernels``,
    one CI job each).
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise KfuncError(
            f"kfunc new: {name!r} is not a valid module name",
            "use lower-case letters, digits and underscores, not starting with a digit",
        )
    problem = module_name_problem(name)
    if problem is not None:  # what kfunc.toml's schema would refuse later
        raise KfuncError(f"kfunc new: {problem}", "pick another module name")
    path = Path(parent) / name
    if os.path.lexists(path):
        dangling = " (a dangling symlink)" if path.is_symlink() and not path.exists() else ""
        raise KfuncError(f"{path}: already exists{dangling}", "choose another name or remove it")
    matrix = json.dumps(list(kernels))
    files = {
        "kfunc.toml": _SPEC.format(name=name, kernels=matrix),
        f"{name}.bpf.c": _BPF.format(name=name),
        f"test_{name}.py": _TEST.format(name=name),
        ".github/workflows/kfunc.yml": _WORKFLOW.format(kernels=matrix, version=__version__),
        ".gitignore": "build/\n__pycache__/\n",
    }
    # Made in a temporary directory beside it and renamed at the end: a failure
    # (a full disk, a name too long for a file in it) leaves nothing behind.
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".kfunc-new-", dir=parent))
    except OSError as exc:
        raise KfuncError(
            f"kfunc new: cannot create {name}/ in {parent}: {exc.strerror}",
            "run it in a directory you may write to",
        ) from None
    try:
        for rel, text in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_text(text)
        os.chmod(tmp, 0o777 & ~_umask())
        os.rename(tmp, path)
    except OSError as exc:
        raise KfuncError(
            f"kfunc new: cannot create {path}/: {exc.strerror}",
            "choose a shorter name, or a directory you may write to with free space",
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
