"""The tool registry: built-in tools plus plugins from the ``luban.tools`` entry-point group.

``execute`` is the single door through which the agent runs a tool call. Everything that can go
wrong with a call (unknown tool, malformed JSON, wrong arguments, a tool that raises) comes back
as a :class:`ToolResult` error the model can read and act on; it never crashes the run.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from tools.base import Tool, ToolContext, ToolError, ToolResult

log = logging.getLogger(__name__)

# Import paths, not classes: a tool's module is imported only when the registry is built.
BUILTIN_TOOLS = (
    "tools.editor.str_replace_editor:StrReplaceEditor",
    "tools.shell.execute_bash:ExecuteBash",
    "tools.search.search:Search",
    "tools.testing.run_tests:RunTests",
    "tools.git.git_status:GitStatus",
    "tools.git.git_diff:GitDiff",
    "tools.git.git_log:GitLog",
    "tools.git.git_show:GitShow",
    "tools.git.git_commit:GitCommit",
    "tools.git.git_branch:GitBranch",
    "tools.code.repo_map:RepoMapTool",
    "tools.code.find_symbol:FindSymbol",
    "tools.code.find_references:FindReferences",
    "tools.plan.todo_write:TodoWrite",
    "tools.control.think:Think",
    "tools.control.finish:Finish",
)
ENTRY_POINT_GROUP = "luban.tools"


def load_object(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool]):
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self._tools[tool.name] = tool

    @classmethod
    def default(cls, enabled: Iterable[str] | None = None, disabled: Iterable[str] = ()) -> ToolRegistry:
        """Built-ins plus installed plugins, filtered by `enabled` (None = all) and `disabled`."""
        classes: list[type[Tool]] = [load_object(p) for p in BUILTIN_TOOLS]
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                classes.append(ep.load())
            except Exception as exc:  # a broken plugin must not take the agent down
                log.warning("tool plugin %s could not be loaded: %s", ep.name, exc)
        wanted = set(enabled) if enabled is not None else None
        skip = set(disabled)
        tools = [c() for c in classes if (wanted is None or c.name in wanted) and c.name not in skip]
        if not any(t.name == "finish" for t in tools):
            tools.append(load_object("tools.control.finish:Finish")())
        return cls(tools)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    async def execute(
        self, name: str, arguments: str | dict[str, Any] | None, ctx: ToolContext
    ) -> ToolResult:
        tool = self._tools.get(name)
        if tool is None:
            return ToolResult.error(
                f"Unknown tool {name!r}. Available tools: {', '.join(self._tools)}. "
                "Call one of these by its exact name."
            )
        try:
            args = parse_arguments(arguments)
        except ToolError as exc:
            return ToolResult.error(f"{name}: {exc}")
        try:
            params = tool.Params.model_validate(args)
        except ValidationError as exc:
            return ToolResult.error(f"{name}: invalid arguments.\n{format_validation_error(exc)}")
        try:
            if ctx.before_change is not None and tool.mutates(params):
                refusal = await ctx.before_change(tool, params)
                if refusal:
                    return ToolResult.error(refusal, refused=True)
            return await tool.run(params, ctx)
        except ToolError as exc:
            return ToolResult.error(str(exc))
        except Exception as exc:  # a tool bug is reported to the model, not raised into the loop
            log.exception("tool %s raised", name)
            return ToolResult.error(
                f"{name} failed with an internal error: {type(exc).__name__}: {exc}. "
                "Try a different approach or different arguments."
            )


def parse_arguments(arguments: str | dict[str, Any] | None) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        snippet = arguments if len(arguments) <= 200 else arguments[:200] + "..."
        raise ToolError(
            f"the arguments are not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{snippet!r}. Send the arguments as one JSON object."
        ) from None
    if not isinstance(value, dict):
        raise ToolError(f"the arguments must be a JSON object, got {type(value).__name__}.")
    return value


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        lines.append(f"- {loc}: {err['msg']}")
    return "\n".join(lines)
