"""Checkpoints: the working tree recorded as a commit under a private ref before every change the
agent makes, so that any change (an edit, `git reset --hard`, `rm -rf`) can be undone byte for
byte, and the user's uncommitted work is never lost.

What a checkpoint holds (a commit under ``refs/luban/<run>/<n>``):
- its tree: every file git would see (tracked, untracked, deleted, binary, executable bits,
  symlinks), ``.gitignore`` honoured;
- a parent commit holding the user's staging area when it differs from HEAD, so undo also brings
  back what was staged;
- a parent commit holding small ignored files (``.env``, local settings: up to 200 files of
  at most 1 MiB), restored by undo but never part of a diff;
- HEAD as first parent, so ``git log``/``git diff refs/luban/...`` read naturally.

How it stays fast and exact: the user's index, HEAD, branches and stash are never touched. Files
are hashed by ``git hash-object --no-filters`` (no CRLF or filter conversion, so a restore writes
exactly the bytes that were there) and only when their stat data changed since the last snapshot
(a stat cache in the workspace cache dir). The tree is built in Luban's own persistent index, fed
only the entries that changed, so ``write-tree`` reuses every unchanged directory.

A directory that is not a git repository gets a shadow repository in the cache dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import marshal
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REF_PREFIX = "refs/luban/"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
NULL_SHA = "0" * 40
IGNORED_FILE_MAX_BYTES = 1 << 20
# Untracked files larger than this (datasets, dumps) are not copied into the object store: one
# checkpoint would grow the repository by their size. They are listed as not recorded.
UNTRACKED_FILE_MAX_BYTES = 64 << 20
IGNORED_FILES_MAX = 200
# A file modified within one timestamp tick before it was hashed may change again with the same
# stat data; its cached hash is not trusted (git's "racily clean" rule). Ticks are a few ms on
# Linux; whole-second timestamps betray coarse filesystems (FAT, HFS+), which get 2 s.
RACY_NS = 100_000_000
RACY_COARSE_NS = 2_000_000_000
CACHE_VERSION = 2
# Never recorded in a shadow repository (directories without git): rebuilt by tools, often huge.
SHADOW_EXCLUDES = """\
.git/
.hg/
.svn/
node_modules/
.venv/
venv/
__pycache__/
*.pyc
.tox/
.nox/
.mypy_cache/
.pytest_cache/
.ruff_cache/
"""
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Luban checkpoint",
    "GIT_AUTHOR_EMAIL": "luban@localhost",
    "GIT_COMMITTER_NAME": "Luban checkpoint",
    "GIT_COMMITTER_EMAIL": "luban@localhost",
}


class CheckpointError(Exception):
    """Checkpoints cannot be taken or restored here; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    tree: str  # the working tree, .gitignore honoured
    index_tree: str | None = None  # the user's staging area (git repositories only)
    ignored_tree: str | None = None  # small ignored files, restored by undo, never diffed
    skipped: tuple[str, ...] = ()  # paths that could not be recorded (embedded repos, sockets)

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.tree, self.index_tree, self.ignored_tree)


@dataclass(frozen=True)
class Checkpoint:
    run: str
    n: int
    commit: str
    snapshot: Snapshot
    label: str
    created: float
    head: str | None
    branch: str | None

    @property
    def ref(self) -> str:
        return f"{REF_PREFIX}{self.run}/{self.n}"

    @property
    def tree(self) -> str:
        return self.snapshot.tree


@dataclass
class RestoreReport:
    checkpoint: Checkpoint
    safety: Checkpoint | None  # the state just before the restore: `undo --to` it to redo
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "path: why"
    index_restored: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return len(self.written) + len(self.deleted)


def valid_run_id(run: str) -> bool:
    return bool(run) and all(c.isalnum() or c in "-_." for c in run) and not run.startswith(".")


