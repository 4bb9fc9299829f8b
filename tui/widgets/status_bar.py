"""The status bar: model, step, token totals, cost, share of the context window in use, and
whether a turn is running (with its elapsed time)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from agent import events as ev

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def human_tokens(n: int) -> str:
    if n < 1000:
        return str(n)
    if n < 100_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def human_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class StatusState:
    model: str = ""
    step: int = 0
    prompt_tokens: int = 0  # totals over the conversation
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    last_prompt: int = 0  # the last call's prompt size, for the context share
    context_window: int = 0
    busy_since: float | None = None  # time.monotonic() when the turn started
    queued: int = 0
    note: str = ""  # e.g. "interrupting…"
    # Totals carried over from a resumed conversation (the new loop counts from zero).
    base_prompt: int = 0
    base_completion: int = 0
    base_cached: int = 0
    base_cost: float = 0.0

    def apply(self, event: ev.Event) -> bool:
        """Fold one event in; True when something shown changed."""
        if isinstance(event, ev.StepStarted):
            self.step = event.step
            return True
        if isinstance(event, ev.UsageUpdate):
            self.prompt_tokens = self.base_prompt + event.total_prompt_tokens
            self.completion_tokens = self.base_completion + event.total_completion_tokens
            self.cached_tokens = self.base_cached + event.total_cached_tokens
            self.cost = self.base_cost + event.total_cost
            self.last_prompt = event.prompt_tokens
            if event.context_window:
                self.context_window = event.context_window
            return True
        if isinstance(event, ev.RunStarted):
            self.model = event.model
            return True
        return False

    def carry_over(self) -> None:
        """After a resumed history is shown: what it cost stays in the totals."""
        self.base_prompt, self.base_completion = self.prompt_tokens, self.completion_tokens
        self.base_cached, self.base_cost = self.cached_tokens, self.cost


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, **kwargs):
        super().__init__("", **kwargs)
        self.state = StatusState()
        self._shown: str | None = None
        self.clock = time.monotonic  # tests and snapshots may replace it

    def render_text(self) -> Text:
        s = self.state
        t = Text(no_wrap=True, overflow="ellipsis")
        if s.busy_since is not None:
            elapsed = max(0.0, self.clock() - s.busy_since)
            frame = SPINNER[int(elapsed * 10) % len(SPINNER)]
            t.append(f"{frame} working {human_duration(elapsed)}", style="bold cyan")
            if s.note:
                t.append(f" · {s.note}", style="bold")
            else:
                t.append(" · esc to interrupt", style="dim")
        else:
            t.append("● ready", style="bold green")
        if s.queued:
            t.append(f" · {s.queued} queued", style="bold")
        t.append("  │  ", style="dim")
        t.append(s.model or "no model", style="bold")
        if s.step:
            t.append(f" · step {s.step}")
        t.append(
            f" · tokens {human_tokens(s.prompt_tokens)} in / {human_tokens(s.completion_tokens)} out"
            f" / {human_tokens(s.cached_tokens)} cached"
        )
        t.append(f" · ${s.cost:.4f}")
        if s.context_window:
            share = 100.0 * s.last_prompt / s.context_window
            style = "bold red" if share >= 80 else ("yellow" if share >= 50 else "")
            t.append(" · ctx ")
            t.append(f"{share:.0f}%", style=style)
        return t

    def refresh_status(self) -> None:
        """Re-render if what it shows changed (cheap to call every frame)."""
        text = self.render_text()
        if text.plain != self._shown:
            self._shown = text.plain
            self.update(text)
