"""Context management (truncation, compaction, its fallback, provider overflow) and the loop guard,
driven through the real Session with in-process models."""

from __future__ import annotations

import json

import pytest

from agent import events as ev
from agent.config import Settings
from agent.context import Budget, compact, estimate_tokens, split_for_compaction
from agent.llm.errors import ContextOverflowError, ServerError
from agent.llm.types import ModelTurn, ToolCall, Usage
from agent.session import Session
from agent.testing.scripted_model import ScriptedModel
from tests.support import call, make_repo, turn

BIG = "python3 -c \"print('line of output ' * 400)\""  # ~6 KB per call


class SummarisingModel:
    """Scripted tool calls; answers compaction requests with a summary (or fails them)."""

    name = "summarising"

    def __init__(
        self, calls: list[tuple[str, dict]], summary: str | Exception = "SUMMARY: explored, ran the command."
    ):
        self.calls = calls
        self.summary = summary
        self.requests: list[list[dict]] = []
        self.summary_requests = 0

    async def complete(self, messages, tools, on_delta=None):
        if "<conversation>" in messages[-1]["content"] if messages[-1]["role"] == "user" else False:
            self.summary_requests += 1
            if isinstance(self.summary, Exception):
                raise self.summary
            return ModelTurn(content=self.summary, usage=Usage(500, 50, 0))
        self.requests.append(messages)
        name, args = self.calls[len(self.requests) - 1]
        prompt = sum(estimate_tokens(m) for m in messages)
        return ModelTurn(
            tool_calls=[ToolCall(id=f"c{len(self.requests)}", name=name, arguments=json.dumps(args))],
            finish_reason="tool_calls",
            usage=Usage(prompt, 20, 0),
        )

    async def aclose(self):
        pass


def run_session(tmp_path, model, **settings):
    repo = make_repo(tmp_path / "repo")
    seen: list[ev.Event] = []
    s = Session(
        Settings(model=model.name, **settings),
        repo,
        "investigate",
        model=model,
        subscribers=[seen.append],
        trajectory_path=tmp_path / "t.jsonl",
    )
    return s, seen


def notices(seen):
    return [e.message for e in seen if isinstance(e, ev.Notice)]


async def test_history_is_compacted_with_a_summary_before_the_window_fills(tmp_path):
    calls = [("execute_bash", {"command": BIG + f" # {i}"}) for i in range(12)] + [
        ("finish", {"message": "done"})
    ]
    model = SummarisingModel(calls)
    s, seen = run_session(tmp_path, model, context_window=8000)
    out = await s.run()
    assert out.finished.reason == "finished"
    assert model.summary_requests >= 1
    assert any("compacted" in n and "summary" in n for n in notices(seen))
    first, last = model.requests[0], model.requests[-1]
    assert last[:2] == first[:2]  # the system prompt and the task are never touched
    assert any(
        m["role"] == "user" and m["content"].startswith("[Earlier messages were compacted") for m in last
    )
    assert "SUMMARY: explored" in json.dumps(last)
    budget = Budget.for_window(8000, None)
    assert all(sum(estimate_tokens(m) for m in r) <= budget.context_window for r in model.requests)
    # a tool result still follows its call in every request (providers reject orphans)
    for r in model.requests:
        for i, m in enumerate(r):
            if m["role"] == "tool":
                prev = next(p for p in reversed(r[:i]) if p["role"] == "assistant")
                assert m["tool_call_id"] in {c["id"] for c in prev["tool_calls"]}


async def test_failed_summary_falls_back_to_dropping_old_observations(tmp_path):
    calls = [("execute_bash", {"command": BIG + f" # {i}"}) for i in range(12)] + [("finish", {})]
    model = SummarisingModel(calls, summary=ServerError("summary endpoint down"))
    s, seen = run_session(tmp_path, model, context_window=8000)
    out = await s.run()
    assert out.finished.reason == "finished"
    msgs = notices(seen)
    assert any("summary call failed" in n and "dropped" in n for n in msgs)
    last = model.requests[-1]
    dropped = [
        m for m in last if m["role"] == "user" and m["content"].startswith("[Earlier messages were dropped")
    ]
    assert dropped and "execute_bash" in dropped[0]["content"]


