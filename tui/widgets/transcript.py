"""The conversation view shared by the live app and `luban inspect`: user messages, the model's
text streamed as markdown, reasoning, one card per tool call, notes, diffs.

It is driven only by events (`handle` / `handle_many`) and a few local calls; it does no file or
git I/O. Streaming stays cheap as a run grows:
- consecutive deltas of one kind are joined before they touch a widget (`handle_many`), and a
  step's markdown appends only the new text (Textual re-parses from the last top-level block), one
  append at a time: what arrives meanwhile is joined into the next append;
- live tool output goes to a line-based log (it renders only the visible lines), capped;
- finished turns older than the last `live_markdown` are frozen into one Static each (a Markdown
  widget is a widget per paragraph, list item and code block), finished tool cards drop the
  widgets they no longer show: layout, styling and garbage collection scale with widgets;
- at most `max_blocks` blocks stay mounted; older ones are removed, with a marker saying so.

Measured by bench/tui_transcript.py.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.events import Mount
from textual.widget import Widget
from textual.widgets import Markdown, Static

from agent import events as ev
from tui.widgets.tool_card import (
    DiffBlock,
    OutputTail,
    QuietCollapsible,
    ToolCard,
    fmt_duration,
    fmt_tokens,
)

__all__ = ["Transcript", "coalesce"]

NOTE_STYLES = ("info", "warning", "error", "success")


def coalesce(events: Iterable[ev.Event]) -> list[ev.Event]:
    """Join consecutive deltas of the same kind and step (text, reasoning) or call (tool output),
    so a burst of 500 tokens becomes one event. Everything else passes through in order."""
    out: list[ev.Event] = []
    key: tuple[Any, ...] | None = None
    texts: list[str] = []

    def flush() -> None:
        if key is not None and len(texts) > 1:
            last = out[-1]
            out[-1] = last.model_copy(update={"text": "".join(texts)})

    for e in events:
        if isinstance(e, ev.TextDelta | ev.ReasoningDelta):
            k: tuple[Any, ...] | None = (type(e), e.step)
        elif isinstance(e, ev.ToolOutputDelta):
            k = (ev.ToolOutputDelta, e.call_id)
        else:
            k = None
        if k is not None and k == key:
            texts.append(e.text)  # type: ignore[attr-defined]
            continue
        flush()
        key, texts = k, ([e.text] if k is not None else [])  # type: ignore[attr-defined]
        out.append(e)
    flush()
    return out


# ---------------------------------------------------------------------------- blocks


class StreamingMarkdown(Markdown):
    """Markdown that takes text synchronously (`feed`, `set_text`) and applies it in the
    background: one append at a time, everything that arrived meanwhile joined into the next.
    Text given before the widget is mounted is applied once it is."""

    DEFAULT_CSS = """
    StreamingMarkdown { margin: 0; padding: 0; height: auto; }
    """

    def __init__(self, **kwargs: Any):
        super().__init__("", **kwargs)
        self.text = ""  # the text as it should read once every pending update is applied
        self._pending: list[str] = []
        self._replace: str | None = None
        self._ready = False
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()
        self.updates = 0  # widget updates applied (appends or full updates)

    async def _on_mount(self, event: Mount) -> None:
        # Markdown's own mount handler renders the initial (empty) document; run it first, then
        # stop the dispatch going on to it a second time, then start applying what was fed.
        await super()._on_mount(event)
        event.prevent_default()
        self._ready = True
        self._kick()

    def feed(self, text: str) -> None:
        if not text:
            return
        self.text += text
        self._pending.append(text)
        self._idle.clear()
        self._kick()

    def set_text(self, text: str) -> None:
        """Make the document read exactly `text` (no-op when it already does)."""
        if text == self.text:
            return
        self.text = text
        self._pending.clear()
        self._replace = text
        self._idle.clear()
        self._kick()

    @property
    def busy(self) -> bool:
        return bool(self._pending) or self._replace is not None or self._draining

    async def wait_idle(self) -> None:
        while self.busy:
            await self._idle.wait()
            await asyncio.sleep(0)

    def on_unmount(self) -> None:
        self._pending.clear()
        self._replace = None
        self._idle.set()

    def _kick(self) -> None:
        if not self._ready or self._draining or not (self._pending or self._replace is not None):
            return
        self._draining = True
        self.run_worker(self._drain(), group="markdown-stream")

    async def _drain(self) -> None:
        try:
            while True:
                if self._replace is not None:
                    text, self._replace = self._replace, None
                    self._pending.clear()
                    self.updates += 1
                    await self.update(text)
                elif self._pending:
                    chunk = "".join(self._pending)
                    self._pending.clear()
                    self.updates += 1
                    await self.append(chunk)
                else:
                    break
        finally:
            self._draining = False
            self._idle.set()


class ReasoningView(QuietCollapsible):
    """The model's reasoning, dimmed, in a collapsible titled "reasoning"."""

    DEFAULT_CSS = """
    ReasoningView {
        & > CollapsibleTitle { color: $text-muted; padding: 0; }
        & .reasoning-text { color: $text-muted; text-style: dim italic; }
    }
    """

    def __init__(self, max_chars: int = 200_000):
        self.text_widget = Static("", classes="reasoning-text")
        self.text = ""
        self.max_chars = max_chars
        super().__init__(self.text_widget, title="reasoning", collapsed=False)

    def add(self, text: str) -> None:
        self.set_text(self.text + text)

    def set_text(self, text: str) -> None:
        self.text = text
        shown = text if len(text) <= self.max_chars else "…" + text[-self.max_chars :]
        self.text_widget.update(Text(shown.strip("\n")))
        self.display = bool(text.strip())


