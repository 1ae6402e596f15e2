"""kfunc bench calls on the host: the four kinds of call load and run in the real kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")


def test_bench_calls_on_the_host() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kfunc", "bench", "calls", "--repeat", "50", "--json"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["where"].startswith("host kernel ")
    costs = {c["kind"]: c for c in result["costs"]}
    assert list(costs) == ["inline", "subprog", "helper", "kfunc"]
    # Every program ran (a run of LOOP iterations takes time), and the
    # per-call figures are measured over the inline loop.
    assert all(c["run_ns"] > 0 for c in costs.values())
    assert costs["inline"]["call_ns"] == 0
    assert "bpf_preempt_disable" in costs["kfunc"]["what"]
