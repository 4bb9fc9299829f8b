"""The prompt: a multi-line TextArea where Enter sends, Ctrl+J (or Shift+Enter where the terminal
reports it) inserts a newline, and Up/Down on the first/last row (as shown, soft wrap included)
walk the history, which is kept per user in the Luban state dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

from textual import events
from textual.message import Message
from textual.widgets import TextArea

HISTORY_FILE = "prompt_history.jsonl"
HISTORY_LIMIT = 500
NEWLINE_KEYS = frozenset({"ctrl+j", "shift+enter", "alt+enter", "newline"})


class PromptHistory:
    """Sent prompts, oldest first, as JSONL (`{"text": ...}` per line). Bounded: the file is
    rewritten with the newest `limit` entries when it grows past twice that. Lines that are not
    valid entries (a corrupt or half-written file) are skipped, never fatal."""

    def __init__(self, path: Path | None, limit: int = HISTORY_LIMIT):
        self.path = path
        self.limit = limit
        self.entries: list[str] = []
        self._lines_on_disk = 0
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            raw = self.path.read_bytes()
        except OSError:
            return
        entries = []
        lines = raw.decode("utf-8", errors="replace").splitlines()
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            text = obj.get("text") if isinstance(obj, dict) else None
            if isinstance(text, str) and text.strip():
                entries.append(text)
        self._lines_on_disk = len(lines)
        self.entries = entries[-self.limit :]

    def add(self, text: str) -> None:
        if not text.strip():
            return
        if self.entries and self.entries[-1] == text:
            return
        self.entries.append(text)
        del self.entries[: -self.limit]
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self._lines_on_disk + 1 > 2 * self.limit:
                tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
                tmp.write_text(
                    "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in self.entries),
                    encoding="utf-8",
                )
                tmp.replace(self.path)
                self._lines_on_disk = len(self.entries)
            else:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                self._lines_on_disk += 1
        except OSError:
            pass  # history is a convenience: a read-only state dir must not break the prompt


class PromptArea(TextArea):
    """The multi-line prompt. Posts `Submitted` on Enter; the app decides what to do with it."""

    class Submitted(Message):
        def __init__(self, prompt: PromptArea, text: str):
            super().__init__()
            self.prompt = prompt
            self.text = text

    class MenuKey(Message):
        """A key the slash-command menu wants while it is open (up, down, tab, enter, escape)."""

        def __init__(self, key: str):
            super().__init__()
            self.key = key

    def __init__(self, history: PromptHistory | None = None, **kwargs):
        kwargs.setdefault("soft_wrap", True)
        kwargs.setdefault("show_line_numbers", False)
        kwargs.setdefault("tab_behavior", "focus")
        super().__init__(**kwargs)
        self.prompt_history = history or PromptHistory(None)
        self._index: int | None = None  # position in the history while walking it
        self._draft = ""
        self.menu_open = False  # set by the app while the slash menu shows

    # ------------------------------------------------------------------ keys

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if self.menu_open and key in ("up", "down", "tab", "enter", "escape"):
            self._consume(event)
            self.post_message(self.MenuKey(key))
            return
        if key == "enter":
            self._consume(event)
            self.submit()
        elif key in NEWLINE_KEYS:
            self._consume(event)
            self.insert("\n")
        elif key == "up" and self.navigator.is_first_wrapped_line(self.cursor_location):
            if not self.selected_text and self.history_previous():
                self._consume(event)
        elif key == "down" and self.navigator.is_last_wrapped_line(self.cursor_location):
            if not self.selected_text and self.history_next():
                self._consume(event)
        elif key == "ctrl+d" and not self.text:
            self._consume(event)
            await self.run_action("app.quit")

    @staticmethod
    def _consume(event: events.Key) -> None:
        event.stop()
        event.prevent_default()

    def submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        self.prompt_history.add(text)
        self._index = None
        self._draft = ""
        self.load_text("")
        self.post_message(self.Submitted(self, text))

    # ------------------------------------------------------------------ history

    def history_previous(self) -> bool:
        entries = self.prompt_history.entries
        if not entries:
            return False
        if self._index is None:
            self._draft = self.text
            self._index = len(entries) - 1
        elif self._index > 0:
            self._index -= 1
        else:
            return True  # at the oldest entry: stay there
        self._show(entries[self._index], at_start=True)
        return True

    def history_next(self) -> bool:
        if self._index is None:
            return False
        entries = self.prompt_history.entries
        if self._index < len(entries) - 1:
            self._index += 1
            self._show(entries[self._index], at_start=False)
        else:
            self._index = None
            self._show(self._draft, at_start=False)
        return True

    def _show(self, text: str, *, at_start: bool) -> None:
        self.load_text(text)
        if at_start:  # on the first (wrapped) row, so Up again walks further back
            offsets = self.wrapped_document.get_offsets(0)
            end = len(self.document[0])
            self.move_cursor((0, min(end, offsets[0] - 1) if offsets else end))
        else:  # Down again walks forward
            self.move_cursor(self.document.end)
