"""What a model turn is, independent of any SDK: the graph and the trajectory speak these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# on_delta(kind, text) with kind "text" or "reasoning": live tokens for front ends.
DeltaCallback = Callable[[str, str], None]


@dataclass
class ToolCall:
    id: str  # kept verbatim: Kimi K2 needs its own `functions.name:N` ids echoed back exactly
    name: str
    arguments: str  # the raw JSON text the model produced


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass
class ModelTurn:
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None


class Model(Protocol):
    """Anything that can take a conversation and answer with a turn."""

    name: str

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: DeltaCallback | None = None,
        max_tokens: int | None = None,
    ) -> ModelTurn: ...

    async def aclose(self) -> None: ...
