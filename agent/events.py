"""The one event stream. Every state change of a run is a typed event with a `type` field; front
ends subscribe to it, `--json` prints it, and the trajectory file is these events as JSONL.

Delta events (text, reasoning, live tool output) are *ephemeral*: front ends render them live, but
they are not written to the trajectory or to `--json` output, since the complete message that
follows carries the same text.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ephemeral: bool = Field(default=False, exclude=True)
    ts: float = Field(default_factory=time.time)


class RunStarted(Event):
    type: Literal["run_started"] = "run_started"
    run_id: str
    task: str
    repo: str
    commit: str | None
    model: str
    trajectory: str | None = None


class StepStarted(Event):
    type: Literal["step_started"] = "step_started"
    step: int


class TextDelta(Event):
    type: Literal["text_delta"] = "text_delta"
    ephemeral: bool = Field(default=True, exclude=True)
    step: int
    text: str


class ReasoningDelta(Event):
    type: Literal["reasoning_delta"] = "reasoning_delta"
    ephemeral: bool = Field(default=True, exclude=True)
    step: int
    text: str


class ToolCallInfo(BaseModel):
    id: str
    name: str
    arguments: str  # exactly as the model sent them


class AssistantMessage(Event):
    """One complete model turn. Replaying these reproduces a run (`--model replay:PATH`)."""

    type: Literal["assistant_message"] = "assistant_message"
    step: int
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCallInfo] = Field(default_factory=list)
    finish_reason: str | None = None


class ToolCallStarted(Event):
    type: Literal["tool_call_started"] = "tool_call_started"
    step: int
    call_id: str
    name: str
    arguments: str


class ToolOutputDelta(Event):
    type: Literal["tool_output_delta"] = "tool_output_delta"
    ephemeral: bool = Field(default=True, exclude=True)
    call_id: str
    text: str


class ToolCallFinished(Event):
    type: Literal["tool_call_finished"] = "tool_call_finished"
    step: int
    call_id: str
    name: str
    output: str
    is_error: bool = False
    duration: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)


class UsageUpdate(Event):
    type: Literal["usage"] = "usage"
    step: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    total_prompt_tokens: int = 0
    total_completion_tokens: int = 0
    total_cached_tokens: int = 0
    total_cost: float = 0.0
    context_window: int = 0  # prompt_tokens / context_window = share of the window in use


class UserMessage(Event):
    """A message the user sent after the task (a follow-up or a correction in the TUI)."""

    type: Literal["user_message"] = "user_message"
    text: str


class Notice(Event):
    """Something the user should know that is not an error of the run: a retry, a warning."""

    type: Literal["notice"] = "notice"
    level: Literal["info", "warning"] = "info"
    message: str


class ApprovalRequested(Event):
    """A call the approval policy does not allow by itself; a front end answers it."""

    type: Literal["approval_requested"] = "approval_requested"
    call_id: str = ""
    tool: str
    kind: str
    summary: str  # one line: what the call would do
    key: str  # what "approve always" would remember (a tool name or a command prefix)


class ApprovalAnswered(Event):
    type: Literal["approval_answered"] = "approval_answered"
    call_id: str = ""
    tool: str
    decision: Literal["allow", "deny"]
    by: Literal["policy", "user"]
    always: bool = False
    message: str = ""


class CheckpointCreated(Event):
    """The working tree was recorded before a change; `luban undo --to N` restores it."""

    type: Literal["checkpoint"] = "checkpoint"
    n: int
    ref: str
    label: str
    duration: float = 0.0


class ErrorEvent(Event):
    type: Literal["error"] = "error"
    kind: str
    message: str


StopReason = Literal[
    "finished",  # the model called `finish`
    "answered",  # the model replied without a tool call
    "max_steps",
    "max_cost",
    "time_limit",
    "interrupted",
    "model_error",
    "context_overflow",  # the history could not be made to fit the window
    "stuck",  # the loop guard stopped repeated identical calls or errors
    "error",
]


class RunFinished(Event):
    type: Literal["run_finished"] = "run_finished"
    reason: StopReason
    message: str = ""
    exit_code: int
    steps: int
    diff: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    duration: float = 0.0
    run_id: str = ""
    checkpoints: int = 0  # `luban undo --run RUN_ID` restores the tree as it was before the run
    branch: str | None = None  # with --branch: the branch holding the result
    commit: str | None = None  # ... and the commit made on it


AnyEvent = Annotated[
    RunStarted
    | StepStarted
    | TextDelta
    | ReasoningDelta
    | AssistantMessage
    | ToolCallStarted
    | ToolOutputDelta
    | ToolCallFinished
    | UsageUpdate
    | UserMessage
    | Notice
    | ApprovalRequested
    | ApprovalAnswered
    | CheckpointCreated
    | ErrorEvent
    | RunFinished,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def parse_event(data: dict[str, Any]) -> Event:
    return EVENT_ADAPTER.validate_python(data)
