"""The file editor: view, create, str_replace, insert and undo_edit, following the
OpenHands/Anthropic ``str_replace_editor`` contract that open-weight coding models are trained on.

Files are never corrupted: line endings (LF or CRLF), the presence or absence of a final newline
and the permission bits are preserved, and every write goes to a temporary file in the same
directory that then replaces the original (``os.replace``).

Hooks for later features (an edit guard, checkpoints), looked up in ``ctx.state`` on every write.
Either may be a plain function or a coroutine function:

``ctx.state["before_write"](path)``
    Called with the absolute :class:`~pathlib.Path` before the editor writes or deletes a file
    (create, str_replace, insert and undo_edit). Raise :class:`ToolError`, or return a non-empty
    string, to refuse the write: the message becomes the error result and nothing is written.
``ctx.state["after_write"](path, old_text, new_text)``
    Called after create, str_replace and insert have written the file (``old_text`` is None for a
    file that did not exist). If it returns a non-empty string, the file is rolled back to
    ``old_text`` (deleted if it did not exist) and that string is returned as the error result.
    undo_edit does not call it: an undo only restores content the editor wrote before.

Edit history lives in ``ctx.state["edit_history"]``: a dict mapping the absolute path (``str``)
to a stack of previous contents, ``None`` meaning the file did not exist before the edit.
"""

from __future__ import annotations

import bisect
import contextlib
import difflib
import functools
import inspect
import os
import re
import shlex
import stat
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.text import LineRange, looks_binary
from tools.workspace import display, resolve_in_workspace

MAX_EDIT_BYTES = 5 * 1024 * 1024  # larger files are not edited, nor viewed whole
MAX_RANGE_VIEW_BYTES = 50 * 1024 * 1024  # a view_range streams lines up to this size
VIEW_MAX_LINES = 2000
VIEW_MAX_CHARS = 100_000
MAX_LINE_CHARS = 2000
DIR_MAX_ENTRIES = 400
SNIPPET_CONTEXT = 4
SNIPPET_MAX_LINES = 120
HISTORY_DEPTH = 50
JUNK_DIRS = frozenset(
    {
        ".git",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        "dist",
        "build",
        ".mypy_cache",
        ".pytest_cache",
    }
)

Command = Literal["view", "create", "str_replace", "insert", "undo_edit"]


class StrReplaceEditorParams(BaseModel):
    command: Command = Field(
        description="The operation to run: `view`, `create`, `str_replace`, `insert` or `undo_edit`."
    )
    path: str = Field(
        description="File or directory, relative to the repository root (e.g. `src/app/main.py`); "
        "an absolute path inside the repository also works."
    )
    file_text: str | None = Field(
        default=None, description="Required for `create`: the full content of the new file."
    )
    old_str: str | None = Field(
        default=None,
        description="Required for `str_replace`: the exact text to replace, which must occur exactly once in "
        "the file (indentation and blank lines included; no line numbers).",
    )
    new_str: str | None = Field(
        default=None,
        description="For `str_replace`: the replacement text (empty or omitted deletes `old_str`). "
        "Required for `insert`: the text to insert.",
    )
    insert_line: int | None = Field(
        default=None,
        description="Required for `insert`: `new_str` is inserted AFTER this line number (0 = at the top of "
        "the file).",
    )
    view_range: LineRange = Field(
        default=None,
        description="Optional for `view` of a file: [start, end] line numbers, 1-based and inclusive; "
        "end -1 means to the end of the file. E.g. [100, 160].",
    )


