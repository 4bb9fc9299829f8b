"""An in-process model that replays scripted turns with no HTTP: for unit tests of the loop and
for benchmarks that must isolate the framework from the model client. Turns use the same keys as
the scripted server's (`content`, `reasoning`, `tool_calls`, `finish_reason`, `usage`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from agent.llm.errors import ModelError
from agent.llm.types import DeltaCallback, ModelTurn, ToolCall, Usage


class ScriptedModel:
    def __init__(self, turns: Iterable[dict[str, Any]], name: str = "scripted"):
        self.name = name
        self.turns = list(turns)
        self.requests: list[list[dict[str, Any]]] = []  # the messages of every call

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: DeltaCallback | None = None,
        max_tokens: int | None = None,
    ) -> ModelTurn:
        await asyncio.sleep(0)  # a real model call yields to the event loop; so does this one
        self.requests.append(messages)
        if len(self.requests) > len(self.turns):
            raise ModelError(f"scripted model: script exhausted after {len(self.turns)} turns")
        spec = self.turns[len(self.requests) - 1]
        calls = [
            ToolCall(
                id=c.get("id") or f"call_{len(self.requests)}_{i}",
                name=c["name"],
                arguments=c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"]),
            )
            for i, c in enumerate(spec.get("tool_calls") or [])
        ]
        if on_delta and spec.get("content"):
            on_delta("text", spec["content"])
        usage = spec.get("usage") or {}
        return ModelTurn(
            content=spec.get("content") or "",
            reasoning=spec.get("reasoning"),
            tool_calls=calls,
            finish_reason=spec.get("finish_reason") or ("tool_calls" if calls else "stop"),
            usage=Usage(**usage) if usage else Usage(100, 20, 80),
        )

    async def aclose(self) -> None:
        return None
