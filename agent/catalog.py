"""`luban models`: the provider presets and model families Luban knows (agent/llm/presets.toml), or,
with --remote, the model ids a server actually serves (GET /models), each matched to its family.

Keys are never printed: the tables only say whether each provider's key variable is set.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from agent.config import ConfigError, Settings
from agent.llm.profile import DEFAULT_CONTEXT_WINDOW, find_family, load_presets, providers

EXIT_OK = 0
EXIT_MODEL = 3
REMOTE_TIMEOUT = 15.0
UNKNOWN_FAMILY = f"unknown family (defaults: {DEFAULT_CONTEXT_WINDOW}-token window, cost 0)"


# -- data -----------------------------------------------------------------------------------------


def family_entry(name: str, fam: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "match": fam["match"],
        "context_window": fam.get("context_window", DEFAULT_CONTEXT_WINDOW),
        "max_output": fam.get("max_output"),
        "temperature": fam.get("temperature"),
        "top_p": fam.get("top_p"),
        "extra_body": dict(fam.get("extra_body", {})),
        "temperature_range": fam.get("temperature_range"),
        "max_tokens_param": fam.get("max_tokens_param", "max_tokens"),
        "tool_choice": fam.get("tool_choice", True),
        "reasoning": fam.get("reasoning", "omit"),
    }


def model_entry(model_id: str, prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model id with what its family says about it, and its price if the provider lists one."""
    found = find_family(model_id)
    price = (prices or {}).get(model_id)
    return {
        "id": model_id,
        "family": found[0] if found else None,
        "context_window": found[1].get("context_window", DEFAULT_CONTEXT_WINDOW)
        if found
        else DEFAULT_CONTEXT_WINDOW,
        "max_output": found[1].get("max_output") if found else None,
        "prices": {"input": price[0], "cached_input": price[1], "output": price[2]} if price else None,
    }


def provider_entry(name: str, prov: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    prices = prov.get("prices") or {}
    ids = list(prices)
    default = prov.get("model")
    if default and default not in ids:
        ids.insert(0, default)
    key_env = prov.get("api_key_env") or "OPENAI_API_KEY"
    return {
        "name": name,
        "base_url": prov["base_url"],
        "api_key_env": key_env,
        "key_set": bool(environ.get(key_env)),
        "local": bool(prov.get("local")),
        "default_model": default,
        "models": [model_entry(i, prices) for i in ids],
    }


def catalog(environ: dict[str, str] | None = None) -> dict[str, Any]:
    environ = dict(os.environ if environ is None else environ)
    presets = load_presets()
    return {
        "providers": [provider_entry(n, p, environ) for n, p in presets["providers"].items()],
        "families": [family_entry(n, f) for n, f in presets["families"].items()],
    }


@dataclass
class RemoteModel:
    id: str
    owned_by: str | None = None
    max_model_len: int | None = None  # vLLM reports the served window


def list_remote_models(base_url: str, api_key: str, timeout: float = REMOTE_TIMEOUT) -> list[RemoteModel]:
    """GET {base_url}/models through the openai SDK, no retries. Raises agent.llm.errors.ModelError
    (translated from the SDK's error, which stays chained as __cause__)."""
    import openai

    from agent.llm import errors
    from agent.llm.client import translate_error
    from agent.llm.stream import get_field

    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)
    try:
        page = client.models.list()
        data = list(get_field(page, "data") or [])
    except openai.APIError as exc:
        raise translate_error(exc, base_url) from exc
    except Exception as exc:  # a body that is not a model list (an HTML page, say)
        raise errors.BadRequestError(
            f"GET {base_url.rstrip('/')}/models did not return a model list ({exc})"
        ) from exc
    finally:
        client.close()
    out = []
    for item in data:
        model_id = get_field(item, "id")
        if not isinstance(model_id, str):
            continue
        window = get_field(item, "max_model_len")
        out.append(
            RemoteModel(
                id=model_id,
                owned_by=get_field(item, "owned_by"),
                max_model_len=window if isinstance(window, int) and window > 0 else None,
            )
        )
    return out


# -- formatting -----------------------------------------------------------------------------------


def fmt_tokens(n: int | None) -> str:
    return f"{n:,}" if n else "-"


def fmt_price(p: float | None) -> str:
    if p is None:
        return "-"
    return f"${p:.2f}" if round(p, 2) == p else f"${p:.3f}"


def fmt_sampling(fam: dict[str, Any]) -> str:
    parts = []
    if fam["temperature"] is not None:
        parts.append(f"T={fam['temperature']:g}")
    if fam["top_p"] is not None:
        parts.append(f"top_p={fam['top_p']:g}")
    parts.extend(f"{k}={v}" for k, v in fam["extra_body"].items())
    if fam["temperature_range"]:
        low, high = fam["temperature_range"]
        parts.append(f"T in [{low:g}, {high:g}]")
    return ", ".join(parts) or "server defaults"


def fmt_notes(fam: dict[str, Any]) -> str:
    notes = []
    if not fam["tool_choice"]:
        notes.append("no tool_choice")
    if fam["max_tokens_param"] != "max_tokens":
        notes.append(f"sends {fam['max_tokens_param']}")
    return ", ".join(notes)


def _console():
    from rich.console import Console

    # Piped output keeps wide tables readable instead of squeezing them into 80 columns.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 160)
    return Console(width=width, highlight=False, soft_wrap=False)


