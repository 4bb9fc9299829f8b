"""Shared plumbing for the git tools (git_status, git_diff, git_log, git_show, git_commit,
git_branch): open the workspace's repository, run git through GitPython with plain-text results,
and turn every expected problem (no repository, detached HEAD, a merge or rebase in progress, a
submodule path, a git error) into a :class:`ToolError` that says what to do next.

GitPython is imported lazily (inside functions) so importing a tool module stays cheap.
Commands run with ``with_exceptions=False``: we read git's exit status and stderr ourselves, so
a failure reaches the model as git's own words, trimmed, instead of GitPython's repr.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tools.base import ToolContext, ToolError
from tools.git.snapshot import open_repo
from tools.text import truncate_middle
from tools.workspace import resolve_in_workspace

if TYPE_CHECKING:  # pragma: no cover
    import git

DEFAULT_TIMEOUT = 180.0
DEFAULT_MAX_OUTPUT_CHARS = 16000
ERROR_CHARS = 3000
# Every command: no pager, no colours, no prompts, no editor, paths printed as they are (not
# octal-escaped), and no optional index lock (a read-only `git status` must not race the user's git).
GIT_CONFIG = ("-c", "core.quotepath=false", "-c", "color.ui=never")
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_SEQUENCE_EDITOR": "true",
    "GIT_PAGER": "cat",
    "PAGER": "cat",
    "GIT_OPTIONAL_LOCKS": "0",
}
NO_REPO_HINT = "the git tools need one — use execute_bash for other commands"


# --------------------------------------------------------------------------- running git


@dataclass
class GitResult:
    status: int
    stdout: str
    stderr: str
    raw: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def message(self) -> str:
        """What git said about a failure: stderr, else stdout, trimmed."""
        return trim(self.stderr or self.stdout) or f"git exited with status {self.status}"


def decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):  # GitPython decodes stderr with surrogateescape
        data = data.encode("utf-8", "surrogateescape")
    return data.decode("utf-8", errors="replace")


def trim(text: str, limit: int = ERROR_CHARS) -> str:
    return truncate_middle(text.strip(), limit, hint="the rest of git's message was cut")


def timeout_of(ctx: ToolContext | None) -> float:
    if ctx is None:
        return DEFAULT_TIMEOUT
    try:
        return float(ctx.settings.get("command_timeout") or DEFAULT_TIMEOUT)
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT


def max_chars(ctx: ToolContext) -> int:
    try:
        return int(ctx.settings.get("max_output_chars", DEFAULT_MAX_OUTPUT_CHARS))
    except (TypeError, ValueError):
        return DEFAULT_MAX_OUTPUT_CHARS


def run_git(
    repo: git.Repo,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    check: bool = False,
    what: str | None = None,
) -> GitResult:
    """Run `git <args>` in the repository's top level. With `check`, a failure raises a ToolError
    starting with `what` (default: the command) and quoting git's message."""
    import git as gitpython

    full_env = dict(GIT_ENV)
    if env:
        full_env.update(env)
    try:
        status, out, err = repo.git.execute(
            ["git", *GIT_CONFIG, *args],
            with_extended_output=True,
            with_exceptions=False,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
            kill_after_timeout=timeout,
            env=full_env,
        )
    except gitpython.GitCommandNotFound:
        raise ToolError(
            "git is not installed (the `git` command was not found), so the git tools cannot run. "
            "Install git, or use execute_bash for what you need."
        ) from None
    except gitpython.GitCommandError as exc:  # raised by GitPython itself (e.g. timeouts on some paths)
        raise command_error(exc, what) from None
    raw = out if isinstance(out, bytes) else (out or "").encode()
    result = GitResult(int(status or 0), decode(raw), decode(err), raw)
    if check and not result.ok:
        raise ToolError(f"{what or 'git ' + ' '.join(args[:2])} failed:\n{result.message}")
    return result


