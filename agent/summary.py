"""A markdown summary of a run, suitable for a pull-request body or a CI job summary.

Subscribe a :class:`RunSummary` to a Session (it is a callable taking each event), then call
:meth:`RunSummary.markdown`. It is built from the events alone, so it works the same for a live
run and for a replayed trajectory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import events as ev

GITHUB_BODY_LIMIT = 65_536
DEFAULT_MAX_CHARS = 60_000
MAX_MESSAGE_CHARS = 6_000
MAX_FILE_ROWS = 200
MAX_TEST_ROWS = 30
MAX_NOTES = 20
CELL_CHARS = 120

REASONS = {
    "finished": ("✅", "Finished"),
    "answered": ("✅", "Finished with a reply (no `finish` call)"),
    "max_steps": ("⚠️", "Stopped: the step limit was reached"),
    "max_cost": ("⚠️", "Stopped: the cost limit was reached"),
    "time_limit": ("⚠️", "Stopped: the time limit was reached"),
    "interrupted": ("⚠️", "Interrupted"),
    "model_error": ("❌", "Failed: the model or provider returned an error"),
    "context_overflow": ("⚠️", "Stopped: the conversation no longer fits the model's context window"),
    "stuck": ("⚠️", "Stopped: the agent was repeating itself"),
    "error": ("❌", "Failed: internal error"),
}


# --------------------------------------------------------------------------- diff parsing


@dataclass
class FileChange:
    path: str
    old_path: str | None = None  # set for renames and copies
    added: int = 0
    removed: int = 0
    new: bool = False
    deleted: bool = False
    renamed: bool = False
    copied: bool = False
    binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None

    def describe(self) -> str:
        parts = []
        if self.new:
            parts.append("new")
        if self.deleted:
            parts.append("deleted")
        if self.renamed:
            parts.append(f"renamed from {code(self.old_path or '?')}")
        if self.copied:
            parts.append(f"copied from {code(self.old_path or '?')}")
        if self.binary:
            parts.append("binary")
        if self.old_mode and self.new_mode and self.old_mode != self.new_mode:
            parts.append(f"mode {self.old_mode} → {self.new_mode}")
        return ", ".join(parts) or "modified"


def unquote_path(text: str) -> str:
    """Git's C-style quoted path (`"t\\303\\251st.py"`) to text; unquoted paths as they are."""
    text = text.strip()
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    body, out, i = text[1:-1], bytearray(), 0
    escapes = {"n": 10, "t": 9, '"': 34, "\\": 92, "a": 7, "b": 8, "f": 12, "r": 13, "v": 11}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in "01234567":
                m = re.match(r"[0-7]{1,3}", body[i + 1 :])
                assert m is not None
                out.append(int(m.group(), 8) & 0xFF)
                i += 1 + len(m.group())
                continue
            out.append(escapes.get(nxt, ord(nxt) if ord(nxt) < 128 else 63))
            i += 2
            continue
        out.extend(c.encode("utf-8"))
        i += 1
    return out.decode("utf-8", errors="replace")


def _strip_prefix(path: str) -> str:
    path = unquote_path(path)
    for prefix in ("a/", "b/", "c/", "i/", "w/", "o/"):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _header_path(rest: str) -> tuple[str, str]:
    """(old, new) paths of a `diff --git a/X b/Y` line's remainder."""
    rest = rest.strip()
    if rest.startswith('"'):
        m = re.match(r'("(?:[^"\\]|\\.)*")\s+(.*)$', rest)
        if m:
            return _strip_prefix(m.group(1)), _strip_prefix(m.group(2))
    if rest.startswith("a/") and len(rest) % 2 == 1:  # "a/P b/P": same path twice
        half = (len(rest) - 1) // 2
        if rest[half] == " " and rest[:half][2:] == rest[half + 1 :][2:]:
            return rest[2:half], rest[half + 3 :]
    idx = rest.rfind(" b/")
    if idx > 0:
        return _strip_prefix(rest[:idx]), _strip_prefix(rest[idx + 1 :])
    return _strip_prefix(rest), _strip_prefix(rest)


