"""`luban undo` and `luban checkpoints`: list and restore the checkpoints runs recorded."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from agent.config import ConfigError
from tools.git.checkpoints import Checkpoint, CheckpointError, CheckpointStore

MAX_LISTED = 20


def open_store(repo_arg: str) -> CheckpointStore:
    from agent.session import workspace_cache_dir

    repo = Path(repo_arg).expanduser()
    if not repo.is_dir():
        raise ConfigError(f"--repo {repo_arg}: not a directory")
    repo = repo.resolve()
    return CheckpointStore(repo, workspace_cache_dir(repo))


def pick_run(store: CheckpointStore, run: str | None) -> str:
    runs = store.runs()
    if not runs:
        raise ConfigError(
            f"no checkpoints in {store.top}: Luban records them while a run changes files "
            "(unless it ran with --no-checkpoints)"
        )
    if run is None:
        return runs[-1]
    if run not in runs:
        recent = ", ".join(runs[-5:])
        raise ConfigError(f"no checkpoints for run {run!r} in {store.top}; recent runs: {recent}")
    return run


def when(cp: Checkpoint) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(cp.created))


def cmd_undo(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.repo)
        run = pick_run(store, args.run)
        target = store.get(run, args.to if args.to is not None else 0)
        report = store.restore(target, run)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    what = "the start of the run" if target.n == 0 else f"before: {target.label}"
    print(f"Restored {store.top} to checkpoint {target.n} of run {run} ({when(target)}, {what}).")
    if not report.changed and not report.index_restored:
        print("  Nothing to change: the files were already like that.")
    for label, paths in (("written", report.written), ("deleted", report.deleted)):
        for path in paths[:MAX_LISTED]:
            print(f"  {label}: {path}")
        if len(paths) > MAX_LISTED:
            print(f"  ... and {len(paths) - MAX_LISTED} more {label}")
    if report.index_restored:
        print("  the staging area (git index) is restored too")
    for note in report.notes:
        print(f"  note: {note}")
    for failure in report.failed:
        print(f"  FAILED: {failure}", file=sys.stderr)
    if report.safety is not None and report.changed:
        print(f"To redo (go back to how it was just now): luban undo --run {run} --to {report.safety.n}")
    return 1 if report.failed else 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    try:
        store = open_store(args.repo)
        if args.drop:
            dropped = store.drop(pick_run(store, args.drop))
            print(f"dropped {dropped} checkpoints of run {args.drop}")
            return 0
        cps = store.list(pick_run(store, args.run) if args.run else None)
    except CheckpointError as exc:
        raise ConfigError(str(exc)) from None
    rows = []
    previous: dict[str, Checkpoint] = {}
    for cp in cps:
        before = previous.get(cp.run)
        changed = store.changed_paths(before.tree, cp.tree) if before else []
        previous[cp.run] = cp
        rows.append((cp, changed))
    if args.json:
        for cp, changed in rows:
            print(
                json.dumps(
                    {
                        "run": cp.run,
                        "n": cp.n,
                        "ref": cp.ref,
                        "commit": cp.commit,
                        "created": cp.created,
                        "label": cp.label,
                        "head": cp.head,
                        "branch": cp.branch,
                        "changed_since_previous": changed,
                    }
                )
            )
        return 0
    if not rows:
        print(f"no checkpoints in {store.top}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Checkpoints in {store.top}", title_justify="left")
    for col in ("run", "n", "time", "before", "changed since previous"):
        table.add_column(col, overflow="fold")
    for cp, changed in rows:
        shown = ", ".join(changed[:3]) + (f" (+{len(changed) - 3})" if len(changed) > 3 else "")
        table.add_row(cp.run, str(cp.n), when(cp), cp.label, shown or "-")
    Console().print(table)
    print("restore one with: luban undo --run RUN --to N")
    return 0
