"""Replay fixtures of recorded-shape provider responses, each driven through the real agent.

Every file in tests/fixtures/providers/ describes one provider dialect or failure (Moonshot, OpenRouter,
Groq, DashScope, Cerebras, vLLM/SGLang with and without tool parsers, Ollama, llama.cpp, DeepSeek,
MiniMax, malformed arguments, HTTP errors), built from /work/shared/research/providers.md. The scripted
OpenAI-compatible server serves the fixture's turns verbatim, followed by one turn that calls `finish`;
a real `Session` (real openai client, real graph, real registry) runs against it, and the test checks
which tools ran with which parsed arguments, the tool-call ids sent back, and how the run ended.

Fixture format (see tests/fixtures/providers/README.md):
  name, source, model, stream, tools: [{name, parameters}], turns: [scripted-server turns], expect: {...}
A turn's `raw_sse` may be a list of SSE events (one string per event, no trailing blank line); it is
joined into the verbatim body the server sends. Everything else is a plain scripted-server turn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ConfigDict

from agent import events as ev
from agent.config import Settings
from agent.session import Session
from agent.testing.scripted_server import ScriptError, validate_turn
from tools.base import Tool, ToolContext, ToolResult
from tools.control.finish import Finish
from tools.registry import ToolRegistry

FIXTURE_DIR = Path(__file__).parent / "fixtures" / "providers"
FIXTURE_FILES = sorted(FIXTURE_DIR.glob("*.json"))
MIN_FIXTURES = 40

FIXTURE_KEYS = {"name", "source", "model", "stream", "tools", "turns", "expect"}
EXPECT_REQUIRED = {"calls", "reason"}
EXPECT_KEYS = EXPECT_REQUIRED | {
    "ids",  # tool_call_id values the history must carry back verbatim, in order
    "error_kind",  # the `kind` of the run's error event
    "error_contains",  # a substring of the run's final message
    "not_executed",  # a call in the script must not even be attempted (e.g. finish_reason=length)
    "requests",  # how many chat requests the server must receive (retries included)
    "history_contains",  # substrings the assistant messages sent back must contain
    "history_excludes",  # substrings they must not contain (e.g. leaked tool-call markup)
}
REASONS = set(get_args(ev.StopReason))
SERVER_PREFIXES = {
    "openrouter",
    "moonshot",
    "groq",
    "dashscope",
    "cerebras",
    "vllm",
    "sglang",
    "ollama",
    "llamacpp",
    "deepseek",
    "minimax",
}
FINISH_ID = "call_fixture_finish"
FINISH_TURN = {"tool_calls": [{"name": "finish", "arguments": {"message": "done"}, "id": FINISH_ID}]}


# -- fixture loading --------------------------------------------------------------------------------


def load_fixture(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def server_turn(turn: dict[str, Any]) -> dict[str, Any]:
    """A fixture turn as the scripted server takes it: a `raw_sse` list becomes the verbatim body."""
    raw = turn.get("raw_sse")
    if isinstance(raw, list):
        turn = {**turn, "raw_sse": "".join(f"{event}\n\n" for event in raw)}
    return turn


def sse_events(turn: dict[str, Any]) -> list[str]:
    raw = turn["raw_sse"]
    return list(raw) if isinstance(raw, list) else [e for e in raw.split("\n\n") if e]


# -- the recording tool -------------------------------------------------------------------------------


class RecordingTool(Tool):
    """A tool with the fixture's name and JSON schema that records its parsed arguments and says "ok"."""

    description = "A fixture tool: records its arguments."

    class Params(BaseModel):
        model_config = ConfigDict(extra="allow")

    def __init__(self, name: str, parameters: dict[str, Any], log: list[tuple[str, dict[str, Any]]]):
        self.name = name  # type: ignore[misc]
        self.parameters = parameters
        self.log = log

    def schema(self) -> dict[str, Any]:  # type: ignore[override]
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    async def run(self, params: BaseModel, ctx: ToolContext) -> ToolResult:
        self.log.append((self.name, params.model_dump()))
        return ToolResult("ok")


