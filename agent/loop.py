"""What the graph's nodes do: ask the model for a turn, run its tool calls, enforce the limits.

Per-step cost must stay flat as runs grow: nothing here walks or re-serialises the history
except the model request itself, and events are appended, never rewritten.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import events as ev
from agent.llm.types import Model, ModelTurn, ToolCall
from agent.state import AgentState
from tools.base import ToolContext
from tools.registry import ToolRegistry

MAX_EMPTY_REPLIES = 3

CUT_OFF_NOTE = (
    "Your previous reply was cut off at the output token limit (finish_reason=length), so its tool "
    "calls were NOT run. Reply again with shorter tool calls: split large file contents into several "
    "edits."
)
EMPTY_NOTE = (
    "Your previous reply was empty. Continue the task: call a tool, or call `finish` if you are done."
)


@dataclass
class Limits:
    max_steps: int = 100
    max_cost: float | None = None
    max_time: float | None = None


@dataclass
class Pricing:
    """USD per million tokens. Cached input falls back to the input price when unknown."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None

    def cost(self, prompt: int, completion: int, cached: int) -> float:
        cached_price = self.input if self.cached_input is None else self.cached_input
        uncached = max(prompt - cached, 0)
        return (uncached * self.input + cached * cached_price + completion * self.output) / 1_000_000


@dataclass
class Totals:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0


@dataclass
class StepTiming:
    step: int
    start: float
    model: float = 0.0
    tools: float = 0.0
    end: float = 0.0


