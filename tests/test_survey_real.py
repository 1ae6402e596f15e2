"""The survey on Debian's real linux-source-6.12 package, checked against an
independent count: tar and grep over the same sources, and upstream facts.

Slow (about 30 s: the package is streamed once by kfunc and unpacked once by
tar); skipped where the package cannot be fetched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kfunc.errors import KfuncError
from kfunc.survey.debian import fetch_source_package
from kfunc.survey.sources import survey_tree

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("tar") is None, reason="needs dpkg-deb, tar"
)


@pytest.fixture(scope="module")
def deb_612() -> Path:
    try:
        return fetch_source_package("6.12")
    except KfuncError as exc:
        pytest.skip(f"linux-source-6.12 not available: {exc}")


def _unpack_c_files(deb: Path, dest: Path) -> Path:
    """The tree's .c files and the two headers, unpacked by dpkg-deb and tar."""
    inner = "./usr/src/linux-source-6.12.tar.xz"
    script = (
        f"dpkg-deb --fsys-tarfile '{deb}' | tar -xO '{inner}' | "
        f"tar -xJ -C '{dest}' --wildcards '*.c' '*/include/net/xdp.h' "
        "'*/include/uapi/linux/bpf.h'"
    )
    subprocess.run(["sh", "-c", script], check=True)
    return dest / "linux-source-6.12"


def test_debian_612_against_grep(deb_612: Path, tmp_path: Path) -> None:
    count = survey_tree(deb_612)
    assert count.release.startswith("6.12.")
    root = _unpack_c_files(deb_612, tmp_path)

    # Helpers: 6.12's mapper ends with cgrp_storage_delete, id 211 (added in 6.2;
    # no helper has been added since).
    bpf_h = (root / "include/uapi/linux/bpf.h").read_text()
    ids = [int(n) for n in re.findall(r"FN\(\w+, (\d+), ##ctx\)", bpf_h)]
    assert count.n_helpers == max(ids) == 211
    assert count.helpers[-1] == "cgrp_storage_delete"

    # kfuncs: every BTF_ID_FLAGS(func, x) of the tree's .c files (6.12 has no plain
    # kfunc sets left), less the excluded places and the fmodret set of
    # net/mptcp/bpf.c, plus the XDP metadata list of include/net/xdp.h.
    grep = subprocess.run(
        ["grep", "-rHoE", r"BTF_ID_FLAGS\(func, *[A-Za-z0-9_]+", "--include=*.c", "."],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    excluded = ("./tools/", "./samples/", "./Documentation/", "./net/bpf/test_run.c")
    names = {
        line.rsplit(",", 1)[1].strip()
        for line in grep.splitlines()
        if not line.startswith(excluded)
    }
    fmodret = {"update_socket_protocol"}  # BTF_SET8_START(bpf_mptcp_fmodret_ids)
    names -= fmodret | {"name"}  # "name": the XDP_METADATA_KFUNC macro's parameter
    xdp_h = (root / "include/net/xdp.h").read_text()
    xdp = set(re.findall(r"\bbpf_xdp_metadata_rx_\w+", xdp_h))
    assert xdp == {
        "bpf_xdp_metadata_rx_timestamp",
        "bpf_xdp_metadata_rx_hash",
        "bpf_xdp_metadata_rx_vlan_tag",
    }
    assert set(count.kfuncs) == names | xdp
    assert count.n_kfuncs == 202
    # a few well-known kfuncs of 6.12, and where they live
    assert count.kfuncs["bpf_task_acquire"] == "kernel/bpf/helpers.c"
    assert count.kfuncs["bpf_cpumask_create"] == "kernel/bpf/cpumask.c"
    assert count.kfuncs["scx_bpf_dispatch"] == "kernel/sched/ext.c"
    assert "bpf_kfunc_call_test1" not in count.kfuncs
