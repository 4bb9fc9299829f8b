"""`luban doctor` and `luban models`: the real CLI as a subprocess against the scripted
OpenAI-compatible server on 127.0.0.1, healthy and misconfigured the way real servers are
(research/providers.md §1b, §3)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import run_luban

WEATHER = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "functions.get_weather:0"}
HEALTHY = [
    {"content": "", "tool_calls": [WEATHER]},
    {"tool_calls": [WEATHER], "usage": {"prompt_tokens": 80, "completion_tokens": 12, "cached_tokens": 64}},
]
QWEN_XML = (
    "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>"
)
K2_TOKENS = (
    "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
    '{"city": "Paris"}<|tool_call_end|><|tool_calls_section_end|>'
)
HARMONY = (
    '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>'
)


def doctor(server, home, *extra: str, model: str | None = None, **env: str):
    args = ["doctor", "--base-url", server.base_url, "--model", model or server.model, *extra]
    return run_luban(args, home, timeout=60, **env)


def lines_with(text: str, *needles: str) -> list[str]:
    return [line for line in text.splitlines() if all(n in line for n in needles)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- doctor: healthy -----------------------------------------------------------------------------


def test_doctor_healthy_server(tmp_path, scripted_server):
    server = scripted_server(HEALTHY, model="kimi-k2-instruct")

    run = doctor(server, tmp_path)

    assert run.code == 0, run.stdout + run.stderr
    out = run.stdout
    assert run.stderr == ""
    assert f"luban doctor: kimi-k2-instruct at {server.base_url}" in out
    for name in ("configuration", "server", "tool call", "streamed tool call"):
        assert lines_with(out, "✓", name), out
    assert "✗" not in out and "\n! " not in out
    assert lines_with(out, "family kimi-k2", "262,144-token window", "temperature 0.6")
    assert lines_with(out, "key OPENAI_API_KEY unset", "local server")
    assert lines_with(out, "✓ server", f"{server.base_url}/models", "kimi-k2-instruct")
    assert lines_with(out, "✓ tool call", 'get_weather({"city": "Paris"})')
    assert lines_with(out, "✓ streamed tool call", "usage 80 prompt + 12 completion tokens, 64 cached")
    assert out.rstrip().endswith("✓ all 4 checks passed")

    # one plain request, then the same one streamed; both what `exec` sends plus tool_choice auto
    plain, streamed = (r["body"] for r in server.requests)
    assert "stream" not in plain
    assert streamed["stream"] is True and streamed["stream_options"] == {"include_usage": True}
    for body in (plain, streamed):
        assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
        assert body["tools"][0]["function"]["parameters"]["required"] == ["city"]
        assert body["tool_choice"] == "auto"
        assert body["temperature"] == 0.6  # the kimi-k2 family default
        assert body["model"] == "kimi-k2-instruct"
        assert body["messages"] == [
            {"role": "user", "content": "What is the weather in Paris? Use the tool."}
        ]
        assert 0 < body["max_tokens"] <= 1024


def test_doctor_json_output(tmp_path, scripted_server):
    server = scripted_server(HEALTHY, model="qwen3-coder-30b-a3b-instruct")

    run = doctor(server, tmp_path, "--json")

    assert run.code == 0, run.stdout + run.stderr
    checks = json.loads(run.stdout)
    assert [c["check"] for c in checks] == ["configuration", "server", "tool call", "streamed tool call"]
    assert all(c["ok"] is True and c["status"] == "pass" and c["hint"] is None for c in checks)
    assert all(set(c) == {"check", "ok", "status", "detail", "hint"} for c in checks)
    assert "family qwen3-coder: 262,144-token window" in checks[0]["detail"]
    assert "64 cached" in checks[3]["detail"]
    # Qwen3-Coder's sampling goes out as exec would send it
    body = server.requests[0]["body"]
    assert (body["temperature"], body["top_p"], body["top_k"], body["repetition_penalty"]) == (
        0.7,
        0.8,
        20,
        1.05,
    )


def test_doctor_never_prints_the_key(tmp_path, scripted_server):
    key = "sk-doctor-test-0123456789-abcdefXYZ9"
    server = scripted_server(HEALTHY, model="kimi-k2-0905-preview")

    run = doctor(server, tmp_path, "--provider", "moonshot", MOONSHOT_API_KEY=key)

    assert run.code == 0, run.stdout + run.stderr
    assert key not in run.stdout and key not in run.stderr
    assert key[4:-4] not in run.stdout
    assert lines_with(run.stdout, "key MOONSHOT_API_KEY set", "…XYZ9")
    assert lines_with(run.stdout, "provider moonshot")
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {key}"


def test_doctor_stream_without_usage_is_a_warning(tmp_path, scripted_server):
    chunk = '{"id":"c1","object":"chat.completion.chunk","created":0,"model":"m","choices":[%s]}'
    call = (
        '{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function",'
        '"function":{"name":"get_weather","arguments":"{\\"city\\": \\"Paris\\"}"}}]},"finish_reason":null}'
    )
    finish = '{"index":0,"delta":{},"finish_reason":"tool_calls"}'
    sse = f"data: {chunk % call}\n\ndata: {chunk % finish}\n\ndata: [DONE]\n\n"
    server = scripted_server([HEALTHY[0], {"raw_sse": sse}], model="qwen3-coder:30b")

    run = doctor(server, tmp_path)

    assert run.code == 0, run.stdout + run.stderr
    assert lines_with(run.stdout, "! streamed tool call", 'get_weather({"city": "Paris"})', "no usage")
    assert "stream_options.include_usage" in run.stdout
    assert "all 4 checks passed, 1 with a warning" in run.stdout


# -- doctor: broken servers ----------------------------------------------------------------------


def test_doctor_tool_calls_lost_only_when_streamed(tmp_path, scripted_server):
    # Ollama's history: tool calls work unstreamed, and a stream brings back nothing (§1b)
    script = [HEALTHY[0], {"content": ""}]
    server = scripted_server(script, model="qwen3-coder:30b")

    run = doctor(server, tmp_path)

    assert run.code == 3, run.stdout + run.stderr
    assert lines_with(run.stdout, "✓ tool call")
    assert lines_with(run.stdout, "✗ streamed tool call", "an empty answer")
    assert "the same call works unstreamed: set stream = false in .luban.toml" in run.stdout

    # with streaming switched off, exec does not stream: a warning, not a failure
    server = scripted_server(script, model="qwen3-coder:30b")
    run = doctor(server, tmp_path, LUBAN_STREAM="false")
    assert run.code == 0, run.stdout + run.stderr
    assert lines_with(run.stdout, "! streamed tool call", "stream = false is set")


@pytest.mark.parametrize(
    ("model", "turn", "leak", "parser"),
    [
        ("Qwen/Qwen3-Coder-480B-A35B-Instruct", {"content": QWEN_XML}, "Qwen3-Coder XML", "qwen3_coder"),
        ("kimi-k2-instruct-0905", {"content": K2_TOKENS}, "Kimi K2 tool-call tokens", "kimi_k2"),
        # an unknown family: the leaked format picks the parser
        (
            "my-served-model",
            {"content": "Let me check.\n" + K2_TOKENS},
            "Kimi K2 tool-call tokens",
            "kimi_k2",
        ),
        ("gpt-oss-120b", {"content": "", "reasoning": HARMONY}, "harmony", "openai"),
    ],
)
def test_doctor_server_not_parsing_tool_calls(tmp_path, scripted_server, model, turn, leak, parser):
    server = scripted_server([turn, turn], model=model)

    run = doctor(server, tmp_path)

    assert run.code == 3, run.stdout + run.stderr
    out = run.stdout
    assert "Traceback" not in out + run.stderr
    where = "the reasoning" if turn.get("reasoning") else "content"
    failed = lines_with(out, "✗ tool call", f"came back as text in {where} ({leak})")
    assert failed, out
    assert "the server is not parsing tool calls" in out
    assert f"--enable-auto-tool-choice --tool-call-parser {parser}" in out
    assert "llama.cpp `--jinja`" in out
    (hint,) = lines_with(out, "→ the server is not parsing tool calls")
    assert hint.count("`") % 2 == 0, hint
    if parser == "qwen3_coder":
        assert "not hermes" in out
    assert lines_with(out, "✗ streamed tool call")
    assert "✗ 2 of 4 checks failed" in out
    assert len(server.requests) == 2


def test_doctor_json_reports_the_parser_fix(tmp_path, scripted_server):
    server = scripted_server([{"content": QWEN_XML}] * 2, model="qwen3-coder-30b-a3b-instruct")

    run = doctor(server, tmp_path, "--json")

    assert run.code == 3
    checks = {c["check"]: c for c in json.loads(run.stdout)}
    assert checks["server"]["ok"] is True
    tool = checks["tool call"]
    assert tool["ok"] is False and tool["status"] == "fail"
    assert "<function=get_weather>" in tool["detail"]
    assert "--tool-call-parser qwen3_coder" in tool["hint"]


def test_doctor_vllm_without_auto_tool_choice(tmp_path, scripted_server):
    message = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
    body = {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
    server = scripted_server(
        [{"error": {"status": 400, "body": body}}], model="Qwen/Qwen3-Coder-30B-A3B-Instruct"
    )

    run = doctor(server, tmp_path)

    assert run.code == 3, run.stdout + run.stderr
    out = run.stdout
    assert lines_with(out, "✗ tool call", "(400)", "requires --enable-auto-tool-choice")
    assert "vLLM needs `--enable-auto-tool-choice --tool-call-parser qwen3_coder`" in out
    (hint,) = lines_with(out, "→ the server has tool calling switched off")
    assert hint.count("`") % 2 == 0, hint
    # the streamed request would fail the same way: not sent
    assert len(server.requests) == 1
    assert "1 of 3 checks failed; 1 later check not run" in out


def test_doctor_llamacpp_without_jinja(tmp_path, scripted_server):
    body = {"error": {"code": 500, "message": "tools param requires --jinja flag", "type": "server_error"}}
    server = scripted_server([{"error": {"status": 500, "body": body}}], model="qwen3-coder-30b")

    run = doctor(server, tmp_path)

    assert run.code == 3, run.stdout + run.stderr
    assert lines_with(run.stdout, "✗ tool call", "server error 500", "tools param requires --jinja flag")
    assert "start llama-server with --jinja" in run.stdout
    assert len(server.requests) == 1  # no retry, no streamed attempt


def test_doctor_plain_text_answer(tmp_path, scripted_server):
    text = {"content": "I cannot look up live weather, but Paris is usually mild in spring."}
    server = scripted_server([text, text], model="qwen3-coder:30b")

    run = doctor(server, tmp_path)

    assert run.code == 3, run.stdout + run.stderr
    assert lines_with(run.stdout, "✗ tool call", "a plain text answer, no tool call", "Paris is usually mild")
    assert "the model/server ignored the tools" in run.stdout
    assert "Ollama: a model tag with tool support" in run.stdout
    assert "tool_choice is honoured" in run.stdout


def test_doctor_truncated_and_malformed_arguments(tmp_path, scripted_server):
    cut = {"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Pa'}], "finish_reason": "length"}
    bad = {"tool_calls": [{"name": "get_weather", "arguments": '{"city": Paris}'}]}
    server = scripted_server([cut, bad], model="glm-4.6")

    run = doctor(server, tmp_path)

    assert run.code == 3, run.stdout + run.stderr
    assert lines_with(run.stdout, "✗ tool call", "cut off")
    assert "finish_reason length" in run.stdout and "max_tokens" in run.stdout
    assert lines_with(run.stdout, "✗ streamed tool call", "malformed arguments", '{"city": Paris}')
    assert "Luban repairs many such cases" in run.stdout and "glm45" in run.stdout


def test_doctor_context_too_small(tmp_path, scripted_server):
    message = "the request exceeds the available context size, try increasing it"
    server = scripted_server([{"error": {"status": 400, "message": message}}], model="qwen3-coder:30b")

    run = doctor(server, tmp_path)

    assert run.code == 3
    assert lines_with(run.stdout, "✗ tool call", "overflows the server's context window")
    assert "num_ctx" in run.stdout and "-c 32768" in run.stdout


def test_doctor_key_refused(tmp_path, scripted_server):
    server = scripted_server(
        [{"error": {"status": 401, "message": "invalid api key"}}], model="qwen3-coder-30b"
    )

    run = doctor(server, tmp_path, "--provider", "vllm")

    assert run.code == 3
    assert lines_with(run.stdout, "✗ tool call", "refused the API key (HTTP 401)")
    assert "export VLLM_API_KEY=" in run.stdout


class FakeVLLM(BaseHTTPRequestHandler):
    """vLLM as started without tool flags and with a short --max-model-len: its real /models shape
    (owned_by, max_model_len) and its real 400 for tool_choice "auto"."""

    model = "Qwen/Qwen3-Coder-30B-A3B-Instruct"

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        card = {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm", "root": self.model}
        self._json(200, {"object": "list", "data": [{**card, "parent": None, "max_model_len": 32768}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        message = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
        self._json(400, {"object": "error", "message": message, "type": "BadRequestError", "code": 400})

    def log_message(self, *args) -> None:
        pass


def test_doctor_vllm_window_smaller_than_the_family(tmp_path):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLLM)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        run = run_luban(["doctor", "--base-url", url, "--model", FakeVLLM.model], tmp_path, timeout=60)
    finally:
        httpd.shutdown()
        httpd.server_close()

    assert run.code == 3, run.stdout + run.stderr
    assert lines_with(run.stdout, "! server", "the server's window is 32,768 tokens, Luban assumes 262,144")
    assert "set context_window = 32768 in .luban.toml" in run.stdout
    assert "vLLM needs `--enable-auto-tool-choice --tool-call-parser qwen3_coder`" in run.stdout


def test_doctor_server_down(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"

    run = run_luban(["doctor", "--base-url", url, "--model", "qwen3-coder"], tmp_path, timeout=60)

    assert run.code == 3, run.stdout + run.stderr
    assert lines_with(run.stdout, "✗ server", f"nothing is listening at {url}")
    assert "start the server, or check --base-url" in run.stdout
    assert "tool call" not in run.stdout  # nothing else was tried
    assert "1 of 2 checks failed; 2 later checks not run" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_doctor_url_without_v1(tmp_path, scripted_server):
    server = scripted_server([], model="qwen3-coder")
    url = server.base_url.removesuffix("/v1") + "/api"

    run = run_luban(["doctor", "--base-url", url, "--model", "qwen3-coder"], tmp_path, timeout=60)

    assert run.code == 3
    assert lines_with(run.stdout, "✗ server", "404")
    assert "check that --base-url ends with /v1" in run.stdout


def test_doctor_missing_key_for_a_hosted_provider(tmp_path):
    run = run_luban(["doctor", "--provider", "moonshot"], tmp_path, timeout=60)

    assert run.code == 2
    assert lines_with(run.stdout, "✗ configuration", "MOONSHOT_API_KEY is empty")
    assert "3 later checks not run" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr

    run = run_luban(["doctor", "--provider", "dashscope", "--json"], tmp_path, timeout=60)
    assert run.code == 2
    (check,) = json.loads(run.stdout)
    assert check["check"] == "configuration" and check["ok"] is False
    assert "DASHSCOPE_API_KEY" in check["detail"]


def test_doctor_model_not_served_suggests_the_closest(tmp_path, scripted_server):
    server = scripted_server(HEALTHY, model="Qwen/Qwen3-Coder-30B-A3B-Instruct")

    run = doctor(server, tmp_path, model="qwen3-coder-30b-a3b")

    assert run.code == 0, run.stdout + run.stderr
    warned = lines_with(run.stdout, "! server", "'qwen3-coder-30b-a3b' is not among its models")
    assert warned and "Qwen/Qwen3-Coder-30B-A3B-Instruct" in warned[0]
    assert "did you mean --model Qwen/Qwen3-Coder-30B-A3B-Instruct?" in run.stdout
    assert "all 4 checks passed, 1 with a warning" in run.stdout


# -- models --------------------------------------------------------------------------------------


def test_models_table(tmp_path):
    run = run_luban(
        ["models"], tmp_path, timeout=60, MOONSHOT_API_KEY="sk-secret-models-key-123456789", COLUMNS="160"
    )

    assert run.code == 0, run.stderr
    out = run.stdout
    assert "sk-secret-models-key" not in out
    assert lines_with(out, "moonshot ", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY (set)", "hosted")
    assert lines_with(out, "dashscope ", "dashscope-intl.aliyuncs.com", "DASHSCOPE_API_KEY (not set)")
    assert lines_with(out, "vllm ", "http://127.0.0.1:8000/v1", "local")
    # known models with their family's window and output cap and the provider's prices
    assert lines_with(
        out, "kimi-k2-0905-preview (default)", "kimi-k2 ", "262,144", "16,384", "$0.60", "$0.15", "$2.50"
    )
    assert lines_with(
        out, "qwen3-coder-plus (default)", "qwen3-coder-hosted", "1,000,000", "65,536", "$1.00", "$5.00"
    )
    assert lines_with(out, "qwen3-coder-30b-a3b-instruct", "262,144", "$0.45", "$2.25")
    # the families
    assert lines_with(out, "kimi-k2-thinking", "kimi-k2.*thinking", "32,768", "T=1", "send_on_tool_turns")
    assert lines_with(out, "qwen3-coder ", "qwen3?-coder", "262,144", "T=0.7, top_p=0.8, top_k=20")
    assert lines_with(out, "minimax", "inline_think", "no tool_choice")
    assert "unknown family (defaults: 32768-token window, cost 0)" in out


def test_models_json(tmp_path):
    run = run_luban(["models", "--json"], tmp_path, timeout=60)

    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    provs = {p["name"]: p for p in data["providers"]}
    fams = {f["name"]: f for f in data["families"]}
    assert {"moonshot", "dashscope", "vllm", "ollama", "llamacpp", "openrouter"} <= set(provs)
    moonshot = provs["moonshot"]
    assert moonshot["api_key_env"] == "MOONSHOT_API_KEY" and moonshot["key_set"] is False
    assert moonshot["local"] is False and provs["vllm"]["local"] is True
    k2 = next(m for m in moonshot["models"] if m["id"] == "kimi-k2-0905-preview")
    assert k2 == {
        "id": "kimi-k2-0905-preview",
        "family": "kimi-k2",
        "context_window": 262144,
        "max_output": 16384,
        "prices": {"input": 0.6, "cached_input": 0.15, "output": 2.5},
    }
    assert fams["kimi-k2"]["match"] == "kimi-k2" and fams["kimi-k2"]["context_window"] == 262144
    assert fams["qwen3-coder"]["extra_body"] == {"top_k": 20, "repetition_penalty": 1.05}
    assert fams["minimax"]["tool_choice"] is False
    assert fams["minimax"]["max_tokens_param"] == "max_completion_tokens"


def test_models_remote_lists_the_server_models(tmp_path, scripted_server):
    server = scripted_server([], model="Qwen/Qwen3-Coder-480B-A35B-Instruct")
    other = scripted_server([], model="my-finetune")

    run = run_luban(
        ["models", "--remote", "--base-url", server.base_url], tmp_path, timeout=60, COLUMNS="160"
    )

    assert run.code == 0, run.stderr
    assert f"{server.base_url}/models: 1 model(s)" in run.stdout
    assert lines_with(run.stdout, "Qwen/Qwen3-Coder-480B-A35B-Instruct", "qwen3-coder", "262,144", "65,536")

    run = run_luban(["models", "--remote", "--base-url", other.base_url, "--json"], tmp_path, timeout=60)
    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["base_url"] == other.base_url
    (entry,) = data["models"]
    assert entry["id"] == "my-finetune" and entry["family"] is None and entry["context_window"] == 32768
    run = run_luban(["models", "--remote", "--base-url", other.base_url], tmp_path, timeout=60, COLUMNS="200")
    assert lines_with(run.stdout, "my-finetune", "unknown family (defaults: 32768-token window, cost 0)")


def test_models_remote_needs_a_server(tmp_path):
    run = run_luban(["models", "--remote"], tmp_path, timeout=60)

    assert run.code == 2
    assert "needs a server: pass --provider NAME" in run.stderr and "--base-url" in run.stderr
    assert "Traceback" not in run.stderr


def test_models_remote_server_down(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"

    run = run_luban(["models", "--remote", "--base-url", url], tmp_path, timeout=60)

    assert run.code == 3
    assert f"nothing is listening at {url}" in run.stderr
    assert "Traceback" not in run.stderr
