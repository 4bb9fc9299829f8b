"""Helpers for end-to-end tests: real git repositories in temp dirs and the real `luban` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUBAN = [sys.executable, "-m", "agent.cli"]

BUGGY_FILES = {
    "calc/__init__.py": "",
    "calc/ops.py": 'def add(a, b):\n    """Return the sum of a and b."""\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n',
    "tests/test_ops.py": "from calc.ops import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n\n[tool.pytest.ini_options]\npythonpath = ["."]\n',
}

FIX = {
    "command": "str_replace",
    "path": "calc/ops.py",
    "old_str": "    return a - b",
    "new_str": "    return a + b",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def make_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or BUGGY_FILES).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    return root


def pytest_passes(root: Path) -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0


def call(name: str, args: dict[str, Any] | str, call_id: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "arguments": args}
    if call_id:
        c["id"] = call_id
    return c


def turn(*calls: dict[str, Any], content: str = "", **extra: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"content": content, **extra}
    if calls:
        t["tool_calls"] = list(calls)
    return t


FIX_SCRIPT = [
    turn(
        call(
            "todo_write",
            {
                "todos": [
                    {"content": "reproduce", "status": "in_progress"},
                    {"content": "fix", "status": "pending"},
                ]
            },
            "functions.todo_write:0",
        ),
        content="Planning.",
    ),
    turn(call("run_tests", {}, "functions.run_tests:1")),
    turn(call("str_replace_editor", FIX, "functions.str_replace_editor:2")),
    turn(call("run_tests", {}, "functions.run_tests:3")),
    turn(call("finish", {"message": "add() subtracted; it adds now. Tests pass."}, "functions.finish:4")),
]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


def luban_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUBAN_") and not k.endswith("_API_KEY")}
    env.update(
        {
            "LUBAN_HOME": str(home),
            "LUBAN_CONFIG": str(home / "config.toml"),
            "LUBAN_RETRY_BASE_DELAY": "0.01",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
    )
    env.update(extra)
    return env


def run_luban(
    args: list[str], home: Path, *, timeout: float = 120, cwd: Path | None = None, **env: str
) -> Run:
    proc = subprocess.run(
        [*LUBAN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=luban_env(home, **env),
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
