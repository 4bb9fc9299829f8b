"""The graph state. Messages are plain OpenAI-format dicts.

We deliberately do not store langchain_core message objects through `add_messages`: that
reducer re-converts the whole history on every step (cost grows with run length), and plain
dicts keep provider fields (tool-call ids, reasoning) exactly as received and go to the model
client without conversion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypedDict


@dataclass(frozen=True)
class Replace:
    """An update that replaces the whole history (compaction) instead of appending to it."""

    messages: list[dict[str, Any]]


def append_or_replace(
    left: list[dict[str, Any]], right: list[dict[str, Any]] | Replace
) -> list[dict[str, Any]]:
    if isinstance(right, Replace):
        return list(right.messages)
    return left + right


class AgentState(TypedDict, total=False):
    messages: Annotated[list[dict[str, Any]], append_or_replace]
    step: int
    stop: str | None
    stop_message: str
