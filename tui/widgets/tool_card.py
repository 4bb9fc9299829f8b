"""Tool cards and diff blocks of the transcript, and the pure helpers behind them (argument
summaries, the capped live-output buffer). No file or git I/O here: everything comes from events."""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.content import Content
from textual.widgets import Collapsible, Log, Static

MAX_LINES = 2_000  # live output lines kept per card
MAX_LINE_CHARS = 4_000  # a longer line (minified code, a progress bar without newlines) is cut
DIFF_OPEN_LINES = 40  # diffs up to this many lines are shown expanded
DIFF_MAX_LINES = 5_000  # a diff block renders at most this many lines

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text) if "\x1b" in text else text


def _clean_line(line: str) -> str:
    if "\r" in line:  # progress bars redraw the line: keep what was drawn last
        line = line.rstrip("\r").rsplit("\r", 1)[-1]
    if len(line) > MAX_LINE_CHARS:
        line = line[:MAX_LINE_CHARS] + f"… (+{len(line) - MAX_LINE_CHARS} chars)"
    return line


class OutputTail:
    """The end of a stream of output, capped by lines and by characters.

    Trimming drops down to 3/4 of the cap, so a view that rebuilds itself after a trim does so
    once per many writes (amortised O(1) per character), not on every write."""

    def __init__(self, max_lines: int = MAX_LINES, max_chars: int = 200_000):
        self.max_lines = max(1, max_lines)
        self.max_chars = max(1, max_chars)
        self.lines: deque[str] = deque()
        self.partial = ""
        self.chars = 0  # characters in `lines`, newlines included
        self.hidden = 0  # lines dropped from the front

    def write(self, text: str) -> bool:
        """Add output; True when earlier lines were dropped (a view must rebuild)."""
        text = strip_ansi(text).replace("\r\n", "\n")
        if not text:
            return False
        parts = (self.partial + text).split("\n")
        self.partial = parts.pop()
        if len(self.partial) > 4 * MAX_LINE_CHARS:  # one endless line: keep its end
            self.partial = self.partial[-4 * MAX_LINE_CHARS :]
        for part in parts:
            line = _clean_line(part)
            self.lines.append(line)
            self.chars += len(line) + 1
        return self._trim()

    def _trim(self) -> bool:
        if len(self.lines) <= self.max_lines and self.chars <= self.max_chars:
            return False
        keep_lines, keep_chars = self.max_lines * 3 // 4, self.max_chars * 3 // 4
        while self.lines and (len(self.lines) > keep_lines or self.chars > keep_chars):
            self.chars -= len(self.lines.popleft()) + 1
            self.hidden += 1
        return True

    @property
    def current_partial(self) -> str:
        return _clean_line(self.partial)

    def text(self) -> str:
        body = "\n".join(self.lines)
        if self.partial:
            body = f"{body}\n{self.current_partial}" if self.lines else self.current_partial
        return body

    def stream_text(self) -> str:
        """The kept text such that later output appends to it correctly (the trailing newline
        of the last complete line is kept)."""
        body = "".join(line + "\n" for line in self.lines)
        return body + self.current_partial

    @classmethod
    def of(cls, text: str, max_lines: int = MAX_LINES, max_chars: int = 200_000) -> OutputTail:
        tail = cls(max_lines, max_chars)
        tail.write(text)
        return tail


def hidden_marker(n: int) -> str:
    return f"… {n} earlier line{'s' if n != 1 else ''} hidden"


# ---------------------------------------------------------------------------- summaries

_PRIMARY = ("command", "pattern", "query", "target", "path", "symbol", "name", "message", "thought", "ref")


def _one_line(text: str, width: int) -> str:
    text = text.strip()
    first, _, rest = text.partition("\n")
    first = " ".join(first.split())
    if rest.strip():
        first += " …"
    return first if len(first) <= width else first[: width - 1] + "…"


