"""Debian packages chosen by version and fetched by one path, checked against
the reference tools: ``dpkg --compare-versions`` for the order, apt's own
records (``apt-cache policy``/``show``) for the choice, ``dpkg-deb`` for what a
.deb holds. The fetch tests download two small real packages (linux-kbuild-6.1,
about 1.5 MB each) from Debian through the host's apt lists.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import require

from kfunc.errors import KernelNotFoundError, KfuncError
from kfunc.kernels import deb, debian
from kfunc.kernels.apt import host_apt
from kfunc.progress import Progress

# Real versions (Debian's kernels, backports, security updates, an epoch) and
# the case the file names got wrong: 6.1.99 sorts after 6.1.192 as text.
VERSIONS = [
    "6.1.99-1",
    "6.1.192-1",
    "6.1.192-3",
    "6.12.117-1~deb12u1",
    "6.12.117-1",
    "7.3.4-1~bpo13+1",
    "7.3.4-1",
    "1:0.1-1",
    "6.1.192-3+b1",
]
OPS = ["<<", "<=", "=", ">=", ">>"]


def _dpkg_compare(a: str, op: str, b: str) -> bool:
    return subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0


@pytest.fixture(scope="module", autouse=True)
def _needs_dpkg() -> None:
    require(shutil.which("dpkg") is not None, "needs dpkg (the reference version order)")


def test_relations_agree_with_dpkg() -> None:
    for a, b in itertools.product(VERSIONS, repeat=2):
        for op in OPS:
            assert debian.satisfies(a, f"{op} {b}") == _dpkg_compare(a, op, b), (a, op, b)
    assert debian.satisfies("6.1.99-1", "")
    # The case file names got wrong (as text, 6.1.99 sorts after 6.1.192).
    assert (
        debian.Package("x", "6.1.99-1").debian_version
        < debian.Package("x", "6.1.192-1").debian_version
    )


_APT_CACHE = tempfile.mkdtemp(prefix="kfunc-test-aptcache-")
atexit.register(shutil.rmtree, _APT_CACHE, True)


def _apt_cache(*args: str, check: bool = True) -> str:
    """The reference: apt-cache itself (with a binary cache of its own, which
    Docker-style images turn off, so that each call costs 0.1 s, not 5 s)."""
    opts = [f"-oDir::Cache::{n}={_APT_CACHE}/{n}.bin" for n in ("pkgcache", "srcpkgcache")]
    return subprocess.run(
        ["apt-cache", *opts, *args], capture_output=True, text=True, check=check
    ).stdout


def _apt_lists() -> None:
    out = _apt_cache("pkgnames", "linux-image-6.1", check=False)
    require(bool(out.strip()), "the host's apt lists know no linux-image-6.1*: run apt-get update")


def _policy_candidate(name: str) -> str:
    out = _apt_cache("policy", name)
    m = re.search(r"^\s*Candidate: (\S+)", out, re.M)
    assert m, out
    return m[1]


def test_images_newest_first_as_dpkg_orders_them() -> None:
    _apt_lists()
    images = debian.find_images(host_apt(), r"6\.1\.0-\d+-amd64")
    assert images
    for newer, older in itertools.pairwise(images):
        assert _dpkg_compare(newer.version, ">=", older.version), (newer, older)
    # Each is apt's own record of the version it would install.
    assert images[0].version == _policy_candidate(images[0].name)


def test_a_dependency_is_chosen_by_its_relation() -> None:
    """linux-headers-6.1.0-N-amd64 wants ``linux-kbuild-6.1 (>= V)`` and its
    common headers ``(= V)``: the pin is honoured, the other is apt's candidate."""
    _apt_lists()
    apt = host_apt()
    image = debian.find_images(apt, r"6\.1\.0-\d+-amd64")[0]
    headers = f"linux-headers-{image.name.removeprefix('linux-image-')}"
    relations = debian.depends(apt, headers)
    kbuild, common = "linux-kbuild-6.1", headers.replace("-amd64", "-common")
    assert relations[kbuild].startswith(">= ")
    assert relations[common] == f"= {image.version}"
    chosen = debian.choose(apt, kbuild, relations[kbuild])
    assert chosen.version == _policy_candidate(kbuild)
    assert _dpkg_compare(chosen.version, ">=", relations[kbuild].split()[1])
    assert debian.choose(apt, common, relations[common]).version == image.version
    with pytest.raises(KernelNotFoundError, match=r"linux-kbuild-6\.1 \(>> 99:0\)"):
        debian.choose(apt, kbuild, ">> 99:0")


