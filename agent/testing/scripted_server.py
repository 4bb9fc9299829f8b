"""A scripted OpenAI-compatible Chat Completions server for tests, benchmarks and CLI runs.

No real model is ever reachable from the test machines, so everything that talks to a model is
driven by this server instead. It speaks the real wire protocol over HTTP/1.1 on a loopback port:
JSON responses, SSE streams in chunked transfer encoding (`data: {...}` events, `data: [DONE]`),
tool-call deltas in the shapes different providers use, usage, HTTP errors with headers, broken
streams, mid-stream error events and latency. Stdlib only.

Each POST /v1/chat/completions consumes the next turn of the script, in order. A turn is a dict (or
a callable that receives the parsed request body and returns one); every key is optional:

  content, reasoning, reasoning_field      assistant text; reasoning streamed before content as
                                           `reasoning_content` (or the field named by reasoning_field)
  tool_calls: [{name, arguments, id}]      arguments: dict (JSON-encoded) or str (sent verbatim)
  finish_reason                            default "tool_calls" if tool_calls else "stop"
  usage: {prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens}  (missing ones estimated)
  usage_on_finish_chunk                    usage rides on the finish chunk (Cerebras), not a usage chunk
  chunk_size (8), whole_tool_calls, omit_index, omit_id, repeat_name, no_done, role_chunk (True),
  sse_comments (True or a count)           streaming shape controls
  latency, chunk_delay                     seconds before the response / between SSE events
  error: {status, body, headers, message, type, code}   an HTTP error instead of a completion
  break_after_chunks: N                    send N data events, then close the socket mid-body
  drop_connection                          close the socket without sending any response
  stream_error: {...}                      after the content, `data: {"error": {...}}`, then end (HTTP 200)
  raw_sse: str / raw_json: dict | str      served verbatim, whatever the request asked for

When the script is exhausted the server answers HTTP 500 with an OpenAI-style error whose message
says "scripted server: script exhausted after N turns".

Run standalone: `python -m agent.testing.scripted_server SCRIPT.json [--port N] [--host 127.0.0.1]`
prints the base URL on its first stdout line and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import http
import ipaddress
import json
import re
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Turn = dict[str, Any]
TurnSpec = Turn | Callable[[dict[str, Any]], Turn]

TURN_KEYS = frozenset(
    {
        "content",
        "reasoning",
        "reasoning_field",
        "tool_calls",
        "finish_reason",
        "usage",
        "usage_on_finish_chunk",
        "chunk_size",
        "whole_tool_calls",
        "omit_index",
        "omit_id",
        "repeat_name",
        "no_done",
        "role_chunk",
        "sse_comments",
        "latency",
        "chunk_delay",
        "error",
        "break_after_chunks",
        "drop_connection",
        "stream_error",
        "raw_sse",
        "raw_json",
    }
)
TOOL_CALL_KEYS = frozenset({"name", "arguments", "id"})
USAGE_KEYS = frozenset({"prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens"})
ERROR_KEYS = frozenset({"status", "body", "headers", "message", "type", "code"})

_ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "overloaded"),
}
_DEFAULT_CHUNK_SIZE = 8
_SSE_COMMENT = b": OPENROUTER PROCESSING\n\n"
_JSON_SEPARATORS = (",", ":")
_SSE_EVENT = re.compile(rb".*?\n\n|.+\Z", re.S)


class ScriptError(ValueError):
    """A turn of the script is malformed."""


def validate_turn(turn: Any, where: str = "turn") -> Turn:
    """Check a turn dict's keys and value types; raise ScriptError naming the problem."""
    if not isinstance(turn, dict):
        raise ScriptError(f"{where}: a turn must be a dict, got {type(turn).__name__}")
    unknown = set(turn) - TURN_KEYS
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(TURN_KEYS)}")
    for key in ("content", "reasoning", "reasoning_field", "finish_reason", "raw_sse"):
        if turn.get(key) is not None and not isinstance(turn[key], str):
            raise ScriptError(f"{where}: {key!r} must be a string")
    calls = turn.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise ScriptError(f"{where}: 'tool_calls' must be a list")
        for i, call in enumerate(calls):
            if not isinstance(call, dict) or not isinstance(call.get("name"), str):
                raise ScriptError(f"{where}: tool_calls[{i}] must be a dict with a string 'name'")
            bad = set(call) - TOOL_CALL_KEYS
            if bad:
                raise ScriptError(f"{where}: tool_calls[{i}] has unknown key(s) {sorted(bad)}")
            if not isinstance(call.get("arguments", {}), dict | str):
                raise ScriptError(f"{where}: tool_calls[{i}].arguments must be a dict or a string")
    usage = turn.get("usage")
    if usage is not None and (not isinstance(usage, dict) or set(usage) - USAGE_KEYS):
        raise ScriptError(f"{where}: 'usage' must be a dict with keys from {sorted(USAGE_KEYS)}")
    error = turn.get("error")
    if error is not None:
        if not isinstance(error, dict) or set(error) - ERROR_KEYS:
            raise ScriptError(f"{where}: 'error' must be a dict with keys from {sorted(ERROR_KEYS)}")
        if not isinstance(error.get("status", 500), int):
            raise ScriptError(f"{where}: error.status must be an int")
    size = turn.get("chunk_size", _DEFAULT_CHUNK_SIZE)
    if not isinstance(size, int) or size < 1:
        raise ScriptError(f"{where}: 'chunk_size' must be a positive int")
    brk = turn.get("break_after_chunks")
    if brk is not None and (not isinstance(brk, int) or brk < 0):
        raise ScriptError(f"{where}: 'break_after_chunks' must be a non-negative int")
    if turn.get("stream_error") is not None and not isinstance(turn["stream_error"], dict):
        raise ScriptError(f"{where}: 'stream_error' must be a dict")
    if turn.get("raw_json") is not None and not isinstance(turn["raw_json"], dict | list | str):
        raise ScriptError(f"{where}: 'raw_json' must be a dict or a string")
    return turn


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=_JSON_SEPARATORS, ensure_ascii=False)


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _error_body(status: int, message: str, type_: str | None = None, code: str | None = None) -> dict:
    kind, kind_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": message, "type": type_ or kind, "param": None, "code": code or kind_code}}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads would otherwise block server_close()
    scripted: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:  # connection noise is expected
        pass


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ScriptedServer/1.0"
    sys_version = ""
    server: _HTTPServer

    # -- connection plumbing ---------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.scripted._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.scripted._track(self.connection, add=False)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # the client went away, or stop() shut the socket
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.scripted.verbose:
            sys.stderr.write(f"scripted server: {self.address_string()} {format % args}\n")

    def _abort(self) -> None:
        """Close the socket now: the client sees EOF wherever the response stands."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _head(
        self, status: int, content_type: str | None, headers: dict[str, str], length: int | None
    ) -> bytes:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"x-request-id: req_{self.server.scripted._next_id('req')}",
        ]
        names = {k.lower() for k in headers}
        if content_type and "content-type" not in names:
            lines.append(f"Content-Type: {content_type}")
        if length is None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {length}")
        if self.close_connection:
            lines.append("Connection: close")
        lines.extend(f"{k}: {v}" for k, v in headers.items())
        self.log_request(status)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_body(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "application/json",
        headers: dict | None = None,
    ) -> None:
        self.wfile.write(self._head(status, content_type, headers or {}, len(body)) + body)

    def _send_json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        self._send_body(status, _dumps(obj).encode(), "application/json", headers)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- routing ---------------------------------------------------------------------------------

    def _route(self) -> str:
        path = self.path.split("?", 1)[0].rstrip("/")
        return path[3:] if path.startswith("/v1/") or path == "/v1" else path

    def do_GET(self) -> None:
        route = self._route()
        model = self.server.scripted.model
        entry = {"id": model, "object": "model", "created": 0, "owned_by": "scripted"}
        if route == "/models":
            self._send_json(200, {"object": "list", "data": [entry]})
        elif route == f"/models/{model}":
            self._send_json(200, entry)
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        if self._route() != "/chat/completions":
            self._not_found()
            return
        self.server.scripted._serve_chat(self, raw)

    def _not_found(self) -> None:
        self._send_json(404, _error_body(404, f"scripted server: unknown path {self.command} {self.path}"))

    def _unsupported(self) -> None:
        self._read_body()
        self._not_found()

    do_PUT = do_DELETE = do_PATCH = _unsupported

    # -- streaming -------------------------------------------------------------------------------

    def _send_stream(
        self,
        events: list[tuple[bool, bytes]],
        *,
        chunk_delay: float = 0.0,
        break_after: int | None = None,
        headers: dict | None = None,
    ) -> None:
        """Send SSE `events` ((is_data, bytes) pairs) as HTTP chunks; break mid-body if asked."""
        head = self._head(
            200, "text/event-stream; charset=utf-8", {"Cache-Control": "no-cache", **(headers or {})}, None
        )
        out = [head]
        sent_data = 0
        broken = False
        for is_data, payload in events:
            if break_after is not None and is_data and sent_data >= break_after:
                broken = True
                break
            if chunk_delay and is_data and sent_data:
                self.wfile.write(b"".join(out))
                out.clear()
                time.sleep(chunk_delay)
            out.append(b"%x\r\n%s\r\n" % (len(payload), payload))
            sent_data += is_data
        if not broken:
            out.append(b"0\r\n\r\n")
        self.wfile.write(b"".join(out))
        if broken:
            self._abort()


class ScriptedServer:
    """A scripted OpenAI-compatible server on a loopback port, run in a daemon thread.

    >>> with ScriptedServer([{"content": "hi"}]) as server:
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="test")
    """

    def __init__(
        self,
        turns: Iterable[TurnSpec] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        model: str = "scripted-model",
        verbose: bool = False,
    ) -> None:
        if not is_loopback(host):
            raise ValueError(f"scripted server: refusing non-loopback host {host!r}")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.model = model
        self.verbose = verbose
        self._turns: list[TurnSpec] = []
        self._served = 0
        self._requests: list[dict[str, Any]] = []
        self.errors: list[str] = []  # internal failures (e.g. a callable turn raised), also sent as HTTP 500
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._conns: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self.extend(turns)

    # -- script ----------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ScriptedServer:
        """Load a script: a JSON list of turns, or JSONL with one turn per line."""
        return cls(load_script(path), **kwargs)

    def extend(self, turns: Iterable[TurnSpec]) -> None:
        """Append turns to the script (also while serving)."""
        turns = list(turns)
        with self._lock:
            start = len(self._turns)
        for i, turn in enumerate(turns):
            if not callable(turn):
                validate_turn(turn, f"turn {start + i}")
        with self._lock:
            self._turns.extend(turns)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat request received: {"body": parsed JSON (None if invalid), "headers", "path"}."""
        with self._lock:
            return list(self._requests)

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._turns) - self._served

    @property
    def served(self) -> int:
        with self._lock:
            return self._served

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("scripted server: not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        if self._httpd is not None:
            return self
        cls = _HTTPServer6 if ":" in self.host else _HTTPServer
        httpd = cls((self.host, self.port), _Handler)
        httpd.scripted = self
        self.port = httpd.server_address[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._httpd = httpd
        self._thread = threading.Thread(target=self._serve, name=f"scripted-server:{self.port}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        httpd, wake = self._httpd, self._wake_r
        assert httpd is not None and wake is not None
        with selectors.DefaultSelector() as sel:
            sel.register(httpd.socket, selectors.EVENT_READ)
            sel.register(wake, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is wake:
                        return
                    try:
                        request, address = httpd.get_request()
                    except OSError:
                        continue
                    try:
                        httpd.process_request(request, address)
                    except Exception:
                        httpd.shutdown_request(request)

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        assert self._wake_w is not None and self._wake_r is not None
        self._wake_w.send(b"x")
        if thread is not None:
            thread.join(timeout=5)
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._wake_w.close()
        self._wake_r.close()
        self._httpd = self._thread = self._wake_r = self._wake_w = None

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._httpd else "stopped"
        return f"<ScriptedServer {where} served={self.served} remaining={self.remaining}>"

    # -- internals -------------------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _next_id(self, kind: str) -> int:
        with self._lock:
            n = self._counters.get(kind, 0) + 1
            self._counters[kind] = n
            return n

    def _serve_chat(self, h: _Handler, raw: bytes) -> None:
        headers: dict[str, str] = {}
        for k, v in h.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self._requests.append({"body": body, "headers": headers, "path": h.path})
            spec = self._turns[self._served] if self._served < len(self._turns) else None
            total = len(self._turns)
            if spec is not None:
                self._served += 1
        if spec is None:
            message = f"scripted server: script exhausted after {total} turns"
            h._send_json(500, _error_body(500, message, code="script_exhausted"))
            return
        if not isinstance(body, dict):
            h._send_json(400, _error_body(400, "scripted server: request body is not a JSON object"))
            return
        try:
            turn = validate_turn(spec(body), f"turn {self._served}") if callable(spec) else spec
            respond = self._respond(h, turn, body)
        except Exception as exc:
            message = f"scripted server: turn failed: {exc!r}"
            self.errors.append(message + "\n" + traceback.format_exc())
            h._send_json(500, _error_body(500, message, code="script_error"))
            return
        respond()

    def _respond(self, h: _Handler, turn: Turn, body: dict) -> Callable[[], None]:
        """Build the response for `turn` (may raise on a bad turn) and return the sender."""
        stream = body.get("stream") is True
        latency = float(turn.get("latency") or 0)
        chunk_delay = float(turn.get("chunk_delay") or 0)
        brk = turn.get("break_after_chunks")

        def later(send: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                if latency:
                    time.sleep(latency)
                send()

            return run

        if turn.get("drop_connection"):
            return later(h._abort)

        if turn.get("error") is not None:
            err = turn["error"]
            status = int(err.get("status", 500))
            payload = err.get("body")
            if payload is None:
                message = err.get("message") or f"scripted error {status}"
                payload = _error_body(status, message, err.get("type"), err.get("code"))
            headers = {str(k): str(v) for k, v in (err.get("headers") or {}).items()}
            if isinstance(payload, str):
                data, ctype = payload.encode(), "text/plain; charset=utf-8"
            else:
                data, ctype = _dumps(payload).encode(), "application/json"
            return later(lambda: h._send_body(status, data, ctype, headers))

        if turn.get("raw_sse") is not None:
            # One HTTP chunk per SSE event; the bytes on the wire are exactly raw_sse.
            events = [(True, part) for part in _SSE_EVENT.findall(turn["raw_sse"].encode())]
            return later(lambda: h._send_stream(events, chunk_delay=chunk_delay, break_after=brk))

        if turn.get("raw_json") is not None:
            raw_json = turn["raw_json"]
            data = (raw_json if isinstance(raw_json, str) else _dumps(raw_json)).encode()
            return later(lambda: self._send_json_maybe_broken(h, data, brk))

        calls = self._tool_calls(turn)
        usage = self._usage(turn, body, calls)
        completion_id = f"chatcmpl-{self._next_id('chatcmpl')}"
        created = int(time.time())

        if not stream:
            if turn.get("stream_error") is not None:
                obj: Any = {"error": _stream_error(turn["stream_error"])}
            else:
                obj = self._completion(turn, calls, usage, completion_id, created)
            data = _dumps(obj).encode()
            return later(lambda: self._send_json_maybe_broken(h, data, brk))

        events = self._stream_events(turn, body, calls, usage, completion_id, created)
        return later(lambda: h._send_stream(events, chunk_delay=chunk_delay, break_after=brk))

    @staticmethod
    def _send_json_maybe_broken(h: _Handler, data: bytes, brk: int | None) -> None:
        if brk is None:
            h._send_body(200, data)
            return
        h.wfile.write(h._head(200, "application/json", {}, len(data)) + data[: len(data) // 2])
        h._abort()

    def _tool_calls(self, turn: Turn) -> list[dict[str, str]]:
        calls = []
        for call in turn.get("tool_calls") or []:
            args = call.get("arguments", {})
            calls.append(
                {
                    "id": call.get("id") or f"call_{self._next_id('call')}",
                    "name": call["name"],
                    "arguments": args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
                }
            )
        return calls

    def _usage(self, turn: Turn, body: dict, calls: list[dict[str, str]]) -> dict[str, Any]:
        given = turn.get("usage") or {}
        prompt = given.get("prompt_tokens")
        if prompt is None:
            prompt = len(_dumps(body.get("messages") or [])) // 4
        completion = given.get("completion_tokens")
        if completion is None:
            text = (turn.get("content") or "") + "".join(c["arguments"] for c in calls)
            completion = len(text) // 4 + 1
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": given.get("cached_tokens", 0)},
        }
        if given.get("reasoning_tokens") is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": given["reasoning_tokens"]}
        return usage

    def _completion(
        self, turn: Turn, calls: list[dict[str, str]], usage: dict, completion_id: str, created: int
    ) -> dict[str, Any]:
        content = turn.get("content")
        message: dict[str, Any] = {"role": "assistant", "content": content if content or not calls else None}
        if message["content"] is None and content is None and not calls:
            message["content"] = ""
        if turn.get("reasoning"):
            message[turn.get("reasoning_field") or "reasoning_content"] = turn["reasoning"]
        if calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ]
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": turn.get("finish_reason") or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": usage,
        }

    def _stream_events(
        self,
        turn: Turn,
        body: dict,
        calls: list[dict[str, str]],
        usage: dict,
        completion_id: str,
        created: int,
    ) -> list[tuple[bool, bytes]]:
        size = turn.get("chunk_size", _DEFAULT_CHUNK_SIZE)
        head = f'{{"id":"{completion_id}","object":"chat.completion.chunk","created":{created},"model":{_dumps(self.model)},'
        events: list[tuple[bool, bytes]] = []

        def chunk(
            delta: dict | None, finish: str | None = None, *, usage_: dict | None = None, choices: bool = True
        ) -> None:
            if choices:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                text = head + f'"choices":[{_dumps(choice)}]'
            else:
                text = head + '"choices":[]'
            if usage_ is not None:
                text += f',"usage":{_dumps(usage_)}'
            events.append((True, f"data: {text}}}\n\n".encode()))

        comments = turn.get("sse_comments")
        if comments:
            count = 2 if comments is True else int(comments)
            events.extend((False, _SSE_COMMENT) for _ in range(count))

        if turn.get("role_chunk", True):
            chunk({"role": "assistant"})
        if turn.get("reasoning"):
            field = turn.get("reasoning_field") or "reasoning_content"
            for frag in _split(turn["reasoning"], size):
                chunk({field: frag})
        for frag in _split(turn.get("content") or "", size):
            chunk({"content": frag})

        if turn.get("stream_error") is not None:
            events.append(
                (True, f"data: {_dumps({'error': _stream_error(turn['stream_error'])})}\n\n".encode())
            )
            return events

        omit_index, omit_id = turn.get("omit_index"), turn.get("omit_id")
        for index, call in enumerate(calls):

            def call_delta(name: bool, args: str, *, index: int = index, call: dict = call) -> None:
                d: dict[str, Any] = {} if omit_index else {"index": index}
                if name and not omit_id:
                    d["id"] = call["id"]
                if name:
                    d["type"] = "function"
                    d["function"] = {"name": call["name"], "arguments": args}
                else:
                    d["function"] = {"arguments": args}
                chunk({"tool_calls": [d]})

            if turn.get("whole_tool_calls"):
                call_delta(True, call["arguments"])
                continue
            call_delta(True, "")
            for frag in _split(call["arguments"], size):
                call_delta(bool(turn.get("repeat_name")), frag)

        finish = turn.get("finish_reason") or ("tool_calls" if calls else "stop")
        on_finish = bool(turn.get("usage_on_finish_chunk"))
        chunk({}, finish, usage_=usage if on_finish else None)
        include_usage = isinstance(body.get("stream_options"), dict) and body["stream_options"].get(
            "include_usage"
        )
        if include_usage and not on_finish:
            chunk(None, usage_=usage, choices=False)
        if not turn.get("no_done"):
            events.append((True, b"data: [DONE]\n\n"))
        return events


def _stream_error(spec: dict) -> dict:
    err = dict(spec)
    err.setdefault("message", "scripted stream error")
    err.setdefault("code", 502)
    return err


def load_script(path: str | Path) -> list[Turn]:
    """Read a script file: a JSON list of turns, or JSONL (one turn per line; blank lines skipped)."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            turns = json.loads(text)
        except ValueError as exc:
            raise ScriptError(f"{path}: invalid JSON: {exc}") from exc
    else:
        turns = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                turns.append(json.loads(line))
            except ValueError as exc:
                raise ScriptError(f"{path}:{lineno}: invalid JSON line: {exc}") from exc
    if not isinstance(turns, list):
        raise ScriptError(f"{path}: expected a JSON list of turns or JSONL")
    for i, turn in enumerate(turns):
        validate_turn(turn, f"{path}: turn {i}")
    return turns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent.testing.scripted_server",
        description="Serve a scripted OpenAI-compatible Chat Completions API on a loopback port.",
    )
    parser.add_argument("script", help="JSON list of turns, or JSONL with one turn per line")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--model", default="scripted-model", help="model id reported by the server")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)
    if not is_loopback(args.host):
        parser.error(f"refusing non-loopback host {args.host!r}")
    try:
        server = ScriptedServer.from_file(args.script, host=args.host, port=args.port, model=args.model)
    except (OSError, ScriptError) as exc:
        print(f"scripted server: {exc}", file=sys.stderr)
        return 2
    server.verbose = args.verbose

    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    try:
        print(server.base_url, flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop()
    print(
        f"scripted server: stopped after serving {server.served} of {server.served + server.remaining} turns",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
