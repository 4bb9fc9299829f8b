"""Recovering tool calls that servers leave in the text, and repairing bad tool-call arguments.

Pure functions (stdlib only, no model calls), for the failure modes in research/providers.md §3:

- F1: a server without the right tool parser returns the model's native tool-call syntax in
  `content` (or in the reasoning) with `tool_calls` empty. `recover_tool_calls` parses the four
  syntaxes seen in the wild: Kimi K2 section tokens, Qwen3-Coder XML, Hermes JSON and gpt-oss
  harmony, and accepts only the names of offered tools.
- F2/F5: arguments that are not valid JSON. `repair_arguments` fixes what can be fixed without
  guessing (trailing commas, code fences, invalid escapes, ...) and otherwise says precisely what is
  wrong and where, so the model can resend. Truncated JSON is never completed.
- F4: tool names with XML residue (`str_replace_editor</parameter`). `clean_tool_name` strips it,
  and only ever answers with an offered name.
- `text_protocol_instructions` is the system-prompt section for a text-only tool protocol (Hermes
  blocks), for models whose native tool calling keeps failing.
"""

from __future__ import annotations

import bisect
import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.llm.types import ToolCall

__all__ = [
    "Recovered",
    "Repair",
    "clean_tool_name",
    "recover_tool_calls",
    "repair_arguments",
    "text_protocol_instructions",
]


@dataclass
class Recovered:
    calls: list[ToolCall] = field(default_factory=list)
    text: str = ""  # the input without the recognised tool-call blocks; unchanged when nothing was found
    format: str | None = None  # "kimi" | "qwen_xml" | "hermes" | "harmony"
    rejected: list[str] = field(default_factory=list)  # why blocks that looked like calls were refused
    reasoning: str = ""  # harmony analysis-channel text, which is taken out of `text`


@dataclass
class Repair:
    arguments: str | None  # JSON object text, or None when it cannot be used
    repaired: bool = False
    note: str | None = None  # what was changed, for logs
    error: str | None = None  # what is wrong and where, for the model


# --------------------------------------------------------------------------------------------
# Tool names


def clean_tool_name(name: str, offered: Iterable[str]) -> str | None:
    """The offered tool `name` stands for, after stripping markup residue; None when there is none.

    Handles `read_file</function>`, `str_replace_editor</parameter`, `str_replace </parameter`,
    `command=str_replace</parameter`, `"read_file"`, `functions.read_file`, `functions.read_file:3`
    (a Kimi id), `<function=read_file>`, trailing `>` and whitespace. An exact match wins; otherwise
    a case-insensitive match is accepted only when exactly one offered name fits.
    """
    if not isinstance(name, str):
        return None
    offered_list = [o for o in offered if isinstance(o, str)]
    offered_set = set(offered_list)
    if name in offered_set:
        return name
    candidates = _name_candidates(name)
    for cand in candidates:
        if cand in offered_set:
            return cand
    by_lower: dict[str, list[str]] = {}
    for o in offered_list:
        by_lower.setdefault(o.lower(), []).append(o)
    for cand in candidates:
        hits = by_lower.get(cand.lower())
        if hits and len(hits) == 1:
            return hits[0]
    return None


_QUOTES = "`'\""


def _name_candidates(name: str) -> list[str]:
    out: list[str] = []

    def add(s: str) -> None:
        if s and s not in out:
            out.append(s)

    s = name.strip().strip(_QUOTES).strip()
    add(s)
    if s.startswith("<"):  # "<function=read_file>", "</read_file>"
        s = s.lstrip("</").strip()
    if "<" in s:  # "read_file</function>", "str_replace </parameter"
        s = s.split("<", 1)[0]
    s = s.strip().rstrip(">/").strip().strip(_QUOTES).strip()
    add(s)
    if "=" in s:  # "command=str_replace", "function=read_file", "name=\"x\""
        s = s.rsplit("=", 1)[1].strip().strip(_QUOTES).strip()
        add(s)
    s = re.sub(r":\d+$", "", s)  # Kimi ids: "functions.read_file:3"
    s = re.sub(r"\(\s*\)$", "", s).strip()  # "read_file()"
    add(s)
    namespace, dot, rest = s.partition(".")
    if dot and namespace in ("functions", "default_api"):  # not `browser.search`: a different tool
        s = rest
        add(s)
    return out


def _unknown_tool(raw: str, where: str, offered: Iterable[str]) -> str:
    names = ", ".join(sorted(offered)) or "(none)"
    return f"unknown tool {raw.strip()!r} in {where}; the offered tools are: {names}"


# --------------------------------------------------------------------------------------------
# Recovering calls from text

_KIMI_START = re.compile(r"<\|tool_calls?_section_begin\|>|<\|tool_call_begin\|>")
_KIMI_SECTION_END = re.compile(r"<\|tool_calls?_section_end\|>")
_KIMI_CALL_BEGIN = "<|tool_call_begin|>"
_KIMI_ARG_BEGIN = "<|tool_call_argument_begin|>"
_KIMI_CALL_END = "<|tool_call_end|>"

_HARMONY_HEAD = re.compile(
    r"(?:<\|start\|>(?P<role>[^<]{0,200}?))?<\|channel\|>(?P<header>[^<]{0,300}?)"
    r"(?:<\|constrain\|>(?P<constrain>[^<]{0,100}?))?<\|message\|>"
)
_HARMONY_BODY_END = re.compile(r"<\|(?:end|call|return|start|channel)\|>")
_HARMONY_STRAY = re.compile(r"<\|start\|>(?:assistant)?|<\|end\|>|<\|return\|>|<\|call\|>")
_HARMONY_TO = re.compile(r"\bto=([^\s<]+)")