class StrReplaceEditor(Tool):
    name = "str_replace_editor"
    Params = StrReplaceEditorParams
    kind = "edit"

    def mutates(self, params: StrReplaceEditorParams) -> bool:
        return params.command != "view"

    def describe_call(self, params: StrReplaceEditorParams) -> str:
        return f"{params.command} {params.path}"

    async def run(self, params: StrReplaceEditorParams, ctx: ToolContext) -> ToolResult:
        path = resolve_in_workspace(ctx.root, params.path)
        rel = display(ctx.root, path)
        if params.command == "view":
            return view(path, rel, params.view_range)
        if params.command == "create":
            return await create(ctx, path, rel, params)
        if params.command == "str_replace":
            return await str_replace(ctx, path, rel, params)
        if params.command == "insert":
            return await insert(ctx, path, rel, params)
        return await undo_edit(ctx, path, rel)


# --------------------------------------------------------------------------- commands


def view(path: Path, rel: str, view_range: list[int] | None) -> ToolResult:
    if not path.exists():
        raise ToolError(
            f"The path {rel} does not exist. View a directory (e.g. `.`) to see which files exist, "
            "or use create to make a new file."
        )
    if path.is_dir():
        if view_range is not None:
            raise ToolError(f"{rel} is a directory; view_range only applies to files. Omit view_range.")
        return ToolResult(view_directory(path, rel), data={"path": rel})
    check_regular_file(path, rel)
    size = path.stat().st_size
    if view_range is None:
        if size > MAX_EDIT_BYTES:
            raise ToolError(
                f"{rel} is too large to view whole ({human_size(size)}). Use view_range to view part of it "
                "(e.g. [1, 200]), or search for what you need."
            )
        lines = split_lines(read_text(path, rel))
        if not lines:
            return ToolResult(f"The file {rel} is empty.", data={"path": rel})
        body, shown = render(lines, 1)
        out = f"Here's the result of running `cat -n` on {rel}:\n{body}"
        if shown < len(lines):
            out += (
                f"\n[Showing lines 1-{shown} of {len(lines)} ({human_size(size)}). The file is too long to "
                f"show at once: use view_range to see other parts, e.g. [{shown + 1}, "
                f"{min(shown + 500, len(lines))}], or search for what you need.]"
            )
        return ToolResult(out, data={"path": rel})

    if len(view_range) != 2:
        raise ToolError(f"view_range must be two integers [start, end], e.g. [1, 50]; got {view_range}.")
    start, end = view_range
    if start < 1:
        raise ToolError(f"view_range start must be 1 or more (lines are numbered from 1); got {start}.")
    if end != -1 and end < start:
        raise ToolError(
            f"view_range end {end} is before its start {start}. Use an end >= start, or -1 for the end of the file."
        )
    if size <= MAX_EDIT_BYTES:
        all_lines = split_lines(read_text(path, rel))
        total = len(all_lines)
        stop = total if end == -1 else min(end, total)
        wanted = all_lines[start - 1 : stop]
    elif size <= MAX_RANGE_VIEW_BYTES:
        wanted, total = stream_lines(path, rel, start, end)
    else:
        raise ToolError(
            f"{rel} is too large for this editor ({human_size(size)}). Inspect it with execute_bash, e.g. "
            f"`sed -n '{start},{end if end != -1 else '$'}p' {shlex.quote(rel)}`."
        )
    if total == 0:
        raise ToolError(f"The file {rel} is empty; there are no lines to view.")
    if start > total:
        raise ToolError(f"view_range start {start} is beyond the end of {rel}, which has {total} lines.")
    stop = total if end == -1 else min(end, total)
    body, shown = render(wanted, start)
    last = start + shown - 1
    out = f"Here's the result of running `cat -n` on {rel} (lines {start}-{last} of {total}):\n{body}"
    if shown < len(wanted):
        out += (
            f"\n[Showing lines {start}-{last}: the requested range is too long to show at once. "
            f"Continue with view_range [{last + 1}, {stop}].]"
        )
    elif end != -1 and end > total:
        out += f"\n[The file has only {total} lines.]"
    return ToolResult(out, data={"path": rel})


