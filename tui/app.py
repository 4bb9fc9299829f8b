"""The live Textual app: a transcript of the conversation, a side panel (plan, files changed), a
status bar and a multi-line prompt, on top of one `agent.session.Session`.

Events flow one way: the session's subscriber only appends to a buffer; a ~30 fps timer hands
what accumulated to the transcript in one `handle_many` call (which coalesces deltas) and folds
it into the side panel and the status bar. So a model streaming thousands of tokens a second, or
a command printing megabytes, costs one batch per frame and never floods Textual's message queue:
keystrokes stay responsive. The first event after a quiet spell, and the first token of each
model reply, are flushed at once rather than at the next tick, so a reply starts showing without
waiting up to a frame.

Turns run as Textual workers in the app's event loop. While one runs, the prompt stays usable:
Enter queues the message until the turn ends, Esc interrupts it (the next message continues the
same conversation), and approvals the policy leaves open come up as a modal.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import TextArea

from agent import events as ev
from agent.approval import Answer, ApprovalRequest
from agent.config import ConfigError, Settings, state_dir
from tui.widgets import slash
from tui.widgets.approval import ApprovalScreen
from tui.widgets.prompt import HISTORY_FILE, PromptArea, PromptHistory
from tui.widgets.side_panel import SidePanel, changes_from_diff, split_diff
from tui.widgets.slash import SlashMenu
from tui.widgets.status_bar import StatusBar
from tui.widgets.transcript import Transcript

FPS = 30
FILES_THROTTLE = 0.5  # seconds between two reads of the run's diff for the files panel
QUIT_GRACE = 5.0  # seconds to wait for an interrupted turn to wind down on quit
INTERRUPTED_NOTE = "interrupted — type a correction and press Enter"
BUSY_NOTE = "a turn is running: wait for the run to finish or press Esc"


class LubanApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "Luban"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
        Binding("escape", "interrupt", "interrupt", show=False),
        Binding("ctrl+b", "toggle_side_panel", "side panel", show=False),
    ]

    def __init__(
        self,
        settings: Settings,
        repo: Path,
        *,
        task: str | None = None,
        resume: Path | None = None,
        model: Any = None,
        history_path: Path | None = None,
    ):
        super().__init__()
        self.settings = settings
        self.repo = Path(repo).resolve()
        self.initial_task = task
        self.resume_path = Path(resume) if resume else None
        self._model = model  # an injected model (tests); None: the session builds one from settings
        self.session: Any = None  # agent.session.Session, once it could be built
        if history_path is None:
            history_path = state_dir() / HISTORY_FILE
        self.history = PromptHistory(history_path)
        self._buffer: list[ev.Event] = []
        self._queue: list[str] = []
        self._turn_running = False  # a turn (or /compact) is under way
        self._job: Any = None  # its worker
        self._want_interrupt = False
        self._quitting = False
        self._side_hidden = False
        self._files_dirty = False
        self._files_task: asyncio.Task | None = None
        self._files_last = 0.0
        self._last_diff = ""
        self._files_known: str | None = None
        self._display_error = False
        self._loop_thread: int | None = None
        self._ev_loop: asyncio.AbstractEventLoop | None = None
        self._flush_soon = False
        self._last_flush = 0.0
        self._token_step: int | None = None  # the step whose first token was shown
        self.frame_times: deque[float] = deque(maxlen=20_000)  # seconds spent per flush (bench)
        self._exit_code = 0

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        self.transcript = Transcript(id="transcript")
        self.side = SidePanel(id="side")
        self.menu = SlashMenu(id="slash")
        self.prompt = PromptArea(
            self.history,
            id="prompt",
            placeholder="Ask Luban to do something…  (Enter sends · Ctrl+J new line · / commands)",
        )
        self.status = StatusBar(id="status")
        with Horizontal(id="main"):
            yield self.transcript
            yield self.side
        yield self.menu
        yield self.prompt
        yield self.status

    @property
    def busy(self) -> bool:
        return self._turn_running

    async def on_mount(self) -> None:
        self._loop_thread = threading.get_ident()
        self._ev_loop = asyncio.get_running_loop()
        self.prompt.focus()
        self.set_interval(1 / FPS, self._flush_events, name="flush")
        self.run_worker(warm_up, thread=True, group="warm-up", exit_on_error=False)
        self._apply_side_visibility()
        self.session = self._new_session()
        self.status.state.model = self._model_name()
        if self.resume_path is not None:
            self._resume(self.resume_path)
        else:
            self.transcript.add_note(
                f"Luban · {self._model_name() or 'no model'} · {self.repo.name} — type a task and press "
                "Enter. Ctrl+J adds a line, / lists commands, Esc interrupts a run, Ctrl+C quits.",
                "info",
            )
        self.status.refresh_status()
        if self.initial_task and self.initial_task.strip():
            self._submit(self.initial_task.strip())

    def on_resize(self, event: events.Resize) -> None:
        self._apply_side_visibility()

    def _apply_side_visibility(self) -> None:
        self.side.display = not self._side_hidden and self.size.width >= 90

    def action_toggle_side_panel(self) -> None:
        self._side_hidden = not self._side_hidden
        self._apply_side_visibility()

    # ------------------------------------------------------------------ the session

    def _model_name(self) -> str:
        if self.session is not None:
            return getattr(self.session.model, "name", "") or ""
        return self.settings.model or ""

    def _new_session(self, trajectory: Path | None = None) -> Any:
        """A Session on the repo; None (with a note saying why and what to do) when it cannot be
        built, e.g. no model is configured or the key is missing."""
        from agent.session import Session

        try:
            return Session(
                self.settings,
                self.repo,
                "",
                model=self._model,
                subscribers=[self._on_event],
                ask=self._ask,
                trajectory_path=trajectory,
            )
        except ConfigError as exc:
            self.note(f"{exc}\nFix it with /model NAME, or quit (Ctrl+C) and check your settings.", "error")
        except Exception as exc:  # never a traceback in the app
            self.note(f"could not start a session: {type(exc).__name__}: {exc}", "error")
        return None

    def _on_event(self, event: ev.Event) -> None:
        """The session's subscriber: called for every event, so it only buffers. Sessions emit
        on the event loop; a plugin emitting from a worker thread is handed over safely."""
        if self._ev_loop is not None and threading.get_ident() != self._loop_thread:
            self._ev_loop.call_soon_threadsafe(self._on_event, event)
            return
        self._buffer.append(event)
        # Leading edge: the first event after a quiet spell is shown at once (the first token
        # of a reply), the rest of a burst waits for the frame timer.
        if not self._flush_soon and self._ev_loop is not None:
            first_token = False
            if type(event) in (ev.TextDelta, ev.ReasoningDelta) and event.step != self._token_step:
                self._token_step = event.step  # type: ignore[attr-defined]
                first_token = True
            if first_token or time.perf_counter() - self._last_flush >= 1 / FPS:
                self._flush_soon = True
                self._ev_loop.call_soon(self._flush_events)

    def note(self, text: str, style: str = "info") -> None:
        self._flush_events()  # keep the order: what the session said before comes first
        self.transcript.add_note(text, style)

    def _resume(self, path: Path) -> None:
        from agent.trajectory import read_trajectory

        if self.session is None:
            return
        try:
            records = read_trajectory(path)
            if not records or records[0].get("type") != "header":
                raise ValueError("not a Luban trajectory (no header line)")
            self.session.trajectory_path = path
            shown = self.session.resume_from(records)
        except (OSError, ValueError) as exc:
            self.note(f"cannot resume {path}: {exc}", "error")
            return
        self._buffer.extend(shown)
        self._flush_events()
        self.status.state.carry_over()
        self.status.state.step = 0
        self.note(f"resumed {path.name}: type a message to continue the conversation", "info")

    # ------------------------------------------------------------------ rendering

    def _flush_events(self) -> None:
        """Hand the buffered events to the widgets (the ~30 fps timer, and before anything is
        shown out of band)."""
        self._flush_soon = False
        if not self.transcript.is_attached:  # shutting down
            return
        status = self.status
        if self._want_interrupt and self.session is not None and self.session.busy:
            self._want_interrupt = False
            self.session.interrupt()
        if self._buffer:
            events_, self._buffer = self._buffer, []
            t0 = time.perf_counter()
            try:
                self.transcript.handle_many(events_)
                for e in events_:
                    status.state.apply(e)
                    self._side_event(e)
            except Exception as exc:  # a display bug must not take the session (and its run) down
                if not self._display_error:
                    self._display_error = True
                    self.transcript.add_note(f"display error: {type(exc).__name__}: {exc}", "error")
            self._last_flush = time.perf_counter()
            self.frame_times.append(self._last_flush - t0)
        status.state.queued = len(self._queue)
        status.refresh_status()

    def _side_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.ToolCallFinished):
            if e.name == "todo_write" and not e.is_error and isinstance(e.data.get("todos"), list):
                self.side.set_plan(e.data["todos"])
                return
            if isinstance(e.data.get("path"), str) and "diff" in e.data:
                self.side.add_path(e.data["path"])
            if self._mutating(e.name, e.data):
                self._schedule_files_refresh()
        elif isinstance(e, ev.RunFinished):
            self._schedule_files_refresh(e.diff)

    def _mutating(self, name: str, data: dict) -> bool:
        if name == "str_replace_editor":
            return "diff" in data
        tool = self.session.registry.get(name) if self.session is not None else None
        return tool is not None and getattr(tool, "kind", "read") != "read"

    def _schedule_files_refresh(self, diff: str | None = None) -> None:
        """Re-read the run's diff for the files panel: in a thread, at most every FILES_THROTTLE
        seconds, one read at a time (a request during a read triggers one more after it)."""
        self._files_dirty = True
        if diff is not None:
            self._files_known = diff
        if self._files_task is None or self._files_task.done():
            self._files_task = asyncio.get_running_loop().create_task(self._refresh_files())

    async def _refresh_files(self) -> None:
        while self._files_dirty and not self._quitting:
            self._files_dirty = False
            wait = FILES_THROTTLE - (time.monotonic() - self._files_last)
            if wait > 0:
                await asyncio.sleep(wait)
            session = self.session
            known, self._files_known = self._files_known, None
            try:
                if known is not None and not self._files_dirty:
                    diff = known
                elif session is not None:
                    diff = await asyncio.to_thread(session.current_diff)
                else:
                    return
                changes = await asyncio.to_thread(changes_from_diff, diff)
            except Exception:  # the panel is informative; a failed read keeps the last list
                continue
            finally:
                self._files_last = time.monotonic()
            if session is self.session:
                self._last_diff = diff
                self.side.set_files(changes)

    # ------------------------------------------------------------------ prompt

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area is self.prompt:
            self.prompt.menu_open = self.menu.show_for(self.prompt.text)

    def on_prompt_area_menu_key(self, event: PromptArea.MenuKey) -> None:
        menu, prompt = self.menu, self.prompt
        command = menu.current()
        if event.key == "escape" or command is None:
            menu.close()
        elif event.key == "up":
            menu.move(-1)
        elif event.key == "down":
            menu.move(1)
        elif event.key == "tab":
            self._complete(command)
        elif event.key == "enter":
            typed = prompt.text.strip()
            if typed == f"/{command.name}" or not command.args:
                menu.close()
                prompt.load_text(f"/{command.name}")
                prompt.submit()
            else:
                self._complete(command)
        prompt.menu_open = menu.is_open

    def _complete(self, command: slash.Command) -> None:
        prompt = self.prompt
        prompt.load_text(f"/{command.name}" + (" " if command.args else ""))
        prompt.move_cursor(prompt.document.end)
        self.menu.close()

    def on_prompt_area_submitted(self, event: PromptArea.Submitted) -> None:
        self.menu.close()
        self.prompt.menu_open = False
        self._submit(event.text)

    def on_key(self, event: events.Key) -> None:
        """Typing anywhere on the main screen goes to the prompt."""
        if event.is_printable and event.character and self.screen is self.screen_stack[0]:
            prompt = self.prompt
            if not prompt.has_focus:
                prompt.focus()
                prompt.insert(event.character)
                event.stop()

    def _submit(self, text: str) -> None:
        parsed = slash.parse(text)
        if parsed is not None:
            self.run_worker(self._command(*parsed), group="command", exit_on_error=False)
            return
        if self._quitting:
            return
        if self._turn_running:
            self._queue.append(text)
            self.note(f"queued, sent when this turn ends (Esc interrupts it): {slash_preview(text)}", "info")
            return
        self._start_job(lambda: self._turn(text))

    def _start_job(self, make: Callable[[], Awaitable[None]]) -> None:
        self._turn_running = True
        self._want_interrupt = False
        self._token_step = None
        self.status.state.busy_since = time.monotonic()
        self.status.state.note = ""
        self._job = self.run_worker(self._job_wrapper(make), group="turn", exit_on_error=False)

    async def _job_wrapper(self, make: Callable[[], Awaitable[None]]) -> None:
        try:
            await make()
        finally:
            self._turn_running = False
            self._want_interrupt = False
            self.status.state.busy_since = None
            self.status.state.note = ""
            self._flush_events()
        if self._queue and not self._quitting:
            text = self._queue.pop(0)
            self._start_job(lambda: self._turn(text))

    async def _turn(self, text: str) -> None:
        self._flush_events()
        self.transcript.add_user_message(text)
        if self.session is None:
            self.session = self._new_session()
            if self.session is None:
                return
        session = self.session
        try:
            finished = await session.send(text)
        except ConfigError as exc:
            self.note(str(exc), "error")
            self._renew_if_unopened(session)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.note(f"internal error: {type(exc).__name__}: {exc}", "error")
            self._renew_if_unopened(session)
            return
        self._flush_events()
        if finished.reason == "model_error":
            where = self.settings.base_url or self.settings.provider or "the provider"
            self.note(
                f"the model call failed ({where}). Check that the server is up, or switch with "
                "/model NAME; your next message retries.",
                "error",
            )

    def _renew_if_unopened(self, session: Any) -> None:
        """A session whose first turn failed before it opened cannot be reused (its model client
        is closed): start a fresh one for the next message."""
        if session is self.session and getattr(session, "loop", None) is None:
            self.session = self._new_session()

    # ------------------------------------------------------------------ approvals

    async def _ask(self, request: ApprovalRequest) -> Answer:
        """The session's `ask`: a modal; its answer goes back to the session."""
        self._flush_events()
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[Answer] = loop.create_future()

        def done(answer: Answer | None) -> None:
            if not answered.done():
                answered.set_result(answer or Answer(decision="deny"))

        screen = ApprovalScreen(request)
        self.status.state.note = "waiting for your approval"
        self.push_screen(screen, callback=done)
        try:
            return await answered
        except asyncio.CancelledError:
            if screen in self.screen_stack:
                screen.dismiss(Answer(decision="deny"))
            raise
        finally:
            self.status.state.note = ""

    # ------------------------------------------------------------------ actions

    def action_interrupt(self) -> None:
        if not self._turn_running or self.session is None:
            return
        if not self.session.interrupt():
            self._want_interrupt = True  # the turn is between model calls: stop it when it can be
        self.status.state.note = "interrupting"
        self.note(INTERRUPTED_NOTE, "warning")

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        self._queue.clear()
        self.status.state.note = "quitting"
        job = self._job
        if self._turn_running and self.session is not None:
            if not self.session.interrupt():
                self._want_interrupt = True
            if job is not None:
                try:
                    await asyncio.wait_for(job.wait(), QUIT_GRACE)
                except Exception:
                    job.cancel()
        await self._close_session()
        self.exit(self._exit_code)

    async def on_unmount(self) -> None:
        """However the app ends (quit, an exception, a test leaving run_test), the session is
        closed, so the trajectory gets its result line and the model client is released."""
        self._quitting = True
        await self._close_session()

    async def _close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                await session.close()
            except Exception:
                pass

    # ------------------------------------------------------------------ slash commands

    async def _command(self, name: str, args: str) -> None:
        command = slash.BY_NAME.get(name)
        if command is None:
            names = ", ".join(f"/{c.name}" for c in slash.COMMANDS)
            self.note(f"unknown command /{name}. Commands: {names} (/help explains them).", "warning")
            return
        if command.needs_idle and self._turn_running:
            self.note(f"/{name}: {BUSY_NOTE}", "warning")
            return
        handler = getattr(self, f"_cmd_{name}")
        try:
            await handler(args)
        except Exception as exc:
            self.note(f"/{name} failed: {type(exc).__name__}: {exc}", "error")

    async def _cmd_help(self, args: str) -> None:
        self.note(slash.help_text(), "info")

    async def _cmd_quit(self, args: str) -> None:
        await self.action_quit()

    async def _cmd_diff(self, args: str) -> None:
        if self.session is None:
            self.note("no changes: no session", "info")
            return
        diff = await asyncio.to_thread(self.session.current_diff)
        if diff.strip():
            self.transcript.add_diff(diff, title="changes since the conversation started")
        else:
            self.note("no changes since the conversation started", "info")

    async def _cmd_undo(self, args: str) -> None:
        if self.session is None:
            self.note("nothing to undo", "info")
            return
        report = await asyncio.to_thread(self.session.undo_last)
        if report is None:
            self.note("nothing to undo", "info")
            return
        cp = report.checkpoint
        where = "the start of the run" if cp.n == 0 else f"before '{cp.label}'"
        lines = [f"undone: back to {where} (checkpoint {cp.n})"]
        if report.written:
            lines.append("  restored: " + ", ".join(report.written))
        if report.deleted:
            lines.append("  deleted: " + ", ".join(report.deleted))
        if report.failed:
            lines.append("  failed: " + ", ".join(report.failed))
        lines.extend(f"  {n}" for n in report.notes)
        lines.append("  the model is told at your next message; /undo again goes further back")
        self.note("\n".join(lines), "warning" if report.failed else "info")
        self._schedule_files_refresh()

    async def _cmd_model(self, args: str) -> None:
        name = args.strip()
        if not name:
            where = self.settings.base_url or self.settings.provider or "(default provider)"
            self.note(f"model: {self._model_name() or 'none'} · {where}. /model NAME switches.", "info")
            return
        if len(name.split()) > 1:
            self.note(f"/model takes one model id, e.g. /model qwen3-coder-plus (got {name!r})", "warning")
            return
        if self.session is None:
            settings = self.settings.model_copy(update={"model": name})
            old, self.settings, self._model = self.settings, settings, None
            self.session = self._new_session()
            if self.session is None:
                self.settings = old
                return
        else:
            try:
                self.session.set_model(name)
            except ConfigError as exc:
                self.note(f"cannot switch to {name}: {exc}", "error")
                return
            self.settings, self._model = self.session.settings, None
        self.status.state.model = self._model_name()
        self.note(f"model: {self._model_name()} from the next call on", "info")

    async def _cmd_compact(self, args: str) -> None:
        session = self.session
        if session is None or session.loop is None:
            self.note("nothing to compact yet", "info")
            return

        async def compact() -> None:
            try:
                await session.compact()
            except Exception as exc:
                self.note(f"/compact failed: {type(exc).__name__}: {exc}", "error")

        self._start_job(compact)

    async def _cmd_clear(self, args: str) -> None:
        await self._close_session()
        self._buffer.clear()
        self._queue.clear()
        self.transcript.clear_transcript()
        self.side.reset()
        self._last_diff = ""
        model = self.status.state.model
        self.status.state = type(self.status.state)(model=model)
        self.session = self._new_session()
        self.status.state.model = self._model_name() or model
        self.note("new conversation", "info")

    # ------------------------------------------------------------------ side panel

    async def on_side_panel_file_selected(self, event: SidePanel.FileSelected) -> None:
        diff = self._last_diff
        if event.path not in split_diff(diff) and self.session is not None:
            diff = await asyncio.to_thread(self.session.current_diff)
        part = split_diff(diff).get(event.path)
        if part:
            self.transcript.add_diff(part, title=event.path)
        else:
            self.note(f"{event.path}: no changes now", "info")
        self.prompt.focus()


def warm_up() -> None:
    """Import in a thread, while the user types, what the first turn would otherwise import
    (LangGraph alone takes ~0.4 s)."""
    import gc

    import langgraph.graph  # noqa: F401

    import agent.graph  # noqa: F401

    # The imported heap (Textual, LangGraph, openai, pydantic models) lives as long as the app:
    # moved out of the collector's reach, full collections scan only what the run creates, which
    # in one bench/tui.py run took the worst flush from 367 ms to 76 ms while streaming.
    gc.freeze()


def slash_preview(text: str, width: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def run_tui(settings: Settings, repo: Path, *, task: str | None = None, resume: Path | None = None) -> int:
    """`luban` with no subcommand: the terminal UI on `repo`. Returns the exit code."""
    app = LubanApp(settings, repo, task=task, resume=resume)
    code = app.run()
    return int(code or 0)
