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
