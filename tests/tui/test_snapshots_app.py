"""Screenshots of the live app's main screens (pytest-textual-snapshot). Update them on purpose
with `pytest tests/tui/test_snapshots_app.py --snapshot-update` and look at the SVGs.

What varies from run to run is pinned: the repository is a temp dir named `repo` (only its name
is shown by the app itself); the run's header, durations and run id are normalised before they
reach the widgets; the prompt's cursor does not blink; the status bar's clock is frozen."""

from __future__ import annotations

import time

import pytest

from agent import events as ev
from agent.config import Settings
from agent.testing.scripted_model import ScriptedModel
from tests.support import FIX, call, make_repo, turn
from tui.app import LubanApp
from tui.widgets.approval import ApprovalScreen

SIZE = (110, 32)


@pytest.fixture(autouse=True)
def luban_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LUBAN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LUBAN_CONFIG", str(tmp_path / "home" / "config.toml"))


def pinned(e: ev.Event) -> ev.Event:
    if isinstance(e, ev.RunStarted):
        return e.model_copy(
            update={"repo": "/work/repo", "commit": "0123456789abcdef", "run_id": "run", "trajectory": None}
        )
    if isinstance(e, ev.ToolCallFinished | ev.CheckpointCreated):
        return e.model_copy(update={"duration": 0.0})
    if isinstance(e, ev.RunFinished):
        return e.model_copy(update={"duration": 0.0, "run_id": "20250101-000000-abcdef"})
    return e


def deterministic_app(tmp_path, turns, **settings) -> LubanApp:
    app = LubanApp(
        Settings(model="scripted", repo_map_tokens=0, **settings),
        make_repo(tmp_path / "repo"),
        model=ScriptedModel(turns),
    )
    buffer = app._on_event
    app._on_event = lambda e: buffer(pinned(e))  # the session subscribes it at mount
    return app


async def settle(pilot, condition=lambda: True, timeout: float = 15.0) -> None:
    app = pilot.app
    app.prompt.cursor_blink = False
    deadline = time.monotonic() + timeout
    while not condition() or app._buffer:
        assert time.monotonic() < deadline, "the app did not settle"
        await pilot.pause(0.02)
    await app.transcript.wait_idle()
    status = app.status
    status.clock = lambda: (status.state.busy_since or 0.0) + 3.0
    status.refresh_status()
    await pilot.pause()


def test_start_screen(snap_compare, tmp_path):
    async def run_before(pilot):
        await settle(pilot)

    assert snap_compare(deterministic_app(tmp_path, []), terminal_size=SIZE, run_before=run_before)


def test_after_a_short_run(snap_compare, tmp_path):
    turns = [
        turn(
            call(
                "todo_write",
                {
                    "todos": [
                        {"content": "find the bug", "status": "done"},
                        {"content": "fix add", "status": "in_progress"},
                    ]
                },
                "c1",
            ),
            content="The test expects `add(2, 3) == 5`; let me look.",
        ),
        turn(call("str_replace_editor", FIX, "c2")),
        turn(call("finish", {"message": "add() subtracted; it adds now."}, "c3")),
    ]
    app = deterministic_app(tmp_path, turns)

    async def run_before(pilot):
        app.prompt.load_text("make the failing test pass")
        await pilot.press("enter")
        await settle(
            pilot,
            lambda: not app.busy and "calc/ops.py" in app.side.files and app.side.files["calc/ops.py"].added,
        )
        app.prompt.load_text("thanks")  # something typed, not sent

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_approval_modal(snap_compare, tmp_path):
    turns = [
        turn(
            call("execute_bash", {"command": "pytest -q tests/test_ops.py"}, "c1"),
            content="Running the tests.",
        )
    ]
    app = deterministic_app(tmp_path, turns, approval="auto-edit")

    async def run_before(pilot):
        app.prompt.load_text("run the tests")
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, ApprovalScreen))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
