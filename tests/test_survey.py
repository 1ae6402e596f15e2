"""The survey on small source trees built here: each shape of helper and kfunc
declaration, tarballs and .deb packages, dates, CSV/JSON, the chart and the CLI."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import struct
import tarfile
from pathlib import Path

import pytest
from survey_trees import (
    BPF_H_ENUM,
    BPF_H_FN1,
    BPF_H_FN3,
    EXPECTED_HELPERS,
    EXPECTED_KFUNCS,
    tree_files,
    write_tree,
)

from kfunc.cli import main
from kfunc.errors import KfuncError
from kfunc.survey import ReleaseCount, Survey, draw_chart, read_tree, survey_tree, write_csv
from kfunc.survey.dates import date_from_debian_changelog, release_date
from kfunc.survey.helpers import helpers_from_header
from kfunc.survey.kfunc_sets import kfuncs_of, parse_file
from kfunc.survey.model import FirstSeen
from kfunc.survey.report import write_json
from kfunc.survey.sources import count_tree


def test_helpers_enum_318() -> None:
    assert helpers_from_header(BPF_H_ENUM) == [
        "map_lookup_elem",
        "map_update_elem",
        "map_delete_elem",
    ]


def test_helpers_mapper_fn_name() -> None:
    names = helpers_from_header(BPF_H_FN1)
    assert names == [
        "map_lookup_elem",
        "map_update_elem",
        "map_delete_elem",
        "probe_read",
        "ktime_get_ns",
    ]


def test_helpers_mapper_fn_name_id_ctx() -> None:
    names = helpers_from_header(BPF_H_FN3)
    assert "unspec" not in names and names[-1] == "cgrp_storage_delete" and len(names) == 6


def test_helpers_none_before_bpf() -> None:
    assert helpers_from_header("/* no bpf here */") == []


@pytest.mark.parametrize("era", sorted(EXPECTED_KFUNCS))
def test_tree_each_era(tmp_path: Path, era: str) -> None:
    root = write_tree(tmp_path / f"linux-{era}", tree_files(era))
    count = count_tree(read_tree(root))
    assert count.n_helpers == EXPECTED_HELPERS[era]
    assert set(count.kfuncs) == EXPECTED_KFUNCS[era]
    assert count.release == f"{era}.0"
    assert count.date == dt.date.fromisoformat(release_date(era)[0].isoformat())  # type: ignore[union-attr]


def test_exclusions_and_non_kfunc_sets(tmp_path: Path) -> None:
    count = count_tree(read_tree(write_tree(tmp_path / "t", tree_files("6.9"))))
    # test_run.c, tools/, samples/: excluded by path
    assert "bpf_kfunc_call_test1" not in count.kfuncs
    assert "bpf_testmod_test_mod_kfunc" not in count.kfuncs
    # fmodret set (register_btf_fmodret_id_set) and the verifier's deny list
    assert "update_socket_protocol" not in count.kfuncs
    assert "migrate_disable" not in count.kfuncs
    # the XDP macro's parameter is not a kfunc
    assert "name" not in count.kfuncs
    # each name once, attributed to the first file that declares it
    assert count.kfuncs["bpf_task_acquire"] == "kernel/bpf/cpumask.c"


def test_fmodret_set_also_registered_as_kfuncs_counts() -> None:
    text = """
BTF_SET8_START(both_ids)
BTF_ID_FLAGS(func, f1)
BTF_SET8_END(both_ids)
static const struct btf_kfunc_id_set both_set = { .set = &both_ids };
int init(void) {
	register_btf_fmodret_id_set(&both_set);
	return register_btf_kfunc_id_set(BPF_PROG_TYPE_TRACING, &both_set);
}
"""
    assert set(kfuncs_of({"a.c": parse_file(text)})) == {"f1"}


def test_plain_set_without_kfunc_registration_is_not_kfuncs() -> None:
    text = "BTF_SET_START(allow)\nBTF_ID(func, d_path)\nBTF_SET_END(allow)\n"
    assert kfuncs_of({"kernel/trace/bpf_trace.c": parse_file(text)}) == {}


def test_macro_definitions_in_btf_ids_h_are_not_sets() -> None:
    text = """
