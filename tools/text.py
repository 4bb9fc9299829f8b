"""Text helpers shared by tools: output truncation, binary detection, line ranges."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator

TRUNCATION_MARKER = "\n\n[... {omitted} characters omitted from the middle of this output; {hint} ...]\n\n"


def truncate_middle(text: str, max_chars: int, hint: str = "narrow the command or filter its output") -> str:
    """Keep the head and the tail of `text` within `max_chars`, with a clear marker between.

    Errors and summaries usually sit at the end of an output and context at the start, so both
    ends are kept; the marker says how much was dropped and what to do about it.
    """
    if len(text) <= max_chars:
        return text
    keep = max(max_chars - 160, 0)
    head = keep * 2 // 5
    tail = keep - head
    omitted = len(text) - head - tail
    return text[:head] + TRUNCATION_MARKER.format(omitted=omitted, hint=hint) + text[len(text) - tail :]


def looks_binary(sample: bytes) -> bool:
    """Heuristic used by git and ripgrep: a NUL byte in the first block means binary."""
    return b"\x00" in sample[:8192]


def parse_line_range(value: Any) -> Any:
    """A `view_range` as models send it: [10, 40], or the same as a string ("[10, 40]", "10,40").
    Anything else is returned as is for pydantic to judge."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return [part.strip() for part in text.strip("[]()").split(",") if part.strip()]
    return value


# A tool parameter holding [start, end] line numbers, lenient about how models send it.
LineRange = Annotated[list[int] | None, BeforeValidator(parse_line_range)]
