"""`repo_map`: a ranked outline of the repository, fitted to a token budget.

The three code tools (repo_map, find_symbol, find_references) share one :class:`RepoMap` per
session in ``ctx.state["repomap"]``; every call first re-checks file sizes and mtimes, so edits
made by the agent are seen (only changed files are parsed again).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolResult
from tools.code.repomap import RepoMap, estimate_tokens

STATE_KEY = "repomap"
SUPPORTED = "Python, JavaScript, TypeScript/TSX, Go, Rust and Java"


def shared_repomap(ctx: ToolContext) -> RepoMap:
    """The session's RepoMap (created on first use; tags cached on disk when the `cache_dir`
    setting is set)."""
    root = ctx.root.resolve()
    repomap = ctx.state.get(STATE_KEY)
    if not isinstance(repomap, RepoMap) or repomap.root != root:
        cache_dir = ctx.settings.get("cache_dir")
        repomap = RepoMap(root, Path(cache_dir).expanduser() if cache_dir else None)
        ctx.state[STATE_KEY] = repomap
    return repomap


async def current_repomap(ctx: ToolContext) -> RepoMap:
    """The shared RepoMap, brought up to date (in a worker thread: a first scan can take seconds)."""
    repomap = shared_repomap(ctx)
    await asyncio.to_thread(repomap.refresh)
    return repomap


def nothing_mapped(repomap: RepoMap) -> str:
    return (
        f"No source files to map in {repomap.root}. The map covers {SUPPORTED} files; files "
        "ignored by .gitignore, vendored, generated, minified, binary or over 1 MB are skipped. "
        "Use `search` or `execute_bash` (ls, find) to explore instead."
    )


class RepoMapParams(BaseModel):
    budget: int = Field(
        default=1024,
        ge=64,
        le=8192,
        description="Size of the map in tokens (64-8192). 1024 gives an overview; raise it to see more "
        "definitions per file.",
    )
    focus: list[str] = Field(
        default_factory=list,
        description="Files or directories (relative to the repository root) the task is about. They are "
        "listed first with their own outline, and the rest of the map is ranked by what they use and "
        "what uses them.",
    )
    symbols: list[str] = Field(
        default_factory=list,
        description="Identifiers the task mentions (e.g. `QuerySet`, `parse_args`); files defining or "
        "using them rank higher.",
    )


class RepoMapTool(Tool):
    name = "repo_map"
    Params = RepoMapParams

    async def run(self, params: RepoMapParams, ctx: ToolContext) -> ToolResult:
        repomap = await current_repomap(ctx)
        files = await asyncio.to_thread(lambda: repomap.files)
        if not files:
            return ToolResult(nothing_mapped(repomap), data={"files": 0, "total_files": 0, "tokens": 0})
        mapped = set(files)
        notes = []
        focus = []
        for path in params.focus:
            rel = repomap.relative(path)
            if rel is None:
                notes.append(f"`{path}` is outside the repository; ignored.")
            elif rel in mapped or any(f.startswith(rel.rstrip("/") + "/") for f in files):
                focus.append(rel)
            else:
                why = repomap.skipped().get(rel)
                reason = f"skipped ({why})" if why else "not a mapped source file or directory"
                notes.append(f"`{path}` is {reason}; ignored.")
        text = await asyncio.to_thread(repomap.build, focus, params.symbols, params.budget)
        shown = sum(1 for line in text.splitlines() if line and not line.startswith(" "))
        header = (
            f"Repository map: {shown} of {len(files)} source files"
            + (f", focus first ({', '.join(focus)})" if focus else ", most used first")
            + ". Under each file, `line│ definition` for its most important definitions "
            "(methods indented). Read a file or use find_symbol / find_references for more."
        )
        body = "\n".join([header, *notes, "", text])
        return ToolResult(
            body,
            data={"files": shown, "total_files": len(files), "tokens": estimate_tokens(text)},
        )