_TC_OPEN = re.compile(r"<tool_call\s*>")
_TC_CLOSE = "</tool_call>"
_FN_END_TC = re.compile(r"</function>\s*</tool_call\s*>")
_FN_OPEN = re.compile(r"<function\s*=\s*([^>\n]*)>?")
_FN_CLOSE = "</function>"
_PARAM_OPEN = re.compile(r"<parameter\s*=\s*([^>\n]*)>?")
_PARAM_CLOSE = "</parameter>"
_FENCE_OPEN_INSIDE = re.compile(r"\s*```[\w.+-]*[ \t]*\r?\n")
_FENCE_BEFORE = re.compile(r"```[\w.+-]*[ \t]*\r?\n[ \t\r\n]*\Z")
_FENCE_AFTER = re.compile(r"[ \t\r\n]*```[ \t]*(?=\r?\n|\Z)")
_HERMES_TAIL = re.compile(r"\s*(?:```[ \t]*)?\s*(?:</tool_call\s*>)?")
_JSON_NAME = re.compile(r'"name"\s*:\s*"([^"\\]{1,200})"')


@dataclass
class _Span:
    start: int
    end: int
    fmt: str = ""
    replacement: str = ""


@dataclass
class _Found:
    pos: int
    fmt: str
    call: ToolCall | None = None
    rejected: str | None = None