class AssistantBlock(Vertical):
    """One model turn (step): reasoning (collapsible) and the text, streamed as markdown."""

    DEFAULT_CSS = """
    AssistantBlock {
        height: auto;
        margin: 1 0 0 0;
        & > .frozen-markdown { margin: 0 0 1 0; }
    }
    """

    def __init__(self, step: int, max_chars: int = 200_000, fold: bool = True):
        super().__init__(classes="block")
        self.step = step
        # A long reply is split at paragraph breaks: finished parts become one Static each and
        # only the tail stays a live Markdown widget, so each append costs the same at 50,000
        # characters as at 500 (Textual restyles a Markdown's children on every append).
        self._frozen_text = ""
        self._segments: list[Static] = []
        self.fold = fold  # fold the reasoning once the text or the tool calls begin
        self.final = False
        self.frozen = False
        self.reasoning = ReasoningView(max_chars)
        self.reasoning.display = False
        self.markdown = StreamingMarkdown()
        self.markdown.display = False

    def compose(self):  # type: ignore[override]
        yield self.reasoning
        yield self.markdown

    def add_text(self, text: str) -> None:
        if text.strip() or self.text:
            self.fold_reasoning()
            self.markdown.display = True
        live = self.markdown
        if len(live.text) > SEGMENT_CHARS and not live.busy and self.is_attached:
            cut = safe_cut(live.text)
            if cut:
                head = live.text[:cut]
                segment = Static(frozen_markdown(head), classes="frozen-markdown")
                self.mount(segment, before=live)
                self._segments.append(segment)
                self._frozen_text += head
                live.set_text(live.text[cut:])
        live.feed(text)

    def _unsegment(self) -> None:
        for segment in self._segments:
            segment.remove()
        self._segments.clear()
        self._frozen_text = ""

    def add_reasoning(self, text: str) -> None:
        self.reasoning.add(text)

    def fold_reasoning(self) -> None:
        if self.fold and self.reasoning.display and not self.reasoning.collapsed:
            self.reasoning.collapsed = True

    def finalise(self, content: str, reasoning: str | None, has_tools: bool) -> None:
        self.final = True
        if reasoning is not None and reasoning.strip() and reasoning.strip() != self.reasoning.text.strip():
            self.reasoning.set_text(reasoning)
        if content.strip() != self.text.strip():
            if self._frozen_text and content.startswith(self._frozen_text):
                self.markdown.set_text(content[len(self._frozen_text) :])
            else:
                self._unsegment()
                self.markdown.set_text(content)
        self.markdown.display = bool(content.strip())
        if self.markdown.display or has_tools:
            self.fold_reasoning()
        self.display = self.markdown.display or self.reasoning.display

    @property
    def text(self) -> str:
        return self._frozen_text + self.markdown.text

    def freeze(self) -> bool:
        """Swap the Markdown widget (a widget per paragraph, list item, code block...) for one
        Static showing the same text, so old turns cost one widget each in layout, styling and
        memory. False when the text is still being applied (try again later)."""
        if self.frozen:
            return True
        if not self.final or self.markdown.busy or not self.is_attached:
            return False
        self.frozen = True
        text = self.text
        self._unsegment()
        if text.strip():
            self.mount(Static(frozen_markdown(text), classes="frozen-markdown"), after=self.markdown)
        self.markdown.remove()
        if not self.reasoning.display:
            self.reasoning.remove()
        return True


