"""Checkpoints on real git repositories (and plain directories): undo restores byte-identical
trees whatever happened, and the user's index, HEAD, branches and stash are never touched."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import git, make_repo
from tools.git.checkpoints import CheckpointError, CheckpointStore

IDENTITY = ["-c", "user.name=t", "-c", "user.email=t@t"]


def tree_state(root: Path, *, ignored: bool = False) -> dict[str, tuple]:
    """Every file and symlink under root (not .git): bytes, executable bit, link target."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if is_ignored(rel) != ignored:
                continue
            st_ = os.lstat(full)
            if stat.S_ISLNK(st_.st_mode):
                state[rel] = ("link", os.readlink(full))
            else:
                state[rel] = ("file", full.read_bytes(), bool(st_.st_mode & stat.S_IXUSR))
    return state


def is_ignored(rel: str) -> bool:
    return rel.endswith(".env") or rel.endswith(".log")


def user_index_tree(root: Path) -> str:
    tmp = Path(tempfile.mkstemp()[1])
    try:
        shutil.copyfile(root / ".git" / "index", tmp)
        return subprocess.run(
            ["git", "write-tree"],
            cwd=root,
            env={**os.environ, "GIT_INDEX_FILE": str(tmp)},
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    finally:
        tmp.unlink()


def repo_refs(root: Path) -> str:
    return git(
        root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/stash", "refs/tags"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(
        tmp_path / "repo",
        {"src/app.py": "print('hi')\n", "README.md": "# r\n", ".gitignore": "*.env\n*.log\nbuild/\n"},
    )
    return root


def store_for(root: Path, tmp_path: Path) -> CheckpointStore:
    return CheckpointStore(root, tmp_path / "cache")


# --------------------------------------------------------------------------- examples


def test_create_never_touches_index_head_branches_or_stash(repo: Path, tmp_path: Path) -> None:
    (repo / "src" / "app.py").write_text("print('stashed')\n")
    git(repo, *IDENTITY, "stash")
    (repo / "src" / "app.py").write_text("print('staged')\n")
    git(repo, "add", "src/app.py")
    (repo / "src" / "app.py").write_text("print('dirty')\n")
    (repo / "new.txt").write_text("untracked\n")
    index_before = (repo / ".git" / "index").read_bytes()
    head_before = (repo / ".git" / "HEAD").read_text()
    refs_before = repo_refs(repo)
    status_before = git(repo, "status", "--porcelain")

    store = store_for(repo, tmp_path)
    cp, new = store.create("run1", "start")
    assert new and cp.ref == "refs/luban/run1/0"
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert (repo / ".git" / "HEAD").read_text() == head_before
    assert repo_refs(repo) == refs_before
    assert git(repo, "status", "--porcelain") == status_before
    # The checkpoint is a real commit: HEAD is its first parent and its tree has the dirty file.
    assert git(repo, "show", f"{cp.ref}:src/app.py") == "print('dirty')\n"
    assert git(repo, "show", f"{cp.ref}:new.txt") == "untracked\n"
    assert git(repo, "rev-parse", f"{cp.ref}^1") == git(repo, "rev-parse", "HEAD")


def test_unchanged_tree_reuses_the_last_checkpoint(repo: Path, tmp_path: Path) -> None:
    store = store_for(repo, tmp_path)
    first, new1 = store.create("r", "a")
    again, new2 = store.create("r", "b")
    assert new1 and not new2 and again.n == first.n == 0
    (repo / "README.md").write_text("changed\n")
    third, new3 = store.create("r", "c")
    assert new3 and third.n == 1
    # A fresh store (another process) numbers on from the refs.
    fourth, _ = store_for(repo, tmp_path / "other").create("r", "d")
    assert fourth.n == 1  # same tree as checkpoint 1: reused
    assert [c.label for c in store.list("r")] == ["a", "c"]


def test_undo_after_reset_hard_and_rm_rf_restores_dirty_work(repo: Path, tmp_path: Path) -> None:
    (repo / "src" / "app.py").write_text("print('my uncommitted work')\n")
    (repo / "src" / "wip.py").write_text("x = 1\n")
    (repo / "local.env").write_text("SECRET=1\n")
    before = tree_state(repo)
    store = store_for(repo, tmp_path)
    cp, _ = store.create("r", "start")
    git(repo, "reset", "-q", "--hard")
    shutil.rmtree(repo / "src")
    (repo / "local.env").unlink()
    (repo / "junk.txt").write_text("agent output\n")

    report = store.restore(cp)
    assert tree_state(repo) == before
    assert (repo / "local.env").read_text() == "SECRET=1\n"  # ignored, small: kept
    assert "junk.txt" in report.deleted and not report.failed
    # The restore itself is undoable: its safety checkpoint holds the damaged state.
    store.restore(report.safety)
    assert (repo / "junk.txt").exists() and not (repo / "src").exists()


def test_bytes_are_exact_despite_crlf_attributes_and_autocrlf(repo: Path, tmp_path: Path) -> None:
    (repo / ".gitattributes").write_text("* text=auto\n*.bat eol=crlf\n")
    git(repo, "config", "core.autocrlf", "true")
    (repo / "win.txt").write_bytes(b"a\r\nb\r\n")
    (repo / "run.bat").write_bytes(b"echo\n")
    (repo / "mixed.txt").write_bytes(b"a\r\nb\nc\r")
    before = tree_state(repo)
    store = store_for(repo, tmp_path)
    cp, _ = store.create("r", "start")
    for name in ("win.txt", "run.bat", "mixed.txt"):
        (repo / name).write_bytes(b"changed\n")
    store.restore(cp)
    assert tree_state(repo) == before


def test_modes_symlinks_binary_and_renames(repo: Path, tmp_path: Path) -> None:
    script = repo / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (repo / "blob.bin").write_bytes(bytes(range(256)) * 10)
    (repo / "link").symlink_to("src/app.py")
    before = tree_state(repo)
    store = store_for(repo, tmp_path)
    cp, _ = store.create("r", "start")
    script.chmod(0o644)
    (repo / "blob.bin").rename(repo / "moved.bin")
    (repo / "link").unlink()
    (repo / "link").write_text("now a file\n")
    store.restore(cp)
    assert tree_state(repo) == before
    assert os.access(script, os.X_OK)


def test_another_process_adding_checkpoints_to_the_run_is_not_a_collision(repo: Path, tmp_path: Path) -> None:
    mine, other = store_for(repo, tmp_path), store_for(repo, tmp_path / "other")
    mine.create("r", "start")
    (repo / "README.md").write_text("1\n")
    other.create("r", "by luban undo in another terminal")  # takes n=1 behind mine's back
    (repo / "README.md").write_text("2\n")
    cp, new = mine.create("r", "edit")
    assert new and cp.n == 2
    assert [c.n for c in mine.list("r")] == [0, 1, 2]


def test_file_directory_swaps(repo: Path, tmp_path: Path) -> None:
    store = store_for(repo, tmp_path)
    cp, _ = store.create("r", "start")
    shutil.rmtree(repo / "src")
    (repo / "src").write_text("a file where a directory was\n")
    (repo / "README.md").unlink()
    (repo / "README.md").mkdir()
    (repo / "README.md" / "x.txt").write_text("nested\n")
    store.restore(cp)
    assert (repo / "src" / "app.py").read_text() == "print('hi')\n"
    assert (repo / "README.md").read_text() == "# r\n"


def test_staging_area_is_restored(repo: Path, tmp_path: Path) -> None:
    (repo / "README.md").write_text("staged\n")
    git(repo, "add", "README.md")
    staged = user_index_tree(repo)
    store = store_for(repo, tmp_path)
    cp, _ = store.create("r", "start")
    git(repo, "reset", "-q", "--hard")  # the agent throws away the staged change too
    report = store.restore(cp)
    assert report.index_restored
    assert user_index_tree(repo) == staged
    assert git(repo, "diff", "--cached", "--name-only").split() == ["README.md"]


def test_moved_head_is_reported_not_changed(repo: Path, tmp_path: Path) -> None:
    store = store_for(repo, tmp_path)
    cp, _ = store.create("r", "start")
    git(repo, "switch", "-q", "-c", "other")
    (repo / "README.md").write_text("on other\n")
    git(repo, *IDENTITY, "commit", "-qam", "other")
    report = store.restore(cp)
    assert any("HEAD is other" in n and "git switch main" in n for n in report.notes)
    assert git(repo, "branch", "--show-current").strip() == "other"
    assert (repo / "README.md").read_text() == "# r\n"


def test_merge_conflict_in_progress_still_checkpoints(repo: Path, tmp_path: Path) -> None:
    git(repo, "switch", "-q", "-c", "b")
    (repo / "README.md").write_text("b\n")
    git(repo, *IDENTITY, "commit", "-qam", "b")
    git(repo, "switch", "-q", "main")
    (repo / "README.md").write_text("main\n")
    git(repo, *IDENTITY, "commit", "-qam", "main")
    subprocess.run(["git", *IDENTITY, "merge", "b"], cwd=repo, capture_output=True)
    assert (repo / ".git" / "MERGE_HEAD").exists()
    conflicted = (repo / "README.md").read_text()
    store = store_for(repo, tmp_path)
    cp, _ = store.create("r", "start")
    assert cp.snapshot.index_tree is None  # unmerged entries: no tree for the index
    (repo / "README.md").write_text("resolved badly\n")
    store.restore(cp)
    assert (repo / "README.md").read_text() == conflicted


def test_huge_untracked_files_are_listed_not_copied(repo: Path, tmp_path: Path, monkeypatch) -> None:
    import tools.git.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "UNTRACKED_FILE_MAX_BYTES", 1000)
    (repo / "dump.sql").write_bytes(b"x" * 5000)
    (repo / "README.md").write_bytes(b"y" * 5000)  # tracked: recorded whatever its size
    cp, _ = store_for(repo, tmp_path).create("r", "start")
    assert cp.snapshot.skipped == ("dump.sql",)
    assert git(repo, "ls-tree", "--name-only", cp.ref).split() == [".gitignore", "README.md", "src"]


