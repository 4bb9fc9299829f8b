"""The model client with the real `openai` SDK against the scripted server on 127.0.0.1."""

from __future__ import annotations

import json
import socket

import pytest

from agent.llm import errors
from agent.llm.client import ClientConfig, OpenAIModel, _retry_after
from agent.llm.stream import TurnAssembler

MESSAGES = [{"role": "user", "content": "hi"}]
TOOLS = [
    {"type": "function", "function": {"name": "read", "parameters": {"type": "object", "properties": {}}}}
]


def model_for(server, **kw) -> OpenAIModel:
    retries: list[tuple[str, int, float]] = []
    cfg = ClientConfig(model="m", base_url=server.base_url, api_key="k", retry_base_delay=0.01, **kw)
    model = OpenAIModel(cfg, on_retry=lambda exc, n, delay: retries.append((str(exc), n, delay)))
    model.retries = retries  # type: ignore[attr-defined]
    return model


async def test_streamed_text_reasoning_and_usage(scripted_server):
    server = scripted_server(
        [
            {
                "content": "Hello there, friend",
                "reasoning": "thinking hard",
                "usage": {"prompt_tokens": 50, "completion_tokens": 7, "cached_tokens": 40},
            }
        ]
    )
    model = model_for(server)
    deltas: list[tuple[str, str]] = []
    turn = await model.complete(MESSAGES, TOOLS, lambda k, t: deltas.append((k, t)))
    await model.aclose()
    assert turn.content == "Hello there, friend" and turn.reasoning == "thinking hard"
    assert turn.finish_reason == "stop" and turn.tool_calls == []
    assert (turn.usage.prompt_tokens, turn.usage.completion_tokens, turn.usage.cached_tokens) == (50, 7, 40)
    assert "".join(t for k, t in deltas if k == "text") == "Hello there, friend"
    assert "".join(t for k, t in deltas if k == "reasoning") == "thinking hard"
    assert len([d for d in deltas if d[0] == "text"]) > 1  # really streamed
    body = server.requests[0]["body"]
    assert (
        body["stream"] is True
        and body["stream_options"] == {"include_usage": True}
        and body["tools"] == TOOLS
    )


@pytest.mark.parametrize(
    "shape",
    [
        {},
        {"whole_tool_calls": True},
        {"omit_index": True},
        {"omit_id": True},
        {"repeat_name": True},
        {"omit_index": True, "omit_id": True},
        {"chunk_size": 1},
    ],
)
async def test_tool_call_dialects_assemble_to_the_same_calls(scripted_server, shape):
    calls = [
        {"name": "read", "arguments": {"path": "src/main.py", "lines": [1, 2]}, "id": "functions.read:0"},
        {"name": "grep", "arguments": {"pattern": "def \\w+"}, "id": "functions.grep:1"},
    ]
    server = scripted_server([{"tool_calls": calls, **shape}])
    model = model_for(server)
    turn = await model.complete(MESSAGES, TOOLS)
    await model.aclose()
    assert [c.name for c in turn.tool_calls] == ["read", "grep"]
    assert [json.loads(c.arguments) for c in turn.tool_calls] == [
        calls[0]["arguments"],
        calls[1]["arguments"],
    ]
    if not shape.get("omit_id"):
        assert [c.id for c in turn.tool_calls] == ["functions.read:0", "functions.grep:1"]  # verbatim
    else:
        assert all(c.id for c in turn.tool_calls) and len({c.id for c in turn.tool_calls}) == 2
    assert turn.finish_reason == "tool_calls"


async def test_non_streaming_and_no_done_and_usage_on_finish_chunk(scripted_server):
    server = scripted_server(
        [
            {
                "tool_calls": [{"name": "read", "arguments": {"p": 1}, "id": "636c4f780"}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 3, "cached_tokens": 0},
            },
            {
                "content": "ok",
                "no_done": True,
                "usage_on_finish_chunk": True,
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "cached_tokens": 2},
            },
        ]
    )
    plain = model_for(server, stream=False)
    turn = await plain.complete(MESSAGES, TOOLS)
    assert turn.tool_calls[0].id == "636c4f780" and json.loads(turn.tool_calls[0].arguments) == {"p": 1}
    assert turn.usage.prompt_tokens == 9
    assert "stream" not in server.requests[0]["body"]
    streamed = model_for(server)
    turn = await streamed.complete(MESSAGES, TOOLS)
    assert turn.content == "ok" and turn.usage.cached_tokens == 2
    await plain.aclose()
    await streamed.aclose()


async def test_openrouter_style_raw_stream_with_comments_and_empty_choices(scripted_server):
    chunks = [
        ": OPENROUTER PROCESSING",
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "content": "",
                        "reasoning": "Let me",
                        "reasoning_details": [{"type": "reasoning.text", "text": "Let me"}],
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "weather:0",
                                "type": "function",
                                "function": {"name": "weather", "arguments": ""},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"location": "Flo'}}]},
                }
            ]
        },
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'rence"}'}}]}}
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": ""},
                    "finish_reason": "tool_calls",
                    "native_finish_reason": "tool_calls",
                }
            ]
        },
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 68,
                "completion_tokens": 31,
                "total_tokens": 99,
                "prompt_tokens_details": {"cached_tokens": 68},
            },
        },
    ]
    base = {"id": "gen-1", "object": "chat.completion.chunk", "created": 1, "model": "moonshotai/kimi-k2"}
    lines = [c if isinstance(c, str) else "data: " + json.dumps({**base, **c}) for c in chunks]
    raw = "\n\n".join(lines) + "\n\ndata: [DONE]\n\n"
    server = scripted_server([{"raw_sse": raw}])
    model = model_for(server)
    turn = await model.complete(MESSAGES, TOOLS)
    await model.aclose()
    assert turn.reasoning == "Let me"  # `reasoning` and `reasoning_details` are the same text: counted once
    assert turn.tool_calls[0].id == "weather:0" and json.loads(turn.tool_calls[0].arguments) == {
        "location": "Florence"
    }
    assert turn.usage.cached_tokens == 68


