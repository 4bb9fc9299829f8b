"""The tool contract: a Pydantic params model (which *is* the JSON schema), a description file
beside the code, and an async ``run`` that returns plain text the model can read.

Plugins subclass :class:`Tool` and register through the ``luban.tools`` entry-point group.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

from tools.environment import Environment


class ToolError(Exception):
    """An expected failure the model can act on; its message becomes the tool result."""


@dataclass
class ToolResult:
    output: str
    is_error: bool = False
    # Structured extras for front ends (diffs, exit codes, todo lists). Never sent to the model.
    data: dict[str, Any] = field(default_factory=dict)
    # Set by `finish`: the run ends after this result.
    finished: bool = False

    @classmethod
    def error(cls, message: str, **data: Any) -> ToolResult:
        return cls(output=message, is_error=True, data=data)


@dataclass
class ToolContext:
    """What a tool may touch: the workspace root, the environment that runs commands, and
    per-session state shared between tools (edit history, todo list)."""

    root: Path
    env: Environment
    state: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    # Live output of long-running tools (command output lines); front ends may render it.
    on_output: Callable[[str], None] | None = None
    # Called by the registry before a call that may change something (see `Tool.mutates`): the
    # session asks the approval policy and records a checkpoint here. A returned string refuses
    # the call and becomes its error result.
    before_change: Callable[[Tool, Any], Awaitable[str | None]] | None = None
    call_id: str = ""  # the tool call being executed, for events raised on its behalf


ToolKind = Literal["read", "edit", "test", "command", "git"]


class Tool:
    """Base class for every tool. Subclasses set ``name`` and ``Params`` and implement ``run``.

    The description is read from ``<module_dir>/<name>.md`` unless ``description`` is set.
    """

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]
    description: ClassVar[str | None] = None
    # What a call may do, for approval policies and checkpoints: `read` never changes anything;
    # `edit` writes files; `test` runs the test suite; `command` runs arbitrary commands; `git`
    # changes repository state (commits, branches).
    kind: ClassVar[ToolKind] = "read"

    def mutates(self, params: Any) -> bool:
        """Whether this call may change the workspace (a checkpoint is taken before it)."""
        return self.kind != "read"

    def describe_call(self, params: Any) -> str:
        """One line saying what the call does, for approval prompts and checkpoint labels."""
        args = params.model_dump(exclude_none=True) if isinstance(params, BaseModel) else params
        text = " ".join(f"{k}={v!r}" for k, v in dict(args or {}).items())
        return f"{self.name} {text}".strip()[:200]

    async def run(self, params: Any, ctx: ToolContext) -> ToolResult:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def describe(cls) -> str:
        if cls.description:
            return cls.description
        md = Path(inspect.getfile(cls)).with_name(f"{cls.name}.md")
        return md.read_text(encoding="utf-8").strip()

    @classmethod
    def schema(cls) -> dict[str, Any]:
        """The OpenAI `tools=` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": cls.name,
                "description": cls.describe(),
                "parameters": clean_schema(cls.Params.model_json_schema()),
            },
        }


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop pydantic's `title` noise so the schema costs fewer prompt tokens; keep the rest."""

    def walk(node: Any, in_properties: bool = False) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "title" and not in_properties and isinstance(value, str):
                    continue
                out[key] = walk(value, in_properties=(key == "properties"))
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)