def _table(title: str, columns: list[str], rows: list[list[str]], right: frozenset[str] = frozenset()):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", overflow="fold")
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: no rich markup in data
    return table


NUMERIC = frozenset({"Window", "Max out", "$/1M in", "cached", "out", "Server window"})


def print_catalog(data: dict[str, Any]) -> None:
    console = _console()
    prov_rows = []
    model_rows = []
    for p in data["providers"]:
        if p["key_set"]:
            key = f"{p['api_key_env']} (set)"
        else:
            key = f"{p['api_key_env']} ({'optional' if p['local'] else 'not set'})"
        prov_rows.append(
            [p["name"], p["base_url"], key, "local" if p["local"] else "hosted", p["default_model"] or "-"]
        )
        for m in p["models"]:
            price = m["prices"] or {}
            model_rows.append(
                [
                    p["name"],
                    m["id"] + (" (default)" if m["id"] == p["default_model"] else ""),
                    m["family"] or UNKNOWN_FAMILY,
                    fmt_tokens(m["context_window"]),
                    fmt_tokens(m["max_output"]),
                    fmt_price(price.get("input")),
                    fmt_price(price.get("cached_input")),
                    fmt_price(price.get("output")),
                ]
            )
    console.print(
        _table(
            "Providers (--provider NAME)",
            ["Provider", "Base URL", "API key", "Kind", "Default model"],
            prov_rows,
        )
    )
    console.print()
    console.print(
        _table(
            "Known models (prices in USD per 1M tokens: input / cached input / output)",
            ["Provider", "Model", "Family", "Window", "Max out", "$/1M in", "cached", "out"],
            model_rows,
            NUMERIC,
        )
    )
    console.print()
    fam_rows = [
        [
            f["name"],
            f["match"],
            fmt_tokens(f["context_window"]),
            fmt_tokens(f["max_output"]),
            fmt_sampling(f),
            f["reasoning"],
            fmt_notes(f),
        ]
        for f in data["families"]
    ]
    console.print(
        _table(
            "Model families (the first whose regex matches the model id wins)",
            ["Family", "Match", "Window", "Max out", "Sampling", "Reasoning", "Notes"],
            fam_rows,
            NUMERIC,
        )
    )
    console.print(
        f"\nOther models: {UNKNOWN_FAMILY}; set context_window and prices in .luban.toml.\n"
        "`luban models --remote --provider NAME` (or --base-url URL) lists what a server really serves."
    )


# -- the command ----------------------------------------------------------------------------------


def run_models(settings: Settings, remote: bool = False, json_output: bool = False) -> int:
    if not remote:
        data = catalog()
        if json_output:
            print(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            print_catalog(data)
        return EXIT_OK
    return run_remote(settings, json_output)


def remote_target(settings: Settings):
    """The profile (base URL, key, provider) of the server `--remote` asks; a model is not needed."""
    from agent.llm.profile import resolve_profile

    if not settings.provider and not settings.base_url:
        raise ConfigError(
            "`luban models --remote` needs a server: pass --provider NAME (see `luban models`) or "
            "--base-url URL (e.g. http://127.0.0.1:8000/v1)"
        )
    preset = providers().get(settings.provider or "", {})
    placeholder = settings.model or preset.get("model") or "(any)"
    return resolve_profile(settings.model_copy(update={"model": placeholder}))


def run_remote(settings: Settings, json_output: bool) -> int:
    from agent.doctor import explain_failure, key_env_for
    from agent.llm import errors

    profile = remote_target(settings)
    prices = providers().get(profile.provider or "", {}).get("prices") or {}
    try:
        found = list_remote_models(profile.base_url, profile.api_key)
    except errors.ModelError as exc:
        problem = explain_failure(
            exc,
            profile,
            key_env=key_env_for(settings, profile),
            where=f"GET {profile.base_url}/models",
            timeout=REMOTE_TIMEOUT,
        )
        print(f"luban: {problem.detail}", file=sys.stderr)
        if problem.hint:
            print(f"luban: {problem.hint}", file=sys.stderr)
        return EXIT_MODEL
    entries = []
    for m in found:
        entry = model_entry(m.id, prices)
        entry["owned_by"] = m.owned_by
        entry["server_context_window"] = m.max_model_len
        entries.append(entry)
    if json_output:
        out = {"base_url": profile.base_url, "provider": profile.provider, "models": entries}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return EXIT_OK
    console = _console()
    columns = ["Model", "Family", "Window", "Max out"]
    if any(e["server_context_window"] for e in entries):
        columns.append("Server window")
    if prices:
        columns += ["$/1M in", "cached", "out"]
    rows = []
    for e in entries:
        row = [
            e["id"],
            e["family"] or UNKNOWN_FAMILY,
            fmt_tokens(e["context_window"]),
            fmt_tokens(e["max_output"]),
        ]
        if "Server window" in columns:
            row.append(fmt_tokens(e["server_context_window"]))
        if prices:
            p = e["prices"] or {}
            row += [fmt_price(p.get("input")), fmt_price(p.get("cached_input")), fmt_price(p.get("output"))]
        rows.append(row)
    where = f"{profile.provider} " if profile.provider else ""
    title = f"{where}{profile.base_url.rstrip('/')}/models: {len(entries)} model(s)"
    console.print(_table(title, columns, rows, NUMERIC))
    if not entries:
        console.print("The server lists no models.")
    return EXIT_OK
