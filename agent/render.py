"""Headless renderers of the event stream: human-readable progress, or one JSON object per line."""

from __future__ import annotations

import json
import sys
from typing import IO

from agent import events as ev

TOOL_OUTPUT_LINES = 12


def summarize_args(arguments: str, width: int = 100) -> str:
    try:
        args = json.loads(arguments) if arguments else {}
    except json.JSONDecodeError:
        return arguments[:width]
    if not isinstance(args, dict):
        return str(args)[:width]
    parts = []
    for key, value in args.items():
        if key in ("file_text", "new_str", "old_str", "todos", "thought"):
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append(f"{key}=<{len(text)} chars>")
        else:
            parts.append(f"{key}={json.dumps(value, ensure_ascii=False)}")
    line = ", ".join(parts)
    return line if len(line) <= width else line[: width - 1] + "…"


class HumanRenderer:
    def __init__(self, file: IO[str] | None = None, show_diff: bool = True):
        from rich.console import Console

        self.console = Console(file=file or sys.stdout, highlight=False, soft_wrap=True)
        self.show_diff = show_diff

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, "on_" + getattr(event, "type", ""), None)
        if handler:
            handler(event)

    def _print(self, text: str, style: str | None = None) -> None:
        from rich.text import Text

        self.console.print(Text(text, style=style or ""))

    def on_run_started(self, e: ev.RunStarted) -> None:
        commit = f" @ {e.commit[:10]}" if e.commit else ""
        self._print(f"Luban · model {e.model} · {e.repo}{commit}", "bold")
        self._print(f"Task: {e.task.strip()}", "bold")

    def on_step_started(self, e: ev.StepStarted) -> None:
        self._print(f"── step {e.step} ──", "dim")

    def on_assistant_message(self, e: ev.AssistantMessage) -> None:
        if e.reasoning:
            self._print(e.reasoning.strip(), "dim italic")
        if e.content.strip():
            self._print(e.content.strip())

    def on_tool_call_started(self, e: ev.ToolCallStarted) -> None:
        self._print(f"→ {e.name}({summarize_args(e.arguments)})", "cyan")

    def on_tool_call_finished(self, e: ev.ToolCallFinished) -> None:
        if e.name == "todo_write" and not e.is_error:
            for item in e.data.get("todos", []):
                mark = {"done": "✔", "in_progress": "▸"}.get(item["status"], "·")
                self._print(f"   {mark} {item['content']}", "green" if item["status"] == "done" else None)
            return
        lines = e.output.rstrip().splitlines()
        shown = lines[:TOOL_OUTPUT_LINES]
        style = "red" if e.is_error else "dim"
        for line in shown:
            self._print("   " + line, style)
        if len(lines) > len(shown):
            self._print(f"   … {len(lines) - len(shown)} more lines", "dim")

    def on_approval_answered(self, e: ev.ApprovalAnswered) -> None:
        if e.decision == "deny":
            why = f": {e.message}" if e.message else ""
            self._print(
                f"   ⊘ refused ({'by the approval policy' if e.by == 'policy' else 'by you'}){why}", "yellow"
            )

    def on_notice(self, e: ev.Notice) -> None:
        self._print(f"! {e.message}", "yellow")

    def on_error(self, e: ev.ErrorEvent) -> None:
        self._print(f"✗ {e.message}", "bold red")

    def on_run_finished(self, e: ev.RunFinished) -> None:
        if self.show_diff and e.diff:
            from rich.syntax import Syntax

            self._print("── diff ──", "bold")
            self.console.print(Syntax(e.diff, "diff", theme="ansi_dark", background_color="default"))
        ok = e.exit_code == 0
        tokens = f"{e.prompt_tokens} in / {e.completion_tokens} out / {e.cached_tokens} cached"
        self._print(
            f"{'✔' if ok else '✗'} {e.reason}: {e.message.strip()[:300]}".rstrip(": "),
            "bold green" if ok else "bold red",
        )
        self._print(f"  {e.steps} steps · {tokens} tokens · ${e.cost:.4f} · {e.duration:.1f}s", "dim")
        if e.branch:
            what = f"committed {e.commit[:12]} on" if e.commit else "nothing committed on"
            self._print(f"  {what} branch {e.branch}", "dim")
        if e.checkpoints > 1 and e.run_id:
            self._print(f"  undo this run: luban undo --run {e.run_id}", "dim")


class JsonRenderer:
    """`--json`: every non-ephemeral event as one JSON line on stdout (the trajectory's events)."""

    def __init__(self, file: IO[str] | None = None):
        self.file = file or sys.stdout

    def __call__(self, event: ev.Event) -> None:
        if event.ephemeral:
            return
        self.file.write(event.model_dump_json())
        self.file.write("\n")
        self.file.flush()