SEGMENT_CHARS = 2000


def safe_cut(text: str) -> int:
    """Where a markdown text can be split without changing how either part renders: after the
    last blank line that is outside a fenced code block (0 when there is none)."""
    cut, pos, fence = 0, 0, None
    for line in text.splitlines(keepends=True):
        pos += len(line)
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else (fence or marker)
        elif fence is None and not line.strip() and pos < len(text):
            cut = pos
    return cut


def frozen_markdown(text: str) -> RichMarkdown:
    return RichMarkdown(text, code_theme="ansi_dark", hyperlinks=False)


class UserBlock(Static):
    DEFAULT_CSS = """
    UserBlock {
        margin: 1 0 0 0;
        padding: 0 1;
        background: $boost;
        border-left: outer $accent;
    }
    """


class RunHeader(Static):
    DEFAULT_CSS = """
    RunHeader { margin: 0 0 0 0; color: $text-muted; }
    """


class RunFooter(Static):
    DEFAULT_CSS = """
    RunFooter { margin: 1 0 0 0; }
    """


class NoteLine(Static):
    DEFAULT_CSS = """
    NoteLine { color: $text-muted; }
    NoteLine.-warning { color: $warning; }
    NoteLine.-error { color: $error; }
    NoteLine.-success { color: $success; }
    """


# ---------------------------------------------------------------------------- the transcript


