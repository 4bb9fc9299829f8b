"""A Session as a conversation (what the TUI drives): follow-ups, interruption mid-command and a
correction, /undo, /compact, /model, and resuming a recorded conversation."""

from __future__ import annotations

import asyncio

from agent import events as ev
from agent.config import Settings
from agent.session import Session, close_dangling_calls
from agent.testing.scripted_model import ScriptedModel
from agent.trajectory import read_trajectory
from tests.support import FIX, call, make_repo, turn


def conversation(tmp_path, turns, **settings):
    repo = make_repo(tmp_path / "repo")
    model = ScriptedModel(turns)
    seen: list[ev.Event] = []
    s = Session(
        Settings(model="scripted", repo_map_tokens=0, **settings),
        repo,
        "",
        model=model,
        subscribers=[seen.append],
        trajectory_path=tmp_path / "t.jsonl",
    )
    return s, model, seen, repo


async def test_follow_up_continues_the_same_history(tmp_path):
    s, model, seen, _ = conversation(
        tmp_path,
        [turn(content="It subtracts."), turn(call("str_replace_editor", FIX)), turn(content="Fixed.")],
    )
    first = await s.send("why does add fail?")
    assert first.reason == "answered" and s.task == "why does add fail?"
    second = await s.send("then fix it")
    assert second.reason == "answered" and second.steps == 2
    assert "+    return a + b" in second.diff
    last_request = model.requests[-1]
    assert [m["role"] for m in last_request][:3] == ["system", "user", "assistant"]
    assert {"role": "user", "content": "then fix it"} in last_request
    assert [e.text for e in seen if isinstance(e, ev.UserMessage)] == ["then fix it"]
    await s.close()
    records = read_trajectory(tmp_path / "t.jsonl")
    assert records[0]["type"] == "header" and records[-1]["type"] == "result"
    assert sum(r["type"] == "run_finished" for r in records) == 2


async def test_interrupt_a_running_command_then_correct_course(tmp_path):
    s, model, seen, repo = conversation(
        tmp_path,
        [
            turn(call("execute_bash", {"command": "sleep 30"}, "c1")),
            turn(call("str_replace_editor", FIX, "c2")),
            turn(call("finish", {"message": "fixed"})),
        ],
    )
    task = asyncio.ensure_future(s.send("fix the bug"))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if any(isinstance(e, ev.ToolCallStarted) for e in seen):
            break
    await asyncio.sleep(0.2)
    assert s.busy and s.interrupt()
    first = await asyncio.wait_for(task, 10)
    assert first.reason == "interrupted" and not s.busy
    second = await s.send("skip the sleep, just fix add()")
    assert second.reason == "finished"
    # The interrupted call got an answer, so the provider accepts the history.
    request = model.requests[1]
    tool_msgs = [m for m in request if m.get("role") == "tool"]
    assert tool_msgs == [
        {"role": "tool", "tool_call_id": "c1", "content": "Not run: interrupted by the user."}
    ]
    assert request[-1] == {"role": "user", "content": "skip the sleep, just fix add()"}
    await s.close()


async def test_undo_last_goes_back_one_change_at_a_time(tmp_path):
    s, model, _, repo = conversation(
        tmp_path,
        [
            turn(call("str_replace_editor", FIX)),
            turn(
                call("str_replace_editor", {"command": "create", "path": "extra.py", "file_text": "x = 1\n"})
            ),
            turn(content="done"),
            turn(content="ok"),
        ],
    )
    await s.send("fix it and add extra.py")
    ops = repo / "calc" / "ops.py"
    assert (repo / "extra.py").exists() and "a + b" in ops.read_text()
    report = s.undo_last()
    assert report is not None and "extra.py" in report.deleted
    assert "a + b" in ops.read_text()
    report = s.undo_last()
    assert report is not None and "a - b" in ops.read_text()
    assert s.undo_last() is None  # nothing older
    await s.send("what happened?")
    told = [m["content"] for m in model.requests[-1] if m["role"] == "user"]
    assert any("undid your change 'create extra.py'" in t for t in told)
    await s.close()


async def test_compact_and_switch_model(tmp_path):
    s, model, seen, _ = conversation(
        tmp_path, [turn(content="hi"), turn(content="summary of the work")], base_url="http://127.0.0.1:9/v1"
    )
    await s.send("hello")
    await s.compact()
    assert any(isinstance(e, ev.Notice) and e.message.startswith("context:") for e in seen)
    assert model.requests[-1][-1]["role"] == "user"  # the summary request
    s.set_model("qwen3-coder-plus")
    assert s.model.name == "qwen3-coder-plus" and s.loop.model is s.model
    await s.close()


async def test_resume_continues_a_recorded_conversation(tmp_path):
    s, _, _, repo = conversation(
        tmp_path, [turn(call("str_replace_editor", FIX, "c1")), turn(content="fixed")]
    )
    await s.send("fix add")
    await s.close()
    records = read_trajectory(tmp_path / "t.jsonl")

    model = ScriptedModel([turn(content="it was a - b")])
    resumed = Session(
        Settings(model="scripted", repo_map_tokens=0),
        repo,
        "",
        model=model,
        trajectory_path=tmp_path / "t.jsonl",
    )
    shown = resumed.resume_from(records)
    assert any(isinstance(e, ev.AssistantMessage) for e in shown)
    assert resumed.run_id == records[0]["run_id"]
    done = await resumed.send("what was wrong?")
    assert done.reason == "answered"
    history = model.requests[0]
    assert [m["role"] for m in history] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert history[3]["tool_call_id"] == "c1"
    assert "+    return a + b" in done.diff  # the diff still starts where the run started
    await resumed.close()
    again = read_trajectory(tmp_path / "t.jsonl")
    assert sum(r["type"] == "header" for r in again) == 1


def test_close_dangling_calls():
    msgs = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a"}, {"id": "b"}]},
        {"role": "tool", "tool_call_id": "a", "content": "ok"},
    ]
    fixed = close_dangling_calls(msgs)
    assert fixed[-1] == {"role": "tool", "tool_call_id": "b", "content": "Not run: interrupted by the user."}
    assert close_dangling_calls(fixed) == fixed
    assert close_dangling_calls([]) == []
