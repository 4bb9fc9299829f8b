from __future__ import annotations

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolResult


class FinishParams(BaseModel):
    message: str = Field(default="", description="A short summary of what you did and how you verified it.")


class Finish(Tool):
    name = "finish"
    Params = FinishParams

    async def run(self, params: FinishParams, ctx: ToolContext) -> ToolResult:
        return ToolResult(params.message or "Finished.", finished=True, data={"message": params.message})
