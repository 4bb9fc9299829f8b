"""The approval modal: a call the policy leaves to the user. y approves once, a approves this
tool (or command prefix) for the rest of the session, n denies, m denies with a message to the
model. Esc denies (while typing the message, Esc goes back to the choices)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from agent.approval import Answer, ApprovalRequest

KIND_TITLE = {
    "command": "run a command",
    "git": "change the repository (git)",
    "edit": "edit files",
    "test": "run the tests",
    "read": "read",
}


def describe_key(request: ApprovalRequest) -> str:
    """What "always" would allow, in words."""
    key = request.key
    if ":" in key and request.kind == "command":
        prefixes = key.split(":", 1)[1]
        return f"commands starting with {prefixes}"
    return f"every `{key}` call"


class ApprovalScreen(ModalScreen[Answer]):
    DEFAULT_CSS = """
    ApprovalScreen { align: center middle; background: $background 60%; }
    ApprovalScreen #dialog {
        width: 90; max-width: 95%; height: auto; max-height: 90%;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    ApprovalScreen #title { text-style: bold; color: $warning; }
    ApprovalScreen #summary {
        margin: 1 0; padding: 0 1; background: $boost; max-height: 12; overflow-y: auto;
    }
    ApprovalScreen #always { color: $text-muted; }
    ApprovalScreen #buttons { height: auto; margin-top: 1; }
    ApprovalScreen Button { margin-right: 1; min-width: 12; }
    ApprovalScreen #message { display: none; margin-top: 1; }
    ApprovalScreen.typing #message { display: block; }
    ApprovalScreen.typing #buttons { display: none; }
    """

    BINDINGS = [
        Binding("y", "answer('once')", "approve once"),
        Binding("a", "answer('always')", "approve always"),
        Binding("n", "answer('deny')", "deny"),
        Binding("m", "message", "deny with a message"),
        Binding("escape", "escape", "deny", show=False),
    ]

    def __init__(self, request: ApprovalRequest):
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        r = self.request
        what = KIND_TITLE.get(r.kind, r.kind)
        with Vertical(id="dialog"):
            yield Static(f"Approve? The agent wants to {what} ({r.tool})", id="title")
            yield Static(Text(r.command or r.summary), id="summary")
            yield Static(Text(f"a = allow {describe_key(r)} for the rest of this session"), id="always")
            with Horizontal(id="buttons"):
                yield Button("Yes, once (y)", id="once", variant="success")
                yield Button("Always (a)", id="always-btn", variant="primary")
                yield Button("No (n)", id="deny", variant="error")
                yield Button("No, and tell it… (m)", id="tell")
            yield Input(
                placeholder="What should the model do instead? Enter sends, Esc goes back", id="message"
            )

    def on_mount(self) -> None:
        self.query_one("#once", Button).focus()

    def action_answer(self, decision: str) -> None:
        self.dismiss(Answer(decision=decision))  # type: ignore[arg-type]

    def action_message(self) -> None:
        self.add_class("typing")
        self.query_one("#message", Input).focus()

    def action_escape(self) -> None:
        if self.has_class("typing"):
            self.remove_class("typing")
            self.query_one("#once", Button).focus()
        else:
            self.dismiss(Answer(decision="deny"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        match event.button.id:
            case "once":
                self.action_answer("once")
            case "always-btn":
                self.action_answer("always")
            case "deny":
                self.action_answer("deny")
            case "tell":
                self.action_message()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        message = event.value.strip()
        self.dismiss(Answer(decision="deny", message=message or None))
