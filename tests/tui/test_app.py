"""The live app, driven with Textual's Pilot against the real Session: the scripted
OpenAI-compatible server over HTTP where the client matters (streaming, a dead server), the
in-process ScriptedModel where it does not."""

from __future__ import annotations

import io
import json
import re
import socket
import time

import pytest
from rich.console import Console

from agent import events as ev
from agent.config import Settings
from agent.testing.scripted_model import ScriptedModel
from agent.trajectory import read_trajectory
from tests.support import FIX, FIX_SCRIPT, call, make_repo, pytest_passes, turn
from tui.app import INTERRUPTED_NOTE, LubanApp
from tui.widgets.approval import ApprovalScreen
from tui.widgets.prompt import PromptHistory
from tui.widgets.slash import COMMANDS

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def luban_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("LUBAN_HOME", str(home))
    monkeypatch.setenv("LUBAN_CONFIG", str(home / "config.toml"))
    return home


def http_settings(server, **extra) -> Settings:
    return Settings(
        model="scripted",
        base_url=server.base_url,
        repo_map_tokens=0,
        max_retries=0,
        retry_base_delay=0.01,
        **extra,
    )


def local_settings(**extra) -> Settings:
    return Settings(model="scripted", repo_map_tokens=0, **extra)


def screen_text(app) -> str:
    """The screen as plain text (what a user sees), modal included."""
    width, height = app.size
    console = Console(
        width=width, height=height, file=io.StringIO(), record=True, force_terminal=True, legacy_windows=False
    )
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)


async def wait_for(pilot, condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen_text(pilot.app)}")
        await pilot.pause(0.02)


async def wait_shown(pilot, text: str, timeout: float = 15.0) -> None:
    await wait_for(pilot, lambda: text in screen_text(pilot.app), repr(text), timeout)


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press("ctrl+j" if ch == "\n" else ch)


async def send(pilot, text: str) -> None:
    """Put `text` in the prompt and press Enter (typing key by key is tested on its own)."""
    pilot.app.prompt.load_text(text)
    pilot.app.prompt.move_cursor(pilot.app.prompt.document.end)
    await pilot.press("enter")


async def idle(pilot, timeout: float = 15.0) -> None:
    """The turn (and anything queued) is over and its events are on screen."""
    app = pilot.app
    await wait_for(pilot, lambda: not app.busy and not app._buffer, "the turn to end", timeout)
    await app.transcript.wait_idle()
    await pilot.pause()


def notes(app) -> str:
    from tui.widgets.transcript import NoteLine

    return "\n".join(str(block.render()) for block in app.transcript.blocks if isinstance(block, NoteLine))


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --------------------------------------------------------------------------- a whole run


async def test_a_task_streams_runs_tools_and_fixes_the_bug(tmp_path, scripted_server):
    script = [dict(t) for t in FIX_SCRIPT]
    script[0] = {
        **script[0],
        "content": "Let me reproduce the failure before touching anything.",
        "chunk_size": 3,
        "usage": {"prompt_tokens": 16_000, "completion_tokens": 40, "cached_tokens": 12_000},
    }
    server = scripted_server(script)
    repo = make_repo(tmp_path / "repo")
    app = LubanApp(http_settings(server, context_window=32_000, price_input=1.0, price_output=2.0), repo)
    async with app.run_test(size=SIZE) as pilot:
        assert app.prompt.has_focus
        assert "type a task and press Enter" in screen_text(app)
        await send(pilot, "fix the failing test")
        await idle(pilot, timeout=30)
        screen = screen_text(app)
        users = [b for b in app.transcript.blocks if type(b).__name__ == "UserBlock"]
        assert [str(b.render()) for b in users] == ["fix the failing test"]
        assert any("Let me reproduce the failure" in b.markdown.text for b in app.transcript._steps.values())
        assert "str_replace_editor" in screen and "run_tests" in screen and "✔ finished" in screen
        assert pytest_passes(repo)
        status = app.status._shown
        assert "ready" in status and "scripted" in status and "step 5" in status
        assert re.search(r"tokens [\d.]+k in / \d+ out / 12\.0k cached · \$0\.0\d+ · ctx \d+%", status), (
            status
        )
        # the side panel: the plan and the changed file
        assert [t["content"] for t in app.side.todos] == ["reproduce", "fix"]
        await wait_for(pilot, lambda: "calc/ops.py" in app.side.files, "the files panel")
        assert app.side.files["calc/ops.py"].added == 1
        assert "▸ reproduce" in screen and "calc/ops.py" in screen_text(app)