#define BTF_SET_START(name)				\\
__BTF_ID_LIST(name, local)				\\
__BTF_SET_START(name, local)
#define BTF_SET_END(name)
"""
    assert parse_file(text).sets == []


def _tarball(src: Path, out: Path, top: str) -> Path:
    with tarfile.open(out, "w:xz") as tar:
        tar.add(src, arcname=top)
    return out


def _deb(tarball: Path, out: Path, changelog: str) -> Path:
    """A minimal linux-source .deb: an ar archive whose data.tar holds the tarball."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        import gzip

        blob = gzip.compress(changelog.encode())
        info = tarfile.TarInfo("./usr/share/doc/linux-source-9.9/changelog.Debian.gz")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        tar.add(tarball, arcname="./usr/src/linux-source-9.9.tar.xz")
    members = [
        (b"debian-binary", b"2.0\n"),
        (b"control.tar.xz", b""),
        (b"data.tar.xz", data.getvalue()),
    ]
    with open(out, "wb") as f:
        f.write(b"!<arch>\n")
        for name, body in members:
            header = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) * 2 + b"100644".ljust(8)
            header += str(len(body)).encode().ljust(10) + b"`\n"
            assert len(header) == 60
            f.write(header + body + (b"\n" if len(body) % 2 else b""))
    return out


def test_tarball_counts_like_the_directory(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "src", tree_files("6.9"))
    tarball = _tarball(root, tmp_path / "linux-6.9.tar.xz", "linux-6.9")
    from_dir = count_tree(read_tree(root))
    from_tar = survey_tree(tarball)
    assert from_tar.helpers == from_dir.helpers
    assert from_tar.kfuncs == from_dir.kfuncs
    assert from_tar.release == "6.9.0"


def test_a_huge_generated_header_is_passed_over_but_a_huge_helpers_header_is_refused(
    tmp_path: Path,
) -> None:
    """Real trees hold generated headers over the C-source cap (6.12's amdgpu
    register maps, 24 MB): they define nothing counted and are skipped, in a
    directory and in a tarball alike; the helpers' header itself over the cap is
    an error naming it."""
    from kfunc.inputs import CAPS

    root = write_tree(tmp_path / "src", tree_files("6.9"))
    big = root / "drivers/gpu/big_sh_mask.h"
    big.parent.mkdir(parents=True)
    with big.open("wb") as f:
        f.truncate(CAPS["source"] + 1)  # sparse: costs no disk
    tarball = _tarball(root, tmp_path / "linux-6.9.tar.xz", "linux-6.9")
    for tree in (root, tarball):
        count = survey_tree(tree)
        assert set(count.kfuncs) == EXPECTED_KFUNCS["6.9"]
    helpers = root / "include/uapi/linux/bpf.h"
    with helpers.open("ab") as f:
        f.truncate(CAPS["source"] + 1)
    with pytest.raises(KfuncError, match=r"include/uapi/linux/bpf\.h: \d+ bytes, over the 16 MiB"):
        survey_tree(root)