@dataclass
class AgentLoop:
    model: Model
    registry: ToolRegistry
    ctx: ToolContext
    emit: Callable[[ev.Event], None]
    limits: Limits = field(default_factory=Limits)
    pricing: Pricing = field(default_factory=Pricing)
    totals: Totals = field(default_factory=Totals)
    timings: list[StepTiming] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _schemas: list[dict[str, Any]] | None = None
    _empty_replies: int = 0
    # The last turn's calls exactly as the model sent them. History holds normalised arguments
    # (see normalise_arguments); the tools node must see the raw ones to report bad JSON precisely.
    _pending: list[ToolCall] = field(default_factory=list)

    @property
    def schemas(self) -> list[dict[str, Any]]:
        # Built once: an unchanged tools list keeps the provider's prompt cache warm.
        if self._schemas is None:
            self._schemas = self.registry.schemas()
        return self._schemas

    def _limit_reached(self, step: int) -> tuple[str, str] | None:
        lim = self.limits
        if step > lim.max_steps:
            return "max_steps", f"reached the step limit ({lim.max_steps} steps)"
        if lim.max_cost is not None and self.totals.cost >= lim.max_cost:
            return "max_cost", f"reached the cost limit (${self.totals.cost:.4f} of ${lim.max_cost:.4f})"
        if lim.max_time is not None and time.monotonic() - self.started >= lim.max_time:
            return "time_limit", f"reached the time limit ({lim.max_time:.0f} s)"
        return None

    async def model_node(self, state: AgentState) -> dict[str, Any]:
        step = state.get("step", 0) + 1
        limit = self._limit_reached(step)
        if limit:
            return {"stop": limit[0], "stop_message": limit[1]}
        timing = StepTiming(step=step, start=time.perf_counter())
        self.timings.append(timing)
        self.emit(ev.StepStarted(step=step))

        def on_delta(kind: str, text: str) -> None:
            if kind == "reasoning":
                self.emit(ev.ReasoningDelta(step=step, text=text))
            else:
                self.emit(ev.TextDelta(step=step, text=text))

        t0 = time.perf_counter()
        turn = await self.model.complete(state["messages"], self.schemas, on_delta)
        timing.model = time.perf_counter() - t0
        self._account(step, turn)
        self.emit(
            ev.AssistantMessage(
                step=step,
                content=turn.content,
                reasoning=turn.reasoning,
                tool_calls=[
                    ev.ToolCallInfo(id=c.id, name=c.name, arguments=c.arguments) for c in turn.tool_calls
                ],
                finish_reason=turn.finish_reason,
            )
        )
        update: dict[str, Any] = {"step": step}
        if turn.tool_calls and turn.finish_reason == "length":
            # A call cut off mid-arguments could do damage if run: never execute it.
            timing.end = time.perf_counter()
            update["messages"] = [
                assistant_message(turn, with_calls=False),
                {"role": "user", "content": CUT_OFF_NOTE},
            ]
            return update
        if not turn.tool_calls:
            timing.end = time.perf_counter()
            if not turn.content.strip():
                self._empty_replies += 1
                if self._empty_replies >= MAX_EMPTY_REPLIES:
                    update.update(
                        stop="model_error",
                        stop_message=f"the model returned {MAX_EMPTY_REPLIES} empty replies in a row",
                    )
                else:
                    update["messages"] = [{"role": "user", "content": EMPTY_NOTE}]
                return update
            update.update(messages=[assistant_message(turn)], stop="answered", stop_message=turn.content)
            return update
        self._empty_replies = 0
        self._pending = list(turn.tool_calls)
        update["messages"] = [assistant_message(turn)]
        return update

    async def tools_node(self, state: AgentState) -> dict[str, Any]:
        timing = self.timings[-1]
        step = state.get("step", 0)
        calls, self._pending = self._pending, []
        results: list[dict[str, Any]] = []
        update: dict[str, Any] = {}
        t_tools = 0.0
        for call in calls:
            call_id, name, arguments = call.id, call.name, call.arguments
            self.emit(ev.ToolCallStarted(step=step, call_id=call_id, name=name, arguments=arguments))
            self.ctx.on_output = lambda text, cid=call_id: self.emit(
                ev.ToolOutputDelta(call_id=cid, text=text)
            )
            t0 = time.perf_counter()
            try:
                result = await self.registry.execute(name, arguments, self.ctx)
            finally:
                self.ctx.on_output = None
            took = time.perf_counter() - t0
            t_tools += took
            self.emit(
                ev.ToolCallFinished(
                    step=step,
                    call_id=call_id,
                    name=name,
                    output=result.output,
                    is_error=result.is_error,
                    duration=took,
                    data=jsonable(result.data),
                )
            )
            results.append(
                {"role": "tool", "tool_call_id": call_id, "content": result.output or "(no output)"}
            )
            if result.finished:
                update.update(stop="finished", stop_message=result.output)
                break
        # Every call gets an answer, even those after `finish`: providers reject dangling calls.
        answered = {r["tool_call_id"] for r in results}
        for call in calls:
            if call.id not in answered:
                results.append(
                    {"role": "tool", "tool_call_id": call.id, "content": "Not run: the task was finished."}
                )
        update["messages"] = results
        timing.tools = t_tools
        timing.end = time.perf_counter()
        return update

    def _account(self, step: int, turn: ModelTurn) -> None:
        usage = turn.usage
        if usage is None:
            return
        cost = self.pricing.cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        t = self.totals
        t.prompt_tokens += usage.prompt_tokens
        t.completion_tokens += usage.completion_tokens
        t.cached_tokens += usage.cached_tokens
        t.cost += cost
        self.emit(
            ev.UsageUpdate(
                step=step,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
                cost=cost,
                total_prompt_tokens=t.prompt_tokens,
                total_completion_tokens=t.completion_tokens,
                total_cached_tokens=t.cached_tokens,
                total_cost=t.cost,
            )
        )


def normalise_arguments(arguments: str) -> str:
    """Arguments as stored in history: re-serialised JSON, or "{}" when they do not parse, since
    some servers re-parse past arguments and reject the whole request otherwise (vLLM #43995)."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return "{}"
    return json.dumps(value, ensure_ascii=False)


def assistant_message(turn: ModelTurn, with_calls: bool = True) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": turn.content or ""}
    if with_calls and turn.tool_calls:
        msg["tool_calls"] = [tool_call_dict(c) for c in turn.tool_calls]
    elif not msg["content"]:
        msg["content"] = "(reply cut off)"
    return msg


def tool_call_dict(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": normalise_arguments(call.arguments)},
    }


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(data)
        return data
    except (TypeError, ValueError):
        return json.loads(json.dumps(data, default=str))