class _Recovery:
    def __init__(self, text: str, tools: dict[str, dict[str, Any]]):
        self.text = text
        self.tools = tools
        self.spans: list[_Span] = []
        self.found: list[_Found] = []
        self.reasoning: list[str] = []
        self.harmony = False
        self._ids: set[str] = set()
        self._starts: list[int] = []

    # -- bookkeeping

    def covered(self, pos: int) -> bool:
        k = bisect.bisect_right(self._starts, pos) - 1
        return k >= 0 and pos < self.spans[k].end

    def add_span(self, start: int, end: int, fmt: str, replacement: str = "") -> None:
        """Record a piece of text to take out (or replace by `replacement`). Spans never overlap: a
        new one is cut where the next recorded one starts."""
        k = bisect.bisect_right(self._starts, start)
        if k < len(self.spans):
            end = min(end, self.spans[k].start)
        if end <= start or self.covered(start):
            return
        self._starts.insert(k, start)
        self.spans.insert(k, _Span(start, end, fmt, replacement))

    def new_id(self) -> str:
        while True:
            cid = f"call_{uuid.uuid4().hex[:8]}"
            if cid not in self._ids:
                self._ids.add(cid)
                return cid

    def accept(self, pos: int, fmt: str, cid: str | None, raw_name: str, arguments: str, where: str) -> None:
        name = clean_tool_name(raw_name, self.tools)
        if name is None:
            self.found.append(_Found(pos, fmt, rejected=_unknown_tool(raw_name, where, self.tools)))
            return
        self.found.append(
            _Found(pos, fmt, call=ToolCall(id=cid or self.new_id(), name=name, arguments=arguments))
        )

    def reject(self, pos: int, fmt: str, reason: str) -> None:
        self.found.append(_Found(pos, fmt, rejected=reason))

    # -- Kimi K2 section tokens

    def kimi(self) -> None:
        text = self.text
        section_ends = list(_KIMI_SECTION_END.finditer(text))
        end_starts = [m.start() for m in section_ends]
        call_ends = [m.start() for m in re.finditer(re.escape(_KIMI_CALL_END), text)]
        call_begins = [m.start() for m in re.finditer(re.escape(_KIMI_CALL_BEGIN), text)]

        def section_end_after(pos: int) -> re.Match[str] | None:
            k = bisect.bisect_left(end_starts, pos)
            return section_ends[k] if k < len(section_ends) else None

        def first_at_or_after(positions: list[int], pos: int) -> int:
            k = bisect.bisect_left(positions, pos)
            return positions[k] if k < len(positions) else -1

        pos = 0
        while True:
            m = _KIMI_START.search(text, pos)
            if m is None:
                return
            if m.group(0) == _KIMI_CALL_BEGIN:  # a call without its section tokens
                stop = first_at_or_after(call_ends, m.end())
                stop = len(text) if stop < 0 else stop + len(_KIMI_CALL_END)
                nxt = first_at_or_after(call_begins, m.end())
                if 0 <= nxt < stop:
                    stop = nxt
                end_m = section_end_after(m.end())
                if end_m and end_m.start() <= stop:
                    stop = end_m.end()
                self._kimi_calls(m.start(), text[m.start() : stop])
                self.add_span(m.start(), stop, "kimi")
                pos = stop
                continue
            end_m = section_end_after(m.end())
            body_end = end_m.start() if end_m else len(text)
            stop = end_m.end() if end_m else len(text)
            if end_m is None:  # no section end: the section stops after its last complete call
                last_end = text.rfind(_KIMI_CALL_END, m.end())
                if last_end >= 0 and text.rfind(_KIMI_CALL_BEGIN, m.end()) < last_end:
                    body_end = stop = last_end + len(_KIMI_CALL_END)
            body = text[m.end() : body_end]
            if _KIMI_CALL_BEGIN not in body:
                if body.strip():
                    self.reject(m.start(), "kimi", "a Kimi tool-call section holds no <|tool_call_begin|>")
            else:
                self._kimi_calls(m.end(), body)
            self.add_span(m.start(), stop, "kimi")
            pos = stop

    def _kimi_calls(self, offset: int, body: str) -> None:
        pieces = body.split(_KIMI_CALL_BEGIN)
        at = offset + len(pieces[0])
        for piece in pieces[1:]:
            call_pos = at
            at += len(_KIMI_CALL_BEGIN) + len(piece)
            end = piece.find(_KIMI_CALL_END)
            if end >= 0:
                piece = piece[:end]
            head, sep, args = piece.partition(_KIMI_ARG_BEGIN)
            cid = head.strip()
            if not sep:
                shown = cid[:80] or "(empty)"
                self.reject(
                    call_pos,
                    "kimi",
                    f"a Kimi tool call {shown!r} has no <|tool_call_argument_begin|>, so its name and "
                    "arguments cannot be told apart",
                )
                continue
            if not cid:
                self.reject(
                    call_pos, "kimi", "a Kimi tool call has an empty id (expected functions.NAME:INDEX)"
                )
                continue
            self.accept(call_pos, "kimi", cid, cid, args.strip(), "a Kimi tool-call section")

    # -- gpt-oss harmony

    def harmony_messages(self) -> None:
        text = self.text
        pos = 0
        while True:
            m = _HARMONY_HEAD.search(text, pos)
            if m is None:
                break
            if self.covered(m.start()):
                pos = m.end()
                continue
            self.harmony = True
            body_start = m.end()
            e = _HARMONY_BODY_END.search(text, body_start)
            if e is None:
                body_end = stop = len(text)
            elif e.group(0) in ("<|start|>", "<|channel|>"):
                body_end = stop = e.start()
            else:
                body_end, stop = e.start(), e.end()
            body = text[body_start:body_end]
            role = m.group("role") or ""
            header = m.group("header") or ""
            words = header.split()
            channel = words[0] if words else ""
            to = _HARMONY_TO.search(role + " " + header)
            if to:
                self.accept(
                    m.start(),
                    "harmony",
                    None,
                    to.group(1),
                    body.strip(),
                    f"a harmony message to={to.group(1)}",
                )
                self.add_span(m.start(), stop, "harmony")
            elif channel == "analysis":
                if body.strip():
                    self.reasoning.append(body.strip())
                self.add_span(m.start(), stop, "harmony")
            else:  # final, or commentary without a recipient (a preamble): the body is the text
                self.add_span(m.start(), stop, "harmony", replacement=body)
            pos = max(stop, m.end())
        if self.harmony:
            for s in _HARMONY_STRAY.finditer(text):
                self.add_span(s.start(), s.end(), "harmony")

    # -- <tool_call> blocks: Qwen3-Coder XML or Hermes JSON

    def tool_call_blocks(self) -> None:
        text = self.text
        opens = [m for m in _TC_OPEN.finditer(text) if not self.covered(m.start())]
        for k, m in enumerate(opens):
            if self.covered(m.start()):
                continue
            start = m.start()
            if start > 0 and text[start - 1] == "`" and text[max(0, start - 3) : start] != "```":
                continue  # `<tool_call>` quoted inline in prose
            region_end = opens[k + 1].start() if k + 1 < len(opens) else len(text)
            inner = m.end()
            fence = _FENCE_OPEN_INSIDE.match(text, inner)
            if fence and fence.end() <= region_end:
                inner = fence.end()
            lead = _skip_ws(text, inner, region_end)
            if text.startswith("<function", lead):
                self._qwen_block(start, lead, region_end)
            elif lead < region_end and text[lead] in "{[":
                self._hermes_block(start, lead, region_end)
            # anything else is prose that mentions <tool_call>: left alone

    def _qwen_block(self, start: int, fn_start: int, region_end: int) -> None:
        text = self.text
        m = _FN_END_TC.search(text, fn_start, region_end)
        if m:
            body_end, stop = m.start(), m.end()
        else:
            close = text.find(_TC_CLOSE, fn_start, region_end)
            if close >= 0:
                body_end, stop = close, close + len(_TC_CLOSE)
                fn_close = text.rfind(_FN_CLOSE, fn_start, close)
                if fn_close >= 0 and not text[fn_close + len(_FN_CLOSE) : close].strip():
                    body_end = fn_close
            else:
                fn_close = text.rfind(_FN_CLOSE, fn_start, region_end)
                if fn_close >= 0:
                    body_end, stop = fn_close, fn_close + len(_FN_CLOSE)
                else:
                    body_end = stop = region_end
        self._qwen_function(start, text[fn_start:body_end])
        self.add_span(start, stop, "qwen_xml")

    def bare_functions(self) -> None:
        """Qwen XML `<function=...>` blocks whose `<tool_call>` wrapper is missing."""
        text = self.text
        opens = [m for m in _FN_OPEN.finditer(text) if not self.covered(m.start())]
        for k, m in enumerate(opens):
            if self.covered(m.start()):
                continue
            start = m.start()
            if start > 0 and text[start - 1] == "`" and text[max(0, start - 3) : start] != "```":
                continue
            region_end = opens[k + 1].start() if k + 1 < len(opens) else len(text)
            fn_close = text.find(_FN_CLOSE, m.end(), region_end)
            has_param = _PARAM_OPEN.search(text, m.end(), region_end) is not None
            if fn_close < 0 and not has_param:
                continue  # prose mentioning <function=...>
            if fn_close >= 0:
                body_end, stop = fn_close, fn_close + len(_FN_CLOSE)
            else:
                body_end = stop = region_end
            self._qwen_function(start, text[start:body_end])
            self.add_span(start, stop, "qwen_xml")

    def _qwen_function(self, pos: int, body: str) -> None:
        m = _FN_OPEN.match(body)
        if m is None:
            self.reject(pos, "qwen_xml", "a <tool_call> block without <function=NAME>")
            return
        raw_name = m.group(1)
        name = clean_tool_name(raw_name, self.tools)
        if name is None:
            self.reject(pos, "qwen_xml", _unknown_tool(raw_name, "a <function=...> block", self.tools))
            return
        schema = self.tools.get(name) or {}
        rest = body[m.end() :]
        if _PARAM_OPEN.search(rest) is None and rest.strip()[:1] == "{":
            # `<function=x>{"a": 1}</function>`: JSON arguments instead of parameters
            self.found.append(_Found(pos, "qwen_xml", call=ToolCall(self.new_id(), name, rest.strip())))
            return
        args: dict[str, Any] = {}
        props = schema.get("properties") if isinstance(schema, dict) else None
        props = props if isinstance(props, dict) else {}
        for key, raw in _qwen_params(rest):
            key = _clean_param_name(key, props)
            args[key] = _xml_value(raw, props.get(key))
        arguments = json.dumps(args, ensure_ascii=False)
        self.found.append(_Found(pos, "qwen_xml", call=ToolCall(self.new_id(), name, arguments)))

    def _hermes_block(self, start: int, json_start: int, region_end: int) -> None:
        text = self.text
        parsed = _loads_lenient(text[json_start:region_end])
        stop: int
        if parsed.error is None:
            after = json_start + parsed.end
            tail = _HERMES_TAIL.match(text, after, region_end)
            stop = tail.end() if tail else after
            value = parsed.value
        else:
            close = text.find(_TC_CLOSE, json_start, region_end)
            content_end = close if close >= 0 else region_end
            stop = close + len(_TC_CLOSE) if close >= 0 else region_end
            content = text[json_start:content_end].rstrip()
            if content.endswith("```"):
                content = content[:-3]
            parsed = _loads_lenient(content)
            value = parsed.value
            if parsed.error is not None:
                nm = _JSON_NAME.search(content)
                what = f"the <tool_call> block for {nm.group(1)!r}" if nm else "a <tool_call> block"
                self.reject(start, "hermes", f"{what} is not valid JSON: {parsed.error}")
                self.add_span(start, stop, "hermes")
                return
        items = value if isinstance(value, list) else [value]
        for item in items:
            self._hermes_call(start, item)
        self.add_span(start, stop, "hermes")

    def _hermes_call(self, pos: int, item: Any) -> None:
        if not isinstance(item, dict):
            self.reject(
                pos, "hermes", 'a <tool_call> block that is not a JSON object {"name": ..., "arguments": ...}'
            )
            return
        if isinstance(item.get("function"), dict):  # OpenAI shape {"type": "function", "function": {...}}
            item = item["function"]
        raw_name = item.get("name")
        if not isinstance(raw_name, str) and isinstance(item.get("function"), str):
            raw_name = item["function"]
        if not isinstance(raw_name, str) or not raw_name.strip():
            self.reject(pos, "hermes", 'a <tool_call> block without a "name"')
            return
        args: Any = None
        for key in ("arguments", "parameters"):
            if key in item:
                args = item[key]
                break
        if args is None:
            arguments = "{}"
        elif isinstance(args, str):
            arguments = args  # JSON text already; the caller's repair_arguments checks it
        else:
            arguments = json.dumps(args, ensure_ascii=False)
        self.accept(pos, "hermes", None, raw_name, arguments, "a <tool_call> block")

    # -- result

    def result(self) -> Recovered:
        if not self.spans:
            return Recovered(text=self.text)
        found = sorted(self.found, key=lambda f: f.pos)
        calls = [f.call for f in found if f.call is not None]
        rejected = [f.rejected for f in found if f.rejected is not None]
        fmt = next((f.fmt for f in found if f.call is not None), None)
        if fmt is None:
            fmt = found[0].fmt if found else self.spans[0].fmt
        return Recovered(
            calls=calls,
            text=self._text_without_spans(),
            format=fmt,
            rejected=rejected,
            reasoning="\n\n".join(self.reasoning),
        )

    def _text_without_spans(self) -> str:
        text = self.text
        merged: list[_Span] = []
        for s in self.spans:
            last = merged[-1] if merged else None
            if (
                last is not None
                and not last.replacement
                and not s.replacement
                and not text[last.end : s.start].strip()
            ):
                last.end = s.end
                continue
            merged.append(_Span(s.start, s.end, s.fmt, s.replacement))
        # blocks wrapped in a code fence of their own: drop the fence too
        for s in merged:
            if s.replacement:
                continue
            window_start = max(0, s.start - 80)
            before = _FENCE_BEFORE.search(text, window_start, s.start)
            after = _FENCE_AFTER.match(text, s.end)
            if before and after:
                fence_at = before.start()
                line_start = text.rfind("\n", 0, fence_at) + 1
                if not text[line_start:fence_at].strip():
                    s.start, s.end = fence_at, after.end()
        parts: list[str] = []
        pos = 0
        for s in merged:
            if s.end <= pos:
                continue
            parts.append(text[pos : max(s.start, pos)])
            parts.append(s.replacement)
            pos = s.end
        parts.append(text[pos:])
        return _join(parts)


