"""``survey --git`` on a small repository built here: one commit per era, release
tags, a side branch merged into mainline, renames and deletions."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from survey_trees import EXPECTED_HELPERS, EXPECTED_KFUNCS, tree_files, write_tree

from kfunc.cli import main
from kfunc.errors import KfuncError
from kfunc.survey.git import survey_git

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

ERAS = ["3.18", "4.20", "5.13", "5.16", "5.18", "6.2", "6.9"]


def _git(repo: Path, *args: str, when: dt.datetime | None = None) -> str:
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(repo))
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t")
    env["GIT_COMMITTER_EMAIL"] = "t@x"
    if when is not None:
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
        env.update(GIT_AUTHOR_DATE=stamp, GIT_COMMITTER_DATE=stamp)
    return subprocess.run(
        ["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True
    ).stdout


def _commit_tree(repo: Path, files: dict[str, str], msg: str, when: dt.datetime) -> None:
    for path in list(repo.rglob("*")):
        if path.is_file() and ".git" not in path.parts:
            path.unlink()
    write_tree(repo, files)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", msg, when=when)


def _date(i: int) -> dt.datetime:
    return dt.datetime(2015 + i, 6, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("linux")
    _git(repo, "init", "-q", "-b", "master")
    for i, era in enumerate(ERAS):
        _commit_tree(repo, tree_files(era), f"Linux {era}", _date(i))
        # annotated tags for the older ones, lightweight for the newer
        if i < 3:
            _git(repo, "tag", "-a", f"v{era}", "-m", f"Linux {era}", when=_date(i))
        else:
            _git(repo, "tag", f"v{era}")
        if era == "6.2":
            # A side branch adds a kfunc in an old commit; mainline merges it later.
            _git(repo, "checkout", "-q", "-b", "side")
            files = tree_files("6.2")
            files["kernel/bpf/side.c"] = (
                "BTF_KFUNCS_START(side_ids)\nBTF_ID_FLAGS(func, bpf_side_kfunc)\n"
                "BTF_KFUNCS_END(side_ids)\n"
            )
            _commit_tree(repo, files, "side work", _date(i) + dt.timedelta(days=1))
            _git(repo, "checkout", "-q", "master")
            _git(repo, "tag", "v6.2-rc1")  # not a release tag
    # after v6.9: merge the side branch (dated later), then rename and delete files
    _git(repo, "merge", "-q", "--no-ff", "side", "-m", "Merge side", when=_date(8))
    _git(repo, "mv", "net/ipv4/tcp_bbr.c", "net/ipv4/tcp_bbr2.c")
    _git(repo, "rm", "-q", "net/netfilter/nf_conntrack_bpf.c")
    _git(repo, "commit", "-q", "-m", "rename and delete", when=_date(9))
    _git(repo, "tag", "v6.10")
    return repo


def test_counts_per_release_tag(repo: Path) -> None:
    survey = survey_git(repo, first_seen=False)
    got = {r.release: r for r in survey.releases}
    assert list(got) == [f"v{e}" for e in ERAS] + ["v6.10"]
    for era in ERAS:
        r = got[f"v{era}"]
        assert r.n_helpers == EXPECTED_HELPERS[era], era
        assert set(r.kfuncs) == EXPECTED_KFUNCS[era], era
        assert r.source.startswith("git:")
    assert got["v3.18"].date == _date(0).date()  # annotated tag: its commit's date
    assert got["v6.9"].date == _date(6).date()  # lightweight tag
    v610 = got["v6.10"]
    assert "bpf_side_kfunc" in v610.kfuncs
    assert "bpf_xdp_ct_lookup" not in v610.kfuncs  # file deleted
    assert v610.kfuncs["bbr_init"] == "net/ipv4/tcp_bbr2.c"  # renamed file still read
    assert survey.first_seen == []


def test_first_seen_dates_on_mainline(repo: Path) -> None:
    survey = survey_git(repo, "v4.20..v6.10")
    assert survey.releases[0].release == "v4.20"
    seen = {(f.kind, f.name): f for f in survey.first_seen}
    assert seen[("helper", "map_lookup_elem")].date == _date(0)
    assert seen[("helper", "probe_read")].date == _date(1)
    assert seen[("helper", "cgrp_storage_delete")].date == _date(5)
    assert seen[("kfunc", "tcp_slow_start")].date == _date(2)
    assert seen[("kfunc", "bpf_xdp_metadata_rx_hash")].date == _date(5)
    assert seen[("kfunc", "bpf_cpumask_create")].date == _date(6)
    # reached mainline with the merge, not when written on the side branch
    assert seen[("kfunc", "bpf_side_kfunc")].date == _date(8)
    assert not any(
        f.name in ("update_socket_protocol", "bpf_kfunc_call_test1") for f in seen.values()
    )
    kfuncs = [f for f in survey.first_seen if f.kind == "kfunc"]
    assert len(kfuncs) == len(EXPECTED_KFUNCS["6.9"]) + 1


def test_tag_selection(repo: Path) -> None:
    assert [r.release for r in survey_git(repo, "v5.16,v6.2", first_seen=False).releases] == [
        "v5.16",
        "v6.2",
    ]
    assert [r.release for r in survey_git(repo, "v6.2..", first_seen=False).releases] == [
        "v6.2",
        "v6.9",
        "v6.10",
    ]
    with pytest.raises(KfuncError, match=r"tag 'v9\.9' not found"):
        survey_git(repo, "v5.13..v9.9")


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(KfuncError, match="not a git repository"):
        survey_git(tmp_path)


def test_cli_git_chart(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chart = tmp_path / "history.png"
    csv_path = tmp_path / "h.csv"
    assert main(["survey", "--git", str(repo), "--chart", str(chart), "--csv", str(csv_path)]) == 0
    out = capsys.readouterr().out
    assert "v6.10" in out and "kfuncs dated by first commit" in out
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "h-first-seen.csv").exists()
