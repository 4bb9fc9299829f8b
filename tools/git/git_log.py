"""`git_log`: recent commits, one line each: short sha, date, author, subject."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field, field_validator

from tools.base import Tool, ToolContext, ToolResult
from tools.git.common import (
    current_branch,
    head_commit,
    inside_submodule_error,
    max_chars,
    open_git,
    plural,
    repo_path,
    resolve_range_or_commit,
    run_git,
    submodule_of,
    timeout_of,
)
from tools.text import truncate_middle

MAX_COUNT = 200
FIELD = "\x1f"
RECORD = "\x1e"
FORMAT = f"%h{FIELD}%ad{FIELD}%an{FIELD}%D{FIELD}%s{RECORD}"


class GitLogParams(BaseModel):
    max_count: int = Field(
        default=20, description=f"How many commits to list, newest first (default 20, at most {MAX_COUNT})."
    )
    path: str | None = Field(
        default=None,
        description="Only commits that changed this file or directory (relative to the repository root).",
    )
    revision: str | None = Field(
        default=None,
        description="Where to start: a branch, tag, sha or expression like HEAD~5 (default HEAD), or a range "
        "such as `main..HEAD` (commits in HEAD that are not in main).",
    )

    @field_validator("max_count", mode="after")
    @classmethod
    def _cap(cls, value: int) -> int:
        return max(1, min(value, MAX_COUNT))


class GitLog(Tool):
    name = "git_log"
    Params = GitLogParams
    kind = "read"

    def describe_call(self, params: GitLogParams) -> str:
        text = f"log {params.revision or 'HEAD'} -n {params.max_count}"
        if params.path:
            text += f" -- {params.path}"
        return text[:200]

    async def run(self, params: GitLogParams, ctx: ToolContext) -> ToolResult:
        return await asyncio.to_thread(self._run, params, ctx)

    def _run(self, params: GitLogParams, ctx: ToolContext) -> ToolResult:
        repo = open_git(ctx)
        try:
            return log(repo, params, ctx)
        finally:
            repo.close()


def log(repo, params: GitLogParams, ctx: ToolContext) -> ToolResult:
    timeout = timeout_of(ctx)
    revision = (params.revision or "").strip() or "HEAD"
    if revision == "HEAD" and head_commit(repo) is None:
        branch = current_branch(repo)
        on = f" (branch {branch} is unborn)" if branch else ""
        return ToolResult(
            f"The repository has no commits yet{on}, so there is no history to show. "
            "git_status shows the files waiting for a first commit.",
            data={"commits": 0},
        )
    rev = resolve_range_or_commit(repo, revision)
    pathspec: list[str] = []
    touching = ""
    if params.path and params.path.strip():
        rel = repo_path(ctx, repo, params.path)
        sub = submodule_of(repo, rel)
        if sub is not None and not sub[1]:
            raise inside_submodule_error(rel, sub[0])
        pathspec = ["--", rel or "."]
        touching = f" touching {rel or '.'}"

    result = run_git(
        repo,
        "log",
        "--no-color",
        f"--max-count={params.max_count + 1}",
        "--date=short",
        f"--format={FORMAT}",
        rev,
        *pathspec,
        timeout=timeout,
        check=True,
        what="git log",
    )
    lines = []
    for record in result.stdout.split(RECORD):
        record = record.strip("\n")
        if not record:
            continue
        parts = record.split(FIELD)
        if len(parts) != 5:
            continue
        sha, date, author, refs, subject = parts
        decoration = f" [{refs}]" if refs else ""
        lines.append(f"{sha} {date} ({author}){decoration} {subject}")
    if not lines:
        message = f"No commits{touching} in {rev}."
        if pathspec:
            message += " Check the path (it is relative to the repository root), or try another revision."
        return ToolResult(message, data={"commits": 0})
    more = len(lines) > params.max_count
    lines = lines[: params.max_count]
    header = (
        f"{plural(len(lines), 'commit')} in {rev}{touching}, newest first (sha date (author) [refs] subject):"
    )
    text = header + "\n" + "\n".join(lines)
    if more:
        hint = (
            f"raise max_count (at most {MAX_COUNT})"
            if params.max_count < MAX_COUNT
            else "start from an older revision (e.g. the last sha above)"
        )
        text += f"\n(more commits exist: {hint}, or narrow with path)"
    text = truncate_middle(text, max_chars(ctx), hint="lower max_count or narrow with path")
    return ToolResult(text, data={"commits": len(lines), "more": more})