async def test_context_share_in_the_status_bar(tmp_path, scripted_server):
    server = scripted_server(
        [turn(content="hello", usage={"prompt_tokens": 16_000, "completion_tokens": 3, "cached_tokens": 0})]
    )
    app = LubanApp(http_settings(server, context_window=32_000), make_repo(tmp_path / "repo"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        await idle(pilot)
        assert "ctx 50%" in app.status._shown
        assert "tokens 16.0k in / 3 out / 0 cached" in app.status._shown


# --------------------------------------------------------------------------- interrupt, queue


async def test_esc_interrupts_a_long_command_and_a_correction_continues(tmp_path, scripted_server):
    server = scripted_server(
        [
            turn(call("execute_bash", {"command": "sleep 30"}, "c1")),
            turn(call("str_replace_editor", FIX, "c2")),
            turn(call("finish", {"message": "fixed"}, "c3")),
        ]
    )
    repo = make_repo(tmp_path / "repo")
    app = LubanApp(http_settings(server, approval="full-auto"), repo)
    async with app.run_test(size=SIZE) as pilot:
        seen: list[ev.Event] = []
        app.session.subscribe(seen.append)
        await send(pilot, "fix the bug")
        await wait_for(pilot, lambda: any(isinstance(e, ev.ToolCallStarted) for e in seen), "the command")
        await wait_for(pilot, lambda: app.status.state.busy_since is not None, "busy")
        assert "working" in app.status._shown
        # slash commands that need an idle session say so
        await send(pilot, "/undo")
        await wait_for(
            pilot, lambda: "wait for the run to finish or press Esc" in notes(app), "the busy note"
        )
        t0 = time.monotonic()
        await pilot.press("escape")
        await idle(pilot)
        assert time.monotonic() - t0 < 10
        assert INTERRUPTED_NOTE in notes(app)
        assert app.session.last_finished.reason == "interrupted"
        await send(pilot, "skip the sleep, just fix add()")
        await idle(pilot)
        assert app.session.last_finished.reason == "finished"
        assert pytest_passes(repo)
    history = server.requests[1]["body"]["messages"]
    assert [m for m in history if m["role"] == "tool"] == [
        {"role": "tool", "tool_call_id": "c1", "content": "Not run: interrupted by the user."}
    ]
    assert history[-1] == {"role": "user", "content": "skip the sleep, just fix add()"}


async def test_enter_while_busy_queues_the_message(tmp_path, scripted_server):
    server = scripted_server([turn(content="one", latency=0.5), turn(content="two")])
    app = LubanApp(http_settings(server), make_repo(tmp_path / "repo"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        await wait_for(pilot, lambda: app.busy, "busy")
        await send(pilot, "second")
        assert "queued" in notes(app) and "1 queued" in app.status.render_text().plain
        await wait_for(pilot, lambda: server.served == 2, "the queued message")
        await idle(pilot)
    assert server.requests[1]["body"]["messages"][-1] == {"role": "user", "content": "second"}


# --------------------------------------------------------------------------- approvals


async def answer_modal(pilot, *keys: str) -> ApprovalScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval modal")
    screen = app.screen
    for key in keys:
        await pilot.press(key)
    await wait_for(pilot, lambda: app.screen is not screen, "the modal to close")
    return screen


async def test_approval_modal_once_always_deny_and_deny_with_a_message(tmp_path, scripted_server):
    server = scripted_server(
        [
            turn(call("execute_bash", {"command": "echo one > one.txt"}, "c1")),
            turn(call("execute_bash", {"command": "echo two > two.txt"}, "c2")),
            turn(call("execute_bash", {"command": "echo three > three.txt"}, "c3")),
            turn(call("execute_bash", {"command": "touch four.txt"}, "c4")),
            turn(call("execute_bash", {"command": "rm one.txt"}, "c5")),
            turn(call("execute_bash", {"command": "rm two.txt"}, "c6")),
            turn(content="done"),
        ]
    )
    repo = make_repo(tmp_path / "repo")
    app = LubanApp(http_settings(server, approval="auto-edit"), repo)
    async with app.run_test(size=SIZE) as pilot:
        seen: list[ev.Event] = []
        app.session.subscribe(seen.append)
        await send(pilot, "make some files")
        # once
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval modal")
        text = screen_text(app)
        assert "echo one > one.txt" in text and "commands starting with echo" in text
        await answer_modal(pilot, "y")
        # always: the next `echo` runs without asking
        await answer_modal(pilot, "a")
        # deny
        await answer_modal(pilot, "n")
        # deny with a message
        await answer_modal(pilot, "m", *"use git rm instead", "enter")
        # Esc denies
        await answer_modal(pilot, "escape")
        await idle(pilot)
        assert app.session.last_finished.reason == "answered"
    asked = [e.summary for e in seen if isinstance(e, ev.ApprovalRequested)]
    assert len(asked) == 5 and not any("three" in s for s in asked)
    assert (repo / "one.txt").exists() and (repo / "two.txt").exists() and (repo / "three.txt").exists()
    assert not (repo / "four.txt").exists()
    tool_output = {
        m["tool_call_id"]: m["content"]
        for m in server.requests[-1]["body"]["messages"]
        if m["role"] == "tool"
    }
    assert "[exit code: 0]" in tool_output["c1"] and "[exit code: 0]" in tool_output["c3"]
    assert tool_output["c4"].startswith("The user refused the call")
    assert "Their message: use git rm instead" in tool_output["c5"]
    assert tool_output["c6"].startswith("The user refused the call")


# --------------------------------------------------------------------------- the prompt


async def test_prompt_history_and_multi_line_input(tmp_path, luban_home):
    model = ScriptedModel([turn(content="a"), turn(content="b"), turn(content="c")])
    app = LubanApp(local_settings(), make_repo(tmp_path / "repo"), model=model)
    async with app.run_test(size=SIZE) as pilot:
        prompt = app.prompt
        await send(pilot, "first")
        await idle(pilot)
        await send(pilot, "second")
        await idle(pilot)
        await type_text(pilot, "draft")
        await pilot.press("up")
        assert prompt.text == "second"
        await pilot.press("up")
        assert prompt.text == "first"
        await pilot.press("up")
        assert prompt.text == "first"
        await pilot.press("down")
        assert prompt.text == "second"
        await pilot.press("down")
        assert prompt.text == "draft"
        prompt.load_text("")
        await type_text(pilot, "line one")
        await pilot.press("ctrl+j")
        await type_text(pilot, "line two")
        assert prompt.text == "line one\nline two" and prompt.document.line_count == 2
        await pilot.press("up")  # on the last line of two: moves the cursor, not the history
        assert prompt.text == "line one\nline two" and prompt.cursor_location[0] == 0
        await pilot.press("enter")
        await idle(pilot)
    assert model.requests[-1][-1] == {"role": "user", "content": "line one\nline two"}
    # persisted per user, and read back by the next app
    saved = PromptHistory(luban_home / "prompt_history.jsonl")
    assert saved.entries == ["first", "second", "line one\nline two"]


def test_prompt_history_is_bounded_and_tolerates_a_corrupt_file(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(b'not json\n{"text": "ok"}\n[1, 2]\n{"text": 3}\n\xff\xfe\n{"text": "fine"}\n{"tex')
    history = PromptHistory(path, limit=3)
    assert history.entries == ["ok", "fine"]
    for i in range(10):
        history.add(f"m{i}")
    assert history.entries == ["m7", "m8", "m9"]
    assert len(path.read_text().splitlines()) <= 6
    assert PromptHistory(path, limit=3).entries == ["m7", "m8", "m9"]
    history.add("m9")  # a repeat of the last entry is not stored twice
    assert history.entries == ["m7", "m8", "m9"]
    PromptHistory(tmp_path / "missing" / "h.jsonl").add("x")  # the directory is created


async def test_slash_completion_lists_filters_and_completes(tmp_path):
    app = LubanApp(local_settings(), make_repo(tmp_path / "repo"), model=ScriptedModel([]))
    async with app.run_test(size=SIZE) as pilot:
        menu = app.menu
        assert not menu.is_open
        await type_text(pilot, "/")
        assert menu.is_open and menu.option_count == len(COMMANDS)
        assert "/undo" in screen_text(app)
        await type_text(pilot, "c")
        assert [c.name for c in menu.commands] == ["compact", "clear"]
        await pilot.press("down")
        assert menu.current().name == "clear"
        await pilot.press("tab")
        assert app.prompt.text == "/clear"
        await pilot.press("escape")
        assert not menu.is_open
        app.prompt.load_text("")
        await type_text(pilot, "/mo")
        await pilot.press("enter")  # a command with an argument completes and waits
        assert app.prompt.text == "/model " and not menu.is_open
        await pilot.press("enter")
        await wait_for(pilot, lambda: "model: scripted" in notes(app), "the /model note")
        app.prompt.load_text("")
        await type_text(pilot, "/he")
        await pilot.press("enter")  # a command without arguments runs
        await wait_for(pilot, lambda: "Commands:" in notes(app), "/help")
        assert "Ctrl+J" in notes(app) and "/compact" in notes(app)
        await send(pilot, "/frobnicate")
        await wait_for(pilot, lambda: "unknown command /frobnicate" in notes(app), "the unknown-command note")
        await send(pilot, "/etc/passwd is a path, not a command")
        await idle(pilot)  # sent to the model as a message (which has no script left: an error)
        assert app.session.last_finished.reason == "model_error"


# --------------------------------------------------------------------------- slash commands


async def test_undo_diff_compact_model_clear_and_quit(tmp_path):
    model = ScriptedModel(
        [
            turn(call("str_replace_editor", FIX, "c1")),
            turn(content="fixed"),
            turn(content="summary of the work so far"),  # /compact
        ]
    )
    repo = make_repo(tmp_path / "repo")
    ops = repo / "calc" / "ops.py"
    app = LubanApp(local_settings(base_url="http://127.0.0.1:9/v1"), repo, model=model)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "fix add")
        await idle(pilot)
        assert "a + b" in ops.read_text()
        # Enter on a file of the side panel shows its diff
        await wait_for(pilot, lambda: "calc/ops.py" in app.side.files, "the files panel")
        files = app.side.query_one("#files")
        files.focus()
        files.highlighted = 0
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: [b.diff for b in app.transcript.blocks if type(b).__name__ == "DiffBlock"],
            "the diff",
        )
        assert app.prompt.has_focus
        await send(pilot, "/diff")
        await wait_for(pilot, lambda: "changes since the conversation started" in screen_text(app), "/diff")
        assert "+    return a + b" in screen_text(app)
        await send(pilot, "/compact")
        await wait_for(pilot, lambda: "context:" in notes(app), "/compact")
        await idle(pilot)
        assert model.requests[-1][-1]["role"] == "user"  # the summary request
        await send(pilot, "/undo")
        await wait_for(pilot, lambda: "undone" in notes(app), "/undo")
        assert "a - b" in ops.read_text() and "restored: calc/ops.py" in notes(app)
        await send(pilot, "/undo")
        await wait_for(pilot, lambda: "nothing to undo" in notes(app), "nothing to undo")
        await send(pilot, "/model qwen3-coder-plus")
        await wait_for(pilot, lambda: "qwen3-coder-plus from the next call" in notes(app), "/model")
        assert app.session.model.name == "qwen3-coder-plus" and "qwen3-coder-plus" in app.status._shown
        await send(pilot, "/model two words")
        await wait_for(pilot, lambda: "takes one model id" in notes(app), "the /model usage note")
        await send(pilot, "/model replay:/nonexistent.jsonl")
        await wait_for(pilot, lambda: "cannot switch to replay:" in notes(app), "the /model error")
        assert "no such trajectory file" in notes(app)
        old = app.session
        trajectory = old.trajectory_path
        await send(pilot, "/clear")
        await wait_for(pilot, lambda: app.session is not old and app.session is not None, "/clear")
        assert old._closed and app.transcript.blocks[-1].render().plain == "new conversation"
        assert len(app.transcript.blocks) == 1 and not app.side.files and not app.side.todos
        assert app.session.model.name == "qwen3-coder-plus"
        await send(pilot, "/quit")
        await wait_for(pilot, lambda: app.return_code is not None, "the app to exit")
    assert app.return_code == 0
    records = read_trajectory(trajectory)
    assert records[-1]["type"] == "result"


async def test_ctrl_c_during_an_approval_quits_cleanly(tmp_path):
    model = ScriptedModel([turn(call("execute_bash", {"command": "touch x.txt"}, "c1"))])
    repo = make_repo(tmp_path / "repo")
    app = LubanApp(local_settings(approval="auto-edit"), repo, model=model)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "touch x")
        await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), "the approval modal")
        session = app.session
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: app.return_code is not None, "the app to exit")
    assert not (repo / "x.txt").exists()
    assert session._closed and session.last_finished.reason == "interrupted"
    assert read_trajectory(session.trajectory_path)[-1]["type"] == "result"