class OverflowingModel(SummarisingModel):
    """Raises the provider's overflow error on chosen calls, like Moonshot or vLLM would."""

    def __init__(self, calls, overflow_on: set[int]):
        super().__init__(calls)
        self.overflow_on = overflow_on
        self.attempts = 0

    async def complete(self, messages, tools, on_delta=None):
        if messages[-1]["role"] == "user" and "<conversation>" in messages[-1]["content"]:
            return await super().complete(messages, tools, on_delta)
        self.attempts += 1
        if self.attempts in self.overflow_on or "always" in self.overflow_on:
            raise ContextOverflowError("Your request exceeded model token limit: 262144 (requested: 269030)")
        return await super().complete(messages, tools, on_delta)


async def test_provider_overflow_triggers_compaction_and_a_retry(tmp_path):
    calls = [("execute_bash", {"command": "echo hi"}) for _ in range(4)] + [("finish", {})]
    model = OverflowingModel(calls, overflow_on={3})
    s, seen = run_session(tmp_path, model)
    out = await s.run()
    assert out.finished.reason == "finished"
    assert any("context overflow reported by the server" in n for n in notices(seen))
    assert model.summary_requests == 1


async def test_overflow_that_never_clears_ends_the_run_instead_of_looping(tmp_path):
    model = OverflowingModel([("finish", {})], overflow_on={"always"})
    s, seen = run_session(tmp_path, model)
    out = await s.run()
    assert out.finished.reason == "context_overflow" and out.finished.exit_code == 1
    assert model.attempts == 3  # the first try, then one retry after each kind of compaction


async def test_huge_tool_output_is_truncated_to_a_share_of_the_window(tmp_path):
    model = ScriptedModel(
        [
            turn(call("execute_bash", {"command": "python3 -c \"print('y' * 200000)\""})),
            turn(call("finish", {})),
        ]
    )
    s, seen = run_session(tmp_path, model, context_window=8000)
    await s.run()
    sent = model.requests[1][-1]["content"]
    assert (
        len(sent) <= Budget.for_window(8000, None).tool_output_chars(16000) and "characters omitted" in sent
    )


def test_split_never_orphans_a_tool_result():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "t"}]
    for i in range(10):
        msgs.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": f"c{i}", "function": {"name": "x", "arguments": "{}"}}],
            }
        )
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "content": "o" * 1000})
    for keep in (0, 100, 500, 2000, 100000):
        i = split_for_compaction(msgs, keep)
        assert i == len(msgs) or msgs[i]["role"] == "assistant"


async def test_compact_keeps_head_and_fits_even_with_one_giant_turn():
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}]
    msgs.append(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "a", "function": {"name": "x", "arguments": "{}"}}],
        }
    )
    msgs.append({"role": "tool", "tool_call_id": "a", "content": "z" * 100_000})
    budget = Budget.for_window(8000, None)
    new, how = await compact(msgs, ScriptedModel([]), budget, summarise=False)
    assert new[:2] == msgs[:2] and sum(estimate_tokens(m) for m in new) <= budget.limit
    assert "dropped" in how


# --- loop guard ------------------------------------------------------------------------------------


async def test_identical_calls_get_a_nudge_then_stop(tmp_path):
    same = turn(call("execute_bash", {"command": "echo same"}))
    model = ScriptedModel([same] * 8)
    s, seen = run_session(tmp_path, model)
    out = await s.run()
    assert out.finished.reason == "stuck" and out.finished.exit_code == 1 and out.finished.steps == 5
    third_result = model.requests[3][-1]["content"]
    assert "same call 3 times in a row" in third_result


async def test_identical_errors_with_different_calls_also_stop(tmp_path):
    turns = [
        turn(call("str_replace_editor", {"command": "view", "path": "missing.py", "view_range": [1, i + 2]}))
        for i in range(8)
    ]
    model = ScriptedModel(turns)
    s, seen = run_session(tmp_path, model)
    out = await s.run()
    assert out.finished.reason == "stuck" and "same error" in out.finished.message