def _skip_ws(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos


def _join(parts: list[str]) -> str:
    """Glue kept pieces, tidying only the whitespace where something was taken out."""
    out: list[str] = []
    gap: list[str] = []  # the whitespace pieces between two kept cores
    for p in parts:
        core = p.strip()
        if not core:
            gap.append(p)
            continue
        lead = p[: len(p) - len(p.lstrip())]
        gap.append(lead)
        if not out:  # the very start: drop blank lines, keep the first line's indentation
            out.append(lead.rsplit("\n", 1)[-1])
        else:
            newlines = max(g.count("\n") for g in gap)
            out.append("\n\n" if newlines >= 2 else "\n" if newlines == 1 or not "".join(gap) else " ")
        out.append(core)
        gap = [p[len(p.rstrip()) :]]
    return "".join(out)


def _qwen_params(body: str) -> list[tuple[str, str]]:
    """(key, raw value) pairs; a value ends at `</parameter>` or, when that is missing, at the next
    `<parameter=` or the end of the function body."""
    out: list[tuple[str, str]] = []
    pos = 0
    while True:
        m = _PARAM_OPEN.search(body, pos)
        if m is None:
            return out
        value_start = m.end()
        close = body.find(_PARAM_CLOSE, value_start)
        nxt = _PARAM_OPEN.search(body, value_start)
        ends = [e for e in (close, nxt.start() if nxt else -1) if e >= 0]
        value_end = min(ends) if ends else len(body)
        out.append((m.group(1), body[value_start:value_end]))
        pos = value_end + len(_PARAM_CLOSE) if value_end == close else value_end
        if pos <= m.start():
            pos = m.end()


def _clean_param_name(key: str, props: dict[str, Any]) -> str:
    if key in props:
        return key
    k = key.strip().strip(_QUOTES).strip()
    if "<" in k:
        k = k.split("<", 1)[0]
    k = k.strip().rstrip(">/").strip().strip(_QUOTES).strip()
    return k or key.strip()


def _schema_types(prop: Any) -> set[str]:
    if not isinstance(prop, dict):
        return set()
    t = prop.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    types: set[str] = set()
    for key in ("anyOf", "oneOf", "allOf"):
        subs = prop.get(key)
        if isinstance(subs, list):
            for sub in subs:
                types |= _schema_types(sub)
    if not types and isinstance(prop.get("enum"), list):
        for v in prop["enum"]:
            if isinstance(v, bool):
                types.add("boolean")
            elif isinstance(v, int):
                types.add("integer")
            elif isinstance(v, float):
                types.add("number")
            elif isinstance(v, str):
                types.add("string")
    return types


_INT = re.compile(r"[+-]?[0-9]+(?:\.0*)?")
_NUM = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _xml_value(raw: str, prop: Any) -> Any:
    """A Qwen XML parameter value: raw text, converted using the property's schema type."""
    value = re.sub(r"\A[ \t]*\r?\n", "", raw, count=1)
    value = re.sub(r"\r?\n[ \t]*\Z", "", value, count=1)
    if "\n" not in raw:  # inline, e.g. `<parameter=pattern> **/package.json   </tool_call>`
        value = value.strip()
    types = _schema_types(prop)
    if not types or "string" in types:
        return value
    converted = _convert_scalar(value.strip(), types)
    return value if converted is _NO else converted


_NO = object()


def _convert_scalar(s: str, types: set[str]) -> Any:
    if "integer" in types and _INT.fullmatch(s):
        return int(s.split(".", 1)[0])
    if "number" in types and _NUM.fullmatch(s):
        if re.fullmatch(r"[+-]?\d+", s):
            return int(s)
        number = float(s)
        if math.isfinite(number):
            return number
    if "boolean" in types and s.lower() in ("true", "false"):
        return s.lower() == "true"
    if types & {"object", "array"} and s[:1] in "{[":
        parsed = _loads_lenient(s)
        if parsed.error is None and parsed.end >= len(s.rstrip()):
            v = parsed.value
            if (isinstance(v, dict) and "object" in types) or (isinstance(v, list) and "array" in types):
                return v
    if "null" in types and s in ("null", "None"):
        return None
    return _NO


def recover_tool_calls(text: str, tools: dict[str, dict[str, Any]]) -> Recovered:
    """Tool calls written into `text` by a model whose server did not parse them.

    `tools` maps every offered tool name to its JSON-schema `parameters`. Recognised blocks are taken
    out of the text whether their call is accepted or not; refused ones are explained in `rejected`.
    Kimi ids are kept verbatim; other calls get fresh `call_<8 hex>` ids. Arguments are the model's
    JSON text (Qwen XML parameters are converted to JSON by schema): run `repair_arguments` on them.
    """
    if not isinstance(text, str) or not text:
        return Recovered(text=text if isinstance(text, str) else "")
    tools = tools or {}
    try:
        rec = _Recovery(text, tools)
        if "<|tool_call" in text:
            rec.kimi()
        if "<|channel|>" in text:
            rec.harmony_messages()
        if "<tool_call" in text:
            rec.tool_call_blocks()
        if "<function" in text:
            rec.bare_functions()
        return rec.result()
    except Exception as exc:  # a parser bug must never take the agent down
        return Recovered(text=text, rejected=[f"internal error while looking for tool calls: {exc!r}"])


# --------------------------------------------------------------------------------------------
# Repairing arguments


@dataclass
class _Lenient:
    value: Any = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    end: int = 0  # index in the input just after the first JSON value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_STRICT = json.JSONDecoder(parse_constant=_no_constant)
_FENCED = re.compile(r"\A\s*```[\w.+-]*[ \t]*\r?\n?(.*?)(?:\r?\n?[ \t]*```\s*)?\Z", re.S)


def _loads_lenient(s: str) -> _Lenient:
    """Parse one JSON value of any type, applying only the safe repairs."""
    try:
        value, end = _STRICT.raw_decode(s, _skip_ws(s, 0, len(s)))
        rest = s[end:]
        if not rest.strip():
            return _Lenient(value=value, end=end)
        at = end + len(rest) - len(rest.lstrip())
        note = f"ignored extra data after the first JSON value (from character {at}: {_snippet(rest)})"
        return _Lenient(value=value, notes=[note], end=end)
    except (ValueError, RecursionError):
        pass
    notes: list[str] = []
    base = 0
    m = _FENCED.match(s) if s.lstrip().startswith("```") else None
    if m:
        base = m.start(1)
        notes.append("removed the markdown code fence around the JSON")
        body = m.group(1)
    else:
        body = s
    if not body.strip():
        return _Lenient(error="there is no JSON value (the text is empty)", end=len(s))
    scan = _Scanner(body).run()
    if scan.error:
        return _Lenient(error=scan.error, notes=notes, end=base + scan.end)
    notes.extend(scan.notes)
    try:
        value = _STRICT.decode(scan.text)
    except ValueError as exc:
        pos = getattr(exc, "pos", None)
        msg = getattr(exc, "msg", str(exc))
        if isinstance(pos, int):
            orig = scan.origin[pos] if pos < len(scan.origin) else len(body)
            return _Lenient(
                error=f"invalid JSON at character {base + orig}: {msg} ({_near(body, orig)})", notes=notes
            )
        return _Lenient(error=f"invalid JSON: {msg}", notes=notes)
    except RecursionError:
        return _Lenient(error="the JSON is nested too deeply", notes=notes)
    if scan.extra_at is not None:
        notes.append(
            f"ignored extra data after the first JSON value (from character {base + scan.extra_at}: "
            f"{_snippet(body[scan.extra_at :])})"
        )
    return _Lenient(value=value, notes=notes, end=base + scan.end)


_CONTROL_CHARS = re.compile(r"[\x00-\x1f`]")


def _show(s: str) -> str:
    """`s` between backticks, with control characters (and backticks) escaped to stay on one line."""
    return (
        "`"
        + _CONTROL_CHARS.sub(lambda m: json.dumps(m.group(0))[1:-1] if m.group(0) != "`" else "\\`", s)
        + "`"
    )


def _snippet(s: str, limit: int = 30) -> str:
    s = s.strip()
    return _show(s[:limit] + ("…" if len(s) > limit else ""))


def _near(s: str, pos: int) -> str:
    lo = max(0, pos - 15)
    return f"near {_show(s[lo : pos + 15])}"


_STR_SPECIAL = re.compile(r'["\\\x00-\x1f]')
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_NUMBER = re.compile(r"-?[0-9]*(?:\.[0-9]*)?(?:[eE][+-]?[0-9]*)?")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_WS = re.compile(r"[ \t\r\n]+")
_CTRL = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f"}
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_JSON_LITERALS = ("true", "false", "null")
_OPENERS = {"{": "}", "[": "]"}
_KIND = {"{": "the object", "[": "the array"}


class _Scanner:
    """One pass over JSON-ish text: applies the safe repairs and finds the fatal problems.

    Output characters keep the index of the input character they came from (`origin`), so errors
    found later by `json` are reported at positions in the text the model wrote.
    """

    def __init__(self, s: str):
        self.s = s
        self.out: list[str] = []
        self.origin: list[int] = []
        self.length = 0
        self.notes: list[str] = []
        self.error: str | None = None
        self.end = len(s)
        self.extra_at: int | None = None
        self.text = ""
        self._bad_escapes: list[str] = []
        self._controls = 0
        self._trailing_commas = 0
        self._py: list[str] = []

    def emit(self, chunk: str, at: int) -> None:
        self.out.append(chunk)
        self.origin.extend([at] * len(chunk))
        self.length += len(chunk)

    def copy(self, a: int, b: int) -> None:
        self.out.append(self.s[a:b])
        self.origin.extend(range(a, b))
        self.length += b - a

    def run(self) -> _Scanner:
        s, n = self.s, len(self.s)
        stack: list[tuple[str, int]] = []
        pending_comma: int | None = None  # output index of a comma followed only by whitespace
        deletions: list[int] = []
        after_string: int | None = None  # input index where the last string closed
        done = False
        i = 0
        while i < n:
            c = s[i]
            if c in " \t\r\n":
                j = _WS.match(s, i).end()  # type: ignore[union-attr]
                self.copy(i, j)
                i = j
                continue
            if done:
                self.end = i
                self.extra_at = i
                break
            prev_string, after_string = after_string, None
            if c == '"':
                j = self._string(i)
                if j < 0:
                    return self
                i = j
                after_string = i
                pending_comma = None
                done = not stack
                continue
            if c in _OPENERS:
                stack.append((c, i))
                self.emit(c, i)
                pending_comma = None
            elif c in "}]":
                if not stack:
                    self.error = f"unexpected {c!r} at character {i}: nothing is open there ({_near(s, i)})"
                    self.end = i
                    return self
                opener, at = stack[-1]
                if _OPENERS[opener] != c:
                    self.error = (
                        f"{c!r} at character {i} does not match the {opener!r} opened at character {at} "
                        f"({_near(s, i)})"
                    )
                    self.end = i
                    return self
                if pending_comma is not None:
                    deletions.append(pending_comma)
                    self._trailing_commas += 1
                    pending_comma = None
                stack.pop()
                self.emit(c, i)
                done = not stack
            elif c == ",":
                pending_comma = self.length
                self.emit(c, i)
            elif c == ":":
                pending_comma = None
                self.emit(c, i)
            elif c == "-" or "0" <= c <= "9":
                j = _NUMBER.match(s, i).end() or i + 1  # type: ignore[union-attr]
                self.copy(i, j)
                i = j
                pending_comma = None
                done = not stack
                continue
            elif c == "'":
                self.error = (
                    f"a single-quoted string at character {i}: JSON needs double quotes around keys and "
                    f"strings ({_near(s, i)})"
                )
                self.end = i
                return self
            else:
                m = _IDENT.match(s, i)
                if m is None:
                    hint = "; a string value must be in double quotes" if not stack or c.isalnum() else ""
                    self.error = f"unexpected character {c!r} at character {i}{hint} ({_near(s, i)})"
                    self.end = i
                    return self
                word = m.group(0)
                if word in _JSON_LITERALS:
                    self.copy(i, m.end())
                elif word in _PY_LITERALS:
                    self.emit(_PY_LITERALS[word], i)
                    self._py.append(word)
                elif word in ("NaN", "Infinity"):
                    self.error = (
                        f"{word} at character {i} is not valid JSON; write a number, or null ({_near(s, i)})"
                    )
                    self.end = i
                    return self
                elif m.end() == n and any(lit.startswith(word) for lit in (*_JSON_LITERALS, *_PY_LITERALS)):
                    self.error = (
                        f"the JSON is cut off at character {n}, inside the value {word!r}; send the complete "
                        "arguments"
                    )
                    return self
                else:
                    hint = (
                        "; is there an unescaped double quote in the string before it?"
                        if prev_string is not None
                        else "; keys and string values must be in double quotes"
                    )
                    self.error = f"unquoted text {word!r} at character {i}{hint} ({_near(s, i)})"
                    self.end = i
                    return self
                i = m.end()
                pending_comma = None
                done = not stack
                continue
            i += 1
        else:
            self.end = n
        if stack and not done:
            closers = "".join(_OPENERS[o] for o, _ in reversed(stack))
            opened = " and ".join(f"{_KIND[o]} opened at character {at}" for o, at in reversed(stack))
            self.error = (
                f"the JSON is cut off at character {n}: missing {closers!r} to close {opened}; "
                "send the complete arguments"
            )
            return self
        text = "".join(self.out)
        if deletions:
            keep = sorted(set(deletions))
            chars = list(text)
            for d in reversed(keep):
                del chars[d]
                del self.origin[d]
            text = "".join(chars)
        self.text = text
        if self._trailing_commas:
            self.notes.append(
                "removed a trailing comma" if self._trailing_commas == 1 else "removed trailing commas"
            )
        if self._bad_escapes:
            shown = " ".join(dict.fromkeys(self._bad_escapes))
            self.notes.append(f"escaped the backslash of invalid escape sequences ({shown})")
        if self._controls:
            self.notes.append("escaped raw control characters (newlines/tabs) inside strings")
        if self._py:
            shown = ", ".join(dict.fromkeys(self._py))
            self.notes.append(f"replaced Python literals ({shown}) with JSON ones")
        return self

    def _string(self, start: int) -> int:
        """Copy the string opening at `start`; the index after its closing quote, or -1 on error."""
        s, n = self.s, len(self.s)
        self.emit('"', start)
        i = start + 1
        while True:
            m = _STR_SPECIAL.search(s, i)
            if m is None:
                self.error = (
                    f"the JSON is cut off: an unclosed string starts at character {start} "
                    f"({_snippet(s[start + 1 :], 20)}); send the complete arguments"
                )
                self.end = n
                return -1
            j = m.start()
            self.copy(i, j)
            ch = s[j]
            if ch == '"':
                self.emit('"', j)
                return j + 1
            if ch == "\\":
                if j + 1 >= n:
                    i = n
                    continue
                nx = s[j + 1]
                if nx in '"\\/bfnrt':
                    self.copy(j, j + 2)
                    i = j + 2
                elif nx == "u" and _HEX4.match(s, j + 2):
                    self.copy(j, j + 6)
                    i = j + 6
                else:
                    self.emit("\\\\", j)
                    self._bad_escapes.append("\\" + nx if nx.isprintable() else "\\" + repr(nx)[1:-1])
                    i = j + 1
                continue
            self.emit(_CTRL.get(ch, f"\\u{ord(ch):04x}"), j)
            self._controls += 1
            i = j + 1


def repair_arguments(raw: str, schema: dict[str, Any] | None = None) -> Repair:
    """Make `raw` usable as tool-call arguments, or explain precisely why it is not.

    Safe repairs only: empty → `{}`, code fences, trailing commas, extra data after one complete
    object (kept: the first), a double-encoded object, invalid backslash escapes, raw control
    characters in strings, Python `True`/`False`/`None`. Truncated JSON, non-object values and
    unquoted text are errors. With `schema`, top-level values are coerced to the declared types
    where that is unambiguous; keys are never dropped or added.
    """
    notes: list[str] = []
    if isinstance(raw, dict):  # Ollama's native API sends an object
        obj: Any = raw
        notes.append("the arguments were an object, not JSON text")
    elif not isinstance(raw, str):
        return Repair(None, error=f"the arguments must be JSON object text, got {type(raw).__name__}")
    elif not raw.strip():
        return _finish({}, schema, ["empty arguments were read as {}"], None)
    else:
        try:
            obj = _STRICT.decode(raw)
        except (ValueError, RecursionError):
            parsed = _loads_lenient(raw)
            if parsed.error is not None:
                return Repair(None, error=parsed.error)
            obj = parsed.value
            notes.extend(parsed.notes)
    for _ in range(2):
        if not isinstance(obj, str):
            break
        inner = _loads_lenient(obj) if obj.strip() else _Lenient(value={})
        if inner.error is not None or not isinstance(inner.value, dict | str):
            return Repair(
                None,
                error='the arguments must be a JSON object like {"key": "value"}, but they are a JSON string'
                + (f" whose content is not valid JSON ({inner.error})" if inner.error else ""),
            )
        obj = inner.value
        notes.append("decoded a JSON string that held the arguments object (double-encoded)")
        notes.extend(inner.notes)
    if obj is None:
        obj = {}
        notes.append("null arguments were read as {}")
    if not isinstance(obj, dict):
        kind = {list: "an array", bool: "a boolean", int: "a number", float: "a number"}.get(
            type(obj), "not an object"
        )
        return Repair(
            None, error=f'the arguments must be a JSON object like {{"key": "value"}}, but they are {kind}'
        )
    return _finish(obj, schema, notes, raw if isinstance(raw, str) and not notes else None)


def _finish(
    obj: dict[str, Any], schema: dict[str, Any] | None, notes: list[str], unchanged: str | None
) -> Repair:
    notes = notes + _coerce(obj, schema)
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return Repair(
            None, error="a number in the arguments is out of range (infinite); send a finite number"
        )
    if not notes and unchanged is not None:
        return Repair(unchanged)
    return Repair(text, repaired=True, note="; ".join(notes) or None)


def _coerce(obj: dict[str, Any], schema: dict[str, Any] | None) -> list[str]:
    """Coerce top-level values to the schema's types where unambiguous; notes on what changed."""
    if not isinstance(schema, dict):
        return []
    props = schema.get("properties")
    if not isinstance(props, dict):
        return []
    notes: list[str] = []
    for key, value in list(obj.items()):
        types = _schema_types(props.get(key))
        if not types or _fits(value, types):
            continue
        new: Any = _NO
        if isinstance(value, str):
            s = value.strip()
            new = _convert_scalar(s, types - {"null"}) if s else _NO
        elif isinstance(value, float) and "integer" in types and value.is_integer():
            new = int(value)
        elif isinstance(value, int | float) and not isinstance(value, bool) and "string" in types:
            new = json.dumps(value)
        if new is _NO or not _fits(new, types):
            continue
        obj[key] = new
        notes.append(f"converted {key!r} from {_describe(value)} to {_describe(new)} as the schema expects")
    return notes


def _fits(value: Any, types: set[str]) -> bool:
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return bool(types & {"integer", "number"})
    if isinstance(value, float):
        return "number" in types
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, list):
        return "array" in types
    if isinstance(value, dict):
        return "object" in types
    return True


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {_snippet(value, 20)}"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, int | float):
        return f"the number {json.dumps(value)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


