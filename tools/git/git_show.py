"""`git_show`: a commit (header, message, changed files) or a file as it was at a revision."""

from __future__ import annotations

import asyncio
import difflib
import posixpath

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.git.common import (
    capped_list,
    check_revision_text,
    max_chars,
    open_git,
    repo_path,
    resolve_commit,
    run_git,
    short_sha,
    timeout_of,
    top_level,
)
from tools.text import LineRange, looks_binary, truncate_middle

MAX_BLOB_BYTES = 20 * 1024 * 1024
MAX_LINE_CHARS = 2000
MAX_DIR_ENTRIES = 400
MAX_TREE_SCAN_CHARS = 20_000_000


class GitShowParams(BaseModel):
    revision: str = Field(
        description="The commit to show: a sha, branch, tag, or an expression like HEAD~1 or main^."
    )
    path: str | None = Field(
        default=None,
        description="A file (relative to the repository root) to print as it was at that revision, instead "
        "of the commit itself. A directory lists its entries.",
    )
    view_range: LineRange = Field(
        default=None,
        description="With path: [start, end] line numbers to show, 1-based and inclusive; end -1 means to the "
        "end of the file. E.g. [100, 160].",
    )


class GitShow(Tool):
    name = "git_show"
    Params = GitShowParams
    kind = "read"

    def describe_call(self, params: GitShowParams) -> str:
        text = f"show {params.revision}"
        if params.path:
            text += f":{params.path}"
        return text[:200]

    async def run(self, params: GitShowParams, ctx: ToolContext) -> ToolResult:
        return await asyncio.to_thread(self._run, params, ctx)

    def _run(self, params: GitShowParams, ctx: ToolContext) -> ToolResult:
        repo = open_git(ctx)
        try:
            if params.path and params.path.strip():
                return show_file(repo, params, ctx)
            if params.view_range is not None:
                raise ToolError("view_range needs a path: give the file to show, or omit view_range.")
            return show_commit(repo, params, ctx)
        finally:
            repo.close()


def show_commit(repo, params: GitShowParams, ctx: ToolContext) -> ToolResult:
    sha = resolve_commit(repo, params.revision)
    result = run_git(
        repo,
        "show",
        "--no-color",
        "--no-ext-diff",
        "--find-renames",
        "--format=medium",
        "--stat=160",
        "--summary",
        sha,
        timeout=timeout_of(ctx),
        check=True,
        what="git show",
    )
    text = result.stdout.rstrip("\n")
    short = sha[:12]
    if run_git(repo, "rev-parse", "--verify", "--quiet", f"{sha}^").ok:
        patch = f'git_diff with target="{short}~1..{short}" for the patch'
    else:
        patch = "git_show with path to read its files (it is the first commit)"
    text += f"\n\n(Use {patch}; git_show with path shows a file as it was at this commit.)"
    return ToolResult(
        truncate_middle(text, max_chars(ctx), hint="the message or file list was cut"),
        data={"commit": sha},
    )


def ls_tree(repo, sha: str, paths: list[str], timeout: float) -> dict[str, tuple[str, str, str]]:
    """path -> (mode, type, object) for the given paths at `sha` (not recursive)."""
    result = run_git(
        repo, "ls-tree", "-z", sha, "--", *paths, timeout=timeout, check=True, what="git ls-tree"
    )
    entries: dict[str, tuple[str, str, str]] = {}
    for entry in result.stdout.split("\0"):
        meta, tab, name = entry.partition("\t")
        if not tab:
            continue
        parts = meta.split()
        if len(parts) == 3:
            entries[name] = (parts[0], parts[1], parts[2])
    return entries


def list_dir(repo, sha: str, rel: str, timeout: float) -> list[str]:
    spec = [rel + "/"] if rel else []
    result = run_git(repo, "ls-tree", "-z", sha, "--", *spec, timeout=timeout)
    names = []
    for entry in result.stdout.split("\0"):
        meta, tab, name = entry.partition("\t")
        if not tab:
            continue
        kind = meta.split()[1] if len(meta.split()) == 3 else "blob"
        base = posixpath.basename(name)
        names.append(base + "/" if kind == "tree" else base + (" (submodule)" if kind == "commit" else ""))
    return names


