"""The edit guard: rolls back an edit that breaks the syntax of a source file.

Plug it into the editor as ``ctx.state["after_write"] = edit_guard``: the editor calls it after
create, str_replace and insert with the file's previous text (None for a new file) and its new
text; a returned message rolls the edit back and becomes the tool's error result.

An edit is rejected when it makes the file's syntax worse:

* every supported language: tree-sitter finds more syntax issues (ERROR / MISSING nodes, at most
  one per line) in the new text than in the old one. A file that was already broken may stay
  equally broken, and an edit that removes errors always passes;
* Python: ``compile()`` is authoritative. New text that compiles always passes (tree-sitter's
  grammar may lag behind the language). New text that does not compile, where the old text did
  (or the file is new), is rejected when the error is an IndentationError / TabError (which
  tree-sitter tolerates) or when tree-sitter also sees new issues. Other compile errors with a
  clean tree-sitter parse are let through: they may be syntax from a newer Python than the one
  running the agent (PEP 695 generics, ...), and the tests will catch the rest.

Files of unknown languages and files over 2 MB are never checked, and the guard never raises: a bug
here must not block edits.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from pathlib import Path

from tools.code.languages import language_for
from tools.code.tags import SyntaxIssue, syntax_issues

log = logging.getLogger(__name__)

MAX_GUARD_BYTES = 2 * 1024 * 1024
MAX_REPORTED = 3
CONTEXT_BEFORE = 2
CONTEXT_AFTER = 1
_COUNT_LIMIT = 1000  # issues counted per version of the file when comparing old and new
_HINT = (
    "Check brackets, parentheses, braces, indentation and quotes in your new text (and that old_str "
    "covers the whole construct you are changing), then fix old_str/new_str (or file_text) and retry."
)


def edit_guard(path: Path, old: str | None, new: str) -> str | None:
    """None if the edit may stay, else a message for the model explaining why it was rolled back."""
    try:
        return _check(Path(path), old, new)
    except Exception:  # noqa: BLE001 - a guard bug must never block an edit
        log.exception("edit guard failed on %s", path)
        return None


def _check(path: Path, old: str | None, new: str) -> str | None:
    lang = language_for(path)
    if lang is None or len(new) > MAX_GUARD_BYTES:
        return None
    new_bytes = new.encode("utf-8", "replace")
    if len(new_bytes) > MAX_GUARD_BYTES or (old is not None and len(old) > MAX_GUARD_BYTES):
        return None

    if lang == "python":
        new_error = _compile_error(new, path)
        if new_error is None:
            return None
        old_compiles = old is None or _compile_error(old, path) is None
        if old_compiles:
            indentation = isinstance(new_error, IndentationError)  # TabError is a subclass
            if indentation or _more_issues(old, new_bytes, lang) is not None:
                return _python_message(path, old is None, new, new_error)
            return None
        # The old text did not compile either: fall back to comparing tree-sitter issues.

    worse = _more_issues(old, new_bytes, lang)
    if worse is None:
        return None
    return _issues_message(path, old, new, *worse)


def _compile_error(text: str, path: Path) -> SyntaxError | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning (invalid escapes, ...) is not our business
            compile(text, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        return exc
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        error = SyntaxError(str(exc) or type(exc).__name__)
        error.lineno = None
        return error
    return None


def _more_issues(
    old: str | None, new_bytes: bytes, lang: str
) -> tuple[list[SyntaxIssue], list[SyntaxIssue]] | None:
    """(new issues, old issues) if the new text has more syntax issues than the old one, else None."""
    new_issues = syntax_issues(new_bytes, lang, limit=_COUNT_LIMIT)
    if not new_issues:
        return None
    old_issues = (
        [] if old is None else syntax_issues(old.encode("utf-8", "replace"), lang, limit=_COUNT_LIMIT)
    )
    if len(new_issues) <= len(old_issues):
        return None
    return new_issues, old_issues


def _introduced(new_issues: list[SyntaxIssue], old_issues: list[SyntaxIssue], old: str | None, new: str):
    """The issues most likely caused by the edit: messages the old text did not have, else those in
    or after the changed lines, else all of them."""
    remaining = Counter(issue.message for issue in old_issues)
    fresh = []
    for issue in new_issues:
        if remaining[issue.message] > 0:
            remaining[issue.message] -= 1
        else:
            fresh.append(issue)
    if fresh:
        return fresh
    if old is not None:
        first = _first_changed_line(old, new)
        near = [issue for issue in new_issues if issue.line >= first]
        if near:
            return near
    return new_issues


def _first_changed_line(old: str, new: str) -> int:
    a, b = old.split("\n"), new.split("\n")
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n + 1


def _shown_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _header(path: Path, created: bool) -> str:
    what = "The file was NOT created" if created else "The edit was NOT applied (the file is unchanged)"
    return f"Syntax check failed for {_shown_path(path)}: the new text has syntax errors. {what}."


def _context(lines: list[str], line: int, column: int | None) -> str:
    lo = max(1, line - CONTEXT_BEFORE)
    hi = min(len(lines), line + CONTEXT_AFTER)
    width = len(str(hi))
    out = []
    for n in range(lo, hi + 1):
        text = lines[n - 1].rstrip("\r")
        if len(text) > 200:
            text = text[:200] + " ..."
        marker = ">" if n == line else " "
        out.append(f"  {marker} {n:>{width}} | {text}")
        if n == line and column and column <= len(text) + 1:
            pad = "".join("\t" if ch == "\t" else " " for ch in text[: column - 1])
            out.append(f"    {' ' * width} | {pad}^")
    return "\n".join(out)


def _issues_message(
    path: Path, old: str | None, new: str, new_issues: list[SyntaxIssue], old_issues: list[SyntaxIssue]
) -> str:
    shown = _introduced(new_issues, old_issues, old, new)
    lines = new.split("\n")
    parts = [_header(path, old is None)]
    if old_issues:
        parts.append(
            f"The file already had {len(old_issues)} syntax issue(s); after the edit it would have "
            f"{len(new_issues)}."
        )
    parts.append("New syntax error(s):" if len(shown) > 1 else "New syntax error:")
    for issue in shown[:MAX_REPORTED]:
        parts.append(f"- line {issue.line}, column {issue.column}: {issue.message}")
        parts.append(_context(lines, issue.line, issue.column))
    if len(shown) > MAX_REPORTED:
        parts.append(f"... and {len(shown) - MAX_REPORTED} more.")
    parts.append(_HINT)
    return "\n".join(parts)


def _python_message(path: Path, created: bool, new: str, error: SyntaxError) -> str:
    kind = type(error).__name__
    parts = [_header(path, created)]
    line = error.lineno
    if line:
        parts.append(f"- line {line}, column {error.offset or 1}: {kind}: {error.msg}")
        parts.append(_context(new.split("\n"), line, error.offset))
    else:
        parts.append(f"- {kind}: {error.msg}")
    parts.append(_HINT)
    return "\n".join(parts)
