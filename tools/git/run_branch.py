"""`luban exec --branch`: the run works on a new branch `luban/<slug>` and its result is committed
there. Only the agent's own changes go into the commit (the paths that differ between the run's
first checkpoint and its end), so uncommitted work the user had in other files stays uncommitted.
Nothing is ever force-updated: refs move with compare-and-swap, no commit is rewritten, nothing is
pushed.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile

from tools.git.checkpoints import CheckpointError, CheckpointStore, split_z

BRANCH_PREFIX = "luban/"


def slugify(task: str, width: int = 40) -> str:
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", task).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > width:
            break
        slug = candidate
    return slug or "task"


def start_branch(store: CheckpointStore, task: str, name: str | None = None) -> str:
    """Create `luban/<slug>` (or `name`) at HEAD and switch to it, keeping the working tree and
    the index as they are. Returns the branch name."""
    if store.repo is None:
        raise CheckpointError("--branch needs a git repository; this directory is not one")
    head, _ = store.head()
    if head is None:
        raise CheckpointError("--branch needs at least one commit to branch from; commit first")
    from tools.git.common import operation_in_progress

    op = operation_in_progress(store.repo)
    if op is not None:
        raise CheckpointError(f"--branch: {op.detail} {op.advice.split(' Neither')[0]}")
    base = name or BRANCH_PREFIX + slugify(task)
    try:
        store.git("check-ref-format", "--branch", base)
    except CheckpointError:
        raise CheckpointError(f"--branch {base!r} is not a valid branch name") from None
    branch, n = base, 1
    while store.git("branch", "--list", branch).strip():
        n += 1
        branch = f"{base}-{n}"
    store.git("update-ref", f"refs/heads/{branch}", head, "")
    store.git("symbolic-ref", "-m", "luban: start run branch", "HEAD", f"refs/heads/{branch}")
    return branch


def commit_run(
    store: CheckpointStore, branch: str, base_tree: str, end_tree: str, message: str
) -> str | None:
    """Commit the agent's changes (base_tree -> end_tree) on top of `branch`. Returns the new
    commit id, or None when there is nothing to commit."""
    paths = store.changed_paths(base_tree, end_tree)
    if not paths:
        return None
    ref = f"refs/heads/{branch}"
    parent = store.git("rev-parse", "--verify", f"{ref}^{{commit}}").decode().strip()
    fd, tmp = tempfile.mkstemp(prefix="luban-commit-index-")
    os.close(fd)
    os.unlink(tmp)
    env = {"GIT_INDEX_FILE": tmp}
    try:
        store.git("read-tree", parent, env=env)
        wanted, present = set(paths), {}
        for rec in split_z(store.git("ls-tree", "-r", "-z", "--full-tree", end_tree)):
            meta, _, path = rec.partition("\t")
            if path in wanted:
                present[path] = meta
        lines = [
            f"{present[p].split(' ')[0]} {present[p].split(' ')[2]}\t{p}\0"
            if p in present
            else f"0 {'0' * 40}\t{p}\0"
            for p in paths
        ]
        store.git(
            "update-index",
            "-z",
            "--index-info",
            input="".join(lines).encode("utf-8", "surrogateescape"),
            env=env,
        )
        tree = store.git("write-tree", env=env).decode().strip()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    if tree == store.git("rev-parse", f"{parent}^{{tree}}").decode().strip():
        return None  # already committed during the run
    from tools.git.common import identity_env

    # The user's own identity (config or GIT_AUTHOR_*/GIT_COMMITTER_*, which store.git does not
    # inherit) authors the commit; "Luban" fills only what is not configured.
    identity = {k: v for k, v in os.environ.items() if k.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_"))}
    identity.update(identity_env(store.repo))
    commit = (
        store.git("commit-tree", tree, "-p", parent, input=message.encode(), env=identity).decode().strip()
    )
    store.git("update-ref", "-m", "luban: commit run", ref, commit, parent)  # compare-and-swap
    head_ref = store.git("symbolic-ref", "-q", "HEAD").decode().strip()
    if head_ref == ref:
        # The user's index still describes the old commit for these paths: align just those.
        store.git(
            "reset",
            "-q",
            "--pathspec-from-file=-",
            "--pathspec-file-nul",
            input="\0".join(paths).encode("utf-8", "surrogateescape"),
            env={"GIT_LITERAL_PATHSPECS": "1"},
        )
    return commit


def commit_message(task: str, final: str, run_id: str, model: str) -> str:
    subject = " ".join(task.split())
    subject = subject if len(subject) <= 60 else subject[:59] + "…"
    body = "\n".join(final.strip().splitlines()[:20])
    parts = [f"luban: {subject}"]
    if body:
        parts.append(body)
    parts.append(f"Luban-Run: {run_id}\nLuban-Model: {model}")
    return "\n\n".join(parts) + "\n"
