"""Top-level job functions for tests/bench/test_executors.py: process and Ray workers import them by name."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


class TwoArgError(Exception):
    """Pickles but does not unpickle (its __init__ needs two arguments): the fallback path."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what} failed: {why}")


def job(spec: tuple) -> object:
    """One job per spec: ("value", x) -> x * 10; ("raise", msg); ("meet", dir, me, other) waits for
    the other job's file; ("exit", code); ("sigkill",); ("alloc", mb); ("mark", dir, name, seconds) writes
    its pid to dir/started-<name> then sleeps;
    ("two_arg",)."""
    kind, *args = spec
    if kind == "value":
        return args[0] * 10
    if kind == "raise":
        raise ValueError(args[0])
    if kind == "meet":  # only finishes when the other job runs at the same time
        directory, me, other = Path(args[0]), args[1], args[2]
        (directory / me).touch()
        deadline = time.monotonic() + 30
        while not (directory / other).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{other} never ran alongside {me}")
            time.sleep(0.02)
        return me
    if kind == "exit":
        os._exit(args[0])
    if kind == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)
    if kind == "alloc":
        return len(bytearray(args[0] * 1024 * 1024))
    if kind == "mark":
        directory, name, seconds = Path(args[0]), args[1], args[2]
        (directory / f"started-{name}").write_text(str(os.getpid()))
        time.sleep(seconds)
        return name
    if kind == "two_arg":
        raise TwoArgError("build", "no compiler")
    raise AssertionError(f"unknown job {spec!r}")