_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def parse_diff(diff: str) -> list[FileChange]:
    """The files of a git unified diff with their added/removed line counts. Hunk bodies are
    consumed by their header's line counts, so content lines that look like headers (`+++ x`,
    `diff --git` inside a file) are counted, not parsed."""
    files: list[FileChange] = []
    current: FileChange | None = None
    old_left = new_left = 0
    for line in diff.splitlines():
        if current is not None and (old_left > 0 or new_left > 0):
            tag = line[:1]
            if tag == "\\":
                continue  # "\ No newline at end of file"
            if tag == "+":
                current.added += 1
                new_left -= 1
            elif tag == "-":
                current.removed += 1
                old_left -= 1
            else:  # context (a blank line is context whose space was stripped)
                old_left -= 1
                new_left -= 1
            continue
        if line.startswith("diff --git "):
            old, new = _header_path(line[len("diff --git ") :])
            current = FileChange(path=new, old_path=old if old != new else None)
            files.append(current)
            continue
        if current is None:
            if line.startswith("--- ") or line.startswith("+++ "):  # a plain (non-git) diff
                current = FileChange(path="")
                files.append(current)
            else:
                continue
        m = _HUNK.match(line)
        if m:
            old_left = int(m.group(1)) if m.group(1) is not None else 1
            new_left = int(m.group(2)) if m.group(2) is not None else 1
            continue
        if line.startswith("new file mode "):
            current.new = True
            current.new_mode = line.split()[-1]
        elif line.startswith("deleted file mode "):
            current.deleted = True
        elif line.startswith("old mode "):
            current.old_mode = line.split()[-1]
        elif line.startswith("new mode "):
            current.new_mode = line.split()[-1]
        elif line.startswith("rename from "):
            current.renamed = True
            current.old_path = unquote_path(line[len("rename from ") :])
        elif line.startswith("rename to "):
            current.path = unquote_path(line[len("rename to ") :])
        elif line.startswith("copy from "):
            current.copied = True
            current.old_path = unquote_path(line[len("copy from ") :])
        elif line.startswith("copy to "):
            current.path = unquote_path(line[len("copy to ") :])
        elif line.startswith("Binary files ") or line.startswith("GIT binary patch"):
            current.binary = True
        elif line.startswith("--- "):
            target = line[4:].split("\t")[0]
            if target != "/dev/null" and not current.path:
                current.path = _strip_prefix(target)
        elif line.startswith("+++ "):
            target = line[4:].split("\t")[0]
            if target != "/dev/null":
                current.path = _strip_prefix(target)
    for f in files:
        if f.new and f.new_mode and not f.old_mode:
            f.new_mode = None  # a new file's mode is not a mode change
        if f.old_path == f.path and not (f.renamed or f.copied):
            f.old_path = None
    return files


# --------------------------------------------------------------------------- test commands

TEST_PREFIXES: tuple[tuple[str, ...], ...] = (
    ("pytest",),
    ("py.test",),
    ("python", "-m", "pytest"),
    ("python", "-m", "unittest"),
    ("python", "-m", "tox"),
    ("python", "-m", "nox"),
    ("tox",),
    ("nox",),
    ("npm", "test"),
    ("npm", "t"),
    ("npm", "run", "test"),
    ("yarn", "test"),
    ("yarn", "run", "test"),
    ("pnpm", "test"),
    ("pnpm", "run", "test"),
    ("bun", "test"),
    ("go", "test"),
    ("cargo", "test"),
    ("cargo", "nextest"),
    ("jest",),
    ("vitest",),
    ("mocha",),
    ("make", "test"),
    ("make", "check"),
)


def is_test_command(command: str) -> bool:
    """Whether a shell command line runs a test runner (pytest, npm test, go test, ...)."""
    from agent.approval import canonical, command_views, split_commands

    for simple in split_commands(command):
        if simple.opaque or not simple.words:
            continue
        for view in command_views(canonical(simple.words), for_deny=False):
            if any(view[: len(p)] == p for p in TEST_PREFIXES):
                return True
    return False


def _pipes_output(command: str) -> bool:
    """Whether a test command's exit code may be hidden by a pipe (`pytest | tail`)."""
    if "pipefail" in command:
        return False
    return bool(re.search(r"(?<![|])\|(?![|&])", command))


@dataclass
class TestRun:
    __test__ = False  # not a pytest test class

    step: int
    tool: str
    command: str
    result: str
    ok: bool | None  # None: unknown


# --------------------------------------------------------------------------- markdown helpers


