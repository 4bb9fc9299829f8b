"""`luban inspect TRAJECTORY`: a read-only, step-by-step viewer of a recorded run.

Left: one line per step (its number, the tools it called, errors, cost). Right: the selected step
in the same Transcript the live app uses, its tool cards open. n/p next and previous step, g/G
first and last, Enter (or moving the cursor) on the list shows a step, q quits.

Loading keeps the raw JSON records and builds each step's label in one pass; events are parsed
into objects only for the step on screen, so a run of thousands of steps opens quickly and never
mounts more than one step's widgets.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Static

from tui.widgets.tool_card import fmt_duration, fmt_tokens
from tui.widgets.transcript import Transcript

EXIT_USAGE = 2

_EVENT_TYPES = {
    "run_started",
    "step_started",
    "text_delta",
    "reasoning_delta",
    "assistant_message",
    "tool_call_started",
    "tool_output_delta",
    "tool_call_finished",
    "usage",
    "user_message",
    "notice",
    "approval_requested",
    "approval_answered",
    "checkpoint",
    "error",
    "run_finished",
}


class TrajectoryError(Exception):
    """The file cannot be shown: missing, unreadable, or not a Luban trajectory."""


@dataclass
class StepEntry:
    """One line of the step list: a model call and what followed it, up to the next one. The
    events before a run's first step (run start, the user's message) belong to that step."""

    step: int | None  # None: events that no step followed (e.g. an interrupted start)
    records: list[dict[str, Any]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    errors: int = 0
    cost: float = 0.0
    start_ts: float | None = None


@dataclass
class LoadedTrajectory:
    path: Path
    header: dict[str, Any] | None
    result: dict[str, Any] | None
    entries: list[StepEntry]
    malformed: int = 0  # lines that are not JSON objects of a known type
    run_started: dict[str, Any] | None = None
    run_finished: dict[str, Any] | None = None  # the last one
    first_ts: float | None = None


def load_trajectory(path: Path) -> LoadedTrajectory:
    """Read a trajectory file; malformed lines are counted and skipped. Raises TrajectoryError
    with a message for the user when there is nothing to show."""
    path = Path(path)
    if not path.exists():
        raise TrajectoryError(f"{path}: no such file")
    if path.is_dir():
        raise TrajectoryError(f"{path} is a directory: give a trajectory file (runs/<run-id>.jsonl)")
    header: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    entries: list[StepEntry] = []
    malformed = 0
    run_started = run_finished = None
    first_ts: float | None = None
    current: StepEntry | None = None
    closed = False  # the current entry ended with run_finished: what follows opens a new one
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    malformed += 1
                    continue
                kind = record.get("type") if isinstance(record, dict) else None
                if kind == "header" and header is None and not entries:
                    header = record
                    continue
                if kind == "result":
                    result = record
                    continue
                if kind not in _EVENT_TYPES:
                    malformed += 1
                    continue
                if kind == "step_started":
                    if current is not None and current.step is None and not closed:
                        current.step = record.get("step")
                    else:
                        current = StepEntry(step=record.get("step"))
                        entries.append(current)
                    closed = False
                elif current is None or closed:
                    current = StepEntry(step=None)
                    entries.append(current)
                    closed = False
                current.records.append(record)
                ts = record.get("ts")
                if isinstance(ts, int | float):
                    first_ts = ts if first_ts is None else first_ts
                    if current.start_ts is None:
                        current.start_ts = ts
                if kind == "tool_call_started":
                    current.tools.append(str(record.get("name", "?")))
                elif kind == "tool_call_finished":
                    if record.get("is_error"):
                        current.errors += 1
                    if not any(r.get("call_id") == record.get("call_id") for r in current.records[:-1]):
                        current.tools.append(str(record.get("name", "?")))
                elif kind == "error":
                    current.errors += 1
                elif kind == "usage":
                    cost = record.get("cost")
                    if isinstance(cost, int | float):
                        current.cost += cost
                elif kind == "run_started" and run_started is None:
                    run_started = record
                elif kind == "run_finished":
                    run_finished = record
                    closed = True
    except OSError as exc:
        raise TrajectoryError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if header is None and not entries:
        what = "it is empty" if malformed == 0 else "no header line and no events in it"
        raise TrajectoryError(f"{path} is not a Luban trajectory ({what})")
    return LoadedTrajectory(
        path=path,
        header=header,
        result=result,
        entries=entries,
        malformed=malformed,
        run_started=run_started,
        run_finished=run_finished,
        first_ts=first_ts,
    )


def _tools_label(tools: list[str]) -> str:
    parts: list[str] = []
    counts: dict[str, int] = {}
    for name in tools:
        counts[name] = counts.get(name, 0) + 1
    for name, n in counts.items():
        parts.append(name if n == 1 else f"{name}×{n}")
    return ", ".join(parts)


def step_label(entry: StepEntry, width: int = 30) -> Text:
    number = f"{entry.step:>4}" if entry.step is not None else "   ·"
    text = Text(number, style="bold")
    text.append(" ✗ " if entry.errors else "   ", style="bold red")
    kinds = {r.get("type") for r in entry.records}
    tools = _tools_label(entry.tools)
    if not tools:
        tools = "text" if "assistant_message" in kinds else ("end" if "run_finished" in kinds else "—")
    cost = f" ${entry.cost:.3f}" if entry.cost else ""
    room = max(6, width - len(text) - len(cost))
    if len(tools) > room:
        tools = tools[: room - 1] + "…"
    text.append(tools.ljust(room), style="" if entry.tools else "dim")
    text.append(cost, style="dim")
    return text


def summary_text(t: LoadedTrajectory) -> Text:
    header = t.header or {}
    started = t.run_started or {}
    task = str(header.get("task") or started.get("task") or "(no task recorded)").strip()
    first, _, rest = task.partition("\n")
    if rest.strip():
        first += " …"
    text = Text()
    text.append("Task: ", style="bold")
    text.append(first[:300])
    model = header.get("model") or started.get("model") or "?"
    repo = header.get("repo") or started.get("repo") or "?"
    run_id = header.get("run_id") or started.get("run_id") or t.path.stem
    text.append(f"\n{model} · {repo} · run {run_id}", style="dim")
    text.append("\n")
    result = t.result
    if result is not None:
        code = result.get("exit_code")
        ok = code == 0
        text.append(
            ("✔ " if ok else "✗ ") + str(result.get("reason", "?")), style="bold green" if ok else "bold red"
        )
        bits = [f"exit {code}", f"{result.get('steps', '?')} steps"]
        finished = t.run_finished or {}
        tokens = finished.get("prompt_tokens"), finished.get("completion_tokens")
        if all(isinstance(v, int) for v in tokens):
            bits.append(f"{fmt_tokens(tokens[0])} in / {fmt_tokens(tokens[1])} out tokens")
        cost = result.get("cost")
        if isinstance(cost, int | float):
            bits.append(f"${cost:.4f}")
        if isinstance(finished.get("duration"), int | float):
            bits.append(fmt_duration(finished["duration"]))
        text.append(" · " + " · ".join(bits), style="dim")
    else:
        text.append("no result line: the run was interrupted, crashed or is still running", style="yellow")
    if t.malformed:
        n = t.malformed
        text.append(f" · {n} malformed line{'s' if n != 1 else ''} skipped", style="yellow")
    return text


class StepList(ScrollView, can_focus=True):
    """The steps, one line each, rendered on demand: only the visible lines are ever built, so
    100,000 steps cost what 30 do. Keys the list does not use (n, p, g, G, q) reach the app."""

    COMPONENT_CLASSES = {"step-list--cursor"}
    DEFAULT_CSS = """
    StepList {
        width: 36;
        height: 1fr;
        border-right: vkey $panel-lighten-2;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        & > .step-list--cursor { background: $block-cursor-blurred-background; text-style: bold; }
        &:focus { border-right: vkey $accent; }
        &:focus > .step-list--cursor { background: $block-cursor-background; color: $block-cursor-foreground; }
    }
    """
    BINDINGS = [
        Binding("up,k", "cursor_up", "up", show=False),
        Binding("down,j", "cursor_down", "down", show=False),
        Binding("pageup", "page_up", "page up", show=False),
        Binding("pagedown,space", "page_down", "page down", show=False),
        Binding("home", "first", "first", show=False),
        Binding("end", "last", "last", show=False),
        Binding("enter", "select", "show step", show=False),
    ]

    class Highlighted(Message):
        def __init__(self, index: int):
            super().__init__()
            self.index = index

    class Selected(Message):
        def __init__(self, index: int):
            super().__init__()
            self.index = index

    def __init__(self, entries: list[StepEntry], **kwargs: Any):
        super().__init__(**kwargs)
        self.entries = entries
        self.cursor = 0
        self._labels: dict[int, Text] = {}

    @property
    def count(self) -> int:
        return len(self.entries)

    def label(self, index: int) -> Text:
        text = self._labels.get(index)
        if text is None:
            if len(self._labels) > 2_000:
                self._labels.clear()
            text = self._labels[index] = step_label(self.entries[index])
        return text

    def on_mount(self) -> None:
        self.virtual_size = Size(0, self.count)

    def render_line(self, y: int) -> Strip:
        index = round(self.scroll_y) + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if not 0 <= index < self.count:
            return Strip.blank(width, base)
        text = self.label(index).copy()
        text.truncate(width, overflow="ellipsis", pad=True)
        style = base + self.get_component_rich_style("step-list--cursor") if index == self.cursor else base
        segments = list(Segment.apply_style(text.render(self.app.console), style))
        return Strip(segments).crop_extend(0, width, style)

    def move_to(self, index: int) -> int:
        """Put the cursor on a step (no message) and scroll it into view."""
        if not self.count:
            return 0
        index = max(0, min(index, self.count - 1))
        self.cursor = index
        height = max(1, self.scrollable_content_region.height)
        if index < self.scroll_y:
            self.scroll_to(y=index, animate=False, immediate=True)
        elif index >= self.scroll_y + height:
            self.scroll_to(y=index - height + 1, animate=False, immediate=True)
        self.refresh()
        return index

    def _go(self, index: int) -> None:
        before = self.cursor
        index = self.move_to(index)
        if index != before:
            self.post_message(self.Highlighted(index))

    def action_cursor_up(self) -> None:
        self._go(self.cursor - 1)

    def action_cursor_down(self) -> None:
        self._go(self.cursor + 1)

    def action_page_up(self) -> None:
        self._go(self.cursor - max(1, self.scrollable_content_region.height - 1))

    def action_page_down(self) -> None:
        self._go(self.cursor + max(1, self.scrollable_content_region.height - 1))

    def action_first(self) -> None:
        self._go(0)

    def action_last(self) -> None:
        self._go(self.count - 1)

    def action_select(self) -> None:
        if self.count:
            self.post_message(self.Selected(self.cursor))

    def on_click(self, event: events.Click) -> None:
        index = round(self.scroll_y) + event.y
        if 0 <= index < self.count:
            self.move_to(index)
            self.post_message(self.Selected(index))


class InspectApp(App[int]):
    """Read-only viewer of one trajectory."""

    TITLE = "luban inspect"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #summary { height: auto; max-height: 5; padding: 0 1; background: $panel; }
    #body { height: 1fr; }
    #right { height: 1fr; }
    #step-title { height: 1; padding: 0 1; background: $boost; color: $text-muted; }
    """
    BINDINGS = [
        Binding("n", "next_step", "next step"),
        Binding("p", "previous_step", "previous"),
        Binding("g", "first_step", "first"),
        Binding("G", "last_step", "last", key_display="G"),
        Binding("tab", "focus_next", "switch pane", show=False),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, path: Path, *, loaded: LoadedTrajectory | None = None):
        super().__init__()
        self.path = Path(path)
        self.trajectory = loaded if loaded is not None else load_trajectory(self.path)
        self.current: int | None = None  # index into trajectory.entries
        self.shown_records: list[dict[str, Any]] = []

    @property
    def entries(self) -> list[StepEntry]:
        return self.trajectory.entries

    def compose(self) -> ComposeResult:
        yield Static(summary_text(self.trajectory), id="summary")
        with Horizontal(id="body"):
            yield StepList(self.entries, id="steps")
            with Vertical(id="right"):
                yield Static("", id="step-title")
                yield Transcript(collapse_finished=False, follow=False, id="transcript")
        yield Footer()

    def on_mount(self) -> None:
        steps = self.query_one(StepList)
        steps.focus()
        if self.entries:
            self.show(0)
        else:
            self.query_one("#step-title", Static).update("no steps recorded")

    # -- showing a step

    def show(self, index: int) -> None:
        if not self.entries:
            return
        index = max(0, min(index, len(self.entries) - 1))
        if index == self.current:
            return
        from agent.events import parse_event

        self.current = index
        entry = self.entries[index]
        transcript = self.query_one(Transcript)
        transcript.clear_transcript()
        events, bad = [], 0
        for record in entry.records:
            try:
                events.append(parse_event(record))
            except ValueError:
                bad += 1
        self.shown_records = entry.records
        transcript.handle_many(events)
        if bad:
            transcript.add_note(
                f"! {bad} event{'s' if bad != 1 else ''} of this step could not be read", "warning"
            )
        if index == len(self.entries) - 1 and self.trajectory.result is None:
            transcript.add_note("(the trajectory ends here: it has no result line)", "warning")
        transcript.scroll_home(animate=False)
        self.query_one("#step-title", Static).update(self.step_title(index))

    def step_title(self, index: int) -> Text:
        entry = self.entries[index]
        name = f"step {entry.step}" if entry.step is not None else "no step"
        text = Text(f"{name} · {index + 1} of {len(self.entries)}")
        if entry.start_ts is not None and self.trajectory.first_ts is not None:
            text.append(f" · +{fmt_duration(max(0.0, entry.start_ts - self.trajectory.first_ts))}")
        if entry.cost:
            text.append(f" · ${entry.cost:.4f}")
        if entry.errors:
            text.append(f" · {entry.errors} error{'s' if entry.errors != 1 else ''}", style="red")
        return text

    def _select(self, index: int) -> None:
        if not self.entries:
            return
        index = max(0, min(index, len(self.entries) - 1))
        self.query_one(StepList).move_to(index)
        self.show(index)

    def on_step_list_highlighted(self, message: StepList.Highlighted) -> None:
        if message.index == self.query_one(StepList).cursor:  # not a stale one
            self.show(message.index)

    def on_step_list_selected(self, message: StepList.Selected) -> None:
        self.show(message.index)

    # -- actions

    def action_next_step(self) -> None:
        self._select((self.current if self.current is not None else -1) + 1)

    def action_previous_step(self) -> None:
        self._select((self.current if self.current is not None else 1) - 1)

    def action_first_step(self) -> None:
        self._select(0)

    def action_last_step(self) -> None:
        self._select(len(self.entries) - 1)


def run_inspect(path: Path) -> int:
    """`luban inspect`: show a trajectory. A missing, unreadable or non-trajectory file is
    reported on stderr with exit code 2, without starting the app."""
    try:
        loaded = load_trajectory(Path(path))
    except TrajectoryError as exc:
        print(f"luban inspect: {exc}", file=sys.stderr)
        return EXIT_USAGE
    InspectApp(Path(path), loaded=loaded).run()
    return 0
