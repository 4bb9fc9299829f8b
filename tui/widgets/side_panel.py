"""The side panel: the model's plan (its latest todo_write list) and the files changed so far.
Selecting a file (click or Enter) asks the app to show that file's diff."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

MARKS = {"done": ("✔", "green"), "in_progress": ("▸", "bold yellow"), "pending": ("·", "dim")}


@dataclass
class FileChange:
    path: str
    added: int | None = None  # None until the run's diff has been read
    removed: int | None = None
    status: str = "M"  # M modified, A added, D deleted


def split_diff(diff: str) -> dict[str, str]:
    """A unified git diff split per file: {path: that file's part of the diff}, in order."""
    parts: dict[str, str] = {}
    current: str | None = None
    chunk: list[str] = []
    for line in diff.splitlines(keepends=True):
        if line.startswith("diff --git "):
            if current is not None:
                parts[current] = "".join(chunk)
            current, chunk = diff_path(line), []
        chunk.append(line)
    if current is not None:
        parts[current] = "".join(chunk)
    return parts


def diff_path(header: str) -> str:
    rest = header[len("diff --git ") :].rstrip("\n")
    if rest.startswith('"'):  # git quotes unusual names
        rest = rest.replace('"', "")
    i = rest.rfind(" b/")
    return rest[i + 3 :] if i >= 0 else rest


def changes_from_diff(diff: str) -> list[FileChange]:
    out: list[FileChange] = []
    for path, part in split_diff(diff).items():
        added = removed = 0
        status = "M"
        for line in part.splitlines():
            if line.startswith("+++") or line.startswith("---"):
                if line.startswith("--- /dev/null"):
                    status = "A"
                elif line.startswith("+++ /dev/null"):
                    status = "D"
                continue
            if line.startswith("+"):
                added += 1
            elif line.startswith("-"):
                removed += 1
        out.append(FileChange(path, added, removed, status))
    return out


class SidePanel(Vertical):
    DEFAULT_CSS = """
    SidePanel { width: 34; border-left: solid $panel-lighten-2; padding: 0 1; }
    SidePanel .title { text-style: bold; color: $text-muted; margin-top: 1; }
    SidePanel #plan { height: auto; max-height: 50%; }
    SidePanel #files { height: 1fr; border: none; padding: 0; background: transparent; }
    SidePanel #files:focus { border: none; }
    """

    class FileSelected(Message):
        def __init__(self, path: str):
            super().__init__()
            self.path = path

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.todos: list[dict] = []
        self.files: dict[str, FileChange] = {}

    def compose(self) -> ComposeResult:
        yield Static("Plan", classes="title")
        yield Static(Text("no plan yet", style="dim"), id="plan")
        yield Static("Files changed", classes="title", id="files-title")
        yield OptionList(id="files")

    # ------------------------------------------------------------------ plan

    def set_plan(self, todos: list[dict]) -> None:
        self.todos = list(todos)
        text = Text()
        for i, item in enumerate(self.todos):
            mark, style = MARKS.get(str(item.get("status")), MARKS["pending"])
            if i:
                text.append("\n")
            text.append(f"{mark} ", style=style)
            text.append(str(item.get("content", "")), style="dim" if item.get("status") == "done" else "")
        self.query_one("#plan", Static).update(text if self.todos else Text("no plan yet", style="dim"))

    # ------------------------------------------------------------------ files

    def add_path(self, path: str) -> None:
        """A path a tool reported changing, shown before the diff is read."""
        if path and path not in self.files:
            self.files[path] = FileChange(path)
            self._render_files()

    def set_files(self, changes: list[FileChange]) -> None:
        new = {c.path: c for c in changes}
        if new == self.files:
            return
        self.files = new
        self._render_files()

    def _render_files(self) -> None:
        files = self.query_one("#files", OptionList)
        highlighted = files.highlighted
        files.clear_options()
        options = []
        for c in self.files.values():
            label = Text(no_wrap=True, overflow="ellipsis")
            colour = {"A": "green", "D": "red"}.get(c.status, "yellow")
            label.append(f"{c.status} ", style=colour)
            label.append(c.path)
            if c.added is not None:
                label.append(f" +{c.added}", style="green")
                label.append(f" -{c.removed}", style="red")
            options.append(Option(label, id=c.path))
        files.add_options(options)
        if highlighted is not None and options:
            files.highlighted = min(highlighted, len(options) - 1)
        n = len(self.files)
        self.query_one("#files-title", Static).update(f"Files changed ({n})" if n else "Files changed")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.FileSelected(event.option.id))

    def reset(self) -> None:
        self.set_plan([])
        self.files = {}
        self._render_files()
