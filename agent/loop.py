"""What the graph's nodes do: ask the model for a turn, run its tool calls, enforce the limits,
keep the history inside the context window, and stop runaway loops.

Per-step cost must stay flat as runs grow: nothing here walks or re-serialises the history except
the model request itself (and compaction, which is rare); events are appended, never rewritten.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent import events as ev
from agent.context import Budget, compact, estimate_tokens
from agent.llm.errors import ContextOverflowError
from agent.llm.recovery import text_protocol_instructions
from agent.llm.turns import Normalised, history_message, normalise_turn, tool_schemas_by_name
from agent.llm.types import Model, ModelTurn, ToolCall
from agent.state import AgentState, Replace
from tools.base import ToolContext, ToolResult
from tools.registry import ToolRegistry
from tools.text import truncate_middle

MAX_EMPTY_REPLIES = 3
PARSE_FAILURES_BEFORE_TEXT_PROTOCOL = 3
REPEATS_BEFORE_NUDGE = 3
REPEATS_BEFORE_STOP = 5

CUT_OFF_NOTE = (
    "Your previous reply was cut off at the output token limit (finish_reason=length), so its tool "
    "calls were NOT run. Reply again with shorter tool calls: split large file contents into several "
    "edits."
)
CUT_OFF_TEXT_NOTE = (
    "Your previous reply was cut off at the output token limit. Continue where it stopped, more briefly, "
    "or call a tool."
)
EMPTY_NOTE = (
    "Your previous reply was empty. Continue the task: call a tool, or call `finish` if you are done."
)
TEXT_PROTOCOL_NOTE = (
    "Your tool calls could not be read several times in a row, so tool calling switches to plain "
    "text from now on.\n\n"
)
REPEAT_NUDGE = (
    "\n\n[Luban] You have made this same call {n} times in a row and got the same result. Doing it "
    "again will not help: change your approach (read other code, try a different command, or "
    "re-think the cause)."
)
ERROR_NUDGE = (
    "\n\n[Luban] This is the same error {n} times in a row. Stop repeating the failing action: "
    "read the error, check your assumptions (paths, exact text, arguments) and try something else."
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
class LoopGuard:
    """Counts identical consecutive tool calls and identical consecutive errors."""

    last_calls: Any = None
    call_repeats: int = 0
    last_error: str | None = None
    error_repeats: int = 0

    def see_calls(self, calls: list[ToolCall]) -> int:
        signature = tuple((c.name, c.arguments) for c in calls)
        self.call_repeats = self.call_repeats + 1 if signature == self.last_calls else 1
        self.last_calls = signature
        return self.call_repeats

    def see_errors(self, errors: list[str]) -> int:
        if not errors:
            self.last_error, self.error_repeats = None, 0
            return 0
        key = "\n".join(errors)
        self.error_repeats = self.error_repeats + 1 if key == self.last_error else 1
        self.last_error = key
        return self.error_repeats


@dataclass
class AgentLoop:
    model: Model
    registry: ToolRegistry
    ctx: ToolContext
    emit: Callable[[ev.Event], None]
    limits: Limits = field(default_factory=Limits)
    pricing: Pricing = field(default_factory=Pricing)
    budget: Budget = field(default_factory=lambda: Budget.for_window(32768, None))
    reasoning_policy: str = "omit"
    max_output_chars: int = 16000
    # The model's output cap when known (family preset or settings): each request then asks for
    # min(cap, what the window has left), never more than fits (vLLM: "max_tokens must be at least 1").
    reply_cap: int | None = None
    totals: Totals = field(default_factory=Totals)
    timings: list[StepTiming] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    guard: LoopGuard = field(default_factory=LoopGuard)
    text_protocol: bool = False
    prompt_tokens_sent: list[int] = field(default_factory=list)  # what each request's prompt cost
    _schemas: list[dict[str, Any]] | None = None
    _offered: dict[str, dict[str, Any]] | None = None
    _empty_replies: int = 0
    _parse_failures: int = 0
    # Token accounting for the compaction trigger, kept incrementally so it costs O(new messages).
    _last_prompt_tokens: int | None = None
    _tokens_since_usage: int = 0
    # The last turn's calls exactly as the model sent them (after recovery and safe repair), and
    # the problems that stop some of them from running.
    _pending: list[ToolCall] = field(default_factory=list)
    _problems: dict[str, str] = field(default_factory=dict)
    # The history as of the last node that finished: what a conversation continues from after
    # an interruption (the graph's own state is lost when its task is cancelled).
    messages: list[dict[str, Any]] = field(default_factory=list)
    # Limits apply per turn of a conversation: where the current turn started.
    _turn_first_step: int = 0
    _turn_cost: float = 0.0

    def begin_turn(self, step: int) -> None:
        self._turn_first_step = step
        self._turn_cost = self.totals.cost
        self.started = time.monotonic()

    async def compact_now(self) -> None:
        """/compact: summarise the history now (the deterministic fallback if that fails)."""
        if self.messages:
            self.messages = await self._compact(self.messages, summarise=True)

    @property
    def schemas(self) -> list[dict[str, Any]]:
        # Built once: an unchanged tools list keeps the provider's prompt cache warm.
        if self._schemas is None:
            self._schemas = self.registry.schemas()
        return self._schemas

    @property
    def offered(self) -> dict[str, dict[str, Any]]:
        """Offered tool name -> parameters schema, for recovery and argument repair."""
        if self._offered is None:
            self._offered = tool_schemas_by_name(self.schemas)
        return self._offered

    def _limit_reached(self, step: int) -> tuple[str, str] | None:
        lim = self.limits
        if step - self._turn_first_step > lim.max_steps:
            return "max_steps", f"reached the step limit ({lim.max_steps} steps)"
        spent = self.totals.cost - self._turn_cost
        if lim.max_cost is not None and spent >= lim.max_cost:
            return "max_cost", f"reached the cost limit (${spent:.4f} of ${lim.max_cost:.4f})"
        if lim.max_time is not None and time.monotonic() - self.started >= lim.max_time:
            return "time_limit", f"reached the time limit ({lim.max_time:.0f} s)"
        return None

    # ------------------------------------------------------------------ context

    def _estimate(self, messages: list[dict[str, Any]]) -> int:
        if self._last_prompt_tokens is not None:
            return self._last_prompt_tokens + self._tokens_since_usage
        if not self._tokens_since_usage:  # first request: count everything once
            self._tokens_since_usage = sum(estimate_tokens(m) for m in messages) + estimate_tokens(
                self.schemas
            )
        return self._tokens_since_usage

    def _added(self, messages: list[dict[str, Any]]) -> None:
        self._tokens_since_usage += sum(estimate_tokens(m) for m in messages)

    async def _compact(
        self, messages: list[dict[str, Any]], summarise: bool, keep_recent: bool = True
    ) -> list[dict[str, Any]]:
        new, how = await compact(
            messages, self.model, self.budget, summarise=summarise, keep_recent=keep_recent
        )
        self.emit(ev.Notice(level="info", message=f"context: {how}"))
        self._last_prompt_tokens = None
        self._tokens_since_usage = sum(estimate_tokens(m) for m in new) + estimate_tokens(self.schemas)
        return new

    # ------------------------------------------------------------------ nodes

    async def model_node(self, state: AgentState) -> dict[str, Any]:
        step = state.get("step", 0) + 1
        limit = self._limit_reached(step)
        if limit:
            return {"stop": limit[0], "stop_message": limit[1]}
        timing = StepTiming(step=step, start=time.perf_counter())
        self.timings.append(timing)
        self.emit(ev.StepStarted(step=step))
        update: dict[str, Any] = {"step": step}

        messages = state["messages"]
        replaced = False
        if self._estimate(messages) > self.budget.limit:
            messages = await self._compact(messages, summarise=True)
            replaced = True

        def on_delta(kind: str, text: str) -> None:
            if kind == "reasoning":
                self.emit(ev.ReasoningDelta(step=step, text=text))
            else:
                self.emit(ev.TextDelta(step=step, text=text))

        tools = [] if self.text_protocol else self.schemas
        t0 = time.perf_counter()
        attempts = 0
        while True:
            try:
                options = {}
                if self.reply_cap:
                    room = self.budget.context_window - self._estimate(messages) - 256
                    options["max_tokens"] = max(256, min(self.reply_cap, room))
                turn = await self.model.complete(messages, tools, on_delta, **options)
                break
            except ContextOverflowError as exc:
                # The server's count beats our estimate: compact (summary first, then the
                # deterministic fallback) and retry; a third overflow ends the run.
                attempts += 1
                if attempts > 2:
                    timing.model = time.perf_counter() - t0
                    update.update(stop="context_overflow", stop_message=str(exc))
                    return update
                self.emit(
                    ev.Notice(level="warning", message=f"context overflow reported by the server: {exc}")
                )
                messages = await self._compact(messages, summarise=attempts == 1, keep_recent=False)
                replaced = True
        timing.model = time.perf_counter() - t0
        self.prompt_tokens_sent.append(turn.usage.prompt_tokens if turn.usage else 0)
        if turn.usage is not None:
            self._last_prompt_tokens = turn.usage.prompt_tokens
            self._tokens_since_usage = estimate_tokens(turn.content or "") + 20 * len(turn.tool_calls)
        self._account(step, turn)

        norm = normalise_turn(turn, self.offered, self.reasoning_policy)
        for note in norm.notes:
            self.emit(ev.Notice(level="info", message=note))
        turn = norm.turn
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
        new_messages = self._react(step, norm, update)
        self._added(new_messages)
        update["messages"] = Replace([*messages, *new_messages]) if replaced else new_messages
        self.messages = [*messages, *new_messages]
        timing.end = time.perf_counter()
        return update

    def _react(self, step: int, norm: Normalised, update: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages this turn adds, and whether the run stops here."""
        turn = norm.turn
        policy = self.reasoning_policy
        if norm.parse_failed:
            self._parse_failures += 1
        elif turn.tool_calls:
            self._parse_failures = 0
        if turn.tool_calls and turn.finish_reason == "length":
            # A call cut off mid-arguments could do damage if run: never execute it.
            return [
                history_message(norm, policy, with_calls=False),
                {"role": "user", "content": CUT_OFF_NOTE},
            ]
        if not turn.tool_calls:
            extra = self._maybe_switch_protocol()
            if norm.parse_failed:
                msg = history_message(norm, policy)
                note = "Your tool call could not be read: " + "; ".join(norm.notes or ["unknown format"])
                return [
                    msg,
                    {"role": "user", "content": note + ". Call the tool again with valid arguments."},
                    *extra,
                ]
            if not turn.content.strip():
                self._empty_replies += 1
                if self._empty_replies >= MAX_EMPTY_REPLIES:
                    update.update(
                        stop="model_error",
                        stop_message=f"the model returned {MAX_EMPTY_REPLIES} empty replies in a row",
                    )
                    return []
                return [{"role": "user", "content": EMPTY_NOTE}]
            if turn.finish_reason == "length":  # an answer cut off mid-way is not an answer
                return [history_message(norm, policy), {"role": "user", "content": CUT_OFF_TEXT_NOTE}]
            update.update(stop="answered", stop_message=turn.content)
            return [history_message(norm, policy)]
        self._empty_replies = 0
        self._pending = list(turn.tool_calls)
        self._problems = dict(norm.problems)
        return [history_message(norm, policy), *self._maybe_switch_protocol()]

    def _maybe_switch_protocol(self) -> list[dict[str, Any]]:
        if self.text_protocol or self._parse_failures < PARSE_FAILURES_BEFORE_TEXT_PROTOCOL:
            return []
        self.text_protocol = True
        self.emit(
            ev.Notice(
                level="warning",
                message=f"{self._parse_failures} unreadable tool calls in a row: switching "
                f"{getattr(self.model, 'name', 'the model')} to the text tool protocol",
            )
        )
        # Appended, not put in the system prompt, so the cached prefix stays as it was.
        return [{"role": "user", "content": TEXT_PROTOCOL_NOTE + text_protocol_instructions(self.schemas)}]

    async def tools_node(self, state: AgentState) -> dict[str, Any]:
        self.messages = state["messages"]
        timing = self.timings[-1]
        step = state.get("step", 0)
        calls, self._pending = self._pending, []
        problems, self._problems = self._problems, {}
        results: list[dict[str, Any]] = []
        update: dict[str, Any] = {}
        errors: list[str] = []
        t_tools = 0.0
        cap = self.budget.tool_output_chars(self.max_output_chars)
        for call in calls:
            self.emit(
                ev.ToolCallStarted(step=step, call_id=call.id, name=call.name, arguments=call.arguments)
            )
            self.ctx.on_output = lambda text, cid=call.id: self.emit(
                ev.ToolOutputDelta(call_id=cid, text=text)
            )
            self.ctx.call_id = call.id
            t0 = time.perf_counter()
            try:
                if call.id in problems:
                    result = ToolResult.error(problems[call.id])
                else:
                    result = await self.registry.execute(call.name, call.arguments, self.ctx)
            finally:
                self.ctx.on_output = None
            took = time.perf_counter() - t0
            t_tools += took
            output = truncate_middle(result.output or "(no output)", cap)
            self.emit(
                ev.ToolCallFinished(
                    step=step,
                    call_id=call.id,
                    name=call.name,
                    output=output,
                    is_error=result.is_error,
                    duration=took,
                    data=jsonable(result.data),
                )
            )
            if result.is_error:
                errors.append(output)
            results.append({"role": "tool", "tool_call_id": call.id, "content": output})
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
        if not update.get("stop"):
            self._guard(calls, errors, results, update)
        self._added(results)
        update["messages"] = results
        self.messages = [*state["messages"], *results]
        timing.tools = t_tools
        timing.end = time.perf_counter()
        return update

    def _guard(
        self, calls: list[ToolCall], errors: list[str], results: list[dict[str, Any]], update: dict[str, Any]
    ) -> None:
        repeats = self.guard.see_calls(calls)
        error_repeats = self.guard.see_errors(errors)
        worst = max(repeats, error_repeats)
        if worst >= REPEATS_BEFORE_STOP:
            what = "the same tool call" if repeats >= error_repeats else "the same error"
            update.update(stop="stuck", stop_message=f"stopped a loop: {what} {worst} times in a row")
        elif worst >= REPEATS_BEFORE_NUDGE:
            nudge = REPEAT_NUDGE if repeats >= error_repeats else ERROR_NUDGE
            results[-1] = {**results[-1], "content": results[-1]["content"] + nudge.format(n=worst)}

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
                context_window=self.budget.context_window,
            )
        )


def jsonable(data: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(data)
        return data
    except (TypeError, ValueError):
        return json.loads(json.dumps(data, default=str))
