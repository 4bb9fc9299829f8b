"""`luban doctor`: check that a provider or server will work with Luban, and say how to fix it if not.

Checks, in order, each printed with ✓ / ✗ / ! and an explanation:

1. configuration: the profile resolves (provider, model, base URL, key variable, family, window);
2. server: GET /models answers, and lists the configured model (else: the closest ids);
3. tool call: one chat request with a tiny tool, answered with a native `tool_calls` entry;
4. streamed tool call: the same request streamed, assembled, with usage.

The tool-call checks send what `luban exec` sends (the profile's sampling, extra_body, max-tokens
parameter, through agent.llm.client.OpenAIModel) with `tool_choice: "auto"`. A forced (named)
tool_choice would prove less: vLLM answers named tool choice with guided decoding and no tool
parser, so a server without `--tool-call-parser` would pass here and fail in `exec`.

Exit codes: 0 all passed (warnings allowed), 2 configuration error, 3 a server or model check failed.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from agent.config import ConfigError, Settings

EXIT_OK, EXIT_CONFIG, EXIT_MODEL = 0, 2, 3
REQUEST_TIMEOUT = 60.0  # a reasoning model may think for a while before it calls the tool
CONNECT_TIMEOUT = 10.0
MODELS_TIMEOUT = 15.0
# Enough for a reasoning model to think before calling; a plain model stops after ~30 tokens.
MAX_TOKENS = 1024

TOOL_NAME = "get_weather"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city, e.g. Paris"}},
            "required": ["city"],
        },
    },
}
PROMPT = "What is the weather in Paris? Use the tool."

# vLLM / SGLang tool-call parsers per model family (research/providers.md §1b).
VLLM_PARSERS = {
    "kimi-k2": "kimi_k2",
    "kimi-k2-thinking": "kimi_k2",
    "qwen3-coder": "qwen3_coder",
    "qwen3-coder-hosted": "qwen3_coder",
    "gpt-oss": "openai",
    "deepseek": "deepseek_v31",
    "deepseek-reasoner": "deepseek_v31",
    "glm": "glm45",
    "glm-4-6": "glm45",
    "minimax": "minimax_m2",
}
SGLANG_PARSERS = {
    "kimi-k2": "kimi_k2",
    "kimi-k2-thinking": "kimi_k2",
    "qwen3-coder": "qwen3_coder",
    "qwen3-coder-hosted": "qwen3_coder",
    "gpt-oss": "gpt-oss",
    "glm": "glm45",
    "glm-4-6": "glm45",
}
# What a tool call left in the text looks like, and which parser reads that format.
LEAKS = [
    (
        "Kimi K2 tool-call tokens",
        re.compile(r"<\|tool_calls?_section_begin\|>|<\|tool_call_begin\|>"),
        "kimi-k2",
    ),
    ("Qwen3-Coder XML", re.compile(r"<tool_call>\s*<function=|<function=[\w.\-]+>"), "qwen3-coder"),
    ("Hermes JSON", re.compile(r"<tool_call>\s*\{"), "hermes"),
    ("harmony", re.compile(r"to=functions\.|<\|channel\|>commentary"), "gpt-oss"),
]
# Which server a model list comes from, by its `owned_by`.
OWNERS = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llamacpp",
    "llama.cpp": "llamacpp",
    "library": "ollama",
}


@dataclass
class Check:
    check: str
    status: str  # "pass" | "warn" | "fail"
    detail: str
    hint: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "ok": self.ok,
            "status": self.status,
            "detail": self.detail,
            "hint": self.hint,
        }


@dataclass
class Problem:
    detail: str
    hint: str | None = None
    fatal: bool = False  # every later request would fail the same way


@dataclass
class Context:
    """What the checks learn along the way."""

    profile: Any
    key_env: str
    server_kind: str | None = None  # vllm | sglang | llamacpp | ollama
    stream: bool = True  # whether `luban exec` streams (settings.stream)
    suggestions: tuple[str, ...] = ()


# -- helpers shared with `luban models --remote` -------------------------------------------------


def key_env_for(settings: Settings, profile: Any) -> str:
    from agent.llm.profile import providers

    preset = providers().get(profile.provider or "", {})
    return settings.api_key_env or preset.get("api_key_env") or "OPENAI_API_KEY"


def mask(key: str) -> str:
    size = f"{len(key)} character{'s' if len(key) != 1 else ''}"
    return f"…{key[-4:]}, {size}" if len(key) >= 24 else size


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 12:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _versioned(base_url: str) -> bool:
    return bool(re.search(r"/v\d+$", (urlparse(base_url).path or "").rstrip("/")))


def explain_failure(
    exc: BaseException, profile: Any, *, key_env: str, where: str = "", timeout: float = REQUEST_TIMEOUT
) -> Problem:
    """A failed request as a sentence and a fix. `exc` is an agent.llm.errors.ModelError (or the
    SDK's error); the transport cause, when chained, tells refused connections from DNS failures."""
    import openai

    from agent.llm import errors
    from agent.llm.client import translate_error

    url = profile.base_url
    err = translate_error(exc, url) if isinstance(exc, openai.APIError) else exc
    text = str(err)
    status = getattr(err, "status", None)
    if isinstance(err, errors.ModelTimeoutError):
        return Problem(
            f"{where or url} did not answer within {timeout:g} s",
            "check that the server is up and not overloaded; a model still loading can take minutes",
            fatal=True,
        )
    if isinstance(err, errors.ModelConnectionError):
        chain = _chain(exc)
        if any(isinstance(e, ConnectionRefusedError) or "Connection refused" in str(e) for e in chain):
            return Problem(
                f"nothing is listening at {url}", "start the server, or check --base-url", fatal=True
            )
        if any(isinstance(e, socket.gaierror) for e in chain):
            host = urlparse(url).hostname
            return Problem(f"cannot resolve the host {host!r} of {url}", "check --base-url", fatal=True)
        return Problem(text, "check that the server is running and that --base-url is right", fatal=True)
    if isinstance(err, errors.AuthError):
        if profile.local and not os.environ.get(key_env):
            hint = (
                f"the server wants an API key (vLLM/SGLang --api-key): export {key_env}=<that key>, "
                "or name another variable with --api-key-env"
            )
        else:
            hint = f"check the key in {key_env} (or the variable named by --api-key-env): wrong, expired or revoked"
            if (profile.provider or "").startswith(("moonshot", "dashscope")):
                hint += "; keys are per region (international and China endpoints take different keys)"
        return Problem(f"the server refused the API key (HTTP {status})", hint, fatal=True)
    if re.search(r"enable-auto-tool-choice|tool-call-parser|tool_call_parser", text):
        return Problem(
            text,
            "the server has tool calling switched off: vLLM needs "
            f"`--enable-auto-tool-choice --tool-call-parser {_vllm_parser(profile.family, None)}",
            fatal=True,
        )
    if re.search(r"--jinja|Unsupported param: tools", text):
        return Problem(
            text,
            "start llama-server with --jinja (tools need the model's Jinja chat template)",
            fatal=True,
        )
    if isinstance(err, errors.ContextOverflowError):
        return Problem(
            f"even this tiny request overflows the server's context window: {text}",
            "the server's window is too small: Ollama: raise num_ctx (OLLAMA_CONTEXT_LENGTH=32768, or "
            "PARAMETER num_ctx in a Modelfile); llama.cpp: llama-server -c 32768; vLLM: --max-model-len",
            fatal=True,
        )
    if isinstance(err, errors.RateLimitError):
        return Problem(
            f"rate limited: {text}", "wait a minute and retry, or check your plan's limits", fatal=True
        )
    if status == 404:
        return Problem(
            text,
            f"check that --base-url ends with /v1 and that the server serves {profile.model!r} "
            "(`luban models --remote` lists its ids)",
            fatal=True,
        )
    # Other rejections (400, 422) would recur on the streamed request; 5xx and broken streams may not.
    return Problem(text, None, fatal=isinstance(err, errors.BadRequestError))


# -- tool-call diagnosis ------------------------------------------------------------------------


def token_budget(profile: Any) -> int:
    return min(MAX_TOKENS, profile.max_output or MAX_TOKENS)


def find_leak(text: str) -> tuple[str, str, str] | None:
    """(format, parser family, snippet) when a tool call sits in the text."""
    for fmt, pattern, family in LEAKS:
        m = pattern.search(text or "")
        if m:
            snippet = text[m.start() : m.start() + 70].replace("\n", "\\n")
            return fmt, family, snippet + ("…" if len(text) - m.start() > 70 else "")
    return None


def _vllm_parser(family: str | None, leaked: str | None) -> str:
    # What the model really emitted beats the family guessed from its name; Hermes JSON only
    # decides when the family is unknown (Qwen3-Coder needs its own parser, never hermes).
    parser = (
        VLLM_PARSERS.get(leaked or "") or VLLM_PARSERS.get(family or "") or (leaked == "hermes" and "hermes")
    )
    if parser == "qwen3_coder":
        return "qwen3_coder` (or `qwen3_xml`; not hermes)"
    if parser:
        return f"{parser}`"
    return (
        "<parser>` (kimi_k2 for Kimi K2, qwen3_coder or qwen3_xml for Qwen3-Coder (not hermes), "
        "openai for gpt-oss)"
    )


def parser_hint(ctx: Context, leaked: str | None) -> str:
    from agent.llm.profile import providers

    profile = ctx.profile
    if profile.provider and not providers().get(profile.provider, {}).get("local") and not profile.local:
        return (
            f"the provider {profile.provider} is not parsing tool calls for {profile.model}: Luban recovers "
            "the common formats from text, but expect failures; try another model id or provider"
        )
    family = profile.family
    vllm = f"vLLM needs `--enable-auto-tool-choice --tool-call-parser {_vllm_parser(family, leaked)}"
    sglang_parser = SGLANG_PARSERS.get(leaked or "") or SGLANG_PARSERS.get(family or "")
    sglang = f"SGLang `--tool-call-parser {sglang_parser or 'kimi_k2|qwen3_coder'}`"
    llamacpp = "llama.cpp `--jinja` (and a chat template with tools)"
    ollama = "Ollama: a model tag whose template supports tools"
    lines = {"vllm": [vllm], "sglang": [sglang], "llamacpp": [llamacpp], "ollama": [ollama]}.get(
        ctx.server_kind or "", [vllm, sglang, llamacpp]
    )
    return "the server is not parsing tool calls: " + "; ".join(lines)


def diagnose(turn: Any, ctx: Context, *, stream: bool, elapsed: float) -> Check:
    """A turn answering the weather prompt, judged."""
    name = "streamed tool call" if stream else "tool call"
    profile = ctx.profile
    calls = turn.tool_calls or []
    length_hint = (
        f"the answer hit the {token_budget(profile)}-token limit (finish_reason length): a reasoning model may need "
        "a bigger budget (max_tokens in .luban.toml); otherwise check the sampling settings"
    )
    if calls:
        call = next((c for c in calls if c.name == TOOL_NAME), None)
        note = ""
        if call is None:
            call = next((c for c in calls if TOOL_NAME in c.name), None)
            if call is None:
                names = ", ".join(repr(c.name) for c in calls)
                return Check(
                    name,
                    "fail",
                    f"the model called {names}, not {TOOL_NAME}",
                    "the server or its chat template mangles tool names: " + parser_hint(ctx, None),
                )
            note = f"; the tool name came back as {call.name!r} (Luban cleans that, but the parser is off)"
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else None
        except json.JSONDecodeError:
            args = None
        if not isinstance(args, dict):
            if turn.finish_reason == "length":
                return Check(
                    name, "fail", f"the call was cut off: arguments {call.arguments[:80]!r}", length_hint
                )
            return Check(
                name,
                "fail",
                f"{TOOL_NAME} came back with malformed arguments: {call.arguments[:80]!r}",
                "Luban repairs many such cases, but it signals a tool-parser problem: "
                + parser_hint(ctx, None).removeprefix("the server is not parsing tool calls: "),
            )
        detail = f"{TOOL_NAME}({json.dumps(args, ensure_ascii=False)}) in {elapsed:.1f} s" + note
        if not stream:
            return Check(name, "warn" if note else "pass", detail)
        usage = turn.usage
        if usage is None:
            return Check(
                name,
                "warn",
                detail + "; the stream carried no usage",
                "the server ignores stream_options.include_usage: Luban cannot count tokens or cost "
                "(--max-cost) for it",
            )
        detail += (
            f"; usage {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens, "
            f"{usage.cached_tokens} cached"
        )
        return Check(name, "warn" if note else "pass", detail)

    content, reasoning = turn.content or "", turn.reasoning or ""
    for where, text in (("content", content), ("the reasoning", reasoning)):
        leak = find_leak(text)
        if leak:
            fmt, leaked, snippet = leak
            return Check(
                name,
                "fail",
                f"the tool call came back as text in {where} ({fmt}), not as tool_calls: {snippet}",
                parser_hint(ctx, leaked),
            )
    if turn.finish_reason == "length":
        return Check(name, "fail", "no tool call before the token limit (finish_reason length)", length_hint)
    if turn.finish_reason == "tool_calls":
        return Check(
            name,
            "fail",
            "finish_reason is tool_calls but the answer carries no call",
            "the server's tool parser dropped the call: " + parser_hint(ctx, None),
        )
    if not content.strip():
        what = "only reasoning, no answer and no tool call" if reasoning.strip() else "an empty answer"
        return Check(
            name,
            "fail",
            f"the server returned {what} (finish_reason {turn.finish_reason})",
            "check the model's chat template and the server logs; a reasoning model may need a "
            "bigger max_tokens",
        )
    snippet = content.strip().replace("\n", " ")
    return Check(
        name,
        "fail",
        f"a plain text answer, no tool call: {snippet[:100]!r}",
        "the model/server ignored the tools: check that the chat template supports tools (Ollama: a "
        "model tag with tool support; llama.cpp: --jinja)"
        + (", or that tool_choice is honoured" if profile.tool_choice else ""),
    )


# -- the checks ---------------------------------------------------------------------------------


def check_configuration(settings: Settings, profile: Any, key_env: str) -> Check:
    from agent.llm.profile import DEFAULT_CONTEXT_WINDOW

    p = profile
    where = "local" if p.local else "hosted"
    prov = f"provider {p.provider} ({where})" if p.provider else f"no provider preset ({where} server)"
    lines = [f"{prov}, model {p.model}, {p.base_url}"]
    key = os.environ.get(key_env, "")
    if key:
        lines.append(f"key {key_env} set ({mask(key)})")
    else:
        lines.append(f"key {key_env} unset (not needed for a local server)")
    status, hint = "pass", None
    if p.family:
        parts = [f"{p.context_window:,}-token window"]
        if p.max_output:
            parts.append(f"max output {p.max_output:,}")
        if p.temperature is not None:
            parts.append(f"temperature {p.temperature:g}")
        parts.append(f"reasoning {p.reasoning}")
        lines.append(f"family {p.family}: " + ", ".join(parts))
    else:
        lines.append(
            f"unknown model family: Luban assumes a {p.context_window:,}-token window"
            + (" (from settings)" if settings.context_window else "")
        )
        if not settings.context_window and p.context_window == DEFAULT_CONTEXT_WINDOW:
            status = "warn"
            hint = (
                "if the model has a bigger window, set context_window in .luban.toml (LUBAN_CONTEXT_WINDOW)"
            )
    if p.priced:
        cached = "-" if p.price_cached_input is None else f"${p.price_cached_input:g}"
        lines.append(
            f"prices per 1M tokens: ${p.price_input:g} input, {cached} cached, ${p.price_output:g} output"
        )
    elif not p.local:
        lines.append("no known price for this model: cost counts as 0 (set price_input/price_output)")
    return Check("configuration", status, "\n".join(lines), hint)


def rank_suggestions(model: str, ids: list[str]) -> list[str]:
    low = model.lower()
    tail = low.rsplit("/", 1)[-1]
    exact = [i for i in ids if i.lower() == low or i.lower().rsplit("/", 1)[-1] == tail]
    contains = [i for i in ids if tail in i.lower() or i.lower().rsplit("/", 1)[-1] in low]
    lowered = {i.lower(): i for i in ids}
    close = [lowered[m] for m in difflib.get_close_matches(low, list(lowered), n=3, cutoff=0.5)]
    out: list[str] = []
    for i in exact + contains + close:
        if i not in out:
            out.append(i)
    return out[:3]


def check_server(ctx: Context) -> Check:
    import openai  # noqa: F401  (imported before the clock starts)

    from agent.catalog import list_remote_models
    from agent.llm import errors

    p = ctx.profile
    url = p.base_url.rstrip("/")
    started = time.monotonic()
    try:
        models = list_remote_models(p.base_url, p.api_key, timeout=MODELS_TIMEOUT)
    except errors.ModelError as exc:
        if exc.status == 404:
            if _versioned(p.base_url):
                return Check(
                    "server",
                    "warn",
                    f"GET {url}/models: 404; this server has no model list, so the model id was not checked",
                )
            return Check(
                "server",
                "fail",
                f"GET {url}/models: 404 not found",
                "check that --base-url ends with /v1 (e.g. http://127.0.0.1:8000/v1)",
            )
        problem = explain_failure(
            exc, p, key_env=ctx.key_env, where=f"GET {url}/models", timeout=MODELS_TIMEOUT
        )
        return Check("server", "fail", problem.detail, problem.hint)
    elapsed = time.monotonic() - started
    ids = [m.id for m in models]
    if not ctx.server_kind:
        owners = {OWNERS.get((m.owned_by or "").lower()) for m in models} - {None}
        if len(owners) == 1:
            ctx.server_kind = owners.pop()
    head = f"GET {url}/models answered in {elapsed:.1f} s"
    if not ids:
        return Check(
            "server",
            "warn",
            f"{head}, listing no models",
            "the server serves no model yet (Ollama: `ollama pull MODEL`)",
        )
    shown = ", ".join(ids[:5]) + (f", … ({len(ids)} in all)" if len(ids) > 5 else "")
    if p.model not in ids:
        ctx.suggestions = tuple(rank_suggestions(p.model, ids))
        if ctx.suggestions:
            hint = "did you mean " + " or ".join(f"--model {s}" for s in ctx.suggestions) + "?"
        else:
            hint = "pass one of the listed ids with --model (vLLM: the --served-model-name)"
        return Check("server", "warn", f"{head}, but {p.model!r} is not among its models: {shown}", hint)
    detail = f"{head}: {shown}" if len(ids) <= 5 else f"{head}: {len(ids)} models, including {p.model}"
    served = next(m for m in models if m.id == p.model)
    if served.max_model_len and served.max_model_len < p.context_window:
        return Check(
            "server",
            "warn",
            f"{detail}; the server's window is {served.max_model_len:,} tokens, Luban assumes "
            f"{p.context_window:,}",
            f"set context_window = {served.max_model_len} in .luban.toml, or raise --max-model-len",
        )
    if served.max_model_len and served.max_model_len > p.context_window:
        detail += (
            f"; the server's window is {served.max_model_len:,} tokens "
            f"(set context_window = {served.max_model_len} to use it)"
        )
    return Check("server", "pass", detail)


async def round_trip(ctx: Context, *, stream: bool) -> tuple[Check, bool]:
    """One chat request with the weather tool. Returns the check and whether to stop there."""
    from agent.llm import errors
    from agent.llm.client import ClientConfig, OpenAIModel

    p = ctx.profile
    name = "streamed tool call" if stream else "tool call"
    extra = dict(p.extra_body)
    if p.tool_choice:
        extra["tool_choice"] = "auto"  # what vLLM assumes for exec's requests, which send none
    config = ClientConfig.from_profile(
        p,
        max_tokens=token_budget(p),
        extra_body=extra,
        request_timeout=REQUEST_TIMEOUT,
        connect_timeout=CONNECT_TIMEOUT,
        max_retries=0,
        stream=stream,
    )
    model = OpenAIModel(config)
    started = time.monotonic()
    try:
        turn = await model.complete([{"role": "user", "content": PROMPT}], [WEATHER_TOOL])
    except errors.ModelError as exc:
        problem = explain_failure(exc, p, key_env=ctx.key_env)
        hint = problem.hint
        if exc.status == 404 and ctx.suggestions:
            hint = "did you mean " + " or ".join(f"--model {s}" for s in ctx.suggestions) + "?"
        return Check(name, "fail", problem.detail, hint), problem.fatal
    except Exception as exc:  # anything the client does not classify: report it, no traceback
        return Check(name, "fail", f"unexpected error: {exc!r}"), True
    finally:
        await model.aclose()
    check = diagnose(turn, ctx, stream=stream, elapsed=time.monotonic() - started)
    return check, False


# -- output -------------------------------------------------------------------------------------


LABEL_WIDTH = 20


class Printer:
    def __init__(self, json_output: bool):
        self.json_output = json_output
        self.checks: list[Check] = []
        encoding = getattr(sys.stdout, "encoding", None) or "ascii"
        try:
            "✓✗…→".encode(encoding)
            self.marks = {"pass": "✓", "warn": "!", "fail": "✗", "arrow": "→"}
        except (UnicodeEncodeError, LookupError):
            self.marks = {"pass": "+", "warn": "!", "fail": "x", "arrow": "->"}
        tty = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        colours = {"pass": "32", "warn": "33", "fail": "31"}
        self.paint: Callable[[str, str], str] = (
            (lambda status, s: f"\x1b[{colours[status]}m{s}\x1b[0m") if tty else (lambda status, s: s)
        )

    def say(self, text: str = "") -> None:
        if not self.json_output:
            print(text, flush=True)

    def add(self, check: Check) -> None:
        self.checks.append(check)
        if self.json_output:
            return
        pad = " " * (LABEL_WIDTH + 2)
        earlier = self.checks[:-1]
        detail = check.detail
        if earlier and earlier[-1].detail == detail:
            detail = "the same as above"
        first, *rest = detail.splitlines() or [""]
        mark = self.paint(check.status, self.marks[check.status])
        self.say(f"{mark} {check.check:<{LABEL_WIDTH}}{first}")
        for line in rest:
            self.say(pad + line)
        if check.hint:
            same = any(c.hint == check.hint for c in earlier)
            self.say(f"{pad}{self.marks['arrow']} {'the same fix' if same else check.hint}")

    def finish(self, skipped: int = 0) -> None:
        if self.json_output:
            print(json.dumps([c.as_json() for c in self.checks], indent=2, ensure_ascii=False))
            return
        failed = [c for c in self.checks if c.status == "fail"]
        warned = [c for c in self.checks if c.status == "warn"]
        total = len(self.checks)
        later = f"; {skipped} later check{'s' if skipped != 1 else ''} not run" if skipped else ""
        self.say()
        if failed:
            self.say(
                self.paint("fail", f"{self.marks['fail']} {len(failed)} of {total} checks failed{later}")
            )
        elif warned:
            self.say(
                self.paint(
                    "warn",
                    f"{self.marks['warn']} all {total} checks passed, {len(warned)} with a warning{later}",
                )
            )
        else:
            self.say(self.paint("pass", f"{self.marks['pass']} all {total} checks passed"))


# -- the command --------------------------------------------------------------------------------


def run_doctor(settings: Settings, json_output: bool = False) -> int:
    from agent.llm.profile import resolve_profile

    out = Printer(json_output)
    if settings.model and settings.model.startswith("replay:"):
        out.add(
            Check("configuration", "pass", f"{settings.model}: a recorded trajectory, no server to check")
        )
        out.finish()
        return EXIT_OK
    try:
        profile = resolve_profile(settings)
    except ConfigError as exc:
        out.add(Check("configuration", "fail", str(exc)))
        out.finish(skipped=3)
        return EXIT_CONFIG
    ctx = Context(profile=profile, key_env=key_env_for(settings, profile), stream=settings.stream)
    if profile.provider in ("vllm", "sglang", "llamacpp", "ollama"):
        ctx.server_kind = profile.provider
    out.say(f"luban doctor: {profile.model} at {profile.base_url}\n")
    out.add(check_configuration(settings, profile, ctx.key_env))
    server = check_server(ctx)
    out.add(server)
    skipped = 0
    if server.ok:
        skipped = asyncio.run(_round_trips(ctx, out))
    else:
        skipped = 2
    out.finish(skipped)
    return EXIT_MODEL if any(not c.ok for c in out.checks) else EXIT_OK


async def _round_trips(ctx: Context, out: Printer) -> int:
    check, stop = await round_trip(ctx, stream=False)
    out.add(check)
    if stop:
        return 1
    check, _ = await round_trip(ctx, stream=True)
    plain = out.checks[-1]
    if check.ok and not plain.ok:
        check.detail += " (streamed it works, and `luban exec` streams by default)"
    elif not check.ok and plain.ok:
        if not ctx.stream:
            check.status = "warn"  # exec does not stream here
            check.detail += " (stream = false is set, so `luban exec` does not stream)"
        else:
            fallback = (
                "the same call works unstreamed: set stream = false in .luban.toml (LUBAN_STREAM=false)"
            )
            check.hint = f"{check.hint}; or {fallback}" if check.hint else fallback
    out.add(check)
    return 0