async def create(ctx: ToolContext, path: Path, rel: str, params: StrReplaceEditorParams) -> ToolResult:
    if params.file_text is None:
        raise ToolError(
            "Parameter `file_text` is required for command create: give the full content of the new file."
        )
    if params.path.rstrip().endswith(("/", os.sep)):
        raise ToolError(f"The path {params.path!r} ends with '/'; create makes files. Give a file path.")
    if path.is_dir():
        raise ToolError(f"{rel} is a directory; create makes files. Give the path of the new file.")
    if path.exists() or path.is_symlink():
        raise ToolError(
            f"{rel} already exists; create only makes new files and will not overwrite it. View it first, "
            "then change it with str_replace or insert."
        )
    text = params.file_text
    failure = await commit(ctx, path, rel, None, text)
    if failure is not None:
        return failure
    n = count_lines(text)
    return ToolResult(
        f"File created successfully at {rel} ({n} line{'s' if n != 1 else ''}).",
        data={"path": rel, "diff": unified_diff(rel, None, text)},
    )


async def str_replace(ctx: ToolContext, path: Path, rel: str, params: StrReplaceEditorParams) -> ToolResult:
    if params.old_str is None:
        raise ToolError(
            "Parameter `old_str` is required for command str_replace: give the exact text to replace."
        )
    text = read_for_edit(path, rel, "str_replace")
    old_arg = params.old_str
    new_arg = params.new_str or ""
    if old_arg == "":
        raise ToolError(
            "old_str is empty. Give the exact text to replace (with a few lines of context); "
            "to add text without replacing anything, use insert."
        )
    if old_arg == new_arg:
        raise ToolError(
            "old_str and new_str are identical, so nothing would change. Give the new text in new_str."
        )
    nl = detect_newline(text)
    candidates = [(to_newline(old_arg, nl), to_newline(new_arg, nl))]
    if candidates[0][0] != old_arg:  # mixed line endings: also try the text exactly as sent
        candidates.append((old_arg, new_arg))
    old, new = next(((o, n) for o, n in candidates if o in text), candidates[0])
    count = text.count(old)
    if count == 0:
        raise ToolError(no_match_message(text, old_arg, rel))
    first = text.find(old)
    if count > 1 or text.find(old, first + 1) != -1:
        raise ToolError(multiple_match_message(text, old, rel, max(count, 2)))
    new_text = keep_final_newline(text, text[:first] + new + text[first + len(old) :], nl)
    failure = await commit(ctx, path, rel, text, new_text)
    if failure is not None:
        return failure
    start_line = text.count("\n", 0, first) + 1
    end_line = start_line + new.count("\n")
    return ToolResult(
        f"The file {rel} has been edited. Here's the result of running `cat -n` on a snippet of {rel}:\n"
        f"{snippet(new_text, start_line, end_line)}\n"
        "Review the changes and make sure they are as expected (indentation, no duplicated or missing lines). "
        "Edit the file again if necessary.",
        data={"path": rel, "diff": unified_diff(rel, text, new_text)},
    )


async def insert(ctx: ToolContext, path: Path, rel: str, params: StrReplaceEditorParams) -> ToolResult:
    if params.insert_line is None:
        raise ToolError(
            "Parameter `insert_line` is required for command insert: the line number after which to insert "
            "(0 = at the top of the file)."
        )
    if params.new_str is None:
        raise ToolError("Parameter `new_str` is required for command insert: the text to insert.")
    text = read_for_edit(path, rel, "insert")
    if params.new_str == "":
        raise ToolError("new_str is empty, so there is nothing to insert.")
    n = count_lines(text)
    line = params.insert_line
    if not 0 <= line <= n:
        raise ToolError(
            f"insert_line {line} is out of range: {rel} has {n} lines. Use a value from 0 (top of the file) "
            f"to {n} (end of the file)."
        )
    nl = detect_newline(text)
    block = to_newline(params.new_str, nl)
    if not block.endswith("\n"):
        block += nl
    if line == n and n > 0 and not text.endswith("\n"):
        # The last line has no newline: keep it that way by putting the separator before the block.
        new_text = text + nl + block[: -len(nl) if block.endswith(nl) else -1]
    else:
        offset = 0
        for _ in range(line):
            offset = text.index("\n", offset) + 1
        new_text = text[:offset] + block + text[offset:]
    failure = await commit(ctx, path, rel, text, new_text)
    if failure is not None:
        return failure
    added = block.count("\n")
    return ToolResult(
        f"The file {rel} has been edited: inserted {added} line{'s' if added != 1 else ''} after line {line}. "
        f"Here's the result of running `cat -n` on a snippet of {rel}:\n"
        f"{snippet(new_text, line + 1, line + added)}\n"
        "Review the changes and make sure they are as expected (indentation, no duplicated lines). "
        "Edit the file again if necessary.",
        data={"path": rel, "diff": unified_diff(rel, text, new_text)},
    )


