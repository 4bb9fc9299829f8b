"""The scripted OpenAI-compatible server, exercised through the real `openai` client (httpx2 underneath)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from agent.testing.scripted_server import ScriptedServer, ScriptError, load_script

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]
REPO = Path(__file__).resolve().parents[1]


def client(server: ScriptedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def aclient(server: ScriptedServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def stream(server: ScriptedServer, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("messages", MESSAGES)
    return list(client(server).chat.completions.create(model="m", stream=True, **kwargs))


def assemble(chunks: list[Any]) -> dict[str, Any]:
    """Fold chunks the way an agent would: text, reasoning, tool calls keyed by index, finish, usage."""
    out: dict[str, Any] = {
        "content": "",
        "reasoning": "",
        "calls": {},
        "finish": None,
        "usage": None,
        "roles": [],
    }
    for chunk in chunks:
        if chunk.usage is not None:
            out["usage"] = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            if delta.role:
                out["roles"].append(delta.role)
            out["content"] += delta.content or ""
            out["reasoning"] += getattr(delta, "reasoning_content", None) or ""
            for tc in delta.tool_calls or []:
                slot = out["calls"].setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                slot["id"] = slot["id"] or tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
            if choice.finish_reason:
                out["finish"] = choice.finish_reason
    return out


def raw_post(server: ScriptedServer, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """POST with the stdlib client, to see the exact bytes (chunked encoding already undone)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# -- streaming ---------------------------------------------------------------------------------------


def test_streamed_text_assembles_in_small_fragments(scripted_server):
    text = "The quick brown fox jumps over the lazy dog."
    server = scripted_server([{"content": text}])
    chunks = stream(server)
    got = assemble(chunks)
    assert got["content"] == text
    assert got["roles"] == ["assistant"]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content is None
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == [
        text[i : i + 8] for i in range(0, len(text), 8)
    ]
    assert got["finish"] == "stop"
    assert got["usage"] is None  # no include_usage, so no usage chunk
    assert {c.id for c in chunks} == {"chatcmpl-1"}
    assert all(c.object == "chat.completion.chunk" and c.model == "scripted-model" for c in chunks)
    assert server.remaining == 0


def test_chunk_size_and_unicode(scripted_server):
    text = "héllo → wörld 🙂 ok"
    server = scripted_server([{"content": text, "chunk_size": 3}])
    chunks = stream(server)
    assert assemble(chunks)["content"] == text
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == [
        text[i : i + 3] for i in range(0, len(text), 3)
    ]


def test_reasoning_streams_before_content(scripted_server):
    server = scripted_server([{"reasoning": "Let me think about it.", "content": "Answer."}])
    chunks = stream(server)
    kinds = []
    for c in chunks:
        delta = c.choices[0].delta
        if getattr(delta, "reasoning_content", None):
            kinds.append("r")
            assert delta.model_extra["reasoning_content"] == delta.reasoning_content
        elif delta.content:
            kinds.append("c")
    assert kinds == ["r", "r", "r", "c"]
    got = assemble(chunks)
    assert got["reasoning"] == "Let me think about it." and got["content"] == "Answer."


def test_reasoning_field_override(scripted_server):
    server = scripted_server([{"reasoning": "hmm", "reasoning_field": "reasoning", "content": "ok"}])
    chunks = stream(server)
    extras = [c.choices[0].delta.model_extra for c in chunks]
    assert "".join(e.get("reasoning", "") for e in extras) == "hmm"
    assert not any("reasoning_content" in e for e in extras)