async def test_ctrl_d_on_an_empty_prompt_quits_and_closes_the_session(tmp_path):
    app = LubanApp(local_settings(), make_repo(tmp_path / "repo"), model=ScriptedModel([turn(content="hi")]))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        await idle(pilot)
        session = app.session
        await type_text(pilot, "x")
        await pilot.press("ctrl+d")  # not empty: deletes (nothing right of the cursor)
        assert app.return_code is None
        app.prompt.load_text("")
        await pilot.press("ctrl+d")
        await wait_for(pilot, lambda: app.return_code is not None, "the app to exit")
    assert session._closed
    assert read_trajectory(session.trajectory_path)[-1]["type"] == "result"


# --------------------------------------------------------------------------- errors


async def test_a_dead_server_is_a_note_and_the_app_stays_usable(tmp_path):
    app = LubanApp(
        Settings(model="scripted", base_url=closed_port_url(), repo_map_tokens=0, max_retries=0),
        make_repo(tmp_path / "repo"),
    )
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello?")
        await idle(pilot)
        assert "the model call failed" in notes(app) and "Check that the server is up" in notes(app)
        assert app.session.last_finished.reason == "model_error"
        await send(pilot, "/help")
        await wait_for(pilot, lambda: "Commands:" in notes(app), "/help after the error")
        assert app.prompt.has_focus and not app.busy


