"""Snapshots of a working tree as git tree objects, made through a *temporary* index so the
user's index, HEAD, branches and stash are never touched. The run's diff is the difference
between the tree at its start and at its end: exactly the agent's changes, even on a dirty tree.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RepoInfo:
    root: Path  # the git top level
    head: str | None  # None in a repository with no commits yet
    branch: str | None  # None on a detached HEAD


def open_repo(path: Path):
    """The git.Repo containing `path`, or None when it is not inside a work tree."""
    import git

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    if repo.bare:
        return None
    return repo


def repo_info(path: Path) -> RepoInfo | None:
    repo = open_repo(path)
    if repo is None:
        return None
    try:
        head = repo.head.commit.hexsha
    except ValueError:  # no commits yet
        head = None
    branch = None if repo.head.is_detached else repo.active_branch.name
    return RepoInfo(Path(repo.working_tree_dir), head, branch)


def snapshot_tree(path: Path) -> str | None:
    """Write the current working tree (tracked and untracked, honouring .gitignore) as a tree
    object and return its id, or None outside a git repository."""
    repo = open_repo(path)
    if repo is None:
        return None
    fd, tmp_index = tempfile.mkstemp(prefix="luban-index-")
    os.close(fd)
    try:
        # Seeding from the user's index keeps git's stat cache: only changed files get hashed.
        user_index = Path(repo.git_dir) / "index"
        if user_index.exists():
            shutil.copyfile(user_index, tmp_index)
        else:
            os.unlink(tmp_index)
        env = {"GIT_INDEX_FILE": tmp_index}
        repo.git.add("--all", "--", ".", env=env)
        return repo.git.write_tree(env=env)
    finally:
        if os.path.exists(tmp_index):
            os.unlink(tmp_index)


def diff_trees(path: Path, before: str, after: str, *, binary: bool = False) -> str:
    repo = open_repo(path)
    if repo is None or not before or not after or before == after:
        return ""
    args = ["--no-color", "--no-ext-diff", "--find-renames"]
    if binary:
        args.append("--binary")
    out = repo.git.diff(*args, before, after)
    return out + "\n" if out else ""
