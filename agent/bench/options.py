"""Command-line flags shared by `luban bench run` and `luban bench grade`: one definition, one check."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instances", required=True, help="instances file (.jsonl, or .json holding a list)")
    p.add_argument("--ids", nargs="+", metavar="ID", help="only these instance ids")
    p.add_argument("--slice", metavar="A:B", help="only this slice of the (filtered) instances, e.g. 0:10")
    p.add_argument("--workers", type=int, default=1, help="instances at once (default 1)")
    p.add_argument(
        "--executor",
        choices=("thread", "process", "ray"),
        default="thread",
        help="where instances run: threads of this process (default), one process each (isolated, "
        "memory returned after each), or a Ray cluster (pip install 'luban[ray]')",
    )
    p.add_argument(
        "--address", help="Ray cluster address (auto, host:6379, ray://host:10001); default: a local Ray"
    )
    p.add_argument(
        "--memory-limit", type=int, metavar="MB", help="--executor process: address-space limit per worker"
    )
    p.add_argument(
        "--repo-cache", type=Path, help="directory of local mirrors (owner__name, owner+name, ...)"
    )
    p.add_argument("--network", action="store_true", help="clone from GitHub when there is no local mirror")
    p.add_argument(
        "--specs", type=Path, help="extra install specs (JSON or TOML) over the bundled SWE-bench table"
    )
    p.add_argument(
        "--env-cache", type=Path, help="where shared base environments are kept (default: state dir)"
    )
    p.add_argument(
        "--python", metavar="PATH", help="use this interpreter instead of each spec's Python version"
    )
    p.add_argument(
        "--no-date-pin",
        action="store_true",
        help="resolve unpinned dependencies to today's releases instead of those of the instance's date",
    )


def validate_common(args) -> str | None:
    """A usage problem with the shared flags, or None."""
    if args.workers < 1:
        return "--workers must be at least 1"
    if args.address and args.executor != "ray":
        return "--address is for --executor ray"
    if args.memory_limit is not None and args.executor != "process":
        return "--memory-limit is for --executor process"
    if args.memory_limit is not None and args.memory_limit < 64:
        return "--memory-limit is in MB and must be at least 64"
    return None


def env_cache_dir(args) -> Path:
    if getattr(args, "env_cache", None):
        return Path(args.env_cache).expanduser().resolve()
    from agent.config import state_dir

    return state_dir() / "bench-envs"