def test_shadow_repository_for_a_plain_directory(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("a = 1\n")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "big.js").write_text("//\n")
    store = store_for(root, tmp_path)
    assert store.shadow
    cp, _ = store.create("r", "start")
    (root / "pkg" / "a.py").write_text("broken\n")
    (root / "pkg" / "b.py").write_text("b\n")
    report = store.restore(cp)
    assert (root / "pkg" / "a.py").read_text() == "a = 1\n" and not (root / "pkg" / "b.py").exists()
    assert "node_modules/x/big.js" not in report.written
    assert not (root / ".git").exists()
    assert git(store.git_dir, "ls-tree", "-r", "--name-only", cp.ref).split() == ["pkg/a.py"]


def test_shadow_refuses_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(CheckpointError, match="too broad"):
        store_for(home, tmp_path).create("r", "start")


def test_drop_and_invalid_run_ids(repo: Path, tmp_path: Path) -> None:
    store = store_for(repo, tmp_path)
    store.create("keep", "a")
    store.create("gone", "a")
    assert store.drop("gone") == 1
    assert store.runs() == ["keep"]
    with pytest.raises(CheckpointError, match="invalid run id"):
        store.create("../escape", "x")
    with pytest.raises(CheckpointError, match="no checkpoint 7"):
        store.get("keep", 7)


