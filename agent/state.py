"""The graph state. Messages are plain OpenAI-format dicts appended with `operator.add`.

We deliberately do not store langchain_core message objects through `add_messages`: that
reducer re-converts the whole history on every step (cost grows with run length), and plain
dicts keep provider fields (tool-call ids, reasoning) exactly as received and go to the model
client without conversion.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class AgentState(TypedDict, total=False):
    messages: Annotated[list[dict[str, Any]], operator.add]
    step: int
    stop: str | None
    stop_message: str