async def test_a_changed_call_resets_the_guard(tmp_path):
    turns = []
    for i in range(4):
        turns += [turn(call("execute_bash", {"command": "echo a"}))] * 2 + [
            turn(call("execute_bash", {"command": f"echo {i}"}))
        ]
    model = ScriptedModel([*turns, turn(call("finish", {}))])
    s, _ = run_session(tmp_path, model)
    out = await s.run()
    assert out.finished.reason == "finished"


@pytest.mark.parametrize(
    "policy,expect_field", [("omit", False), ("send_on_tool_turns", True), ("send_all", True)]
)
async def test_reasoning_goes_back_per_policy(tmp_path, policy, expect_field):
    model = ScriptedModel(
        [turn(call("think", {"thought": "x"}), reasoning="because"), turn(call("finish", {}))]
    )
    s, _ = run_session(tmp_path, model, reasoning=policy)
    await s.run()
    assistant = model.requests[1][-2]
    assert assistant["role"] == "assistant" and ("reasoning_content" in assistant) is expect_field


# --- through the real client: text tool protocol and the reply budget --------------------------------


async def run_against(tmp_path, server, model: str, **settings):
    repo = make_repo(tmp_path / "repo")
    seen: list[ev.Event] = []
    s = Session(
        Settings(model=model, base_url=server.base_url, retry_base_delay=0.01, **settings),
        repo,
        "task",
        subscribers=[seen.append],
        trajectory_path=tmp_path / "t.jsonl",
    )
    return await s.run(), seen


async def test_unreadable_tool_calls_switch_the_model_to_the_text_protocol(tmp_path, scripted_server):
    broken = {
        "content": 'Running it. <tool_call>{"name": "execute_bash", "arguments": {"command": "echo hi"',
        "finish_reason": "stop",
    }
    text_call = {
        "content": '<tool_call>{"name": "execute_bash", "arguments": {"command": "echo recovered"}}</tool_call>'
    }
    text_finish = {"content": '<tool_call>{"name": "finish", "arguments": {"message": "ok"}}</tool_call>'}
    server = scripted_server([broken, broken, broken, text_call, text_finish])
    out, seen = await run_against(tmp_path, server, "some-local-model")
    assert out.finished.reason == "finished"
    bodies = [r["body"] for r in server.requests]
    assert all("tools" in b for b in bodies[:3]) and all("tools" not in b for b in bodies[3:])
    switch = bodies[3]["messages"][-1]
    assert (
        switch["role"] == "user"
        and "<tool_call>" in switch["content"]
        and "execute_bash" in switch["content"]
    )
    assert bodies[3]["messages"][:2] == bodies[0]["messages"][:2]  # the cached prefix is untouched
    ran = [e for e in seen if isinstance(e, ev.ToolCallFinished) and e.name == "execute_bash"]
    assert len(ran) == 1 and "recovered" in ran[0].output
    assert any("text tool protocol" in n for n in notices(seen))
    # the failed attempts were explained to the model, precisely
    assert "cut off" in bodies[1]["messages"][-1]["content"]


async def test_each_request_asks_for_no_more_output_than_the_window_has_room_for(tmp_path, scripted_server):
    server = scripted_server(
        [turn(call("think", {"thought": "x" * 4000})) for _ in range(3)] + [turn(call("finish", {}))]
    )
    out, _ = await run_against(tmp_path, server, "kimi-k2-0905-preview", context_window=20000)
    assert out.finished.reason == "finished"
    caps = [r["body"]["max_tokens"] for r in server.requests]
    assert all(256 <= c <= 16384 for c in caps)  # the Kimi K2 family's output cap
    prompts = out.loop.prompt_tokens_sent  # as the server counted them
    assert all(cap + prompt <= 20000 for cap, prompt in zip(caps, prompts, strict=True))
    assert caps[-1] < 16384  # the room left, not the family cap, bounds the reply late in the run

    unknown = scripted_server([turn(call("finish", {}))])
    await run_against(tmp_path / "u", unknown, "my-finetune")
    assert "max_tokens" not in unknown.requests[0]["body"]  # unknown models keep the server's default

    minimax = scripted_server([turn(call("finish", {}))])
    await run_against(tmp_path / "m", minimax, "MiniMax-M2")
    body = minimax.requests[0]["body"]
    assert "max_tokens" not in body and body["max_completion_tokens"] <= 32768 and body["temperature"] == 1.0
