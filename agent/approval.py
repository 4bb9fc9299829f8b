"""The approval policy: for each tool call that may change something, allow, deny or ask.

Pure logic, no I/O. The session asks :meth:`ApprovalPolicy.decide` before every mutating call
(`Tool.mutates`); a front end answers "ask" with an :class:`Answer` (the TUI asks the user,
headless runs answer :func:`non_interactive_answer`).

Modes (what a mode allows by itself; everything else asks):

- ``read-only``: reading only.
- ``auto-edit``: reading, editing files and running the tests (``run_tests``); commands and git
  operations ask.
- ``full-auto``: everything, except publishing: a plain ``git push`` asks in every mode unless an
  allow entry (or an "always" answer) covers it, because it publishes outside the workspace and
  Luban's checkpoints cannot undo it.

Some commands are never allowed, whatever the mode or the allow list: force pushes and pushes
that delete remote branches (they rewrite or destroy published history), and recursive removal
of ``/`` or the home directory (outside the workspace, so no checkpoint can restore it). History
rewriting inside the repository (``git reset``, ``git rebase``) is left to the mode: checkpoints
can undo working-tree damage.

Shell commands are split into simple commands by a small bash-aware scanner (quotes, escapes,
``&& || ; | &``, newlines, subshells, ``$(...)``, backticks, process substitution, here-documents,
``bash -c``/``eval``/``find -exec``/``xargs`` and wrappers such as ``env``, ``timeout``, ``sudo``).
``shlex`` alone cannot do this: it does not see ``$(...)`` inside double quotes nor here-document
bodies, and it cannot tell a quoted ``"&&"`` from the operator. A chain is allowed only if every
simple command in it is; one denied command denies the chain. Text that cannot be parsed is one
opaque command: it asks unless the mode is full-auto.
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["read-only", "auto-edit", "full-auto"]
MODES: tuple[str, ...] = ("read-only", "auto-edit", "full-auto")
DEFAULT_MODE: Mode = "full-auto"

MODE_ALLOWS: dict[str, frozenset[str]] = {
    "read-only": frozenset({"read"}),
    "auto-edit": frozenset({"read", "edit", "test"}),
    "full-auto": frozenset({"read", "edit", "test", "command", "git"}),
}
MODE_DOES = {
    "read-only": "read-only mode allows only reading",
    "auto-edit": "auto-edit mode allows edits and tests",
    "full-auto": "full-auto mode allows everything except publishing",
}
KIND_DOES = {
    "read": "reads",
    "edit": "edits files",
    "test": "runs the tests",
    "command": "runs a command",
    "git": "changes repository state",
}
KIND_NOUN = {
    "read": "reading",
    "edit": "edits",
    "test": "tests",
    "command": "commands",
    "git": "git operations",
}
# Tools that publish outside the workspace: they ask even in full-auto unless explicitly allowed.
PUBLISHING_TOOLS = frozenset({"git_push"})

SHELL_TOOL = "execute_bash"
MAX_DEPTH = 12
MAX_SUMMARY = 300

# --------------------------------------------------------------------------- request / decision


@dataclass(frozen=True)
class ApprovalRequest:
    tool: str  # tool name
    kind: str  # Tool.kind: read | edit | test | command | git
    summary: str  # Tool.describe_call(params), one line
    arguments: dict  # the validated params as a dict
    key: str  # what "approve always" remembers

    @classmethod
    def for_call(cls, tool: Any, params: Any) -> ApprovalRequest:
        """The request for one call of `tool` (a tools.base.Tool) with its validated `params`."""
        if hasattr(params, "model_dump"):
            arguments = params.model_dump(exclude_none=True)
        else:
            arguments = dict(params or {})
        name = str(getattr(tool, "name", type(tool).__name__))
        kind = str(getattr(tool, "kind", "command") or "command")
        try:
            summary = tool.describe_call(params)
        except Exception:  # a plugin's describe_call must not break approvals
            summary = f"{name} {arguments!r}"
        return cls(
            tool=name,
            kind=kind,
            summary=one_line(str(summary)),
            arguments=arguments,
            key=request_key(name, kind, arguments),
        )

    @property
    def command(self) -> str | None:
        """The shell command of a command-kind call (execute_bash's `command`), else None."""
        value = self.arguments.get("command") if isinstance(self.arguments, dict) else None
        if self.kind == "command" and isinstance(value, str):
            return value
        return None


@dataclass(frozen=True)
class Decision:
    verdict: Literal["allow", "deny", "ask"]
    reason: str  # one sentence, shown to the user and (for deny) to the model
    # What the model can do instead when the call is refused (used by refusal_message).
    hint: str = ""


@dataclass(frozen=True)
class Answer:
    """A front end's answer to "ask"."""

    decision: Literal["once", "always", "deny"]
    message: str | None = None  # deny with a message to the model
    by: Literal["user", "policy"] = "user"  # "policy": the automatic answer of a headless run


def one_line(text: str, limit: int = MAX_SUMMARY) -> str:
    text = re.sub(r"\s*\n\s*", " ↵ ", text.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def request_key(tool: str, kind: str, arguments: dict) -> str:
    """The tool name, or for a command `<tool>:<prefix>[, <prefix>...]` (every command of a chain)."""
    command = arguments.get("command") if isinstance(arguments, dict) else None
    if kind != "command" or not isinstance(command, str):
        return tool
    prefixes = command_prefixes(command)
    return f"{tool}:{', '.join(prefixes)}" if prefixes else tool


# --------------------------------------------------------------------------- shell parsing


class ShellParseError(ValueError):
    pass


@dataclass(frozen=True)
class SimpleCommand:
    """One simple command of a command line: its words after quote removal, without leading
    assignments and redirections. `opaque` says why it could not be understood (None if it was)."""

    words: tuple[str, ...]
    text: str  # the source text, for messages
    dynamic: bool = False  # the program name comes from an expansion ($X, $(...))
    opaque: str | None = None
    runs_string: bool = False  # `bash -c STR`, `eval STR`: STR's commands are listed and judged

    @property
    def display(self) -> str:
        return one_line(self.text, 80) if self.text else " ".join(self.words)


@dataclass
class _Word:
    value: str
    dynamic: bool = False  # contains $... or a substitution
    quoted: bool = False
    start: int = 0
    end: int = 0
    raw: str = ""


# token kinds
_W, _OP = "word", "op"
_SEPARATORS = {"&&", "||", ";", "|", "|&", "&", ";;", ";&", ";;&", "\n", "(", ")"}
_REDIRECTS = {"<", ">", ">>", ">|", "<>", "<&", ">&", "&>", "&>>", "<<<", "<<", "<<-"}
_OPERATORS = sorted(_SEPARATORS | _REDIRECTS, key=len, reverse=True)
_OP_START = set("&|;()<>\n")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")


class _Lexer:
    """Tokens of a bash command line. Substitutions found on the way are parsed recursively and
    their commands collected in `self.extra`."""

    def __init__(self, text: str, depth: int = 0):
        if depth > MAX_DEPTH:
            raise ShellParseError("nested too deeply")
        self.s = text
        self.depth = depth
        self.extra: list[SimpleCommand] = []
        self.heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, expand, strip tabs)

    # -- helpers
    def _sub(self, text: str) -> None:
        self.extra.extend(_parse(text, self.depth + 1))

    def _matching_paren(self, i: int) -> int:
        """`i` is just after `$(` or `<(`: parse to the matching `)`; return the index after it."""
        lexer = _Lexer(self.s, self.depth + 1)
        tokens, end = lexer.lex(i, stop_at_paren=True)
        self.extra.extend(_assemble(tokens, self.s, self.depth + 1))
        self.extra.extend(lexer.extra)
        return end

    def _skip_braces(self, i: int, open_: str, close: str) -> int:
        """`i` just after the opening; return the index after the matching close. Substitutions
        inside are parsed."""
        depth, s = 1, self.s
        while i < len(s):
            c = s[i]
            if c == "\\":
                i += 2
                continue
            if c == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    raise ShellParseError("unterminated quote")
                i = j + 1
                continue
            if c == '"':
                _, i, _ = self._double(i + 1)
                continue
            if s.startswith("$(", i) and not s.startswith("$((", i):
                i = self._matching_paren(i + 2)
                continue
            if c == "`":
                i = self._backtick(i + 1)
                continue
            if c == open_:
                depth += 1
            elif c == close:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise ShellParseError(f"unterminated {open_}")

    def _arith(self, i: int) -> int:
        """`i` just after `$((`: return the index after the matching `))`."""
        end = self._skip_braces(i, "(", ")")  # closes the inner (
        if end >= len(self.s) or self.s[end] != ")":
            raise ShellParseError("unterminated $((")
        return end + 1

    def _backtick(self, i: int) -> int:
        """`i` just after an opening backtick: parse the command inside, return the index after."""
        s, out = self.s, []
        while i < len(s):
            c = s[i]
            if c == "\\" and i + 1 < len(s) and s[i + 1] in "`$\\":
                out.append(s[i + 1])
                i += 2
                continue
            if c == "`":
                self._sub("".join(out))
                return i + 1
            out.append(c)
            i += 1
        raise ShellParseError("unterminated backtick")

    def _dollar(self, i: int) -> tuple[str, int]:
        """`s[i]` is `$`: return (text, index after) of the expansion, parsing substitutions."""
        s = self.s
        if s.startswith("$((", i):
            end = self._arith(i + 3)
        elif s.startswith("$(", i):
            end = self._matching_paren(i + 2)
        elif s.startswith("${", i):
            end = self._skip_braces(i + 2, "{", "}")
        else:
            m = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])?").match(s, i)
            end = m.end() if m else i + 1
        return s[i:end], end

    def _double(self, i: int) -> tuple[str, int, bool]:
        """`i` just after an opening double quote: (value, index after the close, dynamic)."""
        s, out, dynamic = self.s, [], False
        while i < len(s):
            c = s[i]
            if c == '"':
                return "".join(out), i + 1, dynamic
            if c == "\\" and i + 1 < len(s):
                nxt = s[i + 1]
                if nxt in '$`"\\':
                    out.append(nxt)
                elif nxt != "\n":
                    out.append(c + nxt)
                i += 2
                continue
            if c == "$" and i + 1 < len(s) and (s[i + 1] in "({_@*#?$!-" or s[i + 1].isalnum()):
                text, i = self._dollar(i)
                out.append(text)
                dynamic = True
                continue
            if c == "`":
                start = i
                i = self._backtick(i + 1)
                out.append(s[start:i])
                dynamic = True
                continue
            out.append(c)
            i += 1
        raise ShellParseError("unterminated double quote")

    def _heredoc_bodies(self, i: int) -> int:
        """`i` just after a newline: consume the pending here-document bodies."""
        s = self.s
        for delimiter, expand, strip_tabs in self.heredocs:
            body = []
            while i < len(s):
                j = s.find("\n", i)
                line = s[i:] if j < 0 else s[i:j]
                i = len(s) if j < 0 else j + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
                body.append(line)
            if expand:
                self._scan_expansions("\n".join(body))
        self.heredocs = []
        return i

    def _scan_expansions(self, text: str) -> None:
        """Parse the substitutions of text that undergoes expansion (a here-document body)."""
        sub = _Lexer(text, self.depth + 1)
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 2
            elif c == "$":
                _, i = sub._dollar(i)
            elif c == "`":
                i = sub._backtick(i + 1)
            else:
                i += 1
        self.extra.extend(sub.extra)

    # -- the main loop
    def lex(self, i: int = 0, stop_at_paren: bool = False) -> tuple[list[tuple[str, Any]], int]:
        s, tokens, parens = self.s, [], 0
        pending_heredoc = False
        while i < len(s):
            c = s[i]
            if c in " \t":
                i += 1
                continue
            if c == "\\" and s.startswith("\\\n", i):
                i += 2
                continue
            if c == "#":  # a comment (only at the start of a word, which is where we are)
                j = s.find("\n", i)
                i = len(s) if j < 0 else j
                continue
            if c in "<>" and s.startswith("(", i + 1):  # process substitution: a word
                start = i
                i = self._matching_paren(i + 2)
                tokens.append((_W, _Word(s[start:i], dynamic=True, start=start, end=i, raw=s[start:i])))
                continue
            if c in _OP_START:
                op = next(o for o in _OPERATORS if s.startswith(o, i))
                i += len(op)
                if op == "(":
                    parens += 1
                elif op == ")":
                    if stop_at_paren and parens == 0:
                        return tokens, i
                    parens = max(parens - 1, 0)
                elif op in ("<<", "<<-"):
                    pending_heredoc = op
                    tokens.append((_OP, op))
                    continue
                elif op == "\n" and self.heredocs:
                    i = self._heredoc_bodies(i)
                tokens.append((_OP, op))
                continue
            word, i = self._word(i)
            if pending_heredoc:
                expand = not word.quoted
                self.heredocs.append((word.value, expand, pending_heredoc == "<<-"))
                pending_heredoc = False
            # a file descriptor number glued to a redirection (2>&1): not a word
            if not word.quoted and word.value.isdigit() and i < len(s) and s[i] in "<>":
                continue
            tokens.append((_W, word))
        if stop_at_paren:
            raise ShellParseError("unterminated $(")
        return tokens, i

    def _word(self, i: int) -> tuple[_Word, int]:
        s, out, start = self.s, [], i
        dynamic = quoted = False
        while i < len(s):
            c = s[i]
            if c in " \t" or c in _OP_START:
                break
            if c == "\\":
                if i + 1 < len(s):
                    if s[i + 1] != "\n":
                        out.append(s[i + 1])
                    quoted = True
                    i += 2
                else:  # a trailing backslash is literal
                    out.append(c)
                    i += 1
                continue
            if c == "'":
                j = s.find("'", i + 1)
                if j < 0:
                    raise ShellParseError("unterminated single quote")
                out.append(s[i + 1 : j])
                quoted = True
                i = j + 1
                continue
            if c == '"':
                value, i, dyn = self._double(i + 1)
                out.append(value)
                quoted = True
                dynamic = dynamic or dyn
                continue
            if s.startswith("$'", i):  # ANSI-C quoting
                j = i + 2
                while j < len(s) and s[j] != "'":
                    j += 2 if s[j] == "\\" else 1
                if j >= len(s):
                    raise ShellParseError("unterminated $'")
                out.append(s[i + 2 : j])
                quoted = True
                i = j + 1
                continue
            if c == "$" and i + 1 < len(s) and s[i + 1] == '"':
                i += 1
                continue
            if c == "$" and i + 1 < len(s) and (s[i + 1] in "({_@*#?$!-" or s[i + 1].isalnum()):
                text, i = self._dollar(i)
                out.append(text)
                dynamic = True
                continue
            if c == "`":
                j = self._backtick(i + 1)
                out.append(s[i:j])
                dynamic = True
                i = j
                continue
            out.append(c)
            i += 1
        word = _Word("".join(out), dynamic=dynamic, quoted=quoted, start=start, end=i, raw=s[start:i])
        return word, i