class Transcript(VerticalScroll):
    """The conversation: user messages, streaming assistant markdown, reasoning, tool cards."""

    DEFAULT_CSS = """
    Transcript {
        height: 1fr;
        padding: 0 1;
        & > .hidden-blocks { color: $text-muted; text-style: italic; }
    }
    """

    def __init__(
        self,
        *,
        max_blocks: int = 400,
        max_output_chars: int = 200_000,
        collapse_finished: bool = True,
        follow: bool = True,
        live_markdown: int = 2,
        **kwargs: Any,
    ):
        """`collapse_finished`: fold a tool card when its call ends, and the reasoning once the
        text begins (the viewer keeps them open).
        `follow`: follow the end as content arrives (the viewer passes False: it shows a step
        from its top and never scrolls by itself).
        `live_markdown`: how many of the latest finished model turns stay Textual Markdown
        widgets; older ones are frozen into one Static each (same text, rendered by Rich)."""
        super().__init__(**kwargs)
        self.max_blocks = max(1, max_blocks)
        self.max_output_chars = max_output_chars
        self.collapse_finished = collapse_finished
        self._auto_follow = follow  # False (the viewer): never scroll by itself
        self._want_follow = follow
        self._marker = Static("", classes="hidden-blocks")
        self._marker.display = False
        self._blocks: deque[Widget] = deque()
        self.hidden_blocks = 0
        self._steps: dict[int, AssistantBlock] = {}
        self.live_markdown = max(0, live_markdown)
        self._unfrozen: deque[AssistantBlock] = deque()
        self._cards: dict[str, ToolCard] = {}
        self._echoed: list[str] = []  # user messages shown by add_user_message, not yet echoed back
        self._backlog: list[ev.Event] = []
        self._last_user: UserBlock | None = None
        self.applied = 0  # events applied after coalescing (for tests and benchmarks)

    def compose(self):  # type: ignore[override]
        yield self._marker

    def on_mount(self) -> None:
        backlog, self._backlog = self._backlog, []
        if backlog:
            self.handle_many(backlog)

    # -- following the end
    #
    # Not Textual's `anchor()`: an anchored container shorter than its content area is scrolled
    # to a negative offset (its content hangs at the bottom of the screen). Here: whenever the
    # scrollable size changes while following, scroll to the end; whenever the scroll position
    # changes, following is on exactly when the view is at the end (so scrolling up stops it and
    # scrolling back down resumes it).

    @property
    def follow(self) -> bool:
        """True while the view sticks to the end as content arrives. Scrolling up stops it;
        scrolling back to the bottom resumes it."""
        return self._want_follow

    @follow.setter
    def follow(self, value: bool) -> None:
        """True: stick to the end from now on (also in a transcript made with follow=False).
        False: stop until the user scrolls back to the bottom."""
        self._want_follow = value
        if value:
            self._auto_follow = True
        if value and self.is_mounted:
            self.scroll_end(animate=False)

    def _scroll_update(self, virtual_size: Any) -> None:
        super()._scroll_update(virtual_size)
        if self._want_follow and self.scroll_y != self.max_scroll_y:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value != old_value and self._auto_follow:
            self._want_follow = new_value >= self.max_scroll_y - 0.5

    # -- the public API

    def handle(self, event: ev.Event) -> None:
        """Apply one event."""
        if not self.is_attached:
            self._backlog.append(event)
            return
        self._apply(event)

    def handle_many(self, events: list[ev.Event]) -> None:
        """Apply a batch: consecutive deltas are joined first, so a batch of 500 text deltas is one
        widget update."""
        if not events:
            return
        if not self.is_attached:
            self._backlog.extend(events)
            return
        batch = coalesce(events)
        with self.app.batch_update():
            for event in batch:
                self._apply(event)

    def add_user_message(self, text: str) -> None:
        """What the user typed. The session echoes it back (run_started's task, user_message):
        that echo is not shown a second time."""
        self._echoed.append(text)
        del self._echoed[:-8]
        self._last_user = UserBlock(Text(text.rstrip()), classes="block")
        self._mount_block(self._last_user)

    def add_note(self, text: str, style: str = "info") -> None:
        """A local line: /help output, an /undo report, an error of the front end.
        `style`: info, warning, error or success."""
        style = style if style in NOTE_STYLES else "info"
        self._mount_block(NoteLine(Text(text.rstrip("\n")), classes=f"block -{style}"))

    def add_diff(self, diff: str, title: str = "diff") -> None:
        """A syntax-highlighted unified diff, collapsed when long."""
        self._mount_block(DiffBlock(diff, title, collapsed=None))

    def clear_transcript(self) -> None:
        blocks = list(self._blocks)
        self._blocks.clear()
        self._steps.clear()
        self._unfrozen.clear()
        self._cards.clear()
        self._echoed.clear()
        self._last_user = None
        self.hidden_blocks = 0
        self._marker.display = False
        if blocks:
            self.remove_children(blocks)

    async def wait_idle(self) -> None:
        """Wait until every streamed text has been applied to its widget (tests, screenshots)."""
        for block in list(self._blocks):
            if isinstance(block, AssistantBlock):
                await block.markdown.wait_idle()

    @property
    def blocks(self) -> list[Widget]:
        """The blocks shown, oldest first."""
        return list(self._blocks)

    def card(self, call_id: str) -> ToolCard | None:
        return self._cards.get(call_id)

    def step_block(self, step: int) -> AssistantBlock | None:
        return self._steps.get(step)

    # -- blocks

    def _mount_block(self, widget: Widget, before: Widget | None = None) -> None:
        if before is not None and before in self._blocks:
            self._blocks.insert(self._blocks.index(before), widget)
            self.mount(widget, before=before)
        else:
            self._blocks.append(widget)
            self.mount(widget)
        if len(self._blocks) > self.max_blocks:
            self._evict()

    def _evict(self) -> None:
        old: list[Widget] = []
        while len(self._blocks) > self.max_blocks:
            block = self._blocks.popleft()
            old.append(block)
            if isinstance(block, AssistantBlock) and self._steps.get(block.step) is block:
                del self._steps[block.step]
            elif isinstance(block, ToolCard) and self._cards.get(block.call_id) is block:
                del self._cards[block.call_id]
        self.hidden_blocks += len(old)
        n = self.hidden_blocks
        self._marker.update(f"… {n} earlier block{'s' if n != 1 else ''} hidden")
        self._marker.display = True
        self.remove_children(old)

    def _assistant(self, step: int) -> AssistantBlock:
        block = self._steps.get(step)
        if block is None or block.final:
            block = AssistantBlock(step, self.max_output_chars, fold=self.collapse_finished)
            self._steps[step] = block
            self._mount_block(block)
        return block

    # -- events

    def _apply(self, event: ev.Event) -> None:
        self.applied += 1
        handler = getattr(self, "_on_" + getattr(event, "type", ""), None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, e: ev.RunStarted) -> None:
        text = Text()
        text.append("Luban", style="bold")
        text.append(f" · {e.model} · {e.repo}")
        if e.commit:
            text.append(f" @ {e.commit[:10]}")
        before = None
        if e.task in self._echoed:
            self._echoed.remove(e.task)
            # the header goes above the message that started the run, if that is the last block
            if self._blocks and self._blocks[-1] is self._last_user:
                before = self._last_user
        elif e.task.strip():
            text.append("\nTask: ", style="bold")
            text.append(e.task.strip())
        self._steps.clear()  # step numbers belong to one run
        self._mount_block(RunHeader(text, classes="block"), before=before)

    def _on_user_message(self, e: ev.UserMessage) -> None:
        if e.text in self._echoed:
            self._echoed.remove(e.text)
            return
        self._mount_block(UserBlock(Text(e.text.rstrip()), classes="block"))

    def _on_step_started(self, e: ev.StepStarted) -> None:
        block = self._steps.get(e.step)
        if block is not None and block.final:
            del self._steps[e.step]

    def _on_text_delta(self, e: ev.TextDelta) -> None:
        self._assistant(e.step).add_text(e.text)

    def _on_reasoning_delta(self, e: ev.ReasoningDelta) -> None:
        block = self._assistant(e.step)
        block.reasoning.display = True
        block.display = True
        block.add_reasoning(e.text)

    def _on_assistant_message(self, e: ev.AssistantMessage) -> None:
        block = self._steps.get(e.step)
        if block is None or block.final:
            if not e.content.strip() and not (e.reasoning or "").strip():
                return
            block = self._assistant(e.step)
        block.finalise(e.content, e.reasoning, bool(e.tool_calls))
        self._unfrozen.append(block)
        self._freeze_old()

    def _freeze_old(self) -> None:
        while len(self._unfrozen) > self.live_markdown:
            block = self._unfrozen[0]
            if block.is_attached and not block.freeze():
                break  # its text is still being applied: next time
            self._unfrozen.popleft()

    def _on_tool_call_started(self, e: ev.ToolCallStarted) -> None:
        block = self._steps.get(e.step)
        if block is not None:
            block.fold_reasoning()
        card = ToolCard(
            e.call_id,
            e.name,
            e.arguments,
            step=e.step,
            max_output_chars=self.max_output_chars,
            collapse_finished=self.collapse_finished,
        )
        self._cards[e.call_id] = card
        self._mount_block(card)

    def _on_tool_output_delta(self, e: ev.ToolOutputDelta) -> None:
        card = self._cards.get(e.call_id)
        if card is not None:
            card.write_output(e.text)

    def _on_tool_call_finished(self, e: ev.ToolCallFinished) -> None:
        card = self._cards.get(e.call_id)
        if card is None or not card.running:
            # a call whose start was not seen (a truncated or filtered trajectory)
            self._on_tool_call_started(
                ev.ToolCallStarted(step=e.step, call_id=e.call_id, name=e.name, arguments="")
            )
            card = self._cards[e.call_id]
        card.finish(e.output, is_error=e.is_error, duration=e.duration, data=e.data)

    def _on_notice(self, e: ev.Notice) -> None:
        self.add_note(f"! {e.message}", "warning" if e.level == "warning" else "info")

    def _on_error(self, e: ev.ErrorEvent) -> None:
        self.add_note(f"✗ {e.kind}: {e.message}" if e.kind else f"✗ {e.message}", "error")

    def _on_approval_requested(self, e: ev.ApprovalRequested) -> None:
        text = f"? waiting for approval ({e.kind}): {e.summary}"
        card = self._cards.get(e.call_id) if e.call_id else None
        if card is not None and card.running:
            card.set_approval(text)
            card.collapsed = False
        else:
            self.add_note(text, "warning")

    def _on_approval_answered(self, e: ev.ApprovalAnswered) -> None:
        who = "by the approval policy" if e.by == "policy" else "by you"
        if e.decision == "allow":
            text, state = f"✔ allowed {who}" + (" (always)" if e.always else ""), "allowed"
        else:
            text, state = f"⊘ refused {who}" + (f": {e.message}" if e.message else ""), "denied"
        card = self._cards.get(e.call_id) if e.call_id else None
        if card is not None:
            card.set_approval(text, state)
        elif e.decision == "deny" or e.by == "user":
            self.add_note(f"{e.tool}: {text}", "error" if e.decision == "deny" else "success")

    def _on_run_finished(self, e: ev.RunFinished) -> None:
        ok = e.exit_code == 0
        text = Text()
        text.append(("✔ " if ok else "✗ ") + e.reason, style="bold green" if ok else "bold red")
        message = e.message.strip()
        if message and e.reason != "answered":  # an answer is already shown as the model's text
            tail = OutputTail.of(message, 40, 4_000)
            text.append(": " + tail.text())
        tokens = f"{fmt_tokens(e.prompt_tokens)} in / {fmt_tokens(e.completion_tokens)} out"
        if e.cached_tokens:
            tokens += f" ({fmt_tokens(e.cached_tokens)} cached)"
        stats = f"{e.steps} step{'s' if e.steps != 1 else ''} · {tokens} tokens · ${e.cost:.4f}"
        if e.duration:
            stats += f" · {fmt_duration(e.duration)}"
        text.append("\n" + stats, style="dim")
        if e.branch:
            what = f"committed {e.commit[:12]} on" if e.commit else "nothing committed on"
            text.append(f"\n{what} branch {e.branch}", style="dim")
        if e.checkpoints > 1 and e.run_id:
            text.append(f"\nundo this run: luban undo --run {e.run_id}", style="dim")
        self._mount_block(RunFooter(text, classes="block"))
        if e.diff.strip():
            self.add_diff(e.diff, "diff of the run")
