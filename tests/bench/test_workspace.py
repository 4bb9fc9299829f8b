"""agent.bench.workspace: workspaces at base_commit from local mirrors, with the future hidden."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from agent.bench.instances import Instance, load_instances
from agent.bench.workspace import (
    WorkspaceError,
    find_mirror,
    mirror_names,
    prepare_workspace,
)

SHARED = Path("/work/shared/data/swebench")
MIRRORS = Path("/work/.mirror")


def git(*args: str, cwd: Path | None = None, home: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        LC_ALL="C",
        GIT_AUTHOR_NAME="T",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="T",
        GIT_COMMITTER_EMAIL="t@t",
    )
    if home is not None:  # no global config either, and no identity from the environment
        env["HOME"] = str(home)
        for k in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
            env.pop(k)
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A repository with 4 commits on main, tags at commits 1 and 4, a branch with one more commit."""
    up = tmp_path_factory.mktemp("upstream")
    git("init", "-q", "-b", "main", str(up))
    commits = []
    for n in range(1, 5):
        (up / "f.txt").write_text(f"version {n}\n")
        (up / f"added{n}.txt").write_text(f"{n}\n")
        git("add", "-A", cwd=up)
        git("commit", "-q", "-m", f"commit {n}", cwd=up)
        commits.append(git("rev-parse", "HEAD", cwd=up).strip())
        if n == 1:
            git("tag", "v0.1", cwd=up)
    git("tag", "-a", "v1.0", "-m", "release", cwd=up)
    git("checkout", "-q", "-b", "feature", commits[1], cwd=up)
    (up / "feature.txt").write_text("the fix\n")
    git("add", "-A", cwd=up)
    git("commit", "-q", "-m", "feature commit", cwd=up)
    git("checkout", "-q", "main", cwd=up)
    return up, commits


def make_mirror(up: Path, cache: Path, layout: str) -> Path:
    if layout == "owner__repo (bare)":
        path = cache / "acme__widget"
        git("clone", "-q", "--mirror", str(up), str(path))
    elif layout == "owner+repo.git (bare)":
        path = cache / "acme+widget.git"
        git("clone", "-q", "--mirror", str(up), str(path))
    elif layout == "owner/repo (non-bare)":
        path = cache / "acme" / "widget"
        git("clone", "-q", str(up), str(path))
    elif layout == "fetch tool":
        # /work/.mirror/owner+name/repo: a bare git dir with HEAD, objects/pack, packed-refs, refs/
        # and no config file
        path = cache / "acme+widget" / "repo"
        git("clone", "-q", "--mirror", str(up), str(path))
        git("update-ref", "refs/pull/1/head", "feature", cwd=path)
        git("pack-refs", "--all", "--prune", cwd=path)
        (path / "config").unlink()
        (path / "description").unlink(missing_ok=True)
        shutil.rmtree(path / "hooks", ignore_errors=True)
        shutil.rmtree(path / "info", ignore_errors=True)
    else:
        raise AssertionError(layout)
    return path


def instance(base: str, repo: str = "acme/widget") -> Instance:
    return Instance(instance_id="acme__widget-1", repo=repo, base_commit=base, problem_statement="fix it")


def test_mirror_names() -> None:
    names = mirror_names("acme/widget")
    assert names[:5] == ["acme__widget", "acme__widget.git", "acme+widget", "acme+widget.git", "acme/widget"]
    assert "acme/widget.git" in names
    for bad in ["acme", "../x", "a/b/c", "a/..", "a b/c", ""]:
        with pytest.raises(WorkspaceError, match="bad repository name"):
            mirror_names(bad)


