"""The real terminal UI in a real terminal: `luban` started in a detached tmux session against the
scripted server, driven with `tmux send-keys`, read with `tmux capture-pane`."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.trajectory import read_trajectory
from tests.support import FIX_SCRIPT, call, make_repo, pytest_passes, turn

LUBAN_BIN = Path(sys.executable).with_name("luban")

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.skipif(
        not LUBAN_BIN.exists(), reason=f"the luban command is not installed in {LUBAN_BIN.parent}"
    ),
]


def luban_command(repo: Path, base_url: str) -> list[str]:
    """The real CLI: `luban` with no subcommand opens the terminal UI."""
    return [str(LUBAN_BIN), "--repo", str(repo), "--model", "scripted", "--base-url", base_url]


class Tmux:
    def __init__(self, socket_name: str):
        self.socket = socket_name

    def run(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30, check=True
        ).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "luban")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear within {timeout}s; the screen:\n{screen}")

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "luban", "-l", text)

    def press(self, key: str) -> None:
        self.run("send-keys", "-t", "luban", key)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def test_luban_in_tmux_fixes_the_bug_and_quits(tmp_path, scripted_server):
    from tests.support import luban_env

    # `luban` asks before commands (auto-edit): the first call brings up the approval modal.
    server = scripted_server(
        [turn(call("execute_bash", {"command": "echo checked > checked.txt"}, "c0")), *FIX_SCRIPT]
    )
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    env = luban_env(home, TERM="xterm-256color", LUBAN_REPO_MAP_TOKENS="0", COLUMNS="120", LINES="40")
    env_args = [
        f"{k}={v}"
        for k, v in env.items()
        if k in {"PATH", "HOME", "LANG", "LC_ALL"}
        or k.startswith(("LUBAN_", "PYTHON", "TERM", "COLUMNS", "LINES"))
    ]
    command = " ".join(
        shlex.quote(a) for a in ["env", "-i", *env_args, *luban_command(repo, server.base_url)]
    )
    # The shell reports the exit code after the app has restored the terminal.
    shell = f"cd {shlex.quote(str(repo))} && {command}; echo LUBAN_EXIT=$?; sleep 60"
    tmux = Tmux(f"luban-test-{tmp_path.name}-{time.monotonic_ns()}")
    try:
        tmux.run("new-session", "-d", "-s", "luban", "-x", "120", "-y", "40", shell)
        tmux.wait_for("type a task and press Enter")
        tmux.type("fix the failing test")
        tmux.press("C-j")  # a new line, not Enter
        tmux.type("(it is in calc/ops.py)")
        tmux.wait_for("(it is in calc/ops.py)")
        assert server.served == 0
        tmux.press("Enter")
        tmux.wait_for("Approve? The agent wants to run a command")
        tmux.type("y")
        tmux.wait_for("✔ finished")
        screen = tmux.wait_for("Files changed (2)")  # the side panel: checked.txt and calc/ops.py
        assert "calc/ops.py" in screen
        tmux.wait_for("● ready")
        assert pytest_passes(repo) and (repo / "checked.txt").read_text() == "checked\n"
        tmux.type("/quit")
        tmux.press("Enter")
        screen = tmux.wait_for("LUBAN_EXIT=")
        assert "LUBAN_EXIT=0" in screen, screen
        assert "Traceback" not in screen
    finally:
        tmux.kill()
    task = server.requests[0]["body"]["messages"][1]["content"]
    assert "fix the failing test\n(it is in calc/ops.py)" in task
    runs = list((home / "runs").glob("*.jsonl"))
    assert len(runs) == 1 and read_trajectory(runs[0])[-1]["type"] == "result"


def test_luban_continue_in_tmux_reopens_the_last_headless_run(tmp_path, scripted_server):
    from tests.support import luban_env, run_luban

    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    first = scripted_server(FIX_SCRIPT)
    done = run_luban(
        [
            "exec",
            "fix the failing test",
            "--repo",
            str(repo),
            "--model",
            "scripted",
            "--base-url",
            first.base_url,
        ],
        home,
    )
    assert done.code == 0, done.stderr
    follow_up = scripted_server([turn(content="It was add(): it subtracted.")])
    env = luban_env(home, TERM="xterm-256color", LUBAN_REPO_MAP_TOKENS="0")
    env_args = [
        f"{k}={v}"
        for k, v in env.items()
        if k in {"PATH", "HOME", "LANG"} or k.startswith(("LUBAN_", "PYTHON", "TERM"))
    ]
    command = " ".join(
        shlex.quote(a)
        for a in ["env", "-i", *env_args, *luban_command(repo, follow_up.base_url), "--continue"]
    )
    tmux = Tmux(f"luban-test-{tmp_path.name}-{time.monotonic_ns()}")
    try:
        tmux.run(
            "new-session",
            "-d",
            "-s",
            "luban",
            "-x",
            "120",
            "-y",
            "40",
            f"{command}; echo LUBAN_EXIT=$?; sleep 60",
        )
        tmux.wait_for("add() subtracted")  # the recorded run's final message is shown again
        tmux.type("what was wrong?")
        tmux.press("Enter")
        tmux.wait_for("It was add(): it subtracted.")
        tmux.type("/quit")
        tmux.press("Enter")
        assert "LUBAN_EXIT=0" in tmux.wait_for("LUBAN_EXIT=")
    finally:
        tmux.kill()
    history = follow_up.requests[0]["body"]["messages"]
    assert history[-1] == {"role": "user", "content": "what was wrong?"}
    assert any(m.get("tool_calls") for m in history)  # the first run's calls are in the history
    runs = list((home / "runs").glob("*.jsonl"))
    assert len(runs) == 1  # the conversation went on in the same trajectory