def test_inherited_git_environment_cannot_redirect_checkpoints(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repo(tmp_path / "other", {"x": "x\n"})
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    cp, _ = store_for(repo, tmp_path).create("r", "start")
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert git(repo, "rev-parse", cp.ref).strip() == cp.commit
    assert not git(other, "for-each-ref", "refs/luban")


# --------------------------------------------------------------------------- properties

NAMES = ["a.txt", "b.py", "src/c.py", "src/deep/d.bin", "e.sh", "docs/f.md", "g.env", "h.log"]
CONTENT = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode()),
    st.sampled_from([b"", b"a\r\nb\r\n", b"\x00\x01\xff", b"line\n" * 50]),
)
OP = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), CONTENT),
    st.tuples(st.just("delete"), st.sampled_from(NAMES)),
    st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("chmod"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("symlink"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
    st.tuples(st.just("rmtree"), st.sampled_from(["src", "docs"])),
    st.tuples(st.just("reset_hard")),
    st.tuples(st.just("stage"), st.sampled_from(NAMES)),
)


def apply(root: Path, op: tuple, git_repo: bool) -> None:
    kind = op[0]
    if kind in ("reset_hard", "stage") and not git_repo:
        return
    if kind == "write":
        path = root / op[1]
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.is_symlink():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.is_dir():
            path.write_bytes(op[2])
    elif kind == "delete":
        if (root / op[1]).is_symlink() or (root / op[1]).is_file():
            (root / op[1]).unlink()
    elif kind == "rename":
        src, dst = root / op[1], root / op[2]
        if src != dst and (src.is_file() or src.is_symlink()) and not dst.is_dir():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    elif kind == "chmod":
        path = root / op[1]
        if path.is_file() and not path.is_symlink():
            path.chmod(0o755 if op[2] else 0o644)
    elif kind == "symlink":
        link = root / op[1]
        if not link.exists() and not link.is_symlink() and link.parent.is_dir():
            link.symlink_to(op[2])
    elif kind == "rmtree":
        shutil.rmtree(root / op[1], ignore_errors=True)
    elif kind == "reset_hard":
        git(root, "reset", "-q", "--hard")
    elif kind == "stage":
        subprocess.run(["git", "add", "-A", "--", op[1]], cwd=root, capture_output=True)


def check_sequence(git_repo: bool, start_ops: list, ops: list, pick: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "w"
        if git_repo:
            make_repo(root, {"a.txt": "committed\n", "src/c.py": "c = 1\n", ".gitignore": "*.env\n*.log\n"})
        else:
            root.mkdir()
            (root / "a.txt").write_text("plain\n")
            (root / ".gitignore").write_text("*.env\n*.log\n")
        for op in start_ops:  # a dirty starting tree: the user's uncommitted work
            apply(root, op, git_repo)
        store = CheckpointStore(root, tmp_path / "cache")
        recorded = []
        for i, op in enumerate([("noop",), *ops]):
            if op[0] != "noop":
                apply(root, op, git_repo)
            cp, _ = store.create("prop", f"step {i}")
            index = user_index_tree(root) if git_repo else None
            recorded.append((cp, tree_state(root), tree_state(root, ignored=True), index))
        final = tree_state(root)
        cp, files, ignored_files, index = recorded[pick % len(recorded)]
        report = store.restore(cp)
        assert not report.failed, report.failed
        assert tree_state(root) == files
        now_ignored = tree_state(root, ignored=True)
        assert {k: v for k, v in now_ignored.items() if k in ignored_files} == ignored_files
        if git_repo:
            assert user_index_tree(root) == index
        store.restore(report.safety)  # redo
        assert tree_state(root) == final


PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@PROPERTY
@given(
    start_ops=st.lists(OP, max_size=4),
    ops=st.lists(OP, min_size=1, max_size=8),
    pick=st.integers(min_value=0, max_value=20),
)
def test_property_undo_restores_byte_identical_trees_in_a_git_repo(start_ops, ops, pick) -> None:
    check_sequence(True, start_ops, ops, pick)


@PROPERTY
@given(
    start_ops=st.lists(OP, max_size=3),
    ops=st.lists(OP, min_size=1, max_size=6),
    pick=st.integers(min_value=0, max_value=20),
)
def test_property_undo_restores_byte_identical_trees_in_a_plain_directory(start_ops, ops, pick) -> None:
    check_sequence(False, start_ops, ops, pick)


def test_run_branch_refuses_during_a_merge_and_bad_names(repo: Path, tmp_path: Path) -> None:
    from tools.git.run_branch import slugify, start_branch

    store = store_for(repo, tmp_path)
    assert slugify("Fix issue #123: the parser crashes on ünïcode!") == "fix-issue-123-the-parser-crashes-on"
    assert slugify("???") == "task"
    with pytest.raises(CheckpointError, match="not a valid branch name"):
        start_branch(store, "t", "bad..name")
    (repo / ".git" / "MERGE_HEAD").write_text(git(repo, "rev-parse", "HEAD"))
    with pytest.raises(CheckpointError, match="merge is in progress"):
        start_branch(store, "t")
    (repo / ".git" / "MERGE_HEAD").unlink()
    assert start_branch(store, "t") == "luban/t"
    assert git(repo, "branch", "--show-current").strip() == "luban/t"
