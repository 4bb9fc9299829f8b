"""Replay the model turns of a recorded trajectory: any recorded run is also a regression test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.llm.errors import ModelError
from agent.llm.types import DeltaCallback, ModelTurn, ToolCall, Usage


class ReplayExhausted(ModelError):
    pass


def load_turns(path: Path) -> list[ModelTurn]:
    """Every `assistant_message` event of a trajectory (or a bare script of them), in order."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"cannot read the replay file {path}: {exc.strerror or exc}") from exc
    turns: list[ModelTurn] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}:{lineno}: not a JSON line ({exc.msg})") from exc
        if record.get("type") != "assistant_message":
            continue
        turns.append(turn_from_record(record))
    if not turns:
        raise ModelError(f"{path} holds no assistant_message events to replay")
    return turns


def turn_from_record(record: dict[str, Any]) -> ModelTurn:
    calls = [
        ToolCall(
            id=c["id"],
            name=c["name"],
            arguments=c["arguments"] if isinstance(c["arguments"], str) else json.dumps(c["arguments"]),
        )
        for c in record.get("tool_calls") or []
    ]
    usage = record.get("usage")
    return ModelTurn(
        content=record.get("content") or "",
        reasoning=record.get("reasoning"),
        tool_calls=calls,
        finish_reason=record.get("finish_reason"),
        usage=Usage(**usage) if isinstance(usage, dict) else None,
    )


class ReplayModel:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = f"replay:{self.path}"
        self._turns = load_turns(self.path)
        self._next = 0

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        on_delta: DeltaCallback | None = None,
        max_tokens: int | None = None,
    ) -> ModelTurn:
        if self._next >= len(self._turns):
            raise ReplayExhausted(
                f"the replay {self.path} has no more model turns (it had {len(self._turns)})"
            )
        turn = self._turns[self._next]
        self._next += 1
        if on_delta:
            if turn.reasoning:
                on_delta("reasoning", turn.reasoning)
            if turn.content:
                on_delta("text", turn.content)
        return turn

    async def aclose(self) -> None:
        return None
