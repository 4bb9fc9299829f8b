"""Run one bash command in the repository root and show its output and exit code."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.text import truncate_middle

DEFAULT_TIMEOUT = 180
MAX_TIMEOUT = 3600
DEFAULT_MAX_OUTPUT_CHARS = 16000
OUTPUT_HINT = "filter the output with grep, head or tail, or redirect it to a file and search that"


class ExecuteBashParams(BaseModel):
    command: str = Field(
        description="The bash command to run in the repository root, e.g. `git status` or "
        "`python -m pytest tests/test_x.py -q 2>&1 | tail -30`. Chain steps with && or ;."
    )
    timeout: int | None = Field(
        default=None,
        description=f"Seconds before the command and everything it started are killed "
        f"(default {DEFAULT_TIMEOUT}, at most {MAX_TIMEOUT}).",
    )


def clamp_timeout(value: int | None, default: int) -> int:
    seconds = default if value is None else value
    return max(1, min(MAX_TIMEOUT, int(seconds)))


class ExecuteBash(Tool):
    name = "execute_bash"
    Params = ExecuteBashParams
    kind = "command"

    def describe_call(self, params: ExecuteBashParams) -> str:
        return f"run: {params.command.strip()}"

    async def run(self, params: ExecuteBashParams, ctx: ToolContext) -> ToolResult:
        command = params.command
        if not command or not command.strip():
            raise ToolError("The command is empty. Give a bash command to run, e.g. `ls -la`.")
        timeout = clamp_timeout(params.timeout, int(ctx.settings.get("command_timeout", DEFAULT_TIMEOUT)))
        max_chars = int(ctx.settings.get("max_output_chars", DEFAULT_MAX_OUTPUT_CHARS))

        result = await ctx.env.run(command, timeout=timeout, on_output=ctx.on_output)
        output = truncate_middle(result.output, max_chars, hint=OUTPUT_HINT)
        data = {
            "exit_code": result.exit_code,
            "duration": round(result.duration, 3),
            "timed_out": result.timed_out,
        }

        if result.timed_out:
            partial = output.rstrip("\n") if output.strip() else "(no output)"
            message = (
                f"The command timed out after {timeout} s and its whole process group was killed.\n"
                f"Partial output:\n{partial}\n"
                "To run a long job, start it in the background with its output redirected to a file "
                "(e.g. `long_job > /tmp/job.log 2>&1 &`) and check the file later, or pass a larger "
                f"`timeout` (at most {MAX_TIMEOUT} s)."
            )
            return ToolResult(message, is_error=True, data=data)
        if result.exit_code is None:  # killed from outside (interrupted) without raising
            partial = output.rstrip("\n") if output.strip() else "(no output)"
            return ToolResult(f"{partial}\n[the command was interrupted]", is_error=True, data=data)

        body = output if output.strip() else "(no output)"
        if not body.endswith("\n"):
            body += "\n"
        return ToolResult(f"{body}[exit code: {result.exit_code}]", data=data)