class CheckpointStore:
    """Checkpoints of one workspace. Thread-safe within a process (a file lock serialises
    snapshots across processes too); each call runs a handful of git plumbing commands."""

    def __init__(self, root: Path, cache_dir: Path):
        from tools.git.snapshot import open_repo

        self.root = Path(root).resolve()
        self.cache_dir = Path(cache_dir)
        repo = open_repo(self.root)
        if repo is not None:
            self.repo = repo
            self.top = Path(repo.working_tree_dir).resolve()
            self.git_dir = Path(repo.git_dir)
            self.shadow = False
        else:
            self.repo = None
            self.top = self.root
            self.git_dir = self.cache_dir / "shadow.git"
            self.shadow = True
        self._index = self.cache_dir / "checkpoint.index"
        self._stat_cache = self.cache_dir / "checkpoint-stat.marshal"
        self._env = clean_git_env()
        self._last: dict[str, Checkpoint] = {}

    # ------------------------------------------------------------------ git plumbing

    def git(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
        cmd = ["git", f"--git-dir={self.git_dir}", f"--work-tree={self.top}", *args]
        proc = subprocess.run(
            cmd,
            cwd=self.top,
            input=input,
            capture_output=True,
            env={**self._env, **env} if env else self._env,
        )
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise CheckpointError(f"git {args[0]} failed: {err or f'exit code {proc.returncode}'}")
        return proc.stdout

    def _ensure_shadow(self) -> None:
        if not self.shadow or (self.git_dir / "HEAD").exists():
            return
        if self.top == Path.home().resolve() or self.top == Path(self.top.anchor):
            raise CheckpointError(
                f"{self.top} is not a git repository and is too broad to checkpoint (a home or root "
                "directory); run Luban inside a project directory"
            )
        self.git_dir.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "-q", "--bare", str(self.git_dir)], check=True, capture_output=True, env=self._env
        )
        (self.git_dir / "info").mkdir(exist_ok=True)
        (self.git_dir / "info" / "exclude").write_text(SHADOW_EXCLUDES)

    @contextlib.contextmanager
    def _locked(self):
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(self.cache_dir / "checkpoint.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> Snapshot:
        """Record the working tree as git objects and return their ids (no ref is written)."""
        self._ensure_shadow()
        with self._locked():
            cache = self._load_cache()
            tracked = {} if self.shadow else self._tracked(cache)
            others = split_z(self.git("ls-files", "-z", "-o", "--exclude-standard"))
            entries, skipped = self._entries(list(tracked) + others, tracked, cache)
            tree = self._write_tree(entries, cache)
            ignored_tree = self._ignored_tree(cache)
            index_tree = None if self.shadow else self._user_index_tree(cache)
            cache["entries"] = entries
            known = entries.keys() | cache.get("ignored", {}).keys()
            cache["stat"] = {p: v for p, v in cache["stat"].items() if p in known}
            self._save_cache(cache)
        return Snapshot(tree, index_tree, ignored_tree, tuple(skipped))

    def _tracked(self, cache: dict) -> dict[str, tuple[str, str]]:
        """Paths in the user's index with their mode and blob id (gitlinks need the latter),
        read again only when the index file changed."""
        sig = file_sig(self.git_dir / "index")
        if sig is not None and cache.get("tracked_sig") == sig:
            return cache["tracked"]
        out: dict[str, tuple[str, str]] = {}
        for rec in split_z(self.git("ls-files", "-z", "-s")):
            meta, _, path = rec.partition("\t")
            mode, sha, _stage = meta.split(" ")
            out[path] = (mode, sha)
        cache["tracked_sig"], cache["tracked"] = sig, out
        return out

    def _entries(
        self, paths: list[str], tracked: dict[str, tuple[str, str]], cache: dict
    ) -> tuple[dict[str, tuple[str, str]], list[str]]:
        """{path: (git mode, blob id)} for the files present now, hashing only what changed."""
        stats: dict = cache.setdefault("stat", {})
        entries: dict[str, tuple[str, str]] = {}
        skipped: list[str] = []
        to_hash: list[tuple[str, tuple, str]] = []
        now = time.time_ns()
        top = str(self.top)
        for path in dict.fromkeys(paths):
            if path.endswith("/"):  # an embedded repository that is not a submodule
                skipped.append(path)
                continue
            try:
                st = os.lstat(os.path.join(top, path))
            except OSError:
                continue  # deleted: absent from the snapshot
            if stat.S_ISDIR(st.st_mode):
                if tracked.get(path, ("",))[0] == "160000":
                    entries[path] = tracked[path]  # a submodule: its recorded commit
                else:
                    skipped.append(path)
                continue
            if stat.S_ISREG(st.st_mode):
                if st.st_size > UNTRACKED_FILE_MAX_BYTES and path not in tracked:
                    skipped.append(path)
                    continue
                mode = "100755" if st.st_mode & stat.S_IXUSR else "100644"
            elif stat.S_ISLNK(st.st_mode):
                mode = "120000"
            else:
                skipped.append(path)
                continue
            sig = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
            hit = stats.get(path)
            changed_at = max(st.st_mtime_ns, st.st_ctime_ns)
            racy = RACY_COARSE_NS if st.st_mtime_ns % 1_000_000_000 == 0 else RACY_NS
            if hit is not None and hit[0] == sig and hit[2] - changed_at > racy:
                entries[path] = (mode, hit[1])
            else:
                to_hash.append((path, sig, mode))
        for (path, sig, mode), sha in zip(to_hash, self._hash([(p, m) for p, _, m in to_hash]), strict=True):
            if sha is None:
                skipped.append(path)
                continue
            stats[path] = (sig, sha, now)
            entries[path] = (mode, sha)
        return entries, skipped

    def _hash(self, items: list[tuple[str, str]]) -> list[str | None]:
        """Blob ids of files (bytes as they are on disk: no filters) and symlinks (their target)."""
        shas: list[str | None] = [None] * len(items)
        batch = [i for i, (p, m) in enumerate(items) if m != "120000" and "\n" not in p]
        if batch:
            out = self.git(
                "hash-object",
                "-w",
                "--no-filters",
                "--stdin-paths",
                input=encode("".join(items[i][0] + "\n" for i in batch)),
            )
            for i, sha in zip(batch, out.decode().split(), strict=True):
                shas[i] = sha
        for i, (path, mode) in enumerate(items):
            if shas[i] is not None:
                continue
            try:
                data = (
                    os.fsencode(os.readlink(self.top / path))
                    if mode == "120000"
                    else (self.top / path).read_bytes()
                )
            except OSError:
                continue
            shas[i] = self.git("hash-object", "-w", "--no-filters", "--stdin", input=data).decode().strip()
        return shas

    def _write_tree(self, entries: dict[str, tuple[str, str]], cache: dict) -> str:
        """Feed only the changed entries to Luban's own index, then write its tree."""
        previous = cache.get("entries")
        if previous is None or cache.get("index_sig") != file_sig(self._index):
            self._index.unlink(missing_ok=True)
            previous = {}
        removed = [p for p in previous if p not in entries]
        changed = [p for p, e in entries.items() if previous.get(p) != e]
        env = {"GIT_INDEX_FILE": str(self._index)}
        if removed or changed or not self._index.exists():
            lines = [f"0 {NULL_SHA}\t{p}\0" for p in removed]
            lines += [f"{entries[p][0]} {entries[p][1]}\t{p}\0" for p in changed]
            self.git("update-index", "-z", "--index-info", input=encode("".join(lines)), env=env)
        tree = self.git("write-tree", env=env).decode().strip()
        cache["index_sig"] = file_sig(self._index)
        return tree

    def _ignored_tree(self, cache: dict) -> str | None:
        """Small ignored files (`.env`, local settings) as their own tree; ignored directories
        (build output, virtualenvs, caches) are skipped: tools rebuild them."""
        listing = split_z(
            self.git(
                "ls-files", "-z", "-o", "-i", "--exclude-standard", "--directory", "--no-empty-directory"
            )
        )
        files = []
        for path in listing:
            if path.endswith("/") or len(files) >= IGNORED_FILES_MAX:
                continue
            with contextlib.suppress(OSError):
                st = os.lstat(self.top / path)
                if stat.S_ISLNK(st.st_mode) or (
                    stat.S_ISREG(st.st_mode) and st.st_size <= IGNORED_FILE_MAX_BYTES
                ):
                    files.append(path)
        entries, _ = self._entries(files, {}, {"stat": cache.setdefault("stat", {})})
        cache["ignored"] = entries
        if not entries:
            return None
        key = sorted(entries.items())
        if cache.get("ignored_key") == key:
            return cache["ignored_tree"]
        fd, tmp = tempfile.mkstemp(prefix="luban-ignored-index-")
        os.close(fd)
        os.unlink(tmp)
        try:
            lines = "".join(f"{m} {s}\t{p}\0" for p, (m, s) in key)
            env = {"GIT_INDEX_FILE": tmp}
            self.git("update-index", "-z", "--index-info", input=encode(lines), env=env)
            tree = self.git("write-tree", env=env).decode().strip()
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        cache["ignored_key"], cache["ignored_tree"] = key, tree
        return tree

    def _user_index_tree(self, cache: dict) -> str | None:
        """The tree of the user's staging area, written from a copy (write-tree would update the
        index's cache-tree otherwise). None while a merge has unresolved conflicts."""
        index = self.git_dir / "index"
        sig = file_sig(index)
        if sig is None:
            return None
        if cache.get("user_index_sig") == sig:
            return cache.get("user_index_tree")
        fd, tmp = tempfile.mkstemp(prefix="luban-user-index-")
        os.close(fd)
        try:
            shutil.copyfile(index, tmp)
            tree = self.git("write-tree", env={"GIT_INDEX_FILE": tmp}).decode().strip()
        except CheckpointError:
            tree = None
        finally:
            os.unlink(tmp)
        cache["user_index_sig"], cache["user_index_tree"] = sig, tree
        return tree

    def _load_cache(self) -> dict:
        try:
            data = marshal.loads(self._stat_cache.read_bytes())
            if (
                isinstance(data, dict)
                and data.get("version") == CACHE_VERSION
                and data.get("top") == str(self.top)
            ):
                return data
        except (OSError, ValueError, EOFError, TypeError):
            pass
        return {"version": CACHE_VERSION, "top": str(self.top)}

    def _save_cache(self, cache: dict) -> None:
        tmp = self._stat_cache.with_suffix(".tmp")
        tmp.write_bytes(marshal.dumps(cache))
        os.replace(tmp, self._stat_cache)

    # ------------------------------------------------------------------ checkpoints

    def head(self) -> tuple[str | None, str | None]:
        """(HEAD commit, branch name) of the user's repository; (None, None) in a shadow."""
        if self.repo is None:
            return None, None
        try:
            commit = self.repo.head.commit.hexsha
        except ValueError:
            commit = None
        branch = None if self.repo.head.is_detached else self.repo.head.ref.name
        return commit, branch

    def create(self, run: str, label: str) -> tuple[Checkpoint, bool]:
        """Record a checkpoint for `run`; returns it and whether it is new (an unchanged tree
        reuses the run's last checkpoint instead of adding one)."""
        if not valid_run_id(run):
            raise CheckpointError(f"invalid run id {run!r}")
        snap = self.snapshot()
        for attempt in range(2):
            last = self._last.get(run) or next(reversed(self.list(run)), None)
            if last is not None and last.snapshot.key == snap.key:
                self._last[run] = last
                return last, False
            try:
                cp = self._record(run, label, snap, last.n + 1 if last else 0)
            except CheckpointError:
                # Another process (`luban undo` beside the TUI) took this number: look again.
                self._last.pop(run, None)
                if attempt:
                    raise
                continue
            self._last[run] = cp
            return cp, True
        raise AssertionError("unreachable")

    def _record(self, run: str, label: str, snap: Snapshot, n: int) -> Checkpoint:
        head, branch = self.head()
        parents: list[str] = [head] if head else []
        head_tree = self._tree_of(head) if head else EMPTY_TREE
        index_commit = ignored_commit = None
        if snap.index_tree and snap.index_tree != head_tree:
            index_commit = self._commit(snap.index_tree, [], f"luban index {run}/{n}")
            parents.append(index_commit)
        if snap.ignored_tree:
            ignored_commit = self._commit(snap.ignored_tree, [], f"luban ignored files {run}/{n}")
            parents.append(ignored_commit)
        created = time.time()
        meta = {
            "run": run,
            "n": n,
            "label": label,
            "created": created,
            "head": head,
            "branch": branch,
            "index_tree": snap.index_tree,
            "index_commit": index_commit,
            "ignored_tree": snap.ignored_tree,
            "skipped": list(snap.skipped),
        }
        subject = f"luban checkpoint {run}/{n}: {one_line(label)}"
        commit = self._commit(snap.tree, parents, f"{subject}\n\n{json.dumps(meta)}\n")
        cp = Checkpoint(run, n, commit, snap, label, created, head, branch)
        self.git("update-ref", cp.ref, commit, "")  # "" = must not exist yet: never overwrite
        return cp

    def _commit(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return self.git(*args, input=message.encode(), env=GIT_IDENTITY).decode().strip()

    def _tree_of(self, commit: str) -> str:
        return self.git("rev-parse", f"{commit}^{{tree}}").decode().strip()

    def list(self, run: str | None = None) -> list[Checkpoint]:
        if self.shadow and not (self.git_dir / "HEAD").exists():
            return []
        prefix = f"{REF_PREFIX}{run}/" if run else REF_PREFIX
        out = self.git(
            "for-each-ref", "--format=%(objectname)%00%(tree)%00%(contents:body)%00%00", prefix
        ).decode(errors="replace")
        found = []
        for rec in out.split("\0\0\n"):
            parts = rec.split("\0")
            if len(parts) < 3:
                continue
            try:
                meta = json.loads(parts[2].strip())
                snap = Snapshot(
                    parts[1], meta.get("index_tree"), meta.get("ignored_tree"), tuple(meta.get("skipped", ()))
                )
                found.append(
                    Checkpoint(
                        meta["run"],
                        int(meta["n"]),
                        parts[0],
                        snap,
                        meta.get("label", ""),
                        float(meta.get("created", 0)),
                        meta.get("head"),
                        meta.get("branch"),
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue  # not ours, or damaged: skip rather than fail the listing
        return sorted(found, key=lambda c: (c.run, c.n))

    def runs(self) -> list[str]:
        """Run ids with checkpoints, oldest first (run ids start with their start time)."""
        return sorted({c.run for c in self.list()})

    def get(self, run: str, n: int) -> Checkpoint:
        for cp in self.list(run):
            if cp.n == n:
                return cp
        raise CheckpointError(f"run {run} has no checkpoint {n} (see `luban checkpoints --run {run}`)")

    def drop(self, run: str) -> int:
        """Delete a run's checkpoint refs (git gc reclaims the space later)."""
        cps = self.list(run)
        if cps:
            self.git("update-ref", "--stdin", input="".join(f"delete {c.ref}\n" for c in cps).encode())
        self._last.pop(run, None)
        return len(cps)

    def diff(self, before: str, after: str, *, binary: bool = False, stat_only: bool = False) -> str:
        if not before or not after or before == after:
            return ""
        args = ["diff", "--no-color", "--no-ext-diff", "--find-renames"]
        if binary:
            args.append("--binary")
        if stat_only:
            args.append("--stat")
        out = self.git(*args, before, after).decode(errors="replace")
        return out if not out or out.endswith("\n") else out + "\n"

    def changed_paths(self, before: str, after: str) -> list[str]:
        if before == after:
            return []
        return split_z(self.git("diff-tree", "-r", "-z", "--name-only", "--no-renames", before, after))

    # ------------------------------------------------------------------ restore

    def restore(self, target: Checkpoint, run: str | None = None) -> RestoreReport:
        """Make the working tree (and the staging area, when the checkpoint recorded it) what it
        was at `target`. The current state is checkpointed first, so a restore can be undone."""
        safety, _ = self.create(run or target.run, f"before undo to {target.n}")
        report = RestoreReport(checkpoint=target, safety=safety)
        self._apply(safety.tree, target.tree, report, delete=True)
        if target.snapshot.ignored_tree:
            # Ignored files are brought back, never deleted: the checkpoint only holds small ones.
            self._apply(
                safety.snapshot.ignored_tree or EMPTY_TREE, target.snapshot.ignored_tree, report, delete=False
            )
        if (
            not self.shadow
            and target.snapshot.index_tree
            and target.snapshot.index_tree != safety.snapshot.index_tree
        ):
            self.git("read-tree", target.snapshot.index_tree)
            with contextlib.suppress(CheckpointError):
                self.git("update-index", "-q", "--refresh")
            report.index_restored = True
        head, branch = self.head()
        if head != target.head or branch != target.branch:
            was = target.branch or (target.head or "no commit")[:12]
            now = branch or (head or "no commit")[:12]
            report.notes.append(
                f"HEAD is {now}; at the checkpoint it was {was}. Files are restored, branches and "
                f"commits are left as they are (to go back: git switch {target.branch or '--detach ' + str(target.head)[:12]})"
            )
        if target.snapshot.skipped:
            report.notes.append("not recorded, so not restored: " + ", ".join(target.snapshot.skipped[:10]))
        return report

    def _apply(self, current: str, target: str, report: RestoreReport, *, delete: bool) -> None:
        raw = split_z(self.git("diff-tree", "-r", "-z", "--no-renames", current, target))
        changes = []
        for head, path in zip(raw[0::2], raw[1::2], strict=True):
            _old_mode, new_mode, _old_sha, new_sha, status = head.lstrip(":").split(" ")
            changes.append((status, new_mode, new_sha, path))
        for status, _m, _s, path in changes:
            if status == "D" and delete:
                self._delete(path, report)
        writes = [(m, s, p) for status, m, s, p in changes if status != "D"]
        blobs = self._blobs([s for m, s, _ in writes if m != "160000"])
        for mode, sha, path in writes:
            if mode == "160000":
                report.notes.append(f"{path} is a submodule: its checkout is left as it is")
                continue
            try:
                write_entry(self.top / path, mode, blobs[sha])
                report.written.append(path)
            except OSError as exc:
                report.failed.append(f"{path}: {exc.strerror or exc}")

    def _delete(self, path: str, report: RestoreReport) -> None:
        full = self.top / path
        try:
            if full.is_dir() and not full.is_symlink():
                report.failed.append(f"{path}: is a directory now; left in place")
                return
            full.unlink()
            report.deleted.append(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            report.failed.append(f"{path}: {exc.strerror or exc}")
            return
        parent = full.parent
        while parent != self.top and parent.is_relative_to(self.top):
            try:
                parent.rmdir()  # only empty directories
            except OSError:
                break
            parent = parent.parent

    def _blobs(self, shas: list[str]) -> dict[str, bytes]:
        """Blob contents through one `git cat-file --batch`."""
        if not shas:
            return {}
        unique = list(dict.fromkeys(shas))
        out = self.git("cat-file", "--batch", input="".join(s + "\n" for s in unique).encode())
        blobs: dict[str, bytes] = {}
        pos = 0
        for sha in unique:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].split()
            if len(header) < 3:
                raise CheckpointError(f"object {sha} is missing from the repository")
            size = int(header[2])
            blobs[sha] = out[nl + 1 : nl + 1 + size]
            pos = nl + 1 + size + 1
        return blobs


def write_entry(path: Path, mode: str, data: bytes) -> None:
    """Write one file as git would check it out: atomically, with its executable bit, or as a
    symlink. A file in the way of a directory (or the reverse) is replaced."""
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        parent.unlink()
    parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        if mode == "120000":
            path.unlink()
    elif path.is_dir():
        path.rmdir()  # only when empty; anything else raises and is reported
    if mode == "120000":
        os.symlink(os.fsdecode(data), path)
        return
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.luban-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = current_umask()
        os.chmod(tmp, (0o777 if mode == "100755" else 0o666) & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def split_z(out: bytes) -> list[str]:
    return [p for p in out.decode("utf-8", errors="surrogateescape").split("\0") if p]


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def file_sig(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def one_line(text: str, width: int = 72) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def clean_git_env() -> dict[str, str]:
    """The environment for our git commands: nothing inherited may redirect them (GIT_DIR,
    GIT_INDEX_FILE... set by a hook or the user's shell), no prompts, no optional index locks."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    return env
