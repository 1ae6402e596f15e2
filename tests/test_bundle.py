"""The agent's bundle: built once, rebuilt when a file changed, and the agent runs from it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kfunc.vm import bundle


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KFUNC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_bundle_is_built_once_and_rebuilt_when_stale(cache: Path) -> None:
    path = bundle.bundle_path()
    assert path.is_relative_to(cache)
    built = path.stat().st_mtime_ns
    assert bundle.bundle_path() == path and path.stat().st_mtime_ns == built
    manifest = json.loads(path.with_suffix(".json").read_text())
    agent = next(f for f in manifest if f.endswith("kfunc/vm/agent/runner.py"))
    assert any(f.endswith("/json/decoder.py") for f in manifest)  # the stdlib's too
    manifest[agent][0] += 1  # as if runner.py had changed size
    path.with_suffix(".json").write_text(json.dumps(manifest))
    assert bundle.bundle_path() == path and path.stat().st_mtime_ns != built


def test_the_agent_runs_from_the_bundle(cache: Path, tmp_path: Path) -> None:
    """A plan carried out by the agent as the guest starts it (isolated, no site)."""
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"steps": [{"op": "trigger", "kind": "command",
                                           "command": "echo hi"}]}))  # fmt: skip
    argv = bundle.agent_argv(str(plan))
    assert argv[1:3] == ["-I", "-S"] and argv[3].endswith(".py")
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    events = [json.loads(ln) for ln in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events] == ["boot", "trigger", "done"]
    assert events[1]["data"]["output"] == "hi\n"
