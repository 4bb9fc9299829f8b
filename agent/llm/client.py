"""The model client: any OpenAI-compatible Chat Completions server through the `openai` SDK.

Retries are ours, not the SDK's (`max_retries=0`): the SDK retries only the opening request, while
a stream that breaks halfway or carries an error event after HTTP 200 must be retried too. The
backoff honours `Retry-After` (seconds, HTTP date, or `retry-after-ms`).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.llm import errors
from agent.llm.stream import TurnAssembler, get_field, reasoning_of, usage_from
from agent.llm.types import DeltaCallback, ModelTurn

RetryCallback = Callable[[errors.ModelError, int, float], None]


@dataclass
class ClientConfig:
    model: str
    base_url: str
    api_key: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_tokens_param: str = "max_tokens"  # MiniMax wants max_completion_tokens
    extra_body: dict[str, Any] = field(default_factory=dict)
    request_timeout: float = 600.0
    connect_timeout: float = 15.0
    max_retries: int = 4
    retry_base_delay: float = 1.0
    retry_max_delay: float = 60.0
    stream: bool = True

    @classmethod
    def from_profile(cls, profile: Any, **overrides: Any) -> ClientConfig:
        """The client settings a ModelProfile implies; `overrides` set timeouts, retries, streaming."""
        fields: dict[str, Any] = {
            "model": profile.model,
            "base_url": profile.base_url,
            "api_key": profile.api_key,
            "temperature": profile.temperature,
            "top_p": profile.top_p,
            "max_tokens_param": profile.max_tokens_param,
            "extra_body": dict(profile.extra_body),
        }
        return cls(**{**fields, **overrides})


class OpenAIModel:
    def __init__(self, config: ClientConfig, on_retry: RetryCallback | None = None):
        import httpx
        import openai

        self.config = config
        self.name = config.model
        self.on_retry = on_retry
        self.profile: Any = None  # the ModelProfile it was built from, when there is one
        self._openai = openai
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            max_retries=0,
            timeout=httpx.Timeout(config.request_timeout, connect=config.connect_timeout),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: DeltaCallback | None = None,
        max_tokens: int | None = None,
    ) -> ModelTurn:
        attempt = 0
        while True:
            try:
                return await self._complete_once(messages, tools, on_delta, max_tokens)
            except errors.ModelError as exc:
                if not exc.retryable or attempt >= self.config.max_retries:
                    raise
                delay = self._delay(exc, attempt)
                attempt += 1
                if self.on_retry:
                    self.on_retry(exc, attempt, delay)
                await asyncio.sleep(delay)

    def _delay(self, exc: errors.ModelError, attempt: int) -> float:
        if exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.config.retry_max_delay)
        base = self.config.retry_base_delay * (2**attempt)
        return min(base * (0.75 + random.random() / 2), self.config.retry_max_delay)

    def _request(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], max_tokens: int | None = None
    ) -> dict[str, Any]:
        cfg = self.config
        cap = max_tokens if max_tokens is not None else cfg.max_tokens
        # Messages and tools are already wire-format JSON dicts, so they travel in `extra_body`,
        # which the SDK merges into the request body as is. Passed as `messages=`, the SDK's
        # type-driven transform walks the whole history on every request: 45 ms per request at
        # 200 steps and 200 ms at 800, growing with run length (bench/overhead.py).
        wire: dict[str, Any] = {**cfg.extra_body, "messages": messages}
        if tools:
            wire["tools"] = tools
        req: dict[str, Any] = {"model": cfg.model, "messages": [], "extra_body": wire}
        if cfg.temperature is not None:
            req["temperature"] = cfg.temperature
        if cfg.top_p is not None:
            req["top_p"] = cfg.top_p
        if cap is not None:
            if cfg.max_tokens_param == "max_tokens":
                req["max_tokens"] = cap
            else:
                wire[cfg.max_tokens_param] = cap
        if cfg.stream:
            req["stream"] = True
            req["stream_options"] = {"include_usage": True}
        return req

    async def _complete_once(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: DeltaCallback | None,
        max_tokens: int | None = None,
    ) -> ModelTurn:
        request = self._request(messages, tools, max_tokens)
        try:
            if self.config.stream:
                return await self._stream(request, on_delta)
            response = await self._client.chat.completions.create(**request)
            return turn_from_completion(response)
        except errors.ModelError:
            raise
        except self._openai.APIError as exc:
            raise translate_error(exc, self.config.base_url) from exc
        except Exception as exc:
            # Transport errors raised while iterating a stream are not wrapped by the SDK.
            if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2", "h11"):
                raise errors.StreamError(
                    f"the stream from {self.config.base_url} broke off: {exc!r}"
                ) from exc
            raise

    async def _stream(self, request: dict[str, Any], on_delta: DeltaCallback | None) -> ModelTurn:
        asm = TurnAssembler()
        stream = await self._client.chat.completions.create(**request)
        try:
            async for chunk in stream:
                asm.chunks += 1
                usage = get_field(chunk, "usage")
                if usage:
                    asm.set_usage(usage)
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if delta is not None:
                        reasoning = reasoning_of(delta)
                        if reasoning:
                            asm.reasoning.append(reasoning)
                            if on_delta:
                                on_delta("reasoning", reasoning)
                        if delta.content:
                            asm.text.append(delta.content)
                            if on_delta:
                                on_delta("text", delta.content)
                        for tc in delta.tool_calls or []:
                            fn = tc.function
                            asm.add_tool_delta(
                                tc.index if isinstance(tc.index, int) else None,
                                tc.id,
                                fn.name if fn else None,
                                fn.arguments if fn else None,
                            )
                    if choice.finish_reason:
                        asm.finish_reason = choice.finish_reason
        finally:
            await stream.close()
        if asm.chunks == 0:
            raise errors.StreamError("the server closed the stream without sending anything")
        return asm.turn()


def turn_from_completion(response: Any) -> ModelTurn:
    """A non-streaming `chat.completion` as a turn (same assembly rules as a stream)."""
    asm = TurnAssembler()
    if isinstance(response, str):
        raise errors.BadRequestError(
            f"the server answered with text instead of a completion: {response[:200]!r}"
        )
    choices = get_field(response, "choices") or []
    if not choices:
        raise errors.StreamError("the server returned a completion with no choices")
    choice = choices[0]
    message = get_field(choice, "message")
    asm.text.append(get_field(message, "content") or "")
    reasoning = reasoning_of(message)
    if reasoning:
        asm.reasoning.append(reasoning)
    for i, tc in enumerate(get_field(message, "tool_calls") or []):
        fn = get_field(tc, "function")
        args = get_field(fn, "arguments")
        if isinstance(args, dict):  # some servers send an object instead of a JSON string
            import json

            args = json.dumps(args)
        asm.add_tool_delta(i, get_field(tc, "id"), get_field(fn, "name"), args)
    asm.finish_reason = get_field(choice, "finish_reason")
    usage = get_field(response, "usage")
    if usage:
        asm.usage = usage_from(usage)
    return asm.turn()


def translate_error(exc: Exception, base_url: str) -> errors.ModelError:
    """Map SDK exceptions to ours, with a message that says what to do."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return errors.ModelTimeoutError(f"the model server at {base_url} did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        if _is_broken_stream(cause):
            return errors.StreamError(f"the stream from {base_url} broke off: {cause}")
        return errors.ModelConnectionError(
            f"cannot reach the model server at {base_url} ({cause or exc}). "
            "Check that it is running and that --base-url is right."
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        retry_after = _retry_after(exc.response.headers) if exc.response is not None else None
        if status in (400, 403, 413, 422) and errors.is_context_overflow(message):
            return errors.ContextOverflowError(
                f"the request exceeds the model's context window: {message}", status=status
            )
        if status == 429:
            return errors.RateLimitError(
                f"rate limited by {base_url}: {message}", status=status, retry_after=retry_after
            )
        if status in (401, 403):
            return errors.AuthError(
                f"the server at {base_url} refused the API key ({status}: {message}). "
                "Check the key in the variable named by --api-key-env.",
                status=status,
            )
        if status == 404:
            return errors.BadRequestError(
                f"not found at {base_url} ({message}). Check --model (list ids with GET /models) and --base-url "
                "(it usually ends in /v1).",
                status=status,
            )
        if status >= 500 or status in (408, 409):
            return errors.ServerError(
                f"server error {status} from {base_url}: {message}", status=status, retry_after=retry_after
            )
        return errors.BadRequestError(
            f"the server at {base_url} rejected the request ({status}): {message}", status=status
        )
    if isinstance(exc, openai.APIError):
        # An error event inside a 200 stream (OpenRouter does this): retryable.
        return errors.StreamError(f"the server reported an error mid-stream: {_error_message(exc)}")
    return errors.ModelError(str(exc))


def _is_broken_stream(cause: BaseException | None) -> bool:
    name = type(cause).__name__ if cause else ""
    return name in ("RemoteProtocolError", "ReadError", "IncompleteRead")


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("message"):
            return str(body["message"])
    return getattr(exc, "message", None) or str(exc)


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