def test_tool_call_deltas_assemble_by_index(scripted_server):
    args = {"path": "src/main.py", "limit": 200}
    server = scripted_server(
        [{"content": "Reading.", "tool_calls": [{"name": "read_file", "arguments": args, "id": "call_abc"}]}]
    )
    chunks = stream(server, tools=TOOLS)
    got = assemble(chunks)
    assert got["calls"] == {0: {"id": "call_abc", "name": "read_file", "arguments": json.dumps(args)}}
    assert json.loads(got["calls"][0]["arguments"]) == args
    assert got["content"] == "Reading."
    assert got["finish"] == "tool_calls"
    first = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls)
    assert first.index == 0 and first.id == "call_abc" and first.type == "function"
    assert first.function.name == "read_file" and first.function.arguments == ""
    later = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls][1:]
    assert len(later) > 1 and all(tc.id is None and tc.function.name is None for tc in later)
    assert all(len(tc.function.arguments) <= 8 for tc in later)


def test_parallel_tool_calls_and_default_ids(scripted_server):
    server = scripted_server(
        [
            {"tool_calls": [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"y": [1, 2]}}]},
            {"tool_calls": [{"name": "c"}]},
        ]
    )
    got = assemble(stream(server))
    assert got["calls"] == {
        0: {"id": "call_1", "name": "a", "arguments": '{"x": 1}'},
        1: {"id": "call_2", "name": "b", "arguments": '{"y": [1, 2]}'},
    }
    assert got["content"] == ""
    assert assemble(stream(server))["calls"] == {0: {"id": "call_3", "name": "c", "arguments": "{}"}}


def test_malformed_arguments_string_sent_verbatim(scripted_server):
    server = scripted_server([{"tool_calls": [{"name": "edit", "arguments": '{"path": "a.py", "text": '}]}])
    assert assemble(stream(server))["calls"][0]["arguments"] == '{"path": "a.py", "text": '


def tool_deltas(chunks: list[Any]) -> list[Any]:
    return [tc for c in chunks for ch in c.choices for tc in ch.delta.tool_calls or []]


def test_whole_tool_calls(scripted_server):
    server = scripted_server(
        [
            {
                "whole_tool_calls": True,
                "tool_calls": [{"name": "a", "arguments": {"k": "v" * 40}}, {"name": "b", "id": "x"}],
            }
        ]
    )
    deltas = tool_deltas(stream(server))
    assert [(d.index, d.id, d.function.name, d.function.arguments) for d in deltas] == [
        (0, "call_1", "a", json.dumps({"k": "v" * 40})),
        (1, "x", "b", "{}"),
    ]


def test_omit_index(scripted_server):
    server = scripted_server(
        [{"omit_index": True, "tool_calls": [{"name": "a", "arguments": {"q": "hello world"}}]}]
    )
    deltas = tool_deltas(stream(server))
    assert len(deltas) > 2
    assert all(d.index is None for d in deltas)
    assert deltas[0].id == "call_1" and deltas[0].function.name == "a"
    assert "".join(d.function.arguments for d in deltas) == '{"q": "hello world"}'


def test_omit_id(scripted_server):
    server = scripted_server(
        [{"omit_id": True, "tool_calls": [{"name": "a", "arguments": {"q": 1}}, {"name": "b"}]}]
    )
    deltas = tool_deltas(stream(server))
    assert all(d.id is None for d in deltas)
    assert [d.function.name for d in deltas if d.function.name] == ["a", "b"]
    assert sorted({d.index for d in deltas}) == [0, 1]


def test_repeat_name(scripted_server):
    server = scripted_server(
        [
            {
                "repeat_name": True,
                "tool_calls": [{"name": "grep", "id": "c9", "arguments": {"pattern": "def main"}}],
            }
        ]
    )
    deltas = tool_deltas(stream(server))
    assert len(deltas) > 2
    assert all(d.index == 0 and d.id == "c9" and d.function.name == "grep" for d in deltas)
    assert "".join(d.function.arguments for d in deltas) == '{"pattern": "def main"}'


def test_role_chunk_false(scripted_server):
    server = scripted_server([{"content": "hi", "role_chunk": False}])
    chunks = stream(server)
    assert all(c.choices[0].delta.role is None for c in chunks)
    assert chunks[0].choices[0].delta.content == "hi"