@functools.cache
def _kbuild_versions() -> list[debian.Package]:
    """Two versions of linux-kbuild-6.1 the host's apt offers, newest first."""
    _apt_lists()
    out = _apt_cache("madison", "linux-kbuild-6.1")
    versions = list(dict.fromkeys(line.split("|")[1].strip() for line in out.splitlines()))
    require(len(versions) >= 2, "apt offers a single linux-kbuild-6.1: nothing to choose from")
    found = [debian.candidate(host_apt(), "linux-kbuild-6.1", v) for v in versions[:2]]
    assert all(found)
    return [p for p in found if p]


def _dpkg_field(path: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(path), field], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def kbuild_debs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The two versions fetched into one empty directory, the older first."""
    newer, older = _kbuild_versions()
    dest = tmp_path_factory.mktemp("debs")
    try:
        old_path = debian.fetch(host_apt(), [older], dest, Progress())[0]
        new_path = debian.fetch(host_apt(), [newer], dest, Progress())[0]
    except KfuncError as exc:
        require(False, f"apt-get download failed: {exc}")
        raise
    return dest, [old_path, new_path]


def test_the_cache_gives_back_only_the_version_asked_for(
    kbuild_debs: tuple[Path, list[Path]],
) -> None:
    dest, (old_path, new_path) = kbuild_debs
    newer, older = _kbuild_versions()
    # The older file was there, under the same package name: not taken for the newer.
    assert old_path != new_path
    assert _dpkg_field(old_path, "Version") == older.version
    assert _dpkg_field(new_path, "Version") == newer.version
    for path, package in ((old_path, older), (new_path, newer)):
        assert _dpkg_field(path, "Package") == "linux-kbuild-6.1"
        sha = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
        assert sha.stdout.split()[0] == package.sha256
    # Asked again: the same files, not downloaded again.
    stamps = {p: p.stat().st_mtime_ns for p in (old_path, new_path)}
    again = debian.fetch(host_apt(), [newer, older], dest, Progress())
    assert again == [new_path, old_path]
    assert {p: p.stat().st_mtime_ns for p in again} == stamps


def test_a_broken_or_mislabelled_cached_deb_is_fetched_afresh(
    kbuild_debs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    _, (old_path, new_path) = kbuild_debs
    newer = _kbuild_versions()[0]
    # The older package under the newer's file name (a wrong copy), then a
    # truncated download: neither is handed out.
    shutil.copy(old_path, tmp_path / new_path.name)
    got = debian.fetch(host_apt(), [newer], tmp_path, Progress())[0]
    assert got == tmp_path / new_path.name
    assert _dpkg_field(got, "Version") == newer.version
    got.write_bytes(new_path.read_bytes()[:1000])
    got = debian.fetch(host_apt(), [newer], tmp_path, Progress())[0]
    assert got.read_bytes() == new_path.read_bytes()


def _tree(root: Path) -> dict[str, tuple[str, int, str | int]]:
    """path -> (kind, mode, symlink target or size), as find(1) would list it."""
    out: dict[str, tuple[str, int, str | int]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", 0, str(p.readlink()))
        elif p.is_dir():
            out[rel] = ("dir", st.st_mode & 0o7777, 0)
        else:
            out[rel] = ("file", st.st_mode & 0o7777, st.st_size)
    return out


def test_unpack_and_fields_agree_with_dpkg_deb(
    kbuild_debs: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    _, (_, path) = kbuild_debs
    ours, ref = tmp_path / "ours", tmp_path / "ref"
    debian.unpack([path], ours, Progress())
    subprocess.run(["dpkg-deb", "-x", str(path), str(ref)], check=True)
    tree = _tree(ours)
    assert tree == _tree(ref)
    assert any(kind == "link" for kind, _, _ in tree.values())  # symlinks kept as links
    fields = deb.control_fields(path)
    for name in ("Package", "Version", "Architecture", "Depends"):
        assert fields[name] == _dpkg_field(path, name)


def _probe_deb(tmp_path: Path, compression: str = "xz") -> Path:
    """A package built by ``dpkg-deb --build``: a file and an absolute symlink."""
    src = tmp_path / "src"
    (src / "DEBIAN").mkdir(parents=True)
    (src / "DEBIAN/control").write_text(
        "Package: kfunc-probe\nVersion: 1:2.3-4~bpo1\nArchitecture: all\n"
        "Maintainer: kfunc <kfunc@localhost>\nDescription: a test package\n"
    )
    (src / "usr/share/kfunc").mkdir(parents=True)
    (src / "usr/share/kfunc/hello.txt").write_text("hello\n")
    (src / "usr/share/kfunc/link").symlink_to("/usr/share/kfunc/hello.txt")
    path = tmp_path / "probe.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(src), str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.mark.parametrize("compression", ["xz", "gzip", "zstd", "none"])
def test_every_compression_dpkg_deb_builds_is_read(compression: str, tmp_path: Path) -> None:
    """A package built by ``dpkg-deb --build`` with each compressor it offers."""
    path = _probe_deb(tmp_path, compression)
    assert deb.control_fields(path)["Version"] == "1:2.3-4~bpo1"
    ours, ref = tmp_path / "ours", tmp_path / "ref"
    deb.unpack(path, ours)
    subprocess.run(["dpkg-deb", "-x", str(path), str(ref)], check=True)
    assert _tree(ours) == _tree(ref)
    assert (ours / "usr/share/kfunc/link").readlink() == Path("/usr/share/kfunc/hello.txt")


def test_not_a_package_is_a_format_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.deb"
    junk.write_bytes(b"not an ar archive")
    with pytest.raises(deb.DebFormatError, match="no ar header"), deb.data_tar(junk):
        pass
    junk.write_bytes(b"!<arch>\ndebian-binary   0           0     0     100644  4")
    with pytest.raises(deb.DebFormatError, match="truncated ar header"):
        deb.control_fields(junk)
    junk.write_bytes(b"!<arch>\n")
    with pytest.raises(deb.MissingMemberError), deb.data_tar(junk):
        pass


_OLD_PYTHON = """
import sys, tarfile
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from kfunc.kernels import deb
assert not hasattr(tarfile, "data_filter"), "this python has extraction filters"
deb.unpack(Path(sys.argv[2]), Path(sys.argv[3]))
"""


def test_unpack_on_debians_own_python_without_tar_filters(tmp_path: Path) -> None:
    """Debian 12's python3 (3.11.2) predates tarfile's extraction filters: the
    unpacked tree is still dpkg-deb's, and a member outside the tree is refused."""
    python = Path("/usr/bin/python3")
    has_filters = "import tarfile; print(hasattr(tarfile, 'data_filter'))"
    probe = subprocess.run([str(python), "-c", has_filters],
                           capture_output=True, text=True, check=False)  # fmt: skip
    require(probe.stdout.strip() == "False", "a python without tarfile filters (Debian 12's)")
    built = _probe_deb(tmp_path)
    src = str(Path(deb.__file__).parents[2])
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    run = subprocess.run([str(python), "-c", _OLD_PYTHON, src, str(built), str(mine)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    subprocess.run(["dpkg-deb", "-x", str(built), str(theirs)], check=True)
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(mine), str(theirs)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert diff.returncode == 0, diff.stdout
    # a hostile member: ../escape
    import tarfile

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 0
        tar.addfile(info)
    code = (
        "import sys, tarfile; sys.path.insert(0, sys.argv[1]); from pathlib import Path\n"
        "from kfunc.kernels import deb\n"
        "with tarfile.open(sys.argv[2]) as t:\n"
        "    for m in t: deb.extract(t, m, Path(sys.argv[3]), 'tar')\n"
    )
    run = subprocess.run([str(python), "-c", code, src, str(evil), str(tmp_path / "out")],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert run.returncode != 0 and "points outside the tree" in run.stderr
    assert not (tmp_path / "escape").exists()
