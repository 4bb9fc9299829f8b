"""What Luban knows about the model a run talks to: where it lives, its window and output cap,
sampling defaults and parameter rules, reasoning policy and prices — from the presets data file,
overridden by settings."""

from __future__ import annotations

import functools
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from agent.config import ConfigError, Settings

ReasoningPolicy = Literal["omit", "send_on_tool_turns", "send_all", "inline_think"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
DEFAULT_CONTEXT_WINDOW = 32768  # for models we know nothing about: small enough to be safe


@dataclass
class ModelProfile:
    model: str
    base_url: str
    api_key: str
    provider: str | None = None
    family: str | None = None
    local: bool = False
    context_window: int = DEFAULT_CONTEXT_WINDOW
    max_output: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    temperature_range: tuple[float, float] | None = None
    max_tokens_param: str = "max_tokens"
    tool_choice: bool = True
    reasoning: ReasoningPolicy = "omit"
    price_input: float = 0.0
    price_cached_input: float | None = None
    price_output: float = 0.0

    @property
    def priced(self) -> bool:
        return bool(self.price_input or self.price_output)


@functools.cache
def load_presets() -> dict[str, Any]:
    with (Path(__file__).parent / "presets.toml").open("rb") as fh:
        return tomllib.load(fh)


def providers() -> dict[str, dict[str, Any]]:
    return load_presets()["providers"]


def find_family(model: str) -> tuple[str, dict[str, Any]] | None:
    for name, fam in load_presets()["families"].items():
        if re.search(fam["match"], model, re.IGNORECASE):
            return name, fam
    return None


def is_local_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("127.")


def _provider_for_url(base_url: str) -> str | None:
    """Recognise a hosted provider from its URL, so prices apply without --provider."""
    for name, prov in providers().items():
        if not prov.get("local") and base_url.rstrip("/") == prov["base_url"].rstrip("/"):
            return name
    return None


def resolve_profile(settings: Settings, environ: dict[str, str] | None = None) -> ModelProfile:
    """Work out the model's profile from flags/config, the provider preset and the family preset."""
    environ = dict(os.environ if environ is None else environ)
    preset: dict[str, Any] = {}
    provider = settings.provider
    if provider:
        if provider not in providers():
            raise ConfigError(f"unknown provider {provider!r}; known: {', '.join(sorted(providers()))}")
        preset = providers()[provider]
    model = settings.model or preset.get("model")
    base_url = settings.base_url or preset.get("base_url")
    if not model:
        raise ConfigError(
            "no model configured. Pass --model (and --base-url or --provider), set `model` in .luban.toml, "
            "or try `luban demo`, which needs no model."
        )
    if not base_url:
        raise ConfigError(
            f"no base URL for model {model!r}. Pass --base-url (an OpenAI-compatible endpoint, e.g. "
            "http://127.0.0.1:8000/v1 for vLLM) or --provider (`luban models` lists them)."
        )
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(f"--base-url {base_url!r} is not an http(s) URL")
    if not provider:
        provider = _provider_for_url(base_url)
        preset = providers().get(provider, {}) if provider else {}
    local = bool(preset.get("local")) or is_local_url(base_url)
    key_env = settings.api_key_env or preset.get("api_key_env") or "OPENAI_API_KEY"
    api_key = environ.get(key_env, "")
    if not api_key:
        if local:
            api_key = "not-needed"  # local servers accept any key
        else:
            raise ConfigError(
                f"no API key: the environment variable {key_env} is empty. Export it, or name another "
                "variable with --api-key-env."
            )

    profile = ModelProfile(model=model, base_url=base_url, api_key=api_key, provider=provider, local=local)
    found = find_family(model)
    if found:
        name, fam = found
        profile.family = name
        profile.context_window = fam.get("context_window", profile.context_window)
        profile.max_output = fam.get("max_output")
        profile.temperature = fam.get("temperature")
        profile.top_p = fam.get("top_p")
        profile.extra_body = dict(fam.get("extra_body", {}))
        if "temperature_range" in fam:
            low, high = fam["temperature_range"]
            profile.temperature_range = (float(low), float(high))
        profile.max_tokens_param = fam.get("max_tokens_param", "max_tokens")
        profile.tool_choice = fam.get("tool_choice", True)
        profile.reasoning = fam.get("reasoning", "omit")
    price = (preset.get("prices") or {}).get(model)
    if price and not local:
        profile.price_input, profile.price_cached_input, profile.price_output = (float(p) for p in price)

    # Settings win over presets.
    if settings.context_window:
        profile.context_window = settings.context_window
    if settings.max_tokens:
        profile.max_output = settings.max_tokens
    if settings.temperature is not None:
        profile.temperature = settings.temperature
    if settings.top_p is not None:
        profile.top_p = settings.top_p
    if settings.extra_body:
        profile.extra_body = {**profile.extra_body, **settings.extra_body}
    if settings.reasoning:
        profile.reasoning = settings.reasoning  # type: ignore[assignment]
    if settings.price_input or settings.price_output:
        profile.price_input = settings.price_input
        profile.price_output = settings.price_output
        profile.price_cached_input = settings.price_cached_input
    if profile.temperature is not None and profile.temperature_range:
        low, high = profile.temperature_range
        profile.temperature = min(max(profile.temperature, low), high)
    return profile