def test_usage_chunk_with_cached_tokens(scripted_server):
    server = scripted_server(
        [{"content": "ok", "usage": {"prompt_tokens": 1200, "completion_tokens": 7, "cached_tokens": 1024}}]
    )
    chunks = stream(server, stream_options={"include_usage": True})
    last = chunks[-1]
    assert last.choices == []
    assert (
        last.usage.prompt_tokens == 1200
        and last.usage.completion_tokens == 7
        and last.usage.total_tokens == 1207
    )
    assert last.usage.prompt_tokens_details.cached_tokens == 1024
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_default_usage_estimate(scripted_server):
    server = scripted_server([{"content": "x" * 40, "tool_calls": [{"name": "t", "arguments": "y" * 20}]}])
    usage = assemble(stream(server, stream_options={"include_usage": True}))["usage"]
    assert usage.prompt_tokens == len(json.dumps(MESSAGES, separators=(",", ":"))) // 4
    assert usage.completion_tokens == 60 // 4 + 1
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_usage_on_finish_chunk(scripted_server):
    turn = {
        "content": "ok",
        "usage_on_finish_chunk": True,
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
    }
    server = scripted_server([turn, turn])
    for options in ({}, {"stream_options": {"include_usage": True}}):
        chunks = stream(server, **options)
        last = chunks[-1]
        assert last.choices[0].finish_reason == "stop"
        assert last.usage.prompt_tokens == 10 and last.usage.completion_tokens == 2
        assert sum(c.usage is not None for c in chunks) == 1


def test_finish_reason_override(scripted_server):
    server = scripted_server([{"content": "truncat", "finish_reason": "length"}])
    assert assemble(stream(server))["finish"] == "length"