_RESERVED_PREFIX = {"!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "fi", "done", "esac"}


def _assemble(tokens: list[tuple[str, Any]], source: str, depth: int) -> list[SimpleCommand]:
    """Group tokens into simple commands (separators end one; redirection targets are skipped)."""
    commands: list[SimpleCommand] = []
    current: list[_Word] = []
    skip_next = False

    def flush() -> None:
        if current:
            commands.extend(_simple(current, source, depth))
        current.clear()

    for kind, value in tokens:
        if kind == _OP:
            if value in _REDIRECTS:
                skip_next = True
                continue
            flush()
            skip_next = False
            continue
        if skip_next:
            skip_next = False
            continue
        current.append(value)
    flush()
    return commands


def _simple(words: list[_Word], source: str, depth: int) -> list[SimpleCommand]:
    """One simple command, minus reserved words and leading assignments; wrappers that run a
    command string (bash -c, eval, find -exec) add the commands of that string."""
    text = source[words[0].start : words[-1].end] if words[-1].end > words[0].start else ""
    i = 0
    while i < len(words) and not words[i].quoted and words[i].value in _RESERVED_PREFIX:
        i += 1
    if i < len(words) and not words[i].quoted and words[i].value in ("for", "select", "function"):
        return [SimpleCommand(("for",) if words[i].value != "function" else ("function",), text)]
    if i < len(words) and not words[i].quoted and words[i].value == "case":
        return [SimpleCommand(tuple(w.value for w in words[i:]), text, opaque="a `case` statement")]
    if i < len(words) and not words[i].quoted and words[i].value == "time":
        i += 1
        while i < len(words) and words[i].value.startswith("-"):
            i += 1
    while i < len(words) and _ASSIGNMENT.match(words[i].raw):
        i += 1
    rest = words[i:]
    if not rest:
        return [SimpleCommand((), text)]  # assignments only, or a bare reserved word
    values = tuple(w.value for w in rest)
    nested, transparent = _nested(values, depth)
    return [SimpleCommand(values, text, dynamic=rest[0].dynamic, runs_string=transparent), *nested]


def _nested(words: tuple[str, ...], depth: int) -> tuple[list[SimpleCommand], bool]:
    """Commands a command runs from its arguments, and whether the command itself is only a
    carrier of them: `bash -c STR`, `eval ...`, `env -S STR` (carriers), `find -exec CMD ;`
    (find itself still counts). Wrappers such as `sudo`/`timeout`/`xargs` are unwrapped by
    `canonical` instead."""
    words = _unwrap(list(words))[0]
    if not words:
        return [], False
    prog = program_name(words[0])
    string: str | None = None
    if prog in ("bash", "sh", "zsh", "dash", "ksh"):
        for j, w in enumerate(words[1:], 1):
            if w.startswith("-") and not w.startswith("--") and "c" in w[1:]:
                if j + 1 < len(words):
                    string = words[j + 1]
                break
    elif prog == "eval":
        string = " ".join(words[1:])
    elif prog == "env":
        for j, w in enumerate(words[1:], 1):
            if w in ("-S", "--split-string") and j + 1 < len(words):
                string = " ".join(words[j + 1 :])
            elif w.startswith("-S") and len(w) > 2:
                string = " ".join([w[2:], *words[j + 1 :]])
            elif w.startswith("--split-string="):
                string = " ".join([w.split("=", 1)[1], *words[j + 1 :]])
            else:
                continue
            break
    if string is not None:
        inner = _parse(string, depth + 1)
        return inner, bool(inner)
    if prog == "find":
        out, j = [], 1
        while j < len(words):
            if words[j] in ("-exec", "-execdir", "-ok", "-okdir"):
                k = j + 1
                while k < len(words) and words[k] not in (";", "+"):
                    k += 1
                if k > j + 1:
                    inner = tuple(words[j + 1 : k])
                    out.append(SimpleCommand(inner, " ".join(inner)))
                    out.extend(_nested(inner, depth + 1)[0])
                j = k
            j += 1
        return out, False
    return [], False


def _parse(text: str, depth: int = 0) -> list[SimpleCommand]:
    lexer = _Lexer(text, depth)
    tokens, _ = lexer.lex()
    return _assemble(tokens, text, depth) + lexer.extra


@functools.lru_cache(maxsize=512)
def split_commands(command: str) -> tuple[SimpleCommand, ...]:
    """The simple commands a command line runs (never raises: unparseable text is one opaque
    command)."""
    text = command.strip()
    if not text:
        return ()
    try:
        commands = _parse(text)
    except Exception as exc:  # ShellParseError, RecursionError...: never raise
        return (SimpleCommand((text,), text, opaque=f"it could not be parsed ({exc})"),)
    return tuple(c for c in commands if c.words or c.opaque)


# --------------------------------------------------------------------------- canonical words

# program -> options (before the subcommand) that take a separate value
GLOBAL_OPTIONS_WITH_VALUE: dict[str, frozenset[str]] = {
    "git": frozenset(
        {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--super-prefix", "--config-env"}
    ),
    "docker": frozenset({"-H", "--host", "--context", "-c", "--config", "-l", "--log-level"}),
    "kubectl": frozenset(
        {"-n", "--namespace", "--context", "--kubeconfig", "--cluster", "--user", "-s", "--server"}
    ),
    "make": frozenset({"-C", "-f", "--file", "--makefile", "-I", "-o", "-W", "--directory"}),
    "cargo": frozenset({"-C", "--config", "-Z", "--color"}),
    "go": frozenset({"-C"}),
    "npm": frozenset({"--prefix", "-w", "--workspace"}),
    "yarn": frozenset({"--cwd"}),
    "pnpm": frozenset({"-C", "--dir", "--filter", "-F"}),
    "uv": frozenset({"--directory", "--project", "-p", "--python", "--cache-dir"}),
    "poetry": frozenset({"-C", "--directory", "-P", "--project"}),
    "gh": frozenset({"-R", "--repo"}),
}
# programs whose first non-option word is a subcommand (kept in the prefix)
MULTIPLEXERS = frozenset(
    {
        "git", "npm", "yarn", "pnpm", "bun", "cargo", "go", "pip", "uv", "make", "docker", "podman",
        "kubectl", "poetry", "pipenv", "pdm", "hatch", "conda", "mamba", "gh", "helm", "terraform",
        "dotnet", "mvn", "gradle", "bundle", "rustup", "brew", "apt", "apt-get", "systemctl",
        "deno", "just", "rake", "composer", "npx", "pnpx", "bunx",
    }
)  # fmt: skip
# (program, subcommand) pairs whose next word is part of the prefix too (`npm run test`)
NESTED = {
    "npm": {"run", "run-script", "exec"},
    "yarn": {"run", "workspace", "dlx"},
    "pnpm": {"run", "exec", "dlx"},
    "bun": {"run", "x"},
    "uv": {"run", "pip", "tool"},
    "poetry": {"run"},
    "pipenv": {"run"},
    "pdm": {"run"},
    "hatch": {"run"},
    "docker": {"compose"},
    "podman": {"compose"},
    "gh": {"pr", "issue", "repo", "release", "run", "workflow", "api"},
    "go": {"mod"},
}
# `python -m X`, `uv run X`...: X's own words are matched against allow entries too
RUNNERS = {("python", "-m"), ("uv", "run"), ("poetry", "run"), ("pipenv", "run"), ("pdm", "run"), ("npx",)}
INTERPRETERS = frozenset({"python", "node", "bash", "sh", "zsh", "ruby", "perl", "php", "deno", "bun"})

# wrapper -> options that take a separate value; the wrapped command follows
WRAPPERS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
    "nohup": frozenset(),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "-t"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "time": frozenset({"-f", "--format", "-o", "--output"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "unbuffer": frozenset(),
    "xargs": frozenset(
        {
            "-a",
            "--arg-file",
            "-d",
            "--delimiter",
            "-E",
            "-I",
            "-L",
            "-n",
            "--max-args",
            "-P",
            "--max-procs",
            "-s",
        }
    ),
    "sudo": frozenset({"-u", "--user", "-g", "--group", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T"}),
    "doas": frozenset({"-u", "-C"}),
}
ELEVATORS = frozenset({"sudo", "doas"})


def program_name(word: str) -> str:
    """`/usr/bin/git` -> git, `.venv/bin/pytest` -> pytest, `python3.11` -> python; a script path
    such as `./run.sh` stays as written."""
    name = word
    if "/" in word:
        head, _, base = word.rpartition("/")
        if word.startswith("/") or head.endswith("bin") or head.endswith(".bin"):
            name = base
    if re.fullmatch(r"python[0-9.]*", name):
        return "python"
    if re.fullmatch(r"pip[0-9.]*", name):
        return "pip"
    return name


def _unwrap(words: list[str]) -> tuple[list[str], list[str]]:
    """(the wrapped command, the elevators met on the way): `sudo -u x timeout 5 env A=1 pytest`
    -> (['pytest'], ['sudo'])."""
    elevated: list[str] = []
    for _ in range(MAX_DEPTH):
        if not words:
            break
        prog = program_name(words[0])
        if prog not in WRAPPERS:
            break
        if prog == "command" and len(words) > 1 and words[1] in ("-v", "-V"):
            break  # `command -v x` only looks x up
        if prog == "env" and any(w in ("-S", "--split-string") or w.startswith("-S") for w in words[1:2]):
            break  # `env -S STR`: handled as an opaque command
        takes = WRAPPERS[prog]
        j = 1
        while j < len(words):
            w = words[j]
            if w == "--":
                j += 1
                break
            if prog in ("env",) and _ASSIGNMENT.match(w):
                j += 1
                continue
            if w.startswith("-") and len(w) > 1:
                j += 2 if (w in takes and "=" not in w) else 1
                continue
            break
        if prog == "timeout" and j < len(words):
            j += 1  # the duration
        if prog in ELEVATORS:
            elevated.append(prog)
        words = words[j:]
    return words, elevated


def canonical(words: Iterable[str]) -> tuple[str, ...]:
    """Words normalised for matching: wrappers dropped (elevators kept as a leading word), the
    program name normalised, global options before a subcommand dropped."""
    inner, elevated = _unwrap(list(words))
    if not inner:
        return tuple(elevated)
    prog = program_name(inner[0])
    rest = inner[1:]
    if prog in MULTIPLEXERS:
        takes = GLOBAL_OPTIONS_WITH_VALUE.get(prog, frozenset())
        j = 0
        while j < len(rest):
            w = rest[j]
            if w.startswith("-") and len(w) > 1 and w != "--":
                if prog == "make" and w == "-j" and j + 1 < len(rest) and rest[j + 1].isdigit():
                    j += 2
                    continue
                j += 2 if (w in takes and "=" not in w) else 1
                continue
            if prog == "cargo" and w.startswith("+"):
                j += 1  # toolchain
                continue
            break
        rest = rest[j:]
    return (*elevated, prog, *rest)


def _prefix_length(words: tuple[str, ...]) -> int:
    """How many canonical words make the "approve always" prefix of a command."""
    if not words:
        return 0
    start = 0
    while start < len(words) and words[start] in ELEVATORS:
        start += 1
    if start >= len(words):
        return len(words)
    prog = words[start]
    rest = words[start + 1 :]
    if prog == "python":
        if rest[:1] == ("-m",) and len(rest) > 1:
            if rest[1] in MULTIPLEXERS:  # python -m pip install
                return start + 2 + _prefix_length(rest[1:])
            return start + 3  # python -m pytest
        for k, w in enumerate(rest):
            if w == "-c" or not w.startswith("-"):
                return start + 2 + k  # python -c, python script.py
        return start + 1
    if prog in INTERPRETERS:
        for k, w in enumerate(rest):
            if w in ("-c", "-e", "-lc", "-ec"):
                return start + 1 + k + 1
            if not w.startswith("-"):
                return start + 1 + k + 1
        return start + 1
    if prog in MULTIPLEXERS and rest:
        sub = rest[0]
        if sub.startswith("-"):
            return start + 1
        if sub in NESTED.get(prog, ()) and len(rest) > 1 and not rest[1].startswith("-"):
            return start + 3
        return start + 2
    return start + 1


def command_prefix(command: SimpleCommand) -> str:
    """The leading words "approve always" remembers for one simple command: the program, plus the
    subcommand for multiplexers (`git status`, `npm run test`, `python -m pytest`)."""
    if command.opaque:
        return command.text
    words = canonical(command.words)
    return " ".join(words[: _prefix_length(words)])


def command_prefixes(command: str) -> list[str]:
    """The distinct prefixes of a command line's simple commands, harmless ones left out unless
    nothing else is there."""
    commands = split_commands(command)
    prefixes = [command_prefix(c) for c in commands if not is_harmless(c)]
    if not prefixes:
        prefixes = [command_prefix(c) for c in commands]
    return list(dict.fromkeys(p for p in prefixes if p))


def command_views(words: tuple[str, ...], *, for_deny: bool) -> list[tuple[str, ...]]:
    """The word sequences a rule is matched against: the canonical words, `python -m X` / `uv run X`
    as X alone, and (for deny rules) without `sudo`."""
    views = [words]
    if for_deny:
        k = 0
        while k < len(words) and words[k] in ELEVATORS:
            k += 1
        if k:
            views.append(words[k:])
    for view in list(views):
        for runner in RUNNERS:
            n = len(runner)
            if view[:n] == runner and len(view) > n:
                views.append(canonical(view[n:]))
    return views


# --------------------------------------------------------------------------- rules

HARMLESS = frozenset(
    {
        "cd", "pushd", "popd", "export", "unset", "set", "true", "false", ":", "exit", "return",
        "break", "continue", "shift", "local", "declare", "typeset", "readonly", "wait", "pwd",
        "[", "[[", "test", "for", "function", "umask",
    }
)  # fmt: skip


def is_harmless(command: SimpleCommand) -> bool:
    """Commands that change nothing by themselves: `cd`, `export`, assignments, `set -e`,
    `source .venv/bin/activate`..."""
    if command.opaque or command.dynamic:
        return False
    if not command.words or command.runs_string:
        return True
    prog = command.words[0]
    if prog in HARMLESS:
        return True
    if prog in ("source", ".") and len(command.words) == 2:
        return command.words[1].endswith("/activate") or command.words[1] == "activate"
    return False


def _short_flags(word: str, value_flags: str = "") -> set[str]:
    """The letters of a short-option cluster (`-fu` -> {f, u}); stops at a flag taking a value."""
    if not word.startswith("-") or word.startswith("--") or len(word) < 2:
        return set()
    out = set()
    for ch in word[1:]:
        out.add(ch)
        if ch in value_flags:
            break
    return out


OUTSIDE_TARGETS = frozenset(
    {"/*", "~", "~/", "~/*", "$HOME", "$HOME/", "$HOME/*", "${HOME}", "${HOME}/", "${HOME}/*"}
)


def builtin_denial(command: SimpleCommand) -> str | None:
    """Why a simple command is never allowed, or None."""
    if command.opaque:
        return None
    for words in command_views(canonical(command.words), for_deny=True):
        if len(words) >= 2 and words[0] == "git" and words[1] == "push":
            args = words[2:]
            shown = " ".join(words)
            for a in args:
                if a in ("--force", "--force-if-includes") or a.startswith("--force-with-lease"):
                    return f"`git push {a}` is never allowed: it rewrites published history"
                if a == "--mirror":
                    return "`git push --mirror` is never allowed: it overwrites and deletes remote refs"
                if a in ("--delete", "--prune"):
                    return f"`git push {a}` is never allowed: it deletes remote branches"
                flags = _short_flags(a, "o")
                if "f" in flags:
                    return f"`git push {a}` is never allowed: it force-pushes and rewrites published history"
                if "d" in flags:
                    return f"`git push {a}` is never allowed: it deletes remote branches"
                if a.startswith("+") and len(a) > 1:
                    return (
                        f"`{shown}` is never allowed: the `+` refspec force-pushes and rewrites "
                        "published history"
                    )
                if a.startswith(":") and len(a) > 1:
                    return f"`{shown}` is never allowed: the `:branch` refspec deletes a remote branch"
        if words and words[0] == "rm":
            flags: set[str] = set()
            for a in words[1:]:
                flags |= _short_flags(a)
                if a == "--recursive":
                    flags.add("r")
            if "--no-preserve-root" in words:
                return "`rm --no-preserve-root` is never allowed"
            if flags & {"r", "R"}:
                for a in words[1:]:
                    if a in OUTSIDE_TARGETS or (a and not a.strip("/")):
                        return (
                            f"`{' '.join(words)}` is never allowed: it deletes files outside the "
                            "workspace that no checkpoint can restore"
                        )
    return None


def is_push(command: SimpleCommand) -> bool:
    if command.opaque:
        return bool(re.search(r"\bpush\b", command.text))
    return any(
        len(v) >= 2 and v[0] == "git" and v[1] == "push"
        for v in command_views(canonical(command.words), for_deny=True)
    )


@dataclass(frozen=True)
class Rule:
    """An allow or deny entry: a tool name, or a command prefix (its canonical words)."""

    text: str
    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Rule:
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
        return cls(text.strip(), canonical(words) if words else ())

    def matches_tool(self, tool: str) -> bool:
        return self.text == tool

    def matches(self, command: SimpleCommand, *, for_deny: bool) -> bool:
        if not self.words:
            return False
        if command.opaque:
            return False
        n = len(self.words)
        return any(v[:n] == self.words for v in command_views(canonical(command.words), for_deny=for_deny))


# --------------------------------------------------------------------------- the policy


def _code(text: str) -> str:
    text = one_line(text, 80).replace("`", "'")
    return f"`{text}`"


class ApprovalPolicy:
    def __init__(self, mode: Mode = DEFAULT_MODE, allow: Iterable[str] = (), deny: Iterable[str] = ()):
        if mode not in MODES:
            raise ValueError(f"unknown approval mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode: Mode = mode
        self.allow = [Rule.parse(a) for a in allow if a and a.strip()]
        self.deny = [Rule.parse(d) for d in deny if d and d.strip()]
        self.remembered_tools: set[str] = set()
        self.remembered: list[Rule] = []  # command prefixes answered "always"
        self.remembered_opaque: set[str] = set()

    def __repr__(self) -> str:
        allow, deny = [r.text for r in self.allow], [r.text for r in self.deny]
        return f"ApprovalPolicy(mode={self.mode!r}, allow={allow!r}, deny={deny!r})"

    # -- remembering
    def remember(self, request: ApprovalRequest) -> None:
        """After an "always" answer: later requests with the same key are allowed (not those a
        built-in rule or the deny list refuses)."""
        command = request.command
        if command is None:
            self.remembered_tools.add(request.tool)
            return
        for c in split_commands(command):
            if is_harmless(c):
                continue
            if c.opaque:
                self.remembered_opaque.add(c.text)
            else:
                prefix = command_prefix(c)
                if prefix:
                    self.remembered.append(Rule.parse(prefix))

    # -- deciding
    def decide(self, request: ApprovalRequest) -> Decision:
        try:
            command = request.command
            if command is not None:
                return self._decide_command(request, command)
            return self._decide_tool(request)
        except Exception as exc:  # a policy bug must not crash the run: ask instead
            return Decision("ask", f"the approval policy could not judge this call ({type(exc).__name__})")

    def _decide_tool(self, request: ApprovalRequest) -> Decision:
        tool, kind = request.tool, request.kind
        if any(r.matches_tool(tool) for r in self.deny):
            return Decision("deny", f"`{tool}` is on the deny list", hint=self._hint(request, denied=True))
        if tool in PUBLISHING_TOOLS:
            if any(r.matches_tool(tool) for r in self.allow):
                return Decision("allow", f"`{tool}` is on the allow list")
            if tool in self.remembered_tools:
                return Decision("allow", f"`{tool}` was approved for the rest of this session")
            return Decision(
                "ask",
                f"`{tool}` needs approval in every mode: it publishes outside the workspace and "
                "checkpoints cannot undo it",
                hint=self._hint(request),
            )
        if kind in MODE_ALLOWS[self.mode] or self.mode == "full-auto":
            if self.mode == "full-auto":
                return Decision("allow", "full-auto mode allows everything except publishing")
            return Decision("allow", f"{self.mode} mode allows {KIND_NOUN.get(kind, kind)}")
        if any(r.matches_tool(tool) for r in self.allow):
            return Decision("allow", f"`{tool}` is on the allow list")
        if tool in self.remembered_tools:
            return Decision("allow", f"`{tool}` was approved for the rest of this session")
        does = KIND_DOES.get(kind, f"is a `{kind}` call")
        return Decision("ask", f"{MODE_DOES[self.mode]}; `{tool}` {does}", hint=self._hint(request))

    def _decide_command(self, request: ApprovalRequest, command: str) -> Decision:
        tool = request.tool
        if any(r.matches_tool(tool) for r in self.deny):
            return Decision("deny", f"`{tool}` is on the deny list", hint=self._hint(request, denied=True))
        commands = split_commands(command)
        # denials first: one denied command taints the chain
        for c in commands:
            why = builtin_denial(c)
            if why:
                return Decision("deny", why, hint=self._hint(request, denied=True, builtin=True))
            for rule in self.deny:
                if rule.matches(c, for_deny=True):
                    return Decision(
                        "deny",
                        f"{_code(c.display)} matches the deny list entry `{rule.text}`",
                        hint=self._hint(request, denied=True),
                    )
        tool_allowed = any(r.matches_tool(tool) for r in self.allow) or tool in self.remembered_tools
        asks: list[str] = []
        allowed_by: list[str] = []
        for c in commands:
            verdict = self._judge(c, tool_allowed)
            if verdict[0] == "ask":
                asks.append(verdict[1])
            elif verdict[1]:
                allowed_by.append(verdict[1])
        if asks:
            reason = asks[0] if len(asks) == 1 else f"{asks[0]} (and {len(asks) - 1} more in the chain)"
            return Decision("ask", reason, hint=self._hint(request))
        if allowed_by:
            return Decision("allow", "; ".join(dict.fromkeys(allowed_by)))
        return Decision("allow", "the command changes nothing by itself")

    def _judge(self, c: SimpleCommand, tool_allowed: bool) -> tuple[str, str]:
        """("ask", why) or ("allow", why) for one simple command that no deny rule matched."""
        if c.opaque:
            if c.text in self.remembered_opaque:
                return "allow", "the command was approved for the rest of this session"
            risky = [
                r.words[0]
                for r in self.deny
                if r.words and re.search(rf"\b{re.escape(r.words[0])}\b", c.text)
            ]
            if risky:
                return "ask", (
                    f"the command {_code(c.text)} cannot be checked ({c.opaque}) and may run "
                    f"`{risky[0]}`, which is on the deny list"
                )
            if is_push(c):
                return "ask", f"the command {_code(c.text)} cannot be checked ({c.opaque}) and may push"
            if self.mode == "full-auto" or tool_allowed:
                return "allow", "full-auto mode allows everything except publishing"
            return (
                "ask",
                f"{MODE_DOES[self.mode]}; the command {_code(c.text)} cannot be checked ({c.opaque})",
            )
        if is_harmless(c):
            return "allow", ""
        if c.dynamic:  # `$CMD args`: what runs is only known at run time, so no rule can cover it
            if self.mode == "full-auto" or tool_allowed:
                return "allow", "full-auto mode allows everything except publishing"
            return "ask", f"{MODE_DOES[self.mode]}; {_code(c.display)} runs a command named by an expansion"
        for rule in self.allow:
            if rule.matches(c, for_deny=False):
                return "allow", f"`{rule.text}` is on the allow list"
        for rule in self.remembered:
            if rule.matches(c, for_deny=False):
                return "allow", f"`{rule.text}` was approved for the rest of this session"
        if is_push(c):
            return "ask", (
                f"{_code(c.display)} needs approval in every mode: pushing publishes outside the "
                "workspace and checkpoints cannot undo it"
            )
        if self.mode == "full-auto":
            return "allow", "full-auto mode allows everything except publishing"
        if tool_allowed:
            return "allow", "`execute_bash` is on the allow list"
        return "ask", f"{MODE_DOES[self.mode]}; {_code(c.display)} is a command"

    def _hint(self, request: ApprovalRequest, *, denied: bool = False, builtin: bool = False) -> str:
        if denied and not builtin:
            return (
                "The user's deny list forbids it: do not try to get around it with another tool or "
                "command. Finish what you can without it and say in your final answer what is left."
            )
        if builtin:
            return (
                "Do not try another way to do it. Finish the rest of the task and tell the user in your "
                "final answer what they should run themselves if it is really needed."
            )
        if self.mode == "read-only":
            return (
                "This run may only read: investigate with the read tools and describe the change you "
                "would make (files and edits) in your final answer."
            )
        if request.kind == "command":
            if self.mode == "auto-edit":
                return (
                    "You can still read and edit files and run the tests with `run_tests`; if the "
                    "command is needed, ask the user to run it in your final answer."
                )
            return (
                "Work with the other tools and commands; if this command is needed, ask the user to "
                "run it in your final answer."
            )
        if request.kind == "git":
            return (
                "Leave the repository state (commits, branches) as it is: edit files only, and mention "
                "in your final answer what the user should do with git."
            )
        return "Continue with what is allowed and ask the user in your final answer."


def refusal_message(request: ApprovalRequest, decision_or_answer: Decision | Answer) -> str:
    """The tool result the model gets when a call is refused: what, why, and what to do instead."""
    what = f"`{request.tool}` ({one_line(request.summary, 200)})"
    if isinstance(decision_or_answer, Answer):
        message = (decision_or_answer.message or "").strip()
        if decision_or_answer.by == "policy":
            return f"The call {what} was refused. {message or 'Continue without it.'}"
        if message:
            return (
                f"The user refused the call {what}. Their message: {message}\n"
                "Follow it; do not retry the same call."
            )
        return (
            f"The user refused the call {what}. Do not retry it; continue with another approach, "
            "or explain in your final answer what you need and why."
        )
    reason = decision_or_answer.reason.rstrip(".")
    hint = decision_or_answer.hint or (
        "Do not retry it; continue with another approach, or ask the user in your final answer."
    )
    return f"The call {what} was refused: {reason}.\n{hint}"


def non_interactive_answer(
    request: ApprovalRequest, mode: str | ApprovalPolicy, decision: Decision | None = None
) -> Answer:
    """What a headless run with no terminal answers to "ask": deny, saying that the run is
    non-interactive and the policy needs approval for the call."""
    mode_name = mode.mode if isinstance(mode, ApprovalPolicy) else str(mode)
    why = f" ({decision.reason.rstrip('.')})" if decision is not None and decision.reason else ""
    if mode_name == "read-only":
        instead = "Only reading is possible in this run; describe the changes in your final answer."
    elif request.kind == "command":
        instead = (
            "Continue without it (edit files, run the tests with `run_tests` if allowed); if the "
            "command is needed, say so in your final answer."
        )
    else:
        instead = "Continue without it and say in your final answer what is left for the user to do."
    return Answer(
        decision="deny",
        by="policy",
        message=(
            f"This is a non-interactive run with nobody to approve calls, and the approval policy "
            f"({mode_name} mode) needs approval for {_code(request.summary)}{why}. {instead}"
        ),
    )


# A generic answer for front ends that cannot compute one per request.
NON_INTERACTIVE_ANSWER = Answer(
    decision="deny",
    by="policy",
    message=(
        "This is a non-interactive run with nobody to approve calls, and the approval policy needs "
        "approval for this call. Continue without it and say in your final answer what is left to do."
    ),
)