async def test_a_config_error_at_start_is_a_note_and_model_fixes_it(tmp_path, scripted_server):
    server = scripted_server([turn(content="hello from the server")])
    app = LubanApp(Settings(base_url=server.base_url, repo_map_tokens=0), make_repo(tmp_path / "repo"))
    async with app.run_test(size=SIZE) as pilot:
        assert app.session is None
        assert "no model configured" in notes(app)
        await send(pilot, "hi")  # still no model: the same explanation, no traceback
        await idle(pilot)
        assert notes(app).count("no model configured") == 2
        await send(pilot, "/model scripted")
        await wait_for(pilot, lambda: app.session is not None, "the session")
        await send(pilot, "hi")
        await idle(pilot)
        assert app.session.last_finished.reason == "answered"
        assert "hello from the server" in screen_text(app)


# --------------------------------------------------------------------------- start-up modes


async def test_task_at_start_then_resume_shows_the_old_run_and_continues(tmp_path):
    repo = make_repo(tmp_path / "repo")
    first = LubanApp(
        local_settings(),
        repo,
        task="fix add",
        model=ScriptedModel([turn(call("str_replace_editor", FIX, "c1")), turn(content="fixed it")]),
    )
    async with first.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: first.session.last_finished is not None, "the task given at start")
        await idle(pilot)
        trajectory = first.session.trajectory_path
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: first.return_code is not None, "quit")
    assert read_trajectory(trajectory)[-1]["type"] == "result"

    model = ScriptedModel([turn(content="it was a - b")])
    app = LubanApp(local_settings(), repo, resume=trajectory, model=model)
    async with app.run_test(size=SIZE) as pilot:
        await idle(pilot)
        screen = screen_text(app)
        assert "fix add" in screen and "str_replace_editor" in screen and "fixed it" in screen
        assert "resumed" in notes(app)
        assert app.session.run_id == read_trajectory(trajectory)[0]["run_id"]
        await send(pilot, "what was wrong?")
        await idle(pilot)
        assert "it was a - b" in screen_text(app)
    roles = [m["role"] for m in model.requests[0]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    records = read_trajectory(trajectory)
    assert sum(r["type"] == "header" for r in records) == 1


async def test_resume_of_a_file_that_is_not_a_trajectory_is_a_note(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"type": "notice", "message": "x"}) + "\n")
    app = LubanApp(local_settings(), make_repo(tmp_path / "repo"), resume=bad, model=ScriptedModel([]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "cannot resume" in notes(app) and "not a Luban trajectory" in notes(app)


async def test_streaming_keeps_the_prompt_responsive(tmp_path, scripted_server):
    text = "word " * 800
    server = scripted_server([turn(content=text, chunk_size=4, chunk_delay=0.0005)])
    app = LubanApp(http_settings(server), make_repo(tmp_path / "repo"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "talk")
        await wait_for(pilot, lambda: app.frame_times, "the first frame")
        await type_text(pilot, "abc")
        assert app.prompt.text == "abc"
        await idle(pilot, timeout=30)
        # a thousand deltas, a few dozen frames
        assert len(app.frame_times) < 500
        assert app.session.last_finished.reason == "answered"


def test_help_lists_every_command():
    from tui.widgets.slash import help_text, parse

    text = help_text()
    assert all(f"/{c.name}" in text for c in COMMANDS)
    assert parse("/model  qwen ") == ("model", "qwen")
    assert parse("//not a command") is None and parse("/usr/bin/env") is None and parse("hi") is None


def test_side_panel_diff_parsing():
    from tui.widgets.side_panel import changes_from_diff, split_diff

    diff = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1,2 @@\n-x\n+y\n+z\n"
        "diff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+n\n"
        "diff --git a/old.txt b/old.txt\ndeleted file mode 100644\n--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-o\n"
    )
    changes = changes_from_diff(diff)
    assert [(c.path, c.status, c.added, c.removed) for c in changes] == [
        ("a.py", "M", 2, 1),
        ("new.txt", "A", 1, 0),
        ("old.txt", "D", 0, 1),
    ]
    assert list(split_diff(diff)) == ["a.py", "new.txt", "old.txt"]
    assert split_diff("") == {}


def test_the_app_does_not_shadow_textual_internals():
    """Textual's App keeps private state in attributes (`_running`, `_loop`, `_flush`...): an
    attribute of ours with the same name breaks it in subtle ways."""
    import inspect

    from textual.app import App

    source = inspect.getsource(LubanApp)
    ours = set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=(?!=)", source))
    ours |= {name for name in vars(LubanApp) if not name.startswith("__")}
    textual = set(dir(App())) - {name for name in vars(LubanApp)} | set(vars(App()))
    allowed = {"CSS_PATH", "TITLE", "ENABLE_COMMAND_PALETTE", "BINDINGS"}
    # public hooks and actions are meant to be overridden; private methods are not
    overridden = {n for n in ours & set(dir(App)) if not n.startswith("_") and callable(getattr(App, n))}
    assert (ours & textual) - allowed - overridden == set()


async def test_up_on_a_wrapped_first_line_moves_the_cursor_before_the_history(tmp_path):
    app = LubanApp(local_settings(), make_repo(tmp_path / "repo"), model=ScriptedModel([]))
    async with app.run_test(size=(60, 30)) as pilot:
        app.history.add("older")
        prompt = app.prompt
        prompt.load_text("a long line " * 12)  # wraps over several rows
        prompt.move_cursor(prompt.document.end)
        await pilot.pause()
        assert prompt.wrapped_document.height > 1
        await pilot.press("up")
        assert prompt.text.startswith("a long line") and prompt.cursor_location[1] > 0
        for _ in range(prompt.wrapped_document.height):
            await pilot.press("up")
        assert prompt.text == "older"


async def test_a_command_printing_megabytes_keeps_the_prompt_responsive(tmp_path, scripted_server):
    command = (
        "python3 -c \"import sys\nfor i in range(60000): sys.stdout.write(f'line {i} ' + 'x' * 80 + '\\n')\""
    )
    server = scripted_server([turn(call("execute_bash", {"command": command}, "big")), turn(content="done")])
    app = LubanApp(http_settings(server, approval="full-auto"), make_repo(tmp_path / "repo"))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "print a lot")
        await wait_for(pilot, lambda: app.transcript.card("big") is not None, "the command's card")
        await type_text(pilot, "still typing")
        assert app.prompt.text == "still typing"
        await idle(pilot, timeout=60)
        assert app.session.last_finished.reason == "answered"
        card = app.transcript.card("big")
        assert card is not None and not card.running and card.exit_code == 0
        # ~5.4 MB printed; the card keeps what the model saw (head + tail), not megabytes.
        assert "line 59999" in card.output and len(card.output) < 100_000
        assert card.tail.chars <= card.max_output_chars and card.tail.hidden > 0  # live view capped
