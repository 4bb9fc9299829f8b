"""Run the repository's tests with its own framework and report a short, parsed verdict."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.testing.frameworks import TestSummary, build_command, detect_framework, parse_output, quote_target
from tools.text import TRUNCATION_MARKER

DEFAULT_TIMEOUT = 600
MAX_TIMEOUT = 3600
OUTPUT_CHARS = 8000
MAX_LISTED_FAILURES = 20


class RunTestsParams(BaseModel):
    target: str | None = Field(
        default=None,
        description="What to run instead of the whole suite: a test file, a directory, a test id such as "
        "`tests/test_x.py::test_y` (pytest) or a package pattern such as `./pkg/...` (go). "
        "Omit to run all tests.",
    )
    timeout: int | None = Field(
        default=None,
        description=f"Seconds before the run is killed (default {DEFAULT_TIMEOUT}, at most {MAX_TIMEOUT}).",
    )


def tail_heavy(text: str, max_chars: int) -> str:
    """Like truncate_middle, but keep mostly the end: that is where failures and summaries are."""
    if len(text) <= max_chars:
        return text
    keep = max(max_chars - 160, 0)
    head = keep // 6
    tail = keep - head
    omitted = len(text) - head - tail
    marker = TRUNCATION_MARKER.format(omitted=omitted, hint="run a narrower target to see everything")
    return text[:head] + marker + text[len(text) - tail :]


def verdict(summary: TestSummary, exit_code: int | None) -> tuple[str, str]:
    """(status, description) for the first line of the result."""
    if summary.found:
        counts = summary.counts()
        if summary.failed or summary.errors or summary.packages_failed:
            return "FAILED", counts
        if summary.no_tests:
            if exit_code in (0, 5):  # pytest exits 5 when it collected nothing
                return "NO TESTS", f"{counts} (check the target, or whether the tests are collected)"
            return "ERROR", f"{counts} and the test command exited {exit_code}"
        if exit_code != 0:
            return "FAILED", f"{counts}, but the test command exited {exit_code}"
        return "PASSED", counts
    if exit_code == 0:
        return "PASSED", "the test command exited 0 (no test summary was recognised)"
    return "ERROR", f"the test command exited {exit_code} and no test summary was found"


class RunTests(Tool):
    name = "run_tests"
    Params = RunTestsParams
    kind = "test"

    async def run(self, params: RunTestsParams, ctx: ToolContext) -> ToolResult:
        framework, command = self.command_for(params.target, ctx)
        seconds = (
            params.timeout
            if params.timeout is not None
            else ctx.settings.get("test_timeout", DEFAULT_TIMEOUT)
        )
        timeout = max(1, min(MAX_TIMEOUT, int(seconds)))

        result = await ctx.env.run(command, timeout=timeout, on_output=ctx.on_output)
        output = result.output
        summary = parse_output(framework, output)
        data = {
            "framework": framework,
            "runner": summary.runner,
            "command": command,
            "passed": summary.passed,
            "failed": summary.failed,
            "errors": summary.errors,
            "skipped": summary.skipped,
            "exit_code": result.exit_code,
            "failures": summary.failures,
            "duration": round(result.duration, 3),
            "timed_out": result.timed_out,
        }
        shown = tail_heavy(output.rstrip(), OUTPUT_CHARS) or "(no output)"

        if result.timed_out or result.exit_code is None:
            what = f"did not finish within {timeout} s" if result.timed_out else "was interrupted"
            text = (
                f"TIMEOUT: the test run {what} and was killed with everything it started ({framework}).\n"
                f"Partial output:\n{shown}\n"
                f"Command: {command}\n"
                "Run a narrower target (one file or test), or pass a larger `timeout`."
            )
            return ToolResult(text, is_error=True, data=data)

        status, description = verdict(summary, result.exit_code)
        label = framework if summary.runner in (framework, "") else f"{framework}, {summary.runner}"
        lines = [f"{status}: {description} ({label}, {result.duration:.1f}s)"]
        if summary.failures:
            lines.append("Failing tests:")
            lines += [f"  {name}" for name in summary.failures[:MAX_LISTED_FAILURES]]
            if len(summary.failures) > MAX_LISTED_FAILURES:
                lines.append(f"  ... and {len(summary.failures) - MAX_LISTED_FAILURES} more")
        lines += ["", "Output:", shown, "", f"Command: {command}"]
        data["status"] = status
        return ToolResult("\n".join(lines), data=data)

    @staticmethod
    def command_for(target: str | None, ctx: ToolContext) -> tuple[str, str]:
        """(framework, shell command): the configured test_command, else the detected framework."""
        try:
            configured = ctx.settings.get("test_command")
            if configured and str(configured).strip():
                quoted = quote_target(target)
                command = str(configured).strip()
                return "custom", f"{command} {quoted}" if quoted else command
            framework = detect_framework(ctx.root)
            if framework is None:
                raise ToolError(
                    "No test framework was detected in this repository (looked for pytest configuration "
                    "or test_*.py files, a package.json `test` script, go.mod, Cargo.toml, and a Python "
                    "tests/ directory). Run the tests yourself through execute_bash, or ask the user to "
                    'set `test_command` in .luban.toml (e.g. test_command = "make test").'
                )
            return framework, build_command(framework, ctx.root, target)
        except ValueError as exc:  # shlex.split on unbalanced quotes
            raise ToolError(
                f"The target {target!r} could not be parsed ({exc}). Give a path or test id, "
                "quoting parts with spaces."
            ) from None
