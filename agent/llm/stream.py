"""Assembling a streamed turn from Chat Completions chunks, whatever the server's dialect.

Servers disagree on tool-call deltas (research/providers.md §2, F9): most send `index` and the id
once; Ollama may send neither; Groq and Cerebras send each call whole in one chunk; llama.cpp
repeats the name and id in every delta. The assembler keys calls by index when there is one,
by a new id otherwise, and sets id and name once, so every dialect lands on the same calls.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from agent.llm.types import ModelTurn, ToolCall, Usage


@dataclass
class _Slot:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)

    def args_complete(self) -> bool:
        text = "".join(self.arguments)
        if not text:
            return False
        try:
            json.loads(text)
            return True
        except json.JSONDecodeError:
            return False


class TurnAssembler:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.slots: list[_Slot] = []
        self._by_index: dict[int, _Slot] = {}
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.chunks = 0

    def add_tool_delta(
        self, index: int | None, call_id: str | None, name: str | None, args: str | None
    ) -> None:
        slot = self._slot_for(index, call_id, name)
        if call_id and not slot.id:
            slot.id = call_id
        if name and not slot.name:
            slot.name = name
        if args:
            slot.arguments.append(args)

    def _slot_for(self, index: int | None, call_id: str | None, name: str | None) -> _Slot:
        if index is not None:
            slot = self._by_index.get(index)
            if slot is None:
                slot = self._by_index[index] = _Slot()
                self.slots.append(slot)
            return slot
        if call_id:
            for slot in self.slots:
                if slot.id == call_id:
                    return slot
            if self.slots and self.slots[-1].id is None and not self.slots[-1].args_complete():
                return self.slots[-1]
            self.slots.append(_Slot())
            return self.slots[-1]
        # No index and no id (Ollama): a delta with a name starts a new call unless the last call is
        # still being built; a nameless delta continues the last call.
        if not self.slots or (name and (self.slots[-1].args_complete() or self.slots[-1].name != name)):
            self.slots.append(_Slot())
        return self.slots[-1]

    def set_usage(self, usage: Any) -> None:
        if usage is None:
            return
        self.usage = usage_from(usage)

    def turn(self) -> ModelTurn:
        calls = [
            ToolCall(
                id=s.id or f"call_{uuid.uuid4().hex[:24]}",
                name=(s.name or "").strip(),
                arguments="".join(s.arguments),
            )
            for s in self.slots
            if s.name or s.arguments
        ]
        return ModelTurn(
            content="".join(self.text),
            reasoning="".join(self.reasoning) or None,
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=self.usage,
        )


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    value = getattr(obj, key, None)
    if value is None:
        extra = getattr(obj, "model_extra", None)
        if extra:
            value = extra.get(key)
    return value


def usage_from(usage: Any) -> Usage:
    """Read usage from any provider's shape, including DeepSeek's cache-hit field."""
    details = _get(usage, "prompt_tokens_details")
    cached = _get(details, "cached_tokens") or _get(usage, "prompt_cache_hit_tokens") or 0
    return Usage(
        prompt_tokens=int(_get(usage, "prompt_tokens") or 0),
        completion_tokens=int(_get(usage, "completion_tokens") or 0),
        cached_tokens=int(cached),
    )


def reasoning_of(delta: Any) -> str | None:
    """Reasoning text under any of the names servers use for it."""
    for key in ("reasoning_content", "reasoning"):
        value = _get(delta, key)
        if isinstance(value, str) and value:
            return value
    details = _get(delta, "reasoning_details")
    if isinstance(details, list):
        texts = [_get(d, "text") for d in details]
        joined = "".join(t for t in texts if isinstance(t, str))
        return joined or None
    return None


get_field = _get