def tool_summary(name: str, arguments: str, width: int = 72) -> str:
    """A short, one-line description of a call's arguments: `pytest -x`, `str_replace calc/ops.py`."""
    try:
        args = json.loads(arguments) if arguments and arguments.strip() else {}
    except json.JSONDecodeError:
        return _one_line(arguments, width)
    if not isinstance(args, dict):
        return _one_line(str(args), width)
    if name == "str_replace_editor":
        parts = [str(args.get("command", "")), str(args.get("path", ""))]
        if isinstance(args.get("view_range"), list):
            parts.append(":".join(str(v) for v in args["view_range"]))
        if args.get("insert_line") is not None:
            parts.append(f"@{args['insert_line']}")
        return _one_line(" ".join(p for p in parts if p), width)
    if name == "todo_write" and isinstance(args.get("todos"), list):
        todos = args["todos"]
        done = sum(1 for t in todos if isinstance(t, dict) and t.get("status") in ("done", "completed"))
        return f"{done}/{len(todos)} done"
    if not args:
        return ""
    for key in _PRIMARY:
        value = args.get(key)
        if isinstance(value, str) and value.strip():
            extra = [k for k in args if k != key and args[k] not in (None, "", [], {})]
            text = _one_line(value, width)
            if extra and len(text) < width - 8:
                from agent.render import summarize_args

                rest = summarize_args(json.dumps({k: args[k] for k in extra}), width - len(text) - 2)
                text = f"{text}  {rest}"
            return text
    from agent.render import summarize_args

    return _one_line(summarize_args(arguments, width), width)


def fmt_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def fmt_tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1_000:
        return f"{n / 1000:.1f}k"
    return str(n)


# ---------------------------------------------------------------------------- diffs and todos


def diff_stats(diff: str) -> tuple[int, int, int]:
    """(files, added lines, removed lines) of a unified diff."""
    files = added = removed = 0
    for line in diff.splitlines():
        if line.startswith("+++ "):
            files += 1
        elif line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return files, added, removed


def diff_renderable(diff: str) -> Syntax | Text:
    lines = diff.rstrip("\n").split("\n")
    if len(lines) > DIFF_MAX_LINES:
        hidden = len(lines) - DIFF_MAX_LINES
        lines = [*lines[:DIFF_MAX_LINES], f"… {hidden} more lines of the diff not shown"]
    return Syntax("\n".join(lines), "diff", theme="ansi_dark", background_color="default", word_wrap=True)


TODO_MARK = {"done": ("✔", "green"), "in_progress": ("▸", "bold"), "pending": ("·", "dim")}


def todo_text(todos: list[Any]) -> Text:
    text = Text()
    for i, item in enumerate(todos):
        if not isinstance(item, dict):
            continue
        mark, style = TODO_MARK.get(str(item.get("status")), ("·", "dim"))
        if i and text:
            text.append("\n")
        text.append(f"{mark} ", style=style)
        text.append(str(item.get("content", "")), style="strike dim" if item.get("status") == "done" else "")
    return text


# ---------------------------------------------------------------------------- widgets


class QuietCollapsible(Collapsible):
    """A Collapsible that does not scroll itself into view when it opens or closes: a card that
    collapses when its call ends must not pull the transcript away from where the user reads."""

    DEFAULT_CSS = """
    QuietCollapsible {
        background: transparent;
        border-top: none;
        padding: 0;
        height: auto;
        & > Contents { padding: 0 0 0 2; }
    }
    """

    def _watch_collapsed(self, collapsed: bool) -> None:
        self._update_collapsed(collapsed)
        self.post_message(self.Collapsed(self) if collapsed else self.Expanded(self))


