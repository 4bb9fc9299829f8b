"""Snapshots of `luban inspect` on a hand-written trajectory with fixed ids, times and paths, at a
fixed terminal size. Regenerate after an intended change of the look:
    .venv/bin/python -m pytest tests/tui/test_snapshots_transcript.py --snapshot-update
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent import events as ev
from tui.inspect import InspectApp
from tui.widgets.transcript import Transcript

SIZE = (100, 30)
T0 = 1_760_000_000.0
DIFF = (
    "diff --git a/textstats/wordfreq.py b/textstats/wordfreq.py\n"
    "--- a/textstats/wordfreq.py\n+++ b/textstats/wordfreq.py\n"
    "@@ -14,5 +14,5 @@ def count_words(text: str) -> dict[str, int]:\n"
    " def top_words(text: str, n: int = 3) -> list[str]:\n"
    '     """The n most common words, most common first; ties in alphabetical order."""\n'
    "-    ranked = sorted(count_words(text).items(), key=lambda kv: (kv[1], kv[0]))\n"
    "+    ranked = sorted(count_words(text).items(), key=lambda kv: (-kv[1], kv[0]))\n"
    "     return [word for word, _ in ranked[:n]]\n"
)
TODOS = [
    {"content": "Reproduce the failure with the tests", "status": "done"},
    {"content": "Fix the sort order of top_words", "status": "in_progress"},
    {"content": "Verify: all tests pass", "status": "pending"},
]


def events() -> list[ev.Event]:
    t = iter(T0 + i * 1.5 for i in range(1000))
    tests_args = json.dumps({"target": "tests/test_wordfreq.py"})
    edit_args = json.dumps(
        {
            "command": "str_replace",
            "path": "textstats/wordfreq.py",
            "old_str": "(kv[1], kv[0])",
            "new_str": "(-kv[1], kv[0])",
        }
    )
    return [
        ev.RunStarted(
            run_id="20251009-120000-abc123",
            task="The tests in tests/test_wordfreq.py fail. Fix it.",
            repo="/work/textstats",
            commit="5f3c2a1b9d8e7f6a",
            model="kimi-k2-instruct",
            ts=next(t),
        ),
        ev.StepStarted(step=1, ts=next(t)),
        ev.UsageUpdate(step=1, prompt_tokens=4200, completion_tokens=120, cost=0.0031, ts=next(t)),
        ev.AssistantMessage(
            step=1,
            content="I'll **reproduce** the failure first:\n\n- run the tests\n- read `top_words`",
            reasoning="The ranking probably sorts ascending by count.",
            tool_calls=[ev.ToolCallInfo(id="call_1", name="run_tests", arguments=tests_args)],
            ts=next(t),
        ),
        ev.ToolCallStarted(step=1, call_id="call_1", name="run_tests", arguments=tests_args, ts=next(t)),
        ev.ToolCallFinished(
            step=1,
            call_id="call_1",
            name="run_tests",
            output="FAILED: 2 failed, 2 passed (pytest, 0.4s)\nFailing tests:\n  tests/test_wordfreq.py::test_most_common_first\n"
            "  tests/test_wordfreq.py::test_ties_in_alphabetical_order\n\nCommand: python -m pytest -q tests/test_wordfreq.py",
            duration=0.42,
            data={"exit_code": 1, "passed": 2, "failed": 2, "status": "FAILED"},
            ts=next(t),
        ),
        ev.StepStarted(step=2, ts=next(t)),
        ev.UsageUpdate(step=2, prompt_tokens=5100, completion_tokens=90, cost=0.0036, ts=next(t)),
        ev.AssistantMessage(
            step=2,
            content="",
            tool_calls=[
                ev.ToolCallInfo(id="call_2", name="todo_write", arguments=json.dumps({"todos": TODOS})),
                ev.ToolCallInfo(id="call_3", name="str_replace_editor", arguments=edit_args),
            ],
            ts=next(t),
        ),
        ev.ToolCallStarted(
            step=2, call_id="call_2", name="todo_write", arguments=json.dumps({"todos": TODOS}), ts=next(t)
        ),
        ev.ToolCallFinished(
            step=2,
            call_id="call_2",
            name="todo_write",
            output="Plan updated (1/3 done)",
            duration=0.001,
            data={"todos": TODOS},
            ts=next(t),
        ),
        ev.ToolCallStarted(
            step=2, call_id="call_3", name="str_replace_editor", arguments=edit_args, ts=next(t)
        ),
        ev.CheckpointCreated(n=1, ref="refs/luban/x/1", label="edit textstats/wordfreq.py", ts=next(t)),
        ev.ToolCallFinished(
            step=2,
            call_id="call_3",
            name="str_replace_editor",
            output="The file textstats/wordfreq.py has been edited.",
            duration=0.012,
            data={"path": "textstats/wordfreq.py", "diff": DIFF},
            ts=next(t),
        ),
        ev.StepStarted(step=3, ts=next(t)),
        ev.UsageUpdate(step=3, prompt_tokens=5600, completion_tokens=60, cost=0.0039, ts=next(t)),
        ev.AssistantMessage(
            step=3,
            content="",
            tool_calls=[
                ev.ToolCallInfo(
                    id="call_4", name="execute_bash", arguments='{"command": "python -m pytest -q"}'
                )
            ],
            ts=next(t),
        ),
        ev.ToolCallStarted(
            step=3,
            call_id="call_4",
            name="execute_bash",
            arguments='{"command": "python -m pytest -q"}',
            ts=next(t),
        ),
        ev.ToolCallFinished(
            step=3,
            call_id="call_4",
            name="execute_bash",
            output="The command timed out after 120 s and its whole process group was killed.\nPartial output:\n....",
            is_error=True,
            duration=120.0,
            data={"exit_code": None, "timed_out": True},
            ts=next(t),
        ),
        ev.Notice(level="warning", message="the same error twice: try another way", ts=next(t)),
        ev.StepStarted(step=4, ts=next(t)),
        ev.UsageUpdate(step=4, prompt_tokens=5900, completion_tokens=40, cost=0.0041, ts=next(t)),
        ev.AssistantMessage(
            step=4,
            content="",
            tool_calls=[
                ev.ToolCallInfo(
                    id="call_5",
                    name="finish",
                    arguments='{"message": "top_words now ranks by descending count."}',
                )
            ],
            ts=next(t),
        ),
        ev.ToolCallStarted(
            step=4,
            call_id="call_5",
            name="finish",
            arguments='{"message": "top_words now ranks by descending count."}',
            ts=next(t),
        ),
        ev.ToolCallFinished(
            step=4,
            call_id="call_5",
            name="finish",
            output="top_words now ranks by descending count.",
            duration=0.0,
            ts=next(t),
        ),
        ev.RunFinished(
            reason="finished",
            message="top_words now ranks by descending count.",
            exit_code=0,
            steps=4,
            diff=DIFF,
            prompt_tokens=20800,
            completion_tokens=310,
            cost=0.0147,
            duration=131.2,
            run_id="20251009-120000-abc123",
            checkpoints=1,
            ts=next(t),
        ),
    ]


@pytest.fixture
def trajectory(tmp_path) -> Path:
    path = tmp_path / "20251009-120000-abc123.jsonl"
    lines = [
        json.dumps(
            {
                "type": "header",
                "format": "luban-trajectory",
                "version": 1,
                "run_id": "20251009-120000-abc123",
                "task": "The tests in tests/test_wordfreq.py fail. Fix it.",
                "repo": "/work/textstats",
                "commit": "5f3c2a1b9d8e7f6a",
                "model": "kimi-k2-instruct",
                "started_at": T0,
            }
        ),
        *(e.model_dump_json() for e in events()),
        json.dumps(
            {"type": "result", "reason": "finished", "exit_code": 0, "diff": DIFF, "steps": 4, "cost": 0.0147}
        ),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def before(*keys: str):
    async def run_before(pilot) -> None:
        if keys:
            await pilot.press(*keys)
        await pilot.app.query_one(Transcript).wait_idle()
        await pilot.pause()

    return run_before


def test_first_step(snap_compare, trajectory):
    assert snap_compare(InspectApp(trajectory), terminal_size=SIZE, run_before=before())


def test_edit_step_with_diff_and_plan(snap_compare, trajectory):
    assert snap_compare(InspectApp(trajectory), terminal_size=SIZE, run_before=before("n"))


def test_failed_call(snap_compare, trajectory):
    assert snap_compare(InspectApp(trajectory), terminal_size=SIZE, run_before=before("G", "p"))