async def undo_edit(ctx: ToolContext, path: Path, rel: str) -> ToolResult:
    if path.is_dir():
        raise ToolError(f"{rel} is a directory; undo_edit works on files.")
    history: dict[str, list[str | None]] = ctx.state.setdefault("edit_history", {})
    stack = history.get(str(path))
    if not stack:
        raise ToolError(
            f"There is nothing to undo for {rel}: no edit made with this tool in this session is left to revert."
        )
    previous = stack[-1]
    current: str | None = None
    if path.exists():
        check_regular_file(path, rel)
        current = path.read_bytes().decode("utf-8", errors="replace")
    await call_before_write(ctx, path)
    try:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text(path, rel, previous)
    except OSError as exc:
        raise ToolError(f"Could not undo the last edit to {rel}: {exc.strerror or exc}.") from None
    stack.pop()
    if not stack:
        del history[str(path)]
    diff = unified_diff(rel, current, previous)
    if previous is None:
        return ToolResult(
            f"Undid the creation of {rel}: the file has been deleted.", data={"path": rel, "diff": diff}
        )
    out = f"Last edit to {rel} undone successfully."
    first, last = changed_lines(current or "", previous)
    if first is not None:
        out += (
            f" Here's the result of running `cat -n` on a snippet of {rel}:\n{snippet(previous, first, last)}"
        )
    return ToolResult(out, data={"path": rel, "diff": diff})


# --------------------------------------------------------------------------- writing and hooks


async def commit(ctx: ToolContext, path: Path, rel: str, old: str | None, new: str) -> ToolResult | None:
    """Write `new` through the hooks and record `old` in the history. Returns an error result if the
    after_write hook rejected the edit (the file is then back to `old`), else None."""
    await call_before_write(ctx, path)
    created_dirs: list[Path] = []
    if old is None:
        parent = path.parent
        while not parent.exists():
            created_dirs.append(parent)
            parent = parent.parent
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ToolError(f"Could not create the directory for {rel}: {exc.strerror or exc}.") from None
    write_text(path, rel, new)
    problem = await call_after_write(ctx, path, old, new)
    if problem:
        if old is None:
            path.unlink(missing_ok=True)
            for directory in created_dirs:  # innermost first
                with contextlib.suppress(OSError):
                    directory.rmdir()
        else:
            write_text(path, rel, old)
        return ToolResult.error(problem, path=rel)
    stack = ctx.state.setdefault("edit_history", {}).setdefault(str(path), [])
    stack.append(old)
    del stack[:-HISTORY_DEPTH]
    return None


async def call_before_write(ctx: ToolContext, path: Path) -> None:
    hook = ctx.state.get("before_write")
    if not callable(hook):
        return
    result = hook(path)
    if inspect.isawaitable(result):
        result = await result
    if isinstance(result, str) and result.strip():
        raise ToolError(result)


