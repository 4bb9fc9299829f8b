"""`git_commit`: commit the changes (all, or some paths) under the user's commit policy.

Policy (setting ``git_commit``): ``never`` refuses; ``luban-branch`` (default) commits only on a
branch whose name starts with ``luban/`` (the branches Luban creates for a run), so the user's own
branches are never touched; ``allow`` commits on any branch. Whatever the policy: no commits on a
detached HEAD or during a merge/rebase/cherry-pick/revert/am/bisect, never amend, never push,
hooks always run (a rejecting hook is an error showing its output).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.git.common import (
    current_branch,
    detached_error,
    first_line,
    head_commit,
    identity_env,
    inside_submodule_error,
    open_git,
    refuse_if_in_progress,
    repo_path,
    run_git,
    submodule_of,
    timeout_of,
    top_level,
    trim,
)
from tools.text import truncate_middle

POLICIES = ("never", "luban-branch", "allow")
DEFAULT_POLICY = "luban-branch"
LUBAN_PREFIX = "luban/"
STAT_CHARS = 4000


class GitCommitParams(BaseModel):
    message: str = Field(
        min_length=1,
        description="The commit message: a short summary line (under ~72 characters), optionally a blank "
        "line and a body explaining why.",
    )
    paths: list[str] | None = Field(
        default=None,
        description="Commit only these files or directories (relative to the repository root); their "
        "additions, changes and deletions are staged first. Default: every change in the working tree, "
        "including new files not ignored by .gitignore (`git add -A`).",
    )


class GitCommit(Tool):
    name = "git_commit"
    Params = GitCommitParams
    kind = "git"

    def describe_call(self, params: GitCommitParams) -> str:
        text = f"commit: {first_line(params.message)}"
        if params.paths:
            text += f" ({', '.join(params.paths)})"
        return text[:200]

    async def run(self, params: GitCommitParams, ctx: ToolContext) -> ToolResult:
        return await asyncio.to_thread(self._run, params, ctx)

    def _run(self, params: GitCommitParams, ctx: ToolContext) -> ToolResult:
        message = params.message.strip()
        if not message:
            raise ToolError("The commit message is empty. Give a short summary of the change.")
        policy = str(ctx.settings.get("git_commit", DEFAULT_POLICY) or DEFAULT_POLICY).strip().lower()
        if policy not in POLICIES:
            raise ToolError(
                f"Commits are refused: the git_commit setting is {policy!r}, which is not one of "
                f"{', '.join(POLICIES)}. Leave the changes in the working tree; the user can fix the setting."
            )
        if policy == "never":
            raise ToolError(
                "Commits are disabled by policy (git_commit = never); leave the changes in the working tree, "
                "the user reviews them."
            )
        repo = open_git(ctx)
        try:
            return commit(repo, message, params.paths, policy, ctx)
        finally:
            repo.close()


def commit(repo, message: str, paths: list[str] | None, policy: str, ctx: ToolContext) -> ToolResult:
    timeout = timeout_of(ctx)
    refuse_if_in_progress(repo, "commit")
    branch = current_branch(repo)
    if branch is None:
        raise detached_error(repo, "commit")
    if policy == "luban-branch" and not branch.startswith(LUBAN_PREFIX):
        raise ToolError(
            f"Not committing: the current branch is {branch!r}, and the commit policy (git_commit = "
            f"luban-branch) allows commits only on Luban's own branches, named {LUBAN_PREFIX}*. The user's "
            f"branch {branch} is left untouched. Leave the changes in the working tree for the user to "
            f"review, or, if the task asks for commits, create a branch first with git_branch "
            f'(action="create", name="{LUBAN_PREFIX}<topic>") and commit there.'
        )

    pathspec: list[str] = []
    if paths is not None:
        wanted = [p for p in paths if p and p.strip()]
        if not wanted:
            raise ToolError("paths is empty. Give the files to commit, or omit paths to commit every change.")
        pathspec = stage_paths(repo, ctx, wanted, timeout)
    else:
        run_git(repo, "add", "-A", timeout=timeout, check=True, what="Staging the changes (git add -A)")

    has_head = head_commit(repo) is not None
    staged = run_git(
        repo, "diff", "--cached", "--quiet", "--no-ext-diff", *(["--", *pathspec] if pathspec else [])
    )
    if staged.status == 0:
        where = f" in {', '.join(pathspec)}" if pathspec else ""
        return ToolResult(
            f"Nothing to commit{where}: the files match the last commit"
            + (" (files ignored by .gitignore are never committed)." if not pathspec else ".")
            + " Use git_status to see what changed.",
            data={"nothing_to_commit": True},
        )

    args = ["commit", "--no-edit", "-m", message]
    if pathspec:
        args += ["--only", "--", *pathspec]
    result = run_git(repo, *args, env=identity_env(repo), timeout=timeout)
    if not result.ok:
        output = trim("\n".join(part for part in (result.stdout.strip(), result.stderr.strip()) if part))
        hooks = commit_hooks(repo)
        hook = ""
        if hooks:
            hook = (
                f"\nThe repository has commit hooks ({', '.join(hooks)}); if one rejected the commit, fix what "
                "it reports and call git_commit again (hooks are never skipped). Files a hook changed are "
                "left modified in the working tree."
            )
        raise ToolError(f"The commit failed (nothing was committed):\n{output}{hook}")

    summary = run_git(repo, "log", "-1", "--format=%h%x00%s", timeout=timeout, check=True, what="git log")
    short, _, subject = summary.stdout.strip().partition("\0")
    stat = run_git(
        repo,
        "show",
        "--no-color",
        "--format=",
        "--stat=160",
        "--summary",
        "HEAD",
        timeout=timeout,
    ).stdout.strip("\n")
    first = "" if has_head else " (the repository's first commit)"
    text = f"Committed {short} on {branch}{first}: {subject}\n{truncate_middle(stat, STAT_CHARS)}"
    left = run_git(repo, "status", "--porcelain", timeout=timeout).stdout
    remaining = len([line for line in left.splitlines() if line.strip()])
    if remaining:
        text += f"\n({remaining} other changed or untracked paths were not committed; git_status lists them.)"
    return ToolResult(text, data={"commit": short, "branch": branch, "subject": subject})


def stage_paths(repo, ctx: ToolContext, paths: list[str], timeout: float) -> list[str]:
    """Validate `paths`, stage their changes (including deletions) and return them as git paths."""
    rels: list[str] = []
    for path in paths:
        rel = repo_path(ctx, repo, path) or "."
        sub = submodule_of(repo, rel)
        if sub is not None and not sub[1]:
            raise inside_submodule_error(rel, sub[0])
        rels.append(rel)
    top = top_level(repo)
    # Paths gone from both the working tree and the index (a deletion already staged) cannot be
    # `git add`ed; they are still committed by `git commit --only`, if HEAD has them.
    known = run_git(repo, "ls-files", "-z", "--", *rels, timeout=timeout).stdout.split("\0")
    known_set = {k for k in known if k}
    to_add: list[str] = []
    for rel in rels:
        in_index = (
            rel == "." or rel in known_set or any(k.startswith(rel.rstrip("/") + "/") for k in known_set)
        )
        if (top / rel).exists() or (top / rel).is_symlink() or in_index:
            to_add.append(rel)
            continue
        in_head = run_git(repo, "ls-tree", "--name-only", "HEAD", "--", rel, timeout=timeout)
        if not (in_head.ok and in_head.stdout.strip()):
            raise ToolError(
                f"{rel} does not exist and is not tracked by git, so there is nothing to commit there. "
                "Check the path (relative to the repository root); git_status lists the changed files."
            )
    if to_add:
        added = run_git(repo, "add", "-A", "--", *to_add, timeout=timeout)
        if not added.ok:
            message = added.message
            hint = ""
            if "ignored by one of your .gitignore" in message:
                hint = (
                    "\nThose paths are ignored by .gitignore and are not committed; leave them out of paths."
                )
            raise ToolError(f"Staging {', '.join(to_add)} failed:\n{message}{hint}")
    return rels


def commit_hooks(repo) -> list[str]:
    """The commit hooks that will run (core.hooksPath honoured)."""
    where = run_git(repo, "rev-parse", "--git-path", "hooks")
    if not where.ok:
        return []
    hooks_dir = Path(where.stdout.strip())
    if not hooks_dir.is_absolute():
        hooks_dir = top_level(repo) / hooks_dir
    names = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit")
    return [n for n in names if (hooks_dir / n).is_file() and os.access(hooks_dir / n, os.X_OK)]
