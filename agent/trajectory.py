"""Trajectory files: a header line, then the run's events, then a result line, as JSONL.

The file is only ever appended to and flushed per event, so a crash or Ctrl-C keeps everything
up to that moment, and writing costs the same at step 800 as at step 1.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from agent.events import Event

FORMAT_VERSION = 1


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


class TrajectoryWriter:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def _line(self, text: str) -> None:
        self._fh.write(text)
        self._fh.write("\n")
        self._fh.flush()

    def header(self, **fields: Any) -> None:
        self._line(
            json.dumps({"type": "header", "format": "luban-trajectory", "version": FORMAT_VERSION, **fields})
        )

    def event(self, event: Event) -> None:
        if not event.ephemeral:
            self._line(event.model_dump_json())

    def result(self, **fields: Any) -> None:
        self._line(json.dumps({"type": "result", **fields}))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def read_trajectory(path: Path) -> list[dict[str, Any]]:
    records = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                records.append(json.loads(line))
    return records


def read_header(path: Path) -> dict[str, Any] | None:
    """The header of a trajectory file, or None when the file is not one."""
    try:
        with Path(path).open(encoding="utf-8") as fh:
            first = json.loads(fh.readline() or "null")
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if isinstance(first, dict) and first.get("format") == "luban-trajectory":
        return first
    return None


def find_runs(runs_dir: Path, repo: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Recorded runs, oldest first (run ids start with their start time), optionally only those
    of one repository."""
    found = []
    wanted = str(Path(repo).resolve()) if repo is not None else None
    for path in sorted(Path(runs_dir).glob("*.jsonl")):
        header = read_header(path)
        if header is not None and (wanted is None or header.get("repo") == wanted):
            found.append((path, header))
    return found
