"""`git_branch`: list local branches, create one (and switch to it), or switch to an existing one.

Never deletes, renames or force-switches, and never stashes: local changes that would be
overwritten by a switch stop it with git's explanation.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.git.common import (
    capped_list,
    current_branch,
    head_commit,
    max_chars,
    open_git,
    operation_in_progress,
    plural,
    refuse_if_in_progress,
    resolve_commit,
    run_git,
    short_sha,
    timeout_of,
    trim,
)
from tools.text import truncate_middle

MAX_BRANCHES = 100
SEP = "\x00"
LIST_FORMAT = SEP.join(
    [
        "%(HEAD)",
        "%(refname:short)",
        "%(objectname:short)",
        "%(committerdate:short)",
        "%(upstream:short)",
        "%(upstream:track,nobracket)",
        "%(contents:subject)",
    ]
).replace(SEP, "%00")


class GitBranchParams(BaseModel):
    action: Literal["list", "create", "switch"] = Field(
        default="list",
        description='"list" (default): local branches, the current one marked with *; "create": make a new '
        'branch (from HEAD, or from `start`) and switch to it; "switch": check out an existing branch.',
    )
    name: str | None = Field(
        default=None,
        description='The branch to create or switch to, e.g. "luban/fix-parser". Required for create and '
        "switch.",
    )
    start: str | None = Field(
        default=None,
        description="For create: the commit, branch or tag the new branch starts from (default HEAD).",
    )


class GitBranch(Tool):
    name = "git_branch"
    Params = GitBranchParams
    kind = "git"

    def mutates(self, params: GitBranchParams) -> bool:
        return params.action != "list"

    def describe_call(self, params: GitBranchParams) -> str:
        if params.action == "list":
            return "branch list"
        text = f"branch {params.action} {params.name or ''}".rstrip()
        if params.action == "create" and params.start:
            text += f" from {params.start}"
        return text[:200]

    async def run(self, params: GitBranchParams, ctx: ToolContext) -> ToolResult:
        return await asyncio.to_thread(self._run, params, ctx)

    def _run(self, params: GitBranchParams, ctx: ToolContext) -> ToolResult:
        if params.action != "list" and not (params.name and params.name.strip()):
            raise ToolError(f'action="{params.action}" needs a branch name, e.g. name="luban/fix-parser".')
        if params.start and params.action != "create":
            raise ToolError('start is only used with action="create"; omit it.')
        repo = open_git(ctx)
        try:
            if params.action == "list":
                return list_branches(repo, ctx)
            if params.action == "create":
                return create_branch(repo, params.name.strip(), params.start, ctx)
            return switch_branch(repo, params.name.strip(), ctx)
        finally:
            repo.close()


def list_branches(repo, ctx: ToolContext) -> ToolResult:
    timeout = timeout_of(ctx)
    result = run_git(
        repo,
        "for-each-ref",
        "--sort=-committerdate",
        f"--format={LIST_FORMAT}",
        "refs/heads",
        timeout=timeout,
        check=True,
        what="git for-each-ref",
    )
    branch = current_branch(repo)
    out: list[str] = []
    rows = []
    for line in result.stdout.splitlines():
        parts = line.split(SEP)
        if len(parts) != 7:
            continue
        head, name, sha, date, upstream, track, subject = parts
        mark = "*" if head == "*" else " "
        tracking = f" [{upstream}{': ' + track if track else ''}]" if upstream else ""
        rows.append((mark, name, f"{sha} {date}{tracking} {subject}"))
    if head_commit(repo) is None:
        out.append(
            "No branches yet: the repository has no commits"
            + (f"; HEAD is on the unborn branch {branch}." if branch else ".")
        )
    elif branch is None:
        sha = head_commit(repo) or ""
        out.append(f"HEAD is detached at {short_sha(repo, sha)} (not on any branch).")
    op = operation_in_progress(repo)
    if op is not None:
        out.append(f"{op.detail} {op.advice}")
    if rows:
        width = min(max(len(name) for _, name, _ in rows), 40)
        lines = [f"{mark} {name:<{width}} {rest}" for mark, name, rest in rows]
        out.append(f"{plural(len(rows), 'local branch', 'es')}, most recent first (* = current):")
        out += capped_list(lines, MAX_BRANCHES, indent="")
    text = truncate_middle("\n".join(out), max_chars(ctx), hint="the list was cut")
    return ToolResult(text, data={"branches": len(rows), "current": branch})


def check_branch_name(repo, name: str) -> None:
    if name.startswith("-"):
        raise ToolError(f"{name!r} is not a valid branch name: it may not start with '-'.")
    result = run_git(repo, "check-ref-format", "--branch", name)
    if not result.ok or result.stdout.strip() != name:
        raise ToolError(
            f"{name!r} is not a valid branch name. Branch names may not contain spaces, `..`, `~`, `^`, `:`, "
            "`?`, `*`, `[`, `\\` or `@{`, nor end with `.lock` or `/`. Use something like luban/fix-parser."
        )


def branch_exists(repo, name: str) -> bool:
    return run_git(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{name}").ok


def create_branch(repo, name: str, start: str | None, ctx: ToolContext) -> ToolResult:
    timeout = timeout_of(ctx)
    check_branch_name(repo, name)
    if branch_exists(repo, name):
        raise ToolError(
            f'A branch named {name} already exists. Use action="switch" to go to it, or pick another name.'
        )
    refuse_if_in_progress(repo, f"create and switch to branch {name}")
    args = ["switch", "--no-guess", "-c", name]
    origin = ""
    if start and start.strip():
        sha = resolve_commit(repo, start, field="start")
        args.append(start.strip())
        origin = f" from {start.strip()} ({short_sha(repo, sha)})"
    elif head_commit(repo) is not None:
        origin = f" from {current_branch(repo) or 'HEAD'} ({short_sha(repo, head_commit(repo) or '')})"
    result = run_git(repo, *args, timeout=timeout)
    if not result.ok:
        raise switch_error(name, result, creating=True)
    text = f"Created branch {name}{origin} and switched to it."
    return ToolResult(text + carried_over(result), data={"branch": name, "created": True})


def switch_branch(repo, name: str, ctx: ToolContext) -> ToolResult:
    timeout = timeout_of(ctx)
    if name.startswith("-"):
        raise ToolError(f"{name!r} is not a branch name: it may not start with '-'.")
    refuse_if_in_progress(repo, f"switch to branch {name}")
    if not branch_exists(repo, name):
        remotes = run_git(repo, "for-each-ref", "--format=%(refname:short)", "refs/remotes", timeout=timeout)
        matches = [r for r in remotes.stdout.splitlines() if r.split("/", 1)[-1] == name]
        hint = (
            f' The remote branch {matches[0]} exists: create a local branch from it with action="create", '
            f'name="{name}", start="{matches[0]}".'
            if matches
            else ' git_branch (action="list") shows the local branches; action="create" makes a new one.'
        )
        raise ToolError(f"There is no local branch named {name}.{hint}")
    if current_branch(repo) == name:
        return ToolResult(
            f"Already on branch {name}; nothing to do.", data={"branch": name, "created": False}
        )
    result = run_git(repo, "switch", "--no-guess", name, timeout=timeout)
    if not result.ok:
        raise switch_error(name, result, creating=False)
    sha = head_commit(repo) or ""
    text = f"Switched to branch {name} (at {short_sha(repo, sha)})."
    return ToolResult(text + carried_over(result), data={"branch": name, "created": False})


def carried_over(result) -> str:
    """`git switch` prints the locally modified files it kept (`M\tpath`) on stdout."""
    kept = [line.split("\t", 1)[-1] for line in result.stdout.splitlines() if "\t" in line]
    if not kept:
        return ""
    return (
        "\nUncommitted changes carried over to it: "
        + ", ".join(kept[:20])
        + (f" and {len(kept) - 20} more" if len(kept) > 20 else "")
    )


def switch_error(name: str, result, *, creating: bool) -> ToolError:
    message = trim(result.stderr or result.stdout)
    verb = f"create and switch to {name}" if creating else f"switch to {name}"
    if "would be overwritten" in message:
        untracked = "untracked working tree files" in message
        what = "untracked files" if untracked else "uncommitted changes"
        return ToolError(
            f"Cannot {verb}: your {what} would be overwritten by the switch, so git refused and nothing "
            f"changed.\n{message}\nCommit or stash them first (git_commit; or `git stash` through execute_bash if "
            "the user agrees), or switch later; this tool never stashes, discards or forces."
        )
    return ToolError(f"Cannot {verb}:\n{message}")
