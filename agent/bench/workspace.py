"""Workspaces for bench instances: the instance's repository at ``base_commit``, with the future hidden.

The repository comes from a local mirror when there is one (``git clone --shared``: the objects are
borrowed through ``objects/info/alternates``, nothing is copied, a clone of a 35 MB mirror takes
tens of milliseconds), otherwise, if allowed, from GitHub as a blobless clone.

Mirror layouts found under a cache directory (``mirror_names``): ``owner__name``, ``owner+name``,
either with ``.git``, and ``owner/name``; each may be a bare repository, a non-bare one (a ``.git``
inside), or hold a bare repository in ``repo/`` (the layout of the snapshot fetcher:
``/work/.mirror/owner+name/repo`` is a bare git dir with ``HEAD``, ``objects/pack`` and
``packed-refs``, and no ``config`` file).

What the agent must not see: commits after ``base_commit`` (the fix). The workspace keeps
``refs/heads/luban-base`` at ``base_commit`` with HEAD on it, and the tags of commits it contains
(version tools read them); the ``origin`` remote, every other branch, tag and remote-tracking ref, and
the reflog are removed, so ``git log --all`` ends at ``base_commit``. Later objects still exist in the mirror's object store (reachable by hash only,
which the agent has no way to know). A ``--shared`` workspace depends on its mirror: do not
prune or delete the mirror while workspaces made from it are in use.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from agent.bench.instances import Instance
from tools.git.checkpoints import clean_git_env

BASE_BRANCH = "luban-base"
IDENTITY = {"user.name": "Luban", "user.email": "luban@localhost"}
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")


class WorkspaceError(Exception):
    """A workspace cannot be prepared; the message says why and what to do."""


def mirror_names(repo: str) -> list[str]:
    """Directory names (relative to a repo cache) under which a mirror of ``owner/name`` may live."""
    if not _REPO_RE.match(repo) or ".." in repo.split("/"):
        raise WorkspaceError(f"bad repository name {repo!r}: expected owner/name")
    owner, name = repo.split("/")
    if name.endswith(".git"):
        name = name[:-4]
    names = []
    for base in (f"{owner}__{name}", f"{owner}+{name}"):
        names += [base, f"{base}.git"]
    names += [f"{owner}/{name}", f"{owner}/{name}.git"]
    return names


def _is_git_dir(p: Path) -> bool:
    return (p / "HEAD").is_file() and (p / "objects").is_dir()


def find_mirror(repo_cache: Path, repo: str) -> Path | None:
    """The first git repository (bare or not) found under one of ``mirror_names(repo)``, or None."""
    repo_cache = Path(repo_cache)
    for name in mirror_names(repo):
        p = repo_cache / name
        if not p.is_dir():
            continue
        for candidate in (p, p / ".git", p / "repo"):
            if _is_git_dir(candidate):
                # a non-bare repository is cloned from its work tree, a bare one from itself
                return p if candidate.name == ".git" else candidate
    return None


def _git(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 600) -> str:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=input,
            capture_output=True,
            text=True,
            env=clean_git_env(),
            timeout=timeout,
        )
    except FileNotFoundError:
        raise WorkspaceError("git is not installed (or not on PATH); install git and retry") from None
    except subprocess.TimeoutExpired:
        raise WorkspaceError(f"git {args[0]} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        err = proc.stderr.strip() or f"exit code {proc.returncode}"
        raise WorkspaceError(f"git {args[0]} failed: {err}")
    return proc.stdout


def prepare_workspace(
    instance: Instance,
    dest: Path,
    *,
    repo_cache: Path | None = None,
    allow_network: bool = False,
) -> Path:
    """Make ``dest`` a checkout of ``instance.repo`` at ``instance.base_commit``, the future hidden.

    ``dest`` must not exist or be empty. On failure ``dest`` is left as it was (absent or empty).
    Returns ``dest`` (resolved).
    """
    dest = Path(dest).resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise WorkspaceError(f"workspace {dest} already exists and is not empty; choose a new directory")
    base = instance.base_commit.strip()
    if not _SHA_RE.match(base):
        raise WorkspaceError(f"{instance.instance_id}: base_commit {base!r} is not a commit hash")

    mirror_names(instance.repo)  # rejects names that are not owner/name before any path or URL is built
    mirror = find_mirror(repo_cache, instance.repo) if repo_cache is not None else None
    if mirror is None and not allow_network:
        if repo_cache is None:
            where = "no repo cache was given"
        else:
            tried = ", ".join(mirror_names(instance.repo))
            where = f"looked under {repo_cache} for: {tried} (each may also hold a bare repo in repo/)"
        raise WorkspaceError(
            f"{instance.instance_id}: no local mirror of {instance.repo} ({where}). Make one with "
            f"`git clone --mirror https://github.com/{instance.repo}.git "
            f"<cache>/{mirror_names(instance.repo)[0]}.git`, or allow network access."
        )

    existed = dest.exists()
    try:
        if mirror is not None:
            _git("clone", "-q", "--shared", "--no-checkout", str(mirror), str(dest))
            source = str(mirror)
        else:
            source = f"https://github.com/{instance.repo}.git"
            _git("clone", "-q", "--filter=blob:none", "--no-checkout", source, str(dest), timeout=3600)
        try:
            full = _git("rev-parse", "-q", "--verify", f"{base}^{{commit}}", cwd=dest).strip()
        except WorkspaceError:
            raise WorkspaceError(
                f"{instance.instance_id}: base commit {base} is not in {source}; "
                "update the mirror (git fetch) or check the instance's base_commit"
            ) from None
        _git("checkout", "-q", "--detach", full, cwd=dest)
        _hide_future(dest, full)
        for key, value in IDENTITY.items():
            _git("config", key, value, cwd=dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        if existed:
            dest.mkdir(parents=True, exist_ok=True)
        raise
    return dest


def _hide_future(dest: Path, commit: str) -> None:
    """Leave one ref, ``refs/heads/luban-base`` at ``commit`` with HEAD on it; no remote, no reflog."""
    remotes = _git("remote", cwd=dest).split()
    for remote in remotes:
        _git("remote", "remove", remote, cwd=dest)
    _git("update-ref", f"refs/heads/{BASE_BRANCH}", commit, cwd=dest)
    _git("symbolic-ref", "HEAD", f"refs/heads/{BASE_BRANCH}", cwd=dest)
    refs = _git("for-each-ref", "--format=%(refname)", cwd=dest).split()
    # tags of the past stay (setuptools_scm and friends derive the version from them), as upstream keeps
    # the tags older than base_commit; tags on later or unrelated commits go
    past = set(_git("for-each-ref", "--merged", commit, "--format=%(refname)", "refs/tags", cwd=dest).split())
    doomed = [r for r in refs if r != f"refs/heads/{BASE_BRANCH}" and r not in past]
    if doomed:
        _git("update-ref", "--no-deref", "--stdin", cwd=dest, input="".join(f"delete {r}\n" for r in doomed))
    _git("pack-refs", "--all", "--prune", cwd=dest)  # rewrites packed-refs without the deleted refs
    for leftover in ("FETCH_HEAD", "ORIG_HEAD"):
        (dest / ".git" / leftover).unlink(missing_ok=True)
    _git("reflog", "expire", "--expire=now", "--expire-unreachable=now", "--all", cwd=dest)
    shutil.rmtree(dest / ".git" / "logs", ignore_errors=True)
