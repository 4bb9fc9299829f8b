"""Checkpoint time on a large repository (aim: under 100 ms per checkpoint at 5,000 files).

Builds a git repository of N files in nested directories (committed, then made dirty: modified,
untracked and deleted files), then times, side by side in one run:
- `luban` checkpoints: cold (first ever snapshot of the workspace: every file hashed), warm
  (nothing changed), and after editing one file, which is the common case before each edit or
  command the agent makes;
- the same snapshot made the plain way, a fresh temporary index seeded from the user's index and
  `git add --all` + `git write-tree` (what a stash-like approach costs per checkpoint);
- a restore to the first checkpoint after 20 files were changed.

    python bench/checkpoint.py [--files 5000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.git.checkpoints import CheckpointStore, clean_git_env  # noqa: E402

ENV = {
    **clean_git_env(),
    "GIT_AUTHOR_NAME": "b",
    "GIT_AUTHOR_EMAIL": "b@b",
    "GIT_COMMITTER_NAME": "b",
    "GIT_COMMITTER_EMAIL": "b@b",
}


def git(repo: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**ENV, **(env or {})}
    ).stdout


def make_repo(root: Path, files: int) -> None:
    root.mkdir(parents=True)
    git(root, "init", "-q")
    for i in range(files):
        d = root / f"pkg{i % 50}" / f"sub{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 20)
    (root / ".gitignore").write_text("*.log\nbuild/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    for i in range(0, files, 500):  # a dirty starting tree
        (root / f"pkg{i % 50}" / f"sub{i % 7}" / f"mod{i}.py").write_text("changed\n")
    (root / "pkg1" / "sub1" / "mod1.py").unlink()
    (root / "notes.txt").write_text("untracked work in progress\n")


def plain_snapshot(repo: Path) -> str:
    fd, tmp = tempfile.mkstemp()
    os.close(fd)
    try:
        shutil.copyfile(repo / ".git" / "index", tmp)
        git(repo, "add", "--all", "--", ".", env={"GIT_INDEX_FILE": tmp})
        return git(repo, "write-tree", env={"GIT_INDEX_FILE": tmp}).strip()
    finally:
        os.unlink(tmp)


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:7.1f} ms   min {min(values) * 1000:7.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo, cache = Path(tmp) / "repo", Path(tmp) / "cache"
        t = time.perf_counter()
        make_repo(repo, args.files)
        print(f"repository: {args.files} files, built in {time.perf_counter() - t:.1f} s")
        store = CheckpointStore(repo, cache)

        t = time.perf_counter()
        first, _ = store.create("bench", "start")
        cold = time.perf_counter() - t

        warm, edit, plain = [], [], []
        target = repo / "pkg3" / "sub3" / "mod3.py"
        for i in range(args.repeat):
            t = time.perf_counter()
            store.create("bench", f"warm {i}")
            warm.append(time.perf_counter() - t)
            target.write_text(f"edit {i}\n")
            t = time.perf_counter()
            cp, new = store.create("bench", f"edit {i}")
            edit.append(time.perf_counter() - t)
            assert new, "an edit must make a new checkpoint"
            t = time.perf_counter()
            tree = plain_snapshot(repo)
            plain.append(time.perf_counter() - t)
            assert tree == cp.tree, "both ways must record the same tree"

        for i in range(20):
            (repo / f"pkg{i}" / f"sub{i % 7}" / f"mod{i}.py").write_text("damaged\n")
        t = time.perf_counter()
        report = store.restore(first)
        restore = time.perf_counter() - t

        print(f"cold checkpoint (every file hashed once per workspace): {cold * 1000:.0f} ms")
        print(f"checkpoint, nothing changed:      {ms(warm)}")
        print(f"checkpoint after a 1-file edit:   {ms(edit)}   (aim < 100 ms)")
        print(f"plain temp-index snapshot:        {ms(plain)}")
        print(f"ratio plain / luban (1-file edit): {statistics.median(plain) / statistics.median(edit):.2f}x")
        print(f"restore of {report.changed} files (incl. its safety checkpoint): {restore * 1000:.0f} ms")


if __name__ == "__main__":
    main()