def strict(value: Any) -> str:
    """A type-exact form for comparisons: 1 != 1.0 != True != "1"."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- the replay test ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
async def test_provider_fixture_through_the_agent(path: Path, tmp_path: Path, scripted_server) -> None:
    fx = load_fixture(path)
    expect = fx["expect"]
    log: list[tuple[str, dict[str, Any]]] = []
    tools: list[Tool] = [RecordingTool(t["name"], t["parameters"], log) for t in fx["tools"]]
    registry = ToolRegistry([*tools, Finish()])
    server = scripted_server([*(server_turn(t) for t in fx["turns"]), FINISH_TURN], model=fx["model"])
    seen: list[ev.Event] = []
    repo = tmp_path / "work"
    repo.mkdir()
    settings = Settings(
        model=fx["model"],
        base_url=server.base_url,
        stream=fx["stream"],
        max_retries=3,
        retry_base_delay=0.01,
        max_steps=10,
        max_time=60,
    )
    session = Session(
        settings,
        repo=repo,
        task="do it",
        registry=registry,
        subscribers=[seen.append],
        trajectory_path=tmp_path / "t.jsonl",
    )

    outcome = await session.run()

    finished = outcome.finished
    errors = [e for e in seen if isinstance(e, ev.ErrorEvent)]
    requests = [r["body"] for r in server.requests]
    context = describe_run(seen, finished, len(requests))
    assert not server.errors, server.errors

    # how the run ended
    assert finished.reason == expect["reason"], context
    if "error_kind" in expect:
        assert errors and errors[-1].kind == expect["error_kind"], context
    elif expect["reason"] == "finished":
        assert not errors, context
    if "error_contains" in expect:
        assert expect["error_contains"] in finished.message, context
    if "requests" in expect:
        assert len(requests) == expect["requests"], context
    if expect["reason"] == "finished":
        assert server.remaining == 0, f"script not consumed: {server.remaining} turn(s) left\n{context}"

    # the tools that ran, with their parsed arguments, exactly (types included)
    want = [(name, strict(args)) for name, args in expect["calls"]]
    got = [(name, strict(args)) for name, args in log]
    assert got == want, context

    if expect.get("not_executed"):
        offered = {t["name"] for t in fx["tools"]}
        started = [e for e in seen if isinstance(e, ev.ToolCallStarted) and e.name != "finish"]
        assert len(started) == len(expect["calls"]), f"a call that must not run was attempted\n{context}"
        assert all(e.name in offered for e in started), context

    if expect["reason"] != "finished":
        return
    history = requests[-1]["messages"]
    assistant = [m for m in history if m.get("role") == "assistant"]
    call_ids = [tc["id"] for m in assistant for tc in m.get("tool_calls") or []]
    answered = [m["tool_call_id"] for m in history if m.get("role") == "tool"]
    # every call sent back is answered exactly once, in order
    assert answered == call_ids, context
    if "ids" in expect:
        assert call_ids == expect["ids"], context
    for m in assistant:  # arguments go back as valid JSON, or strict servers reject the request
        for tc in m.get("tool_calls") or []:
            json.loads(tc["function"]["arguments"])
    sent_back = "\n".join(m.get("content") or "" for m in assistant)
    for text in expect.get("history_contains", []):
        assert text in sent_back, f"{text!r} missing from the assistant history\n{sent_back!r}"
    for text in expect.get("history_excludes", []):
        assert text not in sent_back, f"{text!r} must not be sent back\n{sent_back!r}"


def describe_run(seen: list[ev.Event], finished: ev.RunFinished, n_requests: int) -> str:
    lines = [f"run: reason={finished.reason} message={finished.message[:300]!r} requests={n_requests}"]
    for e in seen:
        if isinstance(e, ev.AssistantMessage):
            calls = [(c.id, c.name, c.arguments) for c in e.tool_calls]
            lines.append(
                f"  assistant step {e.step}: finish={e.finish_reason} content={e.content[:200]!r} "
                f"reasoning={(e.reasoning or '')[:120]!r} calls={calls}"
            )
        elif isinstance(e, ev.ToolCallFinished):
            lines.append(f"  tool {e.name} [{e.call_id}] error={e.is_error}: {e.output[:200]!r}")
        elif isinstance(e, ev.ErrorEvent | ev.Notice):
            lines.append(f"  {e.type}: {getattr(e, 'kind', '')} {e.message[:200]!r}")
    return "\n".join(lines)


# -- the fixtures themselves -------------------------------------------------------------------------


def test_there_are_enough_fixtures() -> None:
    assert len(FIXTURE_FILES) >= MIN_FIXTURES, [p.name for p in FIXTURE_FILES]


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_fixture_is_well_formed(path: Path) -> None:
    fx = load_fixture(path)
    assert set(fx) == FIXTURE_KEYS, f"keys: {sorted(fx)}"
    assert fx["name"] == path.stem
    assert path.stem.split("-", 1)[0] in SERVER_PREFIXES, "name it <server>-<case>.json"
    assert isinstance(fx["source"], str) and fx["source"].strip()
    assert isinstance(fx["model"], str) and fx["model"]
    assert isinstance(fx["stream"], bool)

    assert isinstance(fx["tools"], list) and fx["tools"]
    names = [t["name"] for t in fx["tools"]]
    assert len(names) == len(set(names)) and "finish" not in names
    for t in fx["tools"]:
        assert set(t) == {"name", "parameters"}
        params = t["parameters"]
        assert params.get("type") == "object" and isinstance(params.get("properties"), dict)
        assert all("type" in p for p in params["properties"].values()), "type every property"

    assert isinstance(fx["turns"], list) and fx["turns"]
    for i, turn in enumerate(fx["turns"]):
        try:
            validate_turn(server_turn(turn), f"{path.name}: turn {i}")
        except ScriptError as exc:
            pytest.fail(str(exc))
        if "raw_sse" in turn:
            assert fx["stream"], "raw_sse is served whatever the request asked: only for stream fixtures"
            assert isinstance(turn["raw_sse"], list | str)
            for event in sse_events(turn):
                assert event.startswith(("data: ", ":")), event
                assert "\n\n" not in event
                if event.startswith("data: ") and event != "data: [DONE]":
                    json.loads(event.removeprefix("data: "))
        if "raw_json" in turn:
            assert not fx["stream"], (
                "raw_json is served whatever the request asked: only for non-stream fixtures"
            )
            if isinstance(turn["raw_json"], str):
                json.loads(turn["raw_json"])

    expect = fx["expect"]
    assert EXPECT_REQUIRED <= set(expect) <= EXPECT_KEYS, f"expect keys: {sorted(expect)}"
    assert expect["reason"] in REASONS
    for call in expect["calls"]:
        assert isinstance(call, list) and len(call) == 2
        assert call[0] in names and isinstance(call[1], dict)
    if "ids" in expect:
        assert expect["reason"] == "finished"
        assert all(isinstance(i, str) and i for i in expect["ids"])
    for key in ("history_contains", "history_excludes"):
        assert all(isinstance(s, str) and s for s in expect.get(key, []))
