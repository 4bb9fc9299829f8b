"""From what a server sent to what the agent acts on (research/providers.md F1-F5, F9, F10).

* Inline `<think>` blocks move out of the content into the reasoning.
* Native tool-call names lose markup residue (`read_file</function>`); calls a server left in the
  text (Kimi section tokens, Qwen XML, Hermes, harmony) are recovered from content or reasoning,
  accepting only offered tools.
* Arguments are repaired when that is safe; otherwise the call carries a precise problem that is
  sent to the model instead of running it.
* The history message follows the model's reasoning policy, so providers that need reasoning back
  get it and those that reject it do not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from agent.llm.recovery import clean_tool_name, recover_tool_calls, repair_arguments
from agent.llm.types import ModelTurn, ToolCall

THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# Markers of an attempted tool call in text; when present but nothing parses, the turn failed.
CALL_MARKERS = ("<tool_call", "<|tool_call", "<function=", "to=functions.", "<|tool_calls_section")


@dataclass
class Normalised:
    turn: ModelTurn
    history_content: str  # the assistant content as stored in the history
    notes: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # call id -> message instead of running it
    parse_failed: bool = False


def split_think(content: str) -> tuple[str, str]:
    """(visible text, reasoning) from content that may hold `<think>` blocks, including an
    unclosed one at the end and a closing tag whose opening tag the chat template swallowed."""
    thoughts = [m.strip() for m in THINK_RE.findall(content)]
    visible = THINK_RE.sub("", content)
    if "</think>" in visible:  # opening tag missing: everything before the close is reasoning
        before, _, visible = visible.partition("</think>")
        thoughts.insert(0, before.replace("<think>", "").strip())
    if "<think>" in visible:  # unclosed: everything after the open is reasoning
        visible, _, rest = visible.partition("<think>")
        thoughts.append(rest.strip())
    return visible.strip(), "\n\n".join(t for t in thoughts if t)


def normalise_turn(turn: ModelTurn, tools: dict[str, dict[str, Any]], policy: str = "omit") -> Normalised:
    raw_content = turn.content or ""
    content, inline_reasoning = split_think(raw_content) if "think>" in raw_content else (raw_content, "")
    reasoning = "\n\n".join(r for r in (turn.reasoning or "", inline_reasoning) if r) or None
    out = Normalised(turn=turn, history_content=raw_content if policy == "inline_think" else content)
    calls = list(turn.tool_calls)

    if calls:
        for call in calls:
            cleaned = clean_tool_name(call.name, tools)
            if cleaned and cleaned != call.name:
                out.notes.append(f"tool name {call.name!r} cleaned to {cleaned!r}")
                call.name = cleaned
    elif tools:
        for source in (content, reasoning or ""):
            if not source or not any(m in source for m in CALL_MARKERS):
                continue
            found = recover_tool_calls(source, tools)
            if found.calls:
                calls = found.calls
                out.notes.append(
                    f"recovered {len(calls)} tool call(s) the server left in the text ({found.format})"
                )
                if source is content:
                    content = found.text
                    if policy != "inline_think":
                        out.history_content = content
                else:
                    reasoning = found.text or None
                break
            out.parse_failed = True
            if found.rejected:
                out.notes.append("; ".join(found.rejected))

    for call in calls:
        repair = repair_arguments(call.arguments, tools.get(call.name))
        if repair.arguments is None:
            out.problems[call.id] = f"{call.name}: {repair.error}"
            out.parse_failed = True
        elif repair.repaired:
            call.arguments = repair.arguments
            out.notes.append(f"{call.name}: arguments repaired ({repair.note})")

    out.turn = ModelTurn(
        content=content,
        reasoning=reasoning,
        tool_calls=calls,
        finish_reason=turn.finish_reason,
        usage=turn.usage,
    )
    return out


def history_message(norm: Normalised, policy: str, with_calls: bool = True) -> dict[str, Any]:
    """The assistant message as it goes back to the provider on later requests."""
    turn = norm.turn
    msg: dict[str, Any] = {"role": "assistant", "content": norm.history_content or ""}
    has_calls = with_calls and bool(turn.tool_calls)
    if has_calls:
        msg["tool_calls"] = [tool_call_dict(c) for c in turn.tool_calls]
    elif not msg["content"]:
        msg["content"] = "(no reply)"  # strict providers reject empty assistant messages
    if turn.reasoning and (policy == "send_all" or (policy == "send_on_tool_turns" and has_calls)):
        msg["reasoning_content"] = turn.reasoning
    return msg


def normalise_arguments(arguments: str) -> str:
    """Arguments as stored in history: re-serialised JSON, or "{}" when they do not parse, since
    some servers re-parse past arguments and reject the whole request otherwise (vLLM #43995)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return "{}"
    return json.dumps(value, ensure_ascii=False)


def tool_call_dict(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": normalise_arguments(call.arguments)},
    }


def tool_schemas_by_name(schemas: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["function"]["name"]: s["function"].get("parameters") or {} for s in schemas}
