"""Where commands run. Tools never call ``subprocess`` themselves; they ask the environment, so a
sandbox (bubblewrap, docker) can replace the local process without touching any tool."""

from __future__ import annotations

import asyncio
import codecs
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass
class CommandResult:
    exit_code: int | None  # None when the command was killed (timeout or interrupt)
    output: str  # stdout and stderr interleaved, decoded leniently
    duration: float
    timed_out: bool = False
    interrupted: bool = False


class Environment(Protocol):
    root: Path

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        cwd: Path | None = None,
        on_output: Callable[[str], None] | None = None,
        max_output_bytes: int = 8_000_000,
    ) -> CommandResult: ...


class LocalEnvironment:
    """Runs `bash -c COMMAND` in its own process group so a timeout or Ctrl-C kills the whole tree."""

    def __init__(self, root: Path, extra_env: dict[str, str] | None = None):
        self.root = Path(root)
        self.extra_env = extra_env or {}

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Never let a command wait for a human: no pagers, no editors, no credential prompts.
        env.update(
            {
                "PAGER": "cat",
                "GIT_PAGER": "cat",
                "GIT_TERMINAL_PROMPT": "0",
                "GIT_EDITOR": "true",
                "EDITOR": "true",
                "PYTHONUNBUFFERED": "1",
                "TERM": "dumb",
                "NO_COLOR": "1",
            }
        )
        # Luban's own interpreter directory goes last on PATH: a repo with no Python of its own
        # still finds `python`/`pytest`, and a project's own tools always win.
        own_bin = os.path.dirname(sys.executable)
        if own_bin not in env.get("PATH", "").split(os.pathsep):
            env["PATH"] = env.get("PATH", "") + os.pathsep + own_bin
        env.update(self.extra_env)
        return env

    async def run(
        self,
        command: str,
        *,
        timeout: float,
        cwd: Path | None = None,
        on_output: Callable[[str], None] | None = None,
        max_output_bytes: int = 8_000_000,
    ) -> CommandResult:
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            cwd=str(cwd or self.root),
            env=self._env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        # Keep the head and the tail of huge outputs; the middle is dropped while reading so a
        # command printing gigabytes cannot exhaust memory.
        head = bytearray()
        tail = bytearray()
        dropped = 0
        half = max_output_bytes // 2

        # Live output is decoded incrementally so a character split across reads stays whole.
        live = codecs.getincrementaldecoder("utf-8")(errors="replace")

        async def pump() -> None:
            nonlocal dropped, tail
            assert proc.stdout is not None
            while True:
                chunk = await proc.stdout.read(65536)
                if not chunk:
                    return
                if on_output is not None:
                    text = live.decode(chunk)
                    if text:
                        on_output(text)
                if len(head) < half:
                    take = half - len(head)
                    head.extend(chunk[:take])
                    chunk = chunk[take:]
                if chunk:
                    tail.extend(chunk)
                    if len(tail) > half:
                        cut = len(tail) - half
                        dropped += cut
                        del tail[:cut]

        timed_out = interrupted = False
        try:
            await asyncio.wait_for(pump_and_wait(proc, pump), timeout=timeout)
        except TimeoutError:
            timed_out = True
            await kill_group(proc)
        except asyncio.CancelledError:
            interrupted = True
            await kill_group(proc)
            raise
        finally:
            if proc.returncode is None:
                await kill_group(proc)
        text = head.decode("utf-8", errors="replace")
        if dropped:
            text += f"\n[... {dropped} bytes of output dropped ...]\n"
        text += tail.decode("utf-8", errors="replace")
        return CommandResult(
            exit_code=None if (timed_out or interrupted) else proc.returncode,
            output=text,
            duration=time.monotonic() - start,
            timed_out=timed_out,
            interrupted=interrupted,
        )


async def pump_and_wait(proc: asyncio.subprocess.Process, pump: Callable) -> None:
    await pump()
    await proc.wait()


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the process group, then SIGKILL it if it lingers."""
    if proc.returncode is not None:
        return
    for sig, grace in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            await asyncio.wait_for(proc.wait(), timeout=grace)
            return
        except TimeoutError:
            continue