# --------------------------------------------------------------------------------------------
# Text protocol


def text_protocol_instructions(tools: list[dict[str, Any]]) -> str:
    """A system-prompt section for calling tools as text: `<tool_call>{...}</tool_call>` blocks.

    `tools` are OpenAI `tools=` entries. The blocks are what `recover_tool_calls` parses (Hermes).
    """
    specs: list[tuple[str, str, dict[str, Any]]] = []
    for entry in tools or []:
        fn = entry.get("function", entry) if isinstance(entry, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        params = fn.get("parameters")
        specs.append(
            (fn["name"], str(fn.get("description") or "").strip(), params if isinstance(params, dict) else {})
        )
    if specs:
        name, _, params = specs[0]
        example = json.dumps({"name": name, "arguments": _example_args(params)}, ensure_ascii=False)
    else:
        example = '{"name": "tool_name", "arguments": {}}'
    lines = [
        "# Calling tools",
        "",
        "To call a tool, write a block in exactly this form, with the tool's name and a JSON object of its",
        "arguments:",
        "",
        f"<tool_call>{example}</tool_call>",
        "",
        "Rules:",
        '- Write valid JSON: double quotes, "arguments" is an object that follows the tool\'s parameters schema.',
        "- You may write several <tool_call> blocks in one reply. Write nothing after the last block: stop",
        "  there and wait; the results come back in the next message.",
        "- Use only the tools listed below. Do not wrap the blocks in code fences.",
        "- When you need no tool, answer normally without any <tool_call> block.",
        "",
        "## Tools",
    ]
    for name, description, params in specs:
        lines.append("")
        lines.append(f"### {name}")
        if description:
            lines.append(description)
        lines.append("Parameters: " + json.dumps(params, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def _example_args(params: dict[str, Any]) -> dict[str, Any]:
    props = params.get("properties") if isinstance(params, dict) else None
    if not isinstance(props, dict):
        return {}
    required = params.get("required")
    keys = [k for k in required if k in props] if isinstance(required, list) and required else list(props)[:1]
    samples = {"integer": 1, "number": 1, "boolean": True, "array": [], "object": {}, "null": None}
    out: dict[str, Any] = {}
    for key in keys[:3]:
        types = _schema_types(props[key])
        t = next(
            (t for t in ("string", "integer", "number", "boolean", "array", "object") if t in types), "string"
        )
        out[key] = "..." if t == "string" else samples[t]
    return out
