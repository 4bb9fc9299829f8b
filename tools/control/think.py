from __future__ import annotations

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolResult


class ThinkParams(BaseModel):
    thought: str = Field(description="Your reasoning: a hypothesis, a plan, what a result means.")


class Think(Tool):
    name = "think"
    Params = ThinkParams

    async def run(self, params: ThinkParams, ctx: ToolContext) -> ToolResult:
        return ToolResult("Your thought has been logged.")