def command_error(exc: Exception, what: str | None = None) -> ToolError:
    """A git.GitCommandError as a ToolError carrying git's stderr (without GitPython's decoration)."""
    stderr = getattr(exc, "stderr", "") or ""
    stderr = decode(stderr).strip()
    prefix = "stderr: '"
    if stderr.startswith(prefix):
        stderr = stderr[len(prefix) :].rstrip("'")
    message = trim(stderr) or str(exc)
    return ToolError(f"{what or 'git'} failed:\n{message}")


# --------------------------------------------------------------------------- the repository


def open_git(ctx: ToolContext) -> git.Repo:
    """The repository containing the workspace root, or a ToolError saying there is none."""
    import git as gitpython

    try:
        repo = open_repo(ctx.root)
    except gitpython.GitCommandError as exc:
        raise command_error(exc, "opening the repository") from None
    if repo is None:
        raise ToolError(f"{ctx.root} is not inside a git repository; {NO_REPO_HINT}.")
    return repo


def top_level(repo: git.Repo) -> Path:
    return Path(repo.working_tree_dir).resolve()


def current_branch(repo: git.Repo) -> str | None:
    """The checked-out branch (also when it has no commits yet), or None on a detached HEAD."""
    result = run_git(repo, "symbolic-ref", "--quiet", "--short", "HEAD")
    name = result.stdout.strip()
    return name if result.ok and name else None


def head_commit(repo: git.Repo) -> str | None:
    """HEAD's full sha, or None when the repository has no commits yet."""
    result = run_git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    sha = result.stdout.strip()
    return sha if result.ok and sha else None


def short_sha(repo: git.Repo, sha: str) -> str:
    result = run_git(repo, "rev-parse", "--short", sha)
    return result.stdout.strip() if result.ok and result.stdout.strip() else sha[:7]


def detached_error(repo: git.Repo, action: str) -> ToolError:
    sha = head_commit(repo)
    at = f" at {short_sha(repo, sha)}" if sha else ""
    return ToolError(
        f"Cannot {action}: HEAD is detached{at}, not on a branch, so a commit here would belong to no "
        'branch. Create a branch first with git_branch (action="create", name="luban/<topic>"), '
        "or leave the changes in the working tree for the user."
    )


# --------------------------------------------------------------------------- operations in progress