async def test_retries_honour_retry_after_then_succeed(scripted_server):
    server = scripted_server(
        [
            {
                "error": {
                    "status": 429,
                    "headers": {"Retry-After": "0.2"},
                    "body": {"error": {"message": "slow down"}},
                }
            },
            {"error": {"status": 503, "headers": {"retry-after-ms": "50"}}},
            {"error": {"status": 500}},
            {"content": "finally"},
        ]
    )
    model = model_for(server)
    turn = await model.complete(MESSAGES, [])
    await model.aclose()
    assert turn.content == "finally"
    delays = [d for _, _, d in model.retries]
    assert delays[0] == pytest.approx(0.2) and delays[1] == pytest.approx(0.05) and delays[2] < 0.1
    assert "slow down" in model.retries[0][0]


async def test_retries_give_up_after_max_retries(scripted_server):
    server = scripted_server([{"error": {"status": 500}}] * 3)
    model = model_for(server, max_retries=2)
    with pytest.raises(errors.ServerError):
        await model.complete(MESSAGES, [])
    await model.aclose()
    assert len(server.requests) == 3


async def test_broken_stream_and_mid_stream_error_are_retried(scripted_server):
    server = scripted_server(
        [
            {"content": "a" * 200, "break_after_chunks": 3},
            {"content": "partial", "stream_error": {"message": "provider disconnected", "code": 502}},
            {"content": "whole"},
        ]
    )
    model = model_for(server)
    turn = await model.complete(MESSAGES, [])
    await model.aclose()
    assert turn.content == "whole"
    kinds = [msg for msg, _, _ in model.retries]
    assert "broke off" in kinds[0] and "provider disconnected" in kinds[1]


@pytest.mark.parametrize(
    "status,message,exc_type",
    [
        (401, "Invalid Authentication", errors.AuthError),
        (404, "model not found", errors.BadRequestError),
        (
            400,
            "This model's maximum context length is 131072 tokens. However, you requested 156632 tokens",
            errors.ContextOverflowError,
        ),
        (
            400,
            "Invalid request: Your request exceeded model token limit: 262144 (requested: 269030)",
            errors.ContextOverflowError,
        ),
        (
            400,
            "the request exceeds the available context size, try increasing it",
            errors.ContextOverflowError,
        ),
        (
            403,
            "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 32768. Given: context window",
            errors.ContextOverflowError,
        ),
        (400, "max_tokens must be at least 1, got -186.", errors.ContextOverflowError),
        (400, "tools param requires --jinja flag", errors.BadRequestError),
    ],
)
async def test_errors_are_typed_and_not_retried(scripted_server, status, message, exc_type):
    server = scripted_server([{"error": {"status": status, "body": {"error": {"message": message}}}}])
    model = model_for(server)
    with pytest.raises(exc_type) as info:
        await model.complete(MESSAGES, [])
    await model.aclose()
    assert type(info.value) is exc_type and message[:20] in str(info.value)
    assert len(server.requests) == 1


async def test_unreachable_server_and_timeouts():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ClientConfig(
        model="m", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=1, retry_base_delay=0.01
    )
    model = OpenAIModel(cfg)
    with pytest.raises(errors.ModelConnectionError, match="cannot reach the model server"):
        await model.complete(MESSAGES, [])
    await model.aclose()


async def test_read_timeout_is_a_retryable_timeout(scripted_server):
    server = scripted_server([{"content": "late", "latency": 3}, {"content": "on time"}])
    model = model_for(server, request_timeout=0.5, max_retries=1)
    turn = await model.complete(MESSAGES, [])
    await model.aclose()
    assert turn.content == "on time" and "did not answer in time" in model.retries[0][0]


def test_retry_after_header_forms():
    assert _retry_after({"retry-after": "3"}) == 3.0
    assert _retry_after({"retry-after-ms": "1500"}) == 1.5
    assert _retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None


def test_assembler_handles_ollama_calls_without_index_or_id():
    asm = TurnAssembler()
    asm.add_tool_delta(None, None, "read", '{"path": "a"}')
    asm.add_tool_delta(None, None, "read", '{"path": "b"}')  # a second whole call, same name
    asm.add_tool_delta(None, None, "grep", '{"pattern": ')
    asm.add_tool_delta(None, None, None, '"x"}')  # continuation of the call being built
    turn = asm.turn()
    assert [(c.name, json.loads(c.arguments)) for c in turn.tool_calls] == [
        ("read", {"path": "a"}),
        ("read", {"path": "b"}),
        ("grep", {"pattern": "x"}),
    ]
    assert len({c.id for c in turn.tool_calls}) == 3


def test_assembler_sets_name_and_id_once():
    asm = TurnAssembler()
    for frag in ['{"a"', ": 1", "}"]:
        asm.add_tool_delta(0, "call_1", "read_file", frag)  # llama.cpp repeats name and id
    (call,) = asm.turn().tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "read_file", '{"a": 1}')