def test_sse_comments_are_sent_and_ignored_by_client(scripted_server):
    server = scripted_server(
        [{"content": "hello", "sse_comments": True}, {"content": "hello", "sse_comments": 3}]
    )
    assert assemble(stream(server))["content"] == "hello"
    status, headers, body = raw_post(server, {"messages": MESSAGES, "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body.startswith(b": OPENROUTER PROCESSING\n\n" * 3 + b"data: {")


def test_stream_wire_format(scripted_server):
    server = scripted_server([{"content": "hi"}])
    status, headers, body = raw_post(server, {"messages": MESSAGES, "stream": True})
    assert headers["transfer-encoding"] == "chunked"
    events = body.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first = json.loads(events[0].removeprefix("data: "))
    assert first["choices"] == [
        {"index": 0, "delta": {"role": "assistant"}, "logprobs": None, "finish_reason": None}
    ]
    assert first["object"] == "chat.completion.chunk" and isinstance(first["created"], int)


def test_no_done_still_ends_iteration(scripted_server):
    server = scripted_server([{"content": "no done marker", "no_done": True}, {"content": "next"}])
    chunks = stream(server)
    assert assemble(chunks)["content"] == "no done marker"
    assert chunks[-1].choices[0].finish_reason == "stop"
    _, _, body = raw_post(server, {"messages": MESSAGES, "stream": True})
    assert b"[DONE]" in body  # the following turn has it
    server2 = scripted_server([{"content": "x", "no_done": True}])
    assert b"[DONE]" not in raw_post(server2, {"messages": MESSAGES, "stream": True})[2]


# -- non-streaming -----------------------------------------------------------------------------------


def test_non_streaming_text_and_reasoning(scripted_server):
    server = scripted_server([{"content": "plain", "reasoning": "why", "usage": {"cached_tokens": 3}}])
    resp = client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.object == "chat.completion" and resp.id == "chatcmpl-1"
    msg = resp.choices[0].message
    assert msg.role == "assistant" and msg.content == "plain" and msg.tool_calls is None
    assert msg.model_extra["reasoning_content"] == "why"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens_details.cached_tokens == 3
    assert resp.usage.completion_tokens == len("plain") // 4 + 1


def test_non_streaming_tool_calls(scripted_server):
    server = scripted_server(
        [
            {
                "tool_calls": [
                    {"name": "read_file", "arguments": {"path": "a"}, "id": "t1"},
                    {"name": "ls", "arguments": "{}"},
                ]
            }
        ]
    )
    resp = client(server).chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    msg = resp.choices[0].message
    assert msg.content is None
    assert [(c.id, c.type, c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls] == [
        ("t1", "function", "read_file", {"path": "a"}),
        ("call_1", "function", "ls", {}),
    ]
    assert resp.choices[0].finish_reason == "tool_calls"


def test_non_streaming_empty_turn(scripted_server):
    server = scripted_server([{}])
    resp = client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "" and resp.choices[0].finish_reason == "stop"


# -- faults ------------------------------------------------------------------------------------------


def test_429_rate_limit_with_retry_after(scripted_server):
    server = scripted_server(
        [{"error": {"status": 429, "headers": {"Retry-After": "0"}}}, {"content": "after"}]
    )
    c = client(server)
    with pytest.raises(openai.RateLimitError) as info:
        c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "0"
    assert info.value.code == "rate_limit_exceeded"
    assert server.remaining == 1  # the error consumed its turn
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "after"


def test_429_is_retried_by_client_when_allowed(scripted_server):
    server = scripted_server(
        [{"error": {"status": 429, "headers": {"Retry-After": "0"}}}, {"content": "after"}]
    )
    c = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=1)
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "after"
    assert len(server.requests) == 2


def test_500_internal_server_error(scripted_server):
    server = scripted_server([{"error": {"status": 500}}])
    with pytest.raises(openai.InternalServerError) as info:
        client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.status_code == 500 and info.value.message == "Error code: 500 - scripted error 500"


def test_400_context_overflow_message_and_custom_body(scripted_server):
    server = scripted_server(
        [
            {
                "error": {
                    "status": 400,
                    "message": "maximum context length is 8192 tokens",
                    "code": "context_length_exceeded",
                }
            },
            {"error": {"status": 502, "body": "<html>Bad Gateway</html>"}},
            {"error": {"status": 401, "body": {"error": {"message": "bad key"}}}},
        ]
    )
    c = client(server)
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert "maximum context length" in info.value.message and info.value.code == "context_length_exceeded"
    with pytest.raises(openai.InternalServerError) as info2:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert info2.value.status_code == 502 and info2.value.body == "<html>Bad Gateway</html>"
    with pytest.raises(openai.AuthenticationError) as info3:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert info3.value.body == {"message": "bad key"}


def test_broken_stream_raises_api_connection_error(scripted_server):
    server = scripted_server([{"content": "a" * 80, "break_after_chunks": 3}])
    received = []
    with pytest.raises(openai.APIConnectionError) as info:
        for chunk in client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert len(received) == 3  # role chunk + two content fragments, then the socket closed
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert "incomplete chunked read" in str(info.value.__cause__)


async def test_broken_stream_async(scripted_server):
    server = scripted_server([{"content": "a" * 80, "break_after_chunks": 2}])
    received = []
    with pytest.raises(openai.APIConnectionError) as info:
        async for chunk in await aclient(server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True
        ):
            received.append(chunk)
    assert len(received) == 2
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


def test_broken_non_streaming_body_and_dropped_connection(scripted_server):
    server = scripted_server([{"content": "x" * 50, "break_after_chunks": 0}, {"drop_connection": True}])
    c = client(server)
    with pytest.raises(openai.APIConnectionError) as info:
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    with pytest.raises(openai.APIConnectionError) as info:
        c.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert "without sending a response" in str(info.value.__cause__)


def test_stream_error_event_raises_api_error(scripted_server):
    server = scripted_server(
        [{"content": "partial", "stream_error": {"message": "upstream overloaded", "code": 502}}]
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert type(info.value) is openai.APIError  # the plain base class, not an APIStatusError subclass
    assert info.value.message == "upstream overloaded"
    assert info.value.body == {"message": "upstream overloaded", "code": 502}
    assert info.value.code == "502"
    assert assemble(received)["content"] == "partial"


def test_stream_error_non_streaming_returns_error_body(scripted_server):
    server = scripted_server([{"stream_error": {"message": "boom"}}])
    resp = client(server).chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices is None
    assert resp.model_extra["error"] == {"message": "boom", "code": 502}


def test_latency_and_chunk_delay(scripted_server):
    server = scripted_server([{"content": "abcdefgh" * 3, "latency": 0.2, "chunk_delay": 0.05}])
    start = time.perf_counter()
    it = iter(client(server).chat.completions.create(model="m", messages=MESSAGES, stream=True))
    next(it)
    first = time.perf_counter() - start
    list(it)
    total = time.perf_counter() - start
    assert 0.2 <= first < 1.0
    assert total >= 0.2 + 4 * 0.05  # 6 data events after the role chunk: 5 delays at least 0.05 apart


async def test_concurrent_requests_are_served_in_parallel(scripted_server):
    server = scripted_server([{"content": f"r{i}", "latency": 0.3} for i in range(5)])
    c = aclient(server)
    start = time.perf_counter()
    results = await asyncio.gather(
        *(c.chat.completions.create(model="m", messages=MESSAGES) for _ in range(5))
    )
    assert time.perf_counter() - start < 1.2
    assert sorted(r.choices[0].message.content for r in results) == [f"r{i}" for i in range(5)]


# -- raw -------------------------------------------------------------------------------------------


RECORDED_SSE = (
    ": OPENROUTER PROCESSING\n\n"
    'data: {"id":"gen-1","object":"chat.completion.chunk","created":1,"model":"rec","choices":'
    '[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"r1"},"finish_reason":null}]}\n\n'
    'data: {"id":"gen-1","object":"chat.completion.chunk","created":1,"model":"rec","choices":'
    '[{"index":0,"delta":{"content":"recorded"},"finish_reason":"stop"}]}\n\n'
    "data: [DONE]\n\n"
)


def test_raw_sse_served_verbatim(scripted_server):
    server = scripted_server([{"raw_sse": RECORDED_SSE}, {"raw_sse": RECORDED_SSE}])
    chunks = stream(server)
    assert [c.model for c in chunks] == ["rec", "rec"]
    assert assemble(chunks)["content"] == "recorded"
    assert chunks[0].choices[0].delta.model_extra["reasoning"] == "r1"
    status, headers, body = raw_post(server, {"messages": MESSAGES, "stream": True})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body == RECORDED_SSE.encode()


def test_raw_json_with_leading_whitespace(scripted_server):
    completion = {
        "id": "gen-2",
        "object": "chat.completion",
        "created": 1,
        "model": "rec",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "raw!"}, "finish_reason": "stop"}
        ],
    }
    padded = "\n\n         \n" + json.dumps(completion)
    server = scripted_server([{"raw_json": padded}, {"raw_json": completion}, {"raw_json": padded}])
    c = client(server)
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "raw!"
    assert c.chat.completions.create(model="m", messages=MESSAGES).id == "gen-2"
    assert raw_post(server, {"messages": MESSAGES})[2] == padded.encode()


# -- script mechanics --------------------------------------------------------------------------------


def test_callable_turns_see_the_request(scripted_server):
    seen = []

    def echo(body: dict) -> dict:
        seen.append(body)
        return {
            "content": f"you said {body['messages'][-1]['content']!r} with {len(body['messages'])} messages"
        }

    server = scripted_server([echo, {"content": "static"}])
    c = client(server)
    resp = c.chat.completions.create(model="m", messages=MESSAGES)
    assert resp.choices[0].message.content == "you said 'hi' with 2 messages"
    assert seen[0]["messages"] == MESSAGES and seen[0]["model"] == "m"
    assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "static"


def test_callable_turn_failure_is_a_500(scripted_server):
    server = scripted_server([lambda body: 1 / 0, lambda body: {"bogus": 1}])
    c = client(server)
    with pytest.raises(openai.InternalServerError, match="ZeroDivisionError"):
        c.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError, match="unknown key"):
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert len(server.errors) == 2 and "ZeroDivisionError" in server.errors[0]