@dataclass
class Operation:
    name: str  # merge | rebase | am | cherry-pick | revert | bisect
    detail: str  # one sentence: what is going on
    advice: str  # how it ends


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _short_ref(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


def operation_in_progress(repo: git.Repo) -> Operation | None:
    """A merge, rebase, `git am`, cherry-pick, revert or bisect that is under way, from the marker
    files git leaves in its directory (the per-worktree git dir for linked worktrees)."""
    gd = Path(repo.git_dir)
    via_bash = (
        "Neither git_commit nor git_branch will do that: if the task is to finish it, use execute_bash; "
        "otherwise leave it to the user."
    )
    if (gd / "rebase-merge").is_dir():
        d = gd / "rebase-merge"
        branch = _short_ref(_read(d / "head-name"))
        onto = _read(d / "onto")[:7]
        step, end = _read(d / "msgnum"), _read(d / "end")
        detail = "A rebase is in progress"
        if branch and branch != "detached HEAD":
            detail += f" (rebasing {branch}" + (f" onto {onto}" if onto else "") + ")"
        if step and end:
            detail += f", at step {step} of {end}"
        return Operation(
            "rebase",
            detail + ".",
            "Resolve any conflicts, stage them, then `git rebase --continue`, or undo it all with "
            f"`git rebase --abort`. {via_bash}",
        )
    if (gd / "rebase-apply").is_dir():
        d = gd / "rebase-apply"
        step, end = _read(d / "next"), _read(d / "last")
        where = f", at patch {step} of {end}" if step and end else ""
        if (d / "applying").exists():
            return Operation(
                "am",
                f"A `git am` (applying patches) is in progress{where}.",
                f"Finish it with `git am --continue` or abandon it with `git am --abort`. {via_bash}",
            )
        branch = _short_ref(_read(d / "head-name"))
        on = f" (rebasing {branch})" if branch else ""
        return Operation(
            "rebase",
            f"A rebase is in progress{on}{where}.",
            "Resolve any conflicts, stage them, then `git rebase --continue`, or undo it all with "
            f"`git rebase --abort`. {via_bash}",
        )
    if (gd / "MERGE_HEAD").exists():
        merging = _read(gd / "MERGE_HEAD").split()
        msg = _read(gd / "MERGE_MSG").splitlines()
        what = f" ({msg[0]})" if msg and msg[0] else (f" of {merging[0][:7]}" if merging else "")
        return Operation(
            "merge",
            f"A merge is in progress{what}.",
            "Resolve the conflicted files, stage them, then conclude it with `git commit`, or abandon it "
            f"with `git merge --abort`. {via_bash}",
        )
    if (gd / "CHERRY_PICK_HEAD").exists():
        sha = _read(gd / "CHERRY_PICK_HEAD")[:7]
        return Operation(
            "cherry-pick",
            f"A cherry-pick of {sha} is in progress.",
            "Resolve the conflicts, stage them, then `git cherry-pick --continue`, or abandon it with "
            f"`git cherry-pick --abort`. {via_bash}",
        )
    if (gd / "REVERT_HEAD").exists():
        sha = _read(gd / "REVERT_HEAD")[:7]
        return Operation(
            "revert",
            f"A revert of {sha} is in progress.",
            "Resolve the conflicts, stage them, then `git revert --continue`, or abandon it with "
            f"`git revert --abort`. {via_bash}",
        )
    if (gd / "BISECT_LOG").exists():
        return Operation(
            "bisect",
            "A bisect is in progress (HEAD is wherever the bisection put it).",
            f"`git bisect reset` ends it and returns to the original branch. {via_bash}",
        )
    return None


def refuse_if_in_progress(repo: git.Repo, action: str) -> None:
    op = operation_in_progress(repo)
    if op is not None:
        raise ToolError(f"Cannot {action}: {op.detail[0].lower()}{op.detail[1:]} {op.advice}")


# --------------------------------------------------------------------------- paths and submodules


def repo_path(ctx: ToolContext, repo: git.Repo, path: str) -> str:
    """`path` (relative to the workspace root, or absolute) checked to stay inside the workspace,
    as git wants it: POSIX, relative to the repository's top level; "" is the top level itself.

    The check resolves symlinks (resolve_in_workspace); the returned path is the lexical one, so a
    tracked symlink names its own entry rather than its target.
    """
    resolved = resolve_in_workspace(ctx.root, path)
    top = top_level(repo)
    raw = Path(path.strip())
    lexical = Path(os.path.normpath(raw if raw.is_absolute() else ctx.root.resolve() / raw))
    for candidate in (lexical, resolved):
        try:
            rel = candidate.relative_to(top)
        except ValueError:
            continue
        text = rel.as_posix()
        return "" if text == "." else text
    raise ToolError(f"The path {path!r} is outside the git repository at {top}.")


def submodule_paths(repo: git.Repo) -> list[str]:
    """Submodule paths declared in the working tree's .gitmodules."""
    if not (top_level(repo) / ".gitmodules").is_file():
        return []
    result = run_git(repo, "config", "-z", "--file", ".gitmodules", "--get-regexp", r"^submodule\..*\.path$")
    paths = []
    for entry in result.stdout.split("\0"):
        _, _, value = entry.partition("\n")
        if value.strip():
            paths.append(value.strip().strip("/"))
    return paths


def submodule_of(repo: git.Repo, rel: str) -> tuple[str, bool] | None:
    """(submodule path, whether `rel` *is* the submodule) when `rel` is a submodule or inside one."""
    if not rel:
        return None
    for sub in submodule_paths(repo):
        if rel == sub:
            return sub, True
        if rel.startswith(sub + "/"):
            return sub, False
    return None


def inside_submodule_error(rel: str, sub: str) -> ToolError:
    return ToolError(
        f"{rel} is inside the submodule {sub}, which is a separate git repository: the git tools work on "
        f"the top-level repository only, which records just the commit {sub} points to. Use "
        f"execute_bash with `git -C {sub} ...` to look inside it, or pass path={sub!r} to see how the "
        "recorded commit changed."
    )


# --------------------------------------------------------------------------- revisions


def check_revision_text(revision: str, field: str = "revision") -> str:
    rev = revision.strip()
    if not rev:
        raise ToolError(f"The {field} is empty. Give a commit sha, a branch or tag name, or e.g. HEAD~1.")
    if rev.startswith("-"):
        raise ToolError(
            f"The {field} {rev!r} starts with '-', which git would read as an option. "
            "Give a commit sha, a branch or tag name, or an expression such as HEAD~1."
        )
    if any(c.isspace() or ord(c) < 32 for c in rev):
        raise ToolError(f"The {field} {rev!r} contains spaces or control characters; give one revision.")
    return rev


def resolve_commit(repo: git.Repo, revision: str, field: str = "revision") -> str:
    """The full sha of the commit `revision` names, or a ToolError the model can act on."""
    rev = check_revision_text(revision, field)
    result = run_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    sha = result.stdout.strip()
    if result.ok and sha:
        return sha
    if head_commit(repo) is None:
        branch = current_branch(repo)
        on = f" (branch {branch} has no commits)" if branch else ""
        raise ToolError(
            f"The repository has no commits yet{on}, so there is no revision {rev!r}. "
            'Use git_status to see the files, and git_diff target="staged" for what is staged.'
        )
    other = run_git(repo, "cat-file", "-t", rev)
    if other.ok and other.stdout.strip():
        raise ToolError(f"{rev!r} is a {other.stdout.strip()} object, not a commit. Give a commit.")
    raise ToolError(
        f"Unknown revision {rev!r}: no commit, branch or tag has that name here. Use git_log to see "
        "commit ids and git_branch to list branches (e.g. HEAD~1, main, a1b2c3d)."
    )


def split_range(revision: str) -> tuple[str, str, str] | None:
    """("A", "..", "B") for `A..B` / `A...B` (either side may be empty: HEAD), else None."""
    for sep in ("...", ".."):
        if sep in revision:
            left, _, right = revision.partition(sep)
            return left, sep, right
    return None


def resolve_range_or_commit(repo: git.Repo, revision: str) -> str:
    """A revision or an `A..B` range, each side checked; returns the text to pass to git."""
    rev = check_revision_text(revision)
    parts = split_range(rev)
    if parts is None:
        resolve_commit(repo, rev)
        return rev
    left, sep, right = parts
    for side in (left, right):
        if side:
            resolve_commit(repo, side)
    if not left and not right:
        raise ToolError(f"{rev!r} is not a range; give e.g. main..HEAD.")
    return rev


# --------------------------------------------------------------------------- small text helpers


def plural(n: int, word: str, suffix: str = "s") -> str:
    return f"{n} {word}{'' if n == 1 else suffix}"


def capped_list(items: list[str], limit: int, indent: str = "  ") -> list[str]:
    lines = [f"{indent}{item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"{indent}... and {len(items) - limit} more")
    return lines


def identity_env(repo: git.Repo) -> dict[str, str]:
    """GIT_AUTHOR_*/GIT_COMMITTER_* for whatever part of the identity is not configured, so a commit
    works on a machine without user.name/user.email; git config is never written."""
    env: dict[str, str] = {}
    defaults = {"name": "Luban", "email": "luban@localhost"}
    for key, default in defaults.items():
        upper = key.upper()
        if os.environ.get(f"GIT_AUTHOR_{upper}") and os.environ.get(f"GIT_COMMITTER_{upper}"):
            continue
        configured = run_git(repo, "config", "--get", f"user.{key}")
        if configured.ok and configured.stdout.strip():
            continue
        if key == "email" and os.environ.get("EMAIL"):
            continue
        for who in ("AUTHOR", "COMMITTER"):
            if not os.environ.get(f"GIT_{who}_{upper}"):
                env[f"GIT_{who}_{upper}"] = default
    return env


def first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""