LAYOUTS = ["owner__repo (bare)", "owner+repo.git (bare)", "owner/repo (non-bare)", "fetch tool"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_prepare_from_each_mirror_layout(upstream, tmp_path: Path, layout: str) -> None:
    up, commits = upstream
    cache = tmp_path / "cache"
    mirror = make_mirror(up, cache, layout)
    found = find_mirror(cache, "acme/widget")
    assert found is not None and found.resolve() == mirror.resolve()
    mirror_refs = git("for-each-ref", cwd=found)

    t0 = time.monotonic()
    ws = prepare_workspace(instance(commits[1]), tmp_path / "ws", repo_cache=cache)
    elapsed = time.monotonic() - t0
    assert elapsed < 5, elapsed

    # the files of commit 2, nothing else
    assert sorted(p.name for p in ws.iterdir() if p.name != ".git") == ["added1.txt", "added2.txt", "f.txt"]
    assert (ws / "f.txt").read_text() == "version 2\n"
    assert git("status", "--porcelain", cwd=ws) == ""
    # HEAD on luban-base at commit 2; the future is invisible
    assert git("rev-parse", "HEAD", cwd=ws).strip() == commits[1]
    assert git("symbolic-ref", "HEAD", cwd=ws).strip() == "refs/heads/luban-base"
    # the tag of a past commit stays, the tag of the future goes
    assert git("for-each-ref", "--format=%(refname)", cwd=ws).split() == [
        "refs/heads/luban-base",
        "refs/tags/v0.1",
    ]
    log = git("log", "--all", "--oneline", cwd=ws).splitlines()
    assert len(log) == 2 and log[0].endswith("commit 2") and log[1].endswith("commit 1")
    assert git("remote", cwd=ws) == ""
    assert git("tag", cwd=ws) == "v0.1\n"
    assert git("reflog", "--all", cwd=ws) == ""
    assert "origin" not in (ws / ".git" / "config").read_text()
    assert not (ws / ".git" / "packed-refs").exists() or "refs/" not in (
        ws / ".git" / "packed-refs"
    ).read_text().replace("refs/heads/luban-base", "").replace("refs/tags/v0.1", "")
    # borrowed objects (alternates), not copied
    assert (ws / ".git" / "objects" / "info" / "alternates").is_file()
    # the mirror is untouched
    assert git("for-each-ref", cwd=found) == mirror_refs
    # commits work without any global identity
    home = tmp_path / "home"
    home.mkdir()
    (ws / "new.txt").write_text("x\n")
    git("add", "new.txt", cwd=ws, home=home)
    git("commit", "-q", "-m", "agent work", cwd=ws, home=home)
    assert git("log", "-1", "--format=%an <%ae>", cwd=ws).strip() == "Luban <luban@localhost>"


def test_find_mirror_none_and_priority(upstream, tmp_path: Path) -> None:
    up, _ = upstream
    cache = tmp_path / "cache"
    cache.mkdir()
    assert find_mirror(cache, "acme/widget") is None
    (cache / "acme__widget").mkdir()  # an empty directory is not a mirror
    assert find_mirror(cache, "acme/widget") is None
    fetched = make_mirror(up, cache, "fetch tool")
    assert find_mirror(cache, "acme/widget") == fetched
    assert find_mirror(cache, "acme/other") is None


def test_dest_must_be_empty(upstream, tmp_path: Path) -> None:
    up, commits = upstream
    cache = tmp_path / "cache"
    make_mirror(up, cache, "owner__repo (bare)")
    dest = tmp_path / "ws"
    dest.mkdir()
    (dest / "keep.txt").write_text("user data\n")
    with pytest.raises(WorkspaceError, match="already exists and is not empty"):
        prepare_workspace(instance(commits[1]), dest, repo_cache=cache)
    assert (dest / "keep.txt").read_text() == "user data\n"
    # an existing empty directory is fine
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_workspace(instance(commits[0]), empty, repo_cache=cache) == empty.resolve()
    assert (empty / "f.txt").read_text() == "version 1\n"


def test_unknown_base_commit(upstream, tmp_path: Path) -> None:
    up, _ = upstream
    cache = tmp_path / "cache"
    mirror = make_mirror(up, cache, "owner+repo.git (bare)")
    missing = "0123456789abcdef0123456789abcdef01234567"
    dest = tmp_path / "ws"
    with pytest.raises(WorkspaceError, match=re.escape(f"base commit {missing} is not in {mirror}")):
        prepare_workspace(instance(missing), dest, repo_cache=cache)
    assert not dest.exists()  # cleaned up
    with pytest.raises(WorkspaceError, match="is not a commit hash"):
        prepare_workspace(instance("--upload-pack=evil"), dest, repo_cache=cache)


def test_no_mirror_no_network(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with pytest.raises(WorkspaceError) as err:
        prepare_workspace(instance("a" * 40), tmp_path / "ws", repo_cache=cache)
    msg = str(err.value)
    assert f"looked under {cache}" in msg
    for name in mirror_names("acme/widget"):
        assert name in msg
    assert "git clone --mirror https://github.com/acme/widget.git" in msg
    with pytest.raises(WorkspaceError, match="no repo cache was given"):
        prepare_workspace(instance("a" * 40), tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def _shared_instance_with_mirror() -> tuple[Instance | None, str]:
    if not SHARED.is_dir():
        return None, f"{SHARED} is absent"
    if not MIRRORS.is_dir():
        return None, f"no mirror directory {MIRRORS}"
    repos = set()
    for f in sorted(SHARED.glob("*.jsonl")):
        for inst in load_instances(f):
            repos.add(inst.repo)
            if find_mirror(MIRRORS, inst.repo) is not None:
                return inst, ""
    return None, f"no mirror under {MIRRORS} for any of: {', '.join(sorted(repos))}"


def test_real_shared_instance(tmp_path: Path) -> None:
    inst, why = _shared_instance_with_mirror()
    if inst is None:
        pytest.skip(why)
    t0 = time.monotonic()
    ws = prepare_workspace(inst, tmp_path / "ws", repo_cache=MIRRORS)
    elapsed = time.monotonic() - t0
    assert elapsed < 10, f"prepare_workspace took {elapsed:.1f} s"
    assert git("rev-parse", "HEAD", cwd=ws).strip() == inst.base_commit
    refs = git("for-each-ref", "--format=%(refname)", cwd=ws).split()
    assert refs[0] == "refs/heads/luban-base" and all(r.startswith("refs/tags/") for r in refs[1:])
    assert git("tag", "--no-merged", "HEAD", cwd=ws) == ""  # only tags of the past
    assert git("status", "--porcelain", cwd=ws) == ""
    # nothing after base_commit: every commit in `log --all` is an ancestor of base_commit
    newest = git("log", "--all", "-1", "--format=%H", "--date-order", cwd=ws).strip()
    assert newest == inst.base_commit
    # the gold patch and the test patch apply to this tree
    for patch in (inst.patch, inst.test_patch):
        p = subprocess.run(
            ["git", "apply", "--check", "-"], cwd=ws, input=patch, text=True, capture_output=True
        )
        assert p.returncode == 0, p.stderr
