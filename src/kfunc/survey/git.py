"""Helpers and kfuncs over a kernel's git history, read with git plumbing only.

Nothing is checked out. The plan, sized for torvalds/linux.git (1.3 M commits):

1. ``git for-each-ref refs/tags`` lists the release tags (``vX.Y``) and dates them
   by their commits.
2. ``git grep -l -e BTF_ID -e KFUNC TAG1 TAG2 ...`` (one process, every selected
   tag) finds the few hundred files that ever held kfunc sets or KFUNC lists;
   with include/uapi/linux/bpf.h they are the only paths read from here on.
3. Per tag, ``git ls-tree -r TAG -- PATHS`` gives the blob of each path.
4. For first appearances, ``git log --first-parent --reverse --raw -- PATHS``
   walks mainline (merges are diffed against their first parent) and replays
   each commit's blob changes; a name is dated by the first commit whose tree
   has it, i.e. when it reached mainline.

Blobs go through one ``git cat-file --batch`` process and each blob is parsed
once (results are cached by blob id), so the cost grows with the number of
distinct versions of those few files, not with the history's size. Names that
lived only between two selected tags in a file that no selected tag contains
are not seen.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kfunc.errors import KfuncError, MissingToolError
from kfunc.progress import Progress, Step
from kfunc.survey.helpers import helpers_from_header
from kfunc.survey.kfunc_sets import FileSets, is_excluded, kfuncs_of, parse_file
from kfunc.survey.model import FirstSeen, ReleaseCount, Survey
from kfunc.survey.sources import HELPERS_HEADER

__all__ = ["GitRepo", "Tag", "select_tags", "survey_git"]

_RELEASE_TAG = re.compile(r"v(\d+)\.(\d+)")
_GREP_PATTERNS = ("BTF_ID", "KFUNC")


@dataclass(frozen=True)
class Tag:
    name: str
    commit: str
    date: dt.datetime

    @property
    def version(self) -> tuple[int, int]:
        m = _RELEASE_TAG.fullmatch(self.name)
        return (int(m[1]), int(m[2])) if m else (0, 0)


class GitRepo:
    """A git repository read through plumbing commands."""

    def __init__(self, path: str | Path) -> None:
        if shutil.which("git") is None:
            raise MissingToolError("git", "git")
        self.path = Path(path)
        proc = subprocess.run(
            ["git", "-C", str(self.path), "rev-parse", "--git-dir"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise KfuncError(
                f"{self.path}: not a git repository",
                "pass a clone of the kernel: git clone https://git.kernel.org/pub/scm/linux/"
                "kernel/git/torvalds/linux.git",
            )
        self._batch: subprocess.Popen[bytes] | None = None

    def _cmd(self, *args: str, literal: bool = False) -> list[str]:
        # Literal pathspecs: kernel paths are names, never patterns.
        return ["git", "-C", str(self.path), *(["--literal-pathspecs"] if literal else []), *args]

    def run(self, *args: str, ok_codes: tuple[int, ...] = (0,), literal: bool = False) -> str:
        proc = subprocess.run(self._cmd(*args, literal=literal), capture_output=True, check=False)
        if proc.returncode not in ok_codes:
            detail = (proc.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
            raise KfuncError(f"git {args[0]} in {self.path}: {detail}")
        return proc.stdout.decode("utf-8", errors="replace")

    def stream(self, *args: str, literal: bool = False) -> Iterator[str]:
        """The output lines of a long git command, as they come."""
        proc = subprocess.Popen(
            self._cmd(*args, literal=literal), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout is not None
        try:
            for raw in proc.stdout:
                yield raw.decode("utf-8", errors="replace").rstrip("\n")
        finally:
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            code = proc.wait()
            if proc.stderr:
                proc.stderr.close()
        if code != 0:
            detail = (err.strip().splitlines() or ["failed"])[-1]
            raise KfuncError(f"git {args[0]} in {self.path}: {detail}")

    def tags(self) -> list[Tag]:
        """Every tag that points (directly or through a tag object) at a commit."""
        fmt = "%09".join(
            (
                "%(refname:strip=2)",
                "%(objecttype)",
                "%(objectname)",
                "%(*objectname)",
                "%(committerdate:unix)",
                "%(*committerdate:unix)",
            )
        )
        tags = []
        for line in self.run("for-each-ref", f"--format={fmt}", "refs/tags").splitlines():
            name, kind, obj, peeled, date, peeled_date = line.split("\t")
            commit, when = (obj, date) if kind == "commit" else (peeled, peeled_date)
            if not commit or not when:
                continue
            tags.append(Tag(name, commit, dt.datetime.fromtimestamp(int(when), dt.UTC)))
        return tags

    def read_blob(self, sha: str) -> bytes:
        """One blob's content through a long-lived ``git cat-file --batch``."""
        if self._batch is None:
            self._batch = subprocess.Popen(
                self._cmd("cat-file", "--batch"), stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
        stdin, stdout = self._batch.stdin, self._batch.stdout
        assert stdin is not None and stdout is not None
        stdin.write(sha.encode() + b"\n")
        stdin.flush()
        header = stdout.readline().split()
        if len(header) != 3:
            raise KfuncError(f"git cat-file in {self.path}: object {sha} is missing")
        data = _read_exactly(stdout, int(header[2]))
        stdout.read(1)  # the newline after the content
        return data

    def close(self) -> None:
        if self._batch is not None:
            assert self._batch.stdin is not None
            self._batch.stdin.close()
            self._batch.wait()
            if self._batch.stdout:
                self._batch.stdout.close()
            self._batch = None

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exactly(f: IO[bytes], n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = f.read(n)
        if not chunk:
            raise KfuncError("git cat-file: truncated output")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def select_tags(tags: list[Tag], spec: str | None) -> list[Tag]:
    """Release tags (``vX.Y``) picked by ``spec``: None for all of them,
    ``v5.10..v7.3`` for a range (both ends included), or ``v6.1,v6.12,...``."""
    releases = sorted((t for t in tags if _RELEASE_TAG.fullmatch(t.name)), key=lambda t: t.version)
    by_name = {t.name: t for t in tags}
    if not spec:
        picked = releases
    elif ".." in spec:
        lo, _, hi = spec.partition("..")
        ends = []
        for end in (lo, hi):
            if end and end not in by_name:
                raise _unknown_tag(end, releases)
            ends.append(by_name[end].version if end else None)
        picked = [
            t
            for t in releases
            if (ends[0] is None or t.version >= ends[0])
            and (ends[1] is None or t.version <= ends[1])
        ]
    else:
        picked = []
        for name in (n.strip() for n in spec.split(",") if n.strip()):
            if name not in by_name:
                raise _unknown_tag(name, releases)
            picked.append(by_name[name])
        picked.sort(key=lambda t: (t.date, t.name))
    if not picked:
        raise KfuncError(
            f"no release tags match {spec or 'vX.Y'}",
            "fetch the tags (git fetch --tags) or pass --tags v5.10..v6.12",
        )
    return picked


def _unknown_tag(name: str, releases: list[Tag]) -> KfuncError:
    have = f"{releases[0].name} ... {releases[-1].name}" if releases else "none"
    return KfuncError(
        f"tag {name!r} not found (release tags here: {have})",
        "name tags as in the repository (v6.12), or run `git fetch --tags`",
    )


class _Parsed:
    """Parsed blobs, cached by blob id."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.files: dict[str, FileSets] = {}
        self.headers: dict[str, list[str]] = {}

    def file(self, sha: str) -> FileSets:
        got = self.files.get(sha)
        if got is None:
            got = self.files[sha] = parse_file(_text(self.repo.read_blob(sha)))
        return got

    def helpers(self, sha: str | None) -> list[str]:
        if sha is None:
            return []
        got = self.headers.get(sha)
        if got is None:
            got = self.headers[sha] = helpers_from_header(_text(self.repo.read_blob(sha)))
        return got

    def count(self, blobs: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        helpers = self.helpers(blobs.get(HELPERS_HEADER))
        files = {p: self.file(sha) for p, sha in blobs.items() if p != HELPERS_HEADER}
        kfuncs = {name: site.path for name, site in kfuncs_of(files).items()}
        return helpers, kfuncs


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def candidate_paths(repo: GitRepo, tags: list[Tag]) -> list[str]:
    """Files that hold BTF_ID or KFUNC at any of ``tags``, plus the helpers header."""
    args = ["grep", "-l", "-I", "--full-name"]
    for pattern in _GREP_PATTERNS:
        args += ["-e", pattern]
    args += [t.commit for t in tags]
    args += ["--", "*.c", "*.h"]
    paths = {HELPERS_HEADER}
    # "git grep" exits 1 when nothing matches.
    out = repo.run(*args, ok_codes=(0, 1))
    for line in out.splitlines():
        _, _, path = line.partition(":")
        if path and not is_excluded(path):
            paths.add(path)
    return sorted(paths)


def _ls_tree(repo: GitRepo, commit: str, paths: list[str]) -> dict[str, str]:
    blobs = {}
    for line in repo.run(
        "ls-tree", "-r", "--full-tree", commit, "--", *paths, literal=True
    ).splitlines():
        meta, _, path = line.partition("\t")
        _mode, kind, sha = meta.split()
        if kind == "blob":
            blobs[path] = sha
    return blobs


def survey_git(
    path: str | Path,
    tags_spec: str | None = None,
    progress: Progress | None = None,
    first_seen: bool = True,
) -> Survey:
    """Count helpers and kfuncs at each selected release tag of a kernel git
    repository and, with ``first_seen``, date each name's first appearance."""
    progress = progress or Progress()
    with GitRepo(path) as repo:
        with progress.step("reading tags") as step:
            tags = select_tags(repo.tags(), tags_spec)
            step.summary = f"{len(tags)} release tag(s): {tags[0].name} ... {tags[-1].name}"
        with progress.step("finding files with kfunc sets") as step:
            paths = candidate_paths(repo, tags)
            step.summary = f"{len(paths)} file(s) hold BTF_ID/KFUNC or the helpers"
        parsed = _Parsed(repo)
        survey = Survey()
        with progress.step(f"counting {len(tags)} release(s)") as step:
            for tag in tags:
                step.update(tag.name)
                helpers, kfuncs = parsed.count(_ls_tree(repo, tag.commit, paths))
                survey.releases.append(
                    ReleaseCount(
                        tag.name,
                        tag.date.date(),
                        helpers,
                        kfuncs,
                        f"git:{tag.commit[:12]}",
                        f"commit date of {tag.name}",
                    )
                )
            last = survey.releases[-1]
            step.summary = f"{last.release}: {last.n_helpers} helpers, {last.n_kfuncs} kfuncs"
        if first_seen:
            with progress.step("walking mainline history") as step:
                survey.first_seen = _first_seen(repo, parsed, tags[-1].commit, paths, step)
                step.summary = f"dated {len(survey.first_seen)} names"
    return survey


def _first_seen(
    repo: GitRepo, parsed: _Parsed, end: str, paths: list[str], step: Step
) -> list[FirstSeen]:
    state: dict[str, str] = {}
    seen_helpers: set[str] = set()
    seen_kfuncs: set[str] = set()
    out: list[FirstSeen] = []
    commit: str | None = None
    when: dt.datetime | None = None
    walked = 0

    def settle() -> None:
        if commit is None or when is None:
            return
        helpers, kfuncs = parsed.count(state)
        for name in helpers:
            if name not in seen_helpers:
                seen_helpers.add(name)
                out.append(FirstSeen(name, "helper", when, commit))
        for name in kfuncs:
            if name not in seen_kfuncs:
                seen_kfuncs.add(name)
                out.append(FirstSeen(name, "kfunc", when, commit))

    log = repo.stream(
        "log", "--first-parent", "--reverse", "--raw", "--no-renames", "--no-abbrev",
        "--diff-merges=first-parent", "--format=commit %H %ct", end, "--", *paths, literal=True,
    )  # fmt: skip
    for line in log:
        if line.startswith("commit "):
            settle()
            _, commit, stamp = line.split()
            when = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
            walked += 1
            if walked % 200 == 0:
                step.update(f"{walked} commits, {when.date()}")
        elif line.startswith(":"):
            meta, _, file_path = line.partition("\t")
            fields = meta.split()
            new_sha, status = fields[3], fields[4]
            if status.startswith("D") or set(new_sha) == {"0"}:
                state.pop(file_path, None)
            else:
                state[file_path] = new_sha
    settle()
    return out
