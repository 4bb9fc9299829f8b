"""The Session and its loop in-process, with the scripted model: edge cases of the loop that need
no HTTP, and the live event stream a front end subscribes to."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent import events as ev
from agent.config import ConfigError, Settings
from agent.session import Session
from agent.testing.scripted_model import ScriptedModel
from agent.trajectory import read_trajectory
from tests.support import FIX, call, make_repo, pytest_passes, turn
from tools.environment import LocalEnvironment


def session(tmp_path, turns, **settings) -> tuple[Session, ScriptedModel, list[ev.Event]]:
    repo = make_repo(tmp_path / "repo")
    model = ScriptedModel(turns)
    seen: list[ev.Event] = []
    s = Session(
        Settings(model="scripted", **settings),
        repo,
        "fix it",
        model=model,
        subscribers=[seen.append],
        trajectory_path=tmp_path / "t.jsonl",
    )
    return s, model, seen


async def test_empty_replies_get_a_nudge_then_end_the_run(tmp_path):
    s, model, _ = session(tmp_path, [turn(), turn(content="  "), turn(call("finish", {}))])
    out = await s.run()
    assert out.finished.reason == "finished"
    nudge = model.requests[1][-1]
    assert nudge["role"] == "user" and "empty" in nudge["content"]
    # no empty assistant message was put in the history: strict providers reject those
    assert not [m for m in model.requests[2] if m["role"] == "assistant"]

    s, model, _ = session(tmp_path / "b", [turn(), turn(), turn()])
    out = await s.run()
    assert out.finished.reason == "model_error" and out.finished.exit_code == 3
    assert "3 empty replies" in out.finished.message


async def test_calls_after_finish_are_answered_but_not_run(tmp_path):
    s, model, seen = session(
        tmp_path,
        [
            turn(
                call("finish", {"message": "done"}, "a"), call("execute_bash", {"command": "touch LATE"}, "b")
            )
        ],
    )
    out = await s.run()
    assert out.finished.reason == "finished" and not (s.repo / "LATE").exists()
    assert [e.name for e in seen if isinstance(e, ev.ToolCallStarted)] == ["finish"]


async def test_live_events_reach_subscribers_in_order(tmp_path):
    s, _, seen = session(
        tmp_path,
        [
            turn(call("execute_bash", {"command": "echo one; echo two"}), content="Let me look."),
            turn(call("str_replace_editor", FIX)),
            turn(call("finish", {"message": "ok"})),
        ],
    )
    out = await s.run()
    assert pytest_passes(s.repo)
    types = [e.type for e in seen]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert types[1:6] == ["step_started", "text_delta", "usage", "assistant_message", "tool_call_started"]
    live = "".join(e.text for e in seen if isinstance(e, ev.ToolOutputDelta))
    assert live == "one\ntwo\n"
    finished_edit = next(
        e for e in seen if isinstance(e, ev.ToolCallFinished) and e.name == "str_replace_editor"
    )
    assert "+    return a + b" in finished_edit.data["diff"]
    # ephemeral deltas are not in the trajectory; everything else is, in the same order
    recorded = [r["type"] for r in read_trajectory(out.trajectory)[1:-1]]
    assert recorded == [e.type for e in seen if not e.ephemeral]


async def test_cost_is_priced_with_cached_tokens(tmp_path):
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 100_000, "cached_tokens": 600_000}
    s, _, seen = session(
        tmp_path,
        [turn(call("finish", {}), usage=usage)],
        price_input=1.0,
        price_cached_input=0.1,
        price_output=5.0,
    )
    out = await s.run()
    # 400k uncached * $1/M + 600k cached * $0.1/M + 100k out * $5/M
    assert out.finished.cost == pytest.approx(0.4 + 0.06 + 0.5)
    (u,) = [e for e in seen if isinstance(e, ev.UsageUpdate)]
    assert u.cached_tokens == 600_000 and u.total_cost == pytest.approx(0.96)


async def test_max_cost_without_prices_warns(tmp_path):
    s, _, seen = session(tmp_path, [turn(call("finish", {}))], max_cost=1.0)
    await s.run()
    assert any("cost limit cannot apply" in e.message for e in seen if isinstance(e, ev.Notice))


async def test_unwritable_trajectory_is_a_config_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    repo = make_repo(tmp_path / "repo")
    s = Session(Settings(model="x"), repo, "t", model=ScriptedModel([]), trajectory_path=blocker / "t.jsonl")
    with pytest.raises(ConfigError, match="cannot write the trajectory"):
        await s.run()


async def test_cancellation_keeps_the_trajectory_and_reraises(tmp_path):
    s, _, seen = session(tmp_path, [turn(call("execute_bash", {"command": "sleep 30"}))])
    task = asyncio.create_task(s.run())
    while not any(isinstance(e, ev.ToolCallStarted) for e in seen):
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    records = read_trajectory(tmp_path / "t.jsonl")
    assert records[-2]["reason"] == "interrupted" and records[-1]["type"] == "result"


async def test_live_output_keeps_multibyte_characters_whole(tmp_path):
    env = LocalEnvironment(tmp_path)
    parts: list[str] = []
    result = await env.run(
        "printf '\\xe4'; sleep 0.2; printf '\\xb8\\xad\\n'", timeout=10, on_output=parts.append
    )
    assert "".join(parts) == "中\n" and result.output == "中\n"
    assert all("\ufffd" not in p for p in parts)


def test_trajectory_events_round_trip(tmp_path):
    event = ev.ToolCallFinished(step=1, call_id="functions.x:0", name="x", output="o", data={"k": [1]})
    again = ev.parse_event(json.loads(event.model_dump_json()))
    assert again == event and not ev.TextDelta(step=1, text="t").model_dump().get("ephemeral")


async def test_an_answer_cut_off_at_the_output_limit_does_not_end_the_run(tmp_path):
    s, model, _ = session(
        tmp_path, [turn(content="The fix is to change", finish_reason="length"), turn(call("finish", {}))]
    )
    out = await s.run()
    assert out.finished.reason == "finished"
    assert model.requests[1][-2] == {"role": "assistant", "content": "The fix is to change"}
    assert "cut off" in model.requests[1][-1]["content"]
