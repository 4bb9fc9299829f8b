"""Settings, layered: defaults < ~/.config/luban/config.toml < ./.luban.toml < LUBAN_* env < flags.

A broken file stops the run with the file, the line and what is wrong, never a traceback.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(Exception):
    """A usage or configuration error: the CLI prints it and exits with code 2."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # model
    model: str | None = Field(default=None, description="model id, or replay:PATH")
    provider: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    context_window: int | None = None
    reasoning: Literal["omit", "send_on_tool_turns", "send_all", "inline_think"] | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)
    stream: bool = True
    request_timeout: float = 600.0
    max_retries: int = 4
    retry_base_delay: float = 1.0
    # prices in USD per million tokens; 0 when unknown (local models)
    price_input: float = 0.0
    price_cached_input: float | None = None
    price_output: float = 0.0
    # limits
    max_steps: int = 100
    max_cost: float | None = None
    max_time: float | None = 3600.0
    # tools
    command_timeout: int = 180
    test_command: str | None = None
    test_timeout: int = 600
    max_output_chars: int = 16000
    edit_guard: bool = True  # roll back edits that introduce syntax errors
    repo_map_tokens: int = 1024  # size of the repo map in the first prompt; 0 leaves it out
    tools_enabled: list[str] | None = None
    tools_disabled: list[str] = Field(default_factory=list)
    # safety: what runs without asking, and what can be undone
    approval: Literal["read-only", "auto-edit", "full-auto"] = "full-auto"
    allow_commands: list[str] = Field(default_factory=list)  # tool names or command prefixes
    deny_commands: list[str] = Field(default_factory=list)
    git_commit: Literal["never", "luban-branch", "allow"] = "luban-branch"  # may the model commit?
    checkpoints: bool = True  # record the tree before every change (luban undo)
    # where runs are recorded (default: the user state dir)
    trajectory_dir: str | None = None


ENV_PREFIX = "LUBAN_"


def user_config_path() -> Path:
    if os.environ.get("LUBAN_CONFIG"):
        return Path(os.environ["LUBAN_CONFIG"])
    from platformdirs import user_config_dir

    return Path(user_config_dir("luban", appauthor=False)) / "config.toml"


def state_dir() -> Path:
    if os.environ.get("LUBAN_HOME"):
        return Path(os.environ["LUBAN_HOME"])
    from platformdirs import user_state_dir

    return Path(user_state_dir("luban", appauthor=False))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already says "(at line N, column M)".
        raise ConfigError(f"{path}: invalid TOML: {exc}. Fix the file or move it aside.") from exc
    validate_layer(data, path, text)
    return data


def validate_layer(data: dict[str, Any], source: Path | str, text: str = "") -> None:
    try:
        Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            line = _line_of(text, str(err["loc"][0])) if text else None
            where = f"{source}:{line}" if line else str(source)
            if err["type"] == "extra_forbidden":
                problems.append(
                    f"{where}: unknown setting {key!r} (known: {', '.join(Settings.model_fields)})"
                )
            else:
                problems.append(f"{where}: {key}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(problems)) from exc


def _line_of(text: str, key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=", re.MULTILINE)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def env_layer(environ: dict[str, str]) -> dict[str, Any]:
    """LUBAN_MODEL=..., LUBAN_MAX_STEPS=50, ... (values parsed as TOML scalars where they can be)."""
    out: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is None or raw == "":
            continue
        annotation = str(field.annotation)
        if "str" in annotation and "list" not in annotation and "dict" not in annotation:
            out[name] = raw
            continue
        try:
            out[name] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[name] = raw
        if "list" in annotation and isinstance(out[name], str):  # LUBAN_ALLOW_COMMANDS=pytest,make test
            out[name] = [part.strip() for part in out[name].split(",") if part.strip()]
    validate_layer(out, "environment (LUBAN_*)")
    return out


def load_settings(
    repo: Path,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> Settings:
    """`defaults` are a front end's own defaults (the TUI asks before commands), below every
    layer the user controls."""
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, Any] = dict(defaults or {})
    for layer in (read_toml(user_config_path()), read_toml(repo / ".luban.toml"), env_layer(environ)):
        merged.update(layer)
    merged.update({k: v for k, v in (flags or {}).items() if v is not None})
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:  # flags are checked by argparse, so this is rare
        raise ConfigError(str(exc)) from exc
