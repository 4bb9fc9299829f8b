"""`luban inspect`: the viewer on a trajectory written by a real Session run (scripted model, real
tools, real git repository), on damaged and huge trajectories, and its errors."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from agent import events as ev
from agent.config import Settings
from agent.session import Session
from agent.testing.scripted_model import ScriptedModel
from agent.trajectory import read_trajectory
from tests.support import FIX, call, make_repo, turn
from tests.tui import screen_text
from tui.inspect import InspectApp, StepList, load_trajectory, run_inspect
from tui.widgets.tool_card import ToolCard
from tui.widgets.transcript import Transcript

SCRIPT = [
    turn(
        call(
            "todo_write",
            {
                "todos": [
                    {"content": "reproduce", "status": "in_progress"},
                    {"content": "fix", "status": "pending"},
                ]
            },
            "t0",
        ),
        content="Planning first.",
        reasoning="The add function looks wrong.",
    ),
    turn(call("execute_bash", {"command": "grep -n 'return' calc/ops.py"}, "b1")),
    turn(call("str_replace_editor", {**FIX, "old_str": "no such text"}, "e2"), content="Trying a fix."),
    turn(call("str_replace_editor", FIX, "e3")),
    turn(call("finish", {"message": "add() subtracted; it adds now."}, "f4")),
]


@pytest.fixture(scope="module")
def trajectory(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("inspect")
    repo = make_repo(tmp / "repo")
    path = tmp / "run.jsonl"
    session = Session(
        Settings(model="scripted"),
        repo,
        "fix the add function",
        model=ScriptedModel(SCRIPT),
        trajectory_path=path,
    )
    outcome = asyncio.run(session.run())
    assert outcome.finished.reason == "finished"
    return path


async def shown(app: InspectApp, pilot) -> str:
    await app.query_one(Transcript).wait_idle()
    await pilot.pause()
    return screen_text(app)


async def test_steps_navigation_and_quit(trajectory):
    records = read_trajectory(trajectory)
    steps = [r for r in records if r["type"] == "step_started"]
    assert len(steps) == 5
    app = InspectApp(trajectory)
    async with app.run_test(size=(110, 40)) as pilot:
        screen = await shown(app, pilot)
        assert len(app.entries) == 5 and app.query_one(StepList).count == 5
        assert [e.step for e in app.entries] == [1, 2, 3, 4, 5]
        # header: task, model, run id, result
        assert "Task: fix the add function" in screen and "scripted" in screen
        run_id = records[0]["run_id"]
        assert f"run {run_id}" in screen and "✔ finished · exit 0 · 5 steps" in screen
        # the list: numbers, tools, the failed edit marked
        assert "   1   todo_write" in screen and "   3 ✗ str_replace_editor" in screen
        # step 1 with the run header, the reasoning (open in the viewer) and the plan
        assert app.current == 0 and "step 1 · 1 of 5" in screen
        assert "Planning first." in screen and "The add function looks wrong." in screen
        assert "▸ reproduce" in screen

        await pilot.press("n")
        screen = await shown(app, pilot)
        assert app.current == 1 and "step 2 · 2 of 5" in screen
        assert "execute_bash  grep -n 'return' calc/ops.py" in screen and "return a - b" in screen
        assert "Planning first." not in screen  # one step at a time

        await pilot.press("n")
        screen = await shown(app, pilot)
        card = app.query_one(ToolCard)
        assert app.current == 2 and card.is_error and not card.collapsed
        assert (
            "✗ str_replace_editor  str_replace calc/ops.py" in screen and "did not appear verbatim" in screen
        )

        await pilot.press("G")
        screen = await shown(app, pilot)
        assert app.current == 4 and "step 5 · 5 of 5" in screen
        assert "✔ finished: add() subtracted; it adds now." in screen
        assert "+    return a + b" in screen  # the run's diff

        await pilot.press("p")
        screen = await shown(app, pilot)
        assert app.current == 3 and "+    return a + b" in screen and "✔ str_replace_editor" in screen

        await pilot.press("g")
        screen = await shown(app, pilot)
        assert app.current == 0 and "Planning first." in screen
        await pilot.press("p")  # already at the first step
        assert app.current == 0

        # the list: arrows move, Enter shows
        await pilot.press("down", "down")
        await pilot.press("enter")
        screen = await shown(app, pilot)
        assert app.current == 2 and "step 3 · 3 of 5" in screen

        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


async def test_truncated_trajectory_with_malformed_lines_still_opens(trajectory, tmp_path):
    lines = trajectory.read_text().splitlines()
    # an interrupted run: no result line, cut in the middle of step 4, one damaged line
    cut = next(
        i
        for i, line in enumerate(lines)
        if json.loads(line) == {**json.loads(line), "type": "step_started", "step": 4}
    )
    damaged = [*lines[:3], '{"type": "tool_call_fi', *lines[3 : cut + 2], '{"type": "mystery"}']
    path = tmp_path / "cut.jsonl"
    path.write_text("\n".join(damaged) + "\n")
    loaded = load_trajectory(path)
    assert loaded.result is None and loaded.malformed == 2 and len(loaded.entries) == 4
    app = InspectApp(path)
    async with app.run_test(size=(110, 30)) as pilot:
        screen = await shown(app, pilot)
        assert "no result line" in screen and "2 malformed lines skipped" in screen
        await pilot.press("G")
        screen = await shown(app, pilot)
        assert app.current == 3 and "(the trajectory ends here: it has no result line)" in screen


async def test_huge_trajectory_opens_fast_and_mounts_one_step(tmp_path):
    path = tmp_path / "huge.jsonl"
    n = 5000
    with path.open("w") as fh:
        fh.write(
            json.dumps(
                {
                    "type": "header",
                    "format": "luban-trajectory",
                    "version": 1,
                    "run_id": "huge",
                    "task": "t",
                    "model": "m",
                    "repo": "/r",
                }
            )
            + "\n"
        )
        for i in range(1, n + 1):
            args = json.dumps({"command": f"echo {i}"})
            for e in (
                ev.StepStarted(step=i, ts=i),
                ev.AssistantMessage(
                    step=i,
                    content=f"step {i} text",
                    tool_calls=[ev.ToolCallInfo(id=f"c{i}", name="execute_bash", arguments=args)],
                ),
                ev.ToolCallStarted(step=i, call_id=f"c{i}", name="execute_bash", arguments=args),
                ev.ToolCallFinished(
                    step=i,
                    call_id=f"c{i}",
                    name="execute_bash",
                    output=f"{i}\n[exit code: 0]",
                    data={"exit_code": 0},
                ),
                ev.UsageUpdate(step=i, cost=0.001),
            ):
                fh.write(e.model_dump_json() + "\n")
    started = time.perf_counter()
    app = InspectApp(path)
    async with app.run_test(size=(100, 30)) as pilot:
        await shown(app, pilot)
        opened = time.perf_counter() - started
        assert len(app.entries) == n and opened < 5, opened
        await pilot.press("G")
        screen = await shown(app, pilot)
        assert app.current == n - 1 and f"step {n} text" in screen and f"{n} · {n} of {n}" in screen
        assert len(app.query(ToolCard)) == 1 and len(app.query_one(Transcript).blocks) <= 3
        assert f"{n:>4}   execute_bash" in screen  # the list scrolled to the end


def test_run_inspect_errors_without_starting_the_app(tmp_path, capsys, monkeypatch):
    started = []
    monkeypatch.setattr(InspectApp, "run", lambda self, *a, **k: started.append(self))

    assert run_inspect(tmp_path / "nope.jsonl") == 2
    err = capsys.readouterr().err
    assert "luban inspect:" in err and "nope.jsonl: no such file" in err

    assert run_inspect(tmp_path) == 2
    assert "is a directory" in capsys.readouterr().err

    (tmp_path / "empty.jsonl").write_text("")
    assert run_inspect(tmp_path / "empty.jsonl") == 2
    assert "not a Luban trajectory (it is empty)" in capsys.readouterr().err

    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    assert run_inspect(tmp_path / "notes.txt") == 2
    assert "not a Luban trajectory" in capsys.readouterr().err

    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    assert run_inspect(tmp_path / "bin.jsonl") == 2
    assert started == []


def test_run_inspect_starts_the_viewer_on_a_trajectory(trajectory, monkeypatch):
    started = []
    monkeypatch.setattr(InspectApp, "run", lambda self, *a, **k: started.append(self))
    assert run_inspect(trajectory) == 0
    (app,) = started
    assert app.path == trajectory and len(app.entries) == 5