def show_file(repo, params: GitShowParams, ctx: ToolContext) -> ToolResult:
    timeout = timeout_of(ctx)
    rev = check_revision_text(params.revision)
    rel = repo_path(ctx, repo, params.path or "")
    sha = resolve_commit(repo, rev)
    at = f"{rev} ({short_sha(repo, sha)})" if not sha.startswith(rev) else short_sha(repo, sha)

    if not rel:
        names = list_dir(repo, sha, "", timeout)
        return ToolResult(
            f"The repository's top level at {at}:\n" + "\n".join(capped_list(names, MAX_DIR_ENTRIES)),
            data={"commit": sha, "path": ".", "type": "tree"},
        )
    parts = rel.split("/")
    ancestors = ["/".join(parts[:i]) for i in range(1, len(parts))]
    entries = ls_tree(repo, sha, [*ancestors, rel], timeout)

    for ancestor in ancestors:
        if entries.get(ancestor, ("", "", ""))[1] == "commit":
            raise ToolError(
                f"{rel} is inside the submodule {ancestor} at {at}; the submodule is a separate repository, "
                f"so its files are not stored here. Use execute_bash with `git -C {ancestor} show ...` "
                "(the submodule must be checked out)."
            )
    entry = entries.get(rel)
    if entry is None:
        raise missing_file(repo, sha, rel, at, timeout)
    mode, kind, obj = entry
    if kind == "commit":
        return ToolResult(
            f"{rel} is a submodule (a separate repository); at {at} it points to commit {obj}. "
            "Its files are not stored in this repository.",
            data={"commit": sha, "path": rel, "type": "submodule"},
        )
    if kind == "tree":
        if params.view_range is not None:
            raise ToolError(f"{rel} is a directory at {at}; view_range only applies to files.")
        names = list_dir(repo, sha, rel, timeout)
        return ToolResult(
            f"{rel}/ is a directory at {at}; its entries:\n" + "\n".join(capped_list(names, MAX_DIR_ENTRIES)),
            data={"commit": sha, "path": rel, "type": "tree"},
        )

    size_result = run_git(repo, "cat-file", "-s", obj, timeout=timeout, check=True, what="git cat-file")
    size = int(size_result.stdout.strip() or 0)
    if size > MAX_BLOB_BYTES:
        raise ToolError(
            f"{rel} at {at} is {human_size(size)}, too large to show. Use execute_bash, e.g. "
            f"`git show {sha[:12]}:{rel} | sed -n '1,200p'`."
        )
    blob = run_git(repo, "cat-file", "blob", obj, timeout=timeout, check=True, what="git cat-file").raw
    if mode == "120000":
        target = blob.decode("utf-8", errors="replace")
        return ToolResult(
            f"{rel} at {at} is a symbolic link to {target}.",
            data={"commit": sha, "path": rel, "type": "symlink"},
        )
    if looks_binary(blob):
        raise ToolError(
            f"{rel} at {at} is a binary file ({human_size(size)}); it cannot be shown as text. "
            "Compare versions with git_diff stat_only=true, or inspect it with execute_bash."
        )
    text = blob.decode("utf-8", errors="replace")
    return ToolResult(
        render_file(text, rel, at, params.view_range, max_chars(ctx)),
        data={"commit": sha, "path": rel, "type": "file"},
    )


def missing_file(repo, sha: str, rel: str, at: str, timeout: float) -> ToolError:
    parent, base = posixpath.split(rel)
    message = f"{rel} does not exist at {at}."
    parent_entries = ls_tree(repo, sha, [parent], timeout) if parent else {}
    if not parent or parent_entries.get(parent, ("", "", ""))[1] == "tree":
        names = [n.rstrip("/") for n in list_dir(repo, sha, parent, timeout)]
        close = difflib.get_close_matches(base, names, n=5, cutoff=0.6)
        if close:
            where = f"in {parent}/" if parent else "at the top level"
            message += f" Similar names {where} there: {', '.join(close)}."
    else:
        message += f" Its directory {parent}/ does not exist there either."
    listing = run_git(repo, "ls-tree", "-r", "-z", "--name-only", sha, timeout=timeout)
    if listing.ok and len(listing.stdout) <= MAX_TREE_SCAN_CHARS:
        same = [p for p in listing.stdout.split("\0") if p and posixpath.basename(p) == base and p != rel]
        if same:
            message += (
                " Files with that name elsewhere: "
                + ", ".join(same[:5])
                + (" ..." if len(same) > 5 else "")
                + "."
            )
    if (top_level(repo) / rel).exists():
        message += " It exists in the working tree now (added later, or not committed yet)."
    message += " git_log with this path lists the commits that touched it."
    return ToolError(message)


def render_file(text: str, rel: str, at: str, view_range: list[int] | None, budget: int) -> str:
    lines = text.splitlines()
    total = len(lines)
    if total == 0:
        return f"{rel} is empty at {at}."
    start, end = 1, total
    if view_range is not None:
        if len(view_range) != 2:
            raise ToolError(f"view_range must be two integers [start, end], e.g. [1, 50]; got {view_range}.")
        start, end = view_range
        if start < 1:
            raise ToolError(f"view_range start must be 1 or more (lines are numbered from 1); got {start}.")
        if end != -1 and end < start:
            raise ToolError(f"view_range end {end} is before its start {start}; use end >= start, or -1.")
        if start > total:
            raise ToolError(
                f"view_range start {start} is beyond the end of {rel} at {at}, which has {total} lines."
            )
        end = total if end == -1 else min(end, total)
    room = max(budget - len(rel) - len(at) - 400, 1000)
    out: list[str] = []
    used = 0
    for number in range(start, end + 1):
        line = lines[number - 1]
        if len(line) > MAX_LINE_CHARS:
            line = f"{line[:MAX_LINE_CHARS]} [... {len(line) - MAX_LINE_CHARS} more characters on this line]"
        entry = f"{number:6}\t{line}"
        if out and used + len(entry) + 1 > room:
            break
        out.append(entry)
        used += len(entry) + 1
    last = start + len(out) - 1
    result = f"{rel} at {at}, lines {start}-{last} of {total}:\n" + "\n".join(out)
    if last < end:
        result += (
            f"\n[Showing lines {start}-{last} of {total}: the rest does not fit. Continue with "
            f"view_range [{last + 1}, {min(end, last + len(out))}].]"
        )
    return result


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"