def test_script_exhaustion(scripted_server):
    server = scripted_server([{"content": "one"}, {"error": {"status": 503}}])
    c = client(server)
    c.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model="m", messages=MESSAGES)
    assert server.remaining == 0
    for kwargs in ({}, {"stream": True}):
        with pytest.raises(openai.InternalServerError) as info:
            c.chat.completions.create(model="m", messages=MESSAGES, **kwargs)
        assert "scripted server: script exhausted after 2 turns" in info.value.message
        assert info.value.code == "script_exhausted"
    assert len(server.requests) == 4


def test_extend_while_serving(scripted_server):
    server = scripted_server([])
    with pytest.raises(openai.InternalServerError, match="exhausted after 0 turns"):
        client(server).chat.completions.create(model="m", messages=MESSAGES)
    server.extend([{"content": "late"}])
    assert server.remaining == 1
    assert (
        client(server).chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
        == "late"
    )


def test_requests_are_recorded(scripted_server):
    server = scripted_server([{"content": "a"}, {"content": "b"}])
    c = client(server)
    list(
        c.chat.completions.create(
            model="m1", messages=MESSAGES, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
    )
    c.chat.completions.create(model="m2", messages=MESSAGES, temperature=0.5)
    first, second = server.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["body"]["tools"] == TOOLS
    assert first["body"]["stream"] is True and first["body"]["stream_options"] == {"include_usage": True}
    assert first["body"]["messages"] == MESSAGES and first["body"]["model"] == "m1"
    assert first["headers"]["authorization"] == "Bearer test"
    assert first["headers"]["content-type"] == "application/json"
    assert second["body"]["temperature"] == 0.5 and "stream" not in second["body"]
    server.requests.clear()  # a copy: the record is not affected
    assert len(server.requests) == 2


def test_turn_validation():
    with pytest.raises(ScriptError, match="unknown key"):
        ScriptedServer([{"contnet": "typo"}])
    with pytest.raises(ScriptError, match="tool_calls"):
        ScriptedServer([{"tool_calls": [{"arguments": {}}]}])
    with pytest.raises(ScriptError, match="chunk_size"):
        ScriptedServer([{"chunk_size": 0}])
    with pytest.raises(ScriptError, match="usage"):
        ScriptedServer([{"usage": {"prompt": 1}}])


def test_refuses_non_loopback_host():
    with pytest.raises(ValueError, match="non-loopback"):
        ScriptedServer([], host="0.0.0.0")
    with pytest.raises(ValueError, match="non-loopback"):
        ScriptedServer([], host="example.com")


def test_models_list_and_unknown_paths(scripted_server):
    server = scripted_server([], model="qwen-test")
    c = client(server)
    assert [(m.id, m.owned_by, m.object) for m in c.models.list()] == [("qwen-test", "scripted", "model")]
    assert c.models.retrieve("qwen-test").id == "qwen-test"
    with pytest.raises(openai.NotFoundError):
        c.completions.create(model="m", prompt="x")
    with pytest.raises(openai.NotFoundError):
        c.embeddings.create(model="m", input="x")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/nope")
    resp = conn.getresponse()
    assert resp.status == 404 and "unknown path" in json.loads(resp.read())["error"]["message"]
    conn.close()
    assert server.requests == []


def test_keep_alive_reuses_one_connection(scripted_server):
    server = scripted_server([{"content": str(i)} for i in range(3)])
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    for i, stream_ in enumerate([True, False, True]):
        conn.request(
            "POST", "/v1/chat/completions", body=json.dumps({"messages": MESSAGES, "stream": stream_})
        )
        resp = conn.getresponse()
        assert resp.status == 200
        assert str(i).encode() in resp.read()
    conn.close()


def test_context_manager_and_stop(tmp_path):
    with ScriptedServer([{"content": "x"}]) as server:
        port = server.port
        c = client(server)
        assert c.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content == "x"
    # the idle keep-alive connection was closed too, and nothing listens any more
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model="m", messages=MESSAGES)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    server.stop()  # idempotent