def test_deb_package_is_streamed_and_dated_by_its_changelog(tmp_path: Path) -> None:
    files = tree_files("6.9")
    files["Makefile"] = "VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 4\nEXTRAVERSION =\n"
    root = write_tree(tmp_path / "src", files)
    tarball = _tarball(root, tmp_path / "linux-source-9.9.tar.xz", "linux-source-9.9")
    changelog = (
        "linux (9.9.4-1) unstable; urgency=medium\n\n  * New upstream stable update\n\n"
        " -- Dev <dev@debian.org>  Sun, 01 Nov 2026 13:55:46 +0100\n\n"
        "linux (9.9.1-1~exp1) experimental; urgency=medium\n\n"
        "  * New upstream release: https://kernelnewbies.org/Linux_9.9\n\n"
        " -- Dev <dev@debian.org>  Fri, 16 Oct 2026 10:00:00 +0200\n"
    )
    deb = _deb(tarball, tmp_path / "linux-source-9.9_9.9.4-1_all.deb", changelog)
    count = survey_tree(deb)
    assert count.release == "9.9.4"
    assert set(count.kfuncs) == EXPECTED_KFUNCS["6.9"]
    assert count.date == dt.date(2026, 10, 16)
    assert "approximate" in count.date_source


def test_bad_archives_are_one_line_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.xz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(KfuncError, match="cannot read as a source tarball"):
        survey_tree(junk)
    with pytest.raises(KfuncError, match="no such source tree"):
        survey_tree(tmp_path / "missing")
    deb = tmp_path / "x.deb"
    deb.write_bytes(b"!<arch>\n")
    with pytest.raises(KfuncError, match="no usr/src/linux-source"):
        survey_tree(deb)


def test_dates() -> None:
    assert release_date("6.12.117")[0] == dt.date(2024, 11, 17)
    assert release_date("v5.10")[0] == dt.date(2020, 12, 13)
    assert release_date("99.1") == (None, "unknown")
    log = (
        "linux (6.1.1-1~exp1) experimental; urgency=medium\n"
        "  * New upstream release: https://kernelnewbies.org/Linux_6.1\n"
        " -- A <a@b>  Thu, 22 Dec 2022 21:58:26 +0100\n"
    )
    assert date_from_debian_changelog(log, "6.1") == dt.date(2022, 12, 22)
    assert date_from_debian_changelog(log, "6.12") is None


def _survey() -> Survey:
    releases = [
        ReleaseCount("5.10.262", dt.date(2020, 12, 13), ["a"] * 155, {}, "x.deb"),
        ReleaseCount("6.1.192", dt.date(2022, 12, 11), ["a"] * 209, {"k": "f.c"}, "y.deb"),
    ]
    when = dt.datetime(2021, 6, 1, tzinfo=dt.UTC)
    seen = [FirstSeen("map_lookup_elem", "helper", when, "c" * 40)]
    seen.append(FirstSeen("bpf_task_acquire", "kfunc", when + dt.timedelta(days=400), "d" * 40))
    return Survey(releases, seen)


def test_csv_and_json(tmp_path: Path) -> None:
    survey = _survey()
    written = write_csv(survey, tmp_path / "s.csv")
    assert [p.name for p in written] == ["s.csv", "s-first-seen.csv"]
    rows = list(csv.DictReader(written[0].read_text().splitlines()))
    assert rows[1]["release"] == "6.1.192" and rows[1]["helpers"] == "209"
    seen = list(csv.DictReader(written[1].read_text().splitlines()))
    assert seen[0]["name"] == "map_lookup_elem"
    doc = json.loads(write_json(survey, tmp_path / "s.json").read_text())
    assert doc["releases"][1]["kfunc_names"] == {"k": "f.c"}
    assert doc["first_seen"][1]["kind"] == "kfunc"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("history", [True, False])
def test_chart_is_a_real_png(tmp_path: Path, history: bool) -> None:
    survey = _survey()
    if not history:
        survey.first_seen = []
    out = draw_chart(survey, tmp_path / "c.png")
    width, height = _png_size(out)
    assert (width, height) == (1440, 810)
    assert 20_000 < out.stat().st_size < 1_000_000


def test_chart_without_dates_is_an_error(tmp_path: Path) -> None:
    survey = Survey([ReleaseCount("x", None, [], {}, "x")])
    with pytest.raises(KfuncError, match="no dated release"):
        draw_chart(survey, tmp_path / "c.png")


