"""The git tools (git_status, git_diff, git_log, git_show, git_commit, git_branch) on real
repositories made in tmp_path, called through the real registry as the agent calls them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tools.base import ToolContext, ToolResult
from tools.environment import LocalEnvironment
from tools.git.checkpoints import CheckpointStore
from tools.git.git_branch import GitBranch, GitBranchParams
from tools.git.git_commit import GitCommit, GitCommitParams
from tools.git.git_diff import GitDiff, GitDiffParams
from tools.git.git_log import GitLog, GitLogParams
from tools.git.git_show import GitShow, GitShowParams
from tools.git.git_status import GitStatus, GitStatusParams
from tools.registry import ToolRegistry

GIT_TOOLS = ["git_status", "git_diff", "git_log", "git_show", "git_commit", "git_branch"]
IDENTITY = ("-c", "user.name=Tester", "-c", "user.email=tester@example.com")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path_factory, monkeypatch):
    """No global or system git config (CI may have none, this machine has one): tests see the same."""
    home = tmp_path_factory.mktemp("home")
    (home / "gitconfig").write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    return ToolRegistry.default()


def git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", *IDENTITY, "-c", "protocol.file.allow=always", *args],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_repo(root: Path, files: dict[str, str] | None = None, branch: str = "main") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {"a.txt": "one\ntwo\nthree\n", "src/app.py": "print('hi')\n"}).items():
        write(root, rel, text)
    git(root, "init", "-q", "-b", branch)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    return root


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def ctx_for(root: Path, **settings) -> ToolContext:
    return ToolContext(root=root, env=LocalEnvironment(root), settings=settings)


async def call(registry: ToolRegistry, ctx: ToolContext, tool: str, /, **args) -> ToolResult:
    return await registry.execute(tool, json.dumps(args), ctx)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def start_conflicting_merge(root: Path) -> None:
    git(root, "checkout", "-q", "-b", "other")
    write(root, "a.txt", "one\nTWO from other\nthree\n")
    commit_all(root, "other edits two")
    git(root, "checkout", "-q", "main")
    write(root, "a.txt", "one\nTWO from main\nthree\n")
    commit_all(root, "main edits two")
    git(root, "merge", "other", check=False)
    assert (root / ".git" / "MERGE_HEAD").exists()


# --------------------------------------------------------------------------- registry


async def test_all_git_tools_are_registered_with_valid_schemas(registry, repo):
    assert all(name in registry.names for name in GIT_TOOLS)
    names = registry.names
    assert names.index("git_status") == names.index("run_tests") + 1
    schemas = {s["function"]["name"]: s["function"] for s in registry.schemas()}
    for name in GIT_TOOLS:
        fn = schemas[name]
        assert len(fn["description"]) > 80
        assert fn["parameters"]["type"] == "object"
        json.dumps(fn)  # serialisable as sent to the model
    assert schemas["git_commit"]["parameters"]["required"] == ["message"]
    assert schemas["git_show"]["parameters"]["required"] == ["revision"]
    assert set(schemas["git_branch"]["parameters"]["properties"]["action"]["enum"]) == {
        "list",
        "create",
        "switch",
    }
    # every tool runs through the registry's door on a real repository
    ctx = ctx_for(repo)
    for name, args in [
        ("git_status", {}),
        ("git_diff", {}),
        ("git_log", {}),
        ("git_show", {"revision": "HEAD"}),
        ("git_branch", {}),
    ]:
        result = await call(registry, ctx, name, **args)
        assert not result.is_error, (name, result.output)
    result = await call(registry, ctx, "git_commit", message="x")
    assert result.is_error and "luban/" in result.output  # on main, refused by the default policy
    bad = await call(registry, ctx, "git_commit", message="")
    assert bad.is_error and "message" in bad.output


def test_kinds_mutates_and_call_descriptions():
    assert GitStatus.kind == GitDiff.kind == GitLog.kind == GitShow.kind == "read"
    assert GitCommit.kind == GitBranch.kind == "git"
    branch = GitBranch()
    assert branch.mutates(GitBranchParams()) is False
    assert branch.mutates(GitBranchParams(action="create", name="luban/x")) is True
    assert branch.mutates(GitBranchParams(action="switch", name="main")) is True
    assert branch.describe_call(GitBranchParams(action="create", name="luban/x", start="v1")) == (
        "branch create luban/x from v1"
    )
    assert branch.describe_call(GitBranchParams()) == "branch list"
    assert GitCommit().describe_call(GitCommitParams(message="Fix the parser\n\nLong body")) == (
        "commit: Fix the parser"
    )
    assert GitCommit().mutates(GitCommitParams(message="x"))
    assert GitDiff().describe_call(GitDiffParams(target="staged", path="a.txt")) == "diff staged -- a.txt"
    assert GitShow().describe_call(GitShowParams(revision="HEAD", path="a.txt")) == "show HEAD:a.txt"
    assert GitLog().describe_call(GitLogParams()) == "log HEAD -n 20"
    assert GitStatus().describe_call(GitStatusParams()) == "git status"


async def test_every_tool_outside_a_repository(registry, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    ctx = ctx_for(plain, git_commit="allow")
    for name, args in [
        ("git_status", {}),
        ("git_diff", {}),
        ("git_log", {}),
        ("git_show", {"revision": "HEAD"}),
        ("git_commit", {"message": "x"}),
        ("git_branch", {}),
    ]:
        result = await call(registry, ctx, name, **args)
        assert result.is_error, name
        assert "is not inside a git repository" in result.output
        assert "execute_bash" in result.output


# --------------------------------------------------------------------------- git_status


async def test_status_lists_staged_unstaged_untracked_and_renames(registry, repo):
    ctx = ctx_for(repo)
    clean = await call(registry, ctx, "git_status")
    assert f"On branch main at {head(repo)[:7]} (no upstream)." in clean.output
    assert "Working tree clean" in clean.output

    write(repo, "a.txt", "one\nchanged\nthree\n")
    write(repo, "new.txt", "new\n")
    write(repo, "newdir/x.txt", "x\n")
    git(repo, "mv", "src/app.py", "src/main.py")
    (repo / "b.txt").write_text("b\n")
    git(repo, "add", "b.txt")
    result = await call(registry, ctx, "git_status")
    out = result.output
    assert not result.is_error
    staged = out.split("Staged (to be committed):")[1].split("\n\n")[0]
    assert "renamed:" in staged and "src/app.py -> src/main.py" in staged
    assert "added:" in staged and "b.txt" in staged
    unstaged = out.split("Not staged:")[1].split("\n\n")[0]
    assert "modified:" in unstaged and "a.txt" in unstaged
    untracked = out.split("Untracked (new, not tracked by git):")[1]
    assert "new.txt" in untracked and "newdir/" in untracked
    assert "Working tree clean" not in out
    assert result.data["staged"] == 2 and result.data["unstaged"] == 1 and result.data["untracked"] == 2


async def test_status_in_an_empty_repository(registry, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, "first.txt", "hello\n")
    result = await call(registry, ctx_for(root), "git_status")
    assert not result.is_error
    assert "On branch main (no commits yet)." in result.output
    assert "first.txt" in result.output


async def test_status_detached_head_and_upstream_tracking(registry, repo, tmp_path):
    write(repo, "a.txt", "second\n")
    commit_all(repo, "second")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    write(clone, "c.txt", "c\n")
    commit_all(clone, "local work")
    result = await call(registry, ctx_for(clone), "git_status")
    assert "1 ahead and 0 behind origin/main" in result.output

    first = git(repo, "rev-parse", "HEAD~1").strip()
    git(repo, "checkout", "-q", "--detach", first)
    detached = await call(registry, ctx_for(repo), "git_status")
    assert f"HEAD detached at {first[:7]}" in detached.output
    assert detached.data["detached"] is True


async def test_status_reports_a_merge_in_progress_with_conflicts(registry, repo):
    start_conflicting_merge(repo)
    result = await call(registry, ctx_for(repo), "git_status")
    assert "A merge is in progress (Merge branch 'other')." in result.output
    assert "git merge --abort" in result.output
    conflicts = result.output.split("Unmerged paths (conflicts to resolve):")[1]
    assert "both modified:" in conflicts and "a.txt" in conflicts
    assert result.data["operation"] == "merge"


async def test_a_rebase_in_progress_is_reported_and_blocks_commits(registry, repo):
    git(repo, "checkout", "-q", "-b", "luban/feature")
    write(repo, "a.txt", "one\nfeature\nthree\n")
    commit_all(repo, "feature")
    git(repo, "checkout", "-q", "main")
    write(repo, "a.txt", "one\nmain\nthree\n")
    commit_all(repo, "main")
    git(repo, "checkout", "-q", "luban/feature")
    git(repo, "rebase", "main", check=False)
    onto = git(repo, "rev-parse", "--short=7", "main").strip()
    ctx = ctx_for(repo, git_commit="allow")
    status = await call(registry, ctx, "git_status")
    assert f"A rebase is in progress (rebasing luban/feature onto {onto}), at step 1 of 1." in status.output
    assert "git rebase --abort" in status.output and "HEAD detached" in status.output
    refused = await call(registry, ctx, "git_commit", message="x")
    assert refused.is_error and "Cannot commit: a rebase is in progress" in refused.output


@pytest.fixture
def with_submodule(tmp_path: Path) -> Path:
    lib = make_repo(tmp_path / "lib", {"lib.txt": "library\n"})
    root = make_repo(tmp_path / "super")
    git(root, "submodule", "add", "-q", str(lib), "sub")
    git(root, "commit", "-q", "-m", "add submodule")
    write(root, "sub/lib.txt", "library changed\n")
    write(root, "sub/extra.txt", "untracked inside\n")
    return root


async def test_status_diff_and_show_explain_submodules(registry, with_submodule):
    root = with_submodule
    ctx = ctx_for(root)
    sub_sha = git(root / "sub", "rev-parse", "HEAD").strip()
    status = await call(registry, ctx, "git_status")
    subs = status.output.split("Submodules")[1]
    assert f"sub: at {sub_sha[:7]}, modified content, untracked content" in subs
    assert "submodule: modified content, untracked content" in status.output  # in the Not staged list

    inside = await call(registry, ctx, "git_diff", path="sub/lib.txt")
    assert inside.is_error and "inside the submodule sub" in inside.output and "git -C sub" in inside.output
    itself = await call(registry, ctx, "git_diff", path="sub")
    assert not itself.is_error
    assert "Subproject commit" in itself.output and "sub is a submodule" in itself.output

    shown = await call(registry, ctx, "git_show", revision="HEAD", path="sub")
    assert "sub is a submodule" in shown.output and sub_sha in shown.output
    shown_inside = await call(registry, ctx, "git_show", revision="HEAD", path="sub/lib.txt")
    assert shown_inside.is_error and "inside the submodule sub" in shown_inside.output
    log_inside = await call(registry, ctx, "git_log", path="sub/lib.txt")
    assert log_inside.is_error and "submodule" in log_inside.output


# --------------------------------------------------------------------------- git_diff


async def test_diff_worktree_with_untracked_files_and_path(registry, repo):
    ctx = ctx_for(repo)
    write(repo, "a.txt", "one\nTWO\nthree\n")
    write(repo, "src/app.py", "print('bye')\n")
    write(repo, "fresh.txt", "fresh\n")
    result = await call(registry, ctx, "git_diff")
    assert not result.is_error
    assert "-two\n+TWO" in result.output and "+print('bye')" in result.output
    assert "Untracked files (new, not in this diff" in result.output and "fresh.txt" in result.output

    only = await call(registry, ctx, "git_diff", path="src/app.py")
    assert "+print('bye')" in only.output and "a.txt" not in only.output and "fresh.txt" not in only.output

    stat = await call(registry, ctx, "git_diff", stat_only=True)
    assert "a.txt" in stat.output and "2 files changed" in stat.output and "+TWO" not in stat.output


async def test_diff_staged_and_hints_between_targets(registry, repo):
    ctx = ctx_for(repo)
    write(repo, "a.txt", "one\nstaged\nthree\n")
    git(repo, "add", "a.txt")
    worktree = await call(registry, ctx, "git_diff")
    assert "No unstaged changes" in worktree.output and 'target="staged"' in worktree.output
    staged = await call(registry, ctx, "git_diff", target="staged")
    assert "+staged" in staged.output
    git(repo, "reset", "-q")
    nothing = await call(registry, ctx, "git_diff", target="staged")
    assert "No staged changes" in nothing.output and 'target="worktree"' in nothing.output


async def test_diff_run_target(registry, repo, tmp_path):
    ctx = ctx_for(repo)
    missing = await call(registry, ctx, "git_diff", target="run")
    assert missing.is_error and "no snapshot" in missing.output and 'target="worktree"' in missing.output

    write(repo, "a.txt", "one\nuser edit before the run\nthree\n")  # a dirty tree before the run
    store = CheckpointStore(repo, tmp_path / "cache")
    ctx.state["checkpoints"] = store
    ctx.state["base_tree"] = store.create("run", "run start")[0].tree
    nothing = await call(registry, ctx, "git_diff", target="run")
    assert "No changes since the run started" in nothing.output

    write(repo, "src/app.py", "print('run edit')\n")
    write(repo, "created.py", "x = 1\n")
    git(repo, "add", "created.py")
    result = await call(registry, ctx, "git_diff", target="run")
    assert "+print('run edit')" in result.output and "created.py" in result.output
    assert "user edit before the run" not in result.output  # not the run's change
    one = await call(registry, ctx, "git_diff", target="run", path="created.py")
    assert "+x = 1" in one.output and "app.py" not in one.output


async def test_diff_against_revisions_and_ranges(registry, repo):
    ctx = ctx_for(repo)
    write(repo, "a.txt", "one\ntwo\nthree\nfour\n")
    commit_all(repo, "add four")
    write(repo, "src/app.py", "print('worktree')\n")
    result = await call(registry, ctx, "git_diff", target="HEAD~1")
    assert "+four" in result.output and "+print('worktree')" in result.output
    by_path = await call(registry, ctx, "git_diff", target="HEAD~1", path="a.txt")
    assert "+four" in by_path.output and "worktree" not in by_path.output
    ranged = await call(registry, ctx, "git_diff", target="HEAD~1..HEAD")
    assert "+four" in ranged.output and "worktree" not in ranged.output

    unknown = await call(registry, ctx, "git_diff", target="nosuchbranch")
    assert unknown.is_error and "Unknown revision 'nosuchbranch'" in unknown.output
    option = await call(registry, ctx, "git_diff", target="--output=/tmp/x")
    assert option.is_error and "starts with '-'" in option.output


async def test_long_diff_is_cut_with_the_file_list_first(registry, repo):
    ctx = ctx_for(repo, max_output_chars=3000)
    write(repo, "big.txt", "".join(f"line {i}\n" for i in range(2000)))
    commit_all(repo, "big")
    write(repo, "big.txt", "".join(f"LINE {i}\n" for i in range(2000)))
    result = await call(registry, ctx, "git_diff")
    assert "too long to show whole" in result.output
    assert "big.txt | 4000" in result.output
    assert "characters omitted" in result.output and "pass path" in result.output
    assert len(result.output) < 4000 and result.data["truncated"] is True


async def test_paths_outside_the_workspace_are_refused(registry, repo, tmp_path):
    (tmp_path / "outside.txt").write_text("secret\n")
    ctx = ctx_for(repo, git_commit="allow")
    for name, args in [
        ("git_diff", {"path": "../outside.txt"}),
        ("git_log", {"path": "../outside.txt"}),
        ("git_show", {"revision": "HEAD", "path": str(tmp_path / "outside.txt")}),
        ("git_commit", {"message": "x", "paths": ["../outside.txt"]}),
    ]:
        result = await call(registry, ctx, name, **args)
        assert result.is_error and "outside the workspace" in result.output, name


# --------------------------------------------------------------------------- git_log


async def test_log_lines_counts_paths_and_empty_repository(registry, repo, tmp_path):
    ctx = ctx_for(repo)
    write(repo, "a.txt", "second\n")
    commit_all(repo, "second commit")
    write(repo, "src/app.py", "third\n")
    commit_all(repo, "third commit")
    result = await call(registry, ctx, "git_log")
    lines = result.output.splitlines()
    assert lines[0].startswith("3 commits in HEAD, newest first")
    sha = head(repo)[:7]
    assert lines[1].startswith(f"{sha} ") and "(Tester) [HEAD -> main] third commit" in lines[1]
    assert lines[3].endswith(" init")

    capped = await call(registry, ctx, "git_log", max_count=1)
    assert "third commit" in capped.output and "second commit" not in capped.output
    assert "more commits exist" in capped.output

    touching = await call(registry, ctx, "git_log", path="a.txt")
    assert "second commit" in touching.output and "third commit" not in touching.output
    assert "touching a.txt" in touching.output

    older = await call(registry, ctx, "git_log", revision="HEAD~1", max_count=500)  # capped, not refused
    assert not older.is_error and "third commit" not in older.output and "second commit" in older.output
    bad = await call(registry, ctx, "git_log", revision="nope")
    assert bad.is_error and "Unknown revision 'nope'" in bad.output

    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    nothing = await call(registry, ctx_for(empty), "git_log")
    assert not nothing.is_error and "no commits yet" in nothing.output
    nothing_show = await call(registry, ctx_for(empty), "git_show", revision="HEAD")
    assert nothing_show.is_error and "no commits yet" in nothing_show.output
    nothing_diff = await call(registry, ctx_for(empty), "git_diff", target="HEAD")
    assert nothing_diff.is_error and "no commits yet" in nothing_diff.output


# --------------------------------------------------------------------------- git_show


async def test_show_commit_header_message_and_stat(registry, repo):
    write(repo, "a.txt", "one\ntwo\nthree\nfour\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "Add four\n\nBecause three was not enough.")
    result = await call(registry, ctx_for(repo), "git_show", revision="HEAD")
    out = result.output
    assert f"commit {head(repo)}" in out and "Author: Tester <tester@example.com>" in out
    assert "    Add four" in out and "Because three was not enough." in out
    assert "a.txt | 1 +" in out and "1 file changed, 1 insertion(+)" in out


async def test_show_file_at_revision_ranges_and_long_files(registry, repo):
    ctx = ctx_for(repo, max_output_chars=2000)
    write(repo, "a.txt", "rewritten\n")
    commit_all(repo, "rewrite")
    old = await call(registry, ctx, "git_show", revision="HEAD~1", path="a.txt")
    assert "a.txt at HEAD~1" in old.output and "     2\ttwo" in old.output and "rewritten" not in old.output
    part = await call(registry, ctx, "git_show", revision="HEAD~1", path="a.txt", view_range=[2, 3])
    assert (
        "lines 2-3 of 3" in part.output
        and "     1\tone" not in part.output
        and "     3\tthree" in part.output
    )

    write(repo, "long.py", "".join(f"value_{i} = {i}\n" for i in range(1000)))
    commit_all(repo, "long")
    long = await call(registry, ctx, "git_show", revision="HEAD", path="long.py")
    assert "     1\tvalue_0 = 0" in long.output and "value_999" not in long.output
    assert "Continue with view_range" in long.output and len(long.output) <= 2000
    tail = await call(registry, ctx, "git_show", revision="HEAD", path="long.py", view_range=[999, -1])
    assert "   999\tvalue_998 = 998" in tail.output and "  1000\tvalue_999 = 999" in tail.output

    listing = await call(registry, ctx, "git_show", revision="HEAD", path="src")
    assert "src/ is a directory" in listing.output and "app.py" in listing.output


async def test_show_refuses_binary_and_explains_missing_files(registry, repo):
    ctx = ctx_for(repo)
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    commit_all(repo, "logo")
    binary = await call(registry, ctx, "git_show", revision="HEAD", path="logo.png")
    assert binary.is_error and "binary file" in binary.output and "\x00" not in binary.output

    missing = await call(registry, ctx, "git_show", revision="HEAD", path="src/apps.py")
    assert missing.is_error and "src/apps.py does not exist at HEAD" in missing.output
    assert "Similar names in src/ there: app.py" in missing.output
    later = await call(registry, ctx, "git_show", revision="HEAD~1", path="logo.png")
    assert later.is_error and "exists in the working tree now" in later.output


# --------------------------------------------------------------------------- git_commit


async def test_commit_policy_never_and_luban_branch_on_a_user_branch(registry, repo):
    write(repo, "a.txt", "changed\n")
    before = head(repo)
    never = await call(registry, ctx_for(repo, git_commit="never"), "git_commit", message="x")
    assert never.is_error and never.output.startswith(
        "Commits are disabled by policy (git_commit = never); leave the changes in the working tree"
    )
    default = await call(registry, ctx_for(repo), "git_commit", message="x")
    assert default.is_error and "'main'" in default.output and "luban/" in default.output
    assert "left untouched" in default.output
    assert head(repo) == before and "a.txt" in git(repo, "status", "--porcelain")


async def test_commit_on_a_luban_branch_with_fallback_identity(registry, repo):
    git(repo, "checkout", "-q", "-b", "luban/fix")
    write(repo, "a.txt", "one\nfixed\nthree\n")
    write(repo, "added.txt", "new file\n")
    result = await call(registry, ctx_for(repo), "git_commit", message="Fix two\n\nDetails here.")
    assert not result.is_error, result.output
    short = git(repo, "rev-parse", "--short", "HEAD").strip()
    assert result.output.startswith(f"Committed {short} on luban/fix: Fix two")
    assert "2 files changed" in result.output and "create mode 100644 added.txt" in result.output
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>").strip() == (
        "Luban <luban@localhost>|Luban <luban@localhost>"
    )
    assert git(repo, "log", "-1", "--format=%B").strip() == "Fix two\n\nDetails here."
    assert git(repo, "status", "--porcelain") == ""
    assert "[user]" not in (repo / ".git" / "config").read_text()  # git config never written

    again = await call(registry, ctx_for(repo), "git_commit", message="again")
    assert not again.is_error and again.output.startswith("Nothing to commit")
    assert again.data["nothing_to_commit"] is True and head(repo).startswith(short)


async def test_commit_allow_policy_uses_configured_identity_and_paths(registry, repo):
    git(repo, "config", "user.name", "Repo Owner")
    git(repo, "config", "user.email", "owner@example.com")
    (repo / "gone.txt").write_text("x\n")
    commit_all(repo, "gone")
    (repo / "gone.txt").unlink()
    write(repo, "a.txt", "only this\n")
    write(repo, "src/app.py", "print('not this')\n")
    ctx = ctx_for(repo, git_commit="allow")
    result = await call(registry, ctx, "git_commit", message="Only a", paths=["a.txt", "gone.txt"])
    assert not result.is_error, result.output
    assert "on main: Only a" in result.output and "1 other changed" in result.output
    assert git(repo, "show", "--name-status", "--format=", "HEAD").split() == ["M", "a.txt", "D", "gone.txt"]
    assert git(repo, "log", "-1", "--format=%an").strip() == "Repo Owner"
    assert git(repo, "status", "--porcelain").strip() == "M src/app.py"

    untracked = await call(registry, ctx, "git_commit", message="x", paths=["nothing/here.txt"])
    assert untracked.is_error and "does not exist and is not tracked" in untracked.output


async def test_commit_refused_on_detached_head_and_during_a_merge(registry, repo, tmp_path):
    ctx = ctx_for(repo, git_commit="allow")
    start_conflicting_merge(repo)
    merging = await call(registry, ctx, "git_commit", message="x")
    assert merging.is_error and "Cannot commit: a merge is in progress" in merging.output
    assert "git merge --abort" in merging.output

    other = make_repo(tmp_path / "other")
    git(other, "checkout", "-q", "--detach", "HEAD")
    write(other, "a.txt", "x\n")
    detached = await call(registry, ctx_for(other, git_commit="allow"), "git_commit", message="x")
    assert detached.is_error and "HEAD is detached at" in detached.output and "git_branch" in detached.output


async def test_a_failing_hook_is_an_error_with_its_output(registry, repo):
    git(repo, "checkout", "-q", "-b", "luban/hooked")
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint: trailing whitespace in a.txt' >&2\nexit 1\n")
    hook.chmod(0o755)
    write(repo, "a.txt", "x \n")
    before = head(repo)
    result = await call(registry, ctx_for(repo), "git_commit", message="x")
    assert result.is_error and "The commit failed" in result.output
    assert "lint: trailing whitespace in a.txt" in result.output and "pre-commit" in result.output
    assert head(repo) == before


# --------------------------------------------------------------------------- git_branch


async def test_branch_list_create_switch(registry, repo):
    ctx = ctx_for(repo)
    listed = await call(registry, ctx, "git_branch")
    assert "* main" in listed.output and "init" in listed.output

    created = await call(registry, ctx, "git_branch", action="create", name="luban/work")
    assert not created.is_error and "Created branch luban/work from main" in created.output
    assert git(repo, "branch", "--show-current").strip() == "luban/work"
    write(repo, "a.txt", "work\n")
    commit_all(repo, "work")

    from_start = await call(registry, ctx, "git_branch", action="create", name="luban/old", start="main")
    assert "from main" in from_start.output
    assert head(repo) == git(repo, "rev-parse", "main").strip()

    exists = await call(registry, ctx, "git_branch", action="create", name="main")
    assert exists.is_error and "already exists" in exists.output and 'action="switch"' in exists.output
    invalid = await call(registry, ctx, "git_branch", action="create", name="bad name..lock")
    assert invalid.is_error and "not a valid branch name" in invalid.output
    dash = await call(registry, ctx, "git_branch", action="create", name="-f")
    assert dash.is_error and "not a valid branch name" in dash.output
    bad_start = await call(registry, ctx, "git_branch", action="create", name="luban/y", start="nope")
    assert bad_start.is_error and "Unknown revision 'nope'" in bad_start.output
    no_name = await call(registry, ctx, "git_branch", action="switch")
    assert no_name.is_error and "needs a branch name" in no_name.output

    switched = await call(registry, ctx, "git_branch", action="switch", name="luban/work")
    assert "Switched to branch luban/work" in switched.output
    assert git(repo, "branch", "--show-current").strip() == "luban/work"
    missing = await call(registry, ctx, "git_branch", action="switch", name="ghost")
    assert missing.is_error and "no local branch named ghost" in missing.output

    listed = await call(registry, ctx, "git_branch", action="list")
    lines = listed.output.splitlines()
    assert lines[0] == "3 local branches, most recent first (* = current):"
    assert any(line.startswith("* luban/work") and line.endswith(" work") for line in lines)


async def test_switch_refuses_to_overwrite_local_changes(registry, repo):
    ctx = ctx_for(repo)
    git(repo, "checkout", "-q", "-b", "feature")
    write(repo, "a.txt", "feature version\n")
    commit_all(repo, "feature")
    git(repo, "checkout", "-q", "main")
    write(repo, "a.txt", "uncommitted on main\n")
    result = await call(registry, ctx, "git_branch", action="switch", name="feature")
    assert result.is_error and "would be overwritten" in result.output
    assert "a.txt" in result.output and "Commit or stash them first" in result.output
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert (repo / "a.txt").read_text() == "uncommitted on main\n"
    assert git(repo, "stash", "list") == ""

    write(repo, "src/app.py", "carried\n")
    git(repo, "checkout", "-q", "a.txt")
    carried = await call(registry, ctx, "git_branch", action="switch", name="feature")
    assert not carried.is_error and "carried over" in carried.output and "src/app.py" in carried.output


async def test_branch_refused_during_merge_and_list_reports_detached(registry, repo):
    ctx = ctx_for(repo)
    start_conflicting_merge(repo)
    create = await call(registry, ctx, "git_branch", action="create", name="luban/x")
    assert create.is_error and "a merge is in progress" in create.output
    switch = await call(registry, ctx, "git_branch", action="switch", name="other")
    assert switch.is_error and "a merge is in progress" in switch.output
    listed = await call(registry, ctx, "git_branch")
    assert not listed.is_error and "A merge is in progress" in listed.output
    git(repo, "merge", "--abort")
    git(repo, "checkout", "-q", "--detach", "HEAD")
    detached = await call(registry, ctx, "git_branch")
    assert "HEAD is detached at" in detached.output


async def test_branch_in_an_empty_repository(registry, tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    ctx = ctx_for(root)
    listed = await call(registry, ctx, "git_branch")
    assert "no commits" in listed.output and "unborn branch main" in listed.output
    created = await call(registry, ctx, "git_branch", action="create", name="luban/first")
    assert not created.is_error and git(root, "symbolic-ref", "--short", "HEAD").strip() == "luban/first"
    write(root, "f.txt", "f\n")
    first = await call(registry, ctx, "git_commit", message="First")
    assert not first.is_error and "first commit" in first.output
    staged_empty = await call(registry, ctx, "git_diff", target="staged")
    assert "No staged changes" in staged_empty.output


def test_environment_is_clean_of_identity():
    # the autouse fixture keeps the tool's identity fallback observable on any machine
    assert "GIT_AUTHOR_NAME" not in os.environ


async def test_git_failures_carry_gits_own_message(registry, repo, tmp_path):
    import git as gitpython

    from tools.git.common import command_error

    ctx = ctx_for(repo)
    ctx.state["checkpoints"] = CheckpointStore(repo, tmp_path / "cache")
    ctx.state["base_tree"] = "0" * 39 + "1"  # a tree that does not exist
    result = await call(registry, ctx, "git_diff", target="run")
    assert result.is_error and result.output.startswith("git diff failed:\nfatal:")
    assert "Traceback" not in result.output

    exc = gitpython.GitCommandError(["git", "frob"], 128, b"fatal: not a frob\n" + b"x" * 10000)
    error = command_error(exc, "git frob")
    assert str(error).startswith("git frob failed:\nfatal: not a frob")
    assert "stderr:" not in str(error) and len(str(error)) < 3500


async def test_workspace_in_a_subdirectory_of_the_repository(registry, repo):
    ctx = ctx_for(repo / "src")
    write(repo, "src/app.py", "print('sub')\n")
    write(repo, "a.txt", "top-level change\n")
    result = await call(registry, ctx, "git_diff", path="app.py")
    assert "+print('sub')" in result.output and "a.txt" not in result.output
    shown = await call(registry, ctx, "git_show", revision="HEAD", path="app.py")
    assert "src/app.py at HEAD" in shown.output and "print('hi')" in shown.output
    outside = await call(registry, ctx, "git_show", revision="HEAD", path="../a.txt")
    assert outside.is_error and "outside the workspace" in outside.output
