"""Slash commands: their table, and the completion menu that opens above the prompt when the
prompt starts with `/`."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option


@dataclass(frozen=True)
class Command:
    name: str  # without the slash
    help: str
    args: str = ""  # e.g. "[NAME]"; a command with args completes to "/name " and waits
    needs_idle: bool = False


COMMANDS: tuple[Command, ...] = (
    Command("undo", "put back the files as they were before the agent's last change", needs_idle=True),
    Command("diff", "show everything changed since the conversation started"),
    Command("model", "show the model, or switch to another one", args="[NAME]", needs_idle=True),
    Command("compact", "summarise the conversation to free context", needs_idle=True),
    Command("clear", "start a new conversation", needs_idle=True),
    Command("help", "commands and keys"),
    Command("quit", "leave Luban"),
)
BY_NAME = {c.name: c for c in COMMANDS}

KEYS_HELP = (
    ("Enter", "send (while a turn runs: queue the message for when it ends)"),
    ("Ctrl+J / Shift+Enter", "new line"),
    ("Up / Down", "previous / next prompt (on the first / last line)"),
    ("/", "commands (Tab or Enter completes)"),
    ("Esc", "interrupt the running turn; then type a correction"),
    ("y / a / n / m", "in an approval: once / always / deny / deny with a message"),
    ("Ctrl+B", "show or hide the side panel"),
    ("Ctrl+C, Ctrl+D (empty prompt)", "quit"),
)


def help_text() -> str:
    width = max(len(c.name) + len(c.args) + 2 for c in COMMANDS)
    lines = ["Commands:"]
    for c in COMMANDS:
        lines.append(f"  {('/' + c.name + (' ' + c.args if c.args else '')).ljust(width + 1)}  {c.help}")
    kw = max(len(k) for k, _ in KEYS_HELP)
    lines.append("Keys:")
    lines.extend(f"  {k.ljust(kw)}  {v}" for k, v in KEYS_HELP)
    return "\n".join(lines)


def parse(text: str) -> tuple[str, str] | None:
    """("name", "args") for a slash command line, None for an ordinary message. `//x` and
    `/path/to/file ...` are messages, not commands."""
    stripped = text.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    head, _, rest = stripped[1:].partition(" ")
    if "/" in head or "\n" in head:
        return None
    return head.lower(), rest.strip()


def matches(text: str) -> list[Command]:
    """The commands the prompt text could be completing (empty when not typing a command name)."""
    if not text.startswith("/") or " " in text or "\n" in text or text.startswith("//"):
        return []
    typed = text[1:].lower()
    return [c for c in COMMANDS if c.name.startswith(typed)]


class SlashMenu(OptionList):
    DEFAULT_CSS = """
    SlashMenu {
        display: none; height: auto; max-height: 9; border: round $accent; padding: 0 1;
        background: $surface;
    }
    SlashMenu.open { display: block; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.commands: list[Command] = []
        self.can_focus = False

    @property
    def is_open(self) -> bool:
        return self.has_class("open")

    def show_for(self, text: str) -> bool:
        """Filter to what `text` could complete; open if anything matches. Returns is_open."""
        found = matches(text)
        if not found:
            self.close()
            return False
        if [c.name for c in found] != [c.name for c in self.commands]:
            self.commands = found
            self.clear_options()
            self.add_options([Option(self._label(c), id=c.name) for c in found])
        if self.highlighted is None:
            self.highlighted = 0
        self.add_class("open")
        return True

    @staticmethod
    def _label(c: Command) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"/{c.name}", style="bold")
        if c.args:
            t.append(f" {c.args}", style="italic")
        t.append(f"  {c.help}", style="dim")
        return t

    def close(self) -> None:
        self.remove_class("open")

    def current(self) -> Command | None:
        if not self.is_open or self.highlighted is None or not self.commands:
            return None
        return self.commands[self.highlighted]

    def move(self, delta: int) -> None:
        if not self.commands:
            return
        self.highlighted = ((self.highlighted or 0) + delta) % len(self.commands)
