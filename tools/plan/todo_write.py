"""The plan the model keeps for itself: a visible list of steps, each pending, in progress or done."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from tools.base import Tool, ToolContext, ToolResult

Status = Literal["pending", "in_progress", "done"]
MARK = {"pending": "[ ]", "in_progress": "[~]", "done": "[x]"}


class TodoItem(BaseModel):
    content: str = Field(description="One concrete step, e.g. 'Reproduce the failure with the test'.")
    status: Status = Field(default="pending", description="pending | in_progress | done")

    @field_validator("status", mode="before")
    @classmethod
    def _normalise(cls, value: object) -> object:
        # Models write "in-progress", "In Progress", "completed"...; accept the obvious spellings.
        if isinstance(value, str):
            v = value.strip().lower().replace("-", "_").replace(" ", "_")
            return {"completed": "done", "complete": "done", "todo": "pending", "doing": "in_progress"}.get(
                v, v
            )
        return value


class TodoWriteParams(BaseModel):
    todos: list[TodoItem] = Field(description="The whole list, replacing the previous one.")


class TodoWrite(Tool):
    name = "todo_write"
    Params = TodoWriteParams

    async def run(self, params: TodoWriteParams, ctx: ToolContext) -> ToolResult:
        items = [item.model_dump() for item in params.todos]
        ctx.state["todos"] = items
        active = sum(1 for i in items if i["status"] == "in_progress")
        lines = [f"{MARK[i['status']]} {i['content']}" for i in items]
        note = ""
        if active > 1:
            note = "\nNote: keep only one step in progress at a time."
        done = sum(1 for i in items if i["status"] == "done")
        header = f"Plan updated ({done}/{len(items)} done):"
        return ToolResult("\n".join([header, *lines]) + note, data={"todos": items})