async def call_after_write(ctx: ToolContext, path: Path, old: str | None, new: str) -> str | None:
    hook = ctx.state.get("after_write")
    if not callable(hook):
        return None
    result = hook(path, old, new)
    if inspect.isawaitable(result):
        result = await result
    return result if isinstance(result, str) and result.strip() else None


def write_text(path: Path, rel: str, text: str) -> None:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(
            f"The text for {rel} contains characters that cannot be written as UTF-8 ({exc.reason}). "
            "Remove them and try again."
        ) from None
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise ToolError(f"Could not write {rel}: {exc.strerror or exc}.") from None


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then replace it: readers never see half a file.
    An existing file keeps its permission bits (and owner, where we are allowed to keep it)."""
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    mode = stat.S_IMODE(st.st_mode) if st is not None else default_file_mode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if st is not None and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(OSError):
                os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def default_file_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file (0o666 minus the umask)."""
    return 0o666 & ~current_umask()


@functools.cache
def current_umask() -> int:
    # Linux reports the umask in /proc without changing it; os.umask() can only read it by
    # setting it, which races with threads creating files, so it is the fallback, done once.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------- reading


def check_regular_file(path: Path, rel: str) -> None:
    if not path.is_file():
        raise ToolError(
            f"{rel} is not a regular file (a device, socket or pipe); this editor only handles text files."
        )


def read_for_edit(path: Path, rel: str, command: str) -> str:
    if not path.exists():
        raise ToolError(
            f"The path {rel} does not exist. Check the path (view a directory to list files), "
            "or use create to make a new file."
        )
    if path.is_dir():
        raise ToolError(
            f"{rel} is a directory; {command} works on files. Use view on it to list its contents."
        )
    check_regular_file(path, rel)
    size = path.stat().st_size
    if size > MAX_EDIT_BYTES:
        raise ToolError(
            f"{rel} is too large to edit with this tool ({human_size(size)}; the limit is "
            f"{human_size(MAX_EDIT_BYTES)}). Change it with execute_bash instead (e.g. sed or a short script)."
        )
    return read_text(path, rel)


def read_text(path: Path, rel: str) -> str:
    """The whole file as text, exactly as stored (no newline translation)."""
    data = path.read_bytes()
    if looks_binary(data):
        raise binary_error(rel)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8_error(rel, exc) from None


def stream_lines(path: Path, rel: str, start: int, end: int) -> tuple[list[str], int]:
    """Lines start..end (end -1 = all) of a file too big to read whole, and its total line count.

    Collects at most one line more than `render` shows, so a range too long to show is still noticed."""
    wanted: list[str] = []
    chars = 0
    full = False
    total = 0
    with path.open("rb") as f:
        if looks_binary(f.read(8192)):
            raise binary_error(rel)
        f.seek(0)
        for total, raw in enumerate(f, 1):
            if full or total < start or (end != -1 and total > end):
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8_error(rel, exc) from None
            line = line.rstrip("\n")
            line = line[:-1] if line.endswith("\r") else line
            wanted.append(line)
            full = len(wanted) > VIEW_MAX_LINES or chars >= VIEW_MAX_CHARS
            chars += len(f"{total:6}\t{cut_line(line)}") + 1
    return wanted, total


def binary_error(rel: str) -> ToolError:
    quoted = shlex.quote(rel)
    return ToolError(
        f"{rel} looks like a binary file (it contains NUL bytes); this editor only handles UTF-8 text. "
        f"Inspect it with execute_bash, e.g. `file {quoted}` or `xxd {quoted} | head`."
    )


def not_utf8_error(rel: str, exc: UnicodeDecodeError) -> ToolError:
    quoted = shlex.quote(rel)
    return ToolError(
        f"{rel} is not valid UTF-8 text (invalid byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
        f"this editor only handles UTF-8 text. Inspect it with execute_bash, e.g. `file {quoted}` or "
        f"`xxd {quoted} | head`, and edit it with a script that uses its encoding."
    )


# --------------------------------------------------------------------------- text helpers


