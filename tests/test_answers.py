"""Replayed answers (kfunc.cli.answers): a repeated ``kfunc ls`` prints what the
first one printed, and only while the files it read are unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kfunc.cli import answers
from kfunc.errors import BTFError

SYS_VMLINUX = Path("/sys/kernel/btf/vmlinux")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("KFUNC_CACHE", str(root))
    return root


def test_replay_only_while_inputs_unchanged(
    cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data.btf"
    data.write_bytes(b"first")
    argv = ["ls", "--btf", str(data)]
    assert not answers.replay(argv)  # nothing stored yet
    inputs = answers.identities([data])
    assert inputs is not None
    answers.store(argv, inputs, "stdout text\n", "stderr text\n")
    assert answers.replay(argv)
    assert capsys.readouterr() == ("stdout text\n", "stderr text\n")
    # Another command line, or the same one elsewhere, is another answer.
    assert not answers.replay([*argv, "--json"])
    here = Path.cwd()
    monkeypatch.chdir(tmp_path)
    assert not answers.replay(argv)
    monkeypatch.chdir(here)
    assert answers.replay(argv)
    capsys.readouterr()
    # A changed file (same size, same first byte) is not replayed.
    data.write_bytes(b"fresh")
    assert not answers.replay(argv)
    # Nor a file that is gone, nor a record that is damaged.
    answers.store(argv, answers.identities([data]) or [], "x", "")
    assert answers.replay(argv)
    assert capsys.readouterr().out == "x"
    data.unlink()
    assert not answers.replay(argv)
    (record,) = (cache / "answers").iterdir()
    record.write_text("{not json")
    assert not answers.replay(argv)
    assert capsys.readouterr() == ("", "")
    # Files that cannot be read have no identity: nothing is stored.
    assert answers.identities([data]) is None


def kfunc(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KFUNC_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "kfunc", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.skipif(not SYS_VMLINUX.exists(), reason=f"{SYS_VMLINUX} missing")
def test_ls_replays_then_sees_a_changed_file(cache: Path, tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux.btf"
    shutil.copyfile(SYS_VMLINUX, btf)
    first = kfunc(cache, "ls", "--btf", str(btf), "--json")
    assert first.returncode == 0, first.stderr
    (record,) = (cache / "answers").iterdir()
    stored = json.loads(record.read_text())
    assert stored["stdout"] == first.stdout
    # The replay is the stored record: mark it, and the mark comes back.
    stored["stdout"] = first.stdout.replace("bpf_task_acquire", "bpf_task_ACQUIRE", 1)
    record.write_text(json.dumps(stored))
    second = kfunc(cache, "ls", "--btf", str(btf), "--json")
    assert second.returncode == 0 and "bpf_task_ACQUIRE" in second.stdout
    # Table output is its own answer, with its summary line on stderr.
    table = kfunc(cache, "ls", "--btf", str(btf))
    again = kfunc(cache, "ls", "--btf", str(btf))
    assert again.stdout == table.stdout and again.stderr == table.stderr
    summary, note = again.stderr.splitlines()
    assert summary.endswith(f"kfunc(s) in {btf} (vmlinux: {len(json.loads(first.stdout))})")
    assert note.startswith("flags: ")  # raw BTF has no .BTF_ids: where the flags are
    # A changed file is read again: here cut short, so it fails as it should.
    with open(btf, "r+b") as f:
        f.truncate(btf.stat().st_size // 2)
    cut = kfunc(cache, "ls", "--btf", str(btf), "--json")
    # With --json, the error is one JSON object on stdout, nothing on stderr.
    assert cut.returncode == 1 and cut.stderr == ""
    error = json.loads(cut.stdout)
    assert error["ok"] is False and error["error"].startswith(f"BTF {btf}: type section")
    with pytest.raises(BTFError):  # the library agrees
        from kfunc.inventory import file_inventory

        file_inventory(btf, cache=False)
