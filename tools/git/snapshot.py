"""Finding the git repository around a workspace (snapshots of its tree are checkpoints.py's)."""

from __future__ import annotations

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