def code(text: str, limit: int = CELL_CHARS, *, table: bool = True) -> str:
    """An inline code span: one line, enough backticks, and (in a table cell) pipes escaped."""
    text = re.sub(r"\s*\n\s*", " ↵ ", str(text).strip())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if table:
        text = text.replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def cell(text: str, limit: int = CELL_CHARS) -> str:
    text = re.sub(r"\s*\n\s*", " ", str(text).strip())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def fence_for(text: str) -> str:
    """A backtick fence longer than any backtick run in `text` (so nothing inside can close it)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def one_line(text: str, limit: int = CELL_CHARS) -> str:
    return _truncate(re.sub(r"\s+", " ", str(text)).strip(), limit)


def quote(text: str) -> str:
    return "\n".join("> " + line if line.strip() else ">" for line in text.strip().splitlines())


def format_duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --------------------------------------------------------------------------- the summary


@dataclass
class RunSummary:
    """Subscribe it to a Session (it is a callable taking each event); then call markdown().

    `patch_path`: where the full patch is written (e.g. `--output-patch`), named when the diff
    has to be truncated."""

    patch_path: str | Path | None = None
    started: ev.RunStarted | None = None
    finished: ev.RunFinished | None = None
    steps_seen: int = 0
    finish_message: str = ""
    tests: list[TestRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoints: int = 0
    usage: ev.UsageUpdate | None = None
    _calls: dict[str, tuple[str, str]] = field(default_factory=dict)  # call_id -> (name, arguments)
    _asked: dict[str, str] = field(default_factory=dict)  # call_id -> summary
    _denied: set[str] = field(default_factory=set)

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, "_on_" + str(getattr(event, "type", "")), None)
        if handler is not None:
            try:
                handler(event)
            except Exception as exc:  # a report must never break the run
                self.notes.append(f"The summary could not record a `{event.type}` event ({exc}).")

    # -- event handlers
    def _on_run_started(self, e: ev.RunStarted) -> None:
        self.started = e

    def _on_step_started(self, e: ev.StepStarted) -> None:
        self.steps_seen = max(self.steps_seen, e.step)

    def _on_tool_call_started(self, e: ev.ToolCallStarted) -> None:
        self._calls[e.call_id] = (e.name, e.arguments)

    def _on_approval_requested(self, e: ev.ApprovalRequested) -> None:
        self._asked[e.call_id] = e.summary

    def _on_approval_answered(self, e: ev.ApprovalAnswered) -> None:
        if e.decision != "deny":
            return
        what = self._asked.get(e.call_id) or self._call_summary(e.call_id) or e.tool
        by = "the approval policy" if e.by == "policy" else "the user"
        line = f"Refused by {by}: {code(what, 160, table=False)}"
        if e.message:
            line += f" — {one_line(e.message, 300)}"
        self.notes.append(line)
        if e.call_id:
            self._denied.add(e.call_id)

    def _on_error(self, e: ev.ErrorEvent) -> None:
        self.notes.append(f"Error ({one_line(e.kind, 60)}): {one_line(e.message, 500)}")

    def _on_checkpoint(self, e: ev.CheckpointCreated) -> None:
        self.checkpoints += 1

    def _on_usage(self, e: ev.UsageUpdate) -> None:
        self.usage = e

    def _on_run_finished(self, e: ev.RunFinished) -> None:
        self.finished = e

    def _on_tool_call_finished(self, e: ev.ToolCallFinished) -> None:
        data = e.data or {}
        if data.get("refused"):
            if e.call_id not in self._denied:
                what = self._call_summary(e.call_id) or e.name
                self.notes.append(f"Refused: {code(what, 160, table=False)} — {one_line(e.output, 300)}")
            return
        if e.name == "finish":
            self.finish_message = str(data.get("message") or e.output or "")
        elif e.name == "run_tests":
            self.tests.append(self._run_tests_result(e, data))
        elif e.name == "execute_bash":
            command = self._command_of(e.call_id)
            if command and is_test_command(command):
                self.tests.append(self._bash_test_result(e, data, command))

    # -- helpers
    def _command_of(self, call_id: str) -> str:
        _, arguments = self._calls.get(call_id, ("", ""))
        try:
            args = json.loads(arguments) if arguments else {}
        except (json.JSONDecodeError, TypeError):
            return ""
        command = args.get("command") if isinstance(args, dict) else None
        return command if isinstance(command, str) else ""

    def _call_summary(self, call_id: str) -> str:
        if call_id not in self._calls:
            return ""
        name, arguments = self._calls[call_id]
        command = self._command_of(call_id)
        if command:
            return f"{name}: {command}"
        return f"{name} {arguments}" if arguments else name

    @staticmethod
    def _run_tests_result(e: ev.ToolCallFinished, data: dict[str, Any]) -> TestRun:
        status = str(data.get("status") or ("TIMEOUT" if data.get("timed_out") else "ERROR"))
        counts = []
        for key, label in (("failed", "failed"), ("passed", "passed"), ("skipped", "skipped")):
            if data.get(key):
                counts.append(f"{data[key]} {label}")
        if data.get("errors"):
            counts.append(f"{data['errors']} error{'s' if data['errors'] != 1 else ''}")
        if not data:  # the call failed before running (no framework, bad target)
            first = e.output.strip().splitlines()[0] if e.output.strip() else "error"
            return TestRun(e.step, "run_tests", "run_tests", f"⚠️ {cell(first, 100)}", None)
        icon = {"PASSED": "✅", "FAILED": "❌", "TIMEOUT": "⏱️", "NO TESTS": "⚠️"}.get(status, "⚠️")
        result = f"{icon} {status}"
        if counts:
            result += f": {', '.join(counts)}"
        if data.get("exit_code") is not None and status not in ("PASSED",):
            result += f" (exit {data['exit_code']})"
        ok = True if status == "PASSED" else False if status in ("FAILED", "TIMEOUT", "ERROR") else None
        command = str(data.get("command") or "run_tests")
        return TestRun(e.step, "run_tests", command, result, ok)

    @staticmethod
    def _bash_test_result(e: ev.ToolCallFinished, data: dict[str, Any], command: str) -> TestRun:
        code_ = data.get("exit_code")
        if data.get("timed_out"):
            return TestRun(e.step, "execute_bash", command, "⏱️ TIMEOUT", False)
        if code_ is None:
            return TestRun(e.step, "execute_bash", command, "⚠️ interrupted", None)
        if code_ == 0 and _pipes_output(command):
            return TestRun(
                e.step,
                "execute_bash",
                command,
                "❔ exit 0 (output piped: the runner's status is hidden)",
                None,
            )
        if code_ == 0:
            return TestRun(e.step, "execute_bash", command, "✅ passed (exit 0)", True)
        return TestRun(e.step, "execute_bash", command, f"❌ failed (exit {code_})", False)

    # -- rendering
    def title(self) -> str:
        task = self.started.task if self.started else ""
        first = next((line.strip() for line in task.splitlines() if line.strip()), "")
        first = re.sub(r"^#+\s*", "", first)
        return _truncate(first, 120) or "Luban run"

    def _outcome(self) -> list[str]:
        f = self.finished
        if f is None:
            return ["### Outcome", "", "⏳ The run has not finished."]
        icon, words = REASONS.get(f.reason, ("⚠️", f.reason))
        lines = ["### Outcome", "", f"{icon} **{words}** · exit code `{f.exit_code}` · {f.steps} steps"]
        branch, commit = getattr(f, "branch", None), getattr(f, "commit", None)
        if branch:
            lines += ["", f"Branch {code(branch, 100, table=False)}"]
            if commit:
                lines[-1] += f" · commit {code(commit[:12], table=False)}"
        message = (f.message or "").strip() or self.finish_message.strip()
        if message:
            lines += ["", quote(_truncate(message, MAX_MESSAGE_CHARS))]
        return lines

    def _changes(self) -> list[str]:
        lines = ["### Changes", ""]
        diff = self.finished.diff if self.finished else ""
        if not diff.strip():
            lines.append("No changes." if self.finished else "No changes recorded yet.")
            return lines
        files = parse_diff(diff)
        if not files:
            lines.append("The diff could not be summarised; see below.")
            return lines
        lines += ["| File | + | − | Change |", "| --- | ---: | ---: | --- |"]
        for f in files[:MAX_FILE_ROWS]:
            plus = "—" if f.binary and not f.added else str(f.added)
            minus = "—" if f.binary and not f.removed else str(f.removed)
            lines.append(f"| {code(f.path or '?')} | {plus} | {minus} | {f.describe()} |")
        if len(files) > MAX_FILE_ROWS:
            lines.append(f"| … {len(files) - MAX_FILE_ROWS} more files |  |  |  |")
        added, removed = sum(f.added for f in files), sum(f.removed for f in files)
        noun = "file" if len(files) == 1 else "files"
        lines += ["", f"{len(files)} {noun} changed, +{added} −{removed}."]
        return lines

    def _tests(self) -> list[str]:
        lines = ["### Tests", ""]
        if not self.tests:
            lines.append("No tests were run.")
            return lines
        shown = self.tests[-MAX_TEST_ROWS:]
        lines += ["| Step | Command | Result |", "| ---: | --- | --- |"]
        if len(self.tests) > len(shown):
            lines.append(f"| … | {len(self.tests) - len(shown)} earlier runs not shown |  |")
        for i, t in enumerate(shown):
            final = " **(final)**" if i == len(shown) - 1 else ""
            lines.append(f"| {t.step} | {code(t.command, 100)} | {cell(t.result)}{final} |")
        last = self.tests[-1]
        lines += ["", f"Final test state: {one_line(last.result)} ({code(last.command, 80, table=False)})."]
        return lines

    def _usage(self) -> list[str]:
        f, u = self.finished, self.usage
        model = self.started.model if self.started else "unknown"
        if f is not None:
            steps, pin, pout, cached, cost = (
                f.steps,
                f.prompt_tokens,
                f.completion_tokens,
                f.cached_tokens,
                f.cost,
            )
            duration = format_duration(f.duration)
        else:
            steps = self.steps_seen
            pin = u.total_prompt_tokens if u else 0
            pout = u.total_completion_tokens if u else 0
            cached = u.total_cached_tokens if u else 0
            cost = u.total_cost if u else 0.0
            duration = "—"
        if cost > 0:
            cost_text = f"${cost:.4f}"
        elif pin or pout:
            cost_text = "unknown prices"
        else:
            cost_text = "$0.0000"
        return [
            "### Usage",
            "",
            "| Model | Steps | Tokens in | Tokens out | Cached | Cost | Duration |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {code(model, 60)} | {steps} | {pin:,} | {pout:,} | {cached:,} | {cost_text} | {duration} |",
        ]

    def _notes(self) -> list[str]:
        lines: list[str] = []
        notes = self.notes[:MAX_NOTES]
        count = max(self.checkpoints, getattr(self.finished, "checkpoints", 0) or 0)
        if count:
            run_id = (self.started.run_id if self.started else "") or getattr(self.finished, "run_id", "")
            noun = "checkpoint" if count == 1 else "checkpoints"
            notes = [f"{count} {noun}; undo with `luban undo --run {run_id or 'RUN_ID'}`", *notes]
        if not notes:
            return lines
        lines += ["### Notes", ""]
        lines += [f"- {n}" for n in notes]
        if len(self.notes) > MAX_NOTES:
            lines.append(f"- … and {len(self.notes) - MAX_NOTES} more")
        return lines

    def _where_is_the_patch(self) -> str:
        if self.patch_path:
            return f"the full patch is in {code(str(self.patch_path), 200, table=False)}"
        if self.started and self.started.trajectory:
            return f"the full diff is in the trajectory {code(self.started.trajectory, 200, table=False)}"
        return "run `git diff` in the workspace for the full diff"

    def _diff_block(self, budget: int) -> list[str]:
        diff = self.finished.diff if self.finished else ""
        if not diff.strip():
            return []
        diff = diff.rstrip("\n")
        fence = fence_for(diff)
        head = ["<details><summary>Diff</summary>", "", f"{fence}diff"]
        tail = [fence, "", "</details>"]
        overhead = sum(len(x) + 1 for x in head + tail) + 2
        if len(diff) + overhead <= budget:
            return [*head, diff, *tail]
        note = f"_The diff is too long to show here; {self._where_is_the_patch()}._"
        room = budget - overhead - len(note) - 200
        all_lines = diff.splitlines()
        if room < 200:
            return [f"_The diff is too long to include; {self._where_is_the_patch()}._"]
        kept, size = [], 0
        for line in all_lines:
            if size + len(line) + 1 > room:
                break
            kept.append(line)
            size += len(line) + 1
        shown = f"_The diff is truncated (showing {len(kept)} of {len(all_lines)} lines); {self._where_is_the_patch()}._"
        return [*head, "\n".join(kept), *tail, "", shown]

    def markdown(self, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
        """The summary; the whole document stays under `max_chars` (GitHub's PR body limit is
        65,536), the diff being cut first."""
        sections = [
            [f"## {self.title()}"],
            self._outcome(),
            self._changes(),
            self._tests(),
            self._usage(),
            self._notes(),
        ]
        text = "\n\n".join("\n".join(s) for s in sections if s)
        diff = self._diff_block(max_chars - len(text) - 4)
        if diff:
            text += "\n\n" + "\n".join(diff)
        text += "\n"
        if len(text) > max_chars:  # only with a tiny max_chars: keep the top, never a broken block
            text = self._squeezed(max_chars)
        return text

    def _squeezed(self, max_chars: int) -> str:
        """Title and outcome line only, cut to `max_chars` (no tables or fences to break)."""
        f = self.finished
        line = f"## {self.title()}\n\n"
        if f is not None:
            icon, words = REASONS.get(f.reason, ("⚠️", f.reason))
            line += f"{icon} {words} · exit code {f.exit_code} · {f.steps} steps\n"
        return line if len(line) <= max_chars else line[: max(0, max_chars - 1)] + "\n"
