"""Keeping a run inside the model's context window.

* Tool outputs are truncated to a share of the window before they enter the history.
* Before a request would come close to the window (reserving room for the reply), the middle of
  the history is compacted into a summary written by the model. If that call fails, a
  deterministic fallback drops old observations instead, so compaction can never loop.
* The head of the history (system prompt + task) is never touched, and compaction is the only
  thing that rewrites earlier messages: between compactions the request prefix is stable, which is
  what providers' prompt caches need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent.llm.errors import ModelError
from agent.llm.types import Model

CHARS_PER_TOKEN = 3.2  # conservative for code-heavy text: overestimating is the safe side
HEAD = 2  # system prompt + task message
SUMMARY_PROMPT = """\
The conversation below is an AI coding agent's work on a task, which has grown too long for the \
model's context window. Write a summary the agent can continue from, in at most {words} words:
- the task and any constraints it gave;
- what has been learned: relevant files, functions, causes, test results (keep exact paths, names, \
commands and error messages);
- what has been changed so far (files and the gist of each edit);
- what remains to be done next.
Write only the summary.

<conversation>
{transcript}
</conversation>"""
SUMMARY_INTRO = "[Earlier messages were compacted to fit the context window. Summary of the work so far:]\n\n"
DROPPED_INTRO = (
    "[Earlier messages were dropped to fit the context window; a summary could not be made. "
    "Tool calls made so far, oldest first:]\n"
)


def estimate_tokens(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return int(len(text) / CHARS_PER_TOKEN) + 4


@dataclass
class Budget:
    context_window: int
    reserve: int  # tokens kept free for the reply and for estimation error

    @classmethod
    def for_window(cls, window: int, max_output: int | None) -> Budget:
        reply = min(max_output or 4096, window // 4)
        return cls(context_window=window, reserve=reply + max(1024, window // 50))

    @property
    def limit(self) -> int:
        return self.context_window - self.reserve

    def tool_output_chars(self, configured: int) -> int:
        """A single tool output may take at most a fifth of the window."""
        return max(2000, min(configured, int(self.context_window * CHARS_PER_TOKEN / 5)))


def split_for_compaction(messages: list[dict[str, Any]], keep_tokens: int) -> int:
    """Index where the kept tail starts: recent messages worth up to `keep_tokens`, starting at an
    assistant message so no tool result is separated from its call."""
    start = len(messages)
    used = 0
    for i in range(len(messages) - 1, HEAD - 1, -1):
        used += estimate_tokens(messages[i])
        if used > keep_tokens and start < len(messages):
            break
        if messages[i]["role"] == "assistant":
            start = i
    return max(start, HEAD)


def transcript(messages: list[dict[str, Any]], max_chars: int) -> str:
    per_message = max(400, max_chars // max(len(messages), 1))
    lines = []
    for m in messages:
        content = m.get("content") or ""
        if len(content) > per_message:
            content = content[: per_message // 2] + " […] " + content[-per_message // 2 :]
        for call in m.get("tool_calls") or []:
            args = call["function"]["arguments"]
            content += f"\n-> {call['function']['name']}({args[:300]})"
        lines.append(f"[{m['role']}] {content}")
    return "\n".join(lines)


def calls_digest(messages: list[dict[str, Any]], max_chars: int) -> str:
    lines = []
    for m in messages:
        for call in m.get("tool_calls") or []:
            lines.append(f"- {call['function']['name']}({call['function']['arguments'][:160]})")
    text = "\n".join(lines)
    return text if len(text) <= max_chars else "…\n" + text[-max_chars:]


async def compact(
    messages: list[dict[str, Any]],
    model: Model,
    budget: Budget,
    *,
    summarise: bool = True,
    keep_recent: bool = True,
) -> tuple[list[dict[str, Any]], str]:
    """A shorter history that fits the budget, and a line saying how it was made.

    `keep_recent=False` keeps only the latest turn verbatim: used when the server reported an
    overflow our estimate did not foresee, so the estimate cannot be trusted for the tail."""
    keep = split_for_compaction(messages, budget.limit // 3 if keep_recent else 0)
    middle = messages[HEAD:keep]
    if not middle:  # the tail alone is too big: keep only the last assistant turn and its results
        keep = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        middle = messages[HEAD:keep]
    tail = messages[keep:]
    before = sum(estimate_tokens(m) for m in messages)
    note = ""
    if summarise and middle:
        words = max(150, min(1200, budget.limit // 12))
        prompt = SUMMARY_PROMPT.format(
            words=words, transcript=transcript(middle, int(budget.limit * CHARS_PER_TOKEN / 2))
        )
        try:
            turn = await model.complete([{"role": "user", "content": prompt}], [])
            summary = (turn.content or "").strip()
        except ModelError as exc:
            summary, note = "", f"the summary call failed ({exc}); "
        if summary:
            new = [*messages[:HEAD], {"role": "user", "content": SUMMARY_INTRO + summary}, *tail]
            after = sum(estimate_tokens(m) for m in new)
            if after <= budget.limit:
                return new, f"compacted {len(middle)} messages into a summary (~{before} → ~{after} tokens)"
            note += "the summary did not fit; "
    digest = calls_digest(middle, int(budget.limit * CHARS_PER_TOKEN / 8))
    new = [*messages[:HEAD], {"role": "user", "content": DROPPED_INTRO + (digest or "(none)")}, *tail]
    new = shrink_observations(new, budget)
    after = sum(estimate_tokens(m) for m in new)
    return new, f"{note}dropped {len(middle)} old messages (~{before} → ~{after} tokens)"


def shrink_observations(messages: list[dict[str, Any]], budget: Budget) -> list[dict[str, Any]]:
    """Cut tool outputs, oldest first, until the history fits (or nothing is left to cut)."""
    out = [dict(m) for m in messages]
    total = sum(estimate_tokens(m) for m in out)
    for m in out[HEAD:]:
        if total <= budget.limit:
            break
        if m["role"] == "tool" and len(m.get("content") or "") > 600:
            old = estimate_tokens(m)
            text = m["content"]
            m["content"] = text[:300] + "\n[… output shortened to fit the context window …]\n" + text[-200:]
            total += estimate_tokens(m) - old
    return out