def test_cli_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_tree(tmp_path / "a", tree_files("5.18"))
    b = write_tree(tmp_path / "b", tree_files("6.9"))
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        ["survey", "--tree", str(a), str(b), "--csv", str(out / "s.csv"),
         "--json", str(out / "s.json"), "--chart", str(out / "s.png")]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "5.18.0" in text and "6.9.0" in text
    doc = json.loads((out / "s.json").read_text())
    assert [r["kfuncs"] for r in doc["releases"]] == [7, 12]
    assert _png_size(out / "s.png")[0] == 1440


# Installed in a child as its sitecustomize: matplotlib cannot be imported, as
# on an install without the ``chart`` extra (the import system itself refuses it).
_NO_MATPLOTLIB = """
import sys

class _NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoMatplotlib())
"""


def test_chart_without_matplotlib_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    """Without matplotlib the survey still counts; only --chart fails, at once,
    naming matplotlib and the fix (the ``chart`` extra), before any counting."""
    import subprocess
    import sys

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_MATPLOTLIB)
    env = {**os.environ, "PYTHONPATH": str(site)}
    tree = write_tree(tmp_path / "t", tree_files("6.9"))

    def kfunc(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kfunc", *argv], env=env, capture_output=True, text=True,
            cwd=tmp_path, check=False, timeout=120,
        )  # fmt: skip

    probe = subprocess.run(
        [sys.executable, "-c", "import matplotlib"], env=env, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert probe.returncode == 1 and "No module named 'matplotlib'" in probe.stderr

    ok = kfunc("survey", "--tree", str(tree), "--csv", "s.csv")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "s.csv").is_file()

    failed = kfunc("survey", "--tree", str(tree), "--chart", "s.png")
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    lines = [ln for ln in failed.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("error: --chart: matplotlib is not installed"), lines
    assert "pip install 'kfunc[chart]'" in failed.stderr
    assert "reading" not in failed.stderr  # refused before the tree was counted
    assert not (tmp_path / "s.png").exists()


def test_cli_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["survey"]) == 1
    assert "nothing to count" in capsys.readouterr().err
    assert main(["survey", "--tree", ".", "--tags", "v6.1..v6.2"]) == 1
    assert "--tags: only with --git" in capsys.readouterr().err
    assert main(["survey", "--tree", ".", "--chart", "x.svg"]) == 1
    assert "not a .png" in capsys.readouterr().err


def test_built_kernel_beside_its_sources(tmp_path: Path) -> None:
    from kfunc.inventory import Inventory, Kfunc
    from kfunc.survey.built import compare

    source = count_tree(read_tree(write_tree(tmp_path / "t", tree_files("6.9"))))

    def k(name: str, owner: str = "vmlinux") -> Kfunc:
        return Kfunc(name, f"void {name}(void)", owner, (), ("s",), "btf_ids")

    built_names = set(EXPECTED_KFUNCS["6.9"]) - {"bpf_cpumask_create", "bbr_init", "bbr_main"}
    kfuncs = [k(n) for n in sorted(built_names)] + [k("bbr_init", "tcp_bbr")]
    kfuncs.append(k("bpf_kfunc_call_test1"))  # test_run.c: built, not counted
    # enum bpf_func_id: 6 helpers + BPF_FUNC_unspec
    built = compare(Inventory("t", tuple(kfuncs), 7), source)
    assert (built.helpers, built.kfuncs, built.kfuncs_in_modules) == (6, 11, 1)
    assert built.only_in_source == {
        "kernel/bpf/cpumask.c": ["bpf_cpumask_create"],
        "net/ipv4/tcp_bbr.c": ["bbr_main"],
    }
    text = " ".join(built.reasons)
    assert "config: 2 kfunc(s)" in text and "1 kfunc(s) come from modules" in text
    assert "net/bpf/test_run.c" in text and "bpf_kfunc_call_test1" in text
