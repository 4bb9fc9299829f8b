"""`git_diff`: unstaged, staged, the run's own changes, or the working tree against a revision."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.git.common import (
    capped_list,
    inside_submodule_error,
    max_chars,
    open_git,
    repo_path,
    resolve_range_or_commit,
    run_git,
    submodule_of,
    timeout_of,
)
from tools.text import truncate_middle

DIFF_ARGS = ("diff", "--no-color", "--no-ext-diff", "--find-renames")
STAT_ARG = "--stat=160"
MAX_UNTRACKED = 50
STAGED_ALIASES = {"staged", "cached", "index"}
WORKTREE_ALIASES = {"worktree", "working", "unstaged", "working-tree", "working_tree"}


class GitDiffParams(BaseModel):
    target: str = Field(
        default="worktree",
        description='What to compare: "worktree" (default: unstaged changes, working tree vs index), '
        '"staged" (what the next commit would contain, index vs HEAD), "run" (everything changed since '
        "this run started, staged or not, including new files), or a revision such as `HEAD`, `HEAD~1`, "
        "a sha or a branch (that revision vs the working tree), or a range `A..B` (between two commits).",
    )
    path: str | None = Field(
        default=None,
        description="Limit the diff to one file or directory, relative to the repository root.",
    )
    stat_only: bool = Field(
        default=False,
        description="Only list the changed files with their added/removed line counts (`--stat`).",
    )


class GitDiff(Tool):
    name = "git_diff"
    Params = GitDiffParams
    kind = "read"

    def describe_call(self, params: GitDiffParams) -> str:
        text = f"diff {params.target}"
        if params.path:
            text += f" -- {params.path}"
        if params.stat_only:
            text += " (stat)"
        return text[:200]

    async def run(self, params: GitDiffParams, ctx: ToolContext) -> ToolResult:
        return await asyncio.to_thread(self._run, params, ctx)

    def _run(self, params: GitDiffParams, ctx: ToolContext) -> ToolResult:
        repo = open_git(ctx)
        try:
            return diff(repo, params, ctx)
        finally:
            repo.close()


def diff(repo, params: GitDiffParams, ctx: ToolContext) -> ToolResult:
    timeout = timeout_of(ctx)
    target = (params.target or "").strip() or "worktree"
    lowered = target.lower()

    pathspec: list[str] = []
    shown_path = ""
    notes: list[str] = []
    if params.path and params.path.strip():
        rel = repo_path(ctx, repo, params.path)
        sub = submodule_of(repo, rel)
        if sub is not None:
            sub_path, is_itself = sub
            if not is_itself:
                raise inside_submodule_error(rel, sub_path)
            notes.append(
                f"{sub_path} is a submodule (a separate repository): the diff shows only which commit it "
                "points to (`-dirty` means it has uncommitted changes inside)."
            )
        pathspec = ["--", rel or "."]
        shown_path = f" in {rel or '.'}"

    if lowered in WORKTREE_ALIASES:
        mode, args = "worktree", []
        what = "unstaged changes (working tree vs index)"
    elif lowered in STAGED_ALIASES:
        mode, args = "staged", ["--cached"]
        what = "staged changes (index vs HEAD)"
    elif lowered == "run":
        base, store = ctx.state.get("base_tree"), ctx.state.get("checkpoints")
        if not base or store is None:
            raise ToolError(
                'target="run" is not available: no snapshot of the working tree was taken when this run '
                'started, so the run\'s own changes cannot be told apart. Use target="worktree" for unstaged '
                'changes, "staged", or a revision such as "HEAD" (HEAD vs the working tree).'
            )
        # The same snapshot as the run's checkpoints (byte-exact, no filters), so the base compares.
        try:
            now = store.snapshot().tree
        except Exception as exc:
            raise ToolError(
                f'Could not snapshot the working tree for target="run" ({exc}); try target="HEAD".'
            ) from None
        mode, args = "run", [str(base), now]
        what = "changes since the run started"
    else:
        rev = resolve_range_or_commit(repo, target)
        mode, args = "revision", [rev]
        what = f"differences in {rev}" if ".." in rev else f"differences between {rev} and the working tree"

    def git_diff(*extra: str):
        return run_git(
            repo, *DIFF_ARGS, *extra, *args, *pathspec, timeout=timeout, check=True, what="git diff"
        )

    body = git_diff(STAT_ARG).stdout if params.stat_only else git_diff().stdout
    body = body.rstrip("\n")
    budget = max_chars(ctx)
    truncated = False
    out: list[str] = []

    if not body:
        out.append(f"No {what}{shown_path}.")
        if mode == "worktree":
            staged = run_git(repo, *DIFF_ARGS, "--cached", "--quiet", *pathspec, timeout=timeout)
            if staged.status == 1:
                out.append('There are staged changes: use target="staged" to see them.')
        elif mode == "staged":
            unstaged = run_git(repo, *DIFF_ARGS, "--quiet", *pathspec, timeout=timeout)
            if unstaged.status == 1:
                out.append('There are unstaged changes: use target="worktree" to see them.')
    elif params.stat_only or len(body) <= budget:
        out.append(body)
    else:
        truncated = True
        stat = truncate_middle(git_diff(STAT_ARG).stdout.rstrip("\n"), budget // 3, hint="narrow with path")
        header = (
            f"The diff is {len(body)} characters, too long to show whole. Files changed:\n{stat}\n\n"
            "The diff, with its middle cut:\n"
        )
        room = max(budget - len(header) - 400, 2000)
        out.append(
            header
            + truncate_middle(
                body, room, hint="pass path to see one file whole, or stat_only=true for the list"
            )
        )

    if mode == "worktree":
        untracked = run_git(
            repo,
            "ls-files",
            "-z",
            "--others",
            "--exclude-standard",
            "--directory",
            *pathspec,
            timeout=timeout,
        )
        names = [n for n in untracked.stdout.split("\0") if n]
        if names:
            why = "new, not in this diff because git does not track them yet"
            if ctx.state.get("base_tree"):
                why += '; target="run" includes them'
            out.append(f"\nUntracked files ({why}):")
            out += capped_list(names, MAX_UNTRACKED)
    out += notes
    text = "\n".join(out)
    return ToolResult(text, data={"target": mode, "truncated": truncated, "empty": not body})
