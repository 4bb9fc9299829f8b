"""`git_status`: the branch, its upstream, any operation in progress, and what changed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pydantic import BaseModel

from tools.base import Tool, ToolContext, ToolResult
from tools.git.common import (
    capped_list,
    max_chars,
    open_git,
    operation_in_progress,
    run_git,
    timeout_of,
    top_level,
)
from tools.text import truncate_middle

MAX_ENTRIES = 100  # per section

CHANGE = {
    "M": "modified",
    "T": "type changed",
    "A": "added",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
}
UNMERGED = {
    "DD": "both deleted",
    "AU": "added by us",
    "UD": "deleted by them",
    "UA": "added by them",
    "DU": "deleted by us",
    "AA": "both added",
    "UU": "both modified",
}


class GitStatusParams(BaseModel):
    pass


@dataclass
class Status:
    oid: str | None = None  # None: no commits yet
    head: str | None = None  # branch name; None when detached
    upstream: str | None = None
    ahead: int | None = None
    behind: int | None = None
    staged: list[str] = field(default_factory=list)
    unstaged: list[str] = field(default_factory=list)
    unmerged: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)
    submodule_flags: dict[str, str] = field(default_factory=dict)  # path -> "S<c><m><u>"


def _sub_note(sub: str) -> str:
    if not sub.startswith("S"):
        return ""
    parts = []
    if len(sub) > 3:
        if sub[1] == "C":
            parts.append("new commits")
        if sub[2] == "M":
            parts.append("modified content")
        if sub[3] == "U":
            parts.append("untracked content")
    return f" (submodule{': ' + ', '.join(parts) if parts else ''})"


def parse_porcelain_v2(text: str) -> Status:
    """Parse `git status --porcelain=v2 --branch -z`."""
    st = Status()
    entries = text.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        kind = entry[0]
        if entry.startswith("# "):
            key, _, value = entry[2:].partition(" ")
            if key == "branch.oid":
                st.oid = None if value == "(initial)" else value
            elif key == "branch.head":
                st.head = None if value == "(detached)" else value
            elif key == "branch.upstream":
                st.upstream = value
            elif key == "branch.ab":
                try:
                    ahead, behind = value.split()
                    st.ahead, st.behind = int(ahead.lstrip("+")), abs(int(behind))
                except ValueError:
                    pass
        elif kind in "12":
            parts = entry.split(" ", 8 if kind == "1" else 9)
            if len(parts) < (9 if kind == "1" else 10):
                continue
            xy, sub, path = parts[1], parts[2], parts[-1]
            shown = path
            if kind == "2":
                orig = entries[i] if i < len(entries) else ""
                i += 1
                shown = f"{orig} -> {path}"
            note = _sub_note(sub)
            if sub.startswith("S"):
                st.submodule_flags[path] = sub
            x, y = xy[0], xy[1]
            if x != ".":
                st.staged.append(f"{CHANGE.get(x, x) + ':':<14}{shown}{note}")
            if y != ".":
                st.unstaged.append(f"{CHANGE.get(y, y) + ':':<14}{path}{note}")
        elif kind == "u":
            parts = entry.split(" ", 10)
            if len(parts) < 11:
                continue
            xy, path = parts[1], parts[-1]
            st.unmerged.append(f"{UNMERGED.get(xy, xy) + ':':<16}{path}")
        elif kind == "?":
            st.untracked.append(entry[2:])
    return st


def describe_submodules(repo, flags: dict[str, str], timeout: float) -> list[str]:
    """One line per submodule, from `git submodule status` plus the change flags of the status."""
    if not (top_level(repo) / ".gitmodules").is_file():
        return []
    result = run_git(repo, "submodule", "status", timeout=timeout)
    lines = []
    seen = set()
    if result.ok:
        for raw in result.stdout.splitlines():
            if len(raw) < 42:
                continue
            mark, rest = raw[0], raw[1:]
            sha, _, tail = rest.partition(" ")
            path = tail.rsplit(" (", 1)[0] if tail.endswith(")") else tail
            seen.add(path)
            if mark == "-":
                lines.append(
                    f"{path}: not initialized (recorded commit {sha[:7]}; `git submodule update --init "
                    f"{path}` fetches it)"
                )
                continue
            state = []
            if mark == "+":
                state.append(f"checked out {sha[:7]}, which differs from the recorded commit")
            elif mark == "U":
                state.append("merge conflicts")
            else:
                state.append(f"at {sha[:7]}")
            flag = flags.get(path, "")
            if len(flag) > 3:
                if flag[2] == "M":
                    state.append("modified content")
                if flag[3] == "U":
                    state.append("untracked content")
            if len(state) == 1 and mark == " ":
                state.append("clean")
            lines.append(f"{path}: {', '.join(state)}")
    for path, flag in flags.items():
        if path not in seen:
            lines.append(f"{path}:{_sub_note(flag)}")
    return lines


def status_text(repo, timeout: float) -> tuple[str, dict]:
    result = run_git(
        repo, "status", "--porcelain=v2", "--branch", "-z", timeout=timeout, check=True, what="git status"
    )
    st = parse_porcelain_v2(result.stdout)
    out: list[str] = []

    if st.head is None:
        out.append(f"HEAD detached at {st.oid[:7] if st.oid else '(unknown)'} (not on any branch).")
    elif st.oid is None:
        out.append(f"On branch {st.head} (no commits yet).")
    else:
        line = f"On branch {st.head} at {st.oid[:7]}"
        if st.upstream:
            if st.ahead is None:
                line += f", upstream {st.upstream} is gone"
            elif st.ahead == 0 and st.behind == 0:
                line += f", up to date with {st.upstream}"
            else:
                line += f", {st.ahead} ahead and {st.behind} behind {st.upstream}"
        else:
            line += " (no upstream)"
        out.append(line + ".")

    op = operation_in_progress(repo)
    if op is not None:
        out.append(f"{op.detail} {op.advice}")

    if st.unmerged:
        out.append("\nUnmerged paths (conflicts to resolve):")
        out += capped_list(st.unmerged, MAX_ENTRIES)
    if st.staged:
        out.append("\nStaged (to be committed):")
        out += capped_list(st.staged, MAX_ENTRIES)
    if st.unstaged:
        out.append("\nNot staged:")
        out += capped_list(st.unstaged, MAX_ENTRIES)
    if st.untracked:
        out.append("\nUntracked (new, not tracked by git):")
        out += capped_list(st.untracked, MAX_ENTRIES)
    subs = describe_submodules(repo, st.submodule_flags, timeout)
    if subs:
        out.append("\nSubmodules (separate repositories; the git tools do not look inside them):")
        out += capped_list(subs, MAX_ENTRIES)
    if not (st.unmerged or st.staged or st.unstaged or st.untracked):
        out.append("\nWorking tree clean: nothing staged, modified or untracked.")
    data = {
        "branch": st.head,
        "detached": st.head is None,
        "operation": op.name if op else None,
        "staged": len(st.staged),
        "unstaged": len(st.unstaged),
        "unmerged": len(st.unmerged),
        "untracked": len(st.untracked),
    }
    return "\n".join(out), data


class GitStatus(Tool):
    name = "git_status"
    Params = GitStatusParams
    kind = "read"

    def describe_call(self, params: GitStatusParams) -> str:
        return "git status"

    async def run(self, params: GitStatusParams, ctx: ToolContext) -> ToolResult:
        return await asyncio.to_thread(self._run, ctx)

    def _run(self, ctx: ToolContext) -> ToolResult:
        repo = open_git(ctx)
        try:
            text, data = status_text(repo, timeout_of(ctx))
        finally:
            repo.close()
        return ToolResult(truncate_middle(text, max_chars(ctx), hint="the file lists were cut"), data=data)