class LiveLog(Log):
    """A tool's live output: a fixed-height tail that keeps to its last line unless the user
    scrolls up in it. Text set before the widget is mounted is written when it is."""

    DEFAULT_CSS = """
    LiveLog {
        height: auto;
        max-height: 12;
        overflow-x: hidden;
        overflow-y: auto;
        background: transparent;
        color: $text-muted;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, **kwargs: Any):
        super().__init__(auto_scroll=False, **kwargs)
        self._pending: str | None = ""
        self._follow = True

    def on_mount(self) -> None:
        text, self._pending = self._pending, None
        if text:
            self.write(text)
        self._stick()

    def on_resize(self) -> None:
        self._stick()

    def set_text(self, text: str) -> None:
        if self._pending is not None:
            self._pending = text
        else:
            self.clear()
            self.write(text)
            self._stick()

    def add(self, text: str) -> None:
        if self._pending is not None:
            self._pending += text
        else:
            self.write(text)
            self._stick()

    def _stick(self) -> None:
        if self._follow and self.is_mounted:
            self.call_after_refresh(self._to_end)

    def _to_end(self) -> None:
        if self._follow and self.scroll_y != self.max_scroll_y:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value != old_value:
            self._follow = new_value >= self.max_scroll_y - 0.5


class ToolCard(QuietCollapsible):
    """One tool call: title (tool, arguments, then duration, exit code), live output while it
    runs, then the final output, collapsed. Edits show their diff, todo_write its checklist."""

    DEFAULT_CSS = """
    ToolCard {
        border-left: outer $primary 40%;
        margin: 0 0 0 0;
        & > CollapsibleTitle { padding: 0 1 0 0; width: 1fr; }
        &.-error { border-left: outer $error; }
        &.-error > CollapsibleTitle { color: $error; }
        & .tool-body { color: $text-muted; }
        &.-diff .tool-body, &.-todo .tool-body { color: $foreground; }
        & .tool-hidden { color: $text-muted; text-style: italic; }
        & .tool-approval { color: $warning; }
        & .tool-approval.-denied { color: $error; }
        & .tool-approval.-allowed { color: $success; }
    }
    """

    def __init__(
        self,
        call_id: str,
        name: str,
        arguments: str,
        *,
        step: int = 0,
        max_output_chars: int = 200_000,
        collapse_finished: bool = True,
    ):
        self.call_id = call_id
        self.tool_name = name
        self.arguments = arguments
        self.step = step
        self.summary = tool_summary(name, arguments)
        self.collapse_finished = collapse_finished
        self.tail = OutputTail(MAX_LINES, max_output_chars)
        self.max_output_chars = max_output_chars
        self.running = True
        self.is_error = False
        self.duration: float | None = None
        self.exit_code: int | None = None
        self.extra = ""  # e.g. "2 passed, 1 failed"
        self.output = ""  # the final output (what the model saw), once finished
        self.approval = Static("", classes="tool-approval")
        self.hidden_lines = Static("", classes="tool-hidden")
        self.live = LiveLog(classes="tool-live")
        self.body = Static("", classes="tool-body")
        for w in (self.approval, self.hidden_lines, self.live, self.body):
            w.display = False
        super().__init__(
            self.approval, self.hidden_lines, self.live, self.body, title=self.make_title(), collapsed=False
        )

    def make_title(self) -> Content:
        if self.running:
            icon = "⋯"
        elif self.is_error:
            icon = "✗"
        else:
            icon = "!" if self.exit_code else "✔"
        meta = []
        if self.exit_code is not None and (self.exit_code != 0 or self.tool_name != "str_replace_editor"):
            meta.append(f"exit {self.exit_code}")
        if self.extra:
            meta.append(self.extra)
        if self.duration is not None:
            meta.append(fmt_duration(self.duration))
        elif self.running:
            meta.append("running")
        parts = ["$icon [b]$name[/b]"]
        if self.summary:
            parts.append("$summary")
        if meta:
            parts.append("[dim]$meta[/dim]")
        return Content.from_markup(
            "  ".join(parts), icon=icon, name=self.tool_name, summary=self.summary, meta=" · ".join(meta)
        )

    @property
    def title_text(self) -> str:
        return self.make_title().plain

    def refresh_title(self) -> None:
        self.title = self.make_title()  # type: ignore[assignment]

    # -- live

    def write_output(self, text: str) -> None:
        if not self.running or not text:
            return
        trimmed = self.tail.write(text)
        self.live.display = True
        if trimmed:
            self.live.set_text(self.tail.stream_text())
            self._show_hidden(self.tail.hidden)
        else:
            self.live.add(strip_ansi(text).replace("\r\n", "\n"))

    @property
    def live_text(self) -> str:
        return self.tail.text()

    def _show_hidden(self, n: int) -> None:
        self.hidden_lines.update(hidden_marker(n))
        self.hidden_lines.display = n > 0

    def set_approval(self, text: str, state: str = "") -> None:
        if self.approval.parent is None and self.is_mounted:
            return  # pruned when the call finished
        self.approval.update(Text(text))
        self.approval.set_class(state == "allowed", "-allowed")
        self.approval.set_class(state == "denied", "-denied")
        self.approval.display = bool(text)

    # -- finished

    def finish(
        self,
        output: str,
        *,
        is_error: bool = False,
        duration: float = 0.0,
        data: dict[str, Any] | None = None,
    ) -> None:
        data = data or {}
        self.running = False
        self.is_error = is_error
        self.duration = duration
        self.output = output
        code = data.get("exit_code")
        self.exit_code = code if isinstance(code, int) else None
        if self.tool_name == "run_tests" and isinstance(data.get("passed"), int):
            bits = [f"{data['passed']} passed"]
            if data.get("failed"):
                bits.append(f"{data['failed']} failed")
            if data.get("errors"):
                bits.append(f"{data['errors']} errors")
            self.extra = ", ".join(bits)
        self.set_class(is_error, "-error")
        self.live.display = False
        self.live.set_text("")
        keep_open = False
        diff = data.get("diff") if isinstance(data.get("diff"), str) else ""
        todos = data.get("todos") if isinstance(data.get("todos"), list) else None
        if diff and not is_error:
            self.add_class("-diff")
            self.body.update(diff_renderable(diff))
            self._show_hidden(0)
            keep_open = diff.count("\n") <= DIFF_OPEN_LINES
        elif todos is not None and not is_error:
            self.add_class("-todo")
            self.body.update(todo_text(todos))
            self._show_hidden(0)
            keep_open = True
        else:
            tail = OutputTail.of(output, MAX_LINES, self.max_output_chars)
            self.body.update(Text(tail.text()))
            self._show_hidden(tail.hidden)
        self.body.display = True
        # a finished card keeps only what it shows: fewer widgets to lay out and style
        for widget in (self.live, self.approval, self.hidden_lines):
            if widget.display:
                continue
            if widget.parent is not None:
                widget.remove()
            elif widget in self._contents_list:  # not composed yet (finished before mounted)
                self._contents_list.remove(widget)
        self.refresh_title()
        self.collapsed = self.collapse_finished and not keep_open


class DiffBlock(QuietCollapsible):
    """A syntax-highlighted unified diff (a run's result, /diff), collapsed when long."""

    DEFAULT_CSS = """
    DiffBlock {
        border-left: outer $success 40%;
        margin: 1 0 0 0;
    }
    """

    def __init__(self, diff: str, title: str = "diff", *, collapsed: bool | None = None):
        self.diff = diff
        files, added, removed = diff_stats(diff)
        lines = diff.count("\n")
        stats = f"{files} file{'s' if files != 1 else ''}  +{added} −{removed}"
        label = Content.from_markup("[b]$title[/b]  [dim]$stats[/dim]", title=title, stats=stats)
        if collapsed is None:
            collapsed = lines > DIFF_OPEN_LINES
        super().__init__(
            Static(diff_renderable(diff) if diff.strip() else Text("(no changes)"), classes="diff-body"),
            title=label,  # type: ignore[arg-type]
            collapsed=collapsed,
        )