def test_round_trip_is_fast(scripted_server):
    # Server-side cost per streamed turn, measured with a light client over one keep-alive connection.
    # Typically ~0.5 ms (~3 ms through the openai client); the bound catches Nagle/delayed-ACK stalls (40 ms).
    server = scripted_server(
        [{"content": "hello world", "tool_calls": [{"name": "a", "arguments": {"b": 1}}]}] * 60
    )
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    body = json.dumps({"messages": MESSAGES, "stream": True})
    times = []
    for _ in range(60):
        start = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        assert conn.getresponse().read().endswith(b"data: [DONE]\n\n")
        times.append(time.perf_counter() - start)
    conn.close()
    assert sorted(times)[len(times) // 2] < 0.015


# -- script files and the CLI ------------------------------------------------------------------------


def test_load_script_json_and_jsonl(tmp_path):
    turns = [{"content": "one"}, {"tool_calls": [{"name": "a", "arguments": "{}"}]}]
    (tmp_path / "s.json").write_text(json.dumps(turns, indent=2))
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(t) for t in turns) + "\n\n")
    assert load_script(tmp_path / "s.json") == turns
    assert load_script(tmp_path / "s.jsonl") == turns
    with ScriptedServer.from_file(tmp_path / "s.jsonl", model="file-model") as server:
        resp = client(server).chat.completions.create(model="m", messages=MESSAGES)
        assert resp.choices[0].message.content == "one" and resp.model == "file-model"
        assert server.remaining == 1
    (tmp_path / "bad.jsonl").write_text('{"content": "ok"}\n{"nope": 1}\n')
    with pytest.raises(ScriptError, match="turn 1"):
        load_script(tmp_path / "bad.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"content": \n')
    with pytest.raises(ScriptError, match="broken.jsonl:1"):
        load_script(tmp_path / "broken.jsonl")


def start_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "agent.testing.scripted_server", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_on_signal(tmp_path, sig):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([{"content": "from the cli"}, {"tool_calls": [{"name": "ls"}]}]))
    proc = start_cli(str(script), "--model", "cli-model")
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        c = openai.OpenAI(base_url=url, api_key="test", max_retries=0)
        got = assemble(list(c.chat.completions.create(model="m", messages=MESSAGES, stream=True)))
        assert got["content"] == "from the cli"
        resp = c.chat.completions.create(model="m", messages=MESSAGES)
        assert resp.choices[0].message.tool_calls[0].function.name == "ls" and resp.model == "cli-model"
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert "serving 2 of 2 turns" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_refuses_non_loopback_host_and_bad_script(tmp_path):
    script = tmp_path / "script.json"
    script.write_text("[]")
    proc = start_cli(str(script), "--host", "0.0.0.0")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "non-loopback" in err
    script.write_text('[{"cotent": "x"}]')
    proc = start_cli(str(script))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == "" and "unknown key" in err


# -- the fixture --------------------------------------------------------------------------------------

_FIXTURE_PORTS: list[int] = []


def test_fixture_starts_servers(scripted_server):
    servers = [scripted_server([{"content": "a"}]), scripted_server([], model="other")]
    assert len({s.port for s in servers}) == 2
    assert client(servers[1]).models.list().data[0].id == "other"
    _FIXTURE_PORTS.extend(s.port for s in servers)


def test_fixture_stopped_servers_at_teardown():
    # Runs after the previous test (file order): its servers must no longer accept connections.
    if not _FIXTURE_PORTS:
        pytest.skip("needs test_fixture_starts_servers to run first")
    for port in _FIXTURE_PORTS:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
