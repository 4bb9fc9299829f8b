"""Settings layering and errors; the tool registry's handling of bad calls and plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.config import ConfigError, Settings, env_layer, load_settings
from agent.llm.profile import resolve_profile
from tools.base import Tool, ToolContext, ToolResult, clean_schema
from tools.environment import LocalEnvironment
from tools.registry import BUILTIN_TOOLS, ToolRegistry, load_object


def test_layers_in_order(tmp_path, monkeypatch):
    user = tmp_path / "user.toml"
    user.write_text('model = "u"\nmax_steps = 7\ncommand_timeout = 11\n')
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".luban.toml").write_text('model = "r"\nmax_steps = 8\n')
    monkeypatch.setenv("LUBAN_CONFIG", str(user))
    env = {"LUBAN_MAX_STEPS": "9", "LUBAN_CONFIG": str(user)}
    s = load_settings(repo, {"model": "flag", "max_cost": None}, environ=env)
    assert (s.model, s.max_steps, s.command_timeout, s.max_cost) == ("flag", 9, 11, None)
    s = load_settings(repo, {}, environ={"LUBAN_CONFIG": str(user)})
    assert (s.model, s.max_steps) == ("r", 8)


def test_env_values_are_typed():
    layer = env_layer(
        {
            "LUBAN_MAX_COST": "2.5",
            "LUBAN_EXTRA_BODY": "{ top_k = 20 }",
            "LUBAN_MODEL": "1.5",
            "LUBAN_STREAM": "false",
        }
    )
    assert layer == {"max_cost": 2.5, "extra_body": {"top_k": 20}, "model": "1.5", "stream": False}
    with pytest.raises(ConfigError, match="max_steps"):
        env_layer({"LUBAN_MAX_STEPS": "lots"})


def test_broken_files_name_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setenv("LUBAN_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / ".luban.toml").write_text('a = 1\n\nmodel = "x\n')
    with pytest.raises(ConfigError, match=r"\.luban\.toml: invalid TOML: .*line 3"):
        load_settings(tmp_path, {}, environ={})
    (tmp_path / ".luban.toml").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path, {}, environ={})


def test_profiles_combine_provider_family_and_settings():
    local = resolve_profile(Settings(model="qwen", base_url="http://127.0.0.1:8000/v1"), environ={})
    assert local.api_key == "not-needed" and local.local and local.price_input == 0
    qwen = resolve_profile(Settings(provider="dashscope"), environ={"DASHSCOPE_API_KEY": "sk"})
    assert (qwen.model, qwen.family, qwen.temperature, qwen.top_p) == (
        "qwen3-coder-plus",
        "qwen3-coder-hosted",
        0.7,
        0.8,
    )
    assert qwen.extra_body == {"top_k": 20, "repetition_penalty": 1.05}
    assert (qwen.price_input, qwen.price_cached_input, qwen.price_output) == (1.0, 0.2, 5.0)
    assert qwen.context_window == 1_000_000
    kimi = resolve_profile(Settings(provider="moonshot", temperature=0.3), environ={"MOONSHOT_API_KEY": "sk"})
    assert (
        kimi.temperature == 0.3
        and kimi.base_url.startswith("https://api.moonshot")
        and kimi.family == "kimi-k2"
    )
    assert kimi.context_window == 262144 and kimi.reasoning == "omit"
    # a self-hosted open-weight model gets its family's behaviour but costs nothing
    vllm = resolve_profile(Settings(model="Qwen/Qwen3-Coder-30B-A3B-Instruct", provider="vllm"), environ={})
    assert vllm.family == "qwen3-coder" and vllm.extra_body["top_k"] == 20 and not vllm.priced
    # a known hosted URL without --provider still gets prices
    by_url = resolve_profile(
        Settings(model="deepseek-reasoner", base_url="https://api.deepseek.com/v1"),
        environ={"DEEPSEEK_API_KEY": "k"},
    )
    assert by_url.provider == "deepseek" and by_url.price_cached_input == 0.028 and by_url.reasoning == "omit"
    # MiniMax: temperature clamped into (0, 1], max_completion_tokens, think blocks kept verbatim
    mm = resolve_profile(Settings(provider="minimax", temperature=1.7), environ={"MINIMAX_API_KEY": "k"})
    assert (
        mm.temperature == 1.0
        and mm.max_tokens_param == "max_completion_tokens"
        and mm.reasoning == "inline_think"
    )
    unknown = resolve_profile(
        Settings(model="my-finetune", base_url="http://10.1.2.3:9000/v1", api_key_env="K"), environ={"K": "x"}
    )
    assert unknown.family is None and unknown.context_window == 32768 and not unknown.priced
    override = resolve_profile(
        Settings(
            model="my-finetune", base_url="http://127.0.0.1:1/v1", context_window=65536, reasoning="send_all"
        ),
        environ={},
    )
    assert override.context_window == 65536 and override.reasoning == "send_all"
    with pytest.raises(ConfigError, match="unknown provider 'nope'"):
        resolve_profile(Settings(provider="nope"), environ={})
    with pytest.raises(ConfigError, match="not an http"):
        resolve_profile(Settings(model="m", base_url="localhost:8000"), environ={})
    with pytest.raises(ConfigError, match="MY_KEY"):
        resolve_profile(
            Settings(model="m", base_url="https://x.example/v1", api_key_env="MY_KEY"), environ={}
        )


def test_every_preset_family_regex_compiles_and_matches_its_models():
    from agent.llm.profile import find_family, load_presets

    presets = load_presets()
    for name, prov in presets["providers"].items():
        assert prov["base_url"].startswith(("http://", "https://")), name
        for model in prov.get("prices", {}):
            assert find_family(model) is not None, f"{name}/{model} matches no family"
    expected = {
        "kimi-k2-0905-preview": "kimi-k2",
        "moonshotai/kimi-k2-thinking": "kimi-k2-thinking",
        "qwen3-coder-plus": "qwen3-coder-hosted",
        "Qwen/Qwen3-Coder-480B-A35B-Instruct": "qwen3-coder",
        "deepseek-reasoner": "deepseek-reasoner",
        "deepseek-chat": "deepseek",
        "z-ai/glm-4.6": "glm-4-6",
        "glm-4.5-air": "glm",
        "MiniMax-M2": "minimax",
        "ernie-4.5-turbo-128k": "ernie",
        "openai/gpt-oss-120b": "gpt-oss",
    }
    for model, family in expected.items():
        assert find_family(model)[0] == family, model


# --- registry ---------------------------------------------------------------------------------


class BoomParams(BaseModel):
    n: int = 1


class Boom(Tool):
    name = "boom"
    Params = BoomParams
    description = "Always fails."

    async def run(self, params, ctx):
        raise RuntimeError("kaboom")


class Echo(Tool):
    name = "echo"
    Params = BoomParams
    description = "Echoes n."

    async def run(self, params, ctx):
        return ToolResult(f"n={params.n}")


@pytest.fixture
def ctx(tmp_path) -> ToolContext:
    return ToolContext(root=tmp_path, env=LocalEnvironment(tmp_path))


async def test_bad_calls_become_error_results(ctx):
    reg = ToolRegistry([Boom(), Echo()])
    raised = await reg.execute("boom", "{}", ctx)
    assert raised.is_error and "internal error: RuntimeError: kaboom" in raised.output
    assert (await reg.execute("echo", '{"n": 3}', ctx)).output == "n=3"
    assert (await reg.execute("echo", "", ctx)).output == "n=1"
    wrong_type = await reg.execute("echo", '{"n": "three"}', ctx)
    assert wrong_type.is_error and "n:" in wrong_type.output
    not_object = await reg.execute("echo", "[1]", ctx)
    assert not_object.is_error and "JSON object" in not_object.output
    unknown = await reg.execute("nope", "{}", ctx)
    assert unknown.is_error and "boom, echo" in unknown.output


def test_builtin_schemas_are_clean_and_described():
    reg = ToolRegistry([load_object(p)() for p in BUILTIN_TOOLS])
    schemas = reg.schemas()
    names = [s["function"]["name"] for s in schemas]
    assert names == [
        "str_replace_editor",
        "execute_bash",
        "search",
        "run_tests",
        "git_status",
        "git_diff",
        "git_log",
        "git_show",
        "git_commit",
        "git_branch",
        "repo_map",
        "find_symbol",
        "find_references",
        "todo_write",
        "think",
        "finish",
    ]
    for s in schemas:
        fn = s["function"]
        assert len(fn["description"]) > 40 and fn["parameters"]["type"] == "object"
        assert '"title"' not in json.dumps({k: v for k, v in fn["parameters"].items() if k != "properties"})
    editor = schemas[0]["function"]["parameters"]
    assert editor["required"] == ["command", "path"]
    assert set(editor["properties"]["command"]["enum"]) == {
        "view",
        "create",
        "str_replace",
        "insert",
        "undo_edit",
    }


def test_clean_schema_keeps_a_property_named_title():
    class P(BaseModel):
        title: str

    schema = clean_schema(P.model_json_schema())
    assert "title" in schema["properties"] and "title" not in schema["properties"]["title"]


def test_plugins_load_from_entry_points_and_broken_ones_are_skipped(monkeypatch, caplog):
    class EP:
        def __init__(self, name, target):
            self.name, self.target = name, target

        def load(self):
            if self.target is None:
                raise ImportError("missing dependency")
            return self.target

    monkeypatch.setattr("tools.registry.entry_points", lambda group: [EP("echo", Echo), EP("broken", None)])
    reg = ToolRegistry.default()
    assert "echo" in reg.names and "str_replace_editor" in reg.names
    assert "broken" in caplog.text
    only = ToolRegistry.default(enabled=["echo"])
    assert only.names == ["echo", "finish"]  # finish is always available: a run must be able to end
    without = ToolRegistry.default(disabled=["execute_bash"])
    assert "execute_bash" not in without.names


def test_description_comes_from_the_md_file_beside_the_module():
    think = load_object("tools.control.think:Think")
    md = Path(__file__).resolve().parents[1] / "tools" / "control" / "think.md"
    assert think.describe() == md.read_text().strip() and "no side effects" in think.describe()