def split_lines(text: str) -> list[str]:
    """Lines without their terminator ("\\n" or "\\r\\n"), numbered as `cat -n` numbers them."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def count_lines(text: str) -> int:
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def detect_newline(text: str) -> str:
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf * 2 >= text.count("\n") else "\n"


def to_newline(text: str, nl: str) -> str:
    text = text.replace("\r\n", "\n")
    return text.replace("\n", nl) if nl != "\n" else text


def keep_final_newline(old: str, new: str, nl: str) -> str:
    """An edit that reaches the end of the file must not add or drop the final newline."""
    if not old or not new:
        return new
    if old.endswith("\n") and not new.endswith("\n"):
        return new + nl
    if not old.endswith("\n") and new.endswith("\n"):
        return new[:-2] if new.endswith("\r\n") else new[:-1]
    return new


def cut_line(line: str) -> str:
    if len(line) <= MAX_LINE_CHARS:
        return line
    return (
        f"{line[:MAX_LINE_CHARS]} [... {len(line) - MAX_LINE_CHARS} more characters on this line truncated]"
    )


def render(lines: list[str], first_number: int) -> tuple[str, int]:
    """`cat -n` style text for `lines`, within the line and character budgets; returns how many were shown."""
    out: list[str] = []
    chars = 0
    for i, line in enumerate(lines):
        if out and (len(out) >= VIEW_MAX_LINES or chars >= VIEW_MAX_CHARS):
            break
        entry = f"{first_number + i:6}\t{cut_line(line)}"
        out.append(entry)
        chars += len(entry) + 1
    return "\n".join(out), len(out)


def snippet(text: str, first: int, last: int) -> str:
    """Lines first..last of `text` with a few lines of context, numbered."""
    lines = split_lines(text)
    if not lines:
        return "(the file is now empty)"
    lo = max(1, min(first, len(lines)) - SNIPPET_CONTEXT)
    hi = min(len(lines), max(last, first) + SNIPPET_CONTEXT)
    numbered = [f"{n:6}\t{cut_line(lines[n - 1])}" for n in range(lo, hi + 1)]
    if len(numbered) > SNIPPET_MAX_LINES:
        half = SNIPPET_MAX_LINES // 2
        omitted = len(numbered) - 2 * half
        numbered = [*numbered[:half], f"[... {omitted} lines not shown ...]", *numbered[-half:]]
    return "\n".join(numbered)


def changed_lines(before: str, after: str) -> tuple[int | None, int]:
    """The 1-based line range of `after` that differs from `before` (None if they are equal)."""
    if before == after:
        return None, 0
    a, b = split_lines(before), split_lines(after)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    return head + 1, max(head + 1, len(b) - tail)


def human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes"


def unified_diff(rel: str, old: str | None, new: str | None) -> str:
    def keep_ends(text: str | None) -> list[str]:
        if not text:
            return []
        parts = text.split("\n")
        lines = [p + "\n" for p in parts[:-1]]
        if parts[-1]:
            lines.append(parts[-1])
        return lines

    out: list[str] = []
    for line in difflib.unified_diff(keep_ends(old), keep_ends(new), fromfile=f"a/{rel}", tofile=f"b/{rel}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


# --------------------------------------------------------------------------- match diagnostics


def line_numbers_of(text: str, offsets: list[int]) -> list[int]:
    newlines = [m.start() for m in re.finditer("\n", text)]
    return [bisect.bisect_left(newlines, off) + 1 for off in offsets]


def multiple_match_message(text: str, old: str, rel: str, count: int) -> str:
    offsets: list[int] = []
    pos = text.find(old)
    while pos != -1 and len(offsets) < 50:
        offsets.append(pos)
        pos = text.find(old, pos + 1)
    count = max(count, len(offsets))
    lines = sorted(set(line_numbers_of(text, offsets)))
    shown = ", ".join(str(n) for n in lines[:20]) + (", ..." if len(lines) > 20 else "")
    return (
        f"No replacement was performed: old_str occurs {count} times in {rel}, starting at lines {shown}. "
        "Include more surrounding lines in old_str so that it matches exactly one place."
    )


def no_match_message(text: str, old: str, rel: str) -> str:
    message = f"No replacement was performed: old_str did not appear verbatim in {rel}."
    ranges = whitespace_insensitive_matches(text, old)
    if not ranges:
        return message + (
            " View the file (with a view_range around the place you want to change) and copy the text "
            "exactly, including indentation and blank lines; do not include the line numbers."
        )
    where = ", ".join(f"line {a}" if a == b else f"lines {a}-{b}" for a, b in ranges[:5])
    first, last = ranges[0]
    lines = split_lines(text)
    shown = [f"{n:6}\t{cut_line(lines[n - 1])}" for n in range(first, min(last, first + 29) + 1)]
    tabs = any("\t" in lines[n - 1] for n in range(first, last + 1)) and "\t" not in old
    return (
        f"{message} It matches when whitespace is ignored, at {where}: the indentation, spacing or line "
        f"breaks in your old_str differ from the file{' (which indents with tabs)' if tabs else ''}. "
        f"Those lines in the file are:\n"
        + "\n".join(shown)
        + "\nCopy them exactly into old_str and try again."
    )


def whitespace_insensitive_matches(text: str, old: str, limit: int = 10) -> list[tuple[int, int]]:
    """Line ranges where `old` matches `text` once all whitespace is removed from both."""
    needle = "".join(old.split())
    if not needle:
        return []
    sq_starts: list[int] = []  # where each token of `text` begins in the squashed text
    starts: list[int] = []  # and where it begins in `text`
    parts: list[str] = []
    pos = 0
    for m in re.finditer(r"\S+", text):
        sq_starts.append(pos)
        starts.append(m.start())
        parts.append(m.group())
        pos += len(m.group())
    hay = "".join(parts)

    def original(sq_index: int) -> int:
        j = bisect.bisect_right(sq_starts, sq_index) - 1
        return starts[j] + (sq_index - sq_starts[j])

    offsets: list[int] = []
    found = hay.find(needle)
    while found != -1 and len(offsets) < 2 * limit:
        offsets.extend([original(found), original(found + len(needle) - 1)])
        found = hay.find(needle, found + 1)
    numbers = line_numbers_of(text, offsets)
    ranges: list[tuple[int, int]] = []
    for i in range(0, len(numbers), 2):
        if (numbers[i], numbers[i + 1]) not in ranges:
            ranges.append((numbers[i], numbers[i + 1]))
    return ranges[:limit]


# --------------------------------------------------------------------------- directories


def view_directory(path: Path, rel: str) -> str:
    prefix = "" if rel == "." else rel.rstrip("/") + "/"

    def children(directory: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return []
        return [e for e in entries if not e.name.startswith(".") and not (e.name in JUNK_DIRS and is_dir(e))]

    shown: list[str] = []
    total = 0

    def add(entry: os.DirEntry[str], sub: str) -> None:
        nonlocal total
        total += 1
        if len(shown) < DIR_MAX_ENTRIES:
            shown.append(f"{prefix}{sub}{entry.name}{'/' if is_dir(entry) else ''}")

    for entry in children(path):
        add(entry, "")
        if is_dir(entry) and not entry.is_symlink():
            for child in children(Path(entry.path)):
                add(child, entry.name + "/")
    if not shown:
        return f"{rel} is an empty directory (hidden entries are not listed)."
    out = f"Here's the files and directories up to 2 levels deep in {rel}, excluding hidden items:\n"
    out += "\n".join(shown)
    if total > len(shown):
        out += (
            f"\n[... {total - len(shown)} more entries not shown. View a subdirectory to see its contents.]"
        )
    return out


def is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
